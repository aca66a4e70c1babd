#!/usr/bin/env python3
"""Builds the frequency ranking that draft heads use by default (FR-Spec, arXiv 2502.14856).

Counts how often each token id of a model's tokenizer occurs in a corpus of text files and
writes `Sources/SpeculateStrategies/Resources/qwen2.5-token-ranking.bin`: the ids the corpus uses,
most frequent first (at most --top; 3 bytes each, little-endian, after a header with the
fingerprint of the tokenizer they belong to; layout in BuiltInRanking.swift). `TokenFrequencyRanking.builtIn(for:)` alternates them with the vocabulary's own
id order (which covers everyday prose this corpus lacks), and draft models of that vocabulary
score only the first rows of that order unless told otherwise (`--draft-head`).

The corpus this project ships its ranking from is text under permissive licences that Debian
packages install: the Python standard library (/usr/lib/python3.11, PSF licence) and the Python
documentation's reStructuredText sources (package python3.11-doc, PSF licence). Only counts leave
the corpus; no text is copied.

Usage (after `swift build -c release`, with the model in the cache):
    python3 Benchmarks/make_ranking.py --model qwen2.5-coder-0.5b-instruct \
        --corpus /usr/lib/python3.11 --corpus /usr/share/doc/python3.11/html/_sources
"""
import argparse
import collections
import json
import struct
import os
import subprocess
import sys

SUFFIXES = {".py", ".txt", ".rst", ".md"}
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fingerprint(tokens):
    """FNV-1a 64 over every token's text followed by a newline (TokenFrequencyRanking.fingerprint)."""
    value = FNV_OFFSET
    for token in tokens:
        for byte in token.encode("utf-8") + b"\n":
            value ^= byte
            value = (value * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def corpus_files(roots):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for directory, subdirectories, names in os.walk(root):
            subdirectories.sort()
            for name in sorted(names):
                if os.path.splitext(name)[1].lower() in SUFFIXES:
                    yield os.path.join(directory, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="catalog name or .gguf path")
    parser.add_argument("--corpus", action="append", required=True, help="a file or directory (repeatable)")
    parser.add_argument("--budget-mb", type=float, default=24, help="megabytes of text to read from each corpus root")
    parser.add_argument("--top", type=int, default=65536, help="ids to store")
    parser.add_argument("--speculate", default=".build/release/speculate")
    parser.add_argument("--out", default="Sources/SpeculateStrategies/Resources/qwen2.5-token-ranking.bin")
    args = parser.parse_args()

    from gguf import GGUFReader  # pip package `gguf`, also used by the reference tests

    path = args.model if args.model.endswith(".gguf") else os.path.expanduser(f"~/.cache/speculate/models/{args.model}.gguf")
    reader = GGUFReader(path)
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[index]).decode("utf-8") for index in field.data]

    def count(text):
        # One `speculate tokenize` per few megabytes: loading the tokenizer costs about a second.
        result = subprocess.run([args.speculate, "tokenize", "--model", args.model], input=text.encode(),
                                capture_output=True, check=True)
        counts.update(json.loads(result.stdout))

    counts = collections.Counter()
    for root in args.corpus:
        budget = int(args.budget_mb * (1 << 20))
        read, pending = 0, []
        for file in corpus_files([root]):
            if read >= budget:
                break
            with open(file, "rb") as handle:
                data = handle.read(budget - read)
            read += len(data)
            pending.append(data.decode("utf-8", errors="replace"))
            if sum(map(len, pending)) > 4 << 20:
                count("\n".join(pending))
                pending = []
        if pending:
            count("\n".join(pending))
        print(f"{root}: {read} bytes read", file=sys.stderr)

    ranked = sorted(counts, key=lambda token: (-counts[token], token))[: args.top]
    payload = b"".join(token.to_bytes(3, "little") for token in ranked)
    header = b"SPRK" + struct.pack("<IQIII", 1, fingerprint(tokens), len(tokens), len(counts), len(ranked))
    with open(args.out, "wb") as out:
        out.write(header + payload)
    print(f"{len(counts)} distinct ids seen; wrote {len(ranked)} to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
