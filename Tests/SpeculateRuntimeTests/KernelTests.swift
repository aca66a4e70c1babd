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
        let header = format == Int32(SPEC_ACT_Q8_32.rawValue) ? ((n / 32) * 6 + 31) / 32 * 32 : ((n / 256) * 4 + (n / 16) * 2 + (n / 32) * 2 + 31) / 32 * 32
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

@Suite("Activation quantization and the forward pass's vector operations")
struct VectorOperationTests {
    static func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in scale * Float(Double(generator.next() % 200001) / 100000 - 1) }
    }

    @Test("8-bit activations equal symmetric round-to-nearest-even quantization, sums included",
          arguments: [SPEC_ACT_Q8_32, SPEC_ACT_Q8_256])
    func quantization(format: spec_act_format) {
        let n = 1024, block = format == SPEC_ACT_Q8_32 ? 32 : 256, span = format == SPEC_ACT_Q8_32 ? 32 : 16
        var x = Self.randomFloats(n, seed: 11, scale: 3)
        for i in 0..<block { x[block + i] = 0 }                   // an all-zero block
        for i in 0..<block { x[2 * block + i] = Float(i % 9) - 4 } // exact halves after scaling by 127/4
        let stride = spec_act_row_bytes(Int32(format.rawValue), Int32(n))
        let row = UnsafeMutableRawPointer.allocate(byteCount: stride, alignment: 64)
        defer { row.deallocate() }
        spec_quantize_act(Int32(format.rawValue), x, Int32(n), row)
        let scales = row.assumingMemoryBound(to: Float.self)
        let sums = (row + (n / block) * 4).assumingMemoryBound(to: Int16.self)
        let header = format == SPEC_ACT_Q8_32 ? ((n / 32) * 6 + 31) / 32 * 32 : ((n / 256) * 4 + (n / 16) * 2 + (n / 32) * 2 + 31) / 32 * 32
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
        #expect((0..<n).allSatisfy { q[$0] == expected[$0] }, "\(String(cString: spec_kernels_name())) quantized values")
        for g in 0..<n / span {
            #expect(Int(sums[g]) == expected[g * span..<(g + 1) * span].reduce(0) { $0 + Int($1) }, "sum \(g)")
        }
        if format == SPEC_ACT_Q8_256 {  // the per-32 sums that follow the per-16 ones
            for g in 0..<n / 32 {
                #expect(Int(sums[n / 16 + g]) == expected[g * 32..<(g + 1) * 32].reduce(0) { $0 + Int($1) }, "32-value sum \(g)")
            }
        }
    }

    @Test("RMS norm and the SwiGLU gate match double-precision formulas")
    func normAndGate() {
        let n = 1000  // not a multiple of 8: the scalar tails run too
        let x = Self.randomFloats(n, seed: 5, scale: 4), weight = Self.randomFloats(n, seed: 6)
        var out = [Float](repeating: 0, count: n)
        spec_rms_norm(x, weight, Int32(n), 1e-6, &out)
        let rms = (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) + 1e-6).squareRoot()
        for i in 0..<n { #expect(abs(Double(out[i]) - Double(x[i]) / rms * Double(weight[i])) <= 1e-5 * (1 + abs(Double(out[i])))) }

        var gate = Self.randomFloats(n, seed: 7, scale: 30)
        let original = gate, up = Self.randomFloats(n, seed: 8, scale: 2)
        spec_silu_mul(&gate, up, Int32(n))
        for i in 0..<n {
            let g = Double(original[i]), expected = g / (1 + Foundation.exp(-g)) * Double(up[i])
            #expect(abs(Double(gate[i]) - expected) <= 1e-5 * (1 + abs(expected)), "silu(\(g)) * \(up[i])")
        }
    }

    @Test("tree attention matches a double-precision softmax over the prefix and each node's ancestors",
          arguments: [(64, 3, 1, 37, false), (128, 6, 2, 37, true), (40, 2, 2, 37, false), (64, 7, 2, 150, true),
                      (24, 5, 1, 70, true), (32, 4, 2, 20, false)])
    func attention(headDimension hd: Int, group: Int, kvHeads: Int, prefix: Int, headMajor: Bool) {
        // The shapes cover every head tile of the AVX2 loop (6, 5, 4, 3, 2 and 1 heads), an
        // 8-lane last slice (40, 24), key tails, and slot chunks past the first (150 > 64), in
        // both cache layouts: a slot's heads adjacent, or each head's slots adjacent (the runtime's).
        let pending = [[0], [0, 1], [0, 2], [0, 1, 3]]  // node i's ancestors, root first
        let slotsUsed = prefix + pending.count, kvWidth = kvHeads * hd, qWidth = kvWidth * group
        // The cache holds half-precision values; the reference uses exactly those values.
        func halves(_ floats: [Float]) -> (bits: [UInt16], values: [Float]) {
            var bits = [UInt16](repeating: 0, count: floats.count), back = [Float](repeating: 0, count: floats.count)
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
        let keyBits = laidOut(slotMajorKeys), valueBits = laidOut(slotMajorValues)
        let slotStride = headMajor ? hd : kvWidth, headStride = headMajor ? slotsUsed * hd : hd
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
                                var job = spec_attention(queries: q.baseAddress, q_stride: qWidth, keys: k.baseAddress, values: v.baseAddress,
                                                         kv_stride: slotStride, kv_head_stride: headStride, head_dim: Int32(hd), group: Int32(group), prefix: Int32(prefix),
                                                         slots: s.baseAddress, slot_start: st.baseAddress, scale: scale,
                                                         output: o.baseAddress, out_stride: qWidth)
                                spec_attention_run(&job, Int32(pending.count), Int32(kvHeads), &scores, group * slotsUsed)
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
                    (0..<hd).reduce(0.0) { $0 + Double(queries[node * qWidth + head * hd + $1]) * Double(keys[slot * kvWidth + kvOffset + $1]) } * Double(scale)
                }
                let top = raw.max()!, weights = raw.map { Foundation.exp($0 - top) }, total = weights.reduce(0, +)
                for e in 0..<hd {
                    let expected = zip(visible, weights).reduce(0.0) { $0 + $1.1 / total * Double(values[$1.0 * kvWidth + kvOffset + e]) }
                    let actual = Double(output[node * qWidth + head * hd + e])
                    #expect(abs(actual - expected) <= 1e-5, "node \(node) head \(head) lane \(e): \(actual) vs \(expected)")
                }
            }
        }
    }
}

/// Builds Tests/Reference/kernel_check.c with the kernel sources and runs it: every SIMD kernel
/// set against the portable kernels on random blocks of every weight type and on tree attention
/// (21 trees, within 1e-4), each token's result
/// bit-identical across batch sizes 1 to 19, and the VNNI sets' exactness promises. The VNNI sets
/// run natively where the CPU has them and, on every x86-64 machine, through SIMDe.
@Suite("SIMD kernels against the portable ones (C check program)")
struct KernelCheckTests {
    static let crossCompiler = "/usr/bin/aarch64-linux-gnu-gcc", emulator = "/usr/bin/qemu-aarch64"
    static let simdeHeader = "/usr/include/simde/x86/avx512.h"
    /// The defines of the build that runs the VNNI sets through SIMDe's portable intrinsics.
    static let simde = ["-DSPEC_SIMDE", "-DSIMDE_NO_NATIVE"]

    /// A sanitizer ignore list for SIMDe's headers, for the alignment check only: its emulated
    /// loads copy through pointers typed as 16-byte vectors (as the intrinsics they emulate may),
    /// which clang's alignment check reports (GCC's does not look at copies).
    static func simdeIgnoreList() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("speculate-simde-ignorelist.txt").path
        try "[alignment]\nsrc:/usr/include/simde/*\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
    static var isX86: Bool {
        #if arch(x86_64)
        return true
        #else
        return false
        #endif
    }

    /// The C compiler for the x86-64 builds: the toolchain's clang, which also compiles the
    /// kernels into the package (and compiles SIMDe several times faster than GCC), or the one
    /// `SPECULATE_KERNEL_CHECK_CC` names (.ci/deep runs the check with GCC as well).
    static let compiler = ["/usr/bin/env", ProcessInfo.processInfo.environment["SPECULATE_KERNEL_CHECK_CC"] ?? "clang"]
    static var compilerIsClang: Bool { URL(fileURLWithPath: compiler[1]).lastPathComponent.hasPrefix("clang") }

    /// Builds the check program from `Tests/Reference/kernel_check.c` and the kernel sources.
    ///
    /// `flags` apply to every file; `defines` (`-DNAME` or `-DNAME=VALUE`) only to the files whose
    /// text, or a local header they include, names one of the macros, so that the variants (SIMDe,
    /// each mutant) recompile only the files they change and share every other object (`ObjectCache`).
    static func checkProgram(compiler: [String], flags: [String], defines: [String] = [], name: String = "kernel_check") throws -> String {
        let root = TestSupport.packageRoot.path, kernels = root + "/Sources/CSpeculateKernels"
        let sources = try FileManager.default.contentsOfDirectory(atPath: kernels).filter { $0.hasSuffix(".c") }.sorted()
            .map { kernels + "/" + $0 } + [root + "/Tests/Reference/kernel_check.c"]
        // -ffp-contract=off: the compiler would otherwise fuse the portable kernels' multiply-adds where it can.
        let common = flags + ["-O2", "-ffp-contract=off", "-I", kernels + "/include", "-I", kernels]
        let objects = try ObjectCache.shared.compile(sources, compiler: compiler, flags: common, defines: defines)
        let output = try TestSupport.temporaryFolder().appendingPathComponent(name).path
        _ = try TestSupport.runProcess(compiler[0], Array(compiler.dropFirst()) + flags + objects + ["-o", output, "-lpthread", "-lm"])
        return output
    }

    /// The packed layouts a set's products read (repack.c): the VNNI sets Q4_0, Q4_K and Q6_K,
    /// the Arm int8 sets Q4_K and Q6_K; the portable kernels are checked on all three.
    static func packedLayouts(of set: String) -> [String] {
        if set.hasSuffix("vnni") || set == "portable" { return ["Q4_0_X8", "Q4_K_X8", "Q6_K_X8"] }
        if set == "dotprod" || set == "i8mm" { return ["Q4_K_X8", "Q6_K_X8"] }
        return []
    }

    /// The lines a passing report must have for `sets`: a header and 8 weight types each, the
    /// packed layouts of each set and of the portable kernels, and the two half-conversion checks.
    static func expectPassed(_ report: String, sets: [String]) {
        #expect(report.contains("kernel_check: all passed"), "\(report)")
        for set in sets { #expect(report.contains("kernel_check: set \(set)\n"), "\(set) not checked:\n\(report)") }
        for set in sets {
            let attention = report.split(separator: "\n").first { $0.hasPrefix("kernel_check: " + set.padding(toLength: 10, withPad: " ", startingAt: 0) + " attention") }
            #expect(attention?.hasSuffix("pass") == true, "\(set)'s tree attention not checked:\n\(report)")
        }
        var packedLines = 0
        for set in sets + ["portable"] {
            for type in packedLayouts(of: set) {
                packedLines += 1
                #expect(report.contains(String(set.padding(toLength: 10, withPad: " ", startingAt: 0) + " \(type) packed")),
                        "\(type) not checked for \(set):\n\(report)")
            }
        }
        #expect(report.components(separatedBy: "  ok").count - 1 == 8 * sets.count + packedLines + 2, "\(report)")
    }

    @Test("every kernel set this CPU runs")
    func native() throws {
        let report = String(decoding: try TestSupport.runProcess(try Self.checkProgram(compiler: Self.compiler, flags: []), []),
                            as: UTF8.self)
        let sets = ComputeThreads.kernelSets.filter { $0.supported && $0.name != "portable" }.map(\.name)
        Self.expectPassed(report, sets: sets)
    }

    @Test("the VNNI sets through SIMDe, on any x86-64 CPU",
          .enabled(if: isX86 && FileManager.default.fileExists(atPath: simdeHeader), "needs x86-64 and libsimde-dev (.ci/run installs it)"))
    func vnniThroughSIMDe() throws {
        let program = try Self.checkProgram(compiler: Self.compiler, flags: [], defines: Self.simde, name: "kernel_check_simde")
        let report = String(decoding: try TestSupport.runProcess(program, []), as: UTF8.self)
        var sets = ["avx512vnni", "avxvnni"]
        if ComputeThreads.kernelSets.contains(where: { $0.name == "avx2" && $0.supported }) { sets.append("avx2") }
        Self.expectPassed(report, sets: sets)
        #expect(report.contains("differing from portable: 0  ok") && report.contains("differing from avx2: 0  ok"), "\(report)")
    }

    /// The same check under AddressSanitizer and UndefinedBehaviorSanitizer (GCC's runtimes; any
    /// finding aborts the program, so the run fails): out-of-bounds block or activation reads,
    /// misaligned loads, signed overflow and shifts out of range in every set this CPU runs and,
    /// through SIMDe, in both VNNI sets.
    @Test("every kernel set under AddressSanitizer and UndefinedBehaviorSanitizer", arguments: ["native", "simde"])
    func sanitized(build: String) throws {
        let simde = build == "simde"
        if simde { try #require(Self.isX86 && FileManager.default.fileExists(atPath: Self.simdeHeader), "needs x86-64 and libsimde-dev") }
        // SIMDe's own emulation is left uninstrumented (Self.simdeIgnoreList); the kernels that call it are not.
        let sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
            + (simde && Self.compilerIsClang ? ["-fsanitize-ignorelist=" + (try Self.simdeIgnoreList())] : [])
        let program = try Self.checkProgram(compiler: Self.compiler, flags: sanitizers, defines: simde ? Self.simde : [],
                                            name: "kernel_check_sanitized_\(build)")
        // ASan's defaults fail the run on any error or leak; -fno-sanitize-recover does it for UBSan.
        let report = String(decoding: try TestSupport.runProcess(program, []), as: UTF8.self)
        let sets = simde ? ["avx512vnni", "avxvnni"] : ComputeThreads.kernelSets.filter { $0.supported && $0.name != "portable" }.map(\.name)
        for set in sets { #expect(report.contains("kernel_check: set \(set)\n"), "\(set) not checked:\n\(report)") }
        #expect(report.contains("kernel_check: all passed"), "\(report)")
    }

    @Test("a deliberately broken VNNI kernel fails the check", arguments: [1, 2, 3, 4])
    func brokenKernelFails(mutant: Int) throws {
        try #require(Self.isX86 && FileManager.default.fileExists(atPath: Self.simdeHeader), "needs x86-64 and libsimde-dev")
        let program = try Self.checkProgram(compiler: Self.compiler, flags: [], defines: Self.simde + ["-DSPEC_CHECK_MUTANT=\(mutant)"],
                                            name: "kernel_check_mutant\(mutant)")
        let result = try TestSupport.runProcessCapturingAll(program, [])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        #expect(result.status != 0 && report.contains("kernel_check: FAILED"), "mutant \(mutant) passed:\n\(report)")
        if mutant == 4 {  // only the packed Q4_0 kernels carry this mutant
            let line = report.split(separator: "\n").first { $0.contains("avx512vnni Q4_0_X8 packed") }
            #expect(line?.hasSuffix("FAILED") == true, "the packed Q4_0 mutant was not caught:\n\(report)")
        }
    }

    static let canEmulateArm = FileManager.default.isExecutableFile(atPath: crossCompiler) && FileManager.default.isExecutableFile(atPath: emulator)

    /// `-cpu max` has every Arm feature qemu knows (dotprod and i8mm included), so all three
    /// Arm sets run; older CPU models check the run-time detection.
    @Test("the Arm sets (i8mm, dotprod, neon), cross-compiled for AArch64 and run under qemu-aarch64",
          .enabled(if: canEmulateArm, "needs qemu-user and gcc-aarch64-linux-gnu (.ci/run installs them)"))
    func armUnderEmulation() throws {
        let program = try Self.checkProgram(compiler: [Self.crossCompiler], flags: ["-static", "-Wno-psabi"], name: "kernel_check_aarch64")
        let report = String(decoding: try TestSupport.runProcess(Self.emulator, ["-cpu", "max", program]), as: UTF8.self)
        #expect(report.contains("kernel_check: kernels i8mm"), "\(report)")
        Self.expectPassed(report, sets: ["i8mm", "dotprod", "neon"])
        // The automatic choice follows the CPU: Cortex-A76 has sdot but not smmla, A53 neither.
        for (cpu, expected) in [("cortex-a76", "dotprod"), ("cortex-a53", "neon")] {
            let head = String(decoding: try TestSupport.runProcess(Self.emulator, ["-cpu", cpu, program]), as: UTF8.self)
            #expect(head.contains("kernel_check: kernels \(expected)\n"), "\(cpu):\n\(head)")
        }
    }

    @Test("a deliberately broken Arm kernel fails the check", arguments: [2, 3, 5])
    func brokenArmKernelFails(mutant: Int) throws {
        try #require(Self.canEmulateArm, "needs qemu-user and gcc-aarch64-linux-gnu")
        let program = try Self.checkProgram(compiler: [Self.crossCompiler], flags: ["-static", "-Wno-psabi"], defines: ["-DSPEC_CHECK_MUTANT=\(mutant)"],
                                            name: "kernel_check_aarch64_mutant\(mutant)")
        let result = try TestSupport.runProcessCapturingAll(Self.emulator, ["-cpu", "max", program])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        #expect(result.status != 0, "mutant \(mutant) passed:\n\(report)")
        // Mutant 2 gives Q4_K sub-blocks the wrong scale, mutant 3 the wrong Q6_K offset, mutant 5
        // drops a slot from the NEON attention's weighted values (all three Arm sets use it).
        let broken = mutant == 2 ? "Q4_K_X8 packed" : mutant == 3 ? "Q6_K_X8 packed" : "attention"
        for set in mutant == 5 ? ["i8mm", "dotprod", "neon"] : ["i8mm", "dotprod"] {
            let prefix = "kernel_check: " + set.padding(toLength: 10, withPad: " ", startingAt: 0) + " \(broken)"
            let line = report.split(separator: "\n").first { $0.hasPrefix(prefix) }
            #expect(line?.hasSuffix("FAILED") == true, "\(set) with mutant \(mutant) was not caught:\n\(report)")
        }
    }
}

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
    @Test("every supported set on real tensors: batch invariance and the VNNI sets' exactness",
          arguments: [("qwen2.5-coder-1.5b-instruct", "blk.0.attn_q.weight"), ("qwen2.5-coder-1.5b-instruct", "blk.0.ffn_down.weight"),
                      ("qwen2.5-coder-0.5b-instruct", "blk.0.attn_q.weight")])
    func realTensors(model: String, tensor name: String) throws {
        let file = try GGUFFile(path: try TestSupport.modelPath(model))
        let tensor = try file.requireTensor(name)
        let n = tensor.rowLength, rows = 24, tokens = 17, type = Int32(tensor.type.rawValue)
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
        func product(_ set: String, _ count: Int, first: Int = 0, layout: (type: Int32, weights: UnsafeRawPointer, rowBytes: Int)? = nil) -> [Float] {
            var y = [Float](repeating: .nan, count: count * rows)
            let (type, weights, rowBytes) = layout ?? (type, base, tensor.rowBytes)
            let status = y.withUnsafeMutableBufferPointer {
                spec_matmul_with_set(set, type, Int32(n), weights, rowBytes, 0, Int32(rows), acts + first * stride, stride, Int32(count), $0.baseAddress!, rows)
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
            #expect(all.map(\.bitPattern) == pieces.map(\.bitPattern), "\(set.name) \(name): results depend on the batch")
            #expect(all.map(\.bitPattern) == others.map(\.bitPattern), "\(set.name) \(name): results depend on the batch")
            if set.name.hasSuffix("vnni") && [SPEC_Q4_K, SPEC_Q5_K, SPEC_Q6_K].map({ Int32($0.rawValue) }).contains(type) {
                #expect(all.map(\.bitPattern) == portable.map(\.bitPattern), "\(set.name) \(name) differs from the portable kernels")
            }
        }
        // The packed layout the runtime loads Q4_K and Q6_K into for the VNNI sets: every set
        // (the others through the portable unpacking) equals the portable kernels on the file.
        for packedType in [SPEC_Q4_K_X8, SPEC_Q6_K_X8].map({ Int32($0.rawValue) }) where spec_packed_base_type(packedType) == type {
            let packedRowBytes = spec_packed_row_bytes(packedType, Int32(n))
            let packed = UnsafeMutableRawPointer.allocate(byteCount: packedRowBytes * rows, alignment: 64)
            defer { packed.deallocate() }
            #expect(spec_pack_rows(packedType, Int32(n), base, tensor.rowBytes, 0, Int32(rows), packed) == 0)
            let layout = (packedType, UnsafeRawPointer(packed), packedRowBytes)
            for set in ComputeThreads.kernelSets where set.supported {
                let all = product(set.name, tokens, layout: layout)
                let pieces = product(set.name, 1, layout: layout) + product(set.name, 2, first: 1, layout: layout)
                    + product(set.name, 6, first: 3, layout: layout) + product(set.name, 8, first: 9, layout: layout)
                #expect(all.map(\.bitPattern) == portable.map(\.bitPattern), "\(set.name) \(name) packed differs from the portable kernels")
                #expect(all.map(\.bitPattern) == pieces.map(\.bitPattern), "\(set.name) \(name) packed: results depend on the batch")
            }
        }
    }
}
