import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateProposers
import SpeculateRuntime
import SpeculateStrategies
import SpeculateTestSupport
import Testing

@Suite("The verification cost cache")
struct CostCacheTests {
    @Test("a cached curve slower than this machine is measured again; one faster than it now is kept on disk")
    func staleCurveIsReplaced() throws {
        let model = try SharedModels.model("smollm2-135m-instruct")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("costs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let cache = VerificationCostCache(directory: directory)
        let measured = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(files.count == 1)
        // Asked again in the same process with the file unchanged: the same curve (not re-timed).
        #expect(try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2) == measured)
        // What a measurement taken while the CPUs were busy looks like: slow and flat.
        let stale = VerificationCost(
            tokens: measured.tokens, relative: measured.tokens.map { _ in 1 },
            oneTokenSeconds: max(1, measured.oneTokenSeconds * 20))
        try JSONEncoder().encode(stale).write(to: files[0])
        let again = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        #expect(
            again.oneTokenSeconds < stale.oneTokenSeconds / 5, "kept a curve with \(stale.oneTokenSeconds) s per token")
        #expect(again != stale)
        let stored = try JSONDecoder().decode(VerificationCost.self, from: Data(contentsOf: files[0]))
        #expect(stored == again)

        // A file faster than the machine is now (busy, most likely): this run measures for
        // itself, and the file stays for quieter runs.
        let quiet = VerificationCost(
            tokens: measured.tokens, relative: measured.relative, oneTokenSeconds: again.oneTokenSeconds / 20)
        try JSONEncoder().encode(quiet).write(to: files[0])
        let busy = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        #expect(busy.oneTokenSeconds > quiet.oneTokenSeconds * 5)
        #expect(try JSONDecoder().decode(VerificationCost.self, from: Data(contentsOf: files[0])) == quiet)
    }

    @Test(
        "a curve right in its one-token time but too steep is measured again; one too flat for this machine now is kept"
    )
    func steepCurveIsReplaced() {
        // This host's figures (1.5B target, Zen 4 class): a quiet curve, and one written by a first
        // run on a fresh machine (6 tokens at 2.14x one token, 8 at 2.48x).
        let quiet = VerificationCost(
            tokens: [1, 2, 4, 6, 8], relative: [1, 1.04, 1.10, 1.60, 1.90], oneTokenSeconds: 0.033)
        let steep = VerificationCost(
            tokens: [1, 2, 4, 6, 8], relative: [1, 1.18, 1.28, 2.14, 2.48], oneTokenSeconds: 0.030)
        // Fresh figures from a quiet machine: the quiet curve holds, the steep one goes.
        #expect(VerificationCostCache.verdict(quiet, oneTokenSeconds: 0.034, shapeCost: 1.55) == .holds)
        #expect(VerificationCostCache.verdict(steep, oneTokenSeconds: 0.034, shapeCost: 1.55) == .fasterNow)
        // Six tokens cost far more than the file says now: busy now, so the file stays.
        #expect(VerificationCostCache.verdict(quiet, oneTokenSeconds: 0.034, shapeCost: 2.3) == .slowerNow)
        // The one-token rule comes first, as before.
        #expect(VerificationCostCache.verdict(quiet, oneTokenSeconds: 0.080, shapeCost: 1.55) == .slowerNow)
        #expect(VerificationCostCache.verdict(quiet, oneTokenSeconds: 0.015, shapeCost: 2.3) == .fasterNow)
        // A file without a six-token point is compared at its interpolated cost (1.35x here).
        let sparse = VerificationCost(tokens: [1, 4, 8], relative: [1, 1.1, 1.6], oneTokenSeconds: 0.033)
        #expect(VerificationCostCache.verdict(sparse, oneTokenSeconds: 0.034, shapeCost: 1.4) == .holds)
        #expect(VerificationCostCache.verdict(sparse, oneTokenSeconds: 0.034, shapeCost: 1.65) == .slowerNow)
    }
}
