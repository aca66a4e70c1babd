import Foundation
import Speculate
import SpeculateServer

/// `speculate bench --concurrency 1,2,4,8`: several clients at once against the server's engine
/// (in process, no HTTP), each sending the whole set, for each strategy: aggregate
/// tokens/s (end to end, and decode alone: over each client's time after its prompts were read,
/// its stalls behind the others' prompts included), per-request latency (p50, p95), and whether every output
/// equals the single-client plain one. Greedy.
struct ConcurrencyBenchmark {
    let target: SpeculativeModel
    let strategies: [StrategySpec]
    let maxTokens: Int
    let levels: [Int]

    /// One strategy at one concurrency.
    struct Row {
        let strategy: String
        let clients: Int
        let tokens: Int
        let seconds: Double
        let promptSeconds: Double
        /// Each client's time decoding (its requests' time after their prompts were read),
        /// averaged over the clients.
        let decodeSeconds: Double
        let p50: Double
        let p95: Double
        let identical: Bool
        /// Tokens per target forward, and the share of decoding the requests spent drafting.
        let tokensPerForward: Double
        let draftShare: Double
        /// Shared target forwards: tokens each carried on average, milliseconds each took, and
        /// the share of the wall time spent in them (the rest: drafting, waiting, the clients).
        let forwardTokens: Double
        let forwardMilliseconds: Double
        let forwardShare: Double
        var aggregate: Double { Double(tokens) / seconds }
        var decodeAggregate: Double { Double(tokens) / max(1e-9, decodeSeconds) }
    }

    func run(prompts: [BenchPrompt], progress: (String) -> Void) async throws -> [Row] {
        let engine = try ServerEngine(
            modelName: "bench", model: target, draft: strategies.first?.strategy.draft ?? DraftSettings(),
            queueCapacity: prompts.count, parallel: levels.max() ?? 1,
            // Clients send the same prompts: reusing one's KV entries for another would time no
            // prompt reading at all at one client (the warm-up read them) and some at eight.
            reusesPrompts: false, checkProposers: { _ throws(APIError) in })
        let parser = RequestParser(
            modelName: "bench", defaults: StrategyRequest(proposers: []), context: target.context,
            vocabularySize: target.model.config.vocabularySize)
        var rows: [Row] = []
        var reference: [String]?
        let plain = try StrategySpec("none", defaults: strategies.first?.strategy ?? Strategy())
        for spec in [plain] + strategies.filter({ !$0.strategy.proposers.isEmpty }) {
            // Every slot builds the strategy's proposers (a draft model loads) before the clock starts.
            let slots = levels.max() ?? 1
            progress("\(spec.name): warming \(slots) slots")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<slots {
                    group.addTask {
                        _ = try await Self.request(
                            prompts[index % prompts.count], spec: spec, maxTokens: 8, engine: engine, parser: parser)
                    }
                }
                try await group.waitForAll()
            }
            for clients in levels {
                progress("\(spec.name) with \(clients) clients")
                let before = engine.batcher.figures
                let start = ContinuousClock.now
                let results = try await Self.clients(clients, prompts: prompts) { prompt in
                    try await Self.request(prompt, spec: spec, maxTokens: maxTokens, engine: engine, parser: parser)
                }
                let seconds = Self.seconds(ContinuousClock.now - start)
                let after = engine.batcher.figures
                if reference == nil {
                    reference = prompts.indices.map { index in results.first { $0.prompt == index }!.result.text }
                }
                let identical = results.allSatisfy { $0.result.text == reference?[$0.prompt] }
                let latencies = results.map(\.result.seconds).sorted()
                rows.append(
                    Row(
                        strategy: spec.name, clients: clients, tokens: results.reduce(0) { $0 + $1.result.tokens },
                        seconds: seconds, promptSeconds: after.promptSeconds - before.promptSeconds,
                        decodeSeconds: results.reduce(0) { $0 + $1.result.decodeSeconds } / Double(clients),
                        p50: latencies[latencies.count / 2],
                        p95: latencies[min(latencies.count - 1, Int((0.95 * Double(latencies.count - 1)).rounded()))],
                        identical: identical,
                        tokensPerForward: Double(results.reduce(0) { $0 + $1.result.tokens })
                            / Double(max(1, results.reduce(0) { $0 + $1.result.forwards })),
                        draftShare: results.reduce(0) { $0 + $1.result.proposeSeconds }
                            / max(1e-9, results.reduce(0) { $0 + $1.result.decodeSeconds }),
                        forwardTokens: Double(after.tokens - before.tokens)
                            / Double(max(1, after.forwards - before.forwards)),
                        forwardMilliseconds: 1000 * (after.seconds - before.seconds)
                            / Double(max(1, after.forwards - before.forwards)),
                        forwardShare: (after.seconds - before.seconds) / seconds))
            }
        }
        return rows
    }

    /// `count` clients, each sending every prompt of the set once, one after another, client c
    /// starting at prompt c * prompts / count (so the server sees a steady load of `count`
    /// requests until the last client's last one, rather than a set draining at its end).
    /// Returns every request's result with its prompt's index.
    private static func clients<Result: Sendable>(
        _ count: Int, prompts: [BenchPrompt], work: @escaping @Sendable (BenchPrompt) async throws -> Result
    ) async throws -> [(prompt: Int, result: Result)] {
        try await withThrowingTaskGroup(of: [(Int, Result)].self) { group in
            for client in 0..<count {
                group.addTask {
                    var done: [(Int, Result)] = []
                    for step in 0..<prompts.count {
                        let index = (client * prompts.count / count + step) % prompts.count
                        done.append((index, try await work(prompts[index])))
                    }
                    return done
                }
            }
            var all: [(prompt: Int, result: Result)] = []
            for try await part in group { all += part.map { (prompt: $0.0, result: $0.1) } }
            return all
        }
    }

    /// One request through the engine, as the server runs it.
    private static func request(
        _ prompt: BenchPrompt, spec: StrategySpec, maxTokens: Int, engine: ServerEngine, parser: RequestParser
    ) async throws -> RequestResult {
        var strategy: [String: Any] = [
            "proposers": spec.strategy.proposers, "max_nodes": spec.strategy.budget.maxNodes,
            "max_depth": spec.strategy.budget.maxDepth,
        ]
        let branching = spec.strategy.budget.branching
        if !branching.isEmpty { strategy["tree"] = branching.map(String.init).joined(separator: ",") }
        var body: [String: Any] = ["max_tokens": maxTokens, "temperature": 0, "speculate": strategy]
        if prompt.chat {
            body["messages"] = [["role": "user", "content": prompt.text]]
        } else {
            body["prompt"] = prompt.text
        }
        let data = try JSONSerialization.data(withJSONObject: body)
        let tokenizer = engine.tokenizer
        let job =
            prompt.chat
            ? try parser.chat(data) { (try? ChatFormat.text($0, tokenizer: tokenizer)) ?? "" }
            : try parser.completion(data)
        let start = ContinuousClock.now
        let prepared = try engine.prepare(job)
        try await engine.queue.reserve()
        var result = RequestResult()
        for try await event in engine.run(prepared) {
            if case .finished(let completion) = event {
                result.text = completion.text
                result.tokens = completion.completionTokens
                result.forwards = completion.statistics.targetForwards
                result.proposeSeconds = completion.statistics.proposeSeconds
                result.decodeSeconds = completion.statistics.decodeSeconds
            }
        }
        result.seconds = seconds(ContinuousClock.now - start)
        return result
    }

    /// What one request returned, and its figures.
    struct RequestResult: Sendable {
        var text = ""
        var tokens = 0
        var seconds = 0.0
        var forwards = 0
        var proposeSeconds = 0.0
        var decodeSeconds = 0.0
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// The table: one line per strategy and concurrency, speedups against plain with one client.
    static func table(_ rows: [Row]) -> String {
        let base = rows.first
        var lines = [
            "strategy                         clients  tok/s  decode tok/s  x plain-1 (decode)  p50 s   p95 s  tok/fwd  draft%  fwd tok  fwd ms  fwd%  identical"
        ]
        for row in rows {
            lines.append(
                String(
                    format: "%@ %7d %6.1f %13.1f %10.2fx (%5.2fx) %6.2f %7.2f %8.2f %6.0f%% %8.1f %7.1f %4.0f%%  %@",
                    row.strategy.padding(toLength: max(32, row.strategy.count), withPad: " ", startingAt: 0)
                        as NSString,
                    row.clients, row.aggregate, row.decodeAggregate,
                    row.aggregate / (base?.aggregate ?? 1), row.decodeAggregate / (base?.decodeAggregate ?? 1), row.p50,
                    row.p95, row.tokensPerForward, 100 * row.draftShare, row.forwardTokens, row.forwardMilliseconds,
                    100 * row.forwardShare, (row.identical ? "yes" : "NO") as NSString))
        }
        return lines.joined(separator: "\n")
    }
}
