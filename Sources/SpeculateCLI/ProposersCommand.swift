import ArgumentParser

/// `speculate proposers`: the built-in proposers and their options.
struct ProposersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proposers",
        abstract: "List the built-in proposers and the options that shape them.")

    func run() async throws {
        print("Built-in proposers (use with --proposer; repeat for an ensemble):")
        for (name, text) in ProposerFactory.descriptions {
            print("  " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + text)
        }
        print("""

            Options that shape every proposer's drafts:
              --tree k1,k2,...   per-depth branching of the merged tree (SpecInfer's <k1,k2,...>)
              --max-nodes N      most drafted nodes per step
              --draft-length N   longest draft (tree depth)
              --verify MODE      greedy | stochastic | sequoia | typical (lossy)
            """)
    }
}
