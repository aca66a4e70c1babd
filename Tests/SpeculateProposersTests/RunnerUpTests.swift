import Foundation
import SpeculateCore
import SpeculateProposers
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// The draft model's runner-up leaves (``DraftContext/runnersUp``): its second choices beside its
/// chain, for `auto` to price.
@Suite("A draft model's runner-ups")
struct RunnerUpTests {
    @Test("the most likely tokens and their probabilities equal a sort and a float64 softmax")
    func mostLikely() {
        var random = SeededRandom(seed: 7)
        for trial in 0..<20 {
            let size = 1 + Int(random.next() % 5000)
            // Coarse logits so that ties occur: the earlier index comes first, as argmax picks it.
            let logits = (0..<size).map { _ in Float(Int(random.next() % 64)) / 4 - 8 }
            let count = 1 + trial % 3
            let total = logits.reduce(0.0) { $0 + exp(Double($1) - Double(logits.max()!)) }
            let expected = logits.indices.sorted { (logits[$0], -$0) > (logits[$1], -$1) }.prefix(count)
            let found = DraftModelProposer.mostLikely(logits, count: count)
            #expect(found.map { Int($0.token) } == Array(expected), "trial \(trial)")
            #expect(found.first.map { Int($0.token) } == argmax(logits))
            for (token, probability) in found {
                let reference = exp(Double(logits[Int(token)]) - Double(logits.max()!)) / total
                #expect(abs(Double(probability) - reference) < 1e-5 * max(1, reference), "trial \(trial)")
            }
        }
    }

    @Test("runner-ups come after the chain, each a leaf beside its position's token, the unlikely ones left out")
    func layout() {
        var draft = DraftCandidate(
            tokens: [10, 11, 12], parents: [-1, 0, 1], distributions: Array(repeating: .deterministic, count: 3),
            scores: [0.8, 0.4, 0.3])
        DraftModelProposer.addRunnersUp(
            [[(20, 0.15)], [(21, 0.01)], [(22, 0.2)]], to: &draft, maxNodes: 16)
        #expect(draft.tokens == [10, 11, 12, 20, 22])
        #expect(draft.parents == [-1, 0, 1, -1, 1])
        #expect(draft.scores[3] == 0.15 && abs(draft.scores[4] - 0.4 * 0.2) < 1e-7)
        #expect(draft.isWellFormed)
        var small = DraftCandidate(
            tokens: [10, 11], parents: [-1, 0], distributions: [.deterministic, .deterministic], scores: [0.8, 0.4])
        DraftModelProposer.addRunnersUp([[(20, 0.15)], [(21, 0.1)]], to: &small, maxNodes: 3)
        #expect(small.tokens == [10, 11, 20])
    }

    @Test("asked for runner-ups, the draft's chain is unchanged and each runner-up is its second choice there")
    func onARealModel() async throws {
        let model = try SharedModels.model("smollm2-135m-instruct")
        let tokenizer = try SharedModels.tokenizer("smollm2-135m-instruct")
        let prompt = tokenizer.encode("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n")
        func draft(runnersUp: Int) async throws -> DraftCandidate {
            let proposer = try DraftModelProposer(name: "draft", model: model, context: 512, draftLength: 8)
            let context = DraftContext(
                tokens: prompt, budget: TreeBudget(maxNodes: 24, maxDepth: 8), sampling: SamplingSettings(),
                remainingContext: 256, step: 0, runnersUp: runnersUp)
            return try #require(try await proposer.propose(context).first)
        }
        let chain = try await draft(runnersUp: 0)
        let withRunnersUp = try await draft(runnersUp: 1)
        #expect(chain.tokens.count >= 2)
        #expect(Array(withRunnersUp.tokens.prefix(chain.tokens.count)) == chain.tokens)
        #expect(
            withRunnersUp.onFirstChain == chain.tokens.map { _ in true }
                + Array(
                    repeating: false, count: withRunnersUp.tokens.count - chain.tokens.count))
        #expect(withRunnersUp.tokens.count > chain.tokens.count)
        // Each runner-up against the second choice of the draft's own logits after its parent path.
        for index in chain.tokens.count..<withRunnersUp.tokens.count {
            let position = withRunnersUp.parents[index] + 1
            let session = try InferenceSession(model: model, context: 512)
            let logits = try session.append(prompt + chain.tokens.prefix(position))
            let second = logits.indices.filter { $0 != Int(chain.tokens[position]) }.max {
                (logits[$0], -$0) < (logits[$1], -$1)
            }
            #expect(Int(withRunnersUp.tokens[index]) == second, "position \(position)")
        }
    }
}
