"""Writes a small GGUF model with random weights in a real family's tensor layout, for tests of
architectures no downloadable file here has.

usage: synthetic_model.py ARCH OUTPUT.gguf [SEED]

ARCH: qwen3 (per-head Q/K RMSNorm, no biases, head width from attention.key_length, which
differs from embedding_length / head_count as in Qwen3-0.6B); llama3 (the `llama` architecture
with Llama 3's RoPE scaling as its converter writes it: a `rope_freqs` tensor of per-frequency
divisors, computed by Llama 3's formula, here from an original context of 64 tokens so that
the short test prompts reach the scaled frequencies); llama3-unscaled (the same weights without
`rope_freqs`, to show that the factors matter); llama-linear (linear RoPE scaling, factor 4);
llama-yarn (YaRN scaling declared, which the runtime must refuse); mistral (the `llama`
architecture with a sliding window of 16 positions declared, as Mistral 7B v0.1 declares 4,096,
so that the test prompts reach past it); phi3 (fused `attn_qkv` and gate/up `ffn_up` tensors as
Phi-3's converter writes them, head width 96 as Phi-3 mini's, a declared window llama.cpp ignores);
phi3-longrope (with the per-frequency factor tensors of Phi-3's 128k files, which the runtime
must refuse).

Matrices are stored as Q8_0 (quantized by the `gguf` package), norms as F32. The weights are
scaled so that the logits are far from flat (a top-2 margin well above the 8-bit noise on most
positions). The vocabulary is a small SentencePiece one that llama.cpp accepts (see
`vocabulary`), so that llama.cpp can run the same file: `<unk>`, `<s>`, `</s>`, the pieces `▁`,
`w`, `0`-`9` and `▁w`, then the words `▁w0`, `▁w1`, ... up to the vocabulary's size, so that
a prompt of words ("w5 w17 w300") has one tokenization and every word's prefixes are tokens
(SentencePiece merges pairs of tokens).
"""
import sys

import numpy as np
import gguf
from gguf.quants import quantize

SHAPES = {
    # d, layers, heads, kv heads, head width, feed-forward, vocabulary
    "qwen3": (256, 2, 4, 2, 128, 512, 512),
    "llama3": (256, 2, 4, 2, 64, 512, 512),
    "llama3-unscaled": (256, 2, 4, 2, 64, 512, 512),
    "llama-linear": (256, 2, 4, 2, 64, 512, 512),
    "llama-yarn": (256, 2, 4, 2, 64, 512, 512),
    "mistral": (256, 2, 4, 2, 64, 512, 512),
    "phi3": (384, 2, 4, 2, 96, 512, 512),
    "phi3-longrope": (384, 2, 4, 2, 96, 512, 512),
}


def llama3_rope_factors(base, dim, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context=64):
    """Llama 3's per-frequency RoPE divisors (its `rope_scaling` of type "llama3")."""
    factors = []
    for freq in 1.0 / base ** (np.arange(0, dim, 2) / dim):
        wavelength = 2 * np.pi / freq
        if wavelength < original_context / high_freq_factor:
            factors.append(1.0)
        elif wavelength > original_context / low_freq_factor:
            factors.append(factor)
        else:
            smooth = (original_context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def vocabulary(size):
    """The tokens, scores and token types of the synthetic SentencePiece vocabulary."""
    tokens = ["<unk>", "<s>", "</s>", "\u2581", "w"] + [str(i) for i in range(10)] + ["\u2581w"]
    tokens += [f"\u2581w{i}" for i in range(size - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.NORMAL] * (size - 3)
    return tokens, [-float(i) for i in range(size)], types


def main():
    arch, path = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    d, layers, heads, kv_heads, hd, ff, vocab = SHAPES[arch]
    rng = np.random.default_rng(seed)
    family = "llama" if arch.startswith("llama") or arch == "mistral" else arch.split("-")[0]
    qk_norms = arch == "qwen3"
    base = 500_000.0 if family == "llama" else 1_000_000.0
    writer = gguf.GGUFWriter(path, family)
    writer.add_block_count(layers)
    writer.add_embedding_length(d)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    if family == "phi3":  # Phi-3's converter writes the rotary width, not the head width
        writer.add_rope_dimension_count(hd)
        writer.add_sliding_window(2047)
    else:
        writer.add_key_length(hd)
        writer.add_value_length(hd)
    if arch == "mistral":
        writer.add_sliding_window(16)
    writer.add_feed_forward_length(ff)
    writer.add_context_length(2048)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(base)
    tokens, scores, types = vocabulary(vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(True)
    if arch == "llama-linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(4.0)
    if arch == "llama-yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(4.0)

    def values(rows, columns, scale):
        return (rng.standard_normal((rows, columns)) * scale / np.sqrt(columns)).astype(np.float32)

    def store(name, matrix_values):
        # The quantized bytes' shape (rows, bytes per row) stands for the matrix's shape.
        writer.add_tensor(name, quantize(matrix_values, gguf.GGMLQuantizationType.Q8_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def matrix(name, rows, columns, scale):
        store(name, values(rows, columns, scale))

    def fused(name, parts):
        store(name, np.concatenate([values(*part) for part in parts]))

    def norm(name, length):
        writer.add_tensor(name, (1 + 0.1 * rng.standard_normal(length)).astype(np.float32))

    matrix("token_embd.weight", vocab, d, np.sqrt(d))
    for i in range(layers):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight", d)
        # Qwen3's queries and keys come out of their projections far from unit RMS (which the
        # per-head norms then restore): scaled here so that leaving a norm out would show.
        qk_scale = 4.0 if qk_norms else 1.0
        if family == "phi3":  # query, key and value rows in one tensor, in that order
            fused(p + "attn_qkv.weight", [(heads * hd, d, 1.0), (kv_heads * hd, d, 1.0), (kv_heads * hd, d, 1.0)])
        else:
            matrix(p + "attn_q.weight", heads * hd, d, qk_scale)
            matrix(p + "attn_k.weight", kv_heads * hd, d, qk_scale)
            matrix(p + "attn_v.weight", kv_heads * hd, d, 1.0)
        if qk_norms:
            norm(p + "attn_q_norm.weight", hd)
            norm(p + "attn_k_norm.weight", hd)
        matrix(p + "attn_output.weight", d, heads * hd, 1.0)
        norm(p + "ffn_norm.weight", d)
        if family == "phi3":  # the gate's rows, then the up projection's
            fused(p + "ffn_up.weight", [(ff, d, 1.0), (ff, d, 1.0)])
        else:
            matrix(p + "ffn_gate.weight", ff, d, 1.0)
            matrix(p + "ffn_up.weight", ff, d, 1.0)
        matrix(p + "ffn_down.weight", d, ff, 1.0)
    norm("output_norm.weight", d)
    matrix("output.weight", vocab, d, 4.0)
    if arch == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(base, hd))
    if arch == "phi3-longrope":
        writer.add_tensor("rope_factors_long.weight", np.linspace(1, 8, hd // 2).astype(np.float32))
        writer.add_tensor("rope_factors_short.weight", np.ones(hd // 2, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
