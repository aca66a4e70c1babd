import Foundation

/// One piece of a rendered conversation.
public enum ChatPiece: Sendable, Equatable {
    /// A control token, by its text (`<|im_start|>`): one token where the vocabulary has it, else
    /// encoded as text (Mistral v1's `[INST]` is text in its vocabulary).
    case control(String)
    /// Text, always encoded as text: a message cannot open or close a turn by writing a control
    /// token's spelling.
    case text(String)

    /// The piece as the template's text has it.
    public var text: String {
        switch self {
        case .control(let text), .text(let text): text
        }
    }
}

extension ChatTemplate {
    /// The conversation as the family's format writes it, without the beginning-of-sequence token
    /// (added by the tokenizer where the file says, as for any prompt); with `addGenerationPrompt`
    /// it ends where the assistant's reply begins. `date` is the date Llama 3.1's system turn states.
    ///
    /// `tools` (each a tool's JSON as the template's `tojson` writes it) go into the system turn,
    /// and assistant calls and `tool` answers are written, in formats that have them
    /// (``supportsTools``); other formats ignore them, so check first.
    public func pieces(
        _ messages: [ChatMessage], tools: [String] = [], addGenerationPrompt: Bool = true, date: Date = Date()
    ) -> [ChatPiece] {
        switch family {
        case .chatML where hermesTools: hermes(messages, tools: tools, addGenerationPrompt)
        case .chatML: chatML(messages, addGenerationPrompt)
        case .llama3: llama3(messages, addGenerationPrompt, date: date)
        case .gemma: gemma(messages, addGenerationPrompt)
        case .phi3: phi3(messages, addGenerationPrompt)
        case .mistral: mistral(messages)
        case .llama2: llama2(messages)
        }
    }

    /// The rendered conversation as text (control tokens spelled out).
    public func text(
        _ messages: [ChatMessage], tools: [String] = [], addGenerationPrompt: Bool = true, date: Date = Date()
    ) -> String {
        pieces(messages, tools: tools, addGenerationPrompt: addGenerationPrompt, date: date).map(\.text).joined()
    }

    /// Whether the format writes tools, tool calls and tool answers.
    public var supportsTools: Bool { family == .chatML && hermesTools }

    /// Qwen2.5's ChatML with the Hermes tool format, as its template writes it.
    private func hermes(_ messages: [ChatMessage], tools: [String], _ generation: Bool) -> [ChatPiece] {
        var pieces: [ChatPiece] = []
        var rest = messages[...]
        if !tools.isEmpty {
            let system = rest.first?.role == "system" ? rest.removeFirst().content : defaultSystem ?? ""
            let listing = tools.map { "\n" + $0 }.joined()
            pieces += [
                .control("<|im_start|>"),
                .text(
                    "system\n\(system)\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                        + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\(listing)\n</tools>\n\n"
                        + "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
                        + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"),
                .control("<|im_end|>"), .text("\n"),
            ]
        } else if rest.first?.role != "system", let defaultSystem {
            pieces += [
                .control("<|im_start|>"), .text("system\n\(defaultSystem)"), .control("<|im_end|>"), .text("\n"),
            ]
        }
        let list = Array(rest)
        for (index, message) in list.enumerated() {
            switch message.role {
            case "assistant" where !message.toolCalls.isEmpty:
                var text = "assistant"
                if !message.content.isEmpty { text += "\n" + message.content }
                for call in message.toolCalls {
                    text +=
                        "\n<tool_call>\n{\"name\": \"\(call.name)\", \"arguments\": \(call.arguments)}\n</tool_call>"
                }
                pieces += [.control("<|im_start|>"), .text(text), .control("<|im_end|>"), .text("\n")]
            case "tool":
                if index == 0 || list[index - 1].role != "tool" { pieces += [.control("<|im_start|>"), .text("user")] }
                pieces.append(.text("\n<tool_response>\n\(message.content)\n</tool_response>"))
                if index == list.count - 1 || list[index + 1].role != "tool" {
                    pieces += [.control("<|im_end|>"), .text("\n")]
                }
            default:
                pieces += [
                    .control("<|im_start|>"), .text("\(message.role)\n\(message.content)"), .control("<|im_end|>"),
                    .text("\n"),
                ]
            }
        }
        if generation { pieces += [.control("<|im_start|>"), .text("assistant\n")] }
        return pieces
    }

    private func chatML(_ messages: [ChatMessage], _ generation: Bool) -> [ChatPiece] {
        var all = messages
        if let defaultSystem, messages.first?.role != "system" {
            all.insert(ChatMessage(role: "system", content: defaultSystem), at: 0)
        }
        var pieces: [ChatPiece] = []
        for message in all {
            pieces += [.control("<|im_start|>"), .text("\(message.role)\n\(message.content)"), .control("<|im_end|>")]
            pieces.append(.text("\n"))
        }
        if generation { pieces += [.control("<|im_start|>"), .text("assistant\n")] }
        return pieces
    }

    private func llama3(_ messages: [ChatMessage], _ generation: Bool, date: Date) -> [ChatPiece] {
        func turn(_ role: String, _ text: String) -> [ChatPiece] {
            [.control("<|start_header_id|>"), .text(role), .control("<|end_header_id|>"), .text("\n\n" + text)]
                + [.control("<|eot_id|>")]
        }
        var rest = messages[...]
        var pieces: [ChatPiece] = []
        if let knowledgeCutoff {
            // Every conversation opens with a system turn that dates itself; the conversation's own
            // system message (trimmed) follows in it.
            var system = ""
            if rest.first?.role == "system" { system = Self.trimmed(rest.removeFirst().content) }
            pieces += turn(
                "system", "Cutting Knowledge Date: \(knowledgeCutoff)\nToday Date: \(Self.day(date))\n\n" + system)
        }
        for message in rest { pieces += turn(message.role, Self.trimmed(message.content)) }
        if generation {
            pieces += [
                .control("<|start_header_id|>"), .text("assistant"), .control("<|end_header_id|>"), .text("\n\n"),
            ]
        }
        return pieces
    }

    private func gemma(_ messages: [ChatMessage], _ generation: Bool) -> [ChatPiece] {
        // Gemma has no system turn: system text opens the next user turn.
        var system = ""
        var pieces: [ChatPiece] = []
        for message in messages {
            if message.role == "system" {
                system += Self.trimmed(message.content)
                continue
            }
            let role = message.role == "assistant" ? "model" : message.role
            var text = "\(role)\n"
            if !system.isEmpty && role != "model" {
                text += system + "\n\n"
                system = ""
            }
            pieces += [.control("<start_of_turn>"), .text(text + Self.trimmed(message.content))]
            pieces += [.control("<end_of_turn>"), .text("\n")]
        }
        if generation { pieces += [.control("<start_of_turn>"), .text("model\n")] }
        return pieces
    }

    private func phi3(_ messages: [ChatMessage], _ generation: Bool) -> [ChatPiece] {
        var pieces: [ChatPiece] = []
        // Phi-3.5's template leaves out an empty system message.
        for message in messages where !(message.role == "system" && message.content.isEmpty) {
            pieces += [
                .control("<|\(message.role)|>"), .text("\n" + message.content), .control("<|end|>"), .text("\n"),
            ]
        }
        if generation { pieces += [.control("<|assistant|>"), .text("\n")] }
        return pieces
    }

    private func mistral(_ messages: [ChatMessage]) -> [ChatPiece] {
        let style = mistralStyle ?? .v3
        var pieces: [ChatPiece] = []
        if style == .v7 || style == .v7Tekken {
            let space = style == .v7 ? " " : ""
            for message in messages {
                switch message.role {
                case "system":
                    pieces += [
                        .control("[SYSTEM_PROMPT]"), .text(space + message.content), .control("[/SYSTEM_PROMPT]"),
                    ]
                case "user": pieces += [.control("[INST]"), .text(space + message.content), .control("[/INST]")]
                default: pieces += [.text(space + message.content), .control("</s>")]
                }
            }
            return pieces
        }
        let leading = style == .v1 ? " " : ""
        let trailing = style == .v3Tekken ? "" : " "
        var rest = messages[...]
        var lastSystem: String?
        if systemBeforeLastMessage, rest.first?.role == "system" { lastSystem = rest.removeFirst().content }
        var insideTurn = false
        for (index, message) in zip(rest.indices, rest) {
            if !insideTurn {
                pieces += [.text(leading), .control("[INST]"), .text(trailing)]
                insideTurn = true
            }
            switch message.role {
            case "system": pieces.append(.text(message.content + "\n\n"))
            case "user":
                let system = index == rest.indices.last ? lastSystem.map { $0 + "\n\n" } ?? "" : ""
                pieces += [.text(system + message.content + leading), .control("[/INST]")]
            default:
                let text = style == .v3 ? Self.trimmed(message.content) : message.content
                pieces += [.text(trailing + text), .control("</s>")]
                insideTurn = false
            }
        }
        return pieces.filter { $0 != .text("") }
    }

    private func llama2(_ messages: [ChatMessage]) -> [ChatPiece] {
        let style = llama2Style ?? Llama2Style(systemBlock: true, bosInHistory: false, trims: false)
        var pieces: [ChatPiece] = [.text("[INST] ")]
        var insideTurn = true
        for message in messages {
            let content = style.trims ? Self.trimmed(message.content) : message.content
            if !insideTurn {
                insideTurn = true
                if style.bosInHistory { pieces.append(.control("<s>")) }
                pieces.append(.text("[INST] "))
            }
            switch message.role {
            case "system":
                pieces.append(.text(style.systemBlock ? "<<SYS>>\n\(content)\n<</SYS>>\n\n" : content + "\n"))
            case "user": pieces.append(.text(content + " [/INST]"))
            default:
                pieces += [.text(content), .control("</s>")]
                insideTurn = false
            }
        }
        return pieces
    }

    /// Jinja's `trim`: surrounding white space removed.
    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// The date as Llama 3.1's template writes it (`strftime("%d %b %Y")`: `26 Jul 2024`).
    static func day(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "dd MMM yyyy"
        return formatter.string(from: date)
    }
}
