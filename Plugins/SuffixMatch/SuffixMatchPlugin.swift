// suffix-match: a Speculate proposer plugin written in Swift, exported through the C ABI of
// Plugins/ABI/include/speculate_plugin.h with @_cdecl.
//
// It indexes a corpus (a text file named in the options, tokenized by the host's tokenizer) and
// everything generated so far in one suffix automaton, finds the longest suffixes of the context
// that occurred before, and proposes what followed them. Unlike fixed-n lookup it uses matches of
// any length, so a long copied passage (boilerplate, an API's documentation, a test fixture)
// keeps being predicted exactly.
import CSpeculatePluginABI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One plugin instance: the automaton over corpus + context, and its options.
final class SuffixMatchInstance {
    var corpusAutomaton = SuffixAutomaton()
    var automaton = SuffixAutomaton()
    /// How many corpus symbols (plus the separator) precede the context in `automaton.text`.
    var corpusLength = 0
    var minimumMatch = 2
    var branches = 3
    var maximumTokens = 16

    init(options: String, host: spec_host) throws(PluginFailure) {
        var corpusPath: String?
        for item in options.split(whereSeparator: { $0 == "," || $0 == " " }) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw PluginFailure(code: 3, "option '\(item)' is not key=value (keys: corpus, min, branches, max)")
            }
            switch parts[0] {
            case "corpus": corpusPath = parts[1]
            case "min": minimumMatch = try Self.positive(parts)
            case "branches": branches = try Self.positive(parts)
            case "max": maximumTokens = try Self.positive(parts)
            default: throw PluginFailure(code: 3, "unknown option '\(parts[0])' (keys: corpus, min, branches, max)")
            }
        }
        if let corpusPath {
            let text = try Self.readFile(corpusPath)
            guard let tokenize = host.tokenize else {
                throw PluginFailure(code: 4, "the host offers no tokenizer; cannot read a corpus")
            }
            let tokens = Self.tokenize(text, with: tokenize, context: host.context)
            for token in tokens { corpusAutomaton.append(token) }
            corpusAutomaton.append(-1)  // separator: no match runs from the corpus into the context
            corpusLength = corpusAutomaton.text.count
        }
        automaton = corpusAutomaton
    }

    private static func positive(_ parts: [String]) throws(PluginFailure) -> Int {
        guard let value = Int(parts[1]), value >= 1, value <= 4096 else {
            throw PluginFailure(code: 3, "option \(parts[0])=\(parts[1]) must be a whole number from 1 to 4096")
        }
        return value
    }

    private static func readFile(_ path: String) throws(PluginFailure) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw PluginFailure(code: 5, "cannot open corpus '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }

    private static func tokenize(_ text: [UInt8], with tokenize: TokenizeFunction, context: UnsafeMutableRawPointer?)
        -> [Int32]
    {
        text.withUnsafeBufferPointer { bytes -> [Int32] in
            let raw = UnsafeRawPointer(bytes.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
            let needed = Int(tokenize(context, raw, bytes.count, nil, 0))
            guard needed > 0 else { return [] }
            var tokens = [Int32](repeating: 0, count: needed)
            let written = tokens.withUnsafeMutableBufferPointer {
                Int(tokenize(context, raw, bytes.count, $0.baseAddress, Int32(needed)))
            }
            return Array(tokens.prefix(max(0, min(written, needed))))
        }
    }

    /// Brings the automaton up to `context`, rebuilding from the corpus when a new prompt starts.
    func index(_ context: UnsafeBufferPointer<Int32>) {
        let indexed = automaton.text.count - corpusLength
        let extends = context.count >= indexed && automaton.text[corpusLength...].elementsEqual(context[..<indexed])
        if !extends { automaton = corpusAutomaton }
        for token in context[(automaton.text.count - corpusLength)...] { automaton.append(token) }
    }

    /// Fills `draft` with up to `branches` chains continuing earlier occurrences.
    func propose(_ context: UnsafeBufferPointer<Int32>, budget: spec_budget, draft: inout spec_draft) {
        guard !context.isEmpty else { return }
        index(context)
        let depthLimit = min(Int(budget.max_depth), maximumTokens, Int(budget.remaining_context))
        var firstTokens: Set<Int32> = []
        let text = automaton.text
        for (length, start) in automaton.earlierOccurrences(minimumLength: minimumMatch) {
            guard firstTokens.count < branches, draft.count < draft.capacity else { break }
            guard start < text.count, text[start] >= 0, firstTokens.insert(text[start]).inserted else { continue }
            var position = start
            var parent: Int32 = -1
            var depth = 0
            while depth < depthLimit, position < text.count, text[position] >= 0, draft.count < draft.capacity {
                let node = Int(draft.count)
                draft.tokens[node] = text[position]
                draft.parents[node] = parent
                // Longer matches predict better; confidence decays along the chain.
                draft.scores[node] = Float(length) / Float(length + 2) * powf(0.92, Float(depth))
                parent = Int32(node)
                draft.count += 1
                position += 1
                depth += 1
            }
        }
    }
}

typealias TokenizeFunction =
    @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, Int, UnsafeMutablePointer<Int32>?, Int32) -> Int32

/// A failure with the ABI's error code and a message for the host.
struct PluginFailure: Error {
    let code: Int32
    let message: String
    init(code: Int32, _ message: String) {
        self.code = code
        self.message = message
    }

    func write(to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        let bytes = Array(message.utf8.prefix(capacity - 1))
        for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
        buffer[bytes.count] = 0
    }
}

private func createInstance(
    host: UnsafePointer<spec_host>?, options: UnsafePointer<CChar>?,
    instance: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    errorBuffer: UnsafeMutablePointer<CChar>?, capacity: Int
) -> Int32 {
    guard let host, host.pointee.struct_size >= UInt32(MemoryLayout<spec_host>.size), let instance else {
        PluginFailure(code: 1, "host table missing or too old").write(to: errorBuffer, capacity: capacity)
        return 1
    }
    do {
        let created = try SuffixMatchInstance(options: options.map { String(cString: $0) } ?? "", host: host.pointee)
        instance.pointee = Unmanaged.passRetained(created).toOpaque()
        return SPEC_PLUGIN_OK
    } catch {
        error.write(to: errorBuffer, capacity: capacity)
        return error.code
    }
}

private func instance(_ pointer: UnsafeMutableRawPointer?) -> SuffixMatchInstance? {
    pointer.map { Unmanaged<SuffixMatchInstance>.fromOpaque($0).takeUnretainedValue() }
}

/// The function table. Immutable after initialization and only ever read, by the host, through the
/// pointer the entry point returns; the C ABI needs it at a stable address, hence the global.
nonisolated(unsafe) private let pluginTable: UnsafeMutablePointer<spec_plugin_v1> = {
    let table = UnsafeMutablePointer<spec_plugin_v1>.allocate(capacity: 1)
    table.initialize(
        to: spec_plugin_v1(
            abi_version: 1,
            struct_size: UInt32(MemoryLayout<spec_plugin_v1>.size),
            name: staticString("suffix-match"),
            description: staticString(
                "continues the longest earlier match of the context in a corpus file and the text so far (suffix automaton)"
            ),
            options_help: staticString(
                "corpus=PATH (text file, optional), min=N shortest match (2), branches=N (3), max=N tokens per branch (16)"
            ),
            create: { host, options, instance, error, capacity in
                createInstance(host: host, options: options, instance: instance, errorBuffer: error, capacity: capacity)
            },
            propose: { pointer, context, length, budget, draft, error, capacity in
                guard let plugin = instance(pointer), let budget, let draft, length >= 0, length == 0 || context != nil
                else {
                    PluginFailure(code: 1, "invalid arguments").write(to: error, capacity: capacity)
                    return 1
                }
                plugin.propose(
                    UnsafeBufferPointer(start: context, count: Int(length)), budget: budget.pointee,
                    draft: &draft.pointee)
                return SPEC_PLUGIN_OK
            },
            observe: nil,
            destroy: { pointer in
                if let pointer { Unmanaged<SuffixMatchInstance>.fromOpaque(pointer).release() }
            }))
    return table
}()

/// A NUL-terminated copy that lives as long as the library.
private func staticString(_ text: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(text)!)
}

/// The plugin's entry point (see speculate_plugin.h).
@_cdecl("speculate_plugin_entry")
public func speculatePluginEntry() -> UnsafePointer<spec_plugin_v1> {
    UnsafePointer(pluginTable)
}
