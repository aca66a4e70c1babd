import CSpeculateKernels
import Foundation

/// The process-wide compute threads the forward pass runs on (the C kernel pool).
public enum ComputeThreads {
    /// Sets how many threads the kernels use (default: all CPUs).
    public static func set(_ count: Int) {
        _ = configureOnce
        spec_pool_set_threads(Int32(max(1, count)))
    }

    /// How many threads the kernels use.
    public static var count: Int {
        _ = configureOnce
        return Int(spec_pool_threads())
    }

    /// The kernel set in use (`avx2` or `portable`).
    public static var kernelName: String { String(cString: spec_kernels_name()) }

    /// The kernels' revision, bumped when their speed changes (keys cached measurements).
    public static var kernelRevision: Int { Int(spec_kernels_revision()) }

    /// Forces the portable kernels (for comparisons and tests).
    public static func forcePortableKernels(_ portable: Bool) { spec_kernels_force_portable(portable ? 1 : 0) }

    /// The default (all CPUs), applied before the first job unless ``set(_:)`` came first.
    static let configureOnce: Void = {
        spec_pool_set_threads(Int32(ProcessInfo.processInfo.activeProcessorCount))
    }()
}
