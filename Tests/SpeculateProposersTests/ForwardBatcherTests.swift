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

    @Test("decoders on three threads share forwards and decode exactly what each decodes alone")
    func threeThreads() throws {
        let name = "smollm2-135m-instruct"
        let model = try SharedModels.model(name)
        let tokenizer = try SharedModels.tokenizer(name)
        let prompts = ["def fibonacci(n):\n", "The capital of France is", "import numpy as np\n"].map {
            tokenizer.encode($0).map { Token($0) }
        }
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

    /// Results written by the decoder threads.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Int: Result<[Token], any Error>] = [:]
        func set(_ index: Int, _ value: Result<[Token], any Error>) { lock.withLock { values[index] = value } }
        func get(_ index: Int) -> Result<[Token], any Error> { lock.withLock { values[index]! } }
    }
}
