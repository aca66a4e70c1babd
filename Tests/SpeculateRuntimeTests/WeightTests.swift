import CSpeculateKernels
import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

@Suite("Requantized draft weights", .serialized)
struct RequantizationTests {
    /// Deterministic values with a normal-ish bulk and a few outliers, like real weight rows.
    static func weights(count: Int, seed: UInt64) -> [Float] {
        var state = seed
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        return (0..<count).map { i in
            let bulk = (uniform() + uniform() + uniform() - 1.5) * 0.05
            return i % 97 == 0 ? bulk * 12 : bulk
        }
    }

    /// Round trip through each 4-bit quantizer and the reference dequantizer, against the error
    /// bounds the quantizers promise (see `quantize.c`).
    @Test("Q4_K and Q4_0 quantizers round-trip within their stated error bounds", arguments: [GGMLType.q4_K, .q4_0])
    func roundTrip(type: GGMLType) {
        let n = 4096
        let x = Self.weights(count: n, seed: 7)
        var blocks = [UInt8](repeating: 0, count: n / type.blockSize * type.blockBytes)
        var y = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { source in
            blocks.withUnsafeMutableBytes { out in
                if type == .q4_K {
                    spec_quantize_q4_K(source.baseAddress!, Int32(n), out.baseAddress!)
                } else {
                    spec_quantize_q4_0(source.baseAddress!, Int32(n), out.baseAddress!)
                }
            }
        }
        blocks.withUnsafeBytes { bytes in
            y.withUnsafeMutableBufferPointer {
                Dequantizer.dequantize(type, from: bytes.baseAddress!, count: n, into: $0.baseAddress!)
            }
        }
        var squared = 0.0
        var total = 0.0
        for start in stride(from: 0, to: n, by: 32) {
            let block = x[start..<start + 32]
            let bound: Float
            if type == .q4_K {
                // Half a step of the sub-block plus the rounding of the super-block's scales
                // (d and dmin: the largest sub-block step and offset over 63).
                let superBlock = x[start / 256 * 256..<start / 256 * 256 + 256]
                let subBlocks = stride(from: superBlock.startIndex, to: superBlock.endIndex, by: 32).map {
                    x[$0..<$0 + 32]
                }
                let d = subBlocks.map { (max($0.max()!, 0) - min($0.min()!, 0)) / 15 }.max()! / 63
                let dmin = subBlocks.map { -min($0.min()!, 0) }.max()! / 63
                bound = (max(block.max()!, 0) - min(block.min()!, 0)) / 15 / 2 + d + dmin
            } else {
                // Symmetric about zero, the largest magnitude exact: one step on the other side.
                bound = block.map(abs).max()! / 8
            }
            for i in start..<start + 32 {
                #expect(
                    abs(x[i] - y[i]) <= bound * 1.01 + 1e-6,
                    "\(type) element \(i): \(x[i]) became \(y[i]) (bound \(bound))")
                squared += Double((x[i] - y[i]) * (x[i] - y[i]))
                total += Double(x[i] * x[i])
            }
        }
        let relative = (squared / total).squareRoot()
        print("\(type) round trip: relative RMS error \(String(format: "%.3f", relative))")
        #expect(relative < 0.2)
    }

    @Test("a requantized 0.5B reads fewer bytes per token and keeps its predictions")
    func requantizedModel() throws {
        let file = try SharedModels.model("qwen2.5-coder-0.5b-instruct")
        let small = try SharedModels.model("qwen2.5-coder-0.5b-instruct", precision: .q4K)
        let tokenizer = try Tokenizer(gguf: file.file)
        // Q5_0 and Q8_0 (head) to 4.5 bits per weight: about a quarter fewer bytes.
        print("0.5B bytes per token: file \(file.weightBytes), q4_k \(small.weightBytes)")
        #expect(Double(small.weightBytes) < 0.8 * Double(file.weightBytes))
        let prompt = tokenizer.encode(
            "def is_palindrome(s: str) -> bool:\n    \"\"\"Return True if s reads the same backwards.\"\"\"\n")
        let a = try greedy(try InferenceSession(model: file, context: 256), prompt: prompt, count: 24)
        let b = try greedy(try InferenceSession(model: small, context: 256), prompt: prompt, count: 24)
        // A 4-bit draft is a different model; it must still mostly agree (this is what acceptance
        // needs), at least on the first tokens of an easy continuation.
        let agreeing = zip(a, b).prefix { $0 == $1 }.count
        print("0.5B file vs q4_k greedy: first \(agreeing) of 24 tokens agree")
        #expect(agreeing >= 4)
    }
}

@Suite("Output heads of chosen tokens")
struct ChosenHeadTests {
    @Test("a head of chosen tokens scores exactly those tokens, bit-identical to the full head")
    func chosenTokens() throws {
        let (model, tokenizer) = try Models.load("qwen2.5-coder-0.5b-instruct")
        let prompt = tokenizer.encode("import numpy as np\n")
        // Scattered ids, out of order, across the packed groups of eight rows.
        let chosen: [TokenID] =
            [151_935, 7, 13, 100_000]
            + (0..<300).map { TokenID(($0 * 7919 + 11) % 151_000) }.filter { ![7, 13].contains($0) }
        var seen = Set<TokenID>()
        let unique = chosen.filter { seen.insert($0).inserted }
        let full = try InferenceSession(model: model, context: 64)
        let limited = try InferenceSession(model: model, context: 64, headTokens: unique)
        let a = try full.append(prompt)
        let b = try limited.append(prompt)
        let set = Set(unique)
        for token in unique { #expect(b[Int(token)] == a[Int(token)], "token \(token)") }
        #expect(b.indices.allSatisfy { set.contains(TokenID($0)) || b[$0] == -.infinity })
        #expect(throws: RuntimeError.self) { try InferenceSession(model: model, context: 64, headTokens: []) }
        #expect(throws: RuntimeError.self) {
            try InferenceSession(model: model, context: 64, headTokens: [1, 151_936])
        }
        #expect(throws: RuntimeError.self) { try InferenceSession(model: model, context: 64, headTokens: [1, 2, 1]) }
    }
}
