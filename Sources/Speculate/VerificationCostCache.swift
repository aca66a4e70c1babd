import Foundation

/// Measures the target's verification cost curve once per model file and thread count and keeps
/// it in the cache directory (`costs/NAME-SIZE-KERNELS-rREVISION-tTHREADS.json`), so `auto` starts
/// instantly after the first run. A new kernel revision measures again; delete the file to measure
/// again after a hardware change.
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
           !curve.tokens.isEmpty, curve.tokens.count == curve.relative.count {
            return curve
        }
        let points = try BatchCostProbe(model: model).measure(sizes: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32], prefix: 64, repeats: 3)
        let curve = VerificationCost(tokens: points.map(\.tokens), relative: points.map(\.relativeCost),
                                     oneTokenSeconds: points.first?.seconds ?? 0.05)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? JSONEncoder().encode(curve).write(to: file, options: .atomic)
        return curve
    }
}
