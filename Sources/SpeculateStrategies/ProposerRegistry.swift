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
    /// Turns a model name or path into a local .gguf path (the CLI pulls catalog models here).
    public var resolveModel: @Sendable (String) async throws -> URL

    /// An environment for `target`. By default model names resolve through the local catalog
    /// cache without downloading.
    public init(targetName: String, targetModel: TransformerModel, targetTokenizer: Tokenizer, context: Int = 4096,
                draftLength: Int = 8, treeRequested: Bool = false, draftHead: Int? = nil, draftHeadCorpus: String? = nil, draftWeights: WeightPrecision = .q4K,
                draftStop: Float = defaultDraftStop, draftLookahead: Int = DraftModelProposer.defaultLookahead, threads: Int = ComputeThreads.count,
                autoDraft: String? = nil, resolveModel: @escaping @Sendable (String) async throws -> URL = { try ModelStore().resolve($0) }) {
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
        return PluginVocabulary(size: tokenizer.vocabularySize, tokenize: { tokenizer.encode($0) },
                                tokenBytes: { tokenizer.contains($0) ? tokenizer.bytes(of: $0) : nil })
    }
}

extension ProposerEnvironment {
    /// Which rows of a draft model's output head to compute: `tokens` (ranked ids) or `rows`
    /// (the first ids), or neither for the whole head.
    public func draftHeadChoice(tokenizer: Tokenizer, draftName: String) throws -> (rows: Int?, tokens: [TokenID]?) {
        if let rows = draftHead, rows < 0 {
            throw ProposerSpecError.badOptions(spec: "draft:\(draftName)", reason: "the draft head needs at least one row (or 0 for all); got \(rows)")
        }
        if draftHead == 0 { return (nil, nil) }
        let ranking = try draftHeadCorpus.map { try TokenFrequencyRanking.cached(corpus: URL(fileURLWithPath: $0), tokenizer: tokenizer, name: draftName) }
            ?? TokenFrequencyRanking.builtIn(for: tokenizer)
        guard let ranking else { return (draftHead, nil) }  // no ranking: the first ids, or all
        let rows = min(draftHead ?? Self.defaultDraftHead, tokenizer.vocabularySize)
        return rows >= tokenizer.vocabularySize ? (nil, nil) : (nil, Array(ranking.tokens.prefix(rows)))
    }
}

/// Builds one kind of proposer from the argument after `name:` in the `--proposer` syntax.
public struct ProposerFactory: Sendable {
    /// The kind, the part before the first colon (`ngram`, `draft`, `plugin`, ...).
    public var name: String
    /// How to write it, e.g. `draft:NAME-or-PATH`.
    public var usage: String
    /// One line on what it proposes.
    public var summary: String
    /// Builds a proposer; `argument` is everything after the first colon ("" when there is none).
    public var make: @Sendable (_ argument: String, _ environment: ProposerEnvironment) async throws -> any DraftProposer

    /// A factory.
    public init(name: String, usage: String, summary: String,
                make: @escaping @Sendable (_ argument: String, _ environment: ProposerEnvironment) async throws -> any DraftProposer) {
        self.name = name
        self.usage = usage
        self.summary = summary
        self.make = make
    }
}

/// Errors in proposer specifications.
public enum ProposerSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No factory of that name.
    case unknown(spec: String, suggestion: String?, known: [String])
    /// The kind needs an argument, e.g. `draft:` without a model.
    case missingArgument(usage: String)
    /// The options after the colon do not parse.
    case badOptions(spec: String, reason: String)

    public var description: String {
        switch self {
        case let .unknown(spec, suggestion, known):
            return "unknown proposer '\(spec)'." + (suggestion.map { " Did you mean '\($0)'?" } ?? "") + " Known: \(known.joined(separator: ", "))"
        case let .missingArgument(usage): return "this proposer needs an argument: \(usage)"
        case let .badOptions(spec, reason): return "proposer '\(spec)': \(reason)"
        }
    }
}

/// Maps proposer names to factories, so that a program built on Speculate exposes its own
/// proposers through the same `--proposer name:options` syntax as the `speculate` command.
///
/// ```swift
/// var registry = ProposerRegistry.standard
/// registry.register(ProposerFactory(name: "echo", usage: "echo", summary: "repeats the last token") { _, _ in EchoProposer() })
/// let proposers = try await registry.make(["echo", "ngram"], environment: environment)
/// ```
public struct ProposerRegistry: Sendable {
    /// The factories, in registration order (the order `speculate proposers` lists them).
    public private(set) var factories: [ProposerFactory] = []

    /// An empty registry.
    public init() {}

    /// Adds a factory, replacing one of the same name.
    public mutating func register(_ factory: ProposerFactory) {
        if let index = factories.firstIndex(where: { $0.name == factory.name }) { factories[index] = factory } else { factories.append(factory) }
    }

    /// The factory for a kind, if registered.
    public func factory(named name: String) -> ProposerFactory? { factories.first { $0.name == name } }

    /// Builds the proposers that `specs` name. Each spec may itself be a comma-separated list;
    /// `none` contributes nothing (plain decoding). When `auto` is among them, the other
    /// proposers become members of one `AutoProposer`, with n-gram lookup added if absent and
    /// the environment's ``ProposerEnvironment/autoDraft`` added when no model-based member is
    /// given (`auto:draft=none` leaves it out).
    public func make(_ specs: [String], environment: ProposerEnvironment) async throws -> [any DraftProposer] {
        var members: [any DraftProposer] = []
        var automatic = false, addsDraft = true
        for spec in split(specs) {
            let (kind, argument) = Self.parse(spec)
            if kind == "none" { continue }
            if kind == "auto" {
                switch argument {
                case "": break
                case "draft=none": addsDraft = false
                default:
                    throw ProposerSpecError.badOptions(spec: spec, reason: "auto's one option is draft=none (leave out the paired draft model); add members with more --proposer values")
                }
                automatic = true
                continue
            }
            guard let factory = factory(named: kind) else {
                let names = factories.map(\.name) + ["none", "auto"]
                let suggestion = names.min { editDistance($0, kind) < editDistance($1, kind) }
                throw ProposerSpecError.unknown(spec: spec, suggestion: suggestion, known: factories.map(\.usage) + ["none", "auto"])
            }
            members.append(try await factory.make(argument, environment))
        }
        guard automatic else { return members }
        if addsDraft, let draft = environment.autoDraft, let factory = factory(named: "draft"),
           !members.contains(where: { $0 is DraftModelProposer || $0 is RetokenizingProposer }) {
            members.append(try await factory.make(draft, environment))
        }
        if !members.contains(where: { $0 is NGramProposer }) { members.append(NGramProposer(maxN: 4, minN: 1, branches: 3)) }
        let costs = try VerificationCostCache().curve(for: environment.targetModel, name: environment.targetName, threads: environment.threads)
        return [AutoProposer(members: members, verificationCost: costs)]
    }

    /// Flattens comma-separated lists (`draft:X,ngram`). A piece that does not start with a
    /// known kind belongs to the previous spec's options, so `ngram:max=3,min=2` stays whole.
    public func split(_ specs: [String]) -> [String] {
        let kinds = Set(factories.map(\.name) + ["none", "auto"])
        var result: [String] = []
        for spec in specs {
            var current: [String] = []
            for piece in spec.split(separator: ",").map(String.init) {
                if let last = current.last, !kinds.contains(Self.parse(piece).kind) {
                    current[current.count - 1] = last + "," + piece
                } else {
                    current.append(piece)
                }
            }
            result += current
        }
        return result
    }

    /// Splits `kind:argument`.
    public static func parse(_ spec: String) -> (kind: String, argument: String) {
        guard let colon = spec.firstIndex(of: ":") else { return (spec, "") }
        return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
    }
}

extension ProposerRegistry {
    /// The built-in proposers: `ngram`, `draft`, `retok` and `plugin` (and `auto`, handled by ``make(_:environment:)``).
    public static let standard: ProposerRegistry = {
        var registry = ProposerRegistry()
        registry.register(ProposerFactory(
            name: "ngram", usage: "ngram[:max=4,min=1,branches=3,corpus=PATH]",
            summary: "lookup of the last min..max tokens in the prompt, the output so far and an optional corpus file; several continuations become branches (with --tree)") { argument, environment in
            try NGramOptions(argument, treeRequested: environment.treeRequested).proposer(tokenizer: environment.targetTokenizer)
        })
        registry.register(ProposerFactory(
            name: "draft", usage: "draft:NAME-or-PATH",
            summary: "a small model with the target's vocabulary; an adaptive chain of up to --draft-length tokens, or a tree with --tree") { argument, environment in
            guard !argument.isEmpty else { throw ProposerSpecError.missingArgument(usage: "draft:NAME-or-PATH") }
            let model = try TransformerModel(path: try await environment.resolveModel(argument).path,
                                             precision: environment.draftWeights)
            let tokenizer = try Tokenizer(gguf: model.file)
            try DraftModelProposer.checkCompatible(draft: tokenizer, draftName: argument,
                                                   target: environment.targetTokenizer, targetName: environment.targetName)
            let head = try environment.draftHeadChoice(tokenizer: tokenizer, draftName: argument)
            return try DraftModelProposer(name: "draft:\(argument)", model: model, context: environment.context,
                                          draftLength: environment.draftLength, pathThreshold: environment.draftStop,
                                          headRows: head.rows, headTokens: head.tokens, lookahead: environment.draftLookahead)
        })
        registry.register(ProposerFactory(
            name: "retok", usage: "retok:NAME-or-PATH",
            summary: "a small model of another tokenizer (e.g. retok:smollm2-135m-instruct for Qwen), drafting through text; greedy verification only") { argument, environment in
            guard !argument.isEmpty else { throw ProposerSpecError.missingArgument(usage: "retok:NAME-or-PATH") }
            let model = try TransformerModel(path: try await environment.resolveModel(argument).path,
                                             precision: environment.draftWeights)
            return try RetokenizingProposer(name: "retok:\(argument)", model: model, targetTokenizer: environment.targetTokenizer,
                                            context: environment.context, draftLength: environment.draftLength)
        })
        registry.register(ProposerFactory(
            name: "plugin", usage: "plugin:PATH-or-NAME[:OPTIONS]",
            summary: "a runtime-loaded plugin (a shared library with the C ABI of Plugins/ABI/include/speculate_plugin.h); see `speculate proposers`") { argument, environment in
            guard !argument.isEmpty else { throw ProposerSpecError.missingArgument(usage: "plugin:PATH-or-NAME[:OPTIONS]") }
            let (location, options) = PluginSearch.splitArgument(argument)
            let library = try PluginSearch().load(location)
            return try library.makeProposer(options: options, vocabulary: environment.pluginVocabulary)
        })
        return registry
    }()
}

/// The options of `ngram:...` (`max=`, `min=`, `branches=`, `corpus=`), validated.
public struct NGramOptions: Sendable {
    /// Longest and shortest suffix looked up, and continuations kept as branches.
    public var maxN = 4, minN = 1, branches = 1
    /// A text file whose tokens are searched too.
    public var corpus: String?

    /// Parses `argument` (the text after `ngram:`); with `treeRequested` branches default to 3.
    public init(_ argument: String, treeRequested: Bool) throws {
        branches = treeRequested ? 3 : 1
        for item in argument.split(separator: ",").map(String.init) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "'\(item)' is not key=value") }
            switch parts[0] {
            case "max", "min", "branches":
                guard let value = Int(parts[1]), (1...64).contains(value) else {
                    throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "\(parts[0]) must be a whole number from 1 to 64")
                }
                if parts[0] == "max" { maxN = value } else if parts[0] == "min" { minN = value } else { branches = value }
            case "corpus": corpus = parts[1]
            default: throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "unknown option '\(parts[0])' (max, min, branches, corpus)")
            }
        }
        guard minN <= maxN else { throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "min must not exceed max") }
    }

    func proposer(tokenizer: Tokenizer) throws -> NGramProposer {
        var corpusTokens: [Token]?
        if let corpus {
            guard let data = FileManager.default.contents(atPath: corpus) else {
                throw ProposerSpecError.badOptions(spec: "ngram", reason: "cannot read corpus file '\(corpus)'")
            }
            corpusTokens = tokenizer.encode(String(decoding: data, as: UTF8.self))
        }
        return NGramProposer(maxN: maxN, minN: minN, branches: branches, corpus: corpusTokens)
    }
}
