"""Independent numpy reference of the forward pass for the llama (Mistral included), qwen2, qwen3, gemma3 and
phi3 architectures.

usage: forward_reference.py MODEL.gguf INPUT.json OUTPUT.json

INPUT: {"prompts": [[token ids], ...], "greedy": N, "logit_positions": K, "modes": ["float", "emulated"],
        "greedy_modes": [the modes that generate; default all]}
OUTPUT: {mode: per prompt {"greedy": [N token ids], "margins": [top-1 minus top-2 logit at each
                           greedy step]}}
and OUTPUT.MODE.f32 per mode: the logits of each prompt's last K positions, prompt after prompt, as
little-endian float32 (millions of numbers: as JSON they took longer to write and read than the
forward passes took to run).

In "emulated" mode, the input of every matrix product is first rounded to 8 bits with
one scale per 32 values (per 256 for K-quant weights), as Speculate's kernels do; that isolates
the runtime's arithmetic from the (intended) quantization error.

Weights are dequantized with the `gguf` package; everything else (RMSNorm, rotary embedding,
grouped-query attention, SwiGLU) is written here from the architectures' definitions, in
float64 for the activations so that it is a reference rather than a second implementation of
the same shortcuts.
"""
import json
import sys

import numpy as np
from gguf.quants import dequantize

from gguf_light import GGUFFile


class Model:
    def __init__(self, path):
        reader = GGUFFile(path)

        def value(key, default=None):
            return reader.metadata.get(key, default)

        self.arch = value("general.architecture")
        a = self.arch
        self.d = value(f"{a}.embedding_length")
        self.layers = value(f"{a}.block_count")
        self.heads = value(f"{a}.attention.head_count")
        self.kv_heads = value(f"{a}.attention.head_count_kv", self.heads)
        self.eps = value(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
        self.base = value(f"{a}.rope.freq_base", 10000.0)
        scaling = value(f"{a}.rope.scaling.type", "none")
        assert scaling in ("none", "linear"), f"RoPE scaling {scaling}"
        self.freq_scale = 1.0 / value(f"{a}.rope.scaling.factor", 1.0) if scaling == "linear" else 1.0
        self.hd = value(f"{a}.attention.key_length", self.d // self.heads)
        # Gemma 3 (google/gemma_pytorch, as llama.cpp follows it): five layers of six attend within
        # the declared window with rotary base 10,000; the sixth globally with the file's base.
        # Mistral (the `llama` architecture with a window declared): every layer within the window,
        # with the global rotary. Phi-3's declared window is not applied (llama.cpp disables it).
        self.window = value(f"{a}.attention.sliding_window", 0) if a in ("gemma3", "llama") else 0
        self.window_base = value(f"{a}.rope.freq_base_swa", 10000.0)
        self.tensors = reader.tensors
        self.quantize = False
        self.block_of = {}

    def weight(self, name):
        t = self.tensors.get(name)
        if t is None:
            return None
        values = dequantize(t.rows(), t.tensor_type).astype(np.float32)
        shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows, columns
        values = values.reshape(shape)
        self.block_of[id(values)] = 256 if t.tensor_type.name.endswith("_K") else 32
        return values

    def split(self, w, rows):
        parts = np.split(w, rows)
        for part in parts:
            self.block_of[id(part)] = self.block_of[id(w)]
        return parts

    def matmul(self, x, w):
        """x @ w.T, with x rounded to 8 bits per block first when emulating the kernels."""
        if self.quantize:
            block = self.block_of[id(w)]
            blocks = x.reshape(x.shape[0], -1, block)
            amax = np.abs(blocks).max(axis=-1, keepdims=True)
            scale = np.where(amax == 0, 0, amax / 127)
            q = np.where(amax == 0, 0, np.clip(np.rint(blocks * np.where(amax == 0, 0, 127 / np.where(amax == 0, 1, amax))), -127, 127))
            x = (q * scale).reshape(x.shape)
        return (x.astype(np.float32) @ w.T).astype(np.float64)

    def load(self):
        self.embedding = self.weight("token_embd.weight")
        self.blocks = []
        for i in range(self.layers):
            p = f"blk.{i}."
            block = {k: self.weight(p + n) for k, n in [
                ("attn_norm", "attn_norm.weight"), ("q", "attn_q.weight"), ("k", "attn_k.weight"),
                ("v", "attn_v.weight"), ("o", "attn_output.weight"), ("bq", "attn_q.bias"),
                ("bk", "attn_k.bias"), ("bv", "attn_v.bias"), ("q_norm", "attn_q_norm.weight"),
                ("k_norm", "attn_k_norm.weight"), ("ffn_norm", "ffn_norm.weight"),
                ("gate", "ffn_gate.weight"), ("up", "ffn_up.weight"), ("down", "ffn_down.weight"),
                ("post_attn_norm", "post_attention_norm.weight"), ("post_ffn_norm", "post_ffw_norm.weight")]}
            # Phi-3 (its Hugging Face definition): qkv_proj's rows are the queries', the keys', the
            # values'; gate_up_proj's first half is the gate.
            qkv = self.weight(p + "attn_qkv.weight")
            if qkv is not None:
                q_rows, kv_rows = self.heads * self.hd, self.kv_heads * self.hd
                block["q"], block["k"], block["v"] = self.split(qkv, [q_rows, q_rows + kv_rows])
            if block["gate"] is None:
                block["gate"], block["up"] = self.split(block["up"], [block["up"].shape[0] // 2])
            self.blocks.append(block)
        self.output_norm = self.weight("output_norm.weight")
        factors = self.weight("rope_freqs.weight")  # Llama 3: each frequency divided by its factor
        self.freq_factors = np.ones(self.hd // 2) if factors is None else factors.astype(np.float64).reshape(-1)
        output = self.weight("output.weight")
        self.output = self.embedding if output is None else output

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def windowed(self, layer):
        return self.window > 0 and (self.arch != "gemma3" or layer % 6 < 5)

    def rope(self, x, positions, layer=0):
        # x: (tokens, heads, hd)
        half = self.hd // 2
        if self.windowed(layer) and self.arch == "gemma3":
            inv = self.window_base ** (-2.0 * np.arange(half) / self.hd)
        else:
            inv = self.base ** (-2.0 * np.arange(half) / self.hd) * self.freq_scale / self.freq_factors
        angles = np.outer(positions, inv)[:, None, :]
        c, s = np.cos(angles), np.sin(angles)
        if self.arch in ("qwen2", "qwen3", "gemma3", "phi3"):  # pairs (i, i + hd/2)
            x0, x1 = x[..., :half], x[..., half:]
            return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
        x0, x1 = x[..., 0::2], x[..., 1::2]  # llama in GGUF: adjacent pairs
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def forward(self, tokens, cache, start):
        """Evaluates `tokens` at positions start.., appending to `cache`; returns logits per token."""
        x = self.embedding[tokens].astype(np.float64)
        if self.arch == "gemma3":
            x = x * np.sqrt(np.float32(self.d))
        n = len(tokens)
        positions = np.arange(start, start + n)
        group = self.heads // self.kv_heads
        for i, b in enumerate(self.blocks):
            h = self.rms(x, b["attn_norm"])
            q = self.matmul(h, b["q"]) + (b["bq"] if b["bq"] is not None else 0)
            k = self.matmul(h, b["k"]) + (b["bk"] if b["bk"] is not None else 0)
            v = self.matmul(h, b["v"]) + (b["bv"] if b["bv"] is not None else 0)
            q = q.reshape(n, self.heads, self.hd)
            k = k.reshape(n, self.kv_heads, self.hd)
            if b["q_norm"] is not None:  # qwen3: every head normalized before the rotation
                q = self.rms(q, b["q_norm"])
            if b["k_norm"] is not None:
                k = self.rms(k, b["k_norm"])
            q = self.rope(q, positions, i)
            k = self.rope(k, positions, i)
            v = v.reshape(n, self.kv_heads, self.hd)
            if self.quantize:  # the runtime's cache keeps keys and values in half precision
                k, v = k.astype(np.float16).astype(np.float64), v.astype(np.float16).astype(np.float64)
            keys = np.concatenate([cache[i][0], k]) if cache[i] is not None else k
            values = np.concatenate([cache[i][1], v]) if cache[i] is not None else v
            cache[i] = (keys, values)
            total = keys.shape[0]
            out = np.empty((n, self.heads, self.hd))
            for head in range(self.heads):
                kh, vh = keys[:, head // group], values[:, head // group]
                scores = q[:, head] @ kh.T / np.sqrt(self.hd)
                mask = np.arange(total)[None, :] > (positions[:, None])
                if self.windowed(i):
                    mask |= np.arange(total)[None, :] <= positions[:, None] - self.window
                scores[mask] = -np.inf
                scores -= scores.max(axis=-1, keepdims=True)
                p = np.exp(scores)
                p /= p.sum(axis=-1, keepdims=True)
                out[:, head] = p @ vh
            attended = self.matmul(out.reshape(n, -1), b["o"])
            if b["post_attn_norm"] is not None:  # gemma3: the block's outputs normalized too
                attended = self.rms(attended, b["post_attn_norm"])
            x = x + attended
            h = self.rms(x, b["ffn_norm"])
            g = self.matmul(h, b["gate"])
            u = self.matmul(h, b["up"])
            if self.arch == "gemma3":  # GELU, tanh form
                act = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3)))
            else:
                act = g / (1 + np.exp(-g))
            fed = self.matmul(act * u, b["down"])
            if b["post_ffn_norm"] is not None:
                fed = self.rms(fed, b["post_ffn_norm"])
            x = x + fed
        return self.matmul(self.rms(x, self.output_norm), self.output)


def run(model, request, greedy):
    results = []
    for prompt in request["prompts"]:
        cache = [None] * model.layers
        logits = model.forward(np.array(prompt), cache, 0)
        keep = request.get("logit_positions", 1)
        result = {"logits": logits[-keep:].astype("<f4")}
        generated, margins = [], []
        position = len(prompt)
        last = logits[-1]
        for _ in range(greedy):
            token = int(np.argmax(last))
            top2 = np.sort(last)[-2:]
            margins.append(float(top2[1] - top2[0]))
            generated.append(token)
            last = model.forward(np.array([token]), cache, position)[-1]
            position += 1
        result["greedy"] = generated
        result["margins"] = margins
        results.append(result)
    return results


def main():
    model_path, input_path, output_path = sys.argv[1:]
    request = json.load(open(input_path))
    model = Model(model_path)
    model.load()
    output = {}
    for mode in request.get("modes", ["float"]):
        model.quantize = mode == "emulated"
        generates = mode in request.get("greedy_modes", request.get("modes", ["float"]))
        output[mode] = run(model, request, request.get("greedy", 0) if generates else 0)
        with open(f"{output_path}.{mode}.f32", "wb") as f:
            for result in output[mode]:
                f.write(result.pop("logits").tobytes())
    json.dump(output, open(output_path, "w"))


if __name__ == "__main__":
    main()
