"""A minimal GGUF reader for the reference scripts: metadata values and tensors as numpy views.

The `gguf` package's GGUFReader builds a Python object per metadata array element and per
memmap slice (~10 s for a 128k-token vocabulary, most of a reference run); the scripts that
only need a file's numbers read it here. Dequantization stays the `gguf` package's
(`gguf.quants.dequantize`), and Speculate's own reading of the format is checked against
GGUFReader itself (gguf_dump_reference.py).
"""
import mmap
import struct

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUFFile:
    """`metadata`: key -> value (strings, numbers, lists of them); `tensors`: name -> Tensor."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data = self.data
        if data[:4] != b"GGUF":
            raise SystemExit(f"{path}: not a GGUF file")
        offset = 8
        tensor_count, count = struct.unpack_from("<QQ", data, offset)
        offset += 16
        self.metadata = {}
        for _ in range(count):
            key, offset = self._string(offset)
            (kind,) = struct.unpack_from("<I", data, offset)
            self.metadata[key], offset = self._value(kind, offset + 4)
        infos = []
        for _ in range(tensor_count):
            name, offset = self._string(offset)
            (dims,) = struct.unpack_from("<I", data, offset)
            shape = struct.unpack_from(f"<{dims}Q", data, offset + 4)
            kind, start = struct.unpack_from("<IQ", data, offset + 4 + 8 * dims)
            offset += 4 + 8 * dims + 12
            infos.append((name, shape, GGMLQuantizationType(kind), start))
        alignment = self.metadata.get("general.alignment", 32)
        base = (offset + alignment - 1) // alignment * alignment
        self.tensors = {name: Tensor(data, base + start, shape, kind) for name, shape, kind, start in infos}

    def _string(self, at):
        (length,) = struct.unpack_from("<Q", self.data, at)
        return self.data[at + 8:at + 8 + length].decode("utf-8"), at + 8 + length

    def _value(self, kind, at):
        if kind == 8:
            return self._string(at)
        if kind == 9:
            element, length = struct.unpack_from("<IQ", self.data, at)
            at += 12
            if element in SCALARS:
                size = struct.calcsize(SCALARS[element])
                values = [v[0] for v in struct.iter_unpack(SCALARS[element], self.data[at:at + size * length])]
                return values, at + size * length
            items = []
            for _ in range(length):
                item, at = self._value(element, at)
                items.append(item)
            return items, at
        size = struct.calcsize(SCALARS[kind])
        return struct.unpack_from(SCALARS[kind], self.data, at)[0], at + size


class Tensor:
    """One tensor: `shape` in GGUF order (columns first), `tensor_type`, and `rows()`, its raw
    bytes as a (rows, bytes per row) uint8 array: the form gguf.quants.dequantize takes."""

    def __init__(self, data, offset, shape, tensor_type):
        self.data, self.offset, self.shape, self.tensor_type = data, offset, shape, tensor_type

    def rows(self):
        block, block_bytes = GGML_QUANT_SIZES[self.tensor_type]
        columns = self.shape[0]
        rows = int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1
        row_bytes = columns // block * block_bytes
        raw = np.frombuffer(self.data, dtype=np.uint8, count=rows * row_bytes, offset=self.offset)
        return raw.reshape(rows, row_bytes)
