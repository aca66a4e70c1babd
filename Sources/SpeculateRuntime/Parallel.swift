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

    /// The kernel set in use: `avx512vnni`, `avxvnni`, `avx2`, `i8mm`, `dotprod`, `neon` or `portable`.
    public static var kernelName: String { String(cString: spec_kernels_name()) }

    /// Every kernel set this build knows, in the order of the automatic choice, and whether this CPU runs it.
    public static var kernelSets: [(name: String, supported: Bool)] {
        (0..<spec_kernel_set_count()).map {
            (String(cString: spec_kernel_set_name($0)), spec_kernel_set_supported($0) != 0)
        }
    }

    /// The environment variable that overrides the kernel set (for A/B comparisons on one machine).
    public static let kernelOverrideVariable = "SPECULATE_KERNELS"

    /// Chooses the kernel set by name, or the best one this CPU runs when `name` is nil or empty.
    /// Call before decoding starts: every product of a process must run the same kernels.
    public static func selectKernels(_ name: String?) throws(KernelSelectionError) {
        switch spec_kernels_select(name) {
        case Int32(SPEC_KERNELS_OK.rawValue): return
        case Int32(SPEC_KERNELS_UNKNOWN.rawValue): throw .unknown(name ?? "", known: kernelSets.map(\.name))
        default: throw .unsupported(name ?? "", supported: kernelSets.filter(\.supported).map(\.name))
        }
    }

    /// Checks `SPECULATE_KERNELS` and applies it: unset or empty leaves the choice as it is;
    /// a set this build does not know, or one this CPU cannot run, is refused.
    public static func applyKernelOverride(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(KernelSelectionError)
    {
        guard let name = environment[kernelOverrideVariable], !name.isEmpty else { return }
        try selectKernels(name)
    }

    /// The kernels' revision, bumped when their speed changes (keys cached measurements).
    public static var kernelRevision: Int { Int(spec_kernels_revision()) }

    /// The default (all CPUs), applied before the first job unless ``set(_:)`` came first.
    static let configureOnce: Void = {
        spec_pool_set_threads(Int32(ProcessInfo.processInfo.activeProcessorCount))
    }()
}

/// Why a kernel set cannot be chosen.
public enum KernelSelectionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No kernel set has this name.
    case unknown(String, known: [String])
    /// The set exists but this CPU lacks its instructions.
    case unsupported(String, supported: [String])

    public var description: String {
        switch self {
        case .unknown(let name, let known):
            return
                "unknown kernel set '\(name)' in \(ComputeThreads.kernelOverrideVariable) (known: \(known.joined(separator: ", ")))"
        case .unsupported(let name, let supported):
            return
                "this CPU cannot run the '\(name)' kernels (\(ComputeThreads.kernelOverrideVariable)); it runs: \(supported.joined(separator: ", "))"
        }
    }
}
