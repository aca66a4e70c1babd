import Foundation
import SpeculateCore
import SpeculateTestSupport
import Testing

/// Plain greedy decoding of the table model with `processors` applied at every position.
func processedGreedy(_ model: TableModelSession, prompt: [Token], count: Int, processors: [any LogitProcessor])
    -> [Token]
{
    var sequence = prompt
    for _ in 0..<count {
        var logits = model.logits(after: sequence)
        for processor in processors {
            processor.process(&logits, history: TokenHistory(committed: sequence, promptLength: prompt.count))
        }
        sequence.append(Token(argmax(logits)))
    }
    return Array(sequence.dropFirst(prompt.count))
}

@Suite("Logit processors apply along each node's path")
struct LogitProcessorTests {
    static let vocabulary = 24

    @Test("greedy speculative output equals plain greedy with the same path-dependent processors", arguments: 0..<3)
    func greedyWithProcessors(seed: Int) async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: UInt64(40 + seed))
        let prompt: [Token] = [3, 7, 1]
        let processors: [any LogitProcessor] = [
            RepetitionPenalty(frequency: 0.8, presence: 0.4), LogitBias([5: -100, 9: 0.7]),
            WindowRepeatPenalty(penalty: 1.3, window: 5), MinP(0.05),
        ]
        let expected = processedGreedy(target, prompt: prompt, count: 60, processors: processors)
        #expect(expected != plainGreedy(target, prompt: prompt, count: 60), "the processors change the output")
        #expect(!expected.contains(5), "a -100 bias bans the token")
        // The oracle drafts the unprocessed target's choices: some are right, many are not, and
        // every node must be judged with its own path's penalties.
        let proposers: [any DraftProposer] = [
            OracleProposer(target: target, depth: 6),
            RandomTreeProposer(vocabulary: Self.vocabulary, seed: UInt64(seed)),
            AdversarialProposer(vocabulary: Self.vocabulary),
        ]
        var plainFigures: [TokenLogprobs?] = []
        for proposers in [[], proposers] as [[any DraftProposer]] {
            let decoder = SpeculativeDecoder(target: target, proposers: proposers)
            var options = GenerationOptions(maxTokens: 60, budget: TreeBudget(maxNodes: 12, maxDepth: 6))
            options.logitProcessors = processors
            options.logprobs = 3
            let result = try await decoder.generateAll(prompt: prompt, options: options)
            #expect(result.tokens.map(\.token) == expected, "\(proposers.count) proposers")
            // Each token's log-probabilities come from the processed logits that chose it: the
            // same whether it was drafted and verified in a tree or decoded alone.
            let figures = result.tokens.map(\.logprobs)
            #expect(figures.allSatisfy { $0 != nil && $0!.top.count == 3 && $0!.top[0].logprob == $0!.logprob })
            if proposers.isEmpty { plainFigures = figures } else { #expect(figures == plainFigures) }
        }
    }

    @Test("a penalty counts the generated tokens and the path, never the prompt")
    func penaltyHistory() {
        var logits = [Float](repeating: 0, count: 6)
        RepetitionPenalty(frequency: 1, presence: 0.5).process(
            &logits, history: TokenHistory(committed: [2, 2, 3, 4], promptLength: 2, path: [4, 5]))
        #expect(logits == [0, 0, 0, -1.5, -2.5, -1.5])
    }

    @Test("llama.cpp's repeat penalty: distinct tokens of the last N of prompt, output and path, divided or multiplied")
    func windowRepeatPenalty() {
        var logits: [Float] = [2, -2, 2, 2, -1, 4]
        // The last 4 tokens: 3 (committed), then the path 1, 1, 5; token 0 is outside the window.
        WindowRepeatPenalty(penalty: 2, window: 4).process(
            &logits, history: TokenHistory(committed: [0, 2, 3], promptLength: 1, path: [1, 1, 5]))
        #expect(logits == [2, -4, 2, 1, -1, 2])
        var untouched: [Float] = [1, 2, 3]
        WindowRepeatPenalty(penalty: 2, window: 0).process(
            &untouched, history: TokenHistory(committed: [0, 1, 2], promptLength: 0))
        #expect(untouched == [1, 2, 3])
    }

    @Test("min-p removes the tokens below a fraction of the top probability, never the top one")
    func minP() {
        var logits: [Float] = [0, -1, -3, 0.5]
        MinP(0.1).process(&logits, history: TokenHistory(committed: [], promptLength: 0))
        // exp(-3 - 0.5) < 0.1 <= exp(-1 - 0.5)
        #expect(logits == [0, -1, -.infinity, 0.5])
    }

    @Test("log-probabilities: the logits less their log-sum-exp; the alternatives most likely first")
    func logprobs() {
        let figures = TokenLogprobs(token: 0, logits: [1, 2, 3, -.infinity], count: 2)
        let normalizer: Double = 3 + log(1 + exp(-1.0) + exp(-2.0))
        #expect(abs(figures.logprob - Float(1 - normalizer)) < 1e-6)
        #expect(figures.top.map(\.token) == [2, 1])
        #expect(abs(figures.top[0].logprob - Float(3 - normalizer)) < 1e-6)
        #expect(TokenLogprobs(token: 3, logits: [1, 2, 3, -.infinity], count: 0).logprob == -.infinity)
    }
}
