"""Independent reference for Speculate's dequantization: the `gguf` Python package.

usage: dequantize_reference.py MODEL.gguf OUTDIR NAME[:FIRST_ROW:END_ROW] ...

Writes OUTDIR/<index>.f32 (little-endian float32, row-major) for each requested tensor,
dequantized with gguf.quants.dequantize, and prints one JSON line per tensor with its type.
"""
import json
import os
import sys

import numpy as np
from gguf.quants import dequantize

from gguf_light import GGUFFile


def main() -> None:
    model, outdir, *requests = sys.argv[1:]
    tensors = GGUFFile(model).tensors
    for index, request in enumerate(requests):
        name, *rows = request.split(":")
        tensor = tensors[name]
        data = tensor.rows()
        if rows:
            data = data[int(rows[0]):int(rows[1])]
        values = dequantize(np.ascontiguousarray(data), tensor.tensor_type).astype(np.float32)
        values.astype("<f4").tofile(os.path.join(outdir, f"{index}.f32"))
        print(json.dumps({"name": name, "type": tensor.tensor_type.name, "count": int(values.size)}))


if __name__ == "__main__":
    main()
