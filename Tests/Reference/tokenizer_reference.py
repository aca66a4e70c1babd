"""Independent reference for Speculate's tokenizer: Hugging Face `tokenizers`.

usage: tokenizer_reference.py MODEL.gguf INPUT.json OUTPUT.json

Builds a `tokenizers.Tokenizer` from the vocabulary, merges and token types stored in the
GGUF file, with the pre-tokenizer that `tokenizer.ggml.pre` names configured as the model
family's Hugging Face tokenizer.json does. INPUT is a JSON list of {"text", "special"};
OUTPUT receives a JSON list of token-id lists, one per input.
"""
import json
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from gguf_light import GGUFFile

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# Llama 3: the same expression with runs of up to three digits.
LLAMA3_SPLIT = QWEN2_SPLIT.replace(r"\p{N}|", r"\p{N}{1,3}|", 1)


def build(model_path):
    meta = GGUFFile(model_path).metadata
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
