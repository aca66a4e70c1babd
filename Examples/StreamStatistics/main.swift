// Stream tokens as they are accepted, marking which proposer drafted each one, with a line of
// figures per decoding step and a per-proposer table at the end.
//
//   swift run -c release stream-statistics ["prompt"]
import Foundation
import Speculate

let prompt = CommandLine.arguments.dropFirst().first ?? "Write a Python function that reverses a linked list.\n"
let store = ModelStore()
let target = try TransformerModel(path: try await store.resolveOrPull("smollm2-135m-instruct").path)
let tokenizer = try Tokenizer(gguf: target.file)
let proposers: [any DraftProposer] = [NGramProposer(branches: 2), try DraftModelProposer(name: "self-draft", model: target, context: 1024, draftLength: 3)]
let decoder = SpeculativeDecoder(target: try InferenceSession(model: target, context: 1024), proposers: proposers)
let options = GenerationOptions(maxTokens: 64, stopTokens: tokenizer.stopIDs, tokenBytes: { tokenizer.bytes(of: $0) })

var step = 0
for try await event in decoder.generate(prompt: tokenizer.encode(prompt), options: options) {
    switch event {
    case let .tokens(tokens, text):
        // Each event carries the step's accepted tokens and the text they complete.
        // `drafters` names who drafted each token (under `auto`, the member); empty for the target's.
        let sources = tokens.map { $0.drafters.isEmpty ? "target" : $0.drafters.joined(separator: "+") }
        print("  text \(text.debugDescription) from [\(sources.joined(separator: ", "))]")
    case let .step(figures):
        step += 1
        print(String(format: "step %d: tree of %d nodes, %d accepted, draft %.1f ms, verify %.1f ms", step, figures.treeSize,
                     figures.acceptedLength, figures.proposeSeconds * 1000, figures.verifySeconds * 1000))
    case let .finished(statistics):
        print("\nproposer        drafted  accepted  rate")
        for proposer in statistics.proposers {
            print(proposer.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(format: "%7d  %8d  %4.0f%%", proposer.drafted, proposer.accepted, proposer.acceptanceRate * 100))
        }
        print(String(format: "%d tokens in %d target forwards (%.2f per forward), stopped: %@", statistics.generatedTokens,
                     statistics.targetForwards, statistics.meanAcceptedPerForward, statistics.stopReason.rawValue))
    }
}
