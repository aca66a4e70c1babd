#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The distribution a drafted token was sampled from, kept for lossless stochastic verification.
public enum DraftDistribution: Sendable, Equatable {
    /// The token was chosen deterministically (n-gram lookup, greedy drafting): q is one-hot.
    case deterministic
    /// The full distribution over the vocabulary the token was sampled from.
    case sampled([Float])

    /// q(token).
    public func probability(of token: Token) -> Float {
        switch self {
        case .deterministic: return 1
        case .sampled(let q): return Int(token) < q.count && token >= 0 ? q[Int(token)] : 0
        }
    }
}

/// One proposal: a small tree of drafted tokens. Nodes with parent -1 continue the context.
public struct DraftCandidate: Sendable, Equatable {
    /// Drafted tokens.
    public var tokens: [Token]
    /// Parent of each node within this candidate (an earlier index), or -1.
    public var parents: [Int]
    /// For each node, the distribution it was drawn from (given its parent).
    public var distributions: [DraftDistribution]
    /// For each node, the proposer's confidence (for example the path probability); higher is better.
    public var scores: [Float]
    /// Who drafted it, when a proposer passes on drafts made by others (``auto`` sets its
    /// member's name); nil means the proposer that returned it. Reported with each accepted
    /// token (``GeneratedToken/drafters``); never affects verification.
    public var origin: String?

    /// A candidate tree.
    public init(
        tokens: [Token], parents: [Int], distributions: [DraftDistribution], scores: [Float], origin: String? = nil
    ) {
        self.tokens = tokens
        self.parents = parents
        self.distributions = distributions
        self.scores = scores
        self.origin = origin
    }

    /// A chain of deterministic tokens with decreasing scores.
    public static func chain(_ tokens: [Token], score: Float = 1) -> DraftCandidate {
        DraftCandidate(
            tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 },
            distributions: Array(repeating: .deterministic, count: tokens.count),
            scores: (0..<tokens.count).map { score * powf(0.9, Float($0)) })
    }

    /// Whether the candidate is well formed: matching lengths and parents pointing backwards.
    public var isWellFormed: Bool {
        tokens.count == parents.count && tokens.count == distributions.count && tokens.count == scores.count
            && parents.enumerated().allSatisfy { $0.element >= -1 && $0.element < $0.offset }
    }
}

/// What a proposer is told when asked for drafts.
public struct DraftContext: Sendable {
    /// Every token so far: prompt and generated, including the newest one (not yet evaluated by the target).
    public var tokens: [Token]
    /// How large a tree the proposer may return.
    public var budget: TreeBudget
    /// The sampling settings the target uses (drafts must use the same shaping).
    public var sampling: SamplingSettings
    /// How many more tokens fit in the target's context after the newest one.
    public var remainingContext: Int
    /// The decoding step (0-based).
    public var step: Int
    /// How many runner-up tokens per drafted position a proposer that drafts a greedy chain may
    /// add as leaves beside the token it chose (0: none). They never extend the chain; whoever
    /// asked prices them (`auto` asks its draft models for one: where the draft's first choice
    /// is wrong, its second is often the target's, and a leaf costs no drafting).
    public var runnersUp: Int
    /// Tokens other requests are expected to put into the same target forward (0 when the
    /// target serves this generation alone): a policy that prices tree nodes can price them at
    /// their marginal cost on the shared forward (`serve --parallel`).
    public var concurrentTokens: Int
    /// Of `concurrentTokens`, the others' useful work: one token per request decoding, the chunk
    /// of a prompt being read (their draft nodes not counted): what a shared forward's time is
    /// worth without this request's tree.
    public var concurrentPlainTokens: Int

    /// A context.
    public init(
        tokens: [Token], budget: TreeBudget, sampling: SamplingSettings, remainingContext: Int, step: Int,
        runnersUp: Int = 0, concurrentTokens: Int = 0, concurrentPlainTokens: Int = 0
    ) {
        self.tokens = tokens
        self.budget = budget
        self.sampling = sampling
        self.remainingContext = remainingContext
        self.step = step
        self.runnersUp = runnersUp
        self.concurrentTokens = concurrentTokens
        self.concurrentPlainTokens = concurrentPlainTokens
    }
}

/// A source of draft tokens. Conformances are plain types a user can write; the decoder asks
/// each proposer for candidates every step and tells it afterwards what was accepted.
public protocol DraftProposer: Sendable {
    /// A short name for statistics and display.
    var name: String { get }
    /// Candidate continuations of `context.tokens`.
    func propose(_ context: DraftContext) async throws -> [DraftCandidate]
    /// The tokens appended to the context this step (accepted drafts plus the target's own token),
    /// so that the proposer can keep its state in step.
    func observe(accepted: [Token], context: [Token]) async
    /// Called once per generation with the prompt, while the target reads it, so that a
    /// proposer with a model of its own reads the prompt as part of prompt processing (counted
    /// in ``RunStatistics/prefillSeconds``) rather than inside its first draft.
    func prepare(prompt: [Token]) async throws
    /// The same, told how many tokens other requests put into each target forward (0 alone): a
    /// composite that would not ask a costly member under that load may leave its prompt unread
    /// (the member catches up when first asked).
    func prepare(prompt: [Token], concurrentTokens: Int) async throws
}

/// A proposer that ends its own drafts where it becomes unsure (a draft model's confidence stop),
/// so that asking it for more depth costs drafting only where deep tokens are likely to be
/// accepted. `auto` asks such a member, while it uses it, for the full depth the budget allows
/// and leaves the length to it; other costly members get the depth `auto`'s statistics call best.
///
/// Its own stop applies to its chain: the first child at every level of each draft. Runner-up
/// leaves it adds when asked (``DraftContext/runnersUp``) come after the chain's nodes and are
/// for the asker to price.
public protocol SelfLimitingProposer: DraftProposer {
    /// Whether drafts currently end on the proposer's own confidence (false when that stop is off).
    var stopsWhenUnsure: Bool { get }
}

extension DraftProposer {
    /// Default: nothing to synchronize.
    public func observe(accepted: [Token], context: [Token]) async {}
    /// Default: nothing to read ahead.
    public func prepare(prompt: [Token]) async throws {}
    /// Default: the prompt is read whatever the load.
    public func prepare(prompt: [Token], concurrentTokens: Int) async throws { try await prepare(prompt: prompt) }
}
