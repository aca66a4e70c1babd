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

/// Chat prompt formatting. Both model families Speculate ships (Qwen2.5 and SmolLM2) use
/// ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per message.
public enum ChatFormat {
    /// The ChatML text for `messages`; with `addGenerationPrompt` it ends with an open
    /// assistant turn for the model to complete. Encode the result with `parseSpecial: true`.
    public static func chatML(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var text = ""
        for message in messages {
            text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
        }
        if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        return text
    }

    /// A single-turn prompt: an optional system message, then the user's text.
    public static func chatML(user: String, system: String? = nil) -> String {
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: user))
        return chatML(messages)
    }

    /// The ChatML prompt for `messages` as token ids, with control tokens only where the format
    /// puts them: roles and contents are encoded as plain text, so a message that contains
    /// `<|im_end|>` or `<|im_start|>system` stays text and cannot end its turn or open another
    /// one (encoding ``chatML(_:addGenerationPrompt:)``'s text with `parseSpecial: true` would
    /// turn them into control tokens). For ordinary content the ids equal that encoding.
    /// A tokenizer without the ChatML tokens gets the text encoded without special tokens.
    public static func tokens(_ messages: [ChatMessage], tokenizer: Tokenizer, addGenerationPrompt: Bool = true)
        -> [TokenID]
    {
        guard let start = tokenizer.id(of: "<|im_start|>"), let end = tokenizer.id(of: "<|im_end|>") else {
            return tokenizer.encode(chatML(messages, addGenerationPrompt: addGenerationPrompt))
        }
        let newline = tokenizer.encode("\n")
        var ids: [TokenID] = []
        for message in messages {
            ids.append(start)
            ids += tokenizer.encode("\(message.role)\n\(message.content)")
            ids.append(end)
            ids += newline
        }
        if addGenerationPrompt {
            ids.append(start)
            ids += tokenizer.encode("assistant\n")
        }
        return ids
    }

    /// Whether `tokenizer` has the ChatML control tokens.
    public static func supportsChatML(_ tokenizer: Tokenizer) -> Bool {
        tokenizer.id(of: "<|im_start|>") != nil && tokenizer.id(of: "<|im_end|>") != nil
    }
}
