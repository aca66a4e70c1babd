// Compose a speculative decoder from the library: a target model, two proposers (a draft model
// and n-gram lookup), a merger and a verifier, then generate.
//
//   swift run -c release compose-decoder ["prompt"]
//
// Models come from the catalog (pulled on first use). The default pair is the real one:
// Qwen2.5-Coder-1.5B-Instruct verifying drafts of Qwen2.5-Coder-0.5B-Instruct.
import Foundation
import Speculate

let prompt = CommandLine.arguments.dropFirst().first ?? "def is_prime(n: int) -> bool:\n"
let store = ModelStore()
let target = try TransformerModel(path: try await store.resolveOrPull("qwen2.5-coder-1.5b-instruct").path)
let draft = try TransformerModel(path: try await store.resolveOrPull("qwen2.5-coder-0.5b-instruct").path)
let tokenizer = try Tokenizer(gguf: target.file)

// Every piece is a protocol; these are the built-in conformances.
let proposers: [any DraftProposer] = [
    try DraftModelProposer(name: "draft", model: draft, context: 2048, draftLength: 4),
    NGramProposer(maxN: 4, minN: 1, branches: 2),
]
let decoder = SpeculativeDecoder(
    target: try InferenceSession(model: target, context: 2048), proposers: proposers,
    merger: ScoreRankedMerger(), verifier: GreedyVerifier())

let options = GenerationOptions(
    maxTokens: 96, budget: TreeBudget(maxNodes: 8, maxDepth: 4), stopTokens: tokenizer.stopIDs)
let (tokens, statistics) = try await decoder.generateAll(prompt: tokenizer.encode(prompt), options: options)
print(prompt + tokenizer.decode(tokens.map(\.token), skipControl: true))
print(
    String(
        format: "\n%d tokens, %.1f tokens/s, %.2f tokens per target forward", statistics.generatedTokens,
        statistics.tokensPerSecond, statistics.meanAcceptedPerForward))
