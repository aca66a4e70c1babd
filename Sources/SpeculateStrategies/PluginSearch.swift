import Foundation
import SpeculatePlugins

/// Where plugins are found by name: the directories of `$SPECULATE_PLUGIN_PATH` (colon-separated;
/// every shared library there is a candidate) and the directory of the running executable (only
/// `libSpeculate*` libraries, which is where `swift build` puts the example plugins).
public struct PluginSearch: Sendable {
    /// Directories whose every shared library is a candidate.
    public var pluginDirectories: [String]
    /// Directories searched for `libSpeculate*` libraries only.
    public var buildDirectories: [String]

    /// The default search path, read from the environment.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        pluginDirectories = (environment["SPECULATE_PLUGIN_PATH"] ?? "").split(separator: ":").map(String.init)
        let executable = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
            .resolvingSymlinksInPath()
        buildDirectories = [executable.deletingLastPathComponent().path]
    }

    /// A search over explicit directories.
    public init(pluginDirectories: [String], buildDirectories: [String] = []) {
        self.pluginDirectories = pluginDirectories
        self.buildDirectories = buildDirectories
    }

    /// Splits `PATH-or-NAME[:OPTIONS]` at the first colon.
    public static func splitArgument(_ argument: String) -> (location: String, options: String) {
        let (location, options) = ProposerRegistry.parse(argument)
        return (location, options)
    }

    /// Candidate library files, in search order.
    public func candidates() -> [String] {
        let fileManager = FileManager.default
        func libraries(in directory: String, prefix: String) -> [String] {
            ((try? fileManager.contentsOfDirectory(atPath: directory)) ?? []).sorted()
                .filter { $0.hasPrefix(prefix) && ($0.hasSuffix(".so") || $0.hasSuffix(".dylib")) }
                .map { directory + "/" + $0 }
        }
        return pluginDirectories.flatMap { libraries(in: $0, prefix: "") }
            + buildDirectories.flatMap { libraries(in: $0, prefix: "libSpeculate") }
    }

    /// Every candidate, described by a plugin host process (none of them loads into this one):
    /// plugins that pass the checks, and the reasons others were refused.
    public func discover(configuration: PluginHostConfiguration = PluginHostConfiguration()) -> (
        plugins: [PluginDescription], refused: [(path: String, error: PluginError)]
    ) {
        var plugins: [PluginDescription] = []
        var refused: [(String, PluginError)] = []
        for path in candidates() {
            do {
                plugins.append(try HostedPluginProposer.describe(path: path, configuration: configuration))
            } catch { refused.append((path, error)) }
        }
        return (plugins, refused)
    }

    /// Whether a plugin location is a path (a slash or a library suffix) rather than a name.
    static func isPath(_ location: String) -> Bool {
        location.contains("/") || location.hasSuffix(".so") || location.hasSuffix(".dylib")
    }

    /// Loads a plugin into this process by path or by name (`plugin-inprocess:`).
    public func load(_ location: String) throws -> PluginLibrary {
        try PluginLibrary(path: try locate(location))
    }

    /// The path of a plugin given by path or by its name.
    public func locate(_ location: String) throws -> String {
        if Self.isPath(location) { return location }
        let found = discover().plugins
        if let plugin = found.first(where: { $0.name == location }) { return plugin.path }
        let names = found.map(\.name)
        let hint =
            names.isEmpty
            ? "no plugins found; give a path, or set SPECULATE_PLUGIN_PATH to the directory that holds them"
            : "found: \(names.joined(separator: ", "))"
        throw ProposerSpecError.badOptions(
            spec: "plugin:\(location)", reason: "no plugin named '\(location)' (\(hint))")
    }
}
