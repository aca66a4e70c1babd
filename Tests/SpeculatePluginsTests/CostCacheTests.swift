import Foundation
import Speculate
import SpeculateTestSupport
import Testing

@Suite("The verification cost cache")
struct CostCacheTests {
    @Test("a cached curve slower than this machine is measured again; one faster than it now is kept on disk")
    func staleCurveIsReplaced() throws {
        let model = try TransformerModel(path: try TestSupport.modelPath("smollm2-135m-instruct"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("costs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let cache = VerificationCostCache(directory: directory)
        let measured = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(files.count == 1)
        // What a measurement taken while the CPUs were busy looks like: slow and flat.
        let stale = VerificationCost(tokens: measured.tokens, relative: measured.tokens.map { _ in 1 },
                                     oneTokenSeconds: max(1, measured.oneTokenSeconds * 20))
        try JSONEncoder().encode(stale).write(to: files[0])
        let again = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        #expect(again.oneTokenSeconds < stale.oneTokenSeconds / 5, "kept a curve with \(stale.oneTokenSeconds) s per token")
        #expect(again != stale)
        let stored = try JSONDecoder().decode(VerificationCost.self, from: Data(contentsOf: files[0]))
        #expect(stored == again)

        // A file faster than the machine is now (busy, most likely): this run measures for
        // itself, and the file stays for quieter runs.
        let quiet = VerificationCost(tokens: measured.tokens, relative: measured.relative, oneTokenSeconds: again.oneTokenSeconds / 20)
        try JSONEncoder().encode(quiet).write(to: files[0])
        let busy = try cache.curve(for: model, name: "smollm2-135m-instruct", threads: 2)
        #expect(busy.oneTokenSeconds > quiet.oneTokenSeconds * 5)
        #expect(try JSONDecoder().decode(VerificationCost.self, from: Data(contentsOf: files[0])) == quiet)
    }
}
