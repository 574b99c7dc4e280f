"""Server reflection and health of a live `tether server`, through stock grpcio clients.

  reflection_interop.py reflection ADDRESS TOKEN_FILE
      grpcio-reflection's ProtoReflectionDescriptorDatabase (v1alpha) and v1 messages that
      grpcio-tools compiles from Protos/: every service listed; every service, method,
      message and enum of the control, agent and health protos described exactly as
      grpcio-tools compiles them from Protos/; a ControlService call whose messages are
      built from the reflected descriptors alone, with the admin token in TOKEN_FILE; bad
      requests answered with a clear status.
  reflection_interop.py health-drain ADDRESS PID
      Health.Watch sees SERVING, then NOT_SERVING once the server (PID) gets SIGTERM.

Runs every case of its mode, prints one line per case and a closing
"N passed, M failed" line; exits 1 if any case failed. Needs the venv of Scripts/bootstrap.
"""
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import traceback

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(ROOT, "Protos")
# The files behind the services `tether server` answers; echo.proto is not one.
SERVED = [
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
    "tether/agent/v1/agent.proto",
    "tether/control/v1/control.proto",
]
DESCRIBED = ["tether/control/v1/control.proto", "tether/agent/v1/agent.proto", "grpc/health/v1/health.proto"]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


def reference_files():
    """Every served file as grpcio-tools compiles it from Protos/, by name."""
    out = os.path.join(tempfile.mkdtemp(prefix="tether-reflect-"), "set.pb")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", "--include_imports",
                    f"--descriptor_set_out={out}", *SERVED], check=True)
    files = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        files.ParseFromString(f.read())
    return {file.name: file for file in files.file}


def compiled_module(proto, suffix):
    """The `_pb2` module grpcio-tools makes of one file of Protos/, loaded by path (the
    top-level package "grpc" is grpcio's)."""
    out = tempfile.mkdtemp(prefix="tether-reflect-py-")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}", proto], check=True)
    spec = importlib.util.spec_from_file_location("tether_reflect_" + suffix, os.path.join(out, proto[:-6] + "_pb2.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def method_path(method):
    """`/package.Service/Method` of a method descriptor: the path comes from the contract."""
    return f"/{method.containing_service.full_name}/{method.name}"


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


class Context:
    def __init__(self, channel, token):
        self.channel = channel
        self.token = token
        self.reference = reference_files()
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)
        self.v1 = compiled_module("grpc/reflection/v1/reflection.proto", "v1")
        method = self.v1.DESCRIPTOR.services_by_name["ServerReflection"].methods_by_name["ServerReflectionInfo"]
        self.v1_path = method_path(method)
        self.v1_info = channel.stream_stream(self.v1_path,
                                             request_serializer=self.v1.ServerReflectionRequest.SerializeToString,
                                             response_deserializer=self.v1.ServerReflectionResponse.FromString)

    def expected_services(self):
        return sorted(f"{file.package}.{service.name}" for name, file in self.reference.items() for service in file.service)


class V1Stream:
    """One v1 ServerReflectionInfo call, a request at a time."""

    def __init__(self, ctx):
        self.outbox = queue.Queue()
        self.responses = ctx.v1_info(iter(self.outbox.get, None), timeout=30)

    def ask(self, request):
        self.outbox.put(request)
        return next(self.responses)

    def close(self):
        self.outbox.put(None)
        expect(list(self.responses) == [], "responses after the last request")
        expect(self.responses.code() == grpc.StatusCode.OK, f"the call ended {self.responses.code()}")


def without_source_info(file):
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    copy.ClearField("source_code_info")
    return copy


# MARK: reflection


@case
def v1alpha_lists_every_service_including_health_and_reflection(ctx):
    services = sorted(ctx.database.get_services())
    expect(services == ctx.expected_services(), f"listed {services}")
    for name in ["tether.control.v1.ControlService", "tether.agent.v1.AgentService", "grpc.health.v1.Health",
                 "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]:
        expect(name in services, f"{name} not listed")


@case
def v1_lists_the_same_services_and_echoes_host_and_request(ctx):
    stream = V1Stream(ctx)
    request = ctx.v1.ServerReflectionRequest(host="localhost:7443", list_services="*")
    response = stream.ask(request)
    expect(response.valid_host == "localhost:7443", f"valid_host {response.valid_host!r}")
    expect(response.original_request == request, "original_request differs")
    expect(sorted(s.name for s in response.list_services_response.service) == ctx.expected_services(), "v1 list differs")
    stream.close()


@case
def every_served_file_is_exactly_what_grpcio_tools_compiles_plus_comments(ctx):
    for name in SERVED:
        reflected = ctx.database.FindFileByName(name)
        expect(without_source_info(reflected) == ctx.reference[name], f"{name} differs from grpcio-tools' descriptor")
        comments = [l.leading_comments for l in reflected.source_code_info.location if l.leading_comments.strip()]
        expect(comments, f"{name}: no comments in the reflected descriptor")


@case
def every_service_method_message_and_enum_is_described_as_in_protos(ctx):
    reference_pool = descriptor_pool.DescriptorPool()
    for file in ctx.reference.values():  # protoc lists a file after the files it imports
        reference_pool.Add(file)
    counts = {"services": 0, "methods": 0, "messages": 0, "enums": 0}

    def fields(message):
        return [(f.name, f.number, f.type, f.is_repeated, f.message_type and f.message_type.full_name,
                 f.enum_type and f.enum_type.full_name, f.containing_oneof and f.containing_oneof.name) for f in message.fields]

    def compare_enum(full_name):
        mine, theirs = ctx.pool.FindEnumTypeByName(full_name), reference_pool.FindEnumTypeByName(full_name)
        expect([(v.name, v.number) for v in mine.values] == [(v.name, v.number) for v in theirs.values], f"{full_name} values")
        counts["enums"] += 1

    def compare_message(full_name):
        # A fresh lookup by name for each, as `grpcurl describe NAME` does.
        mine, theirs = ctx.pool.FindMessageTypeByName(full_name), reference_pool.FindMessageTypeByName(full_name)
        expect(fields(mine) == fields(theirs), f"{full_name} fields")
        counts["messages"] += 1
        for nested in theirs.nested_types:
            compare_message(nested.full_name)
        for e in theirs.enum_types:
            compare_enum(e.full_name)

    for name in DESCRIBED:
        file = reference_pool.FindFileByName(name)
        for service in file.services_by_name.values():
            # The file is found by symbol (the service, then each method), not by file name.
            expect(ctx.database.FindFileContainingSymbol(service.full_name).name == name, f"{service.full_name}: wrong file")
            mine = ctx.pool.FindServiceByName(service.full_name)
            counts["services"] += 1
            for method in service.methods:
                expect(ctx.database.FindFileContainingSymbol(method.full_name).name == name, f"{method.full_name}: wrong file")
                other = mine.methods_by_name[method.name]
                expect((other.input_type.full_name, other.output_type.full_name, other.client_streaming, other.server_streaming)
                       == (method.input_type.full_name, method.output_type.full_name, method.client_streaming,
                           method.server_streaming), f"{method.full_name} differs")
                counts["methods"] += 1
            expect(len(mine.methods) == len(service.methods), f"{service.full_name}: method count")
        for message in file.message_types_by_name.values():
            compare_message(message.full_name)
        for e in file.enum_types_by_name.values():
            compare_enum(e.full_name)
    expect(counts["services"] == 3 and counts["methods"] > 20 and counts["messages"] > 50, f"described only {counts}")
    print(f"      described {counts}")


@case
def a_control_call_built_from_reflected_descriptors_alone_works_with_a_token(ctx):
    service = ctx.pool.FindServiceByName("tether.control.v1.ControlService")
    method = service.methods_by_name["ListTokens"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = ctx.channel.unary_unary(method_path(method), request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
    request = request_class()
    setattr(request, "include_inactive", True)
    response = call(request, metadata=[("authorization", f"Bearer {ctx.token}")], timeout=10)
    roles = method.output_type.fields_by_name["tokens"].message_type.fields_by_name["role"].enum_type
    tokens = [(t.token_id, roles.values_by_number[t.role].name, t.description) for t in response.tokens]
    expect(len(tokens) == 1, f"tokens {tokens}")
    token_id, role, description = tokens[0]
    expect(role == "TOKEN_ROLE_ADMIN" and description == "created on first start", f"token {tokens[0]}")
    expect(ctx.token.startswith(f"tether_{token_id}_"), "the token listed is not the one in the token file")
    # Reflection is open; the service it describes is not.
    try:
        call(request, timeout=10)
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"without a token: {e.code()}")
    else:
        raise AssertionError("ListTokens without a token succeeded")


@case
def unknown_names_get_not_found_and_the_stream_goes_on(ctx):
    stream = V1Stream(ctx)
    for request, what in [
        (ctx.v1.ServerReflectionRequest(file_containing_symbol="tether.control.v1.NoSuchMessage"), "symbol not found"),
        (ctx.v1.ServerReflectionRequest(file_by_filename="tether/control/v1/nope.proto"), "file not found"),
        (ctx.v1.ServerReflectionRequest(file_containing_symbol="tether.testing.v1.EchoService"), "symbol not found"),
        (ctx.v1.ServerReflectionRequest(file_containing_extension=ctx.v1.ExtensionRequest(
            containing_type="tether.control.v1.Token", extension_number=100)), "extension not found"),
        (ctx.v1.ServerReflectionRequest(all_extension_numbers_of_type="tether.control.v1.Nope"), "message type not found"),
    ]:
        response = stream.ask(request)
        expect(response.WhichOneof("message_response") == "error_response", f"{request}: {response}")
        expect(response.error_response.error_code == NOT_FOUND, f"code {response.error_response.error_code}")
        expect(response.error_response.error_message.startswith(what), response.error_response.error_message)
    numbers = stream.ask(ctx.v1.ServerReflectionRequest(all_extension_numbers_of_type="tether.control.v1.Token"))
    expect(numbers.all_extension_numbers_response.base_type_name == "tether.control.v1.Token", f"{numbers}")
    expect(list(numbers.all_extension_numbers_response.extension_number) == [], f"{numbers}")
    # Found after all that, on the same stream: the file first, then what it imports (none).
    found = stream.ask(ctx.v1.ServerReflectionRequest(file_containing_symbol="tether.agent.v1.AgentService.Connect"))
    files = [descriptor_pb2.FileDescriptorProto.FromString(b).name for b in found.file_descriptor_response.file_descriptor_proto]
    expect(files == ["tether/agent/v1/agent.proto"], f"files {files}")
    stream.close()


@case
def bad_requests_end_the_call_with_a_clear_status_and_the_server_serves_on(ctx):
    # No serializers: the request bodies go out as given, bytes that are not protobuf too.
    raw = ctx.channel.stream_stream(ctx.v1_path)
    cases = [
        (ctx.v1.ServerReflectionRequest().SerializeToString(), grpc.StatusCode.INVALID_ARGUMENT, "no message_request"),
        (ctx.v1.ServerReflectionRequest(file_containing_symbol="x" * (1 << 20)).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "file_containing_symbol is 1048576 bytes"),
        (ctx.v1.ServerReflectionRequest(host="h" * 5000, list_services="").SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "host is 5000 bytes"),
        (b"\xff\xff\xff\xff", grpc.StatusCode.INTERNAL, "could not decode"),
    ]
    for body, code, words in cases:
        try:
            list(raw(iter([body]), timeout=10))
        except grpc.RpcError as e:
            expect(e.code() == code and words in e.details(), f"got {e.code()} {e.details()!r}, wanted {code} '{words}'")
        else:
            raise AssertionError(f"{words}: the call succeeded")
    expect(sorted(ctx.database.get_services()) == ctx.expected_services(), "the server stopped answering reflection")


# MARK: health-drain


def health_drain(address, pid):
    health = compiled_module("grpc/health/v1/health.proto", "health")
    watch_method = health.DESCRIPTOR.services_by_name["Health"].methods_by_name["Watch"]
    status_name = health.HealthCheckResponse.ServingStatus.Name
    with grpc.insecure_channel(address) as channel:
        watch = channel.unary_stream(method_path(watch_method), request_serializer=health.HealthCheckRequest.SerializeToString,
                                     response_deserializer=health.HealthCheckResponse.FromString)
        services = ["", "tether.control.v1.ControlService", "tether.agent.v1.AgentService"]
        streams = [watch(health.HealthCheckRequest(service=s), timeout=30) for s in services]
        first = [status_name(next(s).status) for s in streams]
        expect(first == ["SERVING"] * 3, f"before SIGTERM: {first}")
        os.kill(pid, signal.SIGTERM)
        then = [status_name(next(s).status) for s in streams]
        expect(then == ["NOT_SERVING"] * 3, f"after SIGTERM: {then}")
        for s in streams:
            rest = list(s)
            expect(rest == [], f"after NOT_SERVING: {rest}")
            expect(s.code() == grpc.StatusCode.OK, f"the watch ended {s.code()}: {s.details()}")
    print(f"watched {', '.join(repr(s) for s in services)}: SERVING, then NOT_SERVING on SIGTERM, then the end")


def run_cases(ctx):
    passed = failed = 0
    for fn in CASES:
        try:
            fn(ctx)
            passed += 1
            print(f"ok    {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL  {fn.__name__}\n{traceback.format_exc()}")
    print(f"{passed} passed, {failed} failed")
    return failed == 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "reflection":
        with open(sys.argv[3]) as f:
            token = f.read().strip()
        with grpc.insecure_channel(sys.argv[2]) as channel:
            sys.exit(0 if run_cases(Context(channel, token)) else 1)
    elif len(sys.argv) == 4 and sys.argv[1] == "health-drain":
        health_drain(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
