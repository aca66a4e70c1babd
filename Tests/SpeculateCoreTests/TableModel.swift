import Foundation
import SpeculateCore
import Synchronization

/// A small deterministic language model behind the core's ModelSession: the logits after a
/// context depend on its last two tokens through a seeded table. Fast enough for the tens of
/// thousands of runs the statistical tests need, and exact, so expectations can be computed.
final class TableModelSession: ModelSession {
    let vocabularySize: Int
    let capacity: Int
    let seed: UInt64
    let sharpness: Float
    private let state = Mutex<(committed: [Token], pending: [(token: Token, parent: Int)])>(([], []))

    init(vocabulary: Int, capacity: Int = 4096, seed: UInt64 = 1, sharpness: Float = 2) {
        vocabularySize = vocabulary
        self.capacity = capacity
        self.seed = seed
        self.sharpness = sharpness
    }

    var committedLength: Int { state.withLock { $0.committed.count } }

    /// The logits after a context ending in `a, b`.
    func logits(after context: [Token]) -> [Float] {
        let a = context.count >= 2 ? UInt64(context[context.count - 2] + 1) : 0
        let b = context.last.map { UInt64($0 + 1) } ?? 0
        var random = SeededRandom(seed: seed &* 1_000_003 &+ a &* 7919 &+ b)
        return (0..<vocabularySize).map { _ in sharpness * (random.unit() * 2 - 1) }
    }

    func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        try state.withLock { s in
            guard s.committed.count + tokens.count <= capacity else { throw DecoderError.promptTooLong(tokens: tokens.count, capacity: capacity) }
            s.pending = zip(tokens, parents).map { ($0, $1) }
            return (logitRows ?? Array(tokens.indices)).map { row in
                var path: [Token] = []
                var node = row
                while node >= 0 { path.append(tokens[node]); node = parents[node] }
                return logits(after: s.committed + path.reversed())
            }
        }
    }

    func commit(_ path: [Int]) throws {
        state.withLock { s in
            s.committed += path.map { s.pending[$0].token }
            s.pending = []
        }
    }

    func rollback(to length: Int) throws {
        state.withLock { s in s.committed = Array(s.committed.prefix(length)) }
    }
}

/// Drafts from another table model's distribution, shaped like the target's sampling.
/// `children` i.i.d. samples per node (duplicates merge in the tree); chains of `depth`.
final class TableDraftProposer: DraftProposer {
    let name: String
    let draft: TableModelSession
    let depth: Int
    let children: Int
    private let counter = Mutex<UInt64>(0)

    init(name: String, draft: TableModelSession, depth: Int, children: Int) {
        self.name = name
        self.draft = draft
        self.depth = depth
        self.children = children
    }

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let call = counter.withLock { value -> UInt64 in value += 1; return value }
        var random = SeededRandom(seed: 0xD1CE &+ call &* 0x9E37_79B9 &+ UInt64(name.utf8.count))
        var candidates: [DraftCandidate] = []
        for _ in 0..<children {
            var tokens: [Token] = [], distributions: [DraftDistribution] = []
            var sequence = context.tokens
            for _ in 0..<depth {
                let q = context.sampling.distribution(draft.logits(after: sequence))
                let token = Token(context.sampling.isGreedy ? argmax(q) : random.sample(q))
                tokens.append(token)
                distributions.append(context.sampling.isGreedy ? .deterministic : .sampled(q))
                sequence.append(token)
            }
            candidates.append(DraftCandidate(tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 },
                                             distributions: distributions, scores: tokens.map { _ in 1 }))
        }
        return candidates
    }
}

/// Proposes random trees of random tokens (mostly wrong, sometimes right).
struct RandomTreeProposer: DraftProposer {
    let name = "random"
    let vocabulary: Int
    let seed: UInt64

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        var random = SeededRandom(seed: seed &+ UInt64(context.step) &* 31 &+ UInt64(context.tokens.count))
        let count = Int(random.next() % 12)
        var tokens: [Token] = [], parents: [Int] = []
        for i in 0..<count {
            tokens.append(Token(random.next() % UInt64(vocabulary)))
            parents.append(i == 0 ? -1 : Int(random.next() % UInt64(i + 1)) - 1)
        }
        return [DraftCandidate(tokens: tokens, parents: parents, distributions: tokens.map { _ in .deterministic },
                               scores: tokens.map { _ in Float(random.unit()) })]
    }
}

/// Proposes the target's own greedy continuation (an oracle: every draft is right).
struct OracleProposer: DraftProposer {
    let name = "oracle"
    let target: TableModelSession
    let depth: Int

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
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
struct AdversarialProposer: DraftProposer {
    enum Failure: Error { case boom }
    let name = "adversarial"
    let vocabulary: Int

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        switch context.step % 5 {
        case 0: throw Failure.boom
        case 1: return [DraftCandidate.chain([Token(vocabulary), -3, 2])]                    // ids outside the vocabulary
        case 2: return []                                                                     // nothing
        case 3: return [DraftCandidate(tokens: [1, 2], parents: [0, 0], distributions: [.deterministic, .deterministic], scores: [1, 1])] // malformed
        default: return [DraftCandidate.chain((0..<10_000).map { Token($0 % vocabulary) })]  // far longer than the budget
        }
    }
}
