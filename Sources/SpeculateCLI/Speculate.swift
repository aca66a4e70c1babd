import ArgumentParser

/// The `speculate` command: speculative decoding of GGUF models on the CPU.
@main
struct Speculate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speculate",
        abstract: "Speculative decoding of GGUF language models on the CPU.",
        discussion: """
            Cheap proposers guess several future tokens, the guesses are merged into one token \
            tree, and the target model checks the whole tree in one forward pass. Models are named \
            from the catalog (`speculate models list`) or given as paths to .gguf files.
            """,
        subcommands: [
            RunCommand.self, ServeCommand.self, BenchCommand.self, ProposersCommand.self, ModelsCommand.self,
            TokenizeCommand.self, DetokenizeCommand.self,
        ],
        defaultSubcommand: RunCommand.self)
}
