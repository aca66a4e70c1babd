#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a plugin host process was stopped. Each reads as the end of a sentence that starts with
/// the plugin's name ("plugin line-echo crashed (SIGSEGV, a segmentation fault) during propose").
public enum PluginHostFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host died of a signal.
    case crashed(signal: Int32, during: String, nearMemoryLimit: Bool)
    /// The host exited by itself.
    case exited(status: Int32, during: String)
    /// A call did not return in time.
    case timedOut(seconds: Double, during: String)
    /// The host broke the channel's protocol (garbage, a closed channel, an unexpected answer).
    case malformed(String, during: String)
    /// The host wrote more output than allowed.
    case flooded(bytes: Int)
    /// The host's other threads kept the CPU busy between calls.
    case spinning(share: Double)
    /// The host could not be started.
    case cannotStart(String)

    public var description: String {
        switch self {
        case .crashed(let signal, let during, let nearMemoryLimit):
            let memory = nearMemoryLimit ? " near its memory limit (SPECULATE_PLUGIN_MEMORY_MB)" : ""
            return "crashed (\(Self.signalName(signal)))\(memory) during \(during)"
        case .exited(let status, let during): return "exited with status \(status) during \(during)"
        case .timedOut(let seconds, let during):
            return "did not return from \(during) within \(Self.seconds(seconds)) (SPECULATE_PLUGIN_TIMEOUT)"
        case .malformed(let problem, let during): return "broke the plugin channel during \(during): \(problem)"
        case .flooded(let bytes): return "wrote more than \(bytes / 1024) KiB of output (SPECULATE_PLUGIN_OUTPUT_KB)"
        case .spinning(let share):
            return "kept \(Int((share * 100).rounded()))% of a core busy between calls"
        case .cannotStart(let reason): return "could not be started: \(reason)"
        }
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// "SIGSEGV, a segmentation fault" and the like.
    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGSEGV: return "SIGSEGV, a segmentation fault"
        case SIGABRT: return "SIGABRT, an abort"
        case SIGBUS: return "SIGBUS, a bus error"
        case SIGFPE: return "SIGFPE, an arithmetic fault"
        case SIGILL: return "SIGILL, an illegal instruction"
        case SIGKILL: return "SIGKILL"
        case SIGXCPU: return "SIGXCPU, its CPU time limit (SPECULATE_PLUGIN_CPU_SECONDS)"
        case SIGTRAP: return "SIGTRAP, a trap"
        default: return "signal \(signal)"
        }
    }
}
