"""llama.cpp's greedy continuations of prompts, as a reference for Speculate's forward pass.

usage: llama_cpp_greedy.py LLAMA_COMPLETION MODEL.gguf TOKENS INPUT.json OUTPUT.json

LLAMA_COMPLETION is llama.cpp's `llama-completion` (../shared/tools/build-llama-cpp builds it).
INPUT is a JSON list of prompts (no trailing newline: llama.cpp drops one from a prompt file);
each is continued greedily for TOKENS tokens (BOS as the file asks, end of text ignored, two
threads). OUTPUT receives the JSON list of continuations' text.
"""
import json
import os
import subprocess
import sys
import tempfile


def complete(tool, model, tokens, prompt, extra=()):
    """llama.cpp's continuation of `prompt`. llama-completion writes its output through a logging
    thread that it does not drain before exiting, so a run on a small model sometimes loses the
    end of its output (or all of it) with exit status 0: a run counts only when its output ends
    with the two newlines llama-completion writes last, and is repeated until one does."""
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(prompt.encode())
        path = f.name
    try:
        arguments = [tool, "-m", model, "-f", path, "-n", str(tokens), "--temp", "0", "--top-k", "1",
                     "--ignore-eos", "--no-display-prompt", "-no-cnv", "--simple-io", "-t", "2",
                     "--no-warmup", "-s", "1", "-c", "1024", *extra]
        for _ in range(50):
            result = subprocess.run(arguments, check=True, capture_output=True, stdin=subprocess.DEVNULL)
            text = result.stdout.decode("utf-8", errors="replace")
            if text.endswith("\n\n"):
                return text[:-2]
        sys.exit(f"llama-completion never wrote its whole output for {prompt!r}")
    finally:
        os.unlink(path)


def main():
    tool, model, tokens, input_path, output_path = sys.argv[1:]
    with open(input_path, encoding="utf-8") as f:
        prompts = json.load(f)
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump([complete(tool, model, int(tokens), p) for p in prompts], f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
