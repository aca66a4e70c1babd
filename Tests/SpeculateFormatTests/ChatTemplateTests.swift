import Foundation
import SpeculateFormat
import SpeculateGrammar
import SpeculateTestSupport
import Testing

/// Chat formats: recognized in real templates (the catalog's files and llama.cpp's collection of
/// model templates) and rendered exactly as Jinja2 renders those templates
/// (`Tests/Reference/chat_template_reference.py`).
@Suite("Chat formats from the file's template")
struct ChatTemplateTests {
    /// Multi-turn conversations with and without system messages, with white space that `trim`
    /// removes, and an assistant turn inside the history.
    static let conversations: [[ChatMessage]] = [
        [ChatMessage(role: "user", content: "Hello!")],
        [
            ChatMessage(role: "system", content: "You are terse."),
            ChatMessage(role: "user", content: "What is 2+2?"),
        ],
        [
            ChatMessage(role: "system", content: "Answer in French."),
            ChatMessage(role: "user", content: "Name a colour."),
            ChatMessage(role: "assistant", content: "Rouge."),
            ChatMessage(role: "user", content: "Another one, please."),
        ],
        [
            ChatMessage(role: "user", content: "  padded question \n"),
            ChatMessage(role: "assistant", content: " an answer with spaces "),
            ChatMessage(role: "user", content: "def f(x):\n    return x  # code, with <b>tags</b>"),
        ],
    ]

    /// The date Llama 3.1's system turn states (noon UTC, the same day in every time zone near it).
    static let date = Date(timeIntervalSince1970: 1_721_995_200)  // 26 Jul 2024 12:00 UTC

    /// Templates, and the format each must be recognized as.
    static let templates: [(name: String, source: String, family: ChatTemplate.Family)] = [
        ("Qwen2.5-Coder-0.5B (file)", "gguf:qwen2.5-coder-0.5b-instruct", .chatML),
        ("SmolLM2-135M (file)", "gguf:smollm2-135m-instruct", .chatML),
        ("Qwen2.5-7B", "llama.cpp:Qwen-Qwen2.5-7B-Instruct.jinja", .chatML),
        ("Llama 3.2", "llama.cpp:meta-llama-Llama-3.2-3B-Instruct.jinja", .llama3),
        ("Llama 3.1", "llama.cpp:meta-llama-Llama-3.1-8B-Instruct.jinja", .llama3),
        ("Gemma 2", "llama.cpp:google-gemma-2-2b-it.jinja", .gemma),
        ("Phi-3.5", "llama.cpp:microsoft-Phi-3.5-mini-instruct.jinja", .phi3),
        ("Mistral Nemo", "llama.cpp:mistralai-Mistral-Nemo-Instruct-2407.jinja", .mistral),
    ]

    @Test("each family's template is recognized and rendered as Jinja2 renders it")
    func matchesJinja() throws {
        var sources: [String: String] = [:]
        for template in Self.templates {
            sources[template.name] =
                template.source.hasPrefix("gguf:")
                ? "gguf:" + (try TestSupport.modelPath(String(template.source.dropFirst(5)))) : template.source
        }
        let conversations = Self.conversations.map { $0.map { ["role": $0.role, "content": $0.content] } }
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("input.json")
        let output = folder.appendingPathComponent("output.json")
        try JSONSerialization.data(withJSONObject: [
            "templates": sources, "conversations": conversations, "date_string": "26 Jul 2024",
        ]).write(to: input)
        _ = try TestSupport.runPython("chat_template_reference.py", [input.path, output.path])
        let reference = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: [String: Any]])
        var compared = 0
        for template in Self.templates {
            let entry = try #require(reference[template.name])
            let text = try #require(entry["template"] as? String)
            let format = try #require(ChatTemplate.detect(text), "\(template.name) not recognized")
            #expect(format.family == template.family, "\(template.name): \(format.name)")
            let renders = try #require(entry["renders"] as? [Any])
            for (index, render) in renders.enumerated() {
                // A template may refuse a conversation (Gemma 2 has no system role).
                guard let expected = render as? String else { continue }
                let ours = format.text(Self.conversations[index], date: Self.date)
                #expect(ours == expected, "\(template.name), conversation \(index)")
                compared += 1
            }
        }
        #expect(compared >= 28, "\(compared) renderings compared")
    }

    @Test("Qwen2.5's tool format: tools, calls and answers rendered as Jinja2 renders its templates")
    func toolsMatchJinja() throws {
        let weather =
            #"{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city, °C", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}"#
        let clock =
            #"{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}"#
        let call = ChatToolCall(name: "get_weather", arguments: #"{"city": "Paris", "days": 2}"#)
        let conversations: [(messages: [ChatMessage], tools: [String])] = [
            ([ChatMessage(role: "user", content: "Weather in Paris?")], [weather, clock]),
            (
                [
                    ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Paris?"),
                    ChatMessage(
                        role: "assistant", content: "", toolCalls: [call, ChatToolCall(name: "now", arguments: "{}")]),
                    ChatMessage(role: "tool", content: "{\"temp\": 21}"), ChatMessage(role: "tool", content: "12:00"),
                ], [weather, clock]
            ),
            (
                [
                    ChatMessage(role: "user", content: "Paris?"),
                    ChatMessage(role: "assistant", content: "Let me check.", toolCalls: [call]),
                    ChatMessage(role: "tool", content: "sunny"), ChatMessage(role: "assistant", content: "Sunny."),
                    ChatMessage(role: "user", content: "Thanks"),
                ], []
            ),
        ]
        // Built as ordered JSON (Foundation's dictionaries would reorder the keys `tojson` writes).
        let input: [JSONValue] = try conversations.map { conversation in
            let messages: [JSONValue] = try conversation.messages.map { message in
                var members: [(key: String, value: JSONValue)] = [
                    ("role", .string(message.role)), ("content", .string(message.content)),
                ]
                if !message.toolCalls.isEmpty {
                    members.append(
                        (
                            "tool_calls",
                            .array(
                                try message.toolCalls.map {
                                    .object([
                                        ("type", .string("function")),
                                        (
                                            "function",
                                            .object([
                                                ("name", .string($0.name)),
                                                ("arguments", try JSONValue(parsing: Array($0.arguments.utf8))),
                                            ])
                                        ),
                                    ])
                                })
                        ))
                }
                return .object(members)
            }
            var members: [(key: String, value: JSONValue)] = [("messages", .array(messages))]
            if !conversation.tools.isEmpty {
                members.append(("tools", .array(try conversation.tools.map { try JSONValue(parsing: Array($0.utf8)) })))
            }
            return .object(members)
        }
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let templates = [
            "file": "gguf:" + (try TestSupport.modelPath("qwen2.5-coder-0.5b-instruct")),
            "Qwen2.5-7B": "llama.cpp:Qwen-Qwen2.5-7B-Instruct.jinja",
        ]
        let templateList = JSONValue.object(templates.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        try Data(JSONValue.object([("templates", templateList), ("conversations", .array(input))]).text.utf8).write(
            to: folder.appendingPathComponent("input.json"))
        _ = try TestSupport.runPython(
            "chat_template_reference.py",
            [folder.appendingPathComponent("input.json").path, folder.appendingPathComponent("output.json").path])
        let reference = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("output.json")))
                as? [String: [String: Any]])
        for name in templates.keys.sorted() {
            let entry = try #require(reference[name])
            let source = try #require(entry["template"] as? String)
            let format = try #require(ChatTemplate.detect(source))
            #expect(format.supportsTools, "\(name)")
            let renders = try #require(entry["renders"] as? [String])
            for (index, conversation) in conversations.enumerated() {
                let ours = format.text(conversation.messages, tools: conversation.tools)
                #expect(ours == renders[index], "\(name), conversation \(index)")
            }
        }
    }

    @Test("the catalog's files: ChatML with their default system messages, token by token")
    func catalogFiles() throws {
        for (name, system) in [
            ("qwen2.5-coder-0.5b-instruct", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
            ("smollm2-135m-instruct", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        ] {
            let tokenizer = try SharedModels.tokenizer(name)
            let format = try tokenizer.chatFormat.get()
            var expected = ChatTemplate(family: .chatML, defaultSystem: system)
            expected.hermesTools = name.hasPrefix("qwen")
            #expect(format == expected)
            let messages = [ChatMessage(role: "user", content: "Write hello world.")]
            let bos: [TokenID] = tokenizer.addsBOS ? [tokenizer.bosID!] : []
            let ids = try ChatFormat.tokens(messages, tokenizer: tokenizer)
            #expect(ids == bos + tokenizer.encode(format.text(messages), parseSpecial: true))
        }
        // A base model's file has no template: chat is refused by name, never rendered as ChatML.
        let gemma = try SharedModels.tokenizer("gemma-3-270m")
        #expect(throws: ChatFormatError.noTemplate) {
            _ = try ChatFormat.tokens([ChatMessage(role: "user", content: "hi")], tokenizer: gemma)
        }
    }

    @Test("llama.cpp's markers: unknown templates are refused, Mistral and Llama 2 variants told apart")
    func detection() {
        #expect(ChatTemplate.detect("{{ messages }}") == nil)
        #expect(ChatTemplate.detect("<|im_start|>{{ role }}<|im_sep|>") == nil, "Phi-4's separator is not ChatML")
        // Mistral's v7 templates in llama.cpp's collection all write `[SYSTEM_PROMPT]` and `[INST]`
        // without a space after them (Tekken); a template with the spaces is v7.
        #expect(
            ChatTemplate.detect("{{ '[SYSTEM_PROMPT] ' + s + '[/SYSTEM_PROMPT][INST] ' + m }}")?.mistralStyle == .v7)
        #expect(
            ChatTemplate.detect("{{ '[SYSTEM_PROMPT]' + s + '[/SYSTEM_PROMPT][INST]' + m }}")?.mistralStyle == .v7Tekken
        )
        #expect(ChatTemplate.detect("{{ ' [INST] ' + system_message }}")?.mistralStyle == .v1)
        let llama2 = ChatTemplate.detect("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}")
        #expect(llama2?.family == .llama2 && llama2?.llama2Style?.trims == true)
        #expect(
            ChatTemplate.detect("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}")
                == ChatTemplate(family: .llama3))
    }

    @Test("Mistral v1 spelled as llama.cpp spells it; Gemma merges the system text into the user turn")
    func builtInShapes() {
        let messages = [
            ChatMessage(role: "system", content: "Be brief."),
            ChatMessage(role: "user", content: "Hi"),
            ChatMessage(role: "assistant", content: "Hello"),
            ChatMessage(role: "user", content: "Bye"),
        ]
        #expect(
            ChatTemplate(family: .mistral, mistralStyle: .v1).text(messages)
                == " [INST] Be brief.\n\nHi [/INST] Hello</s> [INST] Bye [/INST]")
        #expect(
            ChatTemplate(family: .gemma).text(messages)
                == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                + "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    }
}
