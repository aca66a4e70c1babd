// Stream tokens as they are accepted, marking which proposer drafted each one, with a line of
// figures per decoding step and a per-proposer table at the end.
//
//   swift run -c release stream-statistics ["prompt"]
import Foundation
import Speculate

let prompt = CommandLine.arguments.dropFirst().first ?? "Write a Python function that reverses a linked list.\n"
let model = try await SpeculativeModel.load("smollm2-135m-instruct", context: 1024)
// Proposers of your own go straight into a generator beside the target's session.
let proposers: [any DraftProposer] = [
    NGramProposer(branches: 2),
    try DraftModelProposer(name: "self-draft", model: model.model, context: 1024, draftLength: 3),
]
let generator = SpeculativeGenerator(
    model: model, strategy: Strategy(), proposers: proposers,
    session: try InferenceSession(model: model.model, context: model.context))

var step = 0
for try await event in generator.generate(.text(prompt), parameters: GenerateParameters(maxTokens: 64)) {
    switch event {
    case .tokens(let tokens, let text):
        // Each event carries the step's accepted tokens and the text released with them.
        // `drafters` names who drafted each token (under `auto`, the member); empty for the target's.
        let sources = tokens.map { $0.drafters.isEmpty ? "target" : $0.drafters.joined(separator: "+") }
        print("  text \(text.map(\.text).joined().debugDescription) from [\(sources.joined(separator: ", "))]")
    case .step(let figures):
        step += 1
        print(
            String(
                format: "step %d: tree of %d nodes, %d accepted, draft %.1f ms, verify %.1f ms", step, figures.treeSize,
                figures.acceptedLength, figures.proposeSeconds * 1000, figures.verifySeconds * 1000))
    case .finished(let statistics):
        print("\nproposer        drafted  accepted  rate")
        for proposer in statistics.proposers {
            print(
                proposer.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(
                        format: "%7d  %8d  %4.0f%%", proposer.drafted, proposer.accepted, proposer.acceptanceRate * 100)
            )
        }
        print(
            String(
                format: "%d tokens in %d target forwards (%.2f per forward), stopped: %@", statistics.generatedTokens,
                statistics.targetForwards, statistics.meanAcceptedPerForward, statistics.stopReason.rawValue))
    }
}
