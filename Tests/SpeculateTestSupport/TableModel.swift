import Foundation
import SpeculateCore
import Synchronization

/// A small deterministic language model behind the core's ModelSession: the logits after a
/// context depend on its last two tokens through a seeded table. Fast enough for the tens of
/// thousands of runs the statistical tests need, and exact, so expectations can be computed.
public final class TableModelSession: ModelSession {
    public let vocabularySize: Int
    public let capacity: Int
    public let seed: UInt64
    public let sharpness: Float
    private let state = Mutex<(committed: [Token], pending: [(token: Token, parent: Int)])>(([], []))

    public init(vocabulary: Int, capacity: Int = 4096, seed: UInt64 = 1, sharpness: Float = 2) {
        vocabularySize = vocabulary
        self.capacity = capacity
        self.seed = seed
        self.sharpness = sharpness
    }

    public var committedLength: Int { state.withLock { $0.committed.count } }

    /// The logits after a context ending in `a, b`.
    public func logits(after context: [Token]) -> [Float] {
        let a = context.count >= 2 ? UInt64(context[context.count - 2] + 1) : 0
        let b = context.last.map { UInt64($0 + 1) } ?? 0
        var random = SeededRandom(seed: seed &* 1_000_003 &+ a &* 7919 &+ b)
        return (0..<vocabularySize).map { _ in sharpness * (random.unit() * 2 - 1) }
    }

    public func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        try state.withLock { s in
            guard s.committed.count + tokens.count <= capacity else {
                throw DecoderError.promptTooLong(tokens: tokens.count, capacity: capacity)
            }
            s.pending = zip(tokens, parents).map { ($0, $1) }
            return (logitRows ?? Array(tokens.indices)).map { row in
                var path: [Token] = []
                var node = row
                while node >= 0 {
                    path.append(tokens[node])
                    node = parents[node]
                }
                return logits(after: s.committed + path.reversed())
            }
        }
    }

    public func commit(_ path: [Int]) throws {
        state.withLock { s in
            s.committed += path.map { s.pending[$0].token }
            s.pending = []
        }
    }

    public func rollback(to length: Int) throws {
        state.withLock { s in s.committed = Array(s.committed.prefix(length)) }
    }
}

/// Drafts from another table model's distribution, shaped like the target's sampling.
/// `children` i.i.d. samples per node (duplicates merge in the tree); chains of `depth`.
public final class TableDraftProposer: DraftProposer {
    public let name: String
    public let draft: TableModelSession
    public let depth: Int
    public let children: Int
    private let counter = Mutex<UInt64>(0)

    public init(name: String, draft: TableModelSession, depth: Int, children: Int) {
        self.name = name
        self.draft = draft
        self.depth = depth
        self.children = children
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let call = counter.withLock { value -> UInt64 in
            value += 1
            return value
        }
        var random = SeededRandom(seed: 0xD1CE &+ call &* 0x9E37_79B9 &+ UInt64(name.utf8.count))
        var candidates: [DraftCandidate] = []
        for _ in 0..<children {
            var tokens: [Token] = []
            var distributions: [DraftDistribution] = []
            var sequence = context.tokens
            for _ in 0..<depth {
                let q = context.sampling.distribution(draft.logits(after: sequence))
                let token = Token(context.sampling.isGreedy ? argmax(q) : random.sample(q))
                tokens.append(token)
                distributions.append(context.sampling.isGreedy ? .deterministic : .sampled(q))
                sequence.append(token)
            }
            candidates.append(
                DraftCandidate(
                    tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 },
                    distributions: distributions, scores: tokens.map { _ in 1 }))
        }
        return candidates
    }
}

/// Drafts one chain from a table model and ends it, as a draft model does, after a sampled
/// token whose probability is below `stopBelow` (a function of the tokens drafted so far).
public final class StoppingTableDraftProposer: SelfLimitingProposer {
    public let name = "stopping"
    public let draft: TableModelSession
    public let stopBelow: Float
    public var stopsWhenUnsure: Bool { true }
    private let counter = Mutex<UInt64>(0)

    public init(draft: TableModelSession, stopBelow: Float) {
        self.draft = draft
        self.stopBelow = stopBelow
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let call = counter.withLock { value -> UInt64 in
            value += 1
            return value
        }
        var random = SeededRandom(seed: 0x5709 &+ call &* 0x9E37_79B9)
        var tokens: [Token] = []
        var distributions: [DraftDistribution] = []
        var sequence = context.tokens
        while tokens.count < context.budget.maxDepth {
            let q = context.sampling.distribution(draft.logits(after: sequence))
            let token = Token(context.sampling.isGreedy ? argmax(q) : random.sample(q))
            tokens.append(token)
            distributions.append(context.sampling.isGreedy ? .deterministic : .sampled(q))
            sequence.append(token)
            if q[Int(token)] < stopBelow { break }
        }
        return [
            DraftCandidate(
                tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 }, distributions: distributions,
                scores: tokens.map { _ in 1 })
        ]
    }
}

/// Proposes random trees of random tokens (mostly wrong, sometimes right).
public struct RandomTreeProposer: DraftProposer {
    public let name = "random"
    public let vocabulary: Int
    public let seed: UInt64

    public init(vocabulary: Int, seed: UInt64) {
        self.vocabulary = vocabulary
        self.seed = seed
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        var random = SeededRandom(seed: seed &+ UInt64(context.step) &* 31 &+ UInt64(context.tokens.count))
        let count = Int(random.next() % 12)
        var tokens: [Token] = []
        var parents: [Int] = []
        for i in 0..<count {
            tokens.append(Token(random.next() % UInt64(vocabulary)))
            parents.append(i == 0 ? -1 : Int(random.next() % UInt64(i + 1)) - 1)
        }
        return [
            DraftCandidate(
                tokens: tokens, parents: parents, distributions: tokens.map { _ in .deterministic },
                scores: tokens.map { _ in Float(random.unit()) })
        ]
    }
}

/// Proposes the target's own greedy continuation (an oracle: every draft is right).
public struct OracleProposer: DraftProposer {
    public let name = "oracle"
    public let target: TableModelSession
    public let depth: Int

    public init(target: TableModelSession, depth: Int) {
        self.target = target
        self.depth = depth
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        var sequence = context.tokens
        var tokens: [Token] = []
        for _ in 0..<depth {
            let next = Token(argmax(target.logits(after: sequence)))
            tokens.append(next)
            sequence.append(next)
        }
        return [DraftCandidate.chain(tokens)]
    }
}

/// Misbehaves in every way a proposer can.
public struct AdversarialProposer: DraftProposer {
    public enum Failure: Error { case boom }
    public let name = "adversarial"
    public let vocabulary: Int

    public init(vocabulary: Int) { self.vocabulary = vocabulary }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        switch context.step % 5 {
        case 0: throw Failure.boom
        case 1: return [DraftCandidate.chain([Token(vocabulary), -3, 2])]  // ids outside the vocabulary
        case 2: return []  // nothing
        case 3:
            return [
                DraftCandidate(
                    tokens: [1, 2], parents: [0, 0], distributions: [.deterministic, .deterministic], scores: [1, 1])
            ]  // malformed
        default:  // far longer than the budget
            return [DraftCandidate.chain((0..<10_000).map { Token($0 % vocabulary) })]
        }
    }
}

/// Plain greedy decoding of the table model, computed directly.
public func plainGreedy(_ model: TableModelSession, prompt: [Token], count: Int) -> [Token] {
    var sequence = prompt
    for _ in 0..<count { sequence.append(Token(argmax(model.logits(after: sequence)))) }
    return Array(sequence.dropFirst(prompt.count))
}
