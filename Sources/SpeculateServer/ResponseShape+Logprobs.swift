import Foundation

/// Log-probabilities in the two endpoints' forms (OpenAI's): chat's list of token objects, and
/// the completions endpoint's parallel lists.
extension ResponseShape {
    /// Chat's form: per token its text, log-probability, bytes and alternatives.
    func chatLogprobs(_ entries: [TokenLogprobEntry]) -> [String: Any] {
        func spelled(_ s: TokenLogprobEntry.Spelling) -> [String: Any] {
            ["token": s.text, "logprob": s.logprob, "bytes": s.bytes.map(Int.init)]
        }
        return [
            "content": entries.map { entry -> [String: Any] in
                var object = spelled(entry.token)
                object["top_logprobs"] = entry.top.map(spelled)
                return object
            },
            "refusal": NSNull(),
        ]
    }

    /// The completions endpoint's (legacy) form: parallel lists, the alternatives as objects.
    func completionLogprobs(_ entries: [TokenLogprobEntry]) -> [String: Any] {
        var offsets: [Int] = []
        var offset = 0
        for entry in entries {
            offsets.append(offset)
            offset += entry.token.text.utf16.count
        }
        return [
            "tokens": entries.map(\.token.text), "token_logprobs": entries.map(\.token.logprob),
            "top_logprobs": entries.map { entry -> [String: Float] in
                Dictionary(entry.top.map { ($0.text, $0.logprob) }, uniquingKeysWith: { first, _ in first })
            },
            "text_offset": offsets,
        ]
    }
}
