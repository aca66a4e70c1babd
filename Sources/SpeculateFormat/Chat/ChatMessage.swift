/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable {
    /// Who speaks: `system`, `user` or `assistant`.
    public var role: String
    /// What they say.
    public var content: String

    /// A message from `role`.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}
