/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    /// Most tokens to generate.
    public var maxTokens: Int
    /// Tree limits.
    public var budget: TreeBudget
    /// Target sampling.
    public var sampling: SamplingSettings
    /// Tokens that end generation (the token is still emitted, then generation stops).
    public var stopTokens: Set<Token>
    /// Texts that end generation (needs `tokenBytes`): generation ends with the token that
    /// completes one (matched on UTF-8 bytes, across token boundaries), and the text ends before it.
    public var stopStrings: [String]
    /// The UTF-8 bytes a token stands for (for example `{ tokenizer.bytes(of: $0) }`): turns on
    /// text in ``DecoderEvent/tokens(_:text:)`` and stop strings. The decoder keeps the output's
    /// bytes and decodes only what each step adds, so text costs the same per token at any length.
    public var tokenBytes: (@Sendable (Token) -> [UInt8])?
    /// Checked before every step; returning true ends generation cleanly (for example on Ctrl-C).
    public var shouldStop: @Sendable () -> Bool = { false }
    /// How many leading prompt tokens the target session already holds, committed, from an
    /// earlier generation (a server's prompt cache): the decoder keeps them and evaluates only
    /// the rest of the prompt. The caller guarantees that the session's first tokens are these;
    /// the decoder still evaluates at least the last prompt token (its logits start decoding).
    /// The kernels are batch-invariant, so the kept entries equal a fresh prefill's bit for bit.
    public var cachedPromptTokens = 0
    /// Processors applied to the target's logits at every position before verification
    /// (penalties, biases, grammar masks); output follows the processed distribution.
    public var logitProcessors: [any LogitProcessor] = []
    /// When set, every emitted token carries the target's log-probabilities
    /// (``GeneratedToken/logprobs``) with this many most likely alternatives (0 = the token's
    /// own only). Costs one pass over the vocabulary per token.
    public var logprobs: Int?

    /// Options; the defaults generate 128 greedy tokens with a 16-node tree.
    public init(
        maxTokens: Int = 128, budget: TreeBudget = TreeBudget(), sampling: SamplingSettings = .greedy,
        stopTokens: Set<Token> = [], stopStrings: [String] = [], tokenBytes: (@Sendable (Token) -> [UInt8])? = nil
    ) {
        self.maxTokens = maxTokens
        self.budget = budget
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.stopStrings = stopStrings
        self.tokenBytes = tokenBytes
    }
}
