import CSpeculateKernels
import Foundation
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

@Suite("Quantized kernels against dequantized weights")
struct KernelTests {
    /// Dequantizes the 8-bit activations back to floats, as the kernel sees them.
    static func activationsAsFloats(format: Int32, n: Int, row: UnsafeRawPointer) -> [Double] {
        let header = format == Int32(SPEC_ACT_Q8_32.rawValue) ? ((n / 32) * 6 + 31) / 32 * 32 : ((n / 256) * 4 + (n / 16) * 2 + 31) / 32 * 32
        let block = format == Int32(SPEC_ACT_Q8_32.rawValue) ? 32 : 256
        let scales = row.assumingMemoryBound(to: Float.self)
        let q = (row + header).assumingMemoryBound(to: Int8.self)
        return (0..<n).map { Double(q[$0]) * Double(scales[$0 / block]) }
    }

    @Test("every kernel equals the dot product of dequantized weights and activations",
          arguments: [("smollm2-135m-instruct", "blk.0.attn_q.weight"), ("smollm2-135m-instruct", "token_embd.weight"),
                      ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_q.weight"), ("qwen2.5-coder-0.5b-instruct", "blk.0.ffn_down.weight"),
                      ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_v.weight"),
                      ("qwen2.5-coder-1.5b-instruct", "blk.0.attn_q.weight"), ("qwen2.5-coder-1.5b-instruct", "blk.0.ffn_down.weight")])
    func kernelMatchesDequantized(model: String, tensor name: String) throws {
        let file = try GGUFFile(path: try TestSupport.modelPath(model))
        let tensor = try file.requireTensor(name)
        let n = tensor.rowLength, rows = 16, tokens = 3
        let format = spec_act_format_for(Int32(tensor.type.rawValue))
        let stride = spec_act_row_bytes(format, Int32(n))
        var generator = SplitMix64(seed: 3)
        let inputs = (0..<tokens * n).map { _ in Float(Double(generator.next() % 20001) / 10000 - 1) }
        let acts = UnsafeMutableRawPointer.allocate(byteCount: stride * tokens, alignment: 64)
        defer { acts.deallocate() }
        inputs.withUnsafeBufferPointer { x in
            for t in 0..<tokens { spec_quantize_act(format, x.baseAddress! + t * n, Int32(n), acts + t * stride) }
        }
        let weights = file.dequantize(tensor, rows: 0..<rows)
        let base = file.data(of: tensor).baseAddress!
        for portable in [false, true] {
            var output = [Float](repeating: 0, count: tokens * rows)
            output.withUnsafeMutableBufferPointer { y in
                let kernel = portable ? spec_matmul_portable : spec_matmul
                kernel(Int32(tensor.type.rawValue), Int32(n), base, tensor.rowBytes, 0, Int32(rows), acts, stride, Int32(tokens), y.baseAddress!, rows)
            }
            for t in 0..<tokens {
                let x = Self.activationsAsFloats(format: format, n: n, row: acts + t * stride)
                for r in 0..<rows {
                    let expected = (0..<n).reduce(0.0) { $0 + Double(weights[r * n + $1]) * x[$1] }
                    let magnitude = (0..<n).reduce(0.0) { $0 + abs(Double(weights[r * n + $1]) * x[$1]) }
                    let error = abs(Double(output[t * rows + r]) - expected)
                    #expect(error <= 1e-5 * magnitude + 1e-6, "\(model) \(name) \(tensor.type) \(portable ? "portable" : String(cString: spec_kernels_name())) row \(r) token \(t): \(output[t * rows + r]) vs \(expected)")
                }
            }
        }
    }
}
