import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateGrammar

/// One validated generation request, from either endpoint.
public struct GenerationJob: Sendable {
    /// Which endpoint it came from (it decides the response's shape).
    public enum Endpoint: String, Sendable {
        case completions = "text_completion"
        case chat = "chat.completion"
        /// llama-server's `/infill` (fill-in-the-middle with its own response shape).
        case infill = "infill"
    }

    /// A fill-in-the-middle request: the text before and after the cursor, other files of the
    /// repository, and text the middle starts with.
    public struct Infill: Sendable {
        /// The text before the cursor.
        public var prefix: String
        /// The text after the cursor.
        public var suffix: String
        /// Other files of the repository, as context.
        public var files: [FillInTheMiddle.File]
        /// Text the middle starts with.
        public var middleStart: String
    }

    /// The endpoint the request came to.
    public var endpoint: Endpoint
    /// The prompt text (for chat, the conversation in the model's chat format, for display).
    public var prompt: String
    /// The conversation (chat only; empty for completions). Chat prompts are tokenized from
    /// these with ``ChatFormat/tokens(_:tokenizer:addGenerationPrompt:)``, so that control tokens
    /// come only from the format, never from a message's text.
    public var messages: [ChatMessage]
    /// Most tokens to generate; nil = as many as the context holds.
    public var maxTokens: Int?
    /// Temperature, top-p, top-k and seed of the target's sampling.
    public var sampling: SamplingSettings
    /// Texts that end the completion; the returned text stops before the first of them.
    public var stop: [String]
    /// Whether the response is streamed as server-sent events.
    public var stream: Bool
    /// Whether a streamed response ends with a chunk carrying `usage` (`stream_options`).
    public var includeUsage: Bool
    /// The proposers, tree and verifier to run.
    public var strategy: StrategyRequest
    /// Penalties, biases and filters of the target's scores, applied inside verification.
    public var logitProcessors: [any LogitProcessor] = []
    /// When set, the output is constrained to this JSON grammar (`response_format`).
    public var grammar: JSONGrammar?
    /// How many completions to generate (`n`): independent samples, choice `i` seeded with the
    /// request's seed + `i`, one after another over the prompt's cached KV entries.
    public var choices = 1
    /// The functions the model may (or must) call, for chat requests that offer them.
    public var tools: ToolRequest?
    /// When set, the answer carries each token's log-probability and this many alternatives.
    public var logprobs: Int?
    /// Set for fill-in-the-middle (`suffix` on completions, or `/infill`): the prompt is built
    /// with the model's FIM tokens instead of from ``prompt``.
    public var infill: Infill?
}
