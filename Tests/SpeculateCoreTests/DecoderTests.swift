import Foundation
import SpeculateCore
import SpeculateTestSupport
import Testing

@Suite("Speculative decoder: greedy is lossless")
struct GreedyDecoderTests {
    @Test("any proposers, including adversarial ones, give exactly plain greedy output", arguments: 0..<6)
    func equalsPlainGreedy(seed: Int) async throws {
        let vocabulary = 50
        let target = TableModelSession(vocabulary: vocabulary, seed: UInt64(seed) + 10)
        let prompt: [Token] = [1, 2, 3]
        let expected = plainGreedy(target, prompt: prompt, count: 60)
        let proposerSets: [[any DraftProposer]] = [
            [],
            [RandomTreeProposer(vocabulary: vocabulary, seed: UInt64(seed))],
            [OracleProposer(target: target, depth: 5)],
            [OracleProposer(target: target, depth: 3), RandomTreeProposer(vocabulary: vocabulary, seed: 99)],
            [AdversarialProposer(vocabulary: vocabulary), OracleProposer(target: target, depth: 4)],
            [
                TableDraftProposer(
                    name: "similar",
                    draft: TableModelSession(vocabulary: vocabulary, seed: UInt64(seed) + 10, sharpness: 1.9),
                    depth: 4, children: 2)
            ],
        ]
        for proposers in proposerSets {
            let budgets = [
                TreeBudget(maxNodes: 16, maxDepth: 8), TreeBudget(maxNodes: 6, maxDepth: 3, branching: [2, 2, 1]),
            ]
            for budget in budgets {
                let decoder = SpeculativeDecoder(target: target, proposers: proposers)
                let (tokens, stats) = try await decoder.generateAll(
                    prompt: prompt, options: GenerationOptions(maxTokens: 60, budget: budget))
                #expect(tokens.map(\.token) == expected, "proposers \(proposers.map(\.name)) budget \(budget)")
                #expect(stats.generatedTokens == 60)
                if proposers.contains(where: { $0.name == "adversarial" }) {
                    #expect(stats.proposers[0].failures > 0 && !stats.proposerErrors.isEmpty)
                }
                if proposers.first?.name == "oracle" {
                    #expect(stats.meanAcceptedPerForward > 3, "the oracle's drafts are all accepted")
                }
            }
        }
    }

    @Test("stop tokens, stop strings, max tokens and a full context")
    func stopConditions() async throws {
        let target = TableModelSession(vocabulary: 20, capacity: 30, seed: 4)
        let prompt: [Token] = [1, 2]
        let expected = plainGreedy(target, prompt: prompt, count: 40)
        let decoder = SpeculativeDecoder(target: target, proposers: [OracleProposer(target: target, depth: 6)])
        // A stop token: output ends with its first occurrence.
        let stop = expected[7]
        let firstStop = expected.firstIndex(of: stop)!
        var result = try await decoder.generateAll(
            prompt: prompt, options: GenerationOptions(maxTokens: 20, stopTokens: [stop]))
        #expect(result.tokens.map(\.token) == Array(expected[...firstStop]))
        #expect(result.statistics.stopReason == .endOfSequence)
        // Max tokens is exact even when a step accepts several tokens.
        result = try await decoder.generateAll(prompt: prompt, options: GenerationOptions(maxTokens: 5))
        #expect(result.tokens.map(\.token) == Array(expected.prefix(5)))
        // Stop strings over a detokenizer that spells tokens as letters.
        let letter: @Sendable (Token) -> [UInt8] = { [UInt8(97 + $0)] }
        let spell: @Sendable ([Token]) -> String = { String(decoding: $0.flatMap(letter), as: UTF8.self) }
        let needle = spell(Array(expected[3...4]))
        let options = GenerationOptions(maxTokens: 25, stopStrings: [needle], tokenBytes: letter)
        result = try await decoder.generateAll(prompt: prompt, options: options)
        #expect(spell(result.tokens.map(\.token)).hasSuffix(needle))
        #expect(result.statistics.stopReason == .stopString)
        // The stream's text pieces add up to the text of the tokens.
        var streamed = ""
        for try await event in decoder.generate(
            prompt: prompt, options: GenerationOptions(maxTokens: 12, tokenBytes: letter))
        {
            if case .tokens(_, let text) = event { streamed += text.map(\.text).joined() }
        }
        #expect(streamed == spell(Array(expected.prefix(12))))
        // The context fills: a clean stop, never an overflow.
        result = try await decoder.generateAll(prompt: prompt, options: GenerationOptions(maxTokens: 1000))
        #expect(result.statistics.stopReason == .contextFull)
        #expect(result.tokens.map(\.token) == Array(expected.prefix(result.tokens.count)))
        // A prompt that does not fit is an error.
        await #expect(throws: DecoderError.promptTooLong(tokens: 40, capacity: 30)) {
            _ = try await decoder.generateAll(prompt: Array(repeating: 1, count: 40), options: GenerationOptions())
        }
    }

    @Test(
        "streamed text is incremental: each token spelled once, characters split across tokens held back, stops across steps"
    )
    func incrementalText() async throws {
        let target = TableModelSession(vocabulary: 20, capacity: 300, seed: 6)
        let prompt: [Token] = [1, 2]
        let expected = plainGreedy(target, prompt: prompt, count: 200)
        // Tokens spell bytes that are often a piece of a 3-byte character (the euro sign split
        // 2 + 1), so whole characters span tokens and steps, and some sequences are invalid.
        let piece: @Sendable (Token) -> [UInt8] = {
            $0 % 3 == 0 ? [0xE2, 0x82] : $0 % 3 == 1 ? [0xAC] : [UInt8(97 + $0)]
        }
        let spelled = Counter()
        let counting: @Sendable (Token) -> [UInt8] = {
            spelled.add()
            return piece($0)
        }
        for proposers in [[], [OracleProposer(target: target, depth: 6)]] as [[any DraftProposer]] {
            spelled.reset()
            let decoder = SpeculativeDecoder(target: target, proposers: proposers)
            var streamed = ""
            var count = 0
            for try await event in decoder.generate(
                prompt: prompt, options: GenerationOptions(maxTokens: 200, tokenBytes: counting))
            {
                if case .tokens(let tokens, let text) = event {
                    streamed += text.map(\.text).joined()
                    count += tokens.count
                }
            }
            #expect(count == 200)
            #expect(spelled.value == 200, "every token spelled once (the output is never re-decoded)")
            var whole = String(decoding: expected.flatMap(piece), as: UTF8.self).unicodeScalars
            var pieces = streamed.unicodeScalars
            // An unfinished character at the very end is held back, never emitted.
            while whole.last == "\u{FFFD}" { whole.removeLast() }
            while pieces.last == "\u{FFFD}" { pieces.removeLast() }
            #expect(Array(pieces) == Array(whole))
        }
        // Plain decoding (one token per step): a two-token stop string always spans steps, and
        // generation ends with the token that completes its first occurrence.
        let letter: @Sendable (Token) -> [UInt8] = { [UInt8(97 + $0)] }
        let text = expected.map { Character(UnicodeScalar(UInt8(97 + $0))) }
        let needle = String(text[20...21])
        let later = String(text[30...32])
        func completion(_ stop: String) -> Int {
            (stop.count - 1..<text.count).first { String(text[$0 - stop.count + 1...$0]) == stop }!
        }
        let first = min(completion(needle), completion(later))
        let decoder = SpeculativeDecoder(target: target, proposers: [])
        let result = try await decoder.generateAll(
            prompt: prompt,
            options: GenerationOptions(maxTokens: 200, stopStrings: [later, needle], tokenBytes: letter))
        #expect(
            result.tokens.map(\.token) == Array(expected[...first]),
            "the earliest stop wins, whatever its place in the list")
        #expect(result.statistics.stopReason == .stopString)
    }

}

@Suite("Tree merger")
struct MergerTests {
    @Test("shared prefixes merge, provenance is kept, budgets and branching hold")
    func mergeRules() {
        let a = DraftCandidate(
            tokens: [5, 6, 7], parents: [-1, 0, 1], distributions: Array(repeating: .deterministic, count: 3),
            scores: [0.9, 0.8, 0.7])
        let b = DraftCandidate(
            tokens: [5, 6, 8], parents: [-1, 0, 1], distributions: Array(repeating: .deterministic, count: 3),
            scores: [0.5, 0.4, 0.3])
        let c = DraftCandidate(
            tokens: [9, 1], parents: [-1, 0], distributions: Array(repeating: .deterministic, count: 2),
            scores: [0.6, 0.2])
        let merger = ScoreRankedMerger()
        let tree = merger.merge([(0, a), (1, b), (2, c)], budget: TreeBudget(maxNodes: 100, maxDepth: 10))
        #expect(tree.count == 6)  // 5, 6 shared; 7, 8, 9, 1
        let five = tree.rootChildren.first { tree.nodes[$0].token == 5 }!
        #expect(tree.nodes[five].proposers == [0, 1])
        #expect(tree.nodes[five].score == 0.9)
        #expect(tree.rootChildren.map { tree.nodes[$0].token } == [5, 9])  // best score first
        for (i, node) in tree.nodes.enumerated() { #expect(node.parent < i) }  // topological

        let limited = merger.merge(
            [(0, a), (1, b), (2, c)], budget: TreeBudget(maxNodes: 3, maxDepth: 10, branching: [1, 1, 2]))
        #expect(limited.count == 3)
        #expect(limited.rootChildren.count == 1)
        let shallow = merger.merge(
            [(0, a), (1, b), (2, c)], budget: TreeBudget(maxNodes: 100, maxDepth: 2, branching: [2, 1]))
        #expect(shallow.nodes.allSatisfy { $0.depth <= 2 })
        #expect(shallow.nodes.allSatisfy { $0.children.count <= 1 } && shallow.rootChildren.count == 2)
        #expect(TreeBudget.parseBranching("<2,2,1>") == [2, 2, 1])
        #expect(TreeBudget.parseBranching("2,x") == nil)
    }
}

/// Records the prompts it is asked to read, and fails on request.
final class PreparingProposer: DraftProposer, @unchecked Sendable {
    let name: String
    let fails: Bool
    private let lock = NSLock()
    private var prompts: [[Token]] = []
    init(name: String, fails: Bool) {
        self.name = name
        self.fails = fails
    }
    var prepared: [[Token]] { lock.withLock { prompts } }
    func prepare(prompt: [Token]) async throws {
        lock.withLock { prompts.append(prompt) }
        if fails { throw CancellationError() }
    }
    func propose(_ context: DraftContext) async throws -> [DraftCandidate] { [] }
}

@Suite("Speculative decoder: proposers read the prompt first")
struct PrepareTests {
    @Test("every proposer reads the prompt once per generation; a failure is reported and changes nothing")
    func prepareOncePerGeneration() async throws {
        let target = TableModelSession(vocabulary: 40, seed: 3)
        let prompt: [Token] = [4, 5, 6, 7]
        let expected = plainGreedy(target, prompt: prompt, count: 20)
        let good = PreparingProposer(name: "good", fails: false)
        let bad = PreparingProposer(name: "bad", fails: true)
        let decoder = SpeculativeDecoder(target: target, proposers: [good, bad])
        for _ in 0..<2 {
            let (tokens, stats) = try await decoder.generateAll(
                prompt: prompt, options: GenerationOptions(maxTokens: 20))
            #expect(tokens.map(\.token) == expected)
            #expect(stats.proposers[0].failures == 0)
            #expect(stats.proposers[1].failures == 1)
            #expect(stats.proposerErrors.contains { $0.hasPrefix("prompt: bad could not read the prompt") })
        }
        #expect(good.prepared == [prompt, prompt] && bad.prepared == [prompt, prompt])
    }
}

/// Counts calls from any task.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add() { lock.withLock { count += 1 } }
    func reset() { lock.withLock { count = 0 } }
}
