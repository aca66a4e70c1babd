import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// The batcher that gathers decoders running on threads of their own into shared forwards (the
/// server's `--parallel`): under ThreadSanitizer in CI, since this is where threads meet.
@Suite("Shared forwards from several threads", .serialized)
struct ForwardBatcherTests {
    /// Greedy decoding of `steps` tokens after `prompt` through `session`.
    static func decode(_ session: any ModelSession, prompt: [Token], steps: Int) throws -> [Token] {
        var logits = try session.append(prompt)
        var tokens: [Token] = []
        for _ in 0..<steps {
            let next = Token(logits.indices.max { logits[$0] < logits[$1] }!)
            tokens.append(next)
            logits = try session.evaluate(tokens: [next], parents: [-1], logitRows: nil)[0]
            try session.commit([0])
        }
        return tokens
    }

    /// SmolLM2 and three prompts, one per decoder thread.
    static func fixture() throws -> (TransformerModel, [[Token]]) {
        let name = "smollm2-135m-instruct"
        let tokenizer = try SharedModels.tokenizer(name)
        let prompts = ["def fibonacci(n):\n", "The capital of France is", "import numpy as np\n"].map {
            tokenizer.encode($0).map { Token($0) }
        }
        return (try SharedModels.model(name), prompts)
    }

    @Test("decoders on three threads share forwards and decode exactly what each decodes alone")
    func threeThreads() throws {
        let (model, prompts) = try Self.fixture()
        let steps = 6
        let alone = try prompts.map {
            try Self.decode(try InferenceSession(model: model, context: 128), prompt: $0, steps: steps)
        }
        let batcher = ForwardBatcher(patience: .seconds(5))
        let results = Results()
        let done = DispatchGroup()
        for (index, prompt) in prompts.enumerated() {
            let session = try InferenceSession(model: model, context: 128)
            let batched = BatchedSession(session: session, batcher: batcher)
            done.enter()
            Thread {
                defer { done.leave() }
                batcher.expect(session)
                defer { batcher.release(session) }
                results.set(index, Result { try Self.decode(batched, prompt: prompt, steps: steps) })
            }.start()
        }
        done.wait()
        for index in prompts.indices {
            #expect(try results.get(index).get() == alone[index], "decoder \(index)")
        }
        let figures = batcher.figures
        #expect(
            figures.sessionsPerForward[3, default: 0] >= steps - 2,
            "forwards by sessions: \(figures.sessionsPerForward)")
        #expect(batcher.expectedCount == 0)
    }

    /// One decoding loop with a draft beside it: each step the draft (a second session) takes
    /// its greedy token, through `draft`, then the target takes its own through `target`.
    /// Returns the target's tokens and the draft's.
    static func decodeWithDraft(
        target: any ModelSession, draftSession: InferenceSession, prompt: [Token], steps: Int,
        draft: (SessionBatch) throws -> Logits
    ) throws -> [Token] {
        var logits = try target.append(prompt)
        var draftLogits = try draftSession.append(prompt)
        var tokens: [Token] = []
        for _ in 0..<steps {
            let guess = Token(draftLogits.indices.max { draftLogits[$0] < draftLogits[$1] }!)
            let row = try draft(SessionBatch(session: draftSession, tokens: [guess], parents: [-1], logits: .last))
            try draftSession.commit([0])
            draftLogits = Array(row.row(for: 0))
            let next = Token(logits.indices.max { logits[$0] < logits[$1] }!)
            logits = try target.evaluate(tokens: [next], parents: [-1], logitRows: nil)[0]
            try target.commit([0])
            tokens += [next, guess]
        }
        return tokens
    }

    @Test("three decoders' draft forwards share forwards round by round, each drafting what it drafts alone")
    func sharedDraftRounds() throws {
        let (model, prompts) = try Self.fixture()
        let steps = 6
        let alone = try prompts.map { prompt in
            let draftSession = try InferenceSession(model: model, context: 128)
            return try Self.decodeWithDraft(
                target: try InferenceSession(model: model, context: 128), draftSession: draftSession, prompt: prompt,
                steps: steps
            ) { try InferenceSession.evaluate([$0])[0] }
        }
        let batcher = ForwardBatcher(patience: .seconds(5))
        let drafts = DraftBatching(patience: .seconds(5))
        let results = Results()
        let done = DispatchGroup()
        for (index, prompt) in prompts.enumerated() {
            let session = try InferenceSession(model: model, context: 128)
            let draftSession = try InferenceSession(model: model, context: 128)
            let lane = drafts.lane()
            let batched = BatchedSession(session: session, batcher: batcher, draftLane: lane)
            done.enter()
            Thread {
                defer { done.leave() }
                lane.setActive(true)
                batcher.expect(session)
                defer {
                    batcher.release(session)
                    lane.setActive(false)
                }
                results.set(
                    index,
                    Result {
                        try Self.decodeWithDraft(
                            target: batched, draftSession: draftSession, prompt: prompt, steps: steps,
                            draft: lane.evaluate)
                    })
            }.start()
        }
        done.wait()
        for index in prompts.indices {
            #expect(try results.get(index).get() == alone[index], "decoder \(index)")
        }
        let shared = drafts.sessionsPerForward
        #expect(shared[3, default: 0] >= steps - 2, "draft forwards by sessions: \(shared)")
        #expect(batcher.expectedCount == 0)
    }

    /// Results written by the decoder threads.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int: Result<[Token], any Error>] = [:]
        func set(_ index: Int, _ value: Result<[Token], any Error>) { lock.withLock { values[index] = value } }
        func get(_ index: Int) -> Result<[Token], any Error> { lock.withLock { values[index]! } }
    }
}
