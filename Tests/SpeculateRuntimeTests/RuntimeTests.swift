import CSpeculateKernels
import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// Greedy decoding with the runtime alone (one token per forward).
func greedy(_ session: InferenceSession, prompt: [TokenID], count: Int) throws -> [TokenID] {
    var logits = try session.append(prompt)
    var output: [TokenID] = []
    for _ in 0..<count {
        let next = argmax(logits[...])
        output.append(next)
        let result = try session.evaluate(tokens: [next], parents: [-1])
        try session.commit([0])
        logits = result.values
    }
    return output
}

func argmax(_ values: ArraySlice<Float>) -> TokenID {
    var best = values.startIndex
    for i in values.indices where values[i] > values[best] { best = i }
    return TokenID(best - values.startIndex)
}

/// Runs the numpy reference (`forward_reference.py`) on `prompts`: per mode ("float", and
/// "emulated" with 8-bit activations), per prompt, the last `logitPositions` rows of logits and,
/// in float mode, a `greedy`-token continuation with its top-2 margins.
func numpyReference(model path: String, prompts: [[TokenID]], logitPositions: Int, greedy: Int) throws
    -> [String: [[String: Any]]]
{
    let folder = try TestSupport.temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let input = folder.appendingPathComponent("in.json")
    let output = folder.appendingPathComponent("out.json")
    // The emulated run gives only the noise estimate (its logits); the float run the continuations.
    let request: [String: Any] = [
        "prompts": prompts.map { $0.map(Int.init) }, "greedy": greedy, "logit_positions": logitPositions,
        "modes": ["emulated", "float"], "greedy_modes": ["float"],
    ]
    try JSONSerialization.data(withJSONObject: request).write(to: input)
    _ = try TestSupport.runPython("forward_reference.py", [path, input.path, output.path])
    var result = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: [[String: Any]]])
    // Each mode's logits come in a float32 file beside the JSON: prompt after prompt, row after row.
    for (mode, prompts) in result {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(output.path).\(mode).f32"))
        let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let rowCount = prompts.count * logitPositions
        try #require(rowCount > 0 && values.count % rowCount == 0, "\(mode): \(values.count) logits")
        let width = values.count / rowCount
        result[mode] = prompts.enumerated().map { index, record in
            var record = record
            record["logits"] = (0..<logitPositions).map { row in
                let start = (index * logitPositions + row) * width
                return Array(values[start..<start + width])
            }
            return record
        }
    }
    return result
}

/// A model and its tokenizer, loaded once per test process (SharedModels).
enum Models {
    static func load(_ name: String) throws -> (TransformerModel, Tokenizer) {
        (try SharedModels.model(name), try SharedModels.tokenizer(name))
    }
}

@Suite("Runtime against the numpy reference", .serialized)
struct ReferenceForwardTests {
    /// Gemma 3 270M only under `.ci/deep` (`SPECULATE_DEEP=1`): the reference dequantizes its
    /// 262,144-row head to floats and takes a minute over it, which CI's budget has not got.
    static let models =
        ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]
        + (ProcessInfo.processInfo.environment["SPECULATE_DEEP"] == "1" ? ["gemma-3-270m"] : [])

    static let prompts = [
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
        "The quick brown fox jumps over the lazy dog. In a hole in the ground there lived",
        "<|im_start|>user\nWrite a haiku about compilers.<|im_end|>\n<|im_start|>assistant\n",
    ]

    @Test(
        "logits and 32-token greedy continuations match",
        arguments: ReferenceForwardTests.models)
    func matchesReference(model name: String) throws {
        let (model, tokenizer) = try Models.load(name)
        let prompts = Self.prompts.map { tokenizer.encodePrompt($0, parseSpecial: true) }
        let reference = try numpyReference(
            model: try TestSupport.modelPath(name), prompts: prompts, logitPositions: 4, greedy: 32)

        // 8-bit activations make the forward pass sensitive to tiny input changes (a rounding flip
        // in one layer moves everything after it), so "how close" is measured against the reference's
        // own sensitivity: the gap between its float run and its run with emulated 8-bit activations.
        let float = try #require(reference["float"])
        let emulated = try #require(reference["emulated"])
        var noise: Float = 0
        var error: Float = 0
        var scale: Float = 0
        var top1Agree = 0
        var top1Total = 0
        var forcedAgree = 0
        var forcedTotal = 0
        var freeRun = 0
        for (index, prompt) in prompts.enumerated() {
            let session = try InferenceSession(model: model, context: 512)
            let result = try session.evaluate(
                tokens: prompt, parents: (0..<prompt.count).map { $0 - 1 },
                logits: .selected(Array(prompt.count - 4..<prompt.count)))
            let floatLogits = try #require(float[index]["logits"] as? [[Float]])
            let emulatedLogits = try #require(emulated[index]["logits"] as? [[Float]])
            for (j, row) in (prompt.count - 4..<prompt.count).enumerated() {
                let ours = Array(result.row(for: row))
                let theirs = floatLogits[j]
                let theirsEmulated = emulatedLogits[j]
                scale = max(scale, theirs.map(abs).max() ?? 0)
                error = max(error, zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0)
                noise = max(noise, zip(theirsEmulated, theirs).map { abs($0 - $1) }.max() ?? 0)
                top1Total += 1
                if argmax(ours[...]) == argmax(theirs[...]) { top1Agree += 1 }
            }
            // Teacher forcing: our next-token choice along the float reference's own greedy continuation.
            let continuation = try #require(float[index]["greedy"] as? [Int]).map { TokenID($0) }
            let margins = try #require(float[index]["margins"] as? [Double])
            let forced = try InferenceSession(model: model, context: 512)
            let sequence = prompt + continuation.dropLast()
            let rows = Array(prompt.count - 1..<sequence.count)
            let logits = try forced.evaluate(
                tokens: sequence, parents: (0..<sequence.count).map { $0 - 1 }, logits: .selected(rows))
            for (step, row) in rows.enumerated() {
                let agree = argmax(logits.row(for: row)) == continuation[step]
                forcedTotal += 1
                if agree { forcedAgree += 1 }
                #expect(
                    agree || Float(margins[step]) < 2 * noise,
                    "\(name) step \(step): the reference picks \(continuation[step]) by a margin of \(margins[step]), beyond the 8-bit noise \(noise)"
                )
            }
            let ours = try greedy(try InferenceSession(model: model, context: 512), prompt: prompt, count: 32)
            freeRun += zip(ours, continuation).prefix { $0 == $1 }.count
        }
        print(
            "\(name) vs numpy: max |logit error| \(error) (\(String(format: "%.2f", 100 * error / scale))% of the largest logit; the reference's own 8-bit sensitivity is \(noise)), top-1 \(top1Agree)/\(top1Total), teacher-forced greedy \(forcedAgree)/\(forcedTotal), free-running greedy common prefix \(freeRun)/\(32 * prompts.count)"
        )
        #expect(top1Agree == top1Total)
        #expect(error <= 2 * noise + 0.01 * scale)
    }
}

@Suite("Batch invariance and the KV cache", .serialized)
struct BatchInvarianceTests {
    /// A random tree of `count` nodes in topological order (parents come first).
    static func randomTree(count: Int, vocabulary: Int, seed: UInt64) -> (tokens: [TokenID], parents: [Int]) {
        var generator = SplitMix64(seed: seed)
        var tokens: [TokenID] = []
        var parents: [Int] = []
        for i in 0..<count {
            parents.append(i == 0 ? -1 : Int.random(in: -1..<i, using: &generator))
            tokens.append(TokenID(Int.random(in: 0..<vocabulary, using: &generator)))
        }
        return (tokens, parents)
    }

    static func path(to node: Int, parents: [Int]) -> [Int] {
        var path: [Int] = []
        var current = node
        while current >= 0 {
            path.append(current)
            current = parents[current]
        }
        return path.reversed()
    }

    @Test(
        "a node's logits are bit-identical alone, in a chain and inside a 64-node tree",
        arguments: ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
    func bitIdentical(model name: String) throws {
        let (model, tokenizer) = try Models.load(name)
        let prompt = tokenizer.encode("def quicksort(items):\n    if len(items) <= 1:\n        return items\n")
        let tree = Self.randomTree(count: 64, vocabulary: 1000, seed: 7)
        let session = try InferenceSession(model: model, context: 256)
        _ = try session.append(prompt)
        let treeLogits = try session.evaluate(tokens: tree.tokens, parents: tree.parents)

        for node in [0, 5, 17, 40, 63] {
            let path = Self.path(to: node, parents: tree.parents)
            let pathTokens = path.map { tree.tokens[$0] }
            // The same branch as a chain in one batch.
            let chain = try session.evaluate(tokens: pathTokens, parents: (0..<path.count).map { $0 - 1 })
            // The same branch one token at a time, committing as it goes, then rolled back.
            var single: [Float] = []
            for (j, token) in pathTokens.enumerated() {
                let result = try session.evaluate(tokens: [token], parents: [-1])
                try session.commit([0])
                if j == path.count - 1 { single = result.values }
            }
            try session.rollback(to: prompt.count)
            let inTree = Array(treeLogits.row(for: node))
            #expect(inTree == Array(chain.row(for: path.count - 1)), "\(name) node \(node): tree vs chain")
            #expect(inTree == single, "\(name) node \(node): tree vs one at a time")
        }

        // The same tree built in two calls (extending the pending tree) gives the same logits.
        let half = 30
        _ = try session.evaluate(tokens: Array(tree.tokens[..<half]), parents: Array(tree.parents[..<half]))
        let extended = try session.extend(tokens: Array(tree.tokens[half...]), parents: Array(tree.parents[half...]))
        for node in half..<tree.tokens.count {
            #expect(
                Array(extended.row(for: node - half)) == Array(treeLogits.row(for: node)),
                "\(name) node \(node): extended tree")
        }

        // Commit one branch of the tree, then continue: same as if that branch had been decoded alone.
        let branch = Self.path(to: 40, parents: tree.parents)
        _ = try session.evaluate(tokens: tree.tokens, parents: tree.parents)
        try session.commit(branch)
        #expect(session.committedLength == prompt.count + branch.count)
        let next = try session.evaluate(tokens: [42], parents: [-1]).values

        let reference = try InferenceSession(model: model, context: 256)
        _ = try reference.append(prompt + branch.map { tree.tokens[$0] })
        let expected = try reference.evaluate(tokens: [42], parents: [-1]).values
        #expect(next == expected, "\(name): after committing a tree branch")
        print("\(name): tree, chain, single-token and committed-branch logits bit-identical")
    }

    @Test("a limited output head scores exactly the first rows and nothing else")
    func limitedHead() throws {
        let (model, tokenizer) = try Models.load("smollm2-135m-instruct")
        let prompt = tokenizer.encode("for i in range(10):")
        let full = try InferenceSession(model: model, context: 64)
        let limited = try InferenceSession(model: model, context: 64, headRows: 4096)
        let a = try full.append(prompt)
        let b = try limited.append(prompt)
        #expect(Array(a[..<4096]) == Array(b[..<4096]))
        #expect(b[4096...].allSatisfy { $0 == -.infinity })
        #expect(throws: RuntimeError.self) { try InferenceSession(model: model, context: 64, headRows: 0) }
    }

    @Test("bad requests are typed errors and leave the cache usable")
    func badRequests() throws {
        let (model, _) = try Models.load("smollm2-135m-instruct")
        #expect(throws: RuntimeError.contextTooLong(requested: 100_000, trained: 8192)) {
            try InferenceSession(model: model, context: 100_000)
        }
        let session = try InferenceSession(model: model, context: 16)
        _ = try session.append([1, 2, 3])
        #expect(throws: RuntimeError.tokenOutOfRange(49152, vocabulary: 49152)) {
            try session.evaluate(tokens: [49152], parents: [-1])
        }
        #expect(throws: RuntimeError.malformedTree("node 1 has parent 1")) {
            try session.evaluate(tokens: [5, 6], parents: [-1, 1])
        }
        #expect(throws: ModelSessionError.contextFull(needed: 17, capacity: 16)) {
            try session.append(Array(repeating: 5, count: 14))
        }
        _ = try session.evaluate(tokens: [5, 6, 7], parents: [-1, 0, 0])
        #expect(throws: RuntimeError.self) { try session.commit([1]) }  // not a branch from a root
        #expect(throws: RuntimeError.self) { try session.rollback(to: 10) }
        #expect(session.committedLength == 3)
    }
}
