import Foundation

/// The signature of a C function used as a proposer (`ffi:LIBRARY:SYMBOL[:SIGNATURE]`), written
/// as its C prototype with the parameter names saying what each argument is:
///
///     int32_t (const int32_t *context, int64_t context_length, int32_t *draft, int32_t capacity)
///     void predict(const int32_t *context, size_t context_length, int32_t *draft, size_t capacity, size_t *draft_length)
///
/// `context` (every token so far), `context_length`, `draft` (where the function writes its
/// tokens, a chain) and `capacity` (how many it may write) are required; the draft's length comes
/// back as the integer return value (negative: no draft) or through `draft_length`, in which case
/// an integer return is a status (0 = success). Integers are `int32_t`, `int64_t`, `uint32_t`,
/// `uint64_t`, `int`, `long`, `size_t` or `ssize_t`; tokens are `int32_t`. Without a signature in
/// the spec, it is read from a manifest beside the library (`LIBRARY.ffi`), one
/// `SYMBOL: SIGNATURE` per line (`#` starts a comment).
public struct ForeignFunctionSignature: Sendable, Equatable {
    /// The library holding the function.
    public var library: String
    /// The function's symbol.
    public var symbol: String
    /// The canonical form the adapter reads: the return, then one field per argument.
    public var fields: [String]

    /// The options string of the libffi adapter (library, symbol and fields, one per line).
    public var adapterOptions: String { ([library, symbol] + fields).joined(separator: "\n") }

    /// Parses `ffi:` spec arguments: `LIBRARY:SYMBOL[:SIGNATURE]`.
    public static func parse(argument: String) throws(PluginError) -> ForeignFunctionSignature {
        let parts = argument.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .invalidSignature(
                spec: "ffi:\(argument)", problem: "write ffi:LIBRARY:SYMBOL[:SIGNATURE] (see `speculate proposers`)")
        }
        let (library, symbol) = (parts[0], parts[1])
        let text: String
        if parts.count == 3 {
            text = parts[2]
        } else {
            text = try manifestEntry(library: library, symbol: symbol)
        }
        return try parse(library: library, symbol: symbol, signature: text)
    }

    /// The signature of `symbol` in the manifest beside `library`.
    static func manifestEntry(library: String, symbol: String) throws(PluginError) -> String {
        let manifest = library + ".ffi"
        guard let data = FileManager.default.contents(atPath: manifest) else {
            throw .invalidSignature(
                spec: "ffi:\(library):\(symbol)",
                problem: "no signature given and no manifest \(manifest); write ffi:LIBRARY:SYMBOL:SIGNATURE")
        }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let pair = content.split(separator: ":", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == symbol else { continue }
            return String(pair[1])
        }
        throw .invalidSignature(spec: "ffi:\(library):\(symbol)", problem: "\(manifest) has no line for '\(symbol)'")
    }

    /// Parses a C prototype into the adapter's canonical fields, naming the first problem.
    public static func parse(library: String, symbol: String, signature: String) throws(PluginError)
        -> ForeignFunctionSignature
    {
        func problem(_ text: String) -> PluginError {
            .invalidSignature(spec: "ffi:\(library):\(symbol):\(signature)", problem: text)
        }
        guard let open = signature.firstIndex(of: "("),
            signature.hasSuffix(")") || signature.trimmingCharacters(in: .whitespaces).hasSuffix(")")
        else { throw problem("expected RETURN [NAME](PARAMETERS), e.g. int32_t (const int32_t *context, ...)") }
        var head = signature[..<open].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if let last = head.last, last == symbol, head.count > 1 { head.removeLast() }
        let returnType = head.joined(separator: " ")
        let inside = signature[signature.index(after: open)...].trimmingCharacters(in: .whitespaces).dropLast()
        var roles: [String: String] = [:]
        var fields: [String] = []
        for parameter in inside.split(separator: ",") {
            let text = parameter.trimmingCharacters(in: .whitespaces)
            let (type, name) = splitParameter(text)
            guard !name.isEmpty else { throw problem("parameter '\(text)' has no name (name it by its role)") }
            guard roles[name] == nil else { throw problem("parameter '\(name)' appears twice") }
            switch name {
            case "context", "draft":
                guard let pointee = pointee(of: type), integer(pointee) == "i32" else {
                    throw problem("'\(name)' must be an int32_t pointer (found '\(type)')")
                }
                fields.append(name)
            case "context_length", "capacity":
                guard let kind = integer(type) else { throw problem("'\(name)' must be an integer (found '\(type)')") }
                fields.append("\(name):\(kind)")
            case "draft_length":
                guard let pointee = pointee(of: type), let kind = integer(pointee) else {
                    throw problem("'draft_length' must point to an integer (found '\(type)')")
                }
                fields.append("draft_length:\(kind)")
            default:
                throw problem(
                    "unknown parameter '\(name)': parameters are named context, context_length, draft, capacity and draft_length"
                )
            }
            roles[name] = type
        }
        for required in ["context", "draft", "capacity"] where roles[required] == nil {
            throw problem("the function must take '\(required)'")
        }
        let result: String
        if roles["draft_length"] != nil {
            if returnType == "void" {
                result = "void"
            } else if let kind = integer(returnType) {
                result = "status:\(kind)"
            } else {
                throw problem("return type '\(returnType)' must be void or an integer status")
            }
        } else {
            guard let kind = integer(returnType) else {
                throw problem(
                    "without a draft_length parameter the function must return the draft length as an integer (found '\(returnType)')"
                )
            }
            result = "count:\(kind)"
        }
        return ForeignFunctionSignature(library: library, symbol: symbol, fields: [result] + fields)
    }

    /// "const int32_t *context" into ("const int32_t *", "context").
    private static func splitParameter(_ text: String) -> (type: String, name: String) {
        guard let last = text.lastIndex(where: { $0 == " " || $0 == "*" }) else { return (text, "") }
        let name = String(text[text.index(after: last)...])
        let type = text[...last].replacingOccurrences(of: " *", with: "*").trimmingCharacters(in: .whitespaces)
        return (type, name)
    }

    /// The integer type a pointer type points to ("const int32_t*" → "int32_t"), or nil.
    private static func pointee(of type: String) -> String? {
        guard type.hasSuffix("*"), type.filter({ $0 == "*" }).count == 1 else { return nil }
        var base = String(type.dropLast()).trimmingCharacters(in: .whitespaces)
        if base.hasPrefix("const ") { base.removeFirst(6) }
        return base
    }

    /// The adapter's name for a C integer type, or nil.
    private static func integer(_ type: String) -> String? {
        let words = type.split(separator: " ").filter { $0 != "const" }.joined(separator: " ")
        switch words {
        case "int32_t", "int", "signed", "signed int": return "i32"
        case "uint32_t", "unsigned", "unsigned int": return "u32"
        case "int64_t", "long", "long int", "long long", "ssize_t", "ptrdiff_t", "intptr_t": return "i64"
        case "uint64_t", "unsigned long", "unsigned long long", "size_t", "uintptr_t": return "u64"
        default: return nil
        }
    }
}
