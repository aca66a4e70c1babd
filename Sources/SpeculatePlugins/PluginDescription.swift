/// What a plugin's function table says about it, after the checks every host makes before it
/// calls anything: the ABI version, the table's size, the required entries and a usable name.
/// The same checks apply whether the table was read in this process or reported by the plugin
/// host process.
public struct PluginDescription: Sendable, Equatable {
    /// The library the plugin was loaded from (for `ffi:` proposers, the library of the function).
    public var path: String
    /// The plugin's name ([a-z0-9-] by convention; letters, digits, '-', '_' and '.' accepted).
    public var name: String
    /// What it proposes.
    public var summary: String
    /// How to write its options string.
    public var optionsHelp: String
    /// Whether the table has an `observe` entry.
    public var observes: Bool

    /// The checked description of a table with these fields; `missing` names its null entries
    /// among `create`, `propose`, `destroy` and `name`.
    public static func checked(
        path: String, abiVersion: UInt32, structSize: UInt32, expectedSize: Int, missing: [String], name: String,
        summary: String, optionsHelp: String, observes: Bool
    ) throws(PluginError) -> PluginDescription {
        guard abiVersion == PluginLibrary.supportedABIVersion else {
            throw .unsupportedVersion(path: path, found: abiVersion, supported: PluginLibrary.supportedABIVersion)
        }
        guard Int(structSize) >= expectedSize else {
            throw .truncatedTable(path: path, size: structSize, expected: expectedSize)
        }
        guard missing.isEmpty else {
            throw .invalidTable(path: path, problem: "null \(missing.joined(separator: ", "))")
        }
        guard !name.isEmpty, name.count <= 64,
            name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
        else {
            throw .invalidTable(
                path: path, problem: "name '\(name.prefix(64))' must be 1-64 letters, digits, '-', '_' or '.'")
        }
        return PluginDescription(
            path: path, name: name, summary: summary, optionsHelp: optionsHelp, observes: observes)
    }
}
