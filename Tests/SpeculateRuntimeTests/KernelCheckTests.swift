import CSpeculateKernels
import Foundation
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

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
    static func checkProgram(compiler: [String], flags: [String], defines: [String] = [], name: String = "kernel_check")
        throws -> String
    {
        let root = TestSupport.packageRoot.path
        let kernels = root + "/Sources/CSpeculateKernels"
        let sources =
            try FileManager.default.contentsOfDirectory(atPath: kernels).filter { $0.hasSuffix(".c") }.sorted()
            .map { kernels + "/" + $0 } + [root + "/Tests/Reference/kernel_check.c"]
        // -ffp-contract=off: the compiler would otherwise fuse the portable kernels' multiply-adds where it can.
        let common = flags + ["-O2", "-ffp-contract=off", "-I", kernels + "/include", "-I", kernels]
        let objects = try ObjectCache.shared.compile(sources, compiler: compiler, flags: common, defines: defines)
        let output = try TestSupport.temporaryFolder().appendingPathComponent(name).path
        _ = try TestSupport.runProcess(
            compiler[0], Array(compiler.dropFirst()) + flags + objects + ["-o", output, "-lpthread", "-lm"])
        return output
    }

    /// The packed layouts a set's products read (repack.c): the VNNI sets Q8_0, Q4_0, Q5_0, Q4_K
    /// and Q6_K, AVX2 Q8_0 and Q5_0, the Arm int8 sets Q4_K and Q6_K; the portable kernels are
    /// checked on all five.
    static func packedLayouts(of set: String) -> [String] {
        if set.hasSuffix("vnni") || set == "portable" {
            return ["Q8_0_X8", "Q4_0_X8", "Q5_0_X8", "Q4_K_X8", "Q6_K_X8"]
        }
        if set == "avx2" { return ["Q8_0_X8", "Q5_0_X8"] }
        if set == "dotprod" || set == "i8mm" { return ["Q4_K_X8", "Q6_K_X8"] }
        return []
    }

    /// The lines a passing report must have for `sets`: a header and, per set, the 8 weight types
    /// at 768 columns and the 5 with 32-value blocks at 640, the packed layouts of each set and of
    /// the portable kernels (the 32-value ones at both widths, the K-quants' at 768), and the two
    /// half-conversion checks.
    static func expectPassed(_ report: String, sets: [String]) {
        #expect(report.contains("kernel_check: all passed"), "\(report)")
        for set in sets { #expect(report.contains("kernel_check: set \(set)\n"), "\(set) not checked:\n\(report)") }
        for set in sets {
            let attention = report.split(separator: "\n").first {
                $0.hasPrefix("kernel_check: " + set.padding(toLength: 10, withPad: " ", startingAt: 0) + " attention")
            }
            #expect(attention?.hasSuffix("pass") == true, "\(set)'s tree attention not checked:\n\(report)")
        }
        var packedLines = 0
        for set in sets + ["portable"] {
            for type in packedLayouts(of: set) {
                packedLines += type.contains("_K_") ? 1 : 2  // 32-value blocks run at both widths
                #expect(
                    report.contains(String(set.padding(toLength: 10, withPad: " ", startingAt: 0) + " \(type) packed")),
                    "\(type) not checked for \(set):\n\(report)")
            }
        }
        #expect(report.components(separatedBy: "  ok").count - 1 == 13 * sets.count + packedLines + 2, "\(report)")
    }

    @Test("every kernel set this CPU runs")
    func native() throws {
        let report = String(
            decoding: try TestSupport.runProcess(try Self.checkProgram(compiler: Self.compiler, flags: []), []),
            as: UTF8.self)
        let sets = ComputeThreads.kernelSets.filter { $0.supported && $0.name != "portable" }.map(\.name)
        Self.expectPassed(report, sets: sets)
    }

    @Test(
        "the VNNI sets through SIMDe, on any x86-64 CPU",
        .enabled(
            if: isX86 && FileManager.default.fileExists(atPath: simdeHeader),
            "needs x86-64 and libsimde-dev (.ci/run installs it)"))
    func vnniThroughSIMDe() throws {
        let program = try Self.checkProgram(
            compiler: Self.compiler, flags: [], defines: Self.simde, name: "kernel_check_simde")
        let report = String(decoding: try TestSupport.runProcess(program, []), as: UTF8.self)
        var sets = ["avx512vnni", "avxvnni"]
        if ComputeThreads.kernelSets.contains(where: { $0.name == "avx2" && $0.supported }) { sets.append("avx2") }
        Self.expectPassed(report, sets: sets)
        #expect(
            report.contains("differing from portable: 0  ok") && report.contains("differing from avx2: 0  ok"),
            "\(report)")
    }

    /// The same check under AddressSanitizer and UndefinedBehaviorSanitizer (GCC's runtimes; any
    /// finding aborts the program, so the run fails): out-of-bounds block or activation reads,
    /// misaligned loads, signed overflow and shifts out of range in every set this CPU runs and,
    /// through SIMDe, in both VNNI sets.
    /// `.ci/deep` (SPECULATE_DEEP=1) also runs the SIMDe build sanitized and every mutant; CI runs
    /// the native build sanitized and the mutants of the 32-value and packed kernels, to stay in
    /// its 15 minutes.
    static let deep = ProcessInfo.processInfo.environment["SPECULATE_DEEP"] == "1"

    @Test(
        "every kernel set under AddressSanitizer and UndefinedBehaviorSanitizer",
        arguments: deep ? ["native", "simde"] : ["native"])
    func sanitized(build: String) throws {
        let simde = build == "simde"
        if simde {
            try #require(
                Self.isX86 && FileManager.default.fileExists(atPath: Self.simdeHeader), "needs x86-64 and libsimde-dev")
        }
        // SIMDe's own emulation is left uninstrumented (Self.simdeIgnoreList); the kernels that call it are not.
        let sanitizers =
            ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
            + (simde && Self.compilerIsClang ? ["-fsanitize-ignorelist=" + (try Self.simdeIgnoreList())] : [])
        let program = try Self.checkProgram(
            compiler: Self.compiler, flags: sanitizers, defines: simde ? Self.simde : [],
            name: "kernel_check_sanitized_\(build)")
        // ASan's defaults fail the run on any error or leak; -fno-sanitize-recover does it for UBSan.
        let report = String(decoding: try TestSupport.runProcess(program, []), as: UTF8.self)
        let sets =
            simde
            ? ["avx512vnni", "avxvnni"]
            : ComputeThreads.kernelSets.filter { $0.supported && $0.name != "portable" }.map(\.name)
        for set in sets { #expect(report.contains("kernel_check: set \(set)\n"), "\(set) not checked:\n\(report)") }
        #expect(report.contains("kernel_check: all passed"), "\(report)")
    }

    @Test("a deliberately broken VNNI kernel fails the check", arguments: deep ? [1, 2, 3, 4] : [1, 4])
    func brokenKernelFails(mutant: Int) throws {
        try #require(
            Self.isX86 && FileManager.default.fileExists(atPath: Self.simdeHeader), "needs x86-64 and libsimde-dev")
        let program = try Self.checkProgram(
            compiler: Self.compiler, flags: [], defines: Self.simde + ["-DSPEC_CHECK_MUTANT=\(mutant)"],
            name: "kernel_check_mutant\(mutant)")
        let result = try TestSupport.runProcessCapturingAll(program, [])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        #expect(result.status != 0 && report.contains("kernel_check: FAILED"), "mutant \(mutant) passed:\n\(report)")
        if mutant == 4 {  // only the packed Q4_0 kernels carry this mutant
            let line = report.split(separator: "\n").first { $0.contains("avx512vnni Q4_0_X8 packed") }
            #expect(line?.hasSuffix("FAILED") == true, "the packed Q4_0 mutant was not caught:\n\(report)")
        }
    }

    static let canEmulateArm =
        FileManager.default.isExecutableFile(atPath: crossCompiler)
        && FileManager.default.isExecutableFile(atPath: emulator)

    /// `-cpu max` has every Arm feature qemu knows (dotprod and i8mm included), so all three
    /// Arm sets run; older CPU models check the run-time detection.
    @Test(
        "the Arm sets (i8mm, dotprod, neon), cross-compiled for AArch64 and run under qemu-aarch64",
        .enabled(if: canEmulateArm, "needs qemu-user and gcc-aarch64-linux-gnu (.ci/run installs them)"))
    func armUnderEmulation() throws {
        let program = try Self.checkProgram(
            compiler: [Self.crossCompiler], flags: ["-static", "-Wno-psabi"], name: "kernel_check_aarch64")
        let report = String(
            decoding: try TestSupport.runProcess(Self.emulator, ["-cpu", "max", program]), as: UTF8.self)
        #expect(report.contains("kernel_check: kernels i8mm"), "\(report)")
        Self.expectPassed(report, sets: ["i8mm", "dotprod", "neon"])
        // The automatic choice follows the CPU: Cortex-A76 has sdot but not smmla, A53 neither.
        for (cpu, expected) in [("cortex-a76", "dotprod"), ("cortex-a53", "neon")] {
            let head = String(
                decoding: try TestSupport.runProcess(Self.emulator, ["-cpu", cpu, program]), as: UTF8.self)
            #expect(head.contains("kernel_check: kernels \(expected)\n"), "\(cpu):\n\(head)")
        }
    }

    @Test("a deliberately broken Arm kernel fails the check", arguments: [2, 3, 5])
    func brokenArmKernelFails(mutant: Int) throws {
        try #require(Self.canEmulateArm, "needs qemu-user and gcc-aarch64-linux-gnu")
        let program = try Self.checkProgram(
            compiler: [Self.crossCompiler], flags: ["-static", "-Wno-psabi"],
            defines: ["-DSPEC_CHECK_MUTANT=\(mutant)"],
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
