import CSpeculateKernels
import Foundation
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// The kernel-set table as the runtime and the command line use it.
@Suite("Kernel set selection")
struct KernelSelectionTests {
    @Test("unknown and unsupported sets are refused with the sets that would work; the choice stays")
    func refusals() throws {
        let before = ComputeThreads.kernelName
        #expect(throws: KernelSelectionError.unknown("avx9000", known: ComputeThreads.kernelSets.map(\.name))) {
            try ComputeThreads.applyKernelOverride(environment: ["SPECULATE_KERNELS": "avx9000"])
        }
        if let missing = ComputeThreads.kernelSets.first(where: { !$0.supported }) {
            let error = #expect(throws: KernelSelectionError.self) { try ComputeThreads.selectKernels(missing.name) }
            #expect(error?.description.contains("this CPU cannot run the '\(missing.name)' kernels") == true)
            #expect(error?.description.contains("portable") == true)
        }
        #expect(ComputeThreads.kernelName == before)
        try ComputeThreads.applyKernelOverride(environment: [:])  // unset: nothing changes
        #expect(ComputeThreads.kernelName == before)
    }

    /// On real model tensors, in the package's own (clang) build: each set the CPU runs gives
    /// the same products for 17 tokens however the batch is split, and the VNNI sets equal the portable kernels bit
    /// for bit on the K-quants.
    @Test(
        "every supported set on real tensors: batch invariance and the VNNI sets' exactness",
        arguments: [
            ("qwen2.5-coder-1.5b-instruct", "blk.0.attn_q.weight"),
            ("qwen2.5-coder-1.5b-instruct", "blk.0.ffn_down.weight"),
            ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_q.weight"),
        ])
    func realTensors(model: String, tensor name: String) throws {
        let file = try GGUFFile(path: try TestSupport.modelPath(model))
        let tensor = try file.requireTensor(name)
        let n = tensor.rowLength
        let rows = 24
        let tokens = 17
        let type = Int32(tensor.type.rawValue)
        let format = spec_act_format_for(type)
        let stride = spec_act_row_bytes(format, Int32(n))
        let inputs = VectorOperationTests.randomFloats(tokens * n, seed: 5, scale: 2)
        let acts = UnsafeMutableRawPointer.allocate(byteCount: stride * tokens, alignment: 64)
        defer { acts.deallocate() }
        inputs.withUnsafeBufferPointer { x in
            for t in 0..<tokens { spec_quantize_act(format, x.baseAddress! + t * n, Int32(n), acts + t * stride) }
        }
        let base = file.data(of: tensor).baseAddress!
        // Through spec_matmul_with_set, so the process's kernel set (which concurrently running
        // tests decode with) never changes.
        func product(
            _ set: String, _ count: Int, first: Int = 0,
            layout: (type: Int32, weights: UnsafeRawPointer, rowBytes: Int)? = nil
        ) -> [Float] {
            var y = [Float](repeating: .nan, count: count * rows)
            let (type, weights, rowBytes) = layout ?? (type, base, tensor.rowBytes)
            let status = y.withUnsafeMutableBufferPointer {
                spec_matmul_with_set(
                    set, type, Int32(n), weights, rowBytes, 0, Int32(rows), acts + first * stride, stride, Int32(count),
                    $0.baseAddress!, rows)
            }
            #expect(status == Int32(SPEC_KERNELS_OK.rawValue), "\(set) refused")
            return y
        }
        let portable = product("portable", tokens)
        for set in ComputeThreads.kernelSets where set.supported {
            let all = product(set.name, tokens)
            // 17 tokens at once (16 through the VNNI sets' wide kernels and one), 1 + 16, and 3 + 5 + 9.
            let pieces = product(set.name, 1) + product(set.name, 16, first: 1)
            let others = product(set.name, 3) + product(set.name, 5, first: 3) + product(set.name, 9, first: 8)
            #expect(
                all.map(\.bitPattern) == pieces.map(\.bitPattern), "\(set.name) \(name): results depend on the batch")
            #expect(
                all.map(\.bitPattern) == others.map(\.bitPattern), "\(set.name) \(name): results depend on the batch")
            if set.name.hasSuffix("vnni")
                && [SPEC_Q4_K, SPEC_Q5_K, SPEC_Q6_K].map({ Int32($0.rawValue) }).contains(type)
            {
                #expect(
                    all.map(\.bitPattern) == portable.map(\.bitPattern),
                    "\(set.name) \(name) differs from the portable kernels")
            }
        }
        // The packed layout the runtime loads Q4_K and Q6_K into for the VNNI sets: every set
        // (the others through the portable unpacking) equals the portable kernels on the file.
        for packedType in [SPEC_Q4_K_X8, SPEC_Q6_K_X8].map({ Int32($0.rawValue) })
        where spec_packed_base_type(packedType) == type {
            let packedRowBytes = spec_packed_row_bytes(packedType, Int32(n))
            let packed = UnsafeMutableRawPointer.allocate(byteCount: packedRowBytes * rows, alignment: 64)
            defer { packed.deallocate() }
            #expect(spec_pack_rows(packedType, Int32(n), base, tensor.rowBytes, 0, Int32(rows), packed) == 0)
            let layout = (packedType, UnsafeRawPointer(packed), packedRowBytes)
            for set in ComputeThreads.kernelSets where set.supported {
                let all = product(set.name, tokens, layout: layout)
                let pieces =
                    product(set.name, 1, layout: layout) + product(set.name, 2, first: 1, layout: layout)
                    + product(set.name, 6, first: 3, layout: layout) + product(set.name, 8, first: 9, layout: layout)
                #expect(
                    all.map(\.bitPattern) == portable.map(\.bitPattern),
                    "\(set.name) \(name) packed differs from the portable kernels")
                #expect(
                    all.map(\.bitPattern) == pieces.map(\.bitPattern),
                    "\(set.name) \(name) packed: results depend on the batch")
            }
        }
    }
}
