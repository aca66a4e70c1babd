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
        let header =
            format == Int32(SPEC_ACT_Q8_32.rawValue)
            ? ((n / 32) * 6 + 31) / 32 * 32 : ((n / 256) * 4 + (n / 16) * 2 + (n / 32) * 2 + 31) / 32 * 32
        let block = format == Int32(SPEC_ACT_Q8_32.rawValue) ? 32 : 256
        let scales = row.assumingMemoryBound(to: Float.self)
        let q = (row + header).assumingMemoryBound(to: Int8.self)
        return (0..<n).map { Double(q[$0]) * Double(scales[$0 / block]) }
    }

    @Test(
        "every kernel equals the dot product of dequantized weights and activations",
        arguments: [
            ("smollm2-135m-instruct", "blk.0.attn_q.weight"), ("smollm2-135m-instruct", "token_embd.weight"),
            ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_q.weight"),
            ("qwen2.5-coder-0.5b-instruct", "blk.0.ffn_down.weight"),
            ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_v.weight"),
            ("qwen2.5-coder-1.5b-instruct", "blk.0.attn_q.weight"),
            ("qwen2.5-coder-1.5b-instruct", "blk.0.ffn_down.weight"),
        ])
    func kernelMatchesDequantized(model: String, tensor name: String) throws {
        let file = try GGUFFile(path: try TestSupport.modelPath(model))
        let tensor = try file.requireTensor(name)
        let n = tensor.rowLength
        let rows = 16
        let tokens = 3
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
                kernel(
                    Int32(tensor.type.rawValue), Int32(n), base, tensor.rowBytes, 0, Int32(rows), acts, stride,
                    Int32(tokens), y.baseAddress!, rows)
            }
            for t in 0..<tokens {
                let x = Self.activationsAsFloats(format: format, n: n, row: acts + t * stride)
                for r in 0..<rows {
                    let expected = (0..<n).reduce(0.0) { $0 + Double(weights[r * n + $1]) * x[$1] }
                    let magnitude = (0..<n).reduce(0.0) { $0 + abs(Double(weights[r * n + $1]) * x[$1]) }
                    let error = abs(Double(output[t * rows + r]) - expected)
                    #expect(
                        error <= 1e-5 * magnitude + 1e-6,
                        "\(model) \(name) \(tensor.type) \(portable ? "portable" : String(cString: spec_kernels_name())) row \(r) token \(t): \(output[t * rows + r]) vs \(expected)"
                    )
                }
            }
        }
    }
}

@Suite("Activation quantization and the forward pass's vector operations")
struct VectorOperationTests {
    static func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in scale * Float(Double(generator.next() % 200001) / 100000 - 1) }
    }

    @Test(
        "8-bit activations equal symmetric round-to-nearest-even quantization, sums included",
        arguments: [SPEC_ACT_Q8_32, SPEC_ACT_Q8_256])
    func quantization(format: spec_act_format) {
        let n = 1024
        let block = format == SPEC_ACT_Q8_32 ? 32 : 256
        let span = format == SPEC_ACT_Q8_32 ? 32 : 16
        var x = Self.randomFloats(n, seed: 11, scale: 3)
        for i in 0..<block { x[block + i] = 0 }  // an all-zero block
        for i in 0..<block { x[2 * block + i] = Float(i % 9) - 4 }  // exact halves after scaling by 127/4
        let stride = spec_act_row_bytes(Int32(format.rawValue), Int32(n))
        let row = UnsafeMutableRawPointer.allocate(byteCount: stride, alignment: 64)
        defer { row.deallocate() }
        spec_quantize_act(Int32(format.rawValue), x, Int32(n), row)
        let scales = row.assumingMemoryBound(to: Float.self)
        let sums = (row + (n / block) * 4).assumingMemoryBound(to: Int16.self)
        let header =
            format == SPEC_ACT_Q8_32
            ? ((n / 32) * 6 + 31) / 32 * 32 : ((n / 256) * 4 + (n / 16) * 2 + (n / 32) * 2 + 31) / 32 * 32
        let q = (row + header).assumingMemoryBound(to: Int8.self)
        var expected = [Int8](repeating: 0, count: n)
        for b in 0..<n / block {
            let amax = x[b * block..<(b + 1) * block].map(abs).max()!
            #expect(scales[b] == (amax == 0 ? 0 : amax / 127), "block \(b) scale")
            guard amax > 0 else { continue }
            let inverse = Float(127) / amax
            for i in b * block..<(b + 1) * block {
                expected[i] = Int8(max(-127, min(127, (x[i] * inverse).rounded(.toNearestOrEven))))
            }
        }
        #expect(
            (0..<n).allSatisfy { q[$0] == expected[$0] }, "\(String(cString: spec_kernels_name())) quantized values")
        for g in 0..<n / span {
            #expect(Int(sums[g]) == expected[g * span..<(g + 1) * span].reduce(0) { $0 + Int($1) }, "sum \(g)")
        }
        if format == SPEC_ACT_Q8_256 {  // the per-32 sums that follow the per-16 ones
            for g in 0..<n / 32 {
                #expect(
                    Int(sums[n / 16 + g]) == expected[g * 32..<(g + 1) * 32].reduce(0) { $0 + Int($1) },
                    "32-value sum \(g)")
            }
        }
    }

    @Test("RMS norm and the SwiGLU gate match double-precision formulas")
    func normAndGate() {
        let n = 1000  // not a multiple of 8: the scalar tails run too
        let x = Self.randomFloats(n, seed: 5, scale: 4)
        let weight = Self.randomFloats(n, seed: 6)
        var out = [Float](repeating: 0, count: n)
        spec_rms_norm(x, weight, Int32(n), 1e-6, &out)
        let rms = (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) + 1e-6).squareRoot()
        for i in 0..<n {
            #expect(abs(Double(out[i]) - Double(x[i]) / rms * Double(weight[i])) <= 1e-5 * (1 + abs(Double(out[i]))))
        }

        var gate = Self.randomFloats(n, seed: 7, scale: 30)
        let original = gate
        let up = Self.randomFloats(n, seed: 8, scale: 2)
        spec_silu_mul(&gate, up, Int32(n))
        for i in 0..<n {
            let g = Double(original[i])
            let expected = g / (1 + Foundation.exp(-g)) * Double(up[i])
            #expect(abs(Double(gate[i]) - expected) <= 1e-5 * (1 + abs(expected)), "silu(\(g)) * \(up[i])")
        }
    }

    @Test(
        "tree attention matches a double-precision softmax over the prefix and each node's ancestors",
        arguments: [
            (64, 3, 1, 37, false), (128, 6, 2, 37, true), (40, 2, 2, 37, false), (64, 7, 2, 150, true),
            (24, 5, 1, 70, true), (32, 4, 2, 20, false),
        ])
    func attention(headDimension hd: Int, group: Int, kvHeads: Int, prefix: Int, headMajor: Bool) {
        // The shapes cover every head tile of the AVX2 loop (6, 5, 4, 3, 2 and 1 heads), an
        // 8-lane last slice (40, 24), key tails, and slot chunks past the first (150 > 64), in
        // both cache layouts: a slot's heads adjacent, or each head's slots adjacent (the runtime's).
        let pending = [[0], [0, 1], [0, 2], [0, 1, 3]]  // node i's ancestors, root first
        let slotsUsed = prefix + pending.count
        let kvWidth = kvHeads * hd
        let qWidth = kvWidth * group
        // The cache holds half-precision values; the reference uses exactly those values.
        func halves(_ floats: [Float]) -> (bits: [UInt16], values: [Float]) {
            var bits = [UInt16](repeating: 0, count: floats.count)
            var back = [Float](repeating: 0, count: floats.count)
            spec_f32_to_f16(floats, Int32(floats.count), &bits)
            spec_f16_to_f32(bits, Int32(bits.count), &back)
            return (bits, back)
        }
        let (slotMajorKeys, keys) = halves(Self.randomFloats(slotsUsed * kvWidth, seed: 21))
        let (slotMajorValues, values) = halves(Self.randomFloats(slotsUsed * kvWidth, seed: 22))
        // `keys` and `values` index [slot][head][lane]; the kernel reads the chosen layout.
        func laidOut(_ bits: [UInt16]) -> [UInt16] {
            guard headMajor else { return bits }
            var out: [UInt16] = []
            for head in 0..<kvHeads {
                for slot in 0..<slotsUsed {
                    let start = slot * kvWidth + head * hd
                    out.append(contentsOf: bits[start..<(start + hd)])
                }
            }
            return out
        }
        let keyBits = laidOut(slotMajorKeys)
        let valueBits = laidOut(slotMajorValues)
        let slotStride = headMajor ? hd : kvWidth
        let headStride = headMajor ? slotsUsed * hd : hd
        let queries = Self.randomFloats(pending.count * qWidth, seed: 23, scale: 3)
        let slots = pending.flatMap { $0.map { Int32(prefix + $0) } }
        var starts: [Int32] = [0]
        for path in pending { starts.append(starts.last! + Int32(path.count)) }
        var output = [Float](repeating: .nan, count: pending.count * qWidth)
        let threads = ComputeThreads.count
        var scores = [Float](repeating: 0, count: threads * group * slotsUsed)
        let scale = 1 / Float(hd).squareRoot()
        keyBits.withUnsafeBufferPointer { k in
            valueBits.withUnsafeBufferPointer { v in
                queries.withUnsafeBufferPointer { q in
                    slots.withUnsafeBufferPointer { s in
                        starts.withUnsafeBufferPointer { st in
                            output.withUnsafeMutableBufferPointer { o in
                                var job = spec_attention(
                                    queries: q.baseAddress, q_stride: qWidth, keys: k.baseAddress,
                                    values: v.baseAddress,
                                    kv_stride: slotStride, kv_head_stride: headStride, head_dim: Int32(hd),
                                    group: Int32(group), prefix: Int32(prefix),
                                    slots: s.baseAddress, slot_start: st.baseAddress, scale: scale,
                                    output: o.baseAddress, out_stride: qWidth)
                                spec_attention_run(
                                    &job, Int32(pending.count), Int32(kvHeads), &scores, group * slotsUsed)
                            }
                        }
                    }
                }
            }
        }
        for (node, path) in pending.enumerated() {
            let visible = Array(0..<prefix) + path.map { prefix + $0 }
            for head in 0..<kvHeads * group {
                let kvOffset = (head / group) * hd
                let raw = visible.map { slot in
                    (0..<hd).reduce(0.0) {
                        $0 + Double(queries[node * qWidth + head * hd + $1])
                            * Double(keys[slot * kvWidth + kvOffset + $1])
                    } * Double(scale)
                }
                let top = raw.max()!
                let weights = raw.map { Foundation.exp($0 - top) }
                let total = weights.reduce(0, +)
                for e in 0..<hd {
                    let expected = zip(visible, weights).reduce(0.0) {
                        $0 + $1.1 / total * Double(values[$1.0 * kvWidth + kvOffset + e])
                    }
                    let actual = Double(output[node * qWidth + head * hd + e])
                    #expect(
                        abs(actual - expected) <= 1e-5, "node \(node) head \(head) lane \(e): \(actual) vs \(expected)")
                }
            }
        }
    }
}
