import Foundation
import SpeculateCore
import SpeculateEngine
import SpeculateFormat
import SpeculateGrammar
import SpeculateRuntime
import Synchronization

/// What a finished generation returns.
public struct Completion: Sendable {
    /// Which of the request's `n` choices it is.
    public var index = 0
    /// The whole text (without the stop string that ended it).
    public var text: String
    /// `stop` (end of turn or a stop string), `length` (max_tokens or the context is full).
    public var finishReason: String
    /// Tokens of the prompt, and tokens generated.
    public var promptTokens: Int
    public var completionTokens: Int
    /// The run's figures (tokens/s, target forwards, accepted per proposer).
    public var statistics: RunStatistics
    /// The strategy that ran.
    public var strategy: StrategyRequest
    /// Each generated token's log-probabilities, when the request asked for them.
    public var logprobs: [TokenLogprobEntry]?
}

/// One generated token's log-probabilities, with the texts and bytes of it and its alternatives.
public struct TokenLogprobEntry: Sendable {
    /// A token as text and bytes (a token may hold part of a character: then its text has U+FFFD).
    public struct Spelling: Sendable {
        /// The token's text (U+FFFD where its bytes are part of a character).
        public var text: String
        /// Its UTF-8 bytes.
        public var bytes: [UInt8]
        /// Its natural-log probability.
        public var logprob: Float
    }
    /// The generated token.
    public var token: Spelling
    /// The most likely tokens at its position.
    public var top: [Spelling]
}

/// What a generation reports while it runs.
public enum GenerationEvent: Sendable {
    /// New text, piece by piece with each token's drafters (OpenAI stop semantics already applied),
    /// and the log-probabilities of the tokens it completes (when asked for).
    case pieces([TextPiece], logprobs: [TokenLogprobEntry], choice: Int)
    /// The end of one choice (a request with `n` choices has `n`, in order).
    case finished(Completion)
}

/// The models and the decoding loops behind the HTTP routes: loaded once and kept; up to
/// `parallel` requests decode at once, each in a slot of its own (a KV cache, proposers built
/// once per strategy and reused, a thread), their trees sharing target forwards through one
/// ``ForwardBatcher``; the rest wait in the ``RequestQueue``. A request takes the free slot whose
/// cache holds the longest prefix of its prompt, and reuses those entries.
public final class ServerEngine: Sendable {
    /// The id clients name the model by (`model` field, `/v1/models`).
    public let modelName: String
    /// Tokens of context of the target.
    public let context: Int
    /// The line requests wait in.
    public let queue: RequestQueue
    /// The target's tokenizer.
    public var tokenizer: Tokenizer { model.tokenizer }
    /// The target's fill-in-the-middle tokens, if it has them.
    public var fillInTheMiddle: FillInTheMiddle? { FillInTheMiddle(tokenizer: tokenizer, file: model.model.file) }
    /// The target.
    public let model: SpeculativeModel
    /// How draft models draft (the server's command-line settings; requests choose the rest).
    public let draft: DraftSettings
    /// Gathers the slots' evaluations into shared forwards (used when there are several slots).
    public let batcher: ForwardBatcher
    /// Gathers the slots' draft-model forwards likewise, one batcher per draft model.
    public let draftBatching = DraftBatching()
    private let slots: [Slot]
    /// Whether a request reuses the KV entries its slot holds for the start of its prompt.
    public let reusesPrompts: Bool
    private let checkProposers: @Sendable ([String]) throws(APIError) -> Void
    private let state: Mutex<State>
    private let metrics: ServerMetrics

    /// One decoding place: a KV cache of the target (and the view of it that joins shared
    /// forwards), and the thread its decoding loop runs on.
    private struct Slot: Sendable {
        let session: InferenceSession
        let batched: BatchedSession
        /// Where its draft models' forwards join the other slots' (with several slots).
        let lane: DraftLane?
        let executor: SlotExecutor
    }

    /// What a slot keeps between requests: whether one runs, built proposers per strategy
    /// (least recently used first; proposers hold state, so each slot has its own), and the
    /// tokens its cache holds from its last request.
    private struct SlotState {
        var busy = false
        var proposers: [(strategy: StrategyRequest, proposers: [any DraftProposer])] = []
        var heldTokens: [Token] = []
    }

    private struct State {
        var slots: [SlotState]
        /// Models loaded before any request asked for them, held for the server's life.
        var preloaded: [(name: String, model: TransformerModel)] = []
        /// Grammar constraints by grammar (least recently used first): a client that repeats a
        /// schema (an agent's tool calls, a JSON mode) finds its masks computed. A constraint is
        /// a function of the history it is shown, so sharing it between requests is exact.
        var constraints: [(grammar: JSONGrammar, constraint: GrammarConstraint)] = []
    }

    /// Grammars whose constraints (and cached masks, up to ~5 MB each) are kept.
    static let keptGrammars = 8

    /// Strategies whose proposers are kept, least recently used dropped first. Each strategy with
    /// a draft model holds its own copy of that model (a few hundred MB for the 0.5B), and
    /// rebuilding one on every request would churn memory (measured: 419 -> 635 MB resident over
    /// 40 requests rotating through 5 strategies with room for 4).
    static let keptStrategies = 8

    /// An engine over `model` with `parallel` slots (a KV cache of `model.context` tokens each,
    /// shared by every strategy): `checkProposers` refuses proposer specs that requests may not
    /// use (with an ``APIError``). Requests' proposers are built with `draft`'s settings and never
    /// download a model. Without `reusesPrompts`, every request reads its whole prompt (a
    /// benchmark whose clients send the same prompts measures the reading too).
    public init(
        modelName: String, model: SpeculativeModel, draft: DraftSettings = DraftSettings(), queueCapacity: Int,
        parallel: Int = 1, reusesPrompts: Bool = true, metrics: ServerMetrics = ServerMetrics(),
        checkProposers: @escaping @Sendable ([String]) throws(APIError) -> Void
    ) throws {
        self.modelName = modelName
        self.context = model.context
        self.model = model
        self.draft = draft
        let batcher = ForwardBatcher()
        self.batcher = batcher
        let draftBatching = self.draftBatching
        self.slots = try (0..<max(1, parallel)).map { index in
            let session = try InferenceSession(model: model.model, context: model.context)
            let lane = parallel > 1 ? draftBatching.lane() : nil
            return Slot(
                session: session, batched: BatchedSession(session: session, batcher: batcher, draftLane: lane),
                lane: lane, executor: SlotExecutor(name: "speculate-slot-\(index)"))
        }
        self.state = Mutex(State(slots: Array(repeating: SlotState(), count: max(1, parallel))))
        self.queue = RequestQueue(capacity: queueCapacity, slots: max(1, parallel))
        self.checkProposers = checkProposers
        self.reusesPrompts = reusesPrompts
        self.metrics = metrics
    }

    /// Requests that can decode at once.
    public var parallel: Int { slots.count }

    /// Holds `model` (a draft loaded at start, through ``LoadedModels``) for the server's life, so
    /// that the first request using it finds it loaded (a first `auto` request on a server started
    /// without the draft took 10.9 s for 96 tokens, 2.4 s once it was loaded).
    public func preload(_ model: TransformerModel, name: String) {
        state.withLock { $0.preloaded.append((name, model)) }
    }

    /// The names of the models loaded: the target, then the drafts held from the start.
    public var loadedModels: [String] { [modelName] + state.withLock { $0.preloaded.map(\.name) } }

    /// The engine's form of a request's strategy.
    public func strategy(_ request: StrategyRequest) -> Strategy {
        Strategy(proposers: request.proposers, budget: request.budget, verification: request.verify, draft: draft)
    }

    /// Why `/v1/chat/completions` cannot render conversations for the model, if it cannot.
    public var chatUnsupportedReason: ChatFormatError? {
        if case .failure(let reason) = tokenizer.chatFormat { reason } else { nil }
    }

    /// Whether the model has a chat format Speculate renders (from its `tokenizer.chat_template`).
    public var supportsChat: Bool { tokenizer.supportsChat }

    /// A job checked against the model before it queues: its prompt tokens and token budget.
    public struct PreparedJob: Sendable {
        /// The validated request.
        public var job: GenerationJob
        /// Its prompt, tokenized.
        public var prompt: [Token]
        /// Most tokens to generate (the request's, or what the context holds).
        public var maxTokens: Int
    }

    /// Tokenizes `job` and checks it against the context and the proposer policy, so that a
    /// request that cannot run is refused (400) before it waits or streams.
    public func prepare(_ job: GenerationJob) throws(APIError) -> PreparedJob {
        let field = job.endpoint == .chat ? "messages" : job.endpoint == .infill ? "input_prefix" : "prompt"
        let prompt: [Token]
        if let infill = job.infill {
            guard let fim = fillInTheMiddle else {
                throw .invalid(
                    "\(modelName) has no fill-in-the-middle tokens (<|fim_prefix|>, <|fim_suffix|>, <|fim_middle|>)",
                    param: job.endpoint == .infill ? "input_suffix" : "suffix", code: "unsupported_parameter")
            }
            guard
                let tokens = fim.prompt(
                    prefix: infill.prefix, suffix: infill.suffix, files: infill.files,
                    middleStart: infill.middleStart, tokenizer: tokenizer)
            else {
                throw .invalid(
                    "\(modelName) has no file separator token (<|file_sep|>) for input_extra", param: "input_extra",
                    code: "unsupported_parameter")
            }
            prompt = tokens.map { Token($0) }
        } else if job.endpoint == .chat {
            let tools = job.tools?.shown.map(\.rendered) ?? []
            let usesTools = !tools.isEmpty || job.messages.contains { $0.role == "tool" || !$0.toolCalls.isEmpty }
            if usesTools, (try? tokenizer.chatFormat.get())?.supportsTools != true {
                throw .invalid(
                    "\(modelName)'s chat template has no tool format Speculate writes (Qwen2.5's <tool_call> format)",
                    param: job.tools == nil ? "messages" : "tools", code: "unsupported_parameter")
            }
            do { prompt = try ChatFormat.tokens(job.messages, tools: tools, tokenizer: tokenizer) } catch {
                throw .invalid("\(modelName): \(error); use /v1/completions")
            }
        } else {
            prompt = tokenizer.encodePrompt(job.prompt)
        }
        guard !prompt.isEmpty else { throw .invalid("The prompt encodes to no tokens", param: field) }
        guard prompt.count < context - 1 else {
            throw .invalid(
                "The prompt has \(prompt.count) tokens but the context holds \(context); shorten it", param: field,
                code: "context_length_exceeded")
        }
        let room = context - 1 - prompt.count
        if let asked = job.maxTokens, asked > room {
            throw .invalid(
                "The prompt (\(prompt.count) tokens) and max_tokens (\(asked)) exceed the context of \(context) tokens",
                param: job.endpoint == .chat ? "max_completion_tokens" : "max_tokens", code: "context_length_exceeded")
        }
        try checkProposers(job.strategy.proposers)
        var prepared = PreparedJob(job: job, prompt: prompt, maxTokens: job.maxTokens ?? room)
        if let grammar = job.grammar {
            // First, so that filters after it (min-p) judge only the tokens the grammar allows
            // and can never leave none.
            do { prepared.job.logitProcessors.insert(try constraint(for: grammar), at: 0) } catch {
                throw .invalid(
                    "\(modelName) cannot spell JSON output: \(error.message)",
                    param: job.tools != nil ? "tools" : "response_format")
            }
        }
        return prepared
    }

    /// Runs a prepared job once its turn comes (the caller has reserved a place in ``queue``);
    /// the stream ends with `.finished`, or throws. Ending the iteration early (a client that
    /// went away) stops the decode within one step and frees the model.
    public func run(_ job: PreparedJob) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let stopFlag = StopFlag()
        let task = Task {
            await queue.waitTurn()
            let slot = claimSlot(for: job.prompt)
            metrics.decoding(queue.slots - (await queue.freeSlots))
            var failure: (any Error)?
            do {
                // On the slot's own thread: its decoder blocks in shared forwards.
                try await withTaskExecutorPreference(slots[slot].executor) {
                    // `n` choices one after another: each reuses the prompt's KV entries the last left.
                    for choice in 0..<job.job.choices {
                        var single = job
                        single.job.sampling.seed = job.job.sampling.seed &+ UInt64(choice)
                        try await generate(single, slot: slot, choice: choice, stop: stopFlag) {
                            continuation.yield($0)
                        }
                    }
                }
            } catch { failure = error }
            state.withLock { $0.slots[slot].busy = false }
            // The place in line is given back before the stream ends: a client that sends its next
            // request the moment this response completes must find it free (the CI load run got
            // 503s when the stream finished first).
            await queue.finish()
            metrics.decoding(queue.slots - (await queue.freeSlots))
            await metrics.queueDepth(queue.depth)
            if let failure { continuation.finish(throwing: failure) } else { continuation.finish() }
        }
        continuation.onTermination = { _ in
            stopFlag.raise()
            task.cancel()
        }
        return stream
    }

    /// The free slot whose cache holds the longest prefix of `prompt` (a queue turn guarantees
    /// one is free), marked busy.
    private func claimSlot(for prompt: [Token]) -> Int {
        state.withLock { state in
            let free = state.slots.indices.filter { !state.slots[$0].busy }
            let best = free.max { a, b in
                zip(state.slots[a].heldTokens, prompt).prefix { $0 == $1 }.count
                    < zip(state.slots[b].heldTokens, prompt).prefix { $0 == $1 }.count
            }!
            state.slots[best].busy = true
            return best
        }
    }

    private func generate(
        _ prepared: PreparedJob, slot: Int, choice: Int, stop: StopFlag, emit: (GenerationEvent) -> Void
    ) async throws {
        if stop.isRaised { return }
        let job = prepared.job
        let prompt = prepared.prompt
        let proposers = try await proposers(for: job.strategy, slot: slot)
        let reusesPrompts = self.reusesPrompts
        let cached = state.withLock { state -> Int in
            let shared = reusesPrompts ? zip(state.slots[slot].heldTokens, prompt).prefix { $0 == $1 }.count : 0
            state.slots[slot].heldTokens = []  // unknown until this run ends cleanly
            return shared
        }
        let place = slots[slot]
        let shared = slots.count > 1
        let generator = SpeculativeGenerator(
            model: model, strategy: strategy(job.strategy), proposers: proposers, session: place.session,
            target: shared ? place.batched : place.session)
        // Expected by the shared forwards from its first step (not while it reads its prompt)
        // to its end.
        var expected = false
        place.lane?.setActive(true)
        defer {
            // Always (not only once expected): a generation that ends while reading its prompt
            // must not leave its last chunk counted as load on the others' forwards.
            if shared { batcher.release(place.session) }
            place.lane?.setActive(false)
        }
        var parameters = GenerateParameters(
            maxTokens: prepared.maxTokens, sampling: job.sampling, stop: job.stop,
            logitProcessors: job.logitProcessors, logprobs: job.logprobs, cachedPromptTokens: cached,
            shouldStop: { stop.isRaised })
        if job.infill != nil, let fim = fillInTheMiddle { parameters.stopTokens = Set(fim.endTokens.map { Token($0) }) }
        var text = ""
        var generated: [Token] = []
        var figures: [TokenLogprobEntry] = []
        var unsent: [TokenLogprobEntry] = []
        var statistics = RunStatistics()
        // In this task, not the stream form: once this returns, nothing else touches the session
        // (the next request may start at once, and a cancelled stream's own task could still be
        // finishing a step: CI caught exactly that after a client disconnected).
        try await generator.generate(.tokens(prompt), parameters: parameters) { event in
            if shared, !expected {
                expected = true
                batcher.expect(place.session)
            }
            switch event {
            case .tokens(let tokens, let pieces):
                generated += tokens.map(\.token)
                if job.logprobs != nil {
                    let entries = tokens.compactMap(logprobEntry)
                    figures += entries
                    unsent += entries
                }
                if !pieces.isEmpty {
                    text += pieces.map(\.text).joined()
                    // A token that completes no text yet (part of a character) goes with the next piece.
                    emit(.pieces(pieces, logprobs: unsent, choice: choice))
                    unsent = []
                }
            case .finished(let stats):
                statistics = stats
            case .step:
                break
            }
        }
        // Tokens that complete no text (an end-of-turn token) still have their figures.
        if !unsent.isEmpty { emit(.pieces([], logprobs: unsent, choice: choice)) }
        if statistics.stopReason != .cancelled {
            // The session now holds the prompt and the accepted tokens (a prefix of them at least).
            state.withLock { $0.slots[slot].heldTokens = prompt + generated }
        }
        let reason: String =
            switch statistics.stopReason {
            case .endOfSequence, .stopString: "stop"
            default: "length"
            }
        metrics.record(statistics, promptTokens: prompt.count)
        emit(
            .finished(
                Completion(
                    index: choice, text: text, finishReason: reason, promptTokens: prompt.count,
                    completionTokens: statistics.generatedTokens,
                    statistics: statistics, strategy: job.strategy,
                    logprobs: job.logprobs == nil ? nil : Array(figures.prefix(statistics.generatedTokens)))))
    }

    /// A generated token's figures, spelled with the target's vocabulary.
    private func logprobEntry(_ token: GeneratedToken) -> TokenLogprobEntry? {
        guard let figures = token.logprobs else { return nil }
        func spelling(_ id: Token, _ logprob: Float) -> TokenLogprobEntry.Spelling {
            let bytes = tokenizer.bytes(of: TokenID(id))
            return .init(text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: logprob)
        }
        return TokenLogprobEntry(
            token: spelling(token.token, figures.logprob), top: figures.top.map { spelling($0.token, $0.logprob) })
    }

    /// The constraint of `grammar`, kept from an earlier request or made now.
    private func constraint(for grammar: JSONGrammar) throws(JSONSchemaError) -> GrammarConstraint {
        if let kept = state.withLock({ state -> GrammarConstraint? in
            guard let index = state.constraints.firstIndex(where: { $0.grammar == grammar }) else { return nil }
            let entry = state.constraints.remove(at: index)
            state.constraints.append(entry)
            return entry.constraint
        }) {
            return kept
        }
        let made = try model.constraint(grammar)
        state.withLock { state in
            state.constraints.append((grammar, made))
            if state.constraints.count > Self.keptGrammars { state.constraints.removeFirst() }
        }
        return made
    }

    /// The strategy's proposers in `slot`, built on first use and kept for its next requests.
    private func proposers(for strategy: StrategyRequest, slot: Int) async throws -> [any DraftProposer] {
        if let kept = state.withLock({ state -> [any DraftProposer]? in
            guard let index = state.slots[slot].proposers.firstIndex(where: { $0.strategy == strategy }) else {
                return nil
            }
            let entry = state.slots[slot].proposers.remove(at: index)
            state.slots[slot].proposers.append(entry)
            return entry.proposers
        }) {
            return kept
        }
        let built: [any DraftProposer]
        do {
            built = try await model.proposers(
                for: self.strategy(strategy), pullMissing: false, draftLane: slots[slot].lane)
        } catch let error
            as APIError
        { throw error } catch {
            throw APIError.invalid(
                "speculate.proposers: \(error)", param: "speculate.proposers", code: "proposer_failed")
        }
        state.withLock { state in
            state.slots[slot].proposers.append((strategy, built))
            if state.slots[slot].proposers.count > Self.keptStrategies { state.slots[slot].proposers.removeFirst() }
        }
        return built
    }
}

/// Raised when the client is gone: the decoder checks it before every step.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func raise() { flag.store(true, ordering: .relaxed) }
    var isRaised: Bool { flag.load(ordering: .relaxed) }
}
