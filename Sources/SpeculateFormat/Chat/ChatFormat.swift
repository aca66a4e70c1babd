/// Why a conversation cannot be rendered for a model.
public enum ChatFormatError: Error, Equatable, CustomStringConvertible {
    /// The file has no `tokenizer.chat_template` (a base model: plain completion only).
    case noTemplate
    /// The file's template is none of the formats Speculate renders.
    case unknownTemplate
    /// The template's format needs control tokens the vocabulary lacks.
    case missingTokens(format: String, tokens: [String])

    public var description: String {
        switch self {
        case .noTemplate:
            "the model has no chat template (tokenizer.chat_template): it is a base model; give a plain prompt"
        case .unknownTemplate:
            "the model's chat template is none of the formats Speculate renders (\(ChatTemplate.Family.allCases.map(\.rawValue).joined(separator: ", "))); give a plain prompt"
        case .missingTokens(let format, let tokens):
            "the model's chat template is \(format), but its vocabulary lacks \(tokens.joined(separator: ", ")); give a plain prompt"
        }
    }
}

/// Chat prompts as token ids, in the format of the model's own chat template.
public enum ChatFormat {
    /// `messages` as token ids in `tokenizer`'s chat format (``Tokenizer/chatFormat``), with the
    /// beginning-of-sequence token where the file says. Control tokens come only from the format:
    /// roles and contents are encoded as plain text, so a message that contains `<|im_end|>` or
    /// `<|im_start|>system` stays text and cannot end its turn or open another one. For ordinary
    /// content the ids equal llama.cpp's encoding of the rendered text with special tokens parsed.
    public static func tokens(
        _ messages: [ChatMessage], tools: [String] = [], tokenizer: Tokenizer, addGenerationPrompt: Bool = true
    ) throws(ChatFormatError) -> [TokenID] {
        let template = try tokenizer.chatFormat.get()
        var ids: [TokenID] = tokenizer.addsBOS ? [tokenizer.bosID!] : []
        var text = ""
        for piece in template.pieces(messages, tools: tools, addGenerationPrompt: addGenerationPrompt) {
            switch piece {
            case .control(let spelling):
                if let id = tokenizer.id(of: spelling) {
                    ids += tokenizer.encode(text)
                    text = ""
                    ids.append(id)
                } else {
                    text += spelling
                }
            case .text(let piece): text += piece
            }
        }
        return ids + tokenizer.encode(text)
    }

    /// `messages` rendered as text in `tokenizer`'s chat format (control tokens spelled out).
    public static func text(_ messages: [ChatMessage], tokenizer: Tokenizer, addGenerationPrompt: Bool = true)
        throws(ChatFormatError) -> String
    {
        try tokenizer.chatFormat.get().text(messages, addGenerationPrompt: addGenerationPrompt)
    }
}

extension Tokenizer {
    /// The chat format of the file's `tokenizer.chat_template`, or why there is none Speculate
    /// can render.
    public var chatFormat: Result<ChatTemplate, ChatFormatError> {
        guard let chatTemplateSource else { return .failure(.noTemplate) }
        guard let template = ChatTemplate.detect(chatTemplateSource) else { return .failure(.unknownTemplate) }
        let missing = template.requiredTokens.filter { id(of: $0) == nil }
        guard missing.isEmpty else { return .failure(.missingTokens(format: template.name, tokens: missing)) }
        return .success(template)
    }

    /// Whether conversations can be rendered in the model's own chat format.
    public var supportsChat: Bool { (try? chatFormat.get()) != nil }
}
