import Foundation
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// Greedy decoding helper shared by the runtime tests.
func greedy(_ session: InferenceSession, prompt: [TokenID], count: Int) throws -> [TokenID] {
    var logits = try session.prefill(prompt)
    var output: [TokenID] = []
    for _ in 0..<count {
        let next = TokenID(logits.indices.max { logits[$0] < logits[$1] }!)
        output.append(next)
        let result = try session.evaluate(tokens: [next], parents: [-1])
        try session.commit([0])
        logits = Array(result.values)
    }
    return output
}

@Suite("Runtime smoke")
struct RuntimeSmokeTests {
    @Test("greedy text", arguments: ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"])
    func greedyText(model name: String) throws {
        let path = try TestSupport.modelPath(name)
        let model = try TransformerModel(path: path)
        let tokenizer = try Tokenizer(gguf: model.file)
        let session = try InferenceSession(model: model, context: 256)
        let prompt = tokenizer.encode("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n")
        let start = Date()
        let output = try greedy(session, prompt: prompt, count: 32)
        print(name, ComputeThreads.kernelName, String(format: "%.2f s", Date().timeIntervalSince(start)), tokenizer.decode(output).debugDescription)
    }
}
