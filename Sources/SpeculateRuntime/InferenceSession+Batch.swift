import Foundation
import SpeculateFormat

/// One session's part of a forward over several sessions: a batch of tree nodes, as
/// ``InferenceSession/evaluate(tokens:parents:logits:)`` takes it.
public struct SessionBatch: Sendable {
    /// The session whose cache the nodes attend over and extend.
    public let session: InferenceSession
    /// The nodes' tokens.
    public let tokens: [TokenID]
    /// Each node's parent in this batch, or -1 after the committed prefix.
    public let parents: [Int]
    /// Which nodes' logits to return.
    public let logits: LogitRows

    /// A batch of `tokens` forming the tree `parents` in `session`.
    public init(session: InferenceSession, tokens: [TokenID], parents: [Int], logits: LogitRows = .all) {
        self.session = session
        self.tokens = tokens
        self.parents = parents
        self.logits = logits
    }
}

extension InferenceSession {
    /// Evaluates a batch of tree nodes in each of several sessions of one model in a single
    /// forward pass: every weight is read once for all their tokens, while each session's nodes
    /// attend over its own cache only. Each session's logits (and its pending tree afterwards)
    /// are bit-identical to those of evaluating its batch alone; the point is the cost, which on
    /// a memory-bound CPU grows far slower than the token count.
    ///
    /// All batches are checked before any session changes; a bad one throws and leaves every
    /// session as it was. The sessions must be distinct and share one model.
    public static func evaluate(_ batches: [SessionBatch]) throws -> [Logits] {
        guard let lead = batches.first else { return [] }
        guard batches.allSatisfy({ $0.session.model === lead.session.model }) else {
            throw RuntimeError.badHyperParameter("a batched forward takes sessions of one model")
        }
        let sessions = batches.map(\.session)
        guard Set(sessions.map(ObjectIdentifier.init)).count == sessions.count else {
            throw RuntimeError.badHyperParameter("a batched forward takes each session once")
        }
        // Locks in one global order, so two batched forwards over overlapping sessions cannot
        // each hold a lock the other waits for.
        let ordered = sessions.sorted { ObjectIdentifier($0) < ObjectIdentifier($1) }
        for session in ordered { session.lock.lock() }
        defer { for session in ordered.reversed() { session.lock.unlock() } }
        let plans = try batches.map {
            try $0.session.state.plan(tokens: $0.tokens, parents: $0.parents, logitRows: $0.logits)
        }
        var slices: [SequenceSlice] = []
        var row = 0
        for (batch, plan) in zip(batches, plans) {
            slices.append(batch.session.state.adopt(plan, rows: row..<row + batch.tokens.count))
            row += batch.tokens.count
        }
        guard row > 0 else {
            return batches.map { _ in
                Logits(rows: [], vocabularySize: lead.session.model.config.vocabularySize, values: [])
            }
        }
        return lead.session.state.forward(tokens: batches.flatMap(\.tokens), slices: slices)
    }
}
