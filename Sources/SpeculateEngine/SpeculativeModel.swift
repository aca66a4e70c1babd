import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculateGrammar
import SpeculateRuntime
import SpeculateStrategies

/// A target model loaded once (weights mapped, tokenizer read), from which generators for any
/// number of strategies are made; each generator has a KV cache of its own.
///
/// ```swift
/// let model = try await SpeculativeModel.load("qwen2.5-coder-1.5b-instruct")
/// let generator = try await model.generator(Strategy(proposers: ["auto"]))
/// for try await event in generator.generate(.text("def fibonacci(n):")) { ... }
/// ```
public final class SpeculativeModel: Sendable {
    /// The catalog name or path the model was loaded from.
    public let name: String
    /// The target's weights.
    public let model: TransformerModel
    /// The target's tokenizer.
    public let tokenizer: Tokenizer
    /// Tokens of context each generator's KV cache holds.
    public let context: Int
    /// Where catalog models (the target and draft models) are found and downloaded to.
    public let store: ModelStore
    /// The proposer kinds strategies may name.
    public let registry: ProposerRegistry
    /// The vocabulary arranged for grammar masks (``grammarVocabulary()``).
    let grammarVocabularyCache = OnceCache<GrammarVocabulary>()

    /// Loads `target` (a catalog name, downloaded when missing and `pull` allows, or a `.gguf`
    /// path), reporting downloads to `progress`.
    public static func load(
        _ target: String, context: Int = 4096, weights: WeightPrecision = .file, store: ModelStore = ModelStore(),
        registry: ProposerRegistry = .standard, pull: Bool = true,
        progress: @escaping @Sendable (PullEvent) -> Void = { _ in }
    ) async throws -> SpeculativeModel {
        let url = pull ? try await store.resolveOrPull(target, progress: progress) : try store.resolve(target)
        let model = try TransformerModel(path: url.path, precision: weights)
        return SpeculativeModel(
            name: target, model: model, tokenizer: try Tokenizer(gguf: model.file), context: context, store: store,
            registry: registry)
    }

    /// A model already loaded.
    public init(
        name: String, model: TransformerModel, tokenizer: Tokenizer, context: Int = 4096,
        store: ModelStore = ModelStore(),
        registry: ProposerRegistry = .standard
    ) {
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.context = context
        self.store = store
        self.registry = registry
    }

    /// The proposers of `strategy` for this target. Models they name are downloaded when
    /// `pullMissing` allows (a server does not download on request: then only models already in
    /// the cache resolve, and `auto` gets the paired draft only when it is there). Draft models
    /// built with a `draftLane` share their forwards with the lane's other loops.
    public func proposers(
        for strategy: Strategy, pullMissing: Bool = true, draftLane: DraftLane? = nil,
        progress: @escaping @Sendable (PullEvent) -> Void = { _ in }
    ) async throws -> [any DraftProposer] {
        let store = self.store
        var environment = ProposerEnvironment(
            targetName: name, targetModel: model, targetTokenizer: tokenizer, context: context,
            draftLength: strategy.budget.maxDepth,
            treeRequested: !strategy.budget.branching.isEmpty, draftHead: strategy.draft.headRows,
            draftHeadCorpus: strategy.draft.headCorpus,
            draftWeights: strategy.draft.weights, draftStop: strategy.draft.stop,
            draftLookahead: strategy.draft.lookahead,
            threads: ComputeThreads.count, autoDraft: pairedDraft(pullMissing: pullMissing),
            resolveModel: {
                pullMissing ? try await store.resolveOrPull($0, progress: progress) : try store.resolve($0)
            })
        environment.draftLane = draftLane
        return try await registry.make(strategy.proposers, environment: environment)
    }

    /// The draft `auto` adds when given none: the target's catalog pairing, when it may be
    /// downloaded or is already in the cache; for a target the catalog does not pair (a file of
    /// the user's), the smallest downloaded catalog model smaller than it whose vocabulary is the
    /// target's (the same tokens with the same ids), whatever the names say.
    public func pairedDraft(pullMissing: Bool) -> String? {
        if let paired = ModelCatalog.model(named: name)?.pairedDraft, let draft = ModelCatalog.model(named: paired) {
            return pullMissing || store.isPresent(draft) ? draft.name : nil
        }
        let candidates = ModelCatalog.models.filter {
            $0.name != name && store.isPresent($0) && $0.size < Int64(model.weightBytes)
        }
        for candidate in candidates.sorted(by: { $0.size < $1.size }) {
            guard let url = try? store.resolve(candidate.name), let file = try? GGUFFile(path: url.path),
                let vocabulary = try? Tokenizer(gguf: file)
            else { continue }
            if vocabulary.tokens == tokenizer.tokens { return candidate.name }
        }
        return nil
    }

    /// A generator of `strategy` with a KV cache of its own.
    public func generator(
        _ strategy: Strategy = Strategy(), pullMissing: Bool = true,
        progress: @escaping @Sendable (PullEvent) -> Void = { _ in }
    ) async throws -> SpeculativeGenerator {
        let proposers = try await proposers(for: strategy, pullMissing: pullMissing, progress: progress)
        return SpeculativeGenerator(
            model: self, strategy: strategy, proposers: proposers,
            session: try InferenceSession(model: model, context: context))
    }

    /// The tokens of `prompt` (chat messages in the model's own chat format, built token by token
    /// so that message text never becomes control tokens). Throws ``ChatFormatError`` for chat
    /// messages when the model has no chat format Speculate renders.
    public func tokens(of prompt: Prompt) throws -> [Token] {
        switch prompt {
        case .text(let text): tokenizer.encodePrompt(text)
        case .chat(let messages): try ChatFormat.tokens(messages, tokenizer: tokenizer)
        case .tokens(let tokens): tokens
        }
    }
}
