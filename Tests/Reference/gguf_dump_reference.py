"""Independent reference for Speculate's GGUF reader: the `gguf` Python package's GGUFReader.

usage: gguf_dump_reference.py MODEL.gguf

Prints one JSON document: the version, every metadata key with its value type and value
(arrays as their element type, length and a SHA-256 over their elements' text), and every
tensor's name, GGML dimensions, type and data offset.
"""
import hashlib
import json
import sys

from gguf import GGUFReader, GGUFValueType


def scalar(field, part_index, vtype):
    part = field.parts[part_index]
    if vtype == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    if vtype == GGUFValueType.BOOL:
        return bool(part[0])
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return float(part[0])
    return int(part[0])


def main() -> None:
    reader = GGUFReader(sys.argv[1])
    metadata = {}
    version = None
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            if key == "GGUF.version":
                version = int(field.parts[field.data[0]][0])
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            etype = field.types[-1] if len(field.types) > 1 else None
            elements = [scalar(field, i, etype) for i in field.data]
            digest = hashlib.sha256("\n".join(repr(e) if not isinstance(e, str) else e for e in elements).encode()).hexdigest()
            metadata[key] = {"type": "array", "element": etype.name.lower() if etype is not None else None,
                             "count": len(elements), "sha256": digest}
        else:
            metadata[key] = {"type": vtype.name.lower(), "value": scalar(field, field.data[0], vtype)}
    tensors = [{"name": t.name, "dims": [int(d) for d in t.shape], "type": t.tensor_type.name,
                "offset": int(t.data_offset)} for t in reader.tensors]
    json.dump({"version": version, "metadata": metadata, "tensors": tensors}, sys.stdout)


if __name__ == "__main__":
    main()
