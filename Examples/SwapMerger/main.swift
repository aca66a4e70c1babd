// Swap the tree merger: compare the default (a trie of every proposer's drafts, pruned by score)
// with a merger that keeps only the single best-scored chain, as single-draft systems do.
// Greedy output is identical either way; tokens per target forward show what merging buys.
//
//   swift run -c release swap-merger
import Foundation
import Speculate

/// Keeps the one candidate whose first node scores best, as a chain, cut to the budget.
struct BestChainMerger: TreeMerger {
    func merge(_ candidates: [(proposer: Int, candidate: DraftCandidate)], budget: TreeBudget) -> TokenTree {
        var tree = TokenTree()
        guard
            let best = candidates.filter({ $0.candidate.isWellFormed && !$0.candidate.tokens.isEmpty })
                .max(by: { $0.candidate.scores[0] < $1.candidate.scores[0] })
        else { return tree }
        var parent = -1
        for index in best.candidate.tokens.indices where best.candidate.parents[index] == index - 1 {
            guard tree.count < min(budget.maxNodes, budget.maxDepth) else { break }
            let attempt = DraftAttempt(
                proposer: best.proposer, distribution: best.candidate.distributions[index], sequence: index)
            parent = tree.addNode(
                token: best.candidate.tokens[index], parent: parent, score: best.candidate.scores[index],
                attempts: [attempt])
        }
        return tree
    }
}

let store = ModelStore()
let target = try TransformerModel(path: try await store.resolveOrPull("smollm2-135m-instruct").path)
let tokenizer = try Tokenizer(gguf: target.file)
let prompt = tokenizer.encode(
    "def bubble_sort(items):\n    for i in range(len(items)):\n        for j in range(len(items) - i - 1):\n")
var outputs: [[Token]] = []
for (label, merger) in [("trie of all drafts", ScoreRankedMerger()), ("best chain only", BestChainMerger())]
    as [(String, any TreeMerger)]
{
    let proposers: [any DraftProposer] = [
        NGramProposer(branches: 3), try DraftModelProposer(name: "draft", model: target, context: 1024, draftLength: 4),
    ]
    let decoder = SpeculativeDecoder(
        target: try InferenceSession(model: target, context: 1024), proposers: proposers, merger: merger)
    let (tokens, statistics) = try await decoder.generateAll(
        prompt: prompt, options: GenerationOptions(maxTokens: 64, budget: TreeBudget(maxNodes: 12, maxDepth: 4)))
    outputs.append(tokens.map(\.token))
    print(
        String(
            format: "%@: %.2f tokens per target forward, %.1f tokens/s", label, statistics.meanAcceptedPerForward,
            statistics.tokensPerSecond))
}
print("identical output: \(outputs[0] == outputs[1])")
