"""Python's json_format as the reference for TetherWire's JSON printer (WireJSONTests).

Messages are parsed with the grpcio-tools classes of Protos/ (see wire_interop.py).

  wire_json.py schema         fail unless Protos/ is what the Swift printer assumes
  wire_json.py fixtures DIR   write DIR/in/NAME.K.bin: wire_interop's populated instances
  wire_json.py print DIR      for each DIR/in/NAME.K.bin write DIR/out/NAME.K.VARIANT.json
  wire_json.py floats DIR     for each 32-bit pattern in DIR/floats.txt (one a line, finite
                              floats) write how MessageToJson prints a float field holding it
                              to DIR/floats.json.txt; no message in Protos/ has a float field

Each VARIANT.json is what json_format.MessageToJson prints with map entries sorted by
key (Python's order is the upb map's iteration order, which the Swift printer does not
reproduce); `print` checks that the sorting is the only change:

  pretty             MessageToJson(m)
  pretty-defaults    MessageToJson(m, always_print_fields_with_no_presence=True)
  pretty-utf8        MessageToJson(m, ensure_ascii=False)
  compact            MessageToJson(m, indent=None) with separators (",", ":")
  compact-defaults   the same with always_print_fields_with_no_presence=True
"""
import json
import os
import struct
import sys

from google.protobuf import json_format
from google.protobuf.internal import type_checkers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire_interop  # noqa: E402

VARIANTS = {
    "pretty": dict(indent=2),
    "pretty-defaults": dict(indent=2, always_print_fields_with_no_presence=True),
    "pretty-utf8": dict(indent=2, ensure_ascii=False),
    "compact": dict(indent=None),
    "compact-defaults": dict(indent=None, always_print_fields_with_no_presence=True),
}


def camel(name, upper_first):
    """protoc's ToJsonName (upper_first=False) and MapEntryName without "Entry"."""
    out, upper = [], upper_first
    for c in name:
        if c == "_":
            upper = True
        else:
            out.append(c.upper() if upper and "a" <= c <= "z" else c)
            upper = False
    return "".join(out)


def is_map(field):
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def sort_maps(descriptor, obj):
    """obj (a message as MessageToJson's JSON object) with every map's entries sorted."""
    fields = {f.json_name: f for f in descriptor.fields}
    out = {}
    for key, value in obj.items():
        field = fields[key]
        if is_map(field):
            key_field, value_field = field.message_type.fields
            numeric = key_field.type not in (key_field.TYPE_STRING, key_field.TYPE_BOOL)
            items = sorted(value.items(), key=lambda kv: int(kv[0]) if numeric else kv[0])
            if value_field.message_type is not None:
                items = [(k, sort_maps(value_field.message_type, v)) for k, v in items]
            value = dict(items)
        elif field.message_type is not None and field.is_repeated:
            value = [sort_maps(field.message_type, v) for v in value]
        elif field.message_type is not None:
            value = sort_maps(field.message_type, value)
        out[key] = value
    return out


def reference(msg, variant):
    options = dict(VARIANTS[variant])
    indent = options.pop("indent")
    ensure_ascii = options.get("ensure_ascii", True)
    raw = json_format.MessageToJson(msg, indent=indent, **options)
    parsed = json.loads(raw)
    # Python's json reads and writes this output back unchanged, so the only
    # difference between `raw` and the reference is the order of map entries.
    if json.dumps(parsed, indent=indent, ensure_ascii=ensure_ascii) != raw:
        sys.exit(f"{msg.DESCRIPTOR.full_name}: json does not round-trip MessageToJson's output")
    separators = None if indent is not None else (",", ":")
    return json.dumps(sort_maps(msg.DESCRIPTOR, parsed), indent=indent,
                      ensure_ascii=ensure_ascii, separators=separators)


def print_all(directory):
    classes = wire_interop.load_modules()
    os.makedirs(os.path.join(directory, "out"), exist_ok=True)
    files = sorted(os.listdir(os.path.join(directory, "in")))
    for file in files:
        msg = classes[file.rsplit(".", 2)[0]]()
        with open(os.path.join(directory, "in", file), "rb") as f:
            msg.ParseFromString(f.read())
        for variant in VARIANTS:
            with open(os.path.join(directory, "out", f"{file[:-4]}.{variant}.json"), "w", encoding="utf-8") as f:
                f.write(reference(msg, variant))
    print(f"printed {len(files)} messages in {len(VARIANTS)} variants")


def fixtures(directory):
    classes = wire_interop.load_modules()
    os.makedirs(os.path.join(directory, "in"), exist_ok=True)
    count = 0
    for name, cls in sorted(classes.items()):
        for k, m in enumerate(wire_interop.instances(cls)):
            with open(os.path.join(directory, "in", f"{name}.{k}.bin"), "wb") as f:
                f.write(m.SerializeToString(deterministic=True))
            count += 1
    print(f"wrote {count} Python fixtures")


def floats(directory):
    with open(os.path.join(directory, "floats.txt")) as f:
        patterns = [int(line) for line in f if line.strip()]
    with open(os.path.join(directory, "floats.json.txt"), "w") as f:
        for bits in patterns:
            value = struct.unpack("<f", struct.pack("<I", bits))[0]
            # What _Printer._FieldToJsonObject returns for a finite float, as json.dumps writes it.
            f.write(json.dumps(type_checkers.ToShortestFloat(value)) + "\n")
    print(f"printed {len(patterns)} floats")


def schema():
    """What the Swift printer cannot see in protobuf-c descriptors must hold in Protos/."""
    problems = []

    def check(d):
        numbers = [f.number for f in d.fields]
        if numbers != sorted(numbers):
            problems.append(f"{d.full_name}: fields not declared in field-number order {numbers}")
        for f in d.fields:
            if f.json_name != camel(f.name, False):
                problems.append(f"{f.full_name}: json_name {f.json_name!r} is not protoc's default")
            entry = f.message_type
            if (f.is_repeated and entry is not None and not is_map(f)
                    and entry.full_name == f"{d.full_name}.{camel(f.name, True)}Entry"
                    and [(x.number, x.name) for x in entry.fields] == [(1, "key"), (2, "value")]):
                problems.append(f"{f.full_name}: a repeated {entry.name} that looks like a map entry")
        for n in d.nested_types:
            check(n)

    classes = wire_interop.load_modules()
    for cls in classes.values():
        check(cls.DESCRIPTOR)
    if problems:
        sys.exit("\n".join(problems))
    print(f"{len(classes)} messages declare fields in number order, default json_names, no map look-alikes")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "schema":
        schema()
    elif command == "fixtures":
        fixtures(sys.argv[2])
    elif command == "print":
        print_all(sys.argv[2])
    elif command == "floats":
        floats(sys.argv[2])
    else:
        sys.exit(__doc__)
