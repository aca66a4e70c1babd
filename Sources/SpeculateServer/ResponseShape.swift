import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import SpeculateAPI
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateRuntime

/// The JSON shapes of the two endpoints' responses and stream chunks.
struct ResponseShape: Sendable {
    let endpoint: GenerationJob.Endpoint
    let id: String
    let created: Int
    let model: String
    /// The request's tools (chat), whose calls the answer's text may hold.
    var tools: ToolRequest? = nil

    private func envelope(object: String, choices: [[String: Any]]) -> [String: Any] {
        ["id": id, "object": object, "created": created, "model": model, "choices": choices]
    }

    /// Token counts of a request's choices (the prompt once, every choice's completion).
    func usage(_ choices: [Completion]) -> [String: Any] {
        let prompt = choices.first?.promptTokens ?? 0
        let completion = choices.reduce(0) { $0 + $1.completionTokens }
        return ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
    }

    /// The run's figures under the `speculate` extension field.
    func statistics(_ c: Completion) -> [String: Any] {
        let s = c.statistics
        return [
            "strategy": c.strategy.json, "tokens_per_second": s.tokensPerSecond, "decode_seconds": s.decodeSeconds,
            "prefill_seconds": s.prefillSeconds, "prompt_cache_tokens": s.cachedPromptTokens,
            "target_forwards": s.targetForwards,
            "tokens_per_forward": s.meanAcceptedPerForward, "kernels": ComputeThreads.kernelName,
            "proposers": s.proposers.map {
                ["name": $0.name, "drafted": $0.drafted, "accepted": $0.accepted, "failures": $0.failures]
                    as [String: Any]
            },
        ]
    }

    /// The whole answer: one choice per completion; `speculate` carries the first one's figures.
    func whole(_ choices: [Completion]) -> [String: Any] {
        if endpoint == .infill, let c = choices.first { return infillObject(c, content: c.text) }
        let list = choices.map { c -> [String: Any] in
            endpoint == .chat
                ? [
                    "index": c.index, "message": chatMessage(c).message, "finish_reason": chatMessage(c).finish,
                    "logprobs": c.logprobs.map(chatLogprobs) ?? NSNull(),
                ]
                : [
                    "index": c.index, "text": c.text, "finish_reason": c.finishReason,
                    "logprobs": c.logprobs.map(completionLogprobs) ?? NSNull(),
                ]
        }
        var object = envelope(object: endpoint.rawValue, choices: list)
        object["usage"] = usage(choices)
        if let first = choices.first { object["speculate"] = statistics(first) }
        return object
    }

    private var chunkObject: String { endpoint == .chat ? "chat.completion.chunk" : "text_completion" }

    private func choice(
        text: String?, first: Bool, finish: String?, logprobs: [TokenLogprobEntry]? = nil, index: Int = 0
    ) -> [String: Any] {
        var choice: [String: Any] = ["index": index, "finish_reason": finish ?? NSNull(), "logprobs": NSNull()]
        if let logprobs {
            choice["logprobs"] = endpoint == .chat ? chatLogprobs(logprobs) : completionLogprobs(logprobs)
        }
        if endpoint == .chat {
            var delta: [String: Any] = [:]
            if first { delta["role"] = "assistant" }
            if let text { delta["content"] = text }
            choice["delta"] = delta
        } else {
            choice["text"] = text ?? ""
        }
        return choice
    }

    /// Text as it is accepted, with the proposer that drafted each token (null: the target).
    /// `logprobs`: the figures of the tokens these pieces complete, when the request asked for them.
    func chunk(_ pieces: [TextPiece], first: Bool, logprobs: [TokenLogprobEntry]? = nil, index: Int = 0)
        -> [String: Any]
    {
        if endpoint == .infill { return ["content": pieces.map(\.text).joined(), "stop": false] }
        var object = envelope(
            object: chunkObject,
            choices: [
                choice(text: pieces.map(\.text).joined(), first: first, finish: nil, logprobs: logprobs, index: index)
            ])
        object["speculate"] = [
            "tokens": pieces.map { ["text": $0.text, "proposer": $0.drafters.first ?? NSNull()] as [String: Any] }
        ]
        return object
    }

    func last(_ c: Completion, first: Bool) -> [String: Any] {
        if endpoint == .infill { return infillObject(c, content: "") }
        var object = envelope(
            object: chunkObject,
            choices: [choice(text: endpoint == .chat ? nil : "", first: first, finish: c.finishReason, index: c.index)])
        object["speculate"] = statistics(c)
        return object
    }

    func usageChunk(_ choices: [Completion]) -> [String: Any] {
        var object = envelope(object: chunkObject, choices: [])
        object["usage"] = usage(choices)
        return object
    }
}
