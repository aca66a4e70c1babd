"""Independent reference for Speculate's tokenizer: Hugging Face `tokenizers`.

usage: tokenizer_reference.py MODEL.gguf INPUT.json OUTPUT.json

Builds a `tokenizers.Tokenizer` from the vocabulary, merges and token types stored in the
GGUF file, with the pre-tokenizer that `tokenizer.ggml.pre` names configured as the model
family's Hugging Face tokenizer.json does. INPUT is a JSON list of {"text", "special"};
OUTPUT receives a JSON list of token-id lists, one per input.
"""
import json
import struct
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# Llama 3: the same expression with runs of up to three digits.
LLAMA3_SPLIT = QWEN2_SPLIT.replace(r"\p{N}|", r"\p{N}{1,3}|", 1)


SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_metadata(path, keys):
    """The values of `keys` in a GGUF file's key-value section (strings, numbers and arrays of
    them). A minimal reader: the `gguf` package's GGUFReader builds an object per array element
    and takes ~10 s for a 128k-token vocabulary; this takes well under one."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    offset = 8
    _tensors, count = struct.unpack_from("<QQ", data, offset)
    offset += 16

    def string(at):
        (length,) = struct.unpack_from("<Q", data, at)
        return data[at + 8:at + 8 + length].decode("utf-8"), at + 8 + length

    def value(kind, at):
        if kind == 8:
            return string(at)
        if kind == 9:
            element, length = struct.unpack_from("<IQ", data, at)
            at += 12
            if element in SCALARS:
                size = struct.calcsize(SCALARS[element])
                values = [v[0] for v in struct.iter_unpack(SCALARS[element], data[at:at + size * length])]
                return values, at + size * length
            items = []
            for _ in range(length):
                item, at = value(element, at)
                items.append(item)
            return items, at
        size = struct.calcsize(SCALARS[kind])
        return struct.unpack_from(SCALARS[kind], data, at)[0], at + size

    found = {}
    for _ in range(count):
        key, offset = string(offset)
        (kind,) = struct.unpack_from("<I", data, offset)
        item, offset = value(kind, offset + 4)
        if key in keys:
            found[key] = item
    return found


def build(model_path):
    meta = read_metadata(model_path, {"tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                                      "tokenizer.ggml.token_type", "tokenizer.ggml.pre"})
    tokens = meta["tokenizer.ggml.tokens"]
    merges = meta["tokenizer.ggml.merges"]
    kinds = meta["tokenizer.ggml.token_type"]
    pre = meta["tokenizer.ggml.pre"]
    vocab = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    # Llama 3's tokenizer.json sets ignore_merges: a piece that is a token is taken whole.
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                     fuse_unk=False, byte_fallback=False, ignore_merges=pre == "llama-bpe")
    tokenizer = Tokenizer(bpe)
    if pre == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    elif pre == "llama-bpe":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    elif pre == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    else:
        raise SystemExit(f"no reference configuration for pre-tokenizer {pre!r}")
    tokenizer.decoder = decoders.ByteLevel()
    # Control tokens (type 3) are special: matched only when asked; user-defined (type 4) always.
    tokenizer.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                                  for i, k in enumerate(kinds) if k == 3])
    tokenizer.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                          for i, k in enumerate(kinds) if k == 4])
    return tokenizer


def main() -> None:
    model_path, input_path, output_path = sys.argv[1:]
    tokenizer = build(model_path)
    with open(input_path, encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        tokenizer.encode_special_tokens = not case["special"]
        results.append(tokenizer.encode(case["text"], add_special_tokens=False).ids)
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
