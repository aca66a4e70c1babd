import Foundation
import SpeculateFormat

/// Gathers the evaluations of several sessions of one model, each asked for on its own thread,
/// into single forward passes (``InferenceSession/evaluate(_:)``): continuous batching for a
/// server whose requests each run their own decoding loop.
///
/// A forward starts when every *expected* session is waiting (sessions in their decoding loop
/// say so with ``expect(_:)`` and leave with ``release(_:)``), or when the first waiter has
/// waited ``patience`` (a session busy elsewhere, say drafting a long prompt into its draft
/// model, holds the others up no longer than that). Sessions not expected (prefilling a prompt)
/// join whichever forward starts next, or start one at once when nobody is expected. The thread
/// that finds the forward due runs it for everyone; the others sleep until their results come.
///
/// Each session's logits are bit-identical to those of evaluating alone (the batched forward
/// keeps rows apart), so what is batched with what never changes an output.
public final class ForwardBatcher: @unchecked Sendable {
    /// How long the first waiter waits for expected sessions before the forward starts anyway.
    public let patience: Duration
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var expected: Set<ObjectIdentifier> = []
    /// Each session's last batch size (what it will likely send again).
    private var lastTokens: [ObjectIdentifier: Int] = [:]
    private var waiting: [Pending] = []
    private var running = false
    private var forwards = 0
    private var batchedTokens = 0
    private var sizes: [Int: Int] = [:]
    private var busy = Duration.zero
    private var reading = Duration.zero

    /// One session's evaluation until its forward has run.
    private final class Pending {
        let batch: SessionBatch
        let arrival = ContinuousClock.now
        var result: Result<Logits, any Error>?
        init(_ batch: SessionBatch) { self.batch = batch }
    }

    /// A batcher that waits at most `patience` for expected sessions.
    public init(patience: Duration = .milliseconds(250)) {
        self.patience = patience
    }

    /// Marks `session` as one whose next evaluation a forward should wait for (it is in its
    /// decoding loop).
    public func expect(_ session: InferenceSession) {
        condition.withLock {
            expected.insert(ObjectIdentifier(session))
            condition.broadcast()
        }
    }

    /// Stops waiting for `session` (its generation ended, or it is busy elsewhere for long).
    public func release(_ session: InferenceSession) {
        condition.withLock {
            expected.remove(ObjectIdentifier(session))
            lastTokens[ObjectIdentifier(session)] = nil
            condition.broadcast()
        }
    }

    /// Tokens the other expected sessions sent in their last evaluations: what they will likely
    /// add to `session`'s next forward.
    public func concurrentTokens(besides session: InferenceSession) -> Int {
        let own = ObjectIdentifier(session)
        return condition.withLock {
            expected.reduce(0) { $0 + ($1 == own ? 0 : max(1, lastTokens[$1] ?? 1)) }
        }
    }

    /// Sessions in their decoding loop.
    public var expectedCount: Int { condition.withLock { expected.count } }

    /// Forwards run, the tokens they carried, how many forwards carried each number of
    /// sessions, the seconds spent in them, and the seconds of those that read part of a prompt
    /// (a chain of several tokens of which not every logit is wanted).
    public var figures:
        (forwards: Int, tokens: Int, sessionsPerForward: [Int: Int], seconds: Double, promptSeconds: Double)
    {
        condition.withLock { (forwards, batchedTokens, sizes, Self.seconds(busy), Self.seconds(reading)) }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Evaluates `batch` in the next forward (blocking the calling thread until it has run).
    public func evaluate(_ batch: SessionBatch) throws -> Logits {
        let pending = Pending(batch)
        condition.lock()
        lastTokens[ObjectIdentifier(batch.session)] = batch.tokens.count
        waiting.append(pending)
        condition.broadcast()
        while pending.result == nil {
            if !running, isDue() {
                let group = waiting
                waiting = []
                running = true
                condition.unlock()
                let start = ContinuousClock.now
                let results = Self.run(group.map(\.batch))
                let took = ContinuousClock.now - start
                condition.lock()
                busy += took
                if group.contains(where: { Self.readsPrompt($0.batch) }) { reading += took }
                for (member, result) in zip(group, results) { member.result = result }
                running = false
                forwards += 1
                batchedTokens += group.reduce(0) { $0 + $1.batch.tokens.count }
                sizes[group.count, default: 0] += 1
                condition.broadcast()
            } else if running || waiting.isEmpty {
                condition.wait()
            } else {
                _ = condition.wait(until: Date.now.addingTimeInterval(remainingPatience()))
            }
        }
        condition.unlock()
        return try pending.result!.get()
    }

    /// Whether the waiting evaluations should run now (the lock is held).
    private func isDue() -> Bool {
        guard !waiting.isEmpty else { return false }
        let present = Set(waiting.map { ObjectIdentifier($0.batch.session) })
        return expected.isSubset(of: present) || remainingPatience() <= 0
    }

    /// Seconds until the first waiter's patience runs out (the lock is held).
    private func remainingPatience() -> TimeInterval {
        guard let first = waiting.first else { return 0 }
        return Self.seconds(patience - (ContinuousClock.now - first.arrival))
    }

    /// Whether a batch is part of a prompt: several tokens, not all of whose logits are wanted.
    private static func readsPrompt(_ batch: SessionBatch) -> Bool {
        guard batch.tokens.count > 1 else { return false }
        switch batch.logits {
        case .all: return false
        case .last, .none: return true
        case .selected(let rows): return rows.count < batch.tokens.count
        }
    }

    /// One forward for all, or, when one batch is bad (checked before anything runs), each alone
    /// so that only the bad one fails.
    private static func run(_ batches: [SessionBatch]) -> [Result<Logits, any Error>] {
        do {
            return try InferenceSession.evaluate(batches).map { .success($0) }
        } catch {
            guard batches.count > 1 else { return [.failure(error)] }
            return batches.map { batch in Result { try InferenceSession.evaluate([batch])[0] } }
        }
    }
}
