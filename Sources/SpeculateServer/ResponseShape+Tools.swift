import Foundation
import SpeculateAPI

/// Tool calls in chat answers: the model's `<tool_call>` blocks become OpenAI's `tool_calls`,
/// whole or as stream deltas, with `finish_reason` "tool_calls".
extension ResponseShape {
    /// The answer's message and finish reason: its calls when it made any that parse.
    func chatMessage(_ c: Completion) -> (message: [String: Any], finish: String) {
        guard let tools, tools.choice != .none, let parsed = ToolCallText(c.text, tools: Set(tools.tools.map(\.name))),
            !parsed.calls.isEmpty
        else {
            return (["role": "assistant", "content": c.text], c.finishReason)
        }
        let calls = tools.parallel ? parsed.calls : Array(parsed.calls.prefix(1))
        return (
            [
                "role": "assistant", "content": parsed.content.isEmpty ? NSNull() : parsed.content,
                "tool_calls": calls.enumerated().map { toolCall($1, index: nil, number: $0, choice: c.index) },
            ], c.finishReason == "stop" ? "tool_calls" : c.finishReason
        )
    }

    /// One call in OpenAI's shape (with its `index` in stream deltas).
    func toolCall(_ call: ToolCallText.Call, index: Int?, number: Int, choice: Int) -> [String: Any] {
        var object: [String: Any] = [
            "id": "call_\(id.suffix(12))_\(choice)_\(number)", "type": "function",
            "function": ["name": call.name, "arguments": call.arguments],
        ]
        if let index { object["index"] = index }
        return object
    }

    /// The stream's closing chunks for an answer with calls: one delta carrying them, then the
    /// finish. Nil when the answer has none (the caller sends its usual last chunk).
    func toolCallChunks(_ c: Completion, first: Bool) -> [[String: Any]]? {
        let (message, finish) = chatMessage(c)
        guard let calls = message["tool_calls"] as? [[String: Any]] else { return nil }
        var delta: [String: Any] = [
            "tool_calls": calls.enumerated().map { index, call in call.merging(["index": index]) { $1 } }
        ]
        if first { delta["role"] = "assistant" }
        var last = self.last(c, first: false)
        if var choices = last["choices"] as? [[String: Any]], !choices.isEmpty {
            choices[0]["finish_reason"] = finish
            last["choices"] = choices
        }
        return [
            [
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [["index": c.index, "delta": delta, "finish_reason": NSNull(), "logprobs": NSNull()]],
            ], last,
        ]
    }
}

/// Streamed text of an answer that may call tools: passes text through until a `<tool_call>`
/// begins (holding back what could be its start), then holds the rest for the closing chunks.
/// An answer that opens with `{` or a code fence may be a bare call: it is held whole.
struct ToolCallStream {
    private static let marker = "<tool_call>"
    private var pending = ""
    /// Text after a `<tool_call>` marker.
    private var held = ""
    private var sentAny = false
    /// Whether a call has begun (everything after it is held).
    private(set) var calling = false
    /// Whether the answer so far could be a bare call (held until the end).
    private var maybeBare = true

    /// The part of `text` to send now.
    mutating func visible(_ text: String) -> String {
        guard !calling else {
            held += text
            return ""
        }
        pending += text
        if maybeBare, !sentAny {
            let start = pending.drop { $0.isWhitespace }
            if start.isEmpty || start.hasPrefix("{") || start.hasPrefix("```") || "```".hasPrefix(start) { return "" }
            maybeBare = false
        }
        if let start = pending.range(of: Self.marker) {
            calling = true
            let shown = String(pending[..<start.lowerBound])
            held = String(pending[start.upperBound...])
            pending = ""
            return shown
        }
        var kept = 0
        for length in stride(from: min(Self.marker.count - 1, pending.count), through: 1, by: -1)
        where pending.hasSuffix(Self.marker.prefix(length)) {
            kept = length
            break
        }
        let shown = String(pending.dropLast(kept))
        pending = String(pending.suffix(kept))
        if !shown.isEmpty { sentAny = true }
        return shown
    }

    /// Everything held back: the caller sends it as text when the answer held no call after all
    /// (a `<tool_call>` cut by the token limit, or one that does not parse).
    mutating func rest() -> String {
        defer {
            pending = ""
            held = ""
        }
        return calling ? Self.marker + held : pending
    }
}
