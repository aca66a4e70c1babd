import ArgumentParser
import Speculate

/// Penalties and filters of the target's scores for `run` and `bench`, as the server's request
/// fields give them: applied inside verification, so speculative output stays plain output.
struct LogitShapingOptions: ParsableArguments {
    @Option(help: "OpenAI's frequency penalty, -2 to 2: subtracted once per earlier use of a token in the output.")
    var frequencyPenalty: Float = 0

    @Option(help: "OpenAI's presence penalty, -2 to 2: subtracted from every token the output has used.")
    var presencePenalty: Float = 0

    @Option(help: "llama.cpp's repeat penalty (1 = off): divides the scores of the last --repeat-last-n tokens.")
    var repeatPenalty: Float = 1

    @Option(help: "Tokens of prompt and output that --repeat-penalty looks back over.")
    var repeatLastN: Int = 64

    @Option(help: "Min-p filter (0 = off): drop tokens below this fraction of the top probability.")
    var minP: Float = 0

    func validate() throws {
        for (flag, value) in [("--frequency-penalty", frequencyPenalty), ("--presence-penalty", presencePenalty)]
        where !(-2...2).contains(value) {
            throw ValidationError("\(flag) \(value) is outside -2...2")
        }
        guard repeatPenalty > 0, repeatPenalty <= 10 else {
            throw ValidationError("--repeat-penalty \(repeatPenalty) is outside (0, 10]")
        }
        guard repeatLastN >= 0 else { throw ValidationError("--repeat-last-n \(repeatLastN) is negative") }
        guard (0...1).contains(minP) else { throw ValidationError("--min-p \(minP) is outside 0...1") }
    }

    /// The processors the flags ask for (none by default).
    var processors: [any LogitProcessor] {
        var shaping = LogitShaping()
        shaping.frequencyPenalty = frequencyPenalty
        shaping.presencePenalty = presencePenalty
        shaping.repeatPenalty = repeatPenalty
        shaping.repeatWindow = repeatLastN
        shaping.minP = minP
        return shaping.processors
    }
}
