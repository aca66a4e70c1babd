import Foundation

/// Models loaded in this process, by file and weight precision, kept while anyone holds them:
/// a server's slots each build their own proposers, and each `draft:` proposer would otherwise
/// load (and requantize) its own copy of the same draft model (~400 MB and a second or two per
/// slot). Weights are immutable and the kernels only read them, so one copy serves any number
/// of sessions on any threads.
public enum LoadedModels {
    private final class Entry: @unchecked Sendable {
        weak var model: TransformerModel?
        init(_ model: TransformerModel) { self.model = model }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var entries: [String: Entry] = [:]

    /// The model at `path` with `precision`, loaded now or shared with whoever loaded it before
    /// and still holds it. The same file under another path (a link) loads again.
    public static func model(path: String, precision: WeightPrecision = .file) throws -> TransformerModel {
        let key = "\(precision.rawValue)\u{0}\(URL(fileURLWithPath: path).standardizedFileURL.path)"
        if let model = lock.withLock({ entries[key]?.model }) { return model }
        // Loading takes seconds: not under the lock (two first users may both load; one copy stays).
        let model = try TransformerModel(path: path, precision: precision)
        return lock.withLock {
            if let earlier = entries[key]?.model { return earlier }
            entries = entries.filter { $0.value.model != nil }
            entries[key] = Entry(model)
            return model
        }
    }
}
