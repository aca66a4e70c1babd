import SpeculateCore
import SpeculateProposers
import SpeculateRuntime
import SpeculateStrategies

/// How a draft model drafts: the settings every `draft:`, `retok:` and `auto` member shares.
public struct DraftSettings: Sendable, Equatable {
    /// Output-head rows a draft model scores: nil for the default (the ranked 32768 where a
    /// ranking of its vocabulary exists, else all), 0 for all, or N.
    public var headRows: Int?
    /// A text file or directory whose token counts rank the head's rows instead of the built-in
    /// ranking.
    public var headCorpus: String?
    /// The draft's weights: requantized at load to 4.5 bits (faster drafting, output unchanged)
    /// or as stored.
    public var weights: WeightPrecision
    /// A chain stops when its probability falls below this (0: only confidence and depth stop it).
    public var stop: Float
    /// Tokens guessed by n-gram lookup and evaluated with each draft forward (0 = off).
    public var lookahead: Int

    /// Settings; the defaults are the command line's.
    public init(
        headRows: Int? = nil, headCorpus: String? = nil, weights: WeightPrecision = .q4K,
        stop: Float = ProposerEnvironment.defaultDraftStop, lookahead: Int = DraftModelProposer.defaultLookahead
    ) {
        self.headRows = headRows
        self.headCorpus = headCorpus
        self.weights = weights
        self.stop = stop
        self.lookahead = lookahead
    }
}

/// A decoding strategy: which proposers draft (the same spec strings as `--proposer`), the tree
/// they may fill, how it is verified, and how draft models draft.
public struct Strategy: Sendable, Equatable {
    /// Proposer specs (`none`, `auto`, `ngram`, `draft:NAME`, `retok:NAME`, `plugin:PATH`, ...);
    /// empty is plain decoding on the same runtime.
    public var proposers: [String]
    /// Limits of the merged tree.
    public var budget: TreeBudget
    /// The verifier; nil chooses by temperature (greedy at 0, stochastic otherwise).
    public var verification: VerificationMethod?
    /// Draft model settings.
    public var draft: DraftSettings

    /// A strategy; the defaults are plain decoding with a 16-node, 8-deep budget.
    public init(
        proposers: [String] = [], budget: TreeBudget = TreeBudget(), verification: VerificationMethod? = nil,
        draft: DraftSettings = DraftSettings()
    ) {
        self.proposers = proposers.filter { $0 != "none" }
        self.budget = budget
        self.verification = verification
        self.draft = draft
    }

    /// The verifier for sampling at `temperature`.
    public func verifier(temperature: Float) -> any Verifier {
        (verification ?? .named(nil, temperature: temperature) ?? .greedy).verifier
    }
}
