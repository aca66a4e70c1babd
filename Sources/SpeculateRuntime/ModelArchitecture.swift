/// The transformer families the runtime implements. Adding one is a local change: a case here
/// with its ``LayerRecipe`` (how its blocks differ from the shared forward pass), its metadata
/// prefix (the raw value, as GGUF's `general.architecture` names it), and any tensor
/// differences in ``TransformerModel``.
public enum ModelArchitecture: String, Sendable, CaseIterable {
    /// Llama (Llama 2 and 3, SmolLM2, TinyLlama, Mistral 7B).
    case llama
    /// Qwen2 (Qwen2.5, Qwen2.5-Coder).
    case qwen2
    /// Qwen3 (dense models).
    case qwen3
    /// Gemma 3 (text models).
    case gemma3
    /// Phi-3 (Phi-3 and Phi-3.5 mini and medium; Phi-4 mini).
    case phi3

    /// How the family's transformer blocks are computed.
    public var recipe: LayerRecipe {
        switch self {
        case .llama: .llama
        case .qwen2: .qwen2
        case .qwen3: .qwen3
        case .gemma3: .gemma3
        case .phi3: .phi3
        }
    }
}
