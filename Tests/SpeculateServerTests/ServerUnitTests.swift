import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateGrammar
import SpeculateServer
import Testing

@Suite("Server request parsing")
struct RequestParsingTests {
    let parser = RequestParser(
        modelName: "m", defaults: StrategyRequest(proposers: ["ngram"]), context: 512, vocabularySize: 1000)

    func body(_ json: String) -> Data { Data(json.utf8) }

    @Test("completions: fields, OpenAI defaults and the speculate extension")
    func completion() throws {
        let job = try parser.completion(
            body(
                ##"{"model": "m", "prompt": "def f():", "max_tokens": 20, "temperature": 0, "top_p": 0.9, "seed": 7, "stop": ["\n\n", "#"], "stream": true, "stream_options": {"include_usage": true}, "speculate": {"proposers": ["draft:x", "ngram"], "tree": "2,2,1", "max_nodes": 6, "verify": "greedy"}}"##
            ))
        #expect(
            job.prompt == "def f():" && job.maxTokens == 20 && job.stream && job.includeUsage && job.messages.isEmpty)
        #expect(job.sampling.temperature == 0 && job.sampling.topP == 0.9 && job.sampling.seed == 7)
        #expect(job.stop == ["\n\n", "#"])
        #expect(
            job.strategy
                == StrategyRequest(
                    proposers: ["draft:x", "ngram"], tree: [2, 2, 1], maxNodes: 6, maxDepth: 8, verify: .greedy))
        let plain = try parser.completion(body(#"{"prompt": ["hi"]}"#))
        #expect(
            plain.maxTokens == 16 && plain.sampling.temperature == 1 && plain.strategy == parser.defaults
                && plain.stop.isEmpty)
    }

    @Test("chat: messages in the chat format, content parts, max_completion_tokens")
    func chat() throws {
        let job = try parser.chat(
            body(
                #"{"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}], "max_completion_tokens": 9}"#
            )
        ) { messages in
            messages.map { "\($0.role):\($0.content)" }.joined(separator: "|")
        }
        #expect(
            job.prompt == "system:Be brief.|user:Hi!" && job.messages.map(\.role) == ["system", "user"]
                && job.maxTokens == 9 && job.maxTokens != nil)
        let open = try parser.chat(body(#"{"messages": [{"role": "user", "content": "x"}]}"#)) { _ in "p" }
        #expect(open.maxTokens == nil)
    }

    @Test(
        "bad requests are refused with the field named",
        arguments: [
            (#"not json"#, "invalid_json", nil),
            (#"[1, 2]"#, "invalid_json", nil),
            (#""#, "invalid_json", nil),
            (#"{"max_tokens": 5}"#, "invalid_request", "prompt"),
            (#"{"prompt": ""}"#, "invalid_request", "prompt"),
            (#"{"prompt": ["a", "b"]}"#, "invalid_request", "prompt"),
            (#"{"prompt": [1, 2, 3]}"#, "invalid_request", "prompt"),
            (#"{"prompt": "x", "max_tokens": 0}"#, "invalid_request", "max_tokens"),
            (#"{"prompt": "x", "max_tokens": 2.5}"#, "invalid_request", "max_tokens"),
            (#"{"prompt": "x", "max_tokens": 100000}"#, "context_length_exceeded", "max_tokens"),
            (#"{"prompt": "x", "n": 17}"#, "invalid_request", "n"),
            (#"{"prompt": "x", "n": 0}"#, "invalid_request", "n"),
            (#"{"prompt": "x", "response_format": {"type": "xml"}}"#, "invalid_request", "response_format.type"),
            (#"{"prompt": "x", "response_format": "json"}"#, "invalid_request", "response_format"),
            (
                #"{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "string", "format": "date"}}}}"#,
                "invalid_schema", "response_format.json_schema.schema"
            ),
            (
                #"{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schemas": {}}}}"#,
                "invalid_request", "response_format.json_schema.schemas"
            ),
            (
                #"{"prompt": "x", "json_schema": {"type": "object"}, "response_format": {"type": "json_object"}}"#,
                "invalid_request", "json_schema"
            ),
            (#"{"prompt": "x", "temperature": 3}"#, "invalid_request", "temperature"),
            (#"{"prompt": "x", "temperature": "hot"}"#, "invalid_request", "temperature"),
            (#"{"prompt": "x", "temperature": true}"#, "invalid_request", "temperature"),
            (#"{"prompt": "x", "top_p": 0}"#, "invalid_request", "top_p"),
            (#"{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}"#, "invalid_request", "stop"),
            (#"{"prompt": "x", "stop": 5}"#, "invalid_request", "stop"),
            (#"{"prompt": "x", "stream": "yes"}"#, "invalid_request", "stream"),
            (#"{"prompt": "x", "logprobs": 21}"#, "invalid_request", "logprobs"),
            (#"{"prompt": "x", "echo": true}"#, "unsupported_parameter", "echo"),
            (#"{"prompt": "x", "presence_penalty": 2.5}"#, "invalid_request", "presence_penalty"),
            (#"{"prompt": "x", "frequency_penalty": "high"}"#, "invalid_request", "frequency_penalty"),
            (#"{"prompt": "x", "repeat_penalty": 0}"#, "invalid_request", "repeat_penalty"),
            (#"{"prompt": "x", "repeat_last_n": -2}"#, "invalid_request", "repeat_last_n"),
            (#"{"prompt": "x", "min_p": 1.5}"#, "invalid_request", "min_p"),
            (#"{"prompt": "x", "logit_bias": {"1000": 5}}"#, "invalid_request", "logit_bias"),
            (#"{"prompt": "x", "logit_bias": {"the": 5}}"#, "invalid_request", "logit_bias"),
            (#"{"prompt": "x", "logit_bias": {"3": 101}}"#, "invalid_request", "logit_bias"),
            (#"{"prompt": "x", "logit_bias": [3]}"#, "invalid_request", "logit_bias"),
            (#"{"prompt": "x", "grammar": "root ::= \"a\""}"#, "unsupported_parameter", "grammar"),
            (#"{"prompt": "x", "mirostat": 2}"#, "unsupported_parameter", "mirostat"),
            (#"{"prompt": "x", "typical_p": 0.5}"#, "unsupported_parameter", "typical_p"),
            (#"{"prompt": "x", "speculate": []}"#, "invalid_request", "speculate"),
            (#"{"prompt": "x", "speculate": {"proposer": ["ngram"]}}"#, "invalid_request", "speculate.proposer"),
            (#"{"prompt": "x", "speculate": {"tree": "2,0"}}"#, "invalid_request", "speculate.tree"),
            (#"{"prompt": "x", "speculate": {"max_nodes": 0}}"#, "invalid_request", "speculate.max_nodes"),
            (#"{"prompt": "x", "speculate": {"verify": "maybe"}}"#, "invalid_request", "speculate.verify"),
            (#"{"prompt": "x", "speculate": {"proposers": [3]}}"#, "invalid_request", "speculate.proposers"),
        ] as [(String, String, String?)])
    func refused(json: String, code: String, param: String?) {
        #expect(throws: APIError.self) { try parser.completion(body(json)) }
        do {
            _ = try parser.completion(body(json))
        } catch {
            #expect(
                error.status == 400 && error.code == code && error.param == param,
                "\(json): \(error.code ?? "-") \(error.param ?? "-") \(error.message)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test("penalties, biases and min-p become logit processors; their off values add none")
    func samplingFields() throws {
        let job = try parser.completion(
            body(
                #"{"prompt": "x", "presence_penalty": 0.5, "frequency_penalty": -0.25, "repeat_penalty": 1.1, "repeat_last_n": -1, "logit_bias": {"7": -100, "999": 2.5}, "min_p": 0.05, "mirostat": 0, "typical_p": 1, "grammar": ""}"#
            ))
        let penalty = try #require(job.logitProcessors.first as? RepetitionPenalty)
        #expect(penalty.presence == 0.5 && penalty.frequency == -0.25)
        let repeatPenalty = try #require(job.logitProcessors.compactMap { $0 as? WindowRepeatPenalty }.first)
        #expect(repeatPenalty.penalty == Float(1.1) && repeatPenalty.window == 512)  // -1: the whole context
        let bias = try #require(job.logitProcessors.compactMap { $0 as? LogitBias }.first)
        #expect(bias.biases == [7: -100, 999: 2.5])
        #expect(job.logitProcessors.compactMap { $0 as? MinP }.first?.fraction == Float(0.05))
        let plain = try parser.completion(
            body(#"{"prompt": "x", "presence_penalty": 0, "repeat_penalty": 1, "logit_bias": {}, "min_p": 0}"#))
        #expect(plain.logitProcessors.isEmpty)
    }

    @Test("fill-in-the-middle: suffix on completions, and llama-server's /infill body")
    func infill() throws {
        let withSuffix = try parser.completion(body(#"{"prompt": "def f(", "suffix": "  return 1\n"}"#))
        #expect(withSuffix.infill?.prefix == "def f(" && withSuffix.infill?.suffix == "  return 1\n")
        let job = try parser.infill(
            body(
                #"{"input_prefix": "a", "input_suffix": "b", "prompt": "c", "n_predict": 7, "temperature": 0, "input_extra": [{"filename": "u.py", "text": "x = 1"}]}"#
            ))
        #expect(job.endpoint == .infill && job.maxTokens == 7 && job.sampling.temperature == 0)
        #expect(job.infill?.files == [FillInTheMiddle.File(name: "u.py", text: "x = 1")])
        #expect(job.infill?.middleStart == "c")
        for json in [
            #"{}"#, #"{"input_prefix": 3}"#, #"{"input_prefix": "a", "input_extra": [{"filename": "u.py"}]}"#,
            #"{"input_prefix": "a", "n_predict": 0}"#, #"{"prompt": "x", "suffix": 5}"#,
        ] {
            #expect(throws: APIError.self, "\(json)") {
                if json.contains("suffix") {
                    _ = try parser.completion(body(json))
                } else {
                    _ = try parser.infill(body(json))
                }
            }
        }
    }

    @Test("tools: definitions in order, choices, calls and answers in the history; the model's calls parsed")
    func tools() throws {
        let job = try parser.chat(
            body(
                #"{"messages": [{"role": "user", "content": "Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"days\":2}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}], "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"days": {"type": "integer"}, "city": {"type": "string"}}, "required": ["city"]}}}], "tool_choice": "required", "n": 3}"#
            )
        ) { _ in "" }
        let tools = try #require(job.tools)
        #expect(tools.choice == .required && job.choices == 3)
        #expect(
            tools.tools.first?.rendered
                == #"{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"days": {"type": "integer"}, "city": {"type": "string"}}, "required": ["city"]}}}"#
        )
        #expect(
            job.messages[1].toolCalls == [ChatToolCall(name: "weather", arguments: #"{"city": "Paris", "days": 2}"#)])
        #expect(job.messages[2].role == "tool" && job.messages[2].content == "sunny")
        // A required call is a grammar: the call's text in Qwen2.5's format, the schema inside.
        let grammar = try #require(job.grammar)
        for (text, valid) in [
            ("<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", true),
            ("<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"days\": 1}}\n</tool_call>", false),
            ("<tool_call>\n{\"name\": \"clock\", \"arguments\": {}}\n</tool_call>", false),
            ("Sure! <tool_call>", false),
        ] {
            var matcher = JSONMatcher(grammar)
            let verdict = matcher.feed(Array(text.utf8), grammar: grammar) && matcher.isComplete
            #expect(verdict == valid, "\(text)")
        }
        let parsed = try #require(
            ToolCallText(
                "Checking.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"clock\", \"arguments\": {}}\n</tool_call>"
            ))
        #expect(parsed.content == "Checking.")
        #expect(parsed.calls.map(\.name) == ["weather", "clock"] && parsed.calls[0].arguments == #"{"city":"Oslo"}"#)
        #expect(ToolCallText("no calls here") == nil && ToolCallText("<tool_call>\n{broken") == nil)
        // Only offered functions are calls; a bare or fenced call's JSON is one when it names one.
        let offered: Set = ["weather"]
        #expect(
            ToolCallText("<tool_call>\n{\"name\": \"clock\", \"arguments\": {}}\n</tool_call>", tools: offered) == nil)
        #expect(
            ToolCallText("```json\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n```", tools: offered)?
                .calls.first?.name == "weather")
        // A tool the model may call is only shown: schema keywords outside the subset are fine then.
        let shown = try parser.chat(
            body(
                #"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}}}]}"#
            )
        ) { _ in "" }
        #expect(shown.tools?.choice == .auto && shown.grammar == nil)
        for (json, param) in [
            (#"{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}"#, "tool_choice"),
            (
                #"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}"#,
                "tool_choice"
            ),
            (
                #"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "pattern": "x"}}}], "tool_choice": "required"}"#,
                "tools"
            ),
            (
                #"{"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]}]}"#,
                "messages"
            ),
            (#"{"messages": [{"role": "user", "content": "x"}], "tools": [], "tool_choice": "required"}"#, "tools"),
            (#"{"messages": [{"role": "user"}]}"#, "messages"),
        ] {
            do {
                _ = try parser.chat(body(json)) { _ in "" }
                Issue.record("accepted \(json)")
            } catch {
                #expect(error.param == param, "\(json): \(error.message)")
            }
        }
    }

    @Test("an unknown model is a 404 naming the served one; bad chat messages are refused")
    func unknownModelAndMessages() {
        do {
            _ = try parser.completion(body(#"{"model": "gpt-4", "prompt": "x"}"#))
            Issue.record("accepted an unknown model")
        } catch {
            #expect(error.status == 404 && error.code == "model_not_found" && error.message.contains("'m'"))
        }
        for json in [
            #"{"messages": []}"#, #"{"messages": [{"role": "robot", "content": "x"}]}"#,
            #"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#,
            #"{"messages": "hi"}"#,
            #"{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}"#,
        ] {
            #expect(throws: APIError.self, "\(json)") { try parser.chat(body(json)) { _ in "" } }
        }
    }
}

@Suite("The request queue")
struct RequestQueueTests {
    @Test("one at a time in arrival order; a full wait list is refused with 503")
    func order() async throws {
        let queue = RequestQueue(capacity: 2)
        try await queue.reserve()
        try await queue.reserve()
        try await queue.reserve()
        await #expect(throws: APIError.self) { try await queue.reserve() }
        do { try await queue.reserve() } catch { #expect(error.status == 503 && error.retryAfter == 1) }
        await queue.waitTurn()  // the first runs at once
        let log = Log()
        let second = Task {
            await queue.waitTurn()
            await log.add(2)
        }
        try await Task.sleep(for: .milliseconds(50))
        let third = Task {
            await queue.waitTurn()
            await log.add(3)
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await log.entries.isEmpty)
        #expect(await queue.depth == (1, 2))
        await queue.finish()
        await second.value
        #expect(await log.entries == [2])
        await queue.finish()
        await third.value
        await queue.finish()
        #expect(await queue.depth == (0, 0))
        try await queue.reserve()  // room again
        await queue.cancelReservation()
        #expect(await queue.depth == (0, 0))
    }

    actor Log {
        var entries: [Int] = []
        func add(_ value: Int) { entries.append(value) }
    }
}
