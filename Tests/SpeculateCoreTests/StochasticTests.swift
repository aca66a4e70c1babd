import Foundation
import SpeculateCore
import SpeculateGrammar
import SpeculateProposers
import SpeculateTestSupport
import Synchronization
import Testing

/// Upper tail of the chi-square distribution (Wilson–Hilferty), accurate for the dozens of
/// degrees of freedom used here.
func chiSquarePValue(_ statistic: Double, degreesOfFreedom k: Double) -> Double {
    let z = (pow(statistic / k, 1.0 / 3) - (1 - 2 / (9 * k))) / (2 / (9 * k)).squareRoot()
    return 0.5 * erfc(z / 2.0.squareRoot())
}

@Suite("Speculative sampling keeps the target's distribution")
struct StochasticTests {
    static let vocabulary = 5
    static let runs = 20_000
    static let sampling = SamplingSettings(temperature: 1)

    /// Exact probability of each 3-token continuation under plain sampling from the target.
    static func exact(_ target: TableModelSession, prompt: [Token], processors: [any LogitProcessor] = []) -> [Double] {
        var result: [Double] = []
        for code in 0..<(vocabulary * vocabulary * vocabulary) {
            let t = [code / 25, (code / 5) % 5, code % 5].map(Token.init)
            var p = 1.0
            var sequence = prompt
            for token in t {
                var logits = target.logits(after: sequence)
                for processor in processors {
                    processor.process(&logits, history: TokenHistory(committed: sequence, promptLength: prompt.count))
                }
                p *= Double(sampling.distribution(logits)[Int(token)])
                sequence.append(token)
            }
            result.append(p)
        }
        return result
    }

    static func check(
        _ label: String, minimumAccepted: Int = runs / 4 + 1,
        proposers: @escaping (TableModelSession) -> [any DraftProposer],
        verifier: any Verifier = SpeculativeSamplingVerifier(), processors: [any LogitProcessor] = []
    ) async throws {
        let target = TableModelSession(vocabulary: vocabulary, seed: 21, sharpness: 1.5)
        let prompt: [Token] = [0, 3]
        let expected = exact(target, prompt: prompt, processors: processors)
        var counts = [Int](repeating: 0, count: expected.count)
        var accepted = 0
        var forwards = 0
        let decoder = SpeculativeDecoder(target: target, proposers: proposers(target), verifier: verifier)
        for run in 0..<runs {
            var sampling = sampling
            sampling.seed = UInt64(run) &* 0x9E37_79B9_7F4A_7C15 &+ 1
            var options = GenerationOptions(
                maxTokens: 3, budget: TreeBudget(maxNodes: 8, maxDepth: 3), sampling: sampling)
            options.logitProcessors = processors
            let (tokens, stats) = try await decoder.generateAll(prompt: prompt, options: options)
            let t = tokens.map { Int($0.token) }
            counts[t[0] * 25 + t[1] * 5 + t[2]] += 1
            accepted += stats.acceptedDrafts
            forwards += stats.targetForwards
        }
        // Pool cells with small expectations so every cell expects at least 5.
        var statistic = 0.0
        var cells = 0
        var pooledExpected = 0.0
        var pooledObserved = 0.0
        for (e, o) in zip(expected, counts) {
            let expectedCount = e * Double(runs)
            if expectedCount < 5 {
                pooledExpected += expectedCount
                pooledObserved += Double(o)
            } else {
                statistic += pow(Double(o) - expectedCount, 2) / expectedCount
                cells += 1
            }
        }
        if pooledExpected > 0 {
            statistic += pow(pooledObserved - pooledExpected, 2) / pooledExpected
            cells += 1
        }
        let p = chiSquarePValue(statistic, degreesOfFreedom: Double(cells - 1))
        print(
            "\(label): chi-square \(String(format: "%.1f", statistic)) on \(cells - 1) degrees of freedom, p = \(String(format: "%.3f", p)); \(accepted) drafts accepted over \(forwards) forwards"
        )
        #expect(p > 0.001, "\(label): the speculative distribution differs from the target's (p = \(p))")
        #expect(accepted >= minimumAccepted, "\(label): speculation barely engaged")
    }

    @Test("a single sampled chain")
    func singleChain() async throws {
        try await Self.check("single chain") { target in
            [
                TableDraftProposer(
                    name: "q", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 21, sharpness: 1.0),
                    depth: 3, children: 1)
            ]
        }
    }

    @Test("penalties along each node's path: the output follows the processed distribution")
    func withProcessors() async throws {
        try await Self.check(
            "penalties",
            proposers: { target in
                [
                    TableDraftProposer(
                        name: "q", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 21, sharpness: 1.0),
                        depth: 3, children: 2)
                ]
            },
            processors: [
                RepetitionPenalty(frequency: 0.7, presence: 0.3), LogitBias([2: 0.8]),
                WindowRepeatPenalty(penalty: 1.4, window: 3),
            ])
    }

    @Test("a JSON grammar: drafts it refuses stay in the tree, and the output follows the masked distribution")
    func withGrammar() async throws {
        // Tokens spell "[", "1", ",", "]" and an end token: an array of integers, masked token by
        // token; the unconstrained draft proposes refused tokens that verification must reject
        // (stochastic decoding never cuts them: that would bias the drafts after them).
        let spellings: [[UInt8]?] = [Array("[".utf8), Array("1".utf8), Array(",".utf8), Array("]".utf8), nil]
        let vocabulary = try GrammarVocabulary(size: Self.vocabulary, endTokens: [4], spellsEveryByte: false) {
            spellings[Int($0)]
        }
        let grammar = try JSONGrammar(schemaText: #"{"type": "array", "items": {"type": "integer"}}"#)
        try await Self.check(
            "grammar", minimumAccepted: Self.runs / 10,
            proposers: { _ in
                [
                    TableDraftProposer(
                        name: "q", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 24, sharpness: 1.0),
                        depth: 3, children: 2)
                ]
            },
            processors: [GrammarConstraint(grammar: grammar, vocabulary: vocabulary)])
    }

    @Test("several children from one proposer")
    func severalChildren() async throws {
        try await Self.check("three children, one proposer") { _ in
            [
                TableDraftProposer(
                    name: "q", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 22, sharpness: 1.2),
                    depth: 2, children: 3)
            ]
        }
    }

    @Test("children from two different proposers, plus a deterministic one")
    func twoProposers() async throws {
        try await Self.check("two proposers + deterministic") { target in
            [
                TableDraftProposer(
                    name: "q1", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 21, sharpness: 0.8),
                    depth: 2, children: 1),
                TableDraftProposer(
                    name: "q2", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 23, sharpness: 1.5),
                    depth: 3, children: 2),
                OracleProposer(target: target, depth: 2),
            ]
        }
    }

    @Test("the auto policy over a sampled and a deterministic member")
    func autoPolicy() async throws {
        // Free verification, so the policy keeps sending drafts and the check has teeth; under sampling
        // every member is asked every step and only value-independent cuts apply.
        let free = VerificationCost(tokens: [1, 64], relative: [1, 1], oneTokenSeconds: 0.001)
        try await Self.check("auto") { target in
            [
                AutoProposer(
                    members: [
                        TableDraftProposer(
                            name: "q", draft: TableModelSession(vocabulary: Self.vocabulary, seed: 22, sharpness: 1.0),
                            depth: 3, children: 1),
                        RandomTreeProposer(vocabulary: Self.vocabulary, seed: 5),
                    ], verificationCost: free, learnsVerificationCost: false)
            ]
        }
    }

    @Test("the auto policy with a member that ends its own drafts: its whole drafts go out, then the others'")
    func autoPolicyContaining() async throws {
        let cpuLike = VerificationCost(tokens: [1, 2, 4, 8], relative: [1, 1.1, 1.3, 1.8], oneTokenSeconds: 0.001)
        try await Self.check(
            "auto, self-limiting member", minimumAccepted: 1,
            proposers: { target in
                [
                    AutoProposer(
                        members: [
                            StoppingTableDraftProposer(
                                draft: TableModelSession(vocabulary: Self.vocabulary, seed: 22, sharpness: 1.0),
                                stopBelow: 0.35),
                            RandomTreeProposer(vocabulary: Self.vocabulary, seed: 5),
                        ], verificationCost: cpuLike, cheapFraction: 1)
                ]
            })
    }

    @Test("the auto policy pricing by learned times: how many nodes go out hinges on timings, never on values")
    func autoPolicyLearning() async throws {
        // The production path: the table model's real verification times refit a CPU-like seed
        // as they come, so how many drafted nodes go out changes with timings; which ones must
        // not bias the output.
        let cpuLike = VerificationCost(tokens: [1, 2, 4, 8], relative: [1, 1.1, 1.3, 1.8], oneTokenSeconds: 0.001)
        try await Self.check(
            "auto, learned prices", minimumAccepted: 1,
            proposers: { target in
                [
                    AutoProposer(
                        members: [
                            TableDraftProposer(
                                name: "q",
                                draft: TableModelSession(vocabulary: Self.vocabulary, seed: 22, sharpness: 1.0),
                                depth: 3, children: 1),
                            RandomTreeProposer(vocabulary: Self.vocabulary, seed: 5),
                        ], verificationCost: cpuLike)
                ]
            })
    }
}

/// Draws `children` distinct first tokens without replacement from q, each followed by one
/// token sampled from q given it: the tree shape Sequoia's verifier expects.
final class WithoutReplacementProposer: DraftProposer {
    let name = "sequoia"
    let draft: TableModelSession
    let children: Int
    private let counter = Mutex<UInt64>(0)

    init(draft: TableModelSession, children: Int) {
        self.draft = draft
        self.children = children
    }

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let call = counter.withLock { value -> UInt64 in
            value += 1
            return value
        }
        var random = SeededRandom(seed: 0x5E9 &+ call &* 0x9E37_79B9)
        let q = context.sampling.distribution(draft.logits(after: context.tokens))
        var remaining = q
        var candidates: [DraftCandidate] = []
        for _ in 0..<children {
            let total = remaining.reduce(0, +)
            guard total > 0 else { break }
            let first = random.sample(remaining.map { $0 / total })
            remaining[first] = 0
            let q2 = context.sampling.distribution(draft.logits(after: context.tokens + [Token(first)]))
            let second = random.sample(q2)
            candidates.append(
                DraftCandidate(
                    tokens: [Token(first), Token(second)], parents: [-1, 0],
                    distributions: [.sampled(q), .sampled(q2)], scores: [1, 1]))
        }
        return candidates
    }
}

extension StochasticTests {
    @Test("Sequoia's sampling without replacement")
    func withoutReplacement() async throws {
        try await Self.check(
            "without replacement",
            proposers: { _ in
                [
                    WithoutReplacementProposer(
                        draft: TableModelSession(vocabulary: Self.vocabulary, seed: 24, sharpness: 1.0), children: 3)
                ]
            }, verifier: SamplingWithoutReplacementVerifier())
    }
}
