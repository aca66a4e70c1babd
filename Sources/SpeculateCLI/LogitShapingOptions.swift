import ArgumentParser
import Foundation
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

    @Option(
        help: ArgumentHelp(
            "Constrain the output to JSON that this JSON Schema file allows (objects, arrays, strings, numbers, booleans, null, enum, const, anyOf, required, $ref).",
            valueName: "file"))
    var jsonSchema: String?

    @Flag(help: "Constrain the output to one JSON object (OpenAI's json_object mode).")
    var jsonObject = false

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
        if jsonSchema != nil, jsonObject { throw ValidationError("give --json-schema or --json-object, not both") }
        _ = try grammar
    }

    /// The grammar the flags ask for, if any.
    var grammar: JSONGrammar? {
        get throws {
            if jsonObject { return .anyObject }
            guard let path = jsonSchema else { return nil }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--json-schema: cannot read '\(path)'")
            }
            do { return try JSONGrammar(schema: JSONValue(parsing: data)) } catch {
                throw ValidationError("--json-schema '\(path)': \(error.message)")
            }
        }
    }

    /// The processors the flags ask for on `model` (the grammar's constraint first).
    func processors(for model: SpeculativeModel) throws -> [any LogitProcessor] {
        guard let grammar = try grammar else { return processors }
        // The grammar first, so that min-p judges only the tokens it allows.
        do { return [try model.constraint(grammar)] + processors } catch {
            throw ValidationError("\(model.name) cannot spell JSON output: \(error.message)")
        }
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
