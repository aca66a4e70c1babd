"""llama.cpp's token ids for texts, as a reference for Speculate's tokenizers.

usage: llama_cpp_tokens.py LLAMA_TOKENIZE MODEL.gguf INPUT.json OUTPUT.json

LLAMA_TOKENIZE is llama.cpp's `llama-tokenize` (../shared/tools/build-llama-cpp builds it).
INPUT is a JSON list of {"text", "special"}; each text is written to a file and tokenized
verbatim (no escapes, no BOS; control tokens parsed when "special"). OUTPUT receives a JSON
list of {"count", "fnv"}: the number of ids and the FNV-1a 64 hash of the ids written as
decimal numbers joined by commas (small enough to commit as a fixture; the Swift test computes
the same of its own ids).
"""
import json
import os
import subprocess
import sys
import tempfile


def fnv1a64(text):
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def tokenize(tool, model, text, special):
    if not text:
        return []  # llama-tokenize refuses an empty prompt
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(text.encode())
        path = f.name
    try:
        arguments = [tool, "-m", model, "-f", path, "--ids", "--no-escape", "--no-bos", "--log-disable"]
        if not special:
            arguments.append("--no-parse-special")  # llama-tokenize parses them by default
        output = subprocess.run(arguments, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    line = output.strip().splitlines()[-1]
    return json.loads(line)


def main():
    tool, model, input_path, output_path = sys.argv[1:]
    with open(input_path, encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        ids = tokenize(tool, model, case["text"], case["special"])
        results.append({"count": len(ids), "fnv": fnv1a64(",".join(map(str, ids)))})
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
