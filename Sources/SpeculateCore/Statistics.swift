/// Where a generated token came from.
public enum TokenSource: Sendable, Equatable {
    /// Drafted by these proposers (indices into the decoder's list) and accepted by the target.
    case drafted(by: [Int])
    /// Chosen by the target itself (the token after the accepted branch).
    case target
}

/// A token produced by the decoder.
public struct GeneratedToken: Sendable, Equatable {
    /// The token.
    public let token: Token
    /// Its provenance.
    public let source: TokenSource
    /// Names of whoever drafted it, in the order they offered it: the proposers' names, or for a
    /// proposer that passes on others' drafts (`auto`) the member's. Empty for target tokens.
    public let drafters: [String]
    /// The target's log-probabilities there, when ``GenerationOptions/logprobs`` asks for them.
    public internal(set) var logprobs: TokenLogprobs?

    init(token: Token, source: TokenSource, drafters: [String] = [], logprobs: TokenLogprobs? = nil) {
        self.token = token
        self.source = source
        self.drafters = drafters
        self.logprobs = logprobs
    }
}

/// Figures of one decoding step (one target forward).
public struct StepStatistics: Sendable, Equatable {
    /// Drafted nodes in the merged tree.
    public var treeSize: Int
    /// Drafted tokens the target accepted.
    public var acceptedLength: Int
    /// Seconds spent asking proposers and merging.
    public var proposeSeconds: Double
    /// Seconds spent in the target forward and verification.
    public var verifySeconds: Double
}

/// Running totals of one proposer.
public struct ProposerStatistics: Sendable, Equatable {
    /// The proposer's name.
    public var name: String
    /// Nodes of the merged tree it drafted.
    public var drafted = 0
    /// Of those, accepted by the target.
    public var accepted = 0
    /// Steps its proposal failed or was malformed (and was skipped).
    public var failures = 0

    /// accepted / drafted.
    public var acceptanceRate: Double { drafted == 0 ? 0 : Double(accepted) / Double(drafted) }
}

/// Why generation ended.
public enum StopReason: String, Sendable, Equatable {
    case endOfSequence = "end of sequence"
    case maxTokens = "max tokens"
    case stopString = "stop string"
    case contextFull = "context full"
    case cancelled
}

/// Figures of a whole run.
public struct RunStatistics: Sendable, Equatable {
    /// Tokens generated.
    public var generatedTokens = 0
    /// Wall-clock seconds of the decoding loop (prefill excluded).
    public var decodeSeconds = 0.0
    /// Seconds spent on the prompt.
    public var prefillSeconds = 0.0
    /// Leading prompt tokens reused from the session instead of evaluated
    /// (``GenerationOptions/cachedPromptTokens``).
    public var cachedPromptTokens = 0
    /// Target forwards during decoding.
    public var targetForwards = 0
    /// Drafted tokens accepted, all proposers.
    public var acceptedDrafts = 0
    /// Seconds proposing and merging.
    public var proposeSeconds = 0.0
    /// Seconds in target forwards and verification.
    public var verifySeconds = 0.0
    /// Per proposer.
    public var proposers: [ProposerStatistics] = []
    /// Offered and accepted tree nodes per depth (index 0 = depth 1).
    public var offeredByDepth: [Int] = []
    /// Accepted per depth.
    public var acceptedByDepth: [Int] = []
    /// Why it stopped.
    public var stopReason: StopReason = .maxTokens
    /// Problems with proposers that were skipped, in order.
    public var proposerErrors: [String] = []

    /// Empty statistics.
    public init() {}

    /// Generated tokens per second of decoding.
    public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(generatedTokens) / decodeSeconds : 0 }
    /// Tokens gained per target forward (accepted drafts plus the target's own token).
    public var meanAcceptedPerForward: Double {
        targetForwards == 0 ? 0 : Double(acceptedDrafts + targetForwards) / Double(targetForwards)
    }
    /// Acceptance rate at each depth.
    public var acceptanceByDepth: [Double] {
        zip(offeredByDepth, acceptedByDepth).map { $0 == 0 ? 0 : Double($1) / Double($0) }
    }
}
