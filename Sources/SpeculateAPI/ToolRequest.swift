import Foundation
import SpeculateGrammar

/// The functions a chat request offers the model (`tools`) and whether it must call one
/// (`tool_choice`).
public struct ToolRequest: Sendable {
    /// One function.
    public struct Tool: Sendable {
        /// Its name.
        public var name: String
        /// The JSON Schema of its arguments, if given.
        public var parameters: JSONValue?
        /// The tool as the chat template lists it (`tojson` of the request's tool object).
        public var rendered: String
    }

    /// Whether and which function must be called.
    public enum Choice: Sendable, Equatable {
        /// No call: the tools are not shown to the model.
        case none
        /// The model decides (the default).
        case auto
        /// One call of any of the tools, constrained to its schema.
        case required
        /// One call of this function, constrained to its schema.
        case function(String)
    }

    /// The tools offered.
    public var tools: [Tool]
    /// Whether one must be called.
    public var choice: Choice
    /// Whether the answer may hold several calls (`parallel_tool_calls`, default true).
    public var parallel = true

    /// The tools shown to the model (none for ``Choice/none``).
    public var shown: [Tool] { choice == .none ? [] : tools }

    /// For a required call, the grammar of the model's tool-call text (`<tool_call>` blocks in
    /// Qwen2.5's format); nil when the model may answer in text.
    public func grammar() throws(JSONSchemaError) -> JSONGrammar? {
        let callable: [Tool]
        switch choice {
        case .none, .auto: return nil
        case .required: callable = tools
        case .function(let name): callable = tools.filter { $0.name == name }
        }
        return try JSONGrammar(
            toolCall: callable.map { ($0.name, $0.parameters) }, open: "<tool_call>\n", close: "\n</tool_call>")
    }
}

/// The calls in a model's answer, in Qwen2.5's format: `<tool_call>\n{"name": ..., "arguments":
/// {...}}\n</tool_call>` blocks after any text.
public struct ToolCallText: Sendable, Equatable {
    /// One call: the function and its arguments as compact JSON text (OpenAI's `arguments`).
    public struct Call: Sendable, Equatable {
        /// The function's name.
        public var name: String
        /// Its arguments as compact JSON text.
        public var arguments: String
    }

    /// The text before the first call (trimmed).
    public var content: String
    /// The calls.
    public var calls: [Call]

    /// The calls in `text`, or nil when it has none that parse (then it is all text). An answer
    /// that is nothing but one call's JSON object, bare or in a ```json fence (as small models
    /// write it; llama.cpp's Hermes parser takes it too), is a call when it names one of `tools`.
    public init?(_ text: String, tools: Set<String> = []) {
        guard let first = text.range(of: "<tool_call>") else {
            guard let call = Self.bareCall(text), tools.contains(call.name) else { return nil }
            content = ""
            calls = [call]
            return
        }
        var calls: [Call] = []
        var rest = text[first.lowerBound...]
        while let open = rest.range(of: "<tool_call>") {
            let body = rest[open.upperBound...]
            let close = body.range(of: "</tool_call>")
            let json = body[..<(close?.lowerBound ?? body.endIndex)]
            guard let value = try? JSONValue(parsing: Array(json.utf8)), case .string(let name)? = value["name"] else {
                return nil
            }
            let arguments: String
            switch value["arguments"] ?? value["parameters"] {
            case .object(let members)?: arguments = JSONValue.object(members).text
            case .string(let text)?: arguments = text
            case nil: arguments = "{}"
            default: return nil
            }
            calls.append(Call(name: name, arguments: arguments))
            guard let close else { break }
            rest = body[close.upperBound...]
        }
        // A function the request did not offer is no call (when the offered ones are known).
        if !tools.isEmpty { calls.removeAll { !tools.contains($0.name) } }
        guard !calls.isEmpty else { return nil }
        content = text[..<first.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        self.calls = calls
    }

    /// A whole answer that is one `{"name": ..., "arguments": {...}}` object, maybe fenced.
    static func bareCall(_ text: String) -> Call? {
        var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if body.hasPrefix("```") {
            guard body.hasSuffix("```"), body.count > 6, let newline = body.firstIndex(of: "\n") else { return nil }
            body = String(body[body.index(after: newline)..<body.index(body.endIndex, offsetBy: -3)])
        }
        guard let value = try? JSONValue(parsing: Array(body.utf8)), case .string(let name)? = value["name"],
            case .object(let members)? = value["arguments"] ?? value["parameters"]
        else { return nil }
        return Call(name: name, arguments: JSONValue.object(members).text)
    }
}
