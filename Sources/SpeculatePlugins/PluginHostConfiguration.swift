import Foundation

/// How plugins run out of process: where the host executable is and the limits it runs under.
///
/// Every setting can come from the environment, so that `speculate run`, `speculate serve` and
/// library users share one way to set them:
///
/// | Variable | Default | Meaning |
/// |---|---|---|
/// | `SPECULATE_PLUGIN_HOST` | beside the executable | the `speculate-plugin-host` executable |
/// | `SPECULATE_PLUGIN_TIMEOUT` | 2 | seconds one `propose` (and the `observe` before it) may take |
/// | `SPECULATE_PLUGIN_MEMORY_MB` | 2048 | the host's address space (RLIMIT_AS), MiB |
/// | `SPECULATE_PLUGIN_CPU_SECONDS` | 3600 | the host's total CPU time (RLIMIT_CPU), a backstop |
/// | `SPECULATE_PLUGIN_RESTARTS` | 2 | restarts after a failure before the plugin is dropped |
/// | `SPECULATE_PLUGIN_OUTPUT_KB` | 1024 | output (stdout + stderr) beyond which the host is stopped |
public struct PluginHostConfiguration: Sendable, Equatable {
    /// The host executable.
    public var executable: String
    /// Seconds one `propose` may take, including an `observe` still running before it.
    public var timeLimit: Double
    /// Seconds loading the library and creating the instance may take (plugins build indexes).
    public var startTimeLimit: Double
    /// The host's address-space limit in MiB (0: none).
    public var memoryLimitMB: Int
    /// The host's lifetime CPU limit in seconds (0: none); the per-call watchdog is `timeLimit`.
    public var cpuSecondsLimit: Int
    /// Most open files in the host.
    public var openFilesLimit: Int
    /// Restarts after a failure, each after a back-off twice the last (first ``restartDelay``).
    public var restarts: Int
    /// Seconds before the first restart.
    public var restartDelay: Double
    /// Bytes of output after which the host is stopped as flooding.
    public var outputLimit: Int
    /// Bytes of the plugin's output forwarded to ``outputSink`` (the rest is counted, not shown).
    public var forwardedOutput: Int
    /// Share of a core the host's other threads may keep busy between calls, averaged over a
    /// second or more, before it is stopped as spinning.
    public var spinningShare: Double

    /// The name of the host executable.
    public static let executableName = "speculate-plugin-host"

    /// The configuration the environment asks for; the executable found beside the running
    /// program (or the test bundle) unless `SPECULATE_PLUGIN_HOST` names one.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        func number(_ key: String, _ fallback: Double) -> Double {
            guard let text = environment[key], let value = Double(text), value.isFinite, value >= 0 else {
                return fallback
            }
            return value
        }
        executable = environment["SPECULATE_PLUGIN_HOST"] ?? Self.besideExecutable()
        let limit = number("SPECULATE_PLUGIN_TIMEOUT", 2)
        timeLimit = limit > 0 ? limit : 2
        startTimeLimit = max(30, timeLimit)
        memoryLimitMB = Int(number("SPECULATE_PLUGIN_MEMORY_MB", 2048))
        cpuSecondsLimit = Int(number("SPECULATE_PLUGIN_CPU_SECONDS", 3600))
        openFilesLimit = 256
        restarts = Int(number("SPECULATE_PLUGIN_RESTARTS", 2))
        restartDelay = 1
        outputLimit = Int(number("SPECULATE_PLUGIN_OUTPUT_KB", 1024)) * 1024
        forwardedOutput = 16 * 1024
        spinningShare = 0.5
    }

    /// Where `swift build` puts the host: beside the running executable, or beside the test
    /// bundle's folder.
    static func besideExecutable() -> String {
        let running = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
            .resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [running, running.deletingLastPathComponent()]
            .map { $0.appendingPathComponent(executableName).path }
        return candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) ?? candidates[0]
    }
}
