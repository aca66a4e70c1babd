/// What can go wrong with a proposer plugin. Every case names the plugin so the user knows which
/// library to fix; none of them is fatal to the host.
public enum PluginError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `dlopen` failed (no such file, not a shared library, missing dependency).
    case cannotOpen(path: String, reason: String)
    /// The library does not export `speculate_plugin_entry`.
    case missingEntryPoint(path: String)
    /// The entry point returned a null table.
    case nullTable(path: String)
    /// The table's ABI version is not one this host supports.
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    /// The table is smaller than the version promises.
    case truncatedTable(path: String, size: UInt32, expected: Int)
    /// A required function pointer or string in the table is null or invalid.
    case invalidTable(path: String, problem: String)
    /// `create` returned an error code or no instance.
    case creationFailed(plugin: String, code: Int32, message: String)
    /// `propose` returned an error code (the step's draft is skipped).
    case proposeFailed(plugin: String, code: Int32, message: String)
    /// `propose` returned a tree the host refuses (the step's draft is skipped).
    case invalidDraft(plugin: String, problem: String)
    /// `propose` did not return within the time limit: the plugin is dropped for the rest of
    /// the run (its call is abandoned on the plugin's own thread).
    case timedOut(plugin: String, seconds: Double)
    /// An earlier call timed out; the plugin is no longer called.
    case dropped(plugin: String)
    /// An `ffi:` spec whose signature cannot be used.
    case invalidSignature(spec: String, problem: String)
    /// The plugin host process failed while loading the library or creating the instance.
    case hostFailed(plugin: String, reason: String)
    /// The plugin host process was stopped for `reason` (a ``PluginHostFailure``'s description);
    /// `outcome` says what happens next (a restart after a back-off, or dropped for the run).
    case stopped(plugin: String, reason: String, outcome: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot load plugin '\(path)': \(reason)"
        case .missingEntryPoint(let path):
            return
                "'\(path)' is not a Speculate plugin: it does not export speculate_plugin_entry (see Plugins/ABI/include/speculate_plugin.h)"
        case .nullTable(let path): return "plugin '\(path)': speculate_plugin_entry returned NULL"
        case .unsupportedVersion(let path, let found, let supported):
            return
                "plugin '\(path)' uses plugin ABI version \(found); this build of Speculate supports version \(supported). Rebuild the plugin against this speculate_plugin.h"
        case .truncatedTable(let path, let size, let expected):
            return "plugin '\(path)' declares a function table of \(size) bytes; ABI version 1 needs \(expected)"
        case .invalidTable(let path, let problem): return "plugin '\(path)' has an invalid function table: \(problem)"
        case .creationFailed(let plugin, let code, let message):
            return "plugin \(plugin) refused its options (code \(code))\(message.isEmpty ? "" : ": \(message)")"
        case .proposeFailed(let plugin, let code, let message):
            return "plugin \(plugin) failed to propose (code \(code))\(message.isEmpty ? "" : ": \(message)")"
        case .invalidDraft(let plugin, let problem): return "plugin \(plugin) returned an invalid draft: \(problem)"
        case .timedOut(let plugin, let seconds):
            return
                "plugin \(plugin) did not return from propose within \(seconds) s; it is dropped for the rest of this run (SPECULATE_PLUGIN_TIMEOUT sets the limit)"
        case .invalidSignature(let spec, let problem): return "\(spec): \(problem)"
        case .hostFailed(let plugin, let reason): return "plugin \(plugin) \(reason)"
        case .stopped(let plugin, let reason, let outcome): return "plugin \(plugin) \(reason); \(outcome)"
        case .dropped(let plugin):
            return "plugin \(plugin) was dropped after a propose call that did not return in time"
        }
    }
}
