extension JSONGrammar {
    /// The grammar of the documents `schema` (a JSON Schema) allows, in the subset this grammar
    /// speaks: `type` (one or a list), objects (`properties` in their order, `required`,
    /// `additionalProperties` false, or an object without `properties` taking any keys), arrays
    /// (`items`, `minItems`, `maxItems`), strings, numbers, integers, booleans, null, `enum`,
    /// `const`, `anyOf`/`oneOf` of alternatives that start differently, and local `$ref`s into
    /// `$defs`/`definitions` (recursion included). Annotations (`title`, `description`, ...) are
    /// ignored; any other keyword is refused by name, never silently dropped.
    public init(schema: JSONValue) throws(JSONSchemaError) {
        var compiler = SchemaCompiler(document: schema)
        let root = try compiler.compile(schema, path: "#")
        self = compiler.grammar
        self.root = root
        resolveStarts()
    }

    /// A function call in the Hermes format Qwen2.5 is trained on: `open`, then
    /// `{"name": "NAME", "arguments": ARGUMENTS}` for one of `tools` (its arguments as its
    /// `parameters` schema allows; a tool without one takes any object), then `close`.
    public init(toolCall tools: [(name: String, parameters: JSONValue?)], open: String, close: String)
        throws(JSONSchemaError)
    {
        guard !tools.isEmpty, tools.count <= 64 else { throw JSONSchemaError("a tool call needs 1 to 64 tools") }
        var grammar = JSONGrammar(root: JSONGrammar.anyNode)
        var prefixes: [[UInt8]] = []
        var arguments: [Int] = []
        for tool in tools {
            prefixes.append(Array(("{\"name\": " + JSONValue.quoted(tool.name) + ", \"arguments\": ").utf8))
            guard let parameters = tool.parameters else {
                arguments.append(JSONGrammar.anyObjectNode)
                continue
            }
            var compiler = SchemaCompiler(document: parameters, grammar: grammar)
            var node = try compiler.compile(parameters, path: "\(tool.name): #")
            grammar = compiler.grammar
            // Arguments are an object: a schema allowing anything means any object.
            if node == JSONGrammar.anyNode { node = JSONGrammar.anyObjectNode }
            guard grammar.startBytes(node) == [UInt8(ascii: "{")] else {
                throw JSONSchemaError("\(tool.name): the parameters must be an object schema")
            }
            arguments.append(node)
        }
        guard Set(prefixes).count == prefixes.count else { throw JSONSchemaError("two tools have the same name") }
        grammar.literalSets.append(prefixes)
        grammar.nodes.append(.choice(set: grammar.literalSets.count - 1, next: arguments))
        grammar.nodes.append(
            .sequence([.text(Array(open.utf8)), .value(grammar.nodes.count - 1), .text(Array(("}" + close).utf8))]))
        grammar.root = grammar.nodes.count - 1
        grammar.resolveStarts()
        self = grammar
    }

    /// The grammar of the schema in `text` (JSON).
    public init(schemaText text: String) throws(JSONSchemaError) {
        try self.init(schema: JSONValue(parsing: Array(text.utf8)))
    }
}

/// Turns a schema into ``JSONGrammar`` nodes.
private struct SchemaCompiler {
    let document: JSONValue
    var grammar = JSONGrammar(root: JSONGrammar.anyNode)

    init(document: JSONValue, grammar: JSONGrammar = JSONGrammar(root: JSONGrammar.anyNode)) {
        self.document = document
        self.grammar = grammar
    }
    /// Nodes of `$ref`s compiled or being compiled.
    var references: [String: Int] = [:]

    static let annotations: Set<String> = [
        "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
        "writeOnly", "$defs", "definitions", "strict", "name",
    ]
    static let keywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum", "const",
        "anyOf", "oneOf", "$ref",
    ]

    mutating func add(_ node: JSONGrammar.Node) -> Int {
        grammar.nodes.append(node)
        return grammar.nodes.count - 1
    }

    mutating func compile(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
        switch schema {
        case .bool(true): return JSONGrammar.anyNode
        case .bool(false): throw JSONSchemaError("\(path): the schema false allows no value")
        case .object(let members):
            for member in members
            where !Self.annotations.contains(member.key) && !Self.keywords.contains(member.key) {
                throw JSONSchemaError(
                    "\(path): the keyword '\(member.key)' is not supported (supported: \(Self.keywords.sorted().joined(separator: ", ")))"
                )
            }
            if let reference = schema["$ref"] { return try compileReference(reference, path: path) }
            if let values = schema["enum"] {
                guard case .array(let list) = values, !list.isEmpty else {
                    throw JSONSchemaError("\(path)/enum must be a non-empty list")
                }
                return try literal(list, path: "\(path)/enum")
            }
            if let value = schema["const"] { return try literal([value], path: "\(path)/const") }
            if let alternatives = schema["anyOf"] ?? schema["oneOf"] {
                guard case .array(let list) = alternatives, !list.isEmpty else {
                    throw JSONSchemaError("\(path)/anyOf must be a non-empty list of schemas")
                }
                var members: [Int] = []
                for (index, item) in list.enumerated() {
                    members.append(try compile(item, path: "\(path)/anyOf/\(index)"))
                }
                return try union(members, path: path)
            }
            switch schema["type"] {
            case nil:
                if schema["properties"] != nil || schema["required"] != nil { return try object(schema, path: path) }
                if schema["items"] != nil { return try array(schema, path: path) }
                return JSONGrammar.anyNode
            case .string(let name)?: return try typed(name, schema, path: path)
            case .array(let names)? where !names.isEmpty:
                var members: [Int] = []
                for name in names {
                    guard case .string(let text) = name else { throw JSONSchemaError("\(path)/type must name types") }
                    members.append(try typed(text, schema, path: path))
                }
                return try union(members, path: path)
            default: throw JSONSchemaError("\(path)/type must be a type name or a list of them")
            }
        default: throw JSONSchemaError("\(path): a schema must be an object or a boolean")
        }
    }

    mutating func typed(_ name: String, _ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
        switch name {
        case "object": return try object(schema, path: path)
        case "array": return try array(schema, path: path)
        case "string": return add(.string)
        case "number": return add(.number(integer: false))
        case "integer": return add(.number(integer: true))
        case "boolean": return try literal([.bool(true), .bool(false)], path: path)
        case "null": return try literal([.null], path: path)
        default: throw JSONSchemaError("\(path)/type: '\(name)' is not a JSON Schema type")
        }
    }

    mutating func object(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
        var required: [String] = []
        if let list = schema["required"] {
            guard case .array(let names) = list else { throw JSONSchemaError("\(path)/required must list names") }
            for name in names {
                guard case .string(let text) = name else { throw JSONSchemaError("\(path)/required must list names") }
                required.append(text)
            }
        }
        guard let properties = schema["properties"] else {
            guard required.isEmpty else {
                throw JSONSchemaError("\(path)/required names properties that 'properties' does not declare")
            }
            switch schema["additionalProperties"] {
            case nil, .bool(true)?: return JSONGrammar.anyObjectNode
            case .bool(false)?: return try literal([.object([])], path: path)
            case let values?:
                let index = grammar.nodes.count
                grammar.nodes.append(.any)
                grammar.nodes[index] = .freeObject(values: try compile(values, path: "\(path)/additionalProperties"))
                return index
            }
        }
        guard case .object(let members) = properties else {
            throw JSONSchemaError("\(path)/properties must be an object")
        }
        guard members.count <= 64 else { throw JSONSchemaError("\(path)/properties: more than 64 properties") }
        switch schema["additionalProperties"] {
        case nil, .bool(false)?: break
        default:
            throw JSONSchemaError(
                "\(path)/additionalProperties: only false is supported beside 'properties' (the output has the declared properties only)"
            )
        }
        if let unknown = required.first(where: { name in !members.contains { $0.key == name } }) {
            throw JSONSchemaError("\(path)/required names '\(unknown)', which 'properties' does not declare")
        }
        let index = add(.any)
        var compiled: [JSONGrammar.Property] = []
        for member in members {
            let value = try compile(member.value, path: "\(path)/properties/\(member.key)")
            compiled.append(
                JSONGrammar.Property(
                    key: Array(JSONValue.quoted(member.key).utf8), value: value, required: required.contains(member.key)
                ))
        }
        grammar.nodes[index] = .object(compiled)
        return index
    }

    mutating func array(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
        let items = try schema["items"].map { (item) throws(JSONSchemaError) in try compile(item, path: "\(path)/items")
        }
        let minItems = try count(schema["minItems"], path: "\(path)/minItems") ?? 0
        let maxItems = try count(schema["maxItems"], path: "\(path)/maxItems") ?? .max
        guard minItems <= maxItems else { throw JSONSchemaError("\(path): minItems is above maxItems") }
        return add(.array(items: items ?? JSONGrammar.anyNode, minItems: minItems, maxItems: maxItems))
    }

    func count(_ value: JSONValue?, path: String) throws(JSONSchemaError) -> Int? {
        guard let value else { return nil }
        guard case .number(let text) = value, let count = Int(text), count >= 0 else {
            throw JSONSchemaError("\(path) must be a non-negative integer")
        }
        return count
    }

    mutating func literal(_ values: [JSONValue], path: String) throws(JSONSchemaError) -> Int {
        guard values.count <= 64 else { throw JSONSchemaError("\(path): more than 64 values") }
        let texts = Array(Set(values.map { Array($0.text.utf8) })).sorted { $0.lexicographicallyPrecedes($1) }
        grammar.literalSets.append(texts)
        return add(.literal(set: grammar.literalSets.count - 1))
    }

    /// Alternatives, flattened; each must start with characters no other one starts with.
    mutating func union(_ members: [Int], path: String) throws(JSONSchemaError) -> Int {
        var flat: [Int] = []
        for member in members {
            if case .union(let inner) = grammar.nodes[member] { flat += inner } else { flat.append(member) }
        }
        if flat.count == 1 { return flat[0] }
        var seen = Set<UInt8>()
        for member in flat {
            let starts = grammar.startBytes(member)
            guard seen.isDisjoint(with: starts) else {
                throw JSONSchemaError(
                    "\(path): alternatives must start differently (one string, one number, one object, one array, booleans, null; or enum values); these overlap"
                )
            }
            seen.formUnion(starts)
        }
        return add(.union(flat))
    }

    mutating func compileReference(_ reference: JSONValue, path: String) throws(JSONSchemaError) -> Int {
        guard case .string(let target) = reference else { throw JSONSchemaError("\(path)/$ref must be a string") }
        if let node = references[target] { return node }
        var resolved = document
        if target != "#" {
            let parts = target.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.first == "#", parts.count >= 2 else {
                throw JSONSchemaError(
                    "\(path)/$ref '\(target)': only references inside the schema (#/...) are supported")
            }
            for part in parts.dropFirst() {
                let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                guard let next = resolved[key] else {
                    throw JSONSchemaError("\(path)/$ref '\(target)' does not resolve")
                }
                resolved = next
            }
        }
        let index = add(.any)
        references[target] = index
        let compiled = try compile(resolved, path: target)
        guard compiled != index else { throw JSONSchemaError("\(path)/$ref '\(target)' refers to itself") }
        grammar.nodes[index] = grammar.nodes[compiled]
        return index
    }
}
