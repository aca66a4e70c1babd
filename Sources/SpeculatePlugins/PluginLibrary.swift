import CSpeculateFFIProposer
import CSpeculatePluginABI
import SpeculateCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The target vocabulary a plugin instance is created for: its size and the tokenizer, which
/// plugins may use while they are created (for example to tokenize a corpus).
public struct PluginVocabulary: Sendable {
    /// Token ids are in `0..<size`.
    public var size: Int
    /// Tokenizes text (special-token text not parsed).
    public var tokenize: @Sendable (String) -> [Token]
    /// The UTF-8 bytes of one token, or nil outside the vocabulary.
    public var tokenBytes: @Sendable (Token) -> [UInt8]?

    /// A vocabulary description.
    public init(
        size: Int, tokenize: @escaping @Sendable (String) -> [Token],
        tokenBytes: @escaping @Sendable (Token) -> [UInt8]?
    ) {
        self.size = size
        self.tokenize = tokenize
        self.tokenBytes = tokenBytes
    }
}

/// A loaded plugin library whose function table passed every check.
///
/// Libraries are never unloaded: instances may outlive the value, and unloading libraries that
/// contain Swift code is unsafe. Loading the same path twice returns a second handle to the one
/// mapped library.
public final class PluginLibrary: @unchecked Sendable {
    // @unchecked: `handle` and `table` are set once in init and never written again; the table
    // itself is immutable memory owned by the library, which stays loaded for the process.

    /// What the table says, checked.
    public let description: PluginDescription
    /// The path it was loaded from.
    public var path: String { description.path }
    /// The plugin's name.
    public var name: String { description.name }
    /// What it proposes.
    public var summary: String { description.summary }
    /// How to write its options string.
    public var optionsHelp: String { description.optionsHelp }

    let table: UnsafePointer<spec_plugin_v1>
    /// The `dlopen` handle (nil for a table compiled into this process); kept, never closed.
    private let handle: UnsafeMutableRawPointer?

    /// The libffi adapter (`ffi:`), compiled into this process.
    public static func foreignFunctionAdapter() -> PluginLibrary {
        // The table is a constant of this build; its checks cannot fail.
        try! PluginLibrary(path: "ffi", table: spec_ffi_plugin_table())
    }

    /// The ABI version this host implements.
    public static let supportedABIVersion = spec_plugin_header_version()

    /// Loads the library at `path` and validates its table.
    public convenience init(path: String) throws(PluginError) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw .cannotOpen(path: path, reason: reason)
        }
        guard let symbol = dlsym(handle, "speculate_plugin_entry") else { throw .missingEntryPoint(path: path) }
        let entry = unsafeBitCast(symbol, to: spec_plugin_entry_fn.self)
        guard let table = entry() else { throw .nullTable(path: path) }
        try self.init(path: path, table: table, handle: handle)
    }

    /// Checks `table` (from the library `handle`, or compiled into this process when nil).
    init(path: String, table: UnsafePointer<spec_plugin_v1>, handle: UnsafeMutableRawPointer? = nil)
        throws(PluginError)
    {
        // The first two fields are the same in every ABI version; read them before trusting the rest.
        let version = table.pointee.abi_version
        let size = table.pointee.struct_size
        var missing: [String] = []
        let complete = version == Self.supportedABIVersion && Int(size) >= MemoryLayout<spec_plugin_v1>.size
        if complete {
            missing = [
                ("create", table.pointee.create == nil), ("propose", table.pointee.propose == nil),
                ("destroy", table.pointee.destroy == nil), ("name", table.pointee.name == nil),
            ]
            .filter(\.1).map(\.0)
        }
        let readable = complete && missing.isEmpty
        description = try PluginDescription.checked(
            path: path, abiVersion: version, structSize: size, expectedSize: MemoryLayout<spec_plugin_v1>.size,
            missing: missing, name: readable ? Self.boundedString(table.pointee.name) : "",
            summary: readable ? Self.boundedString(table.pointee.description) : "",
            optionsHelp: readable ? Self.boundedString(table.pointee.options_help) : "",
            observes: readable && table.pointee.observe != nil)
        self.table = table
        self.handle = handle
    }

    /// Creates a proposer instance in this process with an options string (`""` for the plugin's
    /// defaults); `timeLimit` (seconds) bounds each `propose` (default
    /// ``PluginProposer/configuredTimeLimit``); `name` replaces `plugin:NAME` in statistics.
    public func makeProposer(
        options: String = "", vocabulary: PluginVocabulary, timeLimit: Double? = nil, name: String? = nil
    ) throws(PluginError) -> PluginProposer {
        try PluginProposer(
            library: self, options: options, vocabulary: vocabulary,
            timeLimit: timeLimit ?? PluginProposer.configuredTimeLimit, name: name)
    }

    /// A string from the plugin, read up to 4 KiB so that a missing terminator cannot run away.
    static func boundedString(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        let length = strnlen(pointer, 4096)
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// A NUL-terminated message from an error buffer the host owns.
    static func message(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { boundedString($0.baseAddress) }
    }
}
