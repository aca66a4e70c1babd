/// How one model family's transformer block differs from the shared forward pass
/// (`ForwardPass.swift`): a pre-norm block of RMSNorm, grouped-query attention with rotary
/// positions, a residual add, RMSNorm, a SiLU-gated feed-forward and a residual add. A family
/// is a recipe value, not a copy of the forward pass; optional tensors (such as Q/K/V biases)
/// are used wherever the file has them.
public struct LayerRecipe: Sendable, Equatable {
    /// Which dimensions of a head rotary embedding rotates together.
    public enum RotaryPairs: Sendable, Equatable {
        /// Dimension 2i with 2i + 1 (the original Llama layout, as GGUF stores Llama weights).
        case adjacent
        /// Dimension i with i + d/2 (GPT-NeoX style).
        case halves
    }

    /// The rotary embedding's pairing.
    public var rotaryPairs: RotaryPairs

    /// A recipe.
    public init(rotaryPairs: RotaryPairs) {
        self.rotaryPairs = rotaryPairs
    }
}

extension LayerRecipe {
    /// Llama: adjacent rotary pairs (llama.cpp permutes Q and K rows at conversion so that they are).
    public static let llama = LayerRecipe(rotaryPairs: .adjacent)
    /// Qwen2: rotary on the two halves; Q/K/V biases (read from the file's `attn_*.bias`).
    public static let qwen2 = LayerRecipe(rotaryPairs: .halves)
    /// Qwen3: rotary on the two halves; no biases; each query and key head RMS-normalized with
    /// its own weights before the rotation (`attn_q_norm`, `attn_k_norm`, read where the file
    /// has them, as llama.cpp's `qwen3` graph applies them).
    public static let qwen3 = LayerRecipe(rotaryPairs: .halves)
}
