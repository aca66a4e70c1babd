import Foundation
import SpeculateCore

/// Puts the draft-model forwards of several decoding loops (a server's slots) into shared
/// forwards, one ``ForwardBatcher`` per draft model, the way the target's are shared: drafting
/// a token for four requests then reads the draft's weights once instead of four times.
///
/// The slots draft in rounds: every slot's target forward ends in one shared forward, after
/// which each slot verifies its tree and drafts its next one. A slot that drafted in the last
/// round is expected in this one (so the first slot to draft waits for the others rather than
/// running a forward alone), until it sends its next tree to the target (then its drafting for
/// the round is over, whether it drafted or not). One ``DraftLane`` per slot; one
/// `DraftBatching` per server.
public final class DraftBatching: @unchecked Sendable {
    /// How long a draft forward waits for expected slots: a few draft forwards' time, as a slot
    /// that stopped drafting early sends its tree within that.
    public let patience: Duration
    private let lock = NSLock()
    private var batchers: [ObjectIdentifier: ForwardBatcher] = [:]
    /// Per draft model, the lanes whose last round of drafting used it.
    private var drafters: [ObjectIdentifier: Set<ObjectIdentifier>] = [:]

    /// Draft batching whose forwards wait at most `patience` for expected slots.
    public init(patience: Duration = .milliseconds(50)) {
        self.patience = patience
    }

    /// A lane for one decoding loop.
    public func lane() -> DraftLane { DraftLane(batching: self) }

    /// The batcher of `model`'s forwards.
    func batcher(for model: TransformerModel) -> ForwardBatcher {
        lock.withLock {
            if let batcher = batchers[ObjectIdentifier(model)] { return batcher }
            let batcher = ForwardBatcher(patience: patience)
            batchers[ObjectIdentifier(model)] = batcher
            return batcher
        }
    }

    /// How many draft forwards (of every draft model) carried each number of sessions so far.
    public var sessionsPerForward: [Int: Int] {
        lock.withLock { Array(batchers.values) }.reduce(into: [:]) { total, batcher in
            total.merge(batcher.figures.sessionsPerForward, uniquingKeysWith: +)
        }
    }

    func setDrafted(_ lane: DraftLane, models: Set<ObjectIdentifier>) {
        lock.withLock {
            for model in drafters.keys { drafters[model]?.remove(ObjectIdentifier(lane)) }
            for model in models { drafters[model, default: []].insert(ObjectIdentifier(lane)) }
        }
    }

    /// Lanes whose last round used `model`, `lane` counted whether or not it did.
    func drafterCount(of model: TransformerModel, with lane: DraftLane) -> Int {
        lock.withLock { drafters[ObjectIdentifier(model)].map { $0.union([ObjectIdentifier(lane)]).count } ?? 1 }
    }
}

/// One decoding loop's way into ``DraftBatching``: its draft proposers evaluate through it, and
/// its target session tells it when a round starts (``ForwardFollower``) and ends
/// (``draftingEnded()``).
public final class DraftLane: ForwardFollower, @unchecked Sendable {
    private let batching: DraftBatching
    private let lock = NSLock()
    // Guarded by `lock`.
    private var active = false
    private var draftedThisRound: [ObjectIdentifier: InferenceSession] = [:]
    private var expectedThisRound: [ObjectIdentifier: InferenceSession] = [:]

    init(batching: DraftBatching) { self.batching = batching }

    /// `session` (a draft session of this loop's) as a ``ModelSession`` whose evaluations go
    /// through this lane.
    public func session(_ session: InferenceSession) -> any ModelSession {
        LaneSession(session: session, lane: self)
    }

    /// The loop's generation starts (`true`) or ends (`false`): while none runs, its drafts are
    /// not waited for, and it counts as a drafter from its first round of drafting.
    public func setActive(_ running: Bool) {
        let expected = lock.withLock {
            active = running
            let expected = expectedThisRound
            expectedThisRound = [:]
            draftedThisRound = [:]
            return expected
        }
        release(expected.values)
        batching.setDrafted(self, models: [])
    }

    /// Decoding loops whose last round of drafting used `model`, this one counted whether or not
    /// it did: how many would share each of its draft forwards if it drafts now.
    public func drafters(of model: TransformerModel) -> Int { batching.drafterCount(of: model, with: self) }

    /// Evaluates `batch` (in one of this loop's draft sessions) in the draft model's next shared forward.
    public func evaluate(_ batch: SessionBatch) throws -> Logits {
        let key = ObjectIdentifier(batch.session)
        lock.withLock { draftedThisRound[key] = batch.session }
        return try batching.batcher(for: batch.session.model).evaluate(batch)
    }

    /// The target forward carrying this loop's tree has run: a round of drafting starts, and the
    /// sessions that drafted in the last round are waited for in this one. Runs on the thread
    /// that ran the forward, before any loop wakes from it.
    public func forwardRan() {
        let drafted = lock.withLock { () -> [InferenceSession] in
            guard active else { return [] }
            expectedThisRound = draftedThisRound
            draftedThisRound = [:]
            return Array(expectedThisRound.values)
        }
        batching.setDrafted(self, models: Set(drafted.map { ObjectIdentifier($0.model) }))
        for session in drafted { batching.batcher(for: session.model).expect(session) }
    }

    /// This loop sends its next tree to the target: it drafts no more this round.
    public func draftingEnded() {
        let expected = lock.withLock { () -> [InferenceSession] in
            let expected = Array(expectedThisRound.values)
            expectedThisRound = [:]
            return expected
        }
        release(expected)
    }

    private func release(_ sessions: some Sequence<InferenceSession>) {
        for session in sessions { batching.batcher(for: session.model).release(session) }
    }
}

/// A draft session whose evaluations go through its loop's ``DraftLane``.
private final class LaneSession: ModelSession {
    let session: InferenceSession
    let lane: DraftLane

    init(session: InferenceSession, lane: DraftLane) {
        self.session = session
        self.lane = lane
    }

    var vocabularySize: Int { session.vocabularySize }
    var committedLength: Int { session.committedLength }
    var capacity: Int { session.capacity }

    func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        let rows = logitRows ?? Array(tokens.indices)
        let result = try lane.evaluate(
            SessionBatch(session: session, tokens: tokens, parents: parents, logits: .selected(rows)))
        return rows.map { Array(result.row(for: $0)) }
    }

    func commit(_ path: [Int]) throws { try session.commit(path) }

    func rollback(to length: Int) throws { try session.rollback(to: length) }
}
