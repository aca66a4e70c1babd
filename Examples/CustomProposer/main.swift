// Write a custom proposer in about twenty lines, register it under a name, and use it through
// the same `--proposer` syntax as the `speculate` command.
//
//   swift run -c release custom-proposer [proposer-spec ...]     (default: "brackets ngram")
import Foundation
import Speculate

/// Drafts the closing brackets code needs: after `(`, `[` or `{` with no closer yet, it proposes
/// the matching closer. Small, cheap, and right often enough in code to be worth a node.
struct BracketCloser: DraftProposer {
    let name = "brackets"
    let closers: [Token: Token]  // opener token -> closer token

    func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        var open: [Token] = []
        for token in context.tokens.suffix(64) {
            if let closer = closers[token] { open.append(closer) } else if open.last == token { open.removeLast() }
        }
        guard let closer = open.last, context.budget.maxDepth > 0 else { return [] }
        return [DraftCandidate.chain([closer], score: 0.3)]
    }
}

let store = ModelStore()
let target = try TransformerModel(path: try await store.resolveOrPull("smollm2-135m-instruct").path)
let tokenizer = try Tokenizer(gguf: target.file)

var registry = ProposerRegistry.standard
registry.register(ProposerFactory(name: "brackets", usage: "brackets", summary: "closes the innermost open bracket") { _, environment in
    let pairs = [("(", ")"), ("[", "]"), ("{", "}")].compactMap { open, close -> (Token, Token)? in
        guard let o = environment.targetTokenizer.id(of: open), let c = environment.targetTokenizer.id(of: close) else { return nil }
        return (o, c)
    }
    return BracketCloser(closers: Dictionary(uniqueKeysWithValues: pairs))
})

let specs = CommandLine.arguments.count > 1 ? Array(CommandLine.arguments.dropFirst()) : ["brackets", "ngram"]
let environment = ProposerEnvironment(targetName: "smollm2-135m-instruct", targetModel: target, targetTokenizer: tokenizer, context: 1024)
let proposers = try await registry.make(specs, environment: environment)
let decoder = SpeculativeDecoder(target: try InferenceSession(model: target, context: 1024), proposers: proposers)
let prompt = "def area(shape):\n    return shape.width * (shape.height"
let (tokens, statistics) = try await decoder.generateAll(prompt: tokenizer.encode(prompt), options: GenerationOptions(maxTokens: 48))
print(prompt + tokenizer.decode(tokens.map(\.token)))
for proposer in statistics.proposers {
    print("\(proposer.name): \(proposer.drafted) drafted, \(proposer.accepted) accepted")
}
