"""Cross-language proof of the Protos/ contract, driven by TetherWireTests.

Python classes come from Protos/ through grpcio-tools; every message is filled
by reflection (all fields set, 3 repeated elements, 3 map entries, unicode,
one instance per oneof member) so a new field is covered without editing here.

  wire_interop.py protoc-check           compile Protos/ with grpc_tools; fail on any warning
  wire_interop.py comment-check          fail unless every message, field, enum value and RPC has a comment
  wire_interop.py encode DIR             write DIR/py/NAME.K.bin; re-encode DIR/swift/* into DIR/py-from-swift/
  wire_interop.py compare DIR            DIR/swift-from-py/* must parse equal to DIR/py/*
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

from google.protobuf import unknown_fields

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(ROOT, "Protos")
FILES = sorted(
    os.path.relpath(os.path.join(d, f), PROTOS)
    for d, _, fs in os.walk(PROTOS) for f in fs if f.endswith(".proto")
)


def protoc(out_dir):
    """Runs grpc_tools.protoc over every file; returns its combined output."""
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *FILES],
        capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"grpc_tools.protoc failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def load_modules():
    out = tempfile.mkdtemp(prefix="tether-py-")
    protoc(out)
    modules = []
    for f in FILES:
        # Loaded by path: the top-level package "grpc" would clash with grpcio's.
        path = os.path.join(out, f[:-len(".proto")] + "_pb2.py")
        spec = importlib.util.spec_from_file_location("tether_interop_" + f.replace("/", "_")[:-6], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return {d.full_name: getattr(m, name)
            for m in modules for name, d in m.DESCRIPTOR.message_types_by_name.items()}


def scalar(field, k):
    F = field.__class__
    n = field.number
    t = field.type
    if t == F.TYPE_STRING:
        return f"ü-{field.name}-日本-🚀-{k}"
    if t == F.TYPE_BYTES:
        return bytes([0, 255, n % 256, k % 256])
    if t == F.TYPE_BOOL:
        return True
    if t == F.TYPE_ENUM:
        return max(v.number for v in field.enum_type.values)
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return 1.5 * n + k
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return -(2**31) + n + k
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return 2**63 - 1 - n - k
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return 2**32 - 1 - n - k
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return 2**64 - 1 - n - k
    raise ValueError(f"unhandled type {t} of {field.full_name}")


def fill(msg, k=0, choice=None, depth=0):
    """Sets every field of msg. `choice` maps oneof name -> member to set."""
    choice = choice or {}
    for field in msg.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and choice.get(oneof.name, oneof.fields[0].name) != field.name:
            continue
        value = getattr(msg, field.name)
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            key_field, value_field = field.message_type.fields
            for i, key in enumerate(["", "k1", "ünï-🚀"]):
                if value_field.message_type is not None:
                    fill(value[key], k + i, depth=depth + 1)
                else:
                    value[key] = scalar(value_field, k + i)
        elif field.is_repeated:
            for i in range(3):
                if field.message_type is not None:
                    fill(value.add(), k + i, depth=depth + 1)
                else:
                    value.append(scalar(field, k + i))
        elif field.message_type is not None:
            if depth < 4:
                fill(value, k, depth=depth + 1)
                if oneof is not None or depth >= 3:
                    value.SetInParent()
        else:
            setattr(msg, field.name, scalar(field, k))


def instances(cls):
    """One populated instance per oneof member (the first member otherwise)."""
    oneofs = cls.DESCRIPTOR.oneofs
    if not oneofs:
        m = cls()
        fill(m)
        return [m]
    out = []
    for oneof in oneofs:
        for member in oneof.fields:
            m = cls()
            fill(m, choice={oneof.name: member.name})
            out.append(m)
    return out


def has_unknown_fields(msg):
    """True if msg or any message inside it carries fields its schema lacks."""
    if len(unknown_fields.UnknownFieldSet(msg)):
        return True
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values() if field.message_type.fields[1].message_type else []
        elif field.is_repeated:
            values = value
        else:
            values = [value]
        if any(has_unknown_fields(v) for v in values):
            return True
    return False


def encode(directory):
    classes = load_modules()
    os.makedirs(os.path.join(directory, "py"), exist_ok=True)
    os.makedirs(os.path.join(directory, "py-from-swift"), exist_ok=True)
    for name, cls in sorted(classes.items()):
        for k, m in enumerate(instances(cls)):
            with open(os.path.join(directory, "py", f"{name}.{k}.bin"), "wb") as f:
                f.write(m.SerializeToString(deterministic=True))
    swift_dir = os.path.join(directory, "swift")
    failures = []
    for file in sorted(os.listdir(swift_dir)):
        name = file.rsplit(".", 2)[0]
        m = classes[name]()
        with open(os.path.join(swift_dir, file), "rb") as f:
            m.ParseFromString(f.read())
        if has_unknown_fields(m):
            failures.append(f"{file}: Python saw fields it does not know")
        with open(os.path.join(directory, "py-from-swift", file), "wb") as f:
            f.write(m.SerializeToString(deterministic=True))
    if failures:
        sys.exit("\n".join(failures))
    print(f"encoded {len(os.listdir(os.path.join(directory, 'py')))} Python fixtures; "
          f"re-encoded {len(os.listdir(swift_dir))} Swift fixtures")


def compare(directory):
    classes = load_modules()
    failures = []
    py_files = sorted(os.listdir(os.path.join(directory, "py")))
    for file in py_files:
        name = file.rsplit(".", 2)[0]
        original, echoed = classes[name](), classes[name]()
        with open(os.path.join(directory, "py", file), "rb") as f:
            original.ParseFromString(f.read())
        path = os.path.join(directory, "swift-from-py", file)
        if not os.path.exists(path):
            failures.append(f"{file}: Swift wrote nothing back")
            continue
        with open(path, "rb") as f:
            echoed.ParseFromString(f.read())
        if original != echoed:
            failures.append(f"{file}: differs after Swift decode+encode:\n"
                            f"--- sent\n{original}\n--- received\n{echoed}")
    if failures:
        sys.exit("\n".join(failures))
    print(f"{len(py_files)} messages equal after the Swift round trip")


def protoc_check():
    out_dir = tempfile.mkdtemp(prefix="tether-protoc-")
    out = protoc(out_dir)
    if out.strip():
        sys.exit(f"grpc_tools.protoc printed warnings:\n{out}")
    print(f"compiled {len(FILES)} files with no warnings")


def comment_check():
    """Every message, field, enum, enum value, service and RPC has a comment."""
    from google.protobuf import descriptor_pb2
    out = os.path.join(tempfile.mkdtemp(prefix="tether-desc-"), "set.pb")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", "--include_source_info",
                    f"--descriptor_set_out={out}", *FILES], check=True)
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        fds.ParseFromString(f.read())
    missing = []
    for file in fds.file:
        commented = {tuple(loc.path) for loc in file.source_code_info.location
                     if (loc.leading_comments or loc.trailing_comments).strip()}

        def need(path, name):
            if tuple(path) not in commented:
                missing.append(f"{file.name}: {name}")

        def enum(e, path, prefix):
            need(path, f"{prefix}{e.name}")
            for i, v in enumerate(e.value):
                need(path + [2, i], f"{prefix}{e.name}.{v.name}")

        def message(m, path, prefix):
            if m.options.map_entry:
                return
            need(path, f"{prefix}{m.name}")
            for i, fld in enumerate(m.field):
                need(path + [2, i], f"{prefix}{m.name}.{fld.name}")
            for i, n in enumerate(m.nested_type):
                message(n, path + [3, i], f"{prefix}{m.name}.")
            for i, e in enumerate(m.enum_type):
                enum(e, path + [4, i], f"{prefix}{m.name}.")

        for i, m in enumerate(file.message_type):
            message(m, [4, i], "")
        for i, e in enumerate(file.enum_type):
            enum(e, [5, i], "")
        for i, svc in enumerate(file.service):
            need([6, i], svc.name)
            for j, method in enumerate(svc.method):
                need([6, i, 2, j], f"{svc.name}.{method.name}")
    if missing:
        sys.exit("no comment on:\n  " + "\n  ".join(missing))
    print(f"every element of {len(FILES)} files has a comment")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "protoc-check":
        protoc_check()
    elif command == "comment-check":
        comment_check()
    elif command == "encode":
        encode(sys.argv[2])
    elif command == "compare":
        compare(sys.argv[2])
    else:
        sys.exit(__doc__)
