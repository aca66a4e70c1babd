import Foundation
import SpeculateFormat
import SpeculateGrammar

/// Chat messages, with the tool calls assistants made and the answers tools gave, and the
/// `tools` / `tool_choice` / `parallel_tool_calls` fields.
extension RequestParser {
    /// `messages[index]`; `ordered` is the same message read in order (for tool-call arguments).
    func chatMessage(_ item: Any, index: Int, ordered: JSONValue?) throws(APIError) -> ChatMessage {
        guard let message = item as? [String: Any], let role = message["role"] as? String else {
            throw .invalid("messages[\(index)] must be an object with a string 'role'", param: "messages")
        }
        let mapped = role == "developer" ? "system" : role
        guard ["system", "user", "assistant", "tool"].contains(mapped) else {
            throw .invalid(
                "messages[\(index)].role '\(role)' is not one of system, developer, user, assistant, tool",
                param: "messages")
        }
        var calls: [ChatToolCall] = []
        if mapped == "assistant", let list = message["tool_calls"], !(list is NSNull) {
            guard case .array(let items)? = ordered?["tool_calls"] else {
                throw .invalid("messages[\(index)].tool_calls must be a list", param: "messages")
            }
            for item in items {
                guard case .string(let name)? = item["function"]?["name"],
                    case .string(let arguments)? = item["function"]?["arguments"],
                    let parsed = try? JSONValue(parsing: Array(arguments.utf8))
                else {
                    throw .invalid(
                        "messages[\(index)].tool_calls: each call needs function.name and function.arguments (a JSON string)",
                        param: "messages")
                }
                calls.append(ChatToolCall(name: name, arguments: parsed.spacedText))
            }
        }
        let content: String
        switch message["content"] {
        case let text as String: content = text
        case let parts as [Any]:
            var text = ""
            for part in parts {
                guard let part = part as? [String: Any], part["type"] as? String == "text",
                    let piece = part["text"] as? String
                else {
                    throw .invalid("messages[\(index)].content: only text parts are supported", param: "messages")
                }
                text += piece
            }
            content = text
        case let missing where (missing == nil || missing is NSNull) && !calls.isEmpty:
            // An assistant message that only calls tools has no content.
            content = ""
        default:
            throw .invalid("messages[\(index)].content must be a string or a list of text parts", param: "messages")
        }
        return ChatMessage(role: mapped, content: content, toolCalls: calls)
    }

    /// The request's tools, or nil when it offers none.
    func toolRequest(_ object: [String: Any], ordered: JSONValue?) throws(APIError) -> ToolRequest? {
        guard let list = object["tools"], !(list is NSNull) else {
            if let choice = object["tool_choice"], !(choice is NSNull), choice as? String != "none" {
                throw .invalid("'tool_choice' needs 'tools'", param: "tool_choice")
            }
            return nil
        }
        guard case .array(let items)? = ordered?["tools"] else {
            throw .invalid("'tools' must be a list of {type: function, function: {name, parameters}}", param: "tools")
        }
        if items.isEmpty {
            if let choice = object["tool_choice"], !(choice is NSNull), choice as? String != "none",
                choice as? String != "auto"
            {
                throw .invalid("'tool_choice' asks for a call but 'tools' is empty", param: "tools")
            }
            return nil
        }
        guard items.count <= 64 else { throw .invalid("'tools' lists more than 64 functions", param: "tools") }
        var tools: [ToolRequest.Tool] = []
        for (index, item) in items.enumerated() {
            guard item["type"] == .string("function"), case .string(let name)? = item["function"]?["name"],
                !name.isEmpty, name.count <= 64,
                name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" })
            else {
                throw .invalid(
                    "tools[\(index)] must be {\"type\": \"function\", \"function\": {\"name\": ...}} with a name of letters, digits, _ and - (at most 64)",
                    param: "tools")
            }
            // Schemas are compiled only for a required call (they constrain it then); a tool the
            // model may call is only shown, whatever keywords its schema uses.
            let parameters = item["function"]?["parameters"]
            if let parameters {
                guard case .object = parameters else {
                    throw .invalid("tools[\(index)].function.parameters must be a JSON Schema object", param: "tools")
                }
            }
            tools.append(ToolRequest.Tool(name: name, parameters: parameters, rendered: item.spacedText))
        }
        guard Set(tools.map(\.name)).count == tools.count else {
            throw .invalid("'tools' names a function twice", param: "tools")
        }
        var request = ToolRequest(tools: tools, choice: .auto)
        switch object["tool_choice"] {
        case nil, is NSNull, "auto" as String: break
        case "none" as String: request.choice = .none
        case "required" as String: request.choice = .required
        case let choice as [String: Any]:
            guard choice["type"] as? String == "function", let function = choice["function"] as? [String: Any],
                let name = function["name"] as? String
            else {
                throw .invalid(
                    "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    param: "tool_choice")
            }
            guard tools.contains(where: { $0.name == name }) else {
                throw .invalid("'tool_choice' names '\(name)', which 'tools' does not list", param: "tool_choice")
            }
            request.choice = .function(name)
        default:
            throw .invalid("'tool_choice' must be none, auto, required or a function", param: "tool_choice")
        }
        if let parallel = object["parallel_tool_calls"], !(parallel is NSNull) {
            guard let flag = boolean(parallel) else {
                throw .invalid("'parallel_tool_calls' must be true or false", param: "parallel_tool_calls")
            }
            request.parallel = flag
        }
        return request
    }
}
