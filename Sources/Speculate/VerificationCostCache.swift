import Foundation

/// Measures the target's verification cost curve once per model file and thread count and keeps
/// it in the cache directory (`costs/NAME-SIZE-KERNELS-rREVISION-tTHREADS.json`), so `auto` starts
/// instantly after the first run. A new kernel revision measures again, and so does a curve whose
/// one-token time no longer matches a quick fresh measurement (``stillHolds(_:model:tolerance:)``:
/// a curve measured while the CPUs were busy, or another machine).
public struct VerificationCostCache: Sendable {
    /// The directory the curves live in.
    public let directory: URL

    /// A cache under the model store's root (`$SPECULATE_CACHE_DIR`, XDG or ~/.cache/speculate).
    public init(directory: URL = ModelStore().root.appendingPathComponent("costs")) {
        self.directory = directory
    }

    /// The cached curve for `model`, measuring it (about a second for the 1.5B target) if absent.
    public func curve(for model: TransformerModel, name: String, threads: Int) throws -> VerificationCost {
        let size = model.weightBytes
        let safeName = String(URL(fileURLWithPath: name).lastPathComponent.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
        let kernels = "\(ComputeThreads.kernelName)-r\(ComputeThreads.kernelRevision)"
        let file = directory.appendingPathComponent("\(safeName)-\(size)-\(kernels)-t\(threads).json")
        if let data = try? Data(contentsOf: file), let curve = try? JSONDecoder().decode(VerificationCost.self, from: data),
           !curve.tokens.isEmpty, curve.tokens.count == curve.relative.count,
           try Self.stillHolds(curve, model: model) {
            return curve
        }
        let points = try BatchCostProbe(model: model).measure(sizes: Self.sizes, prefix: 64, repeats: 3)
        let curve = VerificationCost(tokens: points.map(\.tokens), relative: points.map(\.relativeCost),
                                     oneTokenSeconds: points.first?.seconds ?? 0.05)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? JSONEncoder().encode(curve).write(to: file, options: .atomic)
        return curve
    }

    static let sizes = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]

    /// Whether a cached curve still describes this machine: its one-token time within a factor of
    /// `tolerance` of a fresh one (three one-token forwards, ~0.1 s for the 1.5B target). A curve
    /// measured while something else loaded the CPUs is flat and slow (one such file here had a
    /// one-token time of 222 ms against 34 ms and 8 tokens at 1.21x one token against ~1.8x,
    /// and `auto` sent trees far too large for a day); this catches it and measures again.
    static func stillHolds(_ curve: VerificationCost, model: TransformerModel, tolerance: Double = 1.5) throws -> Bool {
        guard curve.oneTokenSeconds > 0 else { return false }
        let now = try BatchCostProbe(model: model).measure(sizes: [1], prefix: 8, repeats: 3)[0].seconds
        let ratio = now / curve.oneTokenSeconds
        return ratio < tolerance && ratio > 1 / tolerance
    }
}
