import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// A forward over several sessions (`InferenceSession.evaluate(_:)`, what a server batching its
/// clients runs) must give each session exactly what it gets alone.
@Suite("One forward over several sessions", .serialized)
struct BatchedForwardTests {
    /// Each session's step: a tree (or one token, or nothing) after its own prompt.
    struct Step {
        let tokens: [TokenID]
        let parents: [Int]
        let logits: LogitRows
    }

    /// Runs `steps` batched over sessions holding `prompts`, then again with a session per
    /// prompt alone, and compares every logit bit for bit; then commits one branch of each tree
    /// in both and compares the next step (a single token each) the same way.
    static func compare(model: TransformerModel, prompts: [[TokenID]], steps: [Step], heads: [Int?]) throws {
        func sessions() throws -> [InferenceSession] {
            try zip(prompts, heads).map { prompt, rows in
                let session = try InferenceSession(model: model, context: 256, headRows: rows)
                _ = try session.append(prompt)
                return session
            }
        }
        let batched = try sessions()
        let alone = try sessions()
        let together = try InferenceSession.evaluate(
            zip(batched, steps).map {
                SessionBatch(session: $0, tokens: $1.tokens, parents: $1.parents, logits: $1.logits)
            })
        for (index, step) in steps.enumerated() {
            let own = try alone[index].evaluate(tokens: step.tokens, parents: step.parents, logits: step.logits)
            #expect(together[index].rows == own.rows, "session \(index): rows")
            #expect(together[index].values == own.values, "session \(index): logits differ from its own forward")
        }
        // Commit each tree's first branch (root, its first child, ...) in both, then one more token each.
        for (index, step) in steps.enumerated() where !step.tokens.isEmpty {
            var path = [0]
            while let child = step.parents.firstIndex(of: path.last!) { path.append(child) }
            try batched[index].commit(path)
            try alone[index].commit(path)
        }
        let next = try InferenceSession.evaluate(batched.map { SessionBatch(session: $0, tokens: [42], parents: [-1]) })
        for index in steps.indices {
            let own = try alone[index].evaluate(tokens: [42], parents: [-1])
            #expect(batched[index].committedLength == alone[index].committedLength)
            #expect(next[index].values == own.values, "session \(index): the step after committing differs")
        }
    }

    @Test(
        "each session's logits are bit-identical to its own forward (trees, single tokens, an empty batch, a limited head)",
        arguments: ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"])
    func realModels(name: String) throws {
        let (model, tokenizer) = try Models.load(name)
        let prompts = [
            "def quicksort(items):\n", "The capital of France is", "for i in range(10):\n    print(i)\n",
            "import numpy as np\n\n\ndef mean(values):\n    return",
        ].map { tokenizer.encode($0) }
        let steps = [
            Step(tokens: [11, 12, 13, 14, 15], parents: [-1, 0, 0, 1, 3], logits: .all),
            Step(tokens: [7], parents: [-1], logits: .all),
            Step(tokens: [], parents: [], logits: .all),
            Step(tokens: [21, 22, 23], parents: [-1, 0, 1], logits: .last),
        ]
        try Self.compare(model: model, prompts: prompts, steps: steps, heads: [nil, nil, 4096, nil])
    }

    @Test(
        "the same on families with per-head norms and a sliding window shorter than the prompt",
        arguments: ["qwen3", "mistral"])
    func syntheticFamilies(architecture: String) throws {
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (model, _) = try SyntheticFamilyTests.model(architecture, in: folder)
        let prompts = SyntheticFamilyTests.prompts
        let steps = [
            Step(tokens: [10, 11, 12, 20, 21], parents: [-1, 0, 1, -1, 3], logits: .all),
            Step(tokens: [5], parents: [-1], logits: .all),
            Step(tokens: [30, 31], parents: [-1, 0], logits: .all),
        ]
        try Self.compare(model: model, prompts: prompts, steps: steps, heads: [nil, nil, nil])
    }

    @Test("a bad batch throws before any session changes; sessions must be distinct and of one model")
    func refusals() throws {
        let (model, tokenizer) = try Models.load("smollm2-135m-instruct")
        let prompt = tokenizer.encode("Hello")
        let a = try InferenceSession(model: model, context: 32)
        let b = try InferenceSession(model: model, context: 32)
        _ = try a.append(prompt)
        _ = try b.append(prompt)
        let before = try a.evaluate(tokens: [5], parents: [-1]).values
        #expect(throws: RuntimeError.malformedTree("node 1 has parent 1")) {
            try InferenceSession.evaluate([
                SessionBatch(session: a, tokens: [9, 9], parents: [-1, 0]),
                SessionBatch(session: b, tokens: [5, 6], parents: [-1, 1]),
            ])
        }
        // a's pending tree is still the one-token batch above: its node 0 commits.
        try a.commit([0])
        #expect(a.committedLength == prompt.count + 1)
        try a.rollback(to: prompt.count)
        #expect(try a.evaluate(tokens: [5], parents: [-1]).values == before)
        #expect(throws: RuntimeError.self) {
            try InferenceSession.evaluate([
                SessionBatch(session: a, tokens: [1], parents: [-1]),
                SessionBatch(session: a, tokens: [2], parents: [-1]),
            ])
        }
        let (other, _) = try Models.load("qwen2.5-coder-0.5b-instruct")
        let c = try InferenceSession(model: other, context: 32)
        #expect(throws: RuntimeError.self) {
            try InferenceSession.evaluate([
                SessionBatch(session: a, tokens: [1], parents: [-1]),
                SessionBatch(session: c, tokens: [2], parents: [-1]),
            ])
        }
        #expect(try InferenceSession.evaluate([]).isEmpty)
    }
}

@Suite("Models shared within the process")
struct LoadedModelsTests {
    @Test("one file at one precision loads once while it is held; another precision is another model")
    func sharedWhileHeld() throws {
        let path = try TestSupport.modelPath("smollm2-135m-instruct")
        let first = try LoadedModels.model(path: path)
        let second = try LoadedModels.model(path: path)
        #expect(first === second)
        let requantized = try LoadedModels.model(path: path, precision: .q4K)
        #expect(requantized !== first)
        #expect(try LoadedModels.model(path: path, precision: .q4K) === requantized)
    }
}
