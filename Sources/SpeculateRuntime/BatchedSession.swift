import SpeculateCore
import SpeculateFormat

/// A session whose evaluations go through a ``ForwardBatcher``: a decoder driving it sees an
/// ordinary ``ModelSession`` while its trees share forwards with other sessions' (each blocking
/// evaluation waits for the forward that carries it, so every decoder needs a thread of its own).
public final class BatchedSession: ModelSession {
    /// The session whose cache this one reads and writes.
    public let session: InferenceSession
    /// Where evaluations are gathered.
    public let batcher: ForwardBatcher
    /// Where this loop's draft forwards are shared with the other loops' (nil: not shared).
    public let draftLane: DraftLane?

    /// `session`, evaluated through `batcher`; its decoding loop's drafts go through `draftLane`.
    public init(session: InferenceSession, batcher: ForwardBatcher, draftLane: DraftLane? = nil) {
        self.session = session
        self.batcher = batcher
        self.draftLane = draftLane
    }

    public var vocabularySize: Int { session.vocabularySize }
    public var committedLength: Int { session.committedLength }
    public var capacity: Int { session.capacity }
    public var concurrentTokens: Int { batcher.concurrentTokens(besides: session) }
    public var concurrentPlainTokens: Int { batcher.concurrentPlainTokens(besides: session) }
    /// While other requests decode, a prompt goes in chunks of 16 tokens rather than 64: each
    /// chunk's forward is compute-bound (~6.7 ms a token for the 1.5B target on two Zen 4 cores),
    /// and every decoding request waits for it, so 64 tokens held their streams ~0.45 s a token
    /// where 16 hold them ~0.13 s; the prompt itself reads at about the same speed.
    public var promptChunk: Int { batcher.concurrentRequests(besides: session) > 0 ? 16 : 64 }

    public func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        let rows = logitRows ?? Array(tokens.indices)
        draftLane?.draftingEnded()
        let result = try batcher.evaluate(
            SessionBatch(session: session, tokens: tokens, parents: parents, logits: .selected(rows)),
            follower: draftLane)
        return rows.map { Array(result.row(for: $0)) }
    }

    public func commit(_ path: [Int]) throws { try session.commit(path) }

    public func rollback(to length: Int) throws { try session.rollback(to: length) }
}
