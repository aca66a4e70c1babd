import Foundation
import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateProposers
import SpeculateRuntime

/// Builds one kind of proposer from the argument after `name:` in the `--proposer` syntax.
public struct ProposerFactory: Sendable {
    /// The kind, the part before the first colon (`ngram`, `draft`, `plugin`, ...).
    public var name: String
    /// How to write it, e.g. `draft:NAME-or-PATH`.
    public var usage: String
    /// One line on what it proposes.
    public var summary: String
    /// Builds a proposer; `argument` is everything after the first colon ("" when there is none).
    public var make:
        @Sendable (_ argument: String, _ environment: ProposerEnvironment) async throws -> any DraftProposer

    /// A factory.
    public init(
        name: String, usage: String, summary: String,
        make:
            @escaping @Sendable (_ argument: String, _ environment: ProposerEnvironment) async throws ->
            any DraftProposer
    ) {
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
        case .unknown(let spec, let suggestion, let known):
            return "unknown proposer '\(spec)'." + (suggestion.map { " Did you mean '\($0)'?" } ?? "")
                + " Known: \(known.joined(separator: ", "))"
        case .missingArgument(let usage): return "this proposer needs an argument: \(usage)"
        case .badOptions(let spec, let reason): return "proposer '\(spec)': \(reason)"
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
        if let index = factories.firstIndex(where: { $0.name == factory.name }) {
            factories[index] = factory
        } else {
            factories.append(factory)
        }
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
        var automatic = false
        var addsDraft = true
        for spec in split(specs) {
            let (kind, argument) = Self.parse(spec)
            if kind == "none" { continue }
            if kind == "auto" {
                switch argument {
                case "": break
                case "draft=none": addsDraft = false
                default:
                    throw ProposerSpecError.badOptions(
                        spec: spec,
                        reason:
                            "auto's one option is draft=none (leave out the paired draft model); add members with more --proposer values"
                    )
                }
                automatic = true
                continue
            }
            guard let factory = factory(named: kind) else {
                let names = factories.map(\.name) + ["none", "auto"]
                let suggestion = names.min { editDistance($0, kind) < editDistance($1, kind) }
                throw ProposerSpecError.unknown(
                    spec: spec, suggestion: suggestion, known: factories.map(\.usage) + ["none", "auto"])
            }
            members.append(try await factory.make(argument, environment))
        }
        guard automatic else { return members }
        if addsDraft, let draft = environment.autoDraft, let factory = factory(named: "draft"),
            !members.contains(where: { $0 is DraftModelProposer || $0 is RetokenizingProposer })
        {
            members.append(try await factory.make(draft, environment))
        }
        if !members.contains(where: { $0 is NGramProposer }) {
            members.append(NGramProposer(maxN: 4, minN: 1, branches: 3))
        }
        let costs = try VerificationCostCache().curve(
            for: environment.targetModel, name: environment.targetName, threads: environment.threads)
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
        registry.register(
            ProposerFactory(
                name: "ngram", usage: "ngram[:max=4,min=1,branches=3,corpus=PATH]",
                summary:
                    "lookup of the last min..max tokens in the prompt, the output so far and an optional corpus file; several continuations become branches (with --tree)"
            ) { argument, environment in
                try NGramOptions(argument, treeRequested: environment.treeRequested).proposer(
                    tokenizer: environment.targetTokenizer)
            })
        registry.register(
            ProposerFactory(
                name: "draft", usage: "draft:NAME-or-PATH",
                summary:
                    "a small model with the target's vocabulary; an adaptive chain of up to --draft-length tokens, or a tree with --tree"
            ) { argument, environment in
                guard !argument.isEmpty else { throw ProposerSpecError.missingArgument(usage: "draft:NAME-or-PATH") }
                let model = try LoadedModels.model(
                    path: try await environment.resolveModel(argument).path,
                    precision: environment.draftWeights)
                let tokenizer = try Tokenizer(gguf: model.file)
                try DraftModelProposer.checkCompatible(
                    draft: tokenizer, draftName: argument,
                    target: environment.targetTokenizer, targetName: environment.targetName)
                let head = try environment.draftHeadChoice(tokenizer: tokenizer, draftName: argument)
                return try DraftModelProposer(
                    name: "draft:\(argument)", model: model, context: environment.context,
                    draftLength: environment.draftLength, pathThreshold: environment.draftStop,
                    headRows: head.rows, headTokens: head.tokens, lookahead: environment.draftLookahead,
                    lane: environment.draftLane)
            })
        registry.register(
            ProposerFactory(
                name: "retok", usage: "retok:NAME-or-PATH",
                summary:
                    "a small model of another tokenizer (e.g. retok:smollm2-135m-instruct for Qwen), drafting through text; greedy verification only"
            ) { argument, environment in
                guard !argument.isEmpty else { throw ProposerSpecError.missingArgument(usage: "retok:NAME-or-PATH") }
                let model = try LoadedModels.model(
                    path: try await environment.resolveModel(argument).path,
                    precision: environment.draftWeights)
                return try RetokenizingProposer(
                    name: "retok:\(argument)", model: model, targetTokenizer: environment.targetTokenizer,
                    context: environment.context, draftLength: environment.draftLength)
            })
        registry.register(
            ProposerFactory(
                name: "plugin", usage: "plugin:PATH-or-NAME[:OPTIONS]",
                summary:
                    "a runtime-loaded plugin (a shared library with the C ABI of Plugins/ABI/include/speculate_plugin.h), run in a process of its own: a crash or hang costs its drafts, never the run; see `speculate proposers`"
            ) { argument, environment in
                guard !argument.isEmpty else {
                    throw ProposerSpecError.missingArgument(usage: "plugin:PATH-or-NAME[:OPTIONS]")
                }
                let (location, options) = PluginSearch.splitArgument(argument)
                return try HostedPluginProposer(
                    path: try PluginSearch().locate(location), options: options,
                    vocabulary: environment.pluginVocabulary)
            })
        registry.register(
            ProposerFactory(
                name: "plugin-inprocess", usage: "plugin-inprocess:PATH-or-NAME[:OPTIONS]",
                summary:
                    "the same plugin loaded into this process (trusted plugins, A/B timing): a crash takes the process down"
            ) { argument, environment in
                guard !argument.isEmpty else {
                    throw ProposerSpecError.missingArgument(usage: "plugin-inprocess:PATH-or-NAME[:OPTIONS]")
                }
                let (location, options) = PluginSearch.splitArgument(argument)
                let library = try PluginSearch().load(location)
                return try library.makeProposer(options: options, vocabulary: environment.pluginVocabulary)
            })
        registry.register(
            ProposerFactory(
                name: "ffi", usage: "ffi:LIBRARY:SYMBOL[:SIGNATURE]",
                summary:
                    "a C function that predicts tokens, called through libffi in a plugin host process; SIGNATURE is its C prototype with parameters named context, context_length, draft, capacity [, draft_length], e.g. 'int32_t (const int32_t *context, int64_t context_length, int32_t *draft, int32_t capacity)', or a line 'SYMBOL: SIGNATURE' in LIBRARY.ffi"
            ) { argument, environment in
                let signature = try ForeignFunctionSignature.parse(argument: argument)
                return try HostedPluginProposer(
                    foreignFunction: signature, vocabulary: environment.pluginVocabulary)
            })
        registry.register(
            ProposerFactory(
                name: "ffi-inprocess", usage: "ffi-inprocess:LIBRARY:SYMBOL[:SIGNATURE]",
                summary: "the same C function called in this process (a crash takes the process down)"
            ) { argument, environment in
                let signature = try ForeignFunctionSignature.parse(argument: argument)
                return try PluginLibrary.foreignFunctionAdapter().makeProposer(
                    options: signature.adapterOptions, vocabulary: environment.pluginVocabulary,
                    name: "ffi:\(signature.symbol)")
            })
        return registry
    }()
}
