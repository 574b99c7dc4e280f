"""A stock grpcio client against a Tether gRPC server (tether-echo serve).

  grpc_interop.py ADDRESS [--ca FILE] [--server-name NAME]

Runs every case below, prints one line per case and a closing
"N passed, M failed" line; exits 1 if any case failed.
"""
import argparse
import concurrent.futures
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import traceback
import types

import grpc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(ROOT, "Protos")
FILES = ["tether/testing/v1/echo.proto", "grpc/health/v1/health.proto"]
MiB = 1 << 20


def load():
    out = tempfile.mkdtemp(prefix="tether-grpc-")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
                    f"--grpc_python_out={out}", *FILES], check=True)
    sys.path.insert(0, out)
    mods = {}
    for f in FILES:
        for suffix in ("_pb2", "_pb2_grpc"):
            path = os.path.join(out, f[:-6] + suffix + ".py")
            name = f[:-6].replace("/", ".") + suffix
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            # Register under the dotted name the generated code imports. Parents are
            # stubs, because "grpc" itself is grpcio's package.
            sys.modules[name] = module
            parent, _, leaf = name.rpartition(".")
            while parent:
                stub = sys.modules.setdefault(parent, types.ModuleType(parent))
                setattr(stub, leaf, sys.modules[f"{parent}.{leaf}"])
                parent, _, leaf = parent.rpartition(".")
            spec.loader.exec_module(module)
            mods[os.path.basename(f)[:-6] + suffix] = module
    return mods


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_status(fn, code, message=None):
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"expected {code}, got {e.code()}: {e.details()}")
        if message is not None:
            expect(e.details() == message, f"expected message {message!r}, got {e.details()!r}")
        return e
    raise AssertionError(f"expected {code}, call succeeded")


@case
def unary_echo_with_unicode_and_metadata(stub, pb, ctx):
    request = pb.EchoRequest(payload=bytes(range(256)), text="ünïcødé-日本-🚀")
    response, call = stub.Echo.with_call(request, metadata=[("x-trace", "abc"), ("x-blob-bin", b"\x00\x01\xff")])
    expect(response.payload == bytes(range(256)), "payload differs")
    expect(response.text == request.text, "text differs")
    expect("x-trace=abc" in response.metadata, f"text metadata not seen: {list(response.metadata)}")
    expect("x-blob-bin=0,1,255" in response.metadata, f"binary metadata not seen: {list(response.metadata)}")
    expect(call.code() == grpc.StatusCode.OK, "status not OK")


@case
def server_streaming_sends_every_response_in_order(stub, pb, ctx):
    responses = list(stub.Expand(pb.EchoRequest(text="x", repeat=50)))
    expect([r.index for r in responses] == list(range(50)), "indices wrong")


@case
def client_streaming_joins_every_request(stub, pb, ctx):
    response = stub.Collect(iter(pb.EchoRequest(text=str(i)) for i in range(100)))
    expect(response.text == "".join(str(i) for i in range(100)), "joined text wrong")


@case
def bidirectional_ping_pong_answers_each_message(stub, pb, ctx):
    import queue
    outbox = queue.Queue()

    def requests():
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    responses = stub.Chat(requests())
    for i in range(200):
        outbox.put(pb.EchoRequest(text=f"ping {i}"))
        r = next(responses)
        expect(r.text == f"ping {i}" and r.index == i, f"bad pong {r.text} {r.index}")
    outbox.put(None)
    expect(list(responses) == [], "extra responses")


@case
def deadline_exceeded_is_reported_promptly(stub, pb, ctx):
    start = time.monotonic()
    expect_status(lambda: stub.Echo(pb.EchoRequest(delay_ms=5000), timeout=0.3), grpc.StatusCode.DEADLINE_EXCEEDED)
    expect(time.monotonic() - start < 3, "deadline took too long")


@case
def cancelling_a_stream_leaves_the_server_serving(stub, pb, ctx):
    call = stub.Expand(pb.EchoRequest(text="x", repeat=1000, delay_ms=10))
    next(call)
    call.cancel()
    expect(call.code() == grpc.StatusCode.CANCELLED, f"got {call.code()}")
    expect(stub.Echo(pb.EchoRequest(text="after")).text == "after", "server stopped serving")


@case
def four_mebibyte_messages_cross_both_ways(stub, pb, ctx):
    payload = os.urandom(4 * MiB - 64)
    response = stub.Echo(pb.EchoRequest(payload=payload))
    expect(response.payload == payload, "4 MiB payload differs")


@case
def oversized_request_gets_resource_exhausted(stub, pb, ctx):
    expect_status(lambda: stub.Echo(pb.EchoRequest(payload=b"a" * (4 * MiB + 1))), grpc.StatusCode.RESOURCE_EXHAUSTED)
    expect(stub.Echo(pb.EchoRequest(text="after")).text == "after", "server stopped serving")


@case
def error_status_and_unicode_message_arrive_intact(stub, pb, ctx):
    message = "nöt fóund: 100% gone\nnext line"
    expect_status(lambda: stub.Echo(pb.EchoRequest(fail_with_code=5, fail_with_message=message)),
                  grpc.StatusCode.NOT_FOUND, message)


@case
def error_after_streamed_responses_arrives_in_trailers(stub, pb, ctx):
    got = []

    def run():
        for r in stub.Expand(pb.EchoRequest(text="x", repeat=3, fail_with_code=0)):
            got.append(r)
        for r in stub.Chat(iter([pb.EchoRequest(text="a"), pb.EchoRequest(fail_with_code=9, fail_with_message="nope")])):
            got.append(r)
    expect_status(run, grpc.StatusCode.FAILED_PRECONDITION, "nope")
    expect(len(got) == 4, f"expected 4 responses before the error, got {len(got)}")


@case
def unknown_method_is_unimplemented(stub, pb, ctx):
    channel = ctx["channel"]
    method = channel.unary_unary("/tether.testing.v1.EchoService/NoSuchMethod",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=pb.EchoResponse.FromString)
    expect_status(lambda: method(pb.EchoRequest()), grpc.StatusCode.UNIMPLEMENTED)
    service = channel.unary_unary("/no.Such/Service", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=pb.EchoResponse.FromString)
    expect_status(lambda: service(pb.EchoRequest()), grpc.StatusCode.UNIMPLEMENTED)


@case
def undecodable_request_is_internal(stub, pb, ctx):
    channel = ctx["channel"]
    method = channel.unary_unary("/tether.testing.v1.EchoService/Echo",
                                 request_serializer=lambda raw: raw, response_deserializer=pb.EchoResponse.FromString)
    expect_status(lambda: method(b"\x0f\xff\xff"), grpc.StatusCode.INTERNAL)


@case
def health_check_and_watch_follow_the_standard(stub, pb, ctx):
    health = ctx["health_stub"]
    hpb = ctx["health_pb"]
    expect(health.Check(hpb.HealthCheckRequest()).status == hpb.HealthCheckResponse.SERVING, "not SERVING")
    expect_status(lambda: health.Check(hpb.HealthCheckRequest(service="no.such.Service")), grpc.StatusCode.NOT_FOUND)
    watch = health.Watch(hpb.HealthCheckRequest())
    expect(next(watch).status == hpb.HealthCheckResponse.SERVING, "watch did not start SERVING")
    watch.cancel()
    unknown = health.Watch(hpb.HealthCheckRequest(service="no.such.Service"))
    expect(next(unknown).status == hpb.HealthCheckResponse.SERVICE_UNKNOWN, "watch of unknown not SERVICE_UNKNOWN")
    unknown.cancel()


@case
def many_concurrent_calls_share_one_connection(stub, pb, ctx):
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(stub.Echo, pb.EchoRequest(text=str(i))) for i in range(500)]
        texts = sorted(int(f.result().text) for f in futures)
    expect(texts == list(range(500)), "lost or mixed responses")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--ca")
    parser.add_argument("--server-name")
    parser.add_argument("--only")
    args = parser.parse_args()
    mods = load()
    options = [("grpc.max_receive_message_length", 16 * MiB), ("grpc.max_send_message_length", 16 * MiB)]
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        channel = grpc.secure_channel(args.address, creds, options=options)
    else:
        channel = grpc.insecure_channel(args.address, options=options)
    grpc.channel_ready_future(channel).result(timeout=10)
    pb = mods["echo_pb2"]
    stub = mods["echo_pb2_grpc"].EchoServiceStub(channel)
    ctx = {"channel": channel, "health_pb": mods["health_pb2"],
           "health_stub": mods["health_pb2_grpc"].HealthStub(channel)}
    passed = failed = 0
    for fn in CASES:
        if args.only and args.only != fn.__name__:
            continue
        try:
            fn(stub, pb, ctx)
            print(f"ok   {fn.__name__}")
            passed += 1
        except Exception:
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
            failed += 1
    channel.close()
    print(f"grpc interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
