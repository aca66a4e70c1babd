/// A model family's chat format, recognized in the file's `tokenizer.chat_template` (a Jinja
/// program) by the markers llama.cpp recognizes its built-in formats by
/// (`llm_chat_detect_template`), plus what the template states beyond the family's shape: a
/// default system message (Qwen2.5, SmolLM2), Llama 3.1's dated system preamble, where Mistral's
/// templates put the system message. Speculate renders the formats itself rather than running
/// the program; the tests check its renderings against Jinja2 running the templates.
public struct ChatTemplate: Sendable, Equatable {
    /// The families whose formats are rendered.
    public enum Family: String, Sendable, CaseIterable {
        /// `<|im_start|>role\n…<|im_end|>\n` (Qwen, SmolLM, many others).
        case chatML = "ChatML"
        /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
        case llama3 = "Llama 3"
        /// `<start_of_turn>user\n…<end_of_turn>\n`, the assistant as `model`, system text merged
        /// into the next user turn.
        case gemma = "Gemma"
        /// `<|user|>\n…<|end|>\n`.
        case phi3 = "Phi-3"
        /// `[INST]…[/INST]…</s>` in Mistral's spacing variants (``MistralStyle``).
        case mistral = "Mistral"
        /// `[INST] … [/INST] …</s>` with an optional `<<SYS>>` block (Llama 2, early Mistral).
        case llama2 = "Llama 2"
    }

    /// Mistral's variants, named as Mistral's tokenization guide and llama.cpp name them.
    public enum MistralStyle: String, Sendable {
        /// ` [INST] user [/INST] assistant</s>` (Mistral 7B v0.1 to v0.3 with the v1 tokenizer).
        case v1
        /// `[INST] user[/INST] assistant</s>`, assistant text trimmed.
        case v3
        /// `[INST]user[/INST]assistant</s>` (Tekken tokenizer: Nemo, Mistral Small 3).
        case v3Tekken
        /// `[SYSTEM_PROMPT] …[/SYSTEM_PROMPT][INST] …[/INST] …</s>`.
        case v7
        /// ``v7`` without the spaces (Tekken).
        case v7Tekken
    }

    /// The family.
    public var family: Family
    /// ChatML: the system message the template puts first when the conversation has none.
    public var defaultSystem: String?
    /// Llama 3.1 and later: the knowledge cutoff of the system turn every conversation opens with
    /// (`Cutting Knowledge Date: …`, then today's date, then the conversation's system message).
    public var knowledgeCutoff: String?
    /// Mistral: the spacing variant.
    public var mistralStyle: MistralStyle?
    /// Mistral v1/v3: whether the system message goes before the last message's text, when that
    /// message is the user's (as Mistral's own templates place it), rather than into the first turn.
    public var systemBeforeLastMessage: Bool
    /// Llama 2: how its variant writes system messages and later turns.
    public var llama2Style: Llama2Style?
    /// ChatML: whether the template writes tools, calls and answers in the Hermes format Qwen2.5
    /// uses (`<tools>` in the system turn, `<tool_call>` and `<tool_response>` blocks).
    public var hermesTools = false

    /// Llama 2's variants, as llama.cpp tells them apart.
    public struct Llama2Style: Sendable, Equatable {
        /// Whether system messages are wrapped in `<<SYS>>` (else plain text in the first turn).
        public var systemBlock: Bool
        /// Whether turns after the first start with `<s>`.
        public var bosInHistory: Bool
        /// Whether message texts are trimmed.
        public var trims: Bool
    }

    /// A format of `family` with nothing beyond its shape.
    public init(
        family: Family, defaultSystem: String? = nil, knowledgeCutoff: String? = nil,
        mistralStyle: MistralStyle? = nil, systemBeforeLastMessage: Bool = false
    ) {
        self.family = family
        self.defaultSystem = defaultSystem
        self.knowledgeCutoff = knowledgeCutoff
        self.mistralStyle = family == .mistral ? mistralStyle ?? .v3 : nil
        self.systemBeforeLastMessage = systemBeforeLastMessage
        llama2Style = family == .llama2 ? Llama2Style(systemBlock: true, bosInHistory: false, trims: false) : nil
    }

    /// A name for reports: the family, and the variant where there is one.
    public var name: String {
        switch family {
        case .mistral: "Mistral (\(mistralStyle?.rawValue ?? "v3"))"
        case .llama3 where knowledgeCutoff != nil: "Llama 3.1 (dated system turn)"
        default: family.rawValue
        }
    }

    /// The format `template` (a `tokenizer.chat_template`) writes, when it is one of the families;
    /// nil for any other template.
    public static func detect(_ template: String) -> ChatTemplate? {
        func has(_ marker: String) -> Bool { template.contains(marker) }
        if has("<|im_start|>") {
            // Phi-4 and SmolVLM use the ChatML tokens with other separators.
            guard !has("<|im_sep|>"), !has("<end_of_utterance>") else { return nil }
            var chatML = ChatTemplate(family: .chatML, defaultSystem: chatMLDefaultSystem(template))
            chatML.hermesTools = has("<tool_call>") && has("<tools>") && has("<tool_response>")
            return chatML
        }
        if template.hasPrefix("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") {
                return ChatTemplate(family: .mistral, mistralStyle: has("[SYSTEM_PROMPT] ") ? .v7 : .v7Tekken)
            }
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                let style: MistralStyle = has(" [INST]") ? .v1 : has("\"[INST]\"") ? .v3Tekken : .v3
                return ChatTemplate(
                    family: .mistral, mistralStyle: style,
                    systemBeforeLastMessage: has("loop.last and system_message is defined"))
            }
            // llama.cpp's order: a trimming template, else one with `<s>` inside the history, else
            // one with `<<SYS>>`, else the plain Llama 2 format without system messages.
            let trims = has("content.strip()")
            let bosInHistory = !trims && has("bos_token + '[INST]")
            var llama2 = ChatTemplate(family: .llama2)
            llama2.llama2Style = Llama2Style(
                systemBlock: trims || bosInHistory || has("<<SYS>>"), bosInHistory: bosInHistory, trims: trims)
            return llama2
        }
        if has("<|assistant|>") && has("<|end|>") { return ChatTemplate(family: .phi3) }
        if has("<|start_header_id|>") && has("<|end_header_id|>") {
            return ChatTemplate(family: .llama3, knowledgeCutoff: llama3KnowledgeCutoff(template))
        }
        if has("<start_of_turn>") { return ChatTemplate(family: .gemma) }
        return nil
    }

    /// The control tokens a vocabulary must have for the format to be rendered as its models
    /// were trained (else their text would be encoded as plain text).
    public var requiredTokens: [String] {
        switch family {
        case .chatML: ["<|im_start|>", "<|im_end|>"]
        case .llama3: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        case .gemma: ["<start_of_turn>", "<end_of_turn>"]
        case .phi3: ["<|user|>", "<|assistant|>", "<|end|>"]
        case .mistral, .llama2: ["</s>"]
        }
    }

    /// A system message stated in a ChatML template as literal text after `<|im_start|>system`
    /// and a newline (written as a newline or as `\n` in a Jinja string), up to `<|im_end|>`;
    /// text that is Jinja (quotes, `+`, braces) is not a literal message.
    static func chatMLDefaultSystem(_ template: String) -> String? {
        var rest = template[...]
        while let start = rest.range(of: "<|im_start|>system") {
            rest = rest[start.upperBound...]
            let body: Substring
            if rest.hasPrefix("\\n") {
                body = rest.dropFirst(2)
            } else if rest.hasPrefix("\n") {
                body = rest.dropFirst()
            } else {
                continue
            }
            guard let end = body.range(of: "<|im_end|>") else { return nil }
            let message = body[..<end.lowerBound]
            if !message.isEmpty, !message.contains(where: { "'\"+{}".contains($0) }) {
                return message.replacingOccurrences(of: "\\n", with: "\n")
            }
        }
        return nil
    }

    /// Llama 3.1's `Cutting Knowledge Date: …` (up to the line's end, written as a newline or `\n`).
    static func llama3KnowledgeCutoff(_ template: String) -> String? {
        let marker = "Cutting Knowledge Date: "
        guard let start = template.range(of: marker) else { return nil }
        let rest = template[start.upperBound...]
        let end =
            [rest.range(of: "\\n")?.lowerBound, rest.firstIndex(of: "\n"), rest.firstIndex(of: "\"")]
            .compactMap { $0 }.min() ?? rest.endIndex
        let cutoff = rest[..<end]
        return cutoff.isEmpty ? nil : String(cutoff)
    }
}
