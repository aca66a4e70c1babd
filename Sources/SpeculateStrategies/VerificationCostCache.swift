import Foundation
import SpeculateCatalog
import SpeculateCore
import SpeculateProposers
import SpeculateRuntime
import Synchronization

/// Measures the target's verification cost curve once per model file and thread count and keeps
/// it in the cache directory (`costs/NAME-SIZE-KERNELS-rREVISION-tTHREADS.json`), so `auto` starts
/// instantly after the first run. A new kernel revision measures again, and so does a curve whose
/// one-token time, or six-token cost relative to it, is well above a quick fresh measurement (a
/// curve measured while the CPUs were busy, or on another machine). When the machine is slower
/// now than the file says, the run measures for itself and keeps the file.
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
        let safeName = String(
            URL(fileURLWithPath: name).lastPathComponent.map {
                $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_"
            })
        let kernels = "\(ComputeThreads.kernelName)-r\(ComputeThreads.kernelRevision)"
        let file = directory.appendingPathComponent("\(safeName)-\(size)-\(kernels)-t\(threads).json")
        var keepFile = false
        if let data = try? Data(contentsOf: file),
            let cached = try? JSONDecoder().decode(VerificationCost.self, from: data),
            !cached.tokens.isEmpty, cached.tokens.count == cached.relative.count
        {
            // Checked already in this process and the file unchanged since (a server builds `auto`
            // per request): the timing check's ~0.3 s is paid once.
            if Self.checked.withLock({ $0[file.path] == cached }) { return cached }
            // One busy moment (a process starting, the host's neighbours) can make a check look
            // slow, and a curve then measured for this run can be as wrong as the busy moment was
            // (one `auto` of four in a run sent 2.25 tokens per forward against 4.5 for the others,
            // the mark of a too-steep curve); so "slower now" must hold three times, 0.2 s apart.
            var verdict = try Self.check(cached, model: model)
            for _ in 1..<Self.slowerChecks where verdict == .slowerNow {
                Thread.sleep(forTimeInterval: 0.2)
                verdict = try Self.check(cached, model: model)
            }
            switch verdict {
            case .holds:
                Self.checked.withLock { $0[file.path] = cached }
                return cached
            // Slower now than when the file was written: most likely something else is running, so
            // this run measures for itself and leaves the (quieter) file alone.
            case .slowerNow: keepFile = true
            case .fasterNow: break  // the file was measured under load, or on another machine
            }
        }
        let points = try BatchCostProbe(model: model).measure(
            sizes: Self.sizes, prefix: 64, repeats: 5, statistic: .fastest)
        let curve = VerificationCost(
            tokens: points.map(\.tokens), relative: points.map(\.relativeCost),
            oneTokenSeconds: points.first?.seconds ?? 0.05)
        if !keepFile {
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try? JSONEncoder().encode(curve).write(to: file, options: .atomic)
            Self.checked.withLock { $0[file.path] = curve }
        }
        return curve
    }

    /// Files whose curve this process has checked against the machine (or written), with the
    /// curve they held then. A curve measured because the machine was busy is not remembered:
    /// the next call checks again.
    private static let checked = Mutex<[String: VerificationCost]>([:])

    static let sizes = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]

    /// Checks that must all find the machine slower than a cached curve before a run measures
    /// its own.
    static let slowerChecks = 3

    /// How a cached curve compares with a fresh measurement.
    package enum Check { case holds, slowerNow, fasterNow }

    /// Whether a cached curve still describes this machine: its one-token time within a factor of
    /// `tolerance` of a fresh one, and its cost of a six-token tree (relative to one token) within
    /// `shapeTolerance` of a fresh one (the fastest of three forwards of each size, ~0.3 s for the
    /// 1.5B target). A curve measured while something else loaded the CPUs can be slow and flat
    /// (one such file had a one-token time of 222 ms against 34 ms and 8 tokens at 1.21x one token
    /// against ~1.8x, and `auto` sent trees far too large for a day) or right in its one-token time
    /// and steep (a first run on a fresh machine wrote 6 tokens at 2.14x and 8 at 2.48x against
    /// 1.6-1.7x and 1.9x, and `auto` sent no tree above four tokens). A quiet start
    /// catches both and measures again; a machine slower now, or whose larger batches cost more
    /// now, keeps the file.
    static func check(
        _ curve: VerificationCost, model: TransformerModel, tolerance: Double = 1.5,
        shapeTolerance: Double = 1.2
    ) throws -> Check {
        guard curve.oneTokenSeconds > 0 else { return .fasterNow }
        let now = try BatchCostProbe(model: model).measure(
            sizes: [1, shapeSize], prefix: 8, repeats: 3, statistic: .fastest)
        return verdict(
            curve, oneTokenSeconds: now[0].seconds, shapeCost: now[1].relativeCost, tolerance: tolerance,
            shapeTolerance: shapeTolerance)
    }

    /// The check's decision from fresh figures: a one-token time, and the relative cost of
    /// `shapeSize` tokens.
    package static func verdict(
        _ curve: VerificationCost, oneTokenSeconds: Double, shapeCost: Double,
        tolerance: Double = 1.5, shapeTolerance: Double = 1.2
    ) -> Check {
        guard curve.oneTokenSeconds > 0 else { return .fasterNow }
        let ratio = oneTokenSeconds / curve.oneTokenSeconds
        if ratio >= tolerance { return .slowerNow }
        if ratio <= 1 / tolerance { return .fasterNow }
        let shape = shapeCost / curve.relativeCost(shapeSize)
        return shape >= shapeTolerance ? .slowerNow : shape <= 1 / shapeTolerance ? .fasterNow : .holds
    }

    /// The tree size whose relative cost the check compares: past the four tokens that cost about
    /// one token's time on CPUs with int8 dot products, where the curve decides how large trees grow.
    static let shapeSize = 6
}
