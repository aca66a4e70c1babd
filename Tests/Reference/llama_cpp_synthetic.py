"""llama.cpp's greedy continuations on the synthetic models (synthetic_model.py), as a reference
for Speculate's forward pass of families no downloadable file here has.

usage: llama_cpp_synthetic.py LLAMA_COMPLETION OUTPUT.json

For each family below the synthetic file is written afresh (the same seed gives the same bytes)
and each prompt (words of the synthetic vocabulary, "w5 w17 ...") is continued greedily for
TOKENS tokens by llama.cpp's `llama-completion` (BOS as the file asks, two threads, control
`</s>` masked by --ignore-eos and every token that is not a word (`<unk>`, `<s>` and the pieces
`▁`, `w`, `0`-`9`, `▁w`) by a logit bias of -inf, so that the output is words only, " w5 w17 ...",
which read back as token ids one way only). OUTPUT receives
{"tokens": TOKENS, "prompts": [...], "continuations": {family: [text, ...]}}.
"""
import json
import os
import subprocess
import sys
import tempfile

from llama_cpp_greedy import complete

FAMILIES = ["qwen3", "llama3", "llama-linear", "mistral", "phi3"]
PROMPTS = ["w5 w17 w300 w42 w8 w250 w99 w3", "w120 w7 w77 w400 w1 w64"]
TOKENS = 32
# Every id that is not a word or </s> (see synthetic_model.vocabulary).
BANNED = [0, 1] + list(range(3, 16))


def main():
    tool, output_path = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    continuations = {}
    with tempfile.TemporaryDirectory() as folder:
        for family in FAMILIES:
            model = os.path.join(folder, family + ".gguf")
            subprocess.run([sys.executable, os.path.join(here, "synthetic_model.py"), family, model], check=True)
            bans = [argument for i in BANNED for argument in ("-l", f"{i}-inf")]
            continuations[family] = [complete(tool, model, TOKENS, p, extra=bans) for p in PROMPTS]
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump({"tokens": TOKENS, "prompts": PROMPTS, "continuations": continuations}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
