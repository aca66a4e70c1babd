import Foundation
import Speculate
import Synchronization

/// A piece of generated text and the proposer that drafted its token (nil: the target itself).
public struct TokenPiece: Sendable, Equatable {
    /// The token's text (possibly empty while a character is incomplete).
    public var text: String
    /// The proposer that drafted the token, or nil when the target produced it.
    public var proposer: String?

    /// A piece of `text` drafted by `proposer`.
    public init(text: String, proposer: String?) {
        self.text = text
        self.proposer = proposer
    }
}

/// What a finished generation returns.
public struct Completion: Sendable {
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
}

/// What a generation reports while it runs.
public enum GenerationEvent: Sendable {
    /// New text, piece by piece with each token's proposer.
    case pieces([TokenPiece])
    /// The end.
    case finished(Completion)
}

/// The models and the decoding loop behind the HTTP routes: loaded once and kept, one request
/// at a time (``RequestQueue``), proposers built once per strategy and reused, and the KV cache
/// of the previous request reused for the longest common prefix of the next prompt.
public final class ServerEngine: Sendable {
    /// The id clients name the model by (`model` field, `/v1/models`).
    public let modelName: String
    /// Tokens of context of the target.
    public let context: Int
    /// The line requests wait in.
    public let queue: RequestQueue
    /// The target's tokenizer.
    public let tokenizer: Tokenizer
    private let session: InferenceSession
    private let makeProposers: @Sendable (StrategyRequest) async throws -> [any DraftProposer]
    private let checkProposers: @Sendable ([String]) throws(APIError) -> Void
    private let state = Mutex(State())
    private let metrics: ServerMetrics

    /// Built proposers per strategy (least recently used first), and the tokens the target
    /// session holds from the previous request.
    private struct State {
        var proposers: [(strategy: StrategyRequest, proposers: [any DraftProposer])] = []
        var heldTokens: [Token] = []
    }

    /// Strategies whose proposers are kept, least recently used dropped first. Each strategy with
    /// a draft model holds its own copy of that model (a few hundred MB for the 0.5B), and
    /// rebuilding one on every request would churn memory (measured: 419 -> 635 MB resident over
    /// 40 requests rotating through 5 strategies with room for 4).
    static let keptStrategies = 8

    /// An engine over `model`: `checkProposers` refuses proposer specs that requests may not use
    /// (with an ``APIError``), `makeProposers` builds a strategy's proposers.
    public init(modelName: String, model: TransformerModel, tokenizer: Tokenizer, context: Int, queueCapacity: Int,
                metrics: ServerMetrics = ServerMetrics(),
                checkProposers: @escaping @Sendable ([String]) throws(APIError) -> Void,
                makeProposers: @escaping @Sendable (StrategyRequest) async throws -> [any DraftProposer]) throws {
        self.modelName = modelName
        self.context = context
        self.tokenizer = tokenizer
        self.session = try InferenceSession(model: model, context: context)
        self.queue = RequestQueue(capacity: queueCapacity)
        self.makeProposers = makeProposers
        self.checkProposers = checkProposers
        self.metrics = metrics
    }

    /// Whether the model's vocabulary has the ChatML control tokens `/v1/chat/completions` needs.
    public var supportsChat: Bool { ChatFormat.supportsChatML(tokenizer) }

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
        let field = job.endpoint == .chat ? "messages" : "prompt"
        let prompt = job.endpoint == .chat ? ChatFormat.tokens(job.messages, tokenizer: tokenizer) : tokenizer.encode(job.prompt)
        guard !prompt.isEmpty else { throw .invalid("The prompt encodes to no tokens", param: field) }
        guard prompt.count < context - 1 else {
            throw .invalid("The prompt has \(prompt.count) tokens but the context holds \(context); shorten it", param: field, code: "context_length_exceeded")
        }
        let room = context - 1 - prompt.count
        if let asked = job.maxTokens, asked > room {
            throw .invalid("The prompt (\(prompt.count) tokens) and max_tokens (\(asked)) exceed the context of \(context) tokens",
                           param: job.endpoint == .chat ? "max_completion_tokens" : "max_tokens", code: "context_length_exceeded")
        }
        try checkProposers(job.strategy.proposers)
        return PreparedJob(job: job, prompt: prompt, maxTokens: job.maxTokens ?? room)
    }

    /// Runs a prepared job once its turn comes (the caller has reserved a place in ``queue``);
    /// the stream ends with `.finished`, or throws. Ending the iteration early (a client that
    /// went away) stops the decode within one step and frees the model.
    public func run(_ job: PreparedJob) -> AsyncThrowingStream<GenerationEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self)
        let stopFlag = StopFlag()
        let task = Task {
            await queue.waitTurn()
            metrics.busy(true)
            var failure: (any Error)?
            do { try await generate(job, stop: stopFlag) { continuation.yield($0) } } catch { failure = error }
            metrics.busy(false)
            // The place in line is given back before the stream ends: a client that sends its next
            // request the moment this response completes must find it free (the CI load run got
            // 503s when the stream finished first).
            await queue.finish()
            await metrics.queueDepth(queue.depth)
            if let failure { continuation.finish(throwing: failure) } else { continuation.finish() }
        }
        continuation.onTermination = { _ in
            stopFlag.raise()
            task.cancel()
        }
        return stream
    }

    private func generate(_ prepared: PreparedJob, stop: StopFlag, emit: (GenerationEvent) -> Void) async throws {
        if stop.isRaised { return }
        let job = prepared.job, prompt = prepared.prompt
        let proposers = try await proposers(for: job.strategy)
        let cached = state.withLock { state -> Int in
            let shared = zip(state.heldTokens, prompt).prefix { $0 == $1 }.count
            state.heldTokens = []  // unknown until this run ends cleanly
            return shared
        }
        let tokenizer = self.tokenizer
        var options = GenerationOptions(maxTokens: prepared.maxTokens, budget: job.strategy.budget, sampling: job.sampling,
                                        stopTokens: tokenizer.stopIDs, stopStrings: job.stop,
                                        tokenBytes: { tokenizer.bytes(of: $0, skipControl: true) })
        options.cachedPromptTokens = cached
        options.shouldStop = { stop.isRaised }
        let decoder = SpeculativeDecoder(target: session, proposers: proposers, verifier: job.strategy.verifier(temperature: job.sampling.temperature))
        var streaming = StreamingDecoder(tokenizer: tokenizer, skipControl: true)
        var filter = StopFilter(stops: job.stop)
        var text = ""
        var generated: [Token] = []
        var statistics = RunStatistics()
        // In this task, not the stream form: once this returns, nothing else touches the session
        // (the next request may start at once, and a cancelled stream's own task could still be
        // finishing a step: CI caught exactly that after a client disconnected).
        try await decoder.generate(prompt: prompt, options: options) { event in
            switch event {
            case let .tokens(tokens, _):
                generated += tokens.map(\.token)
                let pieces = tokens.map { token -> TokenPiece in
                    TokenPiece(text: streaming.append(token.token), proposer: token.drafters.first)
                }
                let ready = filter.push(pieces)
                if !ready.isEmpty {
                    text += ready.map(\.text).joined()
                    emit(.pieces(ready))
                }
            case let .finished(stats):
                statistics = stats
            case .step:
                break
            }
        }
        let tail = filter.finish(TokenPiece(text: streaming.finish(), proposer: nil))
        if !tail.isEmpty {
            text += tail.map(\.text).joined()
            emit(.pieces(tail))
        }
        if statistics.stopReason != .cancelled {
            // The session now holds the prompt and the accepted tokens (a prefix of them at least).
            state.withLock { $0.heldTokens = prompt + generated }
        }
        let reason: String = switch statistics.stopReason {
        case .endOfSequence, .stopString: "stop"
        default: filter.stopped ? "stop" : "length"
        }
        metrics.record(statistics, promptTokens: prompt.count)
        emit(.finished(Completion(text: text, finishReason: reason, promptTokens: prompt.count, completionTokens: statistics.generatedTokens,
                                  statistics: statistics, strategy: job.strategy)))
    }

    /// The strategy's proposers, built on first use and kept for the next requests.
    private func proposers(for strategy: StrategyRequest) async throws -> [any DraftProposer] {
        if let kept = state.withLock({ state -> [any DraftProposer]? in
            guard let index = state.proposers.firstIndex(where: { $0.strategy == strategy }) else { return nil }
            let entry = state.proposers.remove(at: index)
            state.proposers.append(entry)
            return entry.proposers
        }) {
            return kept
        }
        let built: [any DraftProposer]
        do { built = try await makeProposers(strategy) } catch let error as APIError { throw error } catch {
            throw APIError.invalid("speculate.proposers: \(error)", param: "speculate.proposers", code: "proposer_failed")
        }
        state.withLock { state in
            state.proposers.append((strategy, built))
            if state.proposers.count > Self.keptStrategies { state.proposers.removeFirst() }
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

/// OpenAI stop strings: the returned text ends before the first stop string, and text that may
/// still become one is held back until it cannot. Works on the UTF-8 bytes of the pieces, so a
/// stop string that spans tokens is found and a piece is cut where the stop string begins.
public struct StopFilter: Sendable {
    let stops: [[UInt8]]
    private var pending: [TokenPiece] = []
    /// Whether a stop string was found (nothing more will be returned).
    public private(set) var stopped = false

    /// A filter for `stops` (empty strings are ignored).
    public init(stops: [String]) {
        self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// The pieces that can be sent now.
    public mutating func push(_ pieces: [TokenPiece]) -> [TokenPiece] {
        guard !stopped else { return [] }
        pending += pieces
        guard !stops.isEmpty else { return take(pending.count) }
        let bytes = Array(pending.map(\.text).joined().utf8)
        if let position = stops.compactMap({ firstIndex(of: $0, in: bytes) }).min() {
            stopped = true
            return cut(at: position)
        }
        // Hold back the longest tail that is the start of some stop string.
        var hold = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, bytes.count), to: hold, by: -1) where bytes.suffix(length).elementsEqual(stop.prefix(length)) {
                hold = length
                break
            }
        }
        var sendable = 0, end = 0
        for piece in pending {
            end += piece.text.utf8.count
            guard end <= bytes.count - hold else { break }
            sendable += 1
        }
        return take(sendable)
    }

    /// The rest at the end of generation (with the decoder's last held-back text).
    public mutating func finish(_ last: TokenPiece) -> [TokenPiece] {
        var ready = last.text.isEmpty ? [] : push([last])
        if !stopped { ready += take(pending.count) }
        return ready
    }

    private mutating func take(_ count: Int) -> [TokenPiece] {
        let ready = Array(pending.prefix(count))
        pending.removeFirst(count)
        return ready
    }

    /// The pending pieces up to byte `offset` of their text (the last one cut), the rest dropped.
    private mutating func cut(at offset: Int) -> [TokenPiece] {
        var ready: [TokenPiece] = [], start = 0
        for piece in pending {
            let bytes = Array(piece.text.utf8)
            if start + bytes.count <= offset {
                ready.append(piece)
            } else {
                if offset > start { ready.append(TokenPiece(text: String(decoding: bytes.prefix(offset - start), as: UTF8.self), proposer: piece.proposer)) }
                break
            }
            start += bytes.count
        }
        pending = []
        return ready
    }

    private func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        return nil
    }
}
