import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateGrammar

/// Turns request bodies into ``GenerationJob``s, refusing what the server cannot honour with a
/// message naming the field: an OpenAI client sends fields this server does not implement
/// (`logprobs`, `n` > 1), and silently ignoring them would return something else than what was
/// asked.
public struct RequestParser: Sendable {
    /// The model id the server answers to.
    public var modelName: String
    /// The server's strategy, for requests without a `speculate` object.
    public var defaults: StrategyRequest
    /// Tokens of context of the target (limits `max_tokens`).
    public var context: Int
    /// Tokens in the target's vocabulary (the ids `logit_bias` may name).
    public var vocabularySize: Int

    /// A parser for a server serving `modelName` with `defaults` in a context of `context` tokens
    /// and a vocabulary of `vocabularySize` tokens.
    public init(modelName: String, defaults: StrategyRequest, context: Int, vocabularySize: Int = Int(Int32.max)) {
        self.modelName = modelName
        self.defaults = defaults
        self.context = context
        self.vocabularySize = vocabularySize
    }

    /// A `POST /v1/completions` body.
    public func completion(_ body: Data) throws(APIError) -> GenerationJob {
        let object = try jsonObject(body)
        let prompt: String
        switch object["prompt"] {
        case let text as String: prompt = text
        case let list as [Any] where list.count == 1:
            guard let text = list[0] as? String else {
                throw .invalid("'prompt' must be a string (token-id prompts are not supported)", param: "prompt")
            }
            prompt = text
        case is [Any]:
            throw .invalid(
                "'prompt' must be one string: this server generates one completion per request", param: "prompt")
        case nil, is NSNull: throw .invalid("'prompt' is required", param: "prompt")
        default: throw .invalid("'prompt' must be a string", param: "prompt")
        }
        guard !prompt.isEmpty else { throw .invalid("'prompt' is empty", param: "prompt") }
        try refuse(object, ["echo", "best_of"])
        var job = try job(
            object, body: body, endpoint: .completions, prompt: prompt, messages: [], maxTokensKeys: ["max_tokens"],
            defaultMaxTokens: 16)
        if let value = object["logprobs"], !(value is NSNull), boolean(value) != false {
            guard let count = integer(value), (0...20).contains(count) else {
                throw .invalid("'logprobs' must be an integer from 0 to 20", param: "logprobs")
            }
            job.logprobs = count
        }
        switch object["suffix"] {
        case nil, is NSNull: break
        case let suffix as String:
            job.infill = GenerationJob.Infill(prefix: prompt, suffix: suffix, files: [], middleStart: "")
        default: throw .invalid("'suffix' must be a string", param: "suffix")
        }
        return job
    }

    /// A `POST /v1/chat/completions` body; `format` renders the messages in the model's chat format.
    public func chat(_ body: Data, format: ([ChatMessage]) -> String) throws(APIError) -> GenerationJob {
        let object = try jsonObject(body)
        guard let list = object["messages"] as? [Any] else {
            throw .invalid("'messages' is required: a list of {role, content} objects", param: "messages")
        }
        guard !list.isEmpty else { throw .invalid("'messages' is empty", param: "messages") }
        // Tools and tool calls need the body in order (schemas, arguments); read it again then.
        let needsOrder = object["tools"] != nil || list.contains { ($0 as? [String: Any])?["tool_calls"] != nil }
        var ordered: JSONValue?
        if needsOrder {
            do { ordered = try JSONValue(parsing: body) } catch {
                throw .invalid("The body is not strict JSON: \(error.message)", code: "invalid_json")
            }
        }
        var orderedMessages: [JSONValue] = []
        if case .array(let items)? = ordered?["messages"] { orderedMessages = items }
        var messages: [ChatMessage] = []
        for (index, item) in list.enumerated() {
            messages.append(
                try chatMessage(
                    item, index: index, ordered: index < orderedMessages.count ? orderedMessages[index] : nil))
        }
        let tools = try toolRequest(object, ordered: ordered)
        try refuse(
            object,
            ["functions", "function_call", "audio", "modalities"])
        var job = try job(
            object, body: body, endpoint: .chat, prompt: format(messages), messages: messages,
            maxTokensKeys: ["max_completion_tokens", "max_tokens"], defaultMaxTokens: nil)
        job.tools = tools
        let callGrammar: JSONGrammar?
        do { callGrammar = try tools?.grammar() } catch {
            throw .invalid("'tools': \(error.message)", param: "tools", code: "invalid_schema")
        }
        if let callGrammar {
            guard job.grammar == nil else {
                throw .invalid(
                    "'tool_choice' requires a call, which 'response_format' cannot constrain too; give one of them",
                    param: "tool_choice")
            }
            job.grammar = callGrammar
        }
        var wanted = false
        if let value = object["logprobs"], !(value is NSNull) {
            guard let flag = boolean(value) else {
                throw .invalid("'logprobs' must be true or false", param: "logprobs")
            }
            wanted = flag
        }
        if let value = object["top_logprobs"], !(value is NSNull) {
            guard let count = integer(value), (0...20).contains(count) else {
                throw .invalid("'top_logprobs' must be an integer from 0 to 20", param: "top_logprobs")
            }
            guard wanted else {
                throw .invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs")
            }
            job.logprobs = count
        } else if wanted {
            job.logprobs = 0
        }
        return job
    }

    // MARK: Fields shared by both endpoints

    func job(
        _ object: [String: Any], body: Data, endpoint: GenerationJob.Endpoint, prompt: String, messages: [ChatMessage],
        maxTokensKeys: [String], defaultMaxTokens: Int?
    ) throws(APIError) -> GenerationJob {
        if let model = object["model"], !(model is NSNull) {
            guard let name = model as? String else { throw .invalid("'model' must be a string", param: "model") }
            guard name == modelName else { throw .unknownModel(name, served: modelName) }
        }
        var maxTokens = defaultMaxTokens
        for key in maxTokensKeys {
            guard let value = object[key], !(value is NSNull) else { continue }
            guard let count = integer(value), count >= 1 else {
                throw .invalid("'\(key)' must be a positive integer", param: key)
            }
            guard count < context else {
                throw .invalid(
                    "'\(key)' is \(count) but the context holds \(context) tokens, prompt included", param: key,
                    code: "context_length_exceeded")
            }
            maxTokens = count
            break
        }
        var choices = 1
        if let n = object["n"], !(n is NSNull) {
            guard let count = integer(n), (1...16).contains(count) else {
                throw .invalid("'n' must be an integer from 1 to 16", param: "n")
            }
            guard count == 1 || endpoint != .infill else {
                throw .invalid("/infill generates one completion ('n' must be 1)", param: "n")
            }
            choices = count
        }
        let temperature = try number(object, "temperature", default: 1, in: 0...2)
        let topP = try number(object, "top_p", default: 1, in: 0...1)
        guard topP > 0 else { throw .invalid("'top_p' must be above 0", param: "top_p") }
        var topK = 0
        if let value = object["top_k"], !(value is NSNull) {
            guard let k = integer(value), k >= 0 else {
                throw .invalid("'top_k' must be a non-negative integer", param: "top_k")
            }
            topK = k
        }
        var seed = UInt64.random(in: 0...UInt64(Int64.max))
        if let value = object["seed"], !(value is NSNull) {
            guard let s = integer(value) else { throw .invalid("'seed' must be an integer", param: "seed") }
            seed = UInt64(bitPattern: Int64(s))
        }
        let processors = try logitProcessors(object)
        let grammar = try responseGrammar(object, body: body)
        var stop: [String] = []
        switch object["stop"] {
        case nil, is NSNull: break
        case let text as String: stop = [text]
        case let list as [Any]:
            stop = try list.map { item throws(APIError) -> String in
                guard let text = item as? String else {
                    throw .invalid("'stop' must be a string or a list of strings", param: "stop")
                }
                return text
            }
        default: throw .invalid("'stop' must be a string or a list of strings", param: "stop")
        }
        stop.removeAll { $0.isEmpty }
        guard stop.count <= 4 else {
            throw .invalid("'stop' has \(stop.count) strings; at most 4 are allowed", param: "stop")
        }
        var stream = false
        if let value = object["stream"], !(value is NSNull) {
            guard let flag = boolean(value) else { throw .invalid("'stream' must be true or false", param: "stream") }
            stream = flag
        }
        var includeUsage = false
        if let options = object["stream_options"], !(options is NSNull) {
            guard let options = options as? [String: Any] else {
                throw .invalid("'stream_options' must be an object", param: "stream_options")
            }
            includeUsage = options["include_usage"].flatMap(boolean) ?? false
        }
        return GenerationJob(
            endpoint: endpoint, prompt: prompt, messages: messages, maxTokens: maxTokens,
            sampling: SamplingSettings(temperature: Float(temperature), topK: topK, topP: Float(topP), seed: seed),
            stop: stop, stream: stream, includeUsage: includeUsage, strategy: try strategy(object["speculate"]),
            logitProcessors: processors, grammar: grammar, choices: choices)
    }

    /// The `speculate` extension object: validated like the command line's flags.
    func strategy(_ value: Any?) throws(APIError) -> StrategyRequest {
        guard let value, !(value is NSNull) else { return defaults }
        guard let object = value as? [String: Any] else {
            throw .invalid("'speculate' must be an object", param: "speculate")
        }
        let known: Set = ["proposers", "tree", "max_nodes", "max_depth", "verify"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalid(
                "speculate.\(unknown) is not a field; the fields are \(known.sorted().joined(separator: ", "))",
                param: "speculate.\(unknown)")
        }
        var strategy = defaults
        switch object["proposers"] {
        case nil, is NSNull: break
        case let text as String: strategy.proposers = [text]
        case let list as [Any]:
            strategy.proposers = try list.map { item throws(APIError) -> String in
                guard let text = item as? String, !text.isEmpty else {
                    throw .invalid(
                        "speculate.proposers must be a list of proposer specs such as \"ngram\"",
                        param: "speculate.proposers")
                }
                return text
            }
        default:
            throw .invalid(
                "speculate.proposers must be a list of proposer specs such as \"ngram\"", param: "speculate.proposers")
        }
        switch object["tree"] {
        case nil, is NSNull: if object.keys.contains("tree") { strategy.tree = nil }
        case let text as String:
            guard let branching = TreeBudget.parseBranching(text) else {
                throw .invalid(
                    "speculate.tree '\(text)' is not a list of positive integers such as \"2,2,1\"",
                    param: "speculate.tree")
            }
            strategy.tree = branching
        case let list as [Any]:
            let branching = list.compactMap(integer)
            guard branching.count == list.count, !branching.isEmpty, branching.allSatisfy({ $0 >= 1 && $0 <= 16 }),
                branching.count <= 32
            else {
                throw .invalid(
                    "speculate.tree must be a list of positive integers such as [2, 2, 1]", param: "speculate.tree")
            }
            strategy.tree = branching
        default: throw .invalid("speculate.tree must be a string such as \"2,2,1\"", param: "speculate.tree")
        }
        if let value = object["max_nodes"], !(value is NSNull) {
            guard let n = integer(value), (1...256).contains(n) else {
                throw .invalid("speculate.max_nodes must be an integer from 1 to 256", param: "speculate.max_nodes")
            }
            strategy.maxNodes = n
        }
        if let value = object["max_depth"], !(value is NSNull) {
            guard let n = integer(value), (1...64).contains(n) else {
                throw .invalid("speculate.max_depth must be an integer from 1 to 64", param: "speculate.max_depth")
            }
            strategy.maxDepth = n
        }
        if let value = object["verify"], !(value is NSNull) {
            guard let name = value as? String, let method = VerificationMethod(rawValue: name) else {
                throw .invalid(
                    "speculate.verify must be one of \(VerificationMethod.names.joined(separator: ", "))",
                    param: "speculate.verify")
            }
            strategy.verify = method
        }
        return strategy
    }

    // MARK: Helpers

    func jsonObject(_ body: Data) throws(APIError) -> [String: Any] {
        guard !body.isEmpty else { throw .invalid("The request has no body: send a JSON object", code: "invalid_json") }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) } catch {
            throw .invalid(
                "The body is not valid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)")",
                code: "invalid_json")
        }
        guard let object = parsed as? [String: Any] else {
            throw .invalid("The body must be a JSON object", code: "invalid_json")
        }
        return object
    }

    /// Fields this server does not implement: refused unless absent, null, false, 0 or 1
    /// (the values that ask for nothing).
    private func refuse(_ object: [String: Any], _ keys: [String]) throws(APIError) {
        for key in keys {
            guard let value = object[key], !(value is NSNull) else { continue }
            if boolean(value) == false { continue }
            if key == "best_of", integer(value) == 1 { continue }
            if let list = value as? [Any], list.isEmpty { continue }
            throw .invalid("'\(key)' is not supported by this server", param: key, code: "unsupported_parameter")
        }
    }

    func number(_ object: [String: Any], _ key: String, default fallback: Double, in range: ClosedRange<Double>)
        throws(APIError) -> Double
    {
        guard let value = object[key], !(value is NSNull) else { return fallback }
        guard let number = value as? NSNumber, boolean(value) == nil else {
            throw .invalid("'\(key)' must be a number", param: key)
        }
        let double = number.doubleValue
        guard double.isFinite, range.contains(double) else {
            throw .invalid("'\(key)' must be from \(range.lowerBound) to \(range.upperBound)", param: key)
        }
        return double
    }
}

/// A JSON `true` or `false` (Foundation gives numbers and booleans both as NSNumber; booleans
/// have the C type `char`).
func boolean(_ value: Any) -> Bool? {
    guard let number = value as? NSNumber, String(cString: number.objCType) == "c" else { return nil }
    return number.boolValue
}

/// An integer JSON value (`3` or `3.0`, not `true` or `3.5`).
func integer(_ value: Any) -> Int? {
    guard let number = value as? NSNumber, boolean(value) == nil else { return nil }
    let double = number.doubleValue
    guard double.isFinite, double == double.rounded(), abs(double) < 9e15 else { return nil }
    return Int(double)
}
