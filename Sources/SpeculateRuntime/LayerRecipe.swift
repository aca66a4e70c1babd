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

    /// The feed-forward's gate activation.
    public enum Activation: Sendable, Equatable {
        /// SiLU (SwiGLU).
        case silu
        /// GELU in its tanh form (GeGLU).
        case geluTanh
    }

    /// Which layers attend within a sliding window (when the file declares a window), and the
    /// rotary base of those layers.
    public struct SlidingWindowLayers: Sendable, Equatable {
        /// Every `period`-th layer (the last of each period) attends globally, the others within
        /// the window, unless the file's `attention.sliding_window_pattern` says otherwise; 0:
        /// every layer attends within the window.
        public var period: Int
        /// The rotary base of the windowed layers, unless the file's `rope.freq_base_swa` says;
        /// nil: the global layers' base.
        public var ropeBase: Double?
    }

    /// The rotary embedding's pairing.
    public var rotaryPairs: RotaryPairs
    /// The feed-forward's activation.
    public var activation: Activation
    /// Whether token embeddings are scaled by √width before the first layer.
    public var scalesEmbeddings: Bool
    /// The windowed layers' layout, for families that have them.
    public var slidingWindowLayers: SlidingWindowLayers?

    /// A recipe.
    public init(
        rotaryPairs: RotaryPairs, activation: Activation = .silu, scalesEmbeddings: Bool = false,
        slidingWindowLayers: SlidingWindowLayers? = nil
    ) {
        self.rotaryPairs = rotaryPairs
        self.activation = activation
        self.scalesEmbeddings = scalesEmbeddings
        self.slidingWindowLayers = slidingWindowLayers
    }
}

extension LayerRecipe {
    /// Llama: adjacent rotary pairs (llama.cpp permutes Q and K rows at conversion so that they
    /// are). Where the file declares `llama.attention.sliding_window` (Mistral 7B v0.1: 4,096),
    /// every layer attends within it, as Mistral's reference code does; llama.cpp's `llama` graph
    /// ignores the window, so the two agree only while a sequence fits in it.
    public static let llama = LayerRecipe(
        rotaryPairs: .adjacent, slidingWindowLayers: SlidingWindowLayers(period: 0, ropeBase: nil))
    /// Qwen2: rotary on the two halves; Q/K/V biases (read from the file's `attn_*.bias`).
    public static let qwen2 = LayerRecipe(rotaryPairs: .halves)
    /// Qwen3: rotary on the two halves; no biases; each query and key head RMS-normalized with
    /// its own weights before the rotation (`attn_q_norm`, `attn_k_norm`, read where the file
    /// has them, as llama.cpp's `qwen3` graph applies them).
    public static let qwen3 = LayerRecipe(rotaryPairs: .halves)
    /// Gemma 3, as llama.cpp's `gemma3` graph computes it: embeddings scaled by √width; per-head
    /// Q/K norms; a norm after attention and after the feed-forward, before each residual add
    /// (`post_attention_norm`, `post_ffw_norm`, read where the file has them); a GELU-gated
    /// feed-forward; rotary on the two halves. The GGUF converter stores the norms' weights as
    /// Gemma's (1 + weight), so the norms are plain RMSNorms here. The file declares only the window
    /// (512) and the global layers' base: five layers of six attend within the window with base
    /// 10,000, as the reference implementation fixes it (llama.cpp's `set_swa_pattern(6)` and
    /// `rope_freq_base_train_swa`).
    public static let gemma3 = LayerRecipe(
        rotaryPairs: .halves, activation: .geluTanh, scalesEmbeddings: true,
        slidingWindowLayers: SlidingWindowLayers(period: 6, ropeBase: 10_000))
    /// Phi-3: rotary on the two halves (llama.cpp's NEOX type for `phi3`); fused projection
    /// tensors (``ProjectionLayout``). The converter declares a sliding window (2,047 for Phi-3
    /// mini), which llama.cpp's `phi3` code deliberately disables (its pull request 13676): so does
    /// this recipe, by having no windowed layers, so that the two agree at every length.
    public static let phi3 = LayerRecipe(rotaryPairs: .halves)
}
