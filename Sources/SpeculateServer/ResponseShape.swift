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

    func usage(_ c: Completion) -> [String: Any] {
        [
            "prompt_tokens": c.promptTokens, "completion_tokens": c.completionTokens,
            "total_tokens": c.promptTokens + c.completionTokens,
        ]
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

    func whole(_ c: Completion) -> [String: Any] {
        if endpoint == .infill { return infillObject(c, content: c.text) }
        let choice: [String: Any] =
            endpoint == .chat
            ? [
                "index": 0, "message": chatMessage(c).message, "finish_reason": chatMessage(c).finish,
                "logprobs": c.logprobs.map(chatLogprobs) ?? NSNull(),
            ]
            : [
                "index": 0, "text": c.text, "finish_reason": c.finishReason,
                "logprobs": c.logprobs.map(completionLogprobs) ?? NSNull(),
            ]
        var object = envelope(object: endpoint.rawValue, choices: [choice])
        object["usage"] = usage(c)
        object["speculate"] = statistics(c)
        return object
    }

    private var chunkObject: String { endpoint == .chat ? "chat.completion.chunk" : "text_completion" }

    private func choice(text: String?, first: Bool, finish: String?) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finish ?? NSNull(), "logprobs": NSNull()]
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
    func chunk(_ pieces: [TextPiece], first: Bool) -> [String: Any] {
        if endpoint == .infill { return ["content": pieces.map(\.text).joined(), "stop": false] }
        var object = envelope(
            object: chunkObject, choices: [choice(text: pieces.map(\.text).joined(), first: first, finish: nil)])
        object["speculate"] = [
            "tokens": pieces.map { ["text": $0.text, "proposer": $0.drafters.first ?? NSNull()] as [String: Any] }
        ]
        return object
    }

    func last(_ c: Completion, first: Bool) -> [String: Any] {
        if endpoint == .infill { return infillObject(c, content: "") }
        var object = envelope(
            object: chunkObject,
            choices: [choice(text: endpoint == .chat ? nil : "", first: first, finish: c.finishReason)])
        object["speculate"] = statistics(c)
        return object
    }

    func usageChunk(_ c: Completion) -> [String: Any] {
        var object = envelope(object: chunkObject, choices: [])
        object["usage"] = usage(c)
        return object
    }
}
