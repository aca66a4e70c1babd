import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime

/// What to generate after: raw text, chat messages (in the model's chat format), or tokens.
public enum Prompt: Sendable {
    /// Raw text, encoded as is.
    case text(String)
    /// Chat messages, in the model's chat format with the assistant's turn opened.
    case chat([ChatMessage])
    /// Tokens of the target's vocabulary.
    case tokens([Token])
}

/// How much to generate, how to sample, and when to stop.
public struct GenerateParameters: Sendable {
    /// Most tokens to generate.
    public var maxTokens: Int
    /// Target sampling (greedy by default).
    public var sampling: SamplingSettings
    /// Texts that end generation; the text ends before the first one (OpenAI's semantics).
    public var stop: [String]
    /// Keep generating past the model's end-of-sequence tokens.
    public var ignoreEndOfSequence: Bool
    /// Processors of the target's logits (penalties, biases, grammar masks), applied at every
    /// position before verification.
    public var logitProcessors: [any LogitProcessor]
    /// When set, every emitted token carries the target's log-probabilities with this many
    /// alternatives (``GeneratedToken/logprobs``).
    public var logprobs: Int?
    /// Tokens that end generation besides the model's own end tokens (for example the end
    /// tokens of fill-in-the-middle, ``FillInTheMiddle/endTokens``).
    public var stopTokens: Set<Token> = []
    /// Leading prompt tokens the generator's cache already holds from its previous generation
    /// (the caller checks they are equal; see ``GenerationOptions/cachedPromptTokens``).
    public var cachedPromptTokens: Int
    /// Checked before every step; true ends generation cleanly.
    public var shouldStop: @Sendable () -> Bool

    /// Parameters; the defaults generate 128 greedy tokens.
    public init(
        maxTokens: Int = 128, sampling: SamplingSettings = .greedy, stop: [String] = [],
        ignoreEndOfSequence: Bool = false,
        logitProcessors: [any LogitProcessor] = [], logprobs: Int? = nil, cachedPromptTokens: Int = 0,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.ignoreEndOfSequence = ignoreEndOfSequence
        self.logitProcessors = logitProcessors
        self.logprobs = logprobs
        self.cachedPromptTokens = cachedPromptTokens
        self.shouldStop = shouldStop
    }
}

/// One strategy over one ``SpeculativeModel``, with a KV cache of its own: generations run one
/// at a time and stream ``DecoderEvent``s (text with OpenAI stop semantics, statistics).
public struct SpeculativeGenerator: Sendable {
    /// The target.
    public let model: SpeculativeModel
    /// The strategy it runs.
    public let strategy: Strategy
    /// The strategy's proposers, built for this target.
    public let proposers: [any DraftProposer]
    /// The generator's KV cache.
    public let session: InferenceSession
    /// What the decoder evaluates trees through: `session` itself, or a view of it that shares
    /// forwards with other sessions (``BatchedSession``).
    public let target: any ModelSession

    /// Loads `target` and builds `strategy` on it, in one call.
    public static func load(
        _ target: String, strategy: Strategy = Strategy(), context: Int = 4096,
        progress: @escaping @Sendable (PullEvent) -> Void = { _ in }
    ) async throws -> SpeculativeGenerator {
        let model = try await SpeculativeModel.load(target, context: context, progress: progress)
        return try await model.generator(strategy, progress: progress)
    }

    /// A generator of `proposers` on `session` (a session of `model`'s weights), evaluating
    /// through `target` when given (a ``BatchedSession`` of `session`).
    public init(
        model: SpeculativeModel, strategy: Strategy, proposers: [any DraftProposer], session: InferenceSession,
        target: (any ModelSession)? = nil
    ) {
        self.model = model
        self.strategy = strategy
        self.proposers = proposers
        self.session = session
        self.target = target ?? session
    }

    /// The decoder for sampling at `temperature`.
    public func decoder(temperature: Float) -> SpeculativeDecoder {
        SpeculativeDecoder(target: target, proposers: proposers, verifier: strategy.verifier(temperature: temperature))
    }

    /// The decoder's options for `parameters`: the strategy's tree, the model's stop tokens and
    /// text without control tokens.
    public func options(_ parameters: GenerateParameters) -> GenerationOptions {
        let tokenizer = model.tokenizer
        var options = GenerationOptions(
            maxTokens: parameters.maxTokens, budget: strategy.budget, sampling: parameters.sampling,
            stopTokens: parameters.ignoreEndOfSequence ? [] : tokenizer.stopIDs.union(parameters.stopTokens),
            stopStrings: parameters.stop,
            tokenBytes: { tokenizer.bytes(of: $0, skipControl: true) })
        options.logitProcessors = parameters.logitProcessors
        options.logprobs = parameters.logprobs
        options.cachedPromptTokens = parameters.cachedPromptTokens
        options.shouldStop = parameters.shouldStop
        return options
    }

    /// Generates after `prompt`, streaming events; ending the iteration stops within a step.
    public func generate(_ prompt: Prompt, parameters: GenerateParameters = GenerateParameters())
        -> AsyncThrowingStream<DecoderEvent, any Error>
    {
        let tokens: [Token]
        do { tokens = try model.tokens(of: prompt) } catch { return AsyncThrowingStream { $0.finish(throwing: error) } }
        return decoder(temperature: parameters.sampling.temperature).generate(
            prompt: tokens, options: options(parameters))
    }

    /// Generates in the calling task (see ``SpeculativeDecoder/generate(prompt:options:onEvent:)``):
    /// when it returns, nothing touches the generator's cache, so the next generation can start.
    public func generate(
        _ prompt: Prompt, parameters: GenerateParameters = GenerateParameters(),
        onEvent: (DecoderEvent) -> Void
    ) async throws {
        try await decoder(temperature: parameters.sampling.temperature)
            .generate(prompt: try model.tokens(of: prompt), options: options(parameters), onEvent: onEvent)
    }
}
