import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import Synchronization

/// Lets a small model with *another* tokenizer draft for the target: the context is turned into
/// text, re-encoded for the draft, the draft continues greedily, and its text is encoded back
/// into target tokens. A token-level heuristic: the draft's text is encoded on its own, as if a
/// token boundary fell where the context ends (the target, which has already committed the
/// context's last token, can only continue from such a boundary). Drafts are deterministic, so
/// both greedy and stochastic verification stay lossless; they are most useful under greedy decoding.
public final class RetokenizingProposer: DraftProposer {
    public let name: String
    private let session: InferenceSession
    private let draftTokenizer: Tokenizer
    private let targetTokenizer: Tokenizer
    private let draftLength: Int
    private let cached = Mutex<[Token]>([])

    /// A proposer drafting with `model` (its tokenizer read from the file) for a target using `targetTokenizer`.
    public init(name: String, model: TransformerModel, targetTokenizer: Tokenizer, context: Int, draftLength: Int = 6)
        throws
    {
        self.name = name
        session = try InferenceSession(model: model, context: context)
        draftTokenizer = try Tokenizer(gguf: model.file)
        self.targetTokenizer = targetTokenizer
        self.draftLength = max(1, draftLength)
    }

    public func prepare(prompt: [Token]) async throws {
        let draftContext = draftTokenizer.encode(targetTokenizer.decode(prompt))
        guard !draftContext.isEmpty, draftContext.count < session.capacity else { return }
        try cached.withLock { cached in _ = try synchronize(&cached, with: draftContext) }
    }

    /// Brings the draft's cache to `draftContext` (keeping the common prefix) and returns the
    /// logits after its last token.
    private func synchronize(_ cached: inout [Token], with draftContext: [Token]) throws -> [Float] {
        var common = 0
        while common < min(cached.count, draftContext.count - 1), cached[common] == draftContext[common] { common += 1 }
        try session.rollback(to: common)
        let logits = try session.append(Array(draftContext[common...]))
        cached = draftContext
        return logits
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let budget = min(draftLength, context.budget.maxDepth, context.remainingContext)
        guard budget > 0 else { return [] }
        let text = targetTokenizer.decode(context.tokens)
        let draftContext = draftTokenizer.encode(text)
        guard !draftContext.isEmpty, draftContext.count + budget + 1 < session.capacity else { return [] }
        let drafted: [Token] = try cached.withLock { cached in
            var logits = try synchronize(&cached, with: draftContext)
            var output: [Token] = []
            // Draft a little more text than needed: target tokens are often longer than the draft's.
            for _ in 0..<budget {
                let next = Token(argmax(logits))
                if draftTokenizer.stopIDs.contains(next) { break }
                output.append(next)
                logits = try session.append([next])
                cached.append(next)
            }
            return output
        }
        guard !drafted.isEmpty else { return [] }
        // Text the draft added beyond the context (its tokens may straddle the context's end).
        let draftedText = draftTokenizer.decode(cached.withLock { Array($0) })
        guard draftedText.count > text.count, draftedText.hasPrefix(text) else { return [] }
        let proposal = Array(targetTokenizer.encode(String(draftedText.dropFirst(text.count))).prefix(budget))
        guard !proposal.isEmpty else { return [] }
        return [DraftCandidate.chain(proposal, score: 0.5)]
    }
}
