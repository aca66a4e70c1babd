import Foundation
import SpeculateCore
import SpeculateEngine
import SpeculateServer
import SpeculateTestSupport
import Testing

/// Several requests decoding at once (`--parallel`), their trees verified in shared forwards:
/// each must get exactly what it gets served alone.
@Suite("Several requests at once", .serialized)
struct ConcurrentServingTests {
    static let name = "smollm2-135m-instruct"

    static func engine(parallel: Int) throws -> ServerEngine {
        let model = SpeculativeModel(
            name: name, model: try SharedModels.model(name), tokenizer: try SharedModels.tokenizer(name), context: 512)
        return try ServerEngine(
            modelName: name, model: model, queueCapacity: 16, parallel: parallel,
            checkProposers: { _ throws(APIError) in })
    }

    /// A completion request as a client would send it.
    struct Request: Sendable {
        var prompt: String
        var proposers: [String]
        var temperature = 0.0
        var seed = 0
        var maxTokens = 40
        var verify: String?

        func job() throws -> GenerationJob {
            var strategy: [String: Any] = ["proposers": proposers]
            if let verify { strategy["verify"] = verify }
            let body: [String: Any] = [
                "prompt": prompt, "max_tokens": maxTokens, "temperature": temperature, "seed": seed,
                "speculate": strategy,
            ]
            let parser = RequestParser(modelName: name, defaults: StrategyRequest(proposers: []), context: 512)
            return try parser.completion(try JSONSerialization.data(withJSONObject: body))
        }
    }

    /// Runs `request` to its end (or, with `stopAfterFirstPiece`, walks away after its first text).
    static func run(_ request: Request, on engine: ServerEngine, stopAfterFirstPiece: Bool = false) async throws
        -> String
    {
        let prepared = try engine.prepare(try request.job())
        try await engine.queue.reserve()
        var text = ""
        for try await event in engine.run(prepared) {
            switch event {
            case .pieces(let pieces, _, _):
                text += pieces.map(\.text).joined()
                if stopAfterFirstPiece, !text.isEmpty { return text }
            case .finished(let completion): return completion.text
            }
        }
        return text
    }

    static let requests: [Request] = [
        Request(prompt: "def fibonacci(n):\n", proposers: []),
        Request(prompt: "import os\n\ndef list_files(path):\n", proposers: ["draft:\(name)"]),
        Request(prompt: "class Stack:\n    def __init__(self):\n", proposers: ["draft:\(name)"]),
        Request(prompt: "for i in range(10):\n    print(i)\nfor i in range(10):\n", proposers: ["ngram"]),
        Request(prompt: "The three primary colors are", proposers: ["ngram"]),
        Request(prompt: "Once upon a time", proposers: [], temperature: 0.8, seed: 7),
        Request(
            prompt: "A list of fruits: apple, banana,", proposers: ["ngram"], temperature: 0.7, seed: 3,
            verify: "stochastic"),
    ]

    @Test(
        "greedy and seeded outputs of concurrent requests, strategies mixed, equal those served one at a time; draft forwards shared"
    )
    func sameAsAlone() async throws {
        let serial = try Self.engine(parallel: 1)
        var alone: [String] = []
        for request in Self.requests { alone.append(try await Self.run(request, on: serial)) }
        let batched = try Self.engine(parallel: Self.requests.count)
        let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (index, request) in Self.requests.enumerated() {
                group.addTask { (index, try await Self.run(request, on: batched)) }
            }
            var texts = [String](repeating: "", count: Self.requests.count)
            for try await (index, text) in group { texts[index] = text }
            return texts
        }
        for index in Self.requests.indices {
            #expect(together[index] == alone[index], "request \(index) (\(Self.requests[index].proposers))")
        }
        let figures = batched.batcher.figures
        #expect(figures.sessionsPerForward.keys.contains { $0 >= 2 }, "no forward carried two requests: \(figures)")
        print("concurrent requests: forwards by requests carried \(figures.sessionsPerForward)")
        // The two draft-model requests run together from the start: their drafts share forwards too.
        let drafts = batched.draftBatching.sessionsPerForward
        #expect(drafts.keys.contains { $0 >= 2 }, "no draft forward carried two requests: \(drafts)")
        print("concurrent requests: draft forwards by requests carried \(drafts)")
    }

    @Test("a client that goes away frees its slot at once, and the others finish unchanged")
    func disconnect() async throws {
        let long = Request(prompt: "Write a long story about a dragon.", proposers: ["ngram"], maxTokens: 300)
        let other = Request(prompt: "def add(a, b):\n", proposers: [])
        let serial = try Self.engine(parallel: 1)
        let expected = try await Self.run(other, on: serial)
        let engine = try Self.engine(parallel: 2)
        async let gone = Self.run(long, on: engine, stopAfterFirstPiece: true)
        async let kept = Self.run(other, on: engine)
        _ = try await gone
        #expect(try await kept == expected)
        // The slot comes back within a step or two of the client leaving.
        var waited = 0
        while await engine.queue.freeSlots < 2, waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(await engine.queue.freeSlots == 2)
        #expect(engine.batcher.expectedCount == 0)
        #expect(try await Self.run(other, on: engine) == expected)
    }
}
