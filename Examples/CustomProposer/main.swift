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

var registry = ProposerRegistry.standard
registry.register(
    ProposerFactory(name: "brackets", usage: "brackets", summary: "closes the innermost open bracket") {
        _, environment in
        let pairs = [("(", ")"), ("[", "]"), ("{", "}")].compactMap { open, close -> (Token, Token)? in
            guard let o = environment.targetTokenizer.id(of: open), let c = environment.targetTokenizer.id(of: close)
            else { return nil }
            return (o, c)
        }
        return BracketCloser(closers: Dictionary(uniqueKeysWithValues: pairs))
    })

// The facade: the target loaded once, the strategy (spec strings, as `--proposer` takes them)
// built on it by the registry that knows the new kind.
let model = try await SpeculativeModel.load("smollm2-135m-instruct", context: 1024, registry: registry)
let specs = CommandLine.arguments.count > 1 ? Array(CommandLine.arguments.dropFirst()) : ["brackets", "ngram"]
let generator = try await model.generator(Strategy(proposers: specs))
let prompt = "def area(shape):\n    return shape.width * (shape.height"
var text = ""
var statistics = RunStatistics()
for try await event in generator.generate(
    .text(prompt), parameters: GenerateParameters(maxTokens: 48, ignoreEndOfSequence: true))
{
    switch event {
    case .tokens(_, let pieces): text += pieces.map(\.text).joined()
    case .finished(let figures): statistics = figures
    case .step: break
    }
}
print(prompt + text)
for proposer in statistics.proposers {
    print("\(proposer.name): \(proposer.drafted) drafted, \(proposer.accepted) accepted")
}
