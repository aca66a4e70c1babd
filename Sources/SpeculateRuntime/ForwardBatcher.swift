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
    /// Forwards run, the tokens they carried, how many forwards carried each number of
    /// sessions, the seconds spent in them, and the seconds of those that read part of a prompt
    /// (a chain of several tokens of which not every logit is wanted).
    public typealias Figures = (
        forwards: Int, tokens: Int, sessionsPerForward: [Int: Int], seconds: Double, promptSeconds: Double
    )
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
        let follower: (any ForwardFollower)?
        let arrival = ContinuousClock.now
        var result: Result<Logits, any Error>?
        init(_ batch: SessionBatch, follower: (any ForwardFollower)?) {
            self.batch = batch
            self.follower = follower
        }
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

    /// Tokens the other sessions will likely add to `session`'s next forward: what each sent in
    /// its last evaluation (a decoding session's tree, a prompt-reading session's chunk).
    public func concurrentTokens(besides session: InferenceSession) -> Int {
        load(besides: session) { expected, last in expected ? max(1, last ?? 1) : last ?? 0 }
    }

    /// The tokens the other sessions would add to `session`'s next forward if every decoding
    /// session decoded plainly: one for each, and the chunk of each prompt being read. Their
    /// useful work, what the forward's time is worth without anyone's draft nodes.
    public func concurrentPlainTokens(besides session: InferenceSession) -> Int {
        load(besides: session) { expected, last in expected ? 1 : last ?? 0 }
    }

    /// Sums `count(is expected, last tokens)` over the sessions other than `session` that are
    /// expected or evaluated since they were last released.
    private func load(besides session: InferenceSession, _ count: (Bool, Int?) -> Int) -> Int {
        let own = ObjectIdentifier(session)
        return condition.withLock {
            expected.union(lastTokens.keys).reduce(0) {
                $0 + ($1 == own ? 0 : count(expected.contains($1), lastTokens[$1]))
            }
        }
    }

    /// Other sessions in their decoding loop.
    public func concurrentRequests(besides session: InferenceSession) -> Int {
        let own = ObjectIdentifier(session)
        return condition.withLock { expected.count - (expected.contains(own) ? 1 : 0) }
    }

    /// Sessions in their decoding loop.
    public var expectedCount: Int { condition.withLock { expected.count } }

    /// How the forwards went so far (see ``Figures``).
    public var figures: Figures {
        condition.withLock { (forwards, batchedTokens, sizes, Self.seconds(busy), Self.seconds(reading)) }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Evaluates `batch` in the next forward (blocking the calling thread until it has run);
    /// `follower` hears that the forward ran before anyone wakes from it.
    public func evaluate(_ batch: SessionBatch, follower: (any ForwardFollower)? = nil) throws -> Logits {
        let pending = Pending(batch, follower: follower)
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
                for member in group { member.follower?.forwardRan() }
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

/// Told by the thread that ran a shared forward, before the sessions in it wake, that it ran
/// (see ``DraftLane``).
public protocol ForwardFollower: Sendable {
    /// The forward carrying this follower's evaluation has run.
    func forwardRan()
}
