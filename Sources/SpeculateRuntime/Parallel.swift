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
    public static var count: Int { Int(spec_pool_threads()) }

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

    /// Runs `body(index, count)` once on each pool thread and returns when all are done.
    static func run(_ body: (Int, Int) -> Void) {
        _ = configureOnce
        withoutActuallyEscaping(body) { escapable in
            let box = TaskBox(escapable)
            spec_pool_run({ context, index, count in
                Unmanaged<TaskBox>.fromOpaque(context!).takeUnretainedValue().body(Int(index), Int(count))
            }, Unmanaged.passUnretained(box).toOpaque())
            withExtendedLifetime(box) {}
        }
    }
}

/// Carries a closure through the C pool. The caller blocks until every thread has finished,
/// and each thread writes disjoint output, which is what makes the unchecked conformance sound.
private final class TaskBox: @unchecked Sendable {
    let body: (Int, Int) -> Void
    init(_ body: @escaping (Int, Int) -> Void) { self.body = body }
}
