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

    /// `session`, evaluated through `batcher`.
    public init(session: InferenceSession, batcher: ForwardBatcher) {
        self.session = session
        self.batcher = batcher
    }

    public var vocabularySize: Int { session.vocabularySize }
    public var committedLength: Int { session.committedLength }
    public var capacity: Int { session.capacity }
    public var concurrentTokens: Int { batcher.concurrentTokens(besides: session) }

    public func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        let rows = logitRows ?? Array(tokens.indices)
        let result = try batcher.evaluate(
            SessionBatch(session: session, tokens: tokens, parents: parents, logits: .selected(rows)))
        return rows.map { Array(result.row(for: $0)) }
    }

    public func commit(_ path: [Int]) throws { try session.commit(path) }

    public func rollback(to length: Int) throws { try session.rollback(to: length) }
}
