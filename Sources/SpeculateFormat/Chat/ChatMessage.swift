/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable {
    /// Who speaks: `system`, `user`, `assistant`, or `tool` (a tool's answer).
    public var role: String
    /// What they say.
    public var content: String
    /// The calls an assistant message made (rendered in the template's tool format).
    public var toolCalls: [ChatToolCall] = []

    /// A message from `role`.
    public init(role: String, content: String, toolCalls: [ChatToolCall] = []) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
    }
}

/// A function call an assistant made.
public struct ChatToolCall: Sendable, Equatable {
    /// The function's name.
    public var name: String
    /// Its arguments as JSON text, as the template writes them (`tojson`: `", "` and `": "`
    /// between items, keys in their order).
    public var arguments: String

    /// A call of `name` with `arguments` (JSON text).
    public init(name: String, arguments: String) {
        self.name = name
        self.arguments = arguments
    }
}
