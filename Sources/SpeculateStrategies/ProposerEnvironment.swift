import Foundation
import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateProposers
import SpeculateRuntime

/// What a proposer factory may use to build a proposer for one target model.
public struct ProposerEnvironment: Sendable {
    /// The target's display name (catalog name or path), for error messages.
    public var targetName: String
    /// The target model (for cost probes).
    public var targetModel: TransformerModel
    /// The target's tokenizer (drafts must speak its vocabulary).
    public var targetTokenizer: Tokenizer
    /// Context tokens for proposers that keep their own KV cache.
    public var context: Int
    /// Longest draft for chain proposers.
    public var draftLength: Int
    /// Whether the user asked for a tree (proposers then offer several branches).
    public var treeRequested: Bool
    /// Output-head rows draft models compute (FR-Spec style reduced head): nil for the default
    /// (``defaultDraftHead`` ranked rows when a ranking is at hand, else all), 0 for all, or N.
    public var draftHead: Int?
    /// A corpus (file or directory) whose token counts rank the `draftHead` rows (FR-Spec); nil
    /// uses the built-in ranking for the draft's vocabulary if there is one
    /// (``TokenFrequencyRanking/builtIn(for:)``), else the first ids.
    public var draftHeadCorpus: String?
    /// The rows a draft's head keeps by default when a frequency ranking of its vocabulary is at
    /// hand: chosen by measured acceptance against drafting cost (Docs/Benchmarks.md, draft head size).
    public static let defaultDraftHead = 32768
    /// How draft models keep their weights: requantized to 4.5 bits per weight by default
    /// (faster drafting, same output), or ``WeightPrecision/file``.
    public var draftWeights: WeightPrecision
    /// Draft chains stop when the draft's probability of the whole chain falls below this.
    public var draftStop: Float
    /// The default `draftStop`: the best of 0.4 / 0.6 / fixed depths 3–4 / none on HumanEval
    /// (Zen 4 host, `Docs/Benchmarks.md`), where a drafted 0.5B token costs ~0.4 target steps.
    public static let defaultDraftStop: Float = 0.6
    /// Tokens guessed by n-gram lookup and evaluated with each draft-model forward (staged
    /// speculation: the draft checks them for free and skips a forward per guess it agrees
    /// with); 0 turns it off. See ``DraftModelProposer/lookahead``.
    public var draftLookahead: Int
    /// Compute threads the runtime uses (part of the cost-probe cache key).
    public var threads: Int
    /// A draft model (`draft:` argument: catalog name or path) that `auto` adds as a member when
    /// the specs give it no model-based member (`draft:` or `retok:`) and do not say
    /// `auto:draft=none`; nil adds none. The command line sets it to the target's catalog pairing
    /// (``CatalogModel/pairedDraft``), so that `auto` alone can use the draft when it pays.
    public var autoDraft: String?
    /// Where draft models' forwards are shared with other decoding loops' (a server slot's
    /// lane); nil drafts alone.
    public var draftLane: DraftLane?
    /// Turns a model name or path into a local .gguf path (the CLI pulls catalog models here).
    public var resolveModel: @Sendable (String) async throws -> URL

    /// An environment for `target`. By default model names resolve through the local catalog
    /// cache without downloading.
    public init(
        targetName: String, targetModel: TransformerModel, targetTokenizer: Tokenizer, context: Int = 4096,
        draftLength: Int = 8, treeRequested: Bool = false, draftHead: Int? = nil, draftHeadCorpus: String? = nil,
        draftWeights: WeightPrecision = .q4K,
        draftStop: Float = defaultDraftStop, draftLookahead: Int = DraftModelProposer.defaultLookahead,
        threads: Int = ComputeThreads.count,
        autoDraft: String? = nil,
        resolveModel: @escaping @Sendable (String) async throws -> URL = { try ModelStore().resolve($0) }
    ) {
        self.targetName = targetName
        self.targetModel = targetModel
        self.targetTokenizer = targetTokenizer
        self.context = context
        self.draftLength = draftLength
        self.treeRequested = treeRequested
        self.draftHead = draftHead
        self.draftHeadCorpus = draftHeadCorpus
        self.draftWeights = draftWeights
        self.draftStop = draftStop
        self.draftLookahead = draftLookahead
        self.threads = threads
        self.autoDraft = autoDraft
        self.resolveModel = resolveModel
    }

    /// The target's vocabulary as plugins see it.
    public var pluginVocabulary: PluginVocabulary {
        let tokenizer = targetTokenizer
        return PluginVocabulary(
            size: tokenizer.vocabularySize, tokenize: { tokenizer.encode($0) },
            tokenBytes: { tokenizer.contains($0) ? tokenizer.bytes(of: $0) : nil })
    }
}

extension ProposerEnvironment {
    /// Which rows of a draft model's output head to compute: `tokens` (ranked ids) or `rows`
    /// (the first ids), or neither for the whole head.
    public func draftHeadChoice(tokenizer: Tokenizer, draftName: String) throws -> (rows: Int?, tokens: [TokenID]?) {
        if let rows = draftHead, rows < 0 {
            throw ProposerSpecError.badOptions(
                spec: "draft:\(draftName)", reason: "the draft head needs at least one row (or 0 for all); got \(rows)")
        }
        if draftHead == 0 { return (nil, nil) }
        let ranking =
            try draftHeadCorpus.map {
                try TokenFrequencyRanking.cached(
                    corpus: URL(fileURLWithPath: $0), tokenizer: tokenizer, name: draftName)
            }
            ?? TokenFrequencyRanking.builtIn(for: tokenizer)
        guard let ranking else { return (draftHead, nil) }  // no ranking: the first ids, or all
        let rows = min(draftHead ?? Self.defaultDraftHead, tokenizer.vocabularySize)
        return rows >= tokenizer.vocabularySize ? (nil, nil) : (nil, Array(ranking.tokens.prefix(rows)))
    }
}
