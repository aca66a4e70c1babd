import ArgumentParser
import Foundation
import Speculate
import Synchronization

/// Options that choose the models, proposers, tree and sampling (shared by `run` and `bench`).
struct StrategyOptions: ParsableArguments {
    @Option(help: "The target model: a catalog name or a .gguf path.")
    var target: String = ModelCatalog.defaultTarget

    @Option(name: .customLong("proposer"), help: ArgumentHelp(
        "A proposer; repeat for an ensemble. none | auto | ngram[:OPTIONS] | draft:NAME-or-PATH | retok:NAME-or-PATH | plugin:PATH-or-NAME[:OPTIONS].",
        discussion: "`none` is plain autoregressive decoding on the same runtime; `auto` lets the cost-model policy choose among the other proposers given (and n-gram lookup) every step, adding the target's paired draft model from the catalog when no draft is given (`auto:draft=none` leaves it out). `speculate proposers` lists them all.",
        valueName: "proposer"))
    var proposers: [String] = []

    @Option(help: ArgumentHelp("Per-depth branching of the tree, e.g. 2,2,1.", valueName: "k1,k2,..."))
    var tree: String?

    @Option(help: "Most drafted nodes in one tree.")
    var maxNodes: Int = 16

    @Option(help: "Longest draft (tree depth).")
    var draftLength: Int = 8

    @Option(help: ArgumentHelp("Draft models score only N rows of their output heads: the N most frequent tokens (FR-Spec), by the built-in ranking for Qwen2.5 vocabularies or by --draft-head-corpus, else the first N ids; 0 scores every token. Lossless either way. Default: 32768 ranked rows where a ranking exists, else all.",
                               valueName: "N"))
    var draftHead: Int?

    @Option(help: ArgumentHelp("Rank --draft-head's rows by token counts in this text file or directory (FR-Spec; counted once, cached) instead of the built-in ranking.",
                               valueName: "path"))
    var draftHeadCorpus: String?

    @Option(help: ArgumentHelp("Draft models' weights: requantized at load to 4.5 bits per weight (q4_k: faster drafting, output unchanged, slightly lower acceptance) or as in the file.",
                               valueName: "q4_k|file"))
    var draftWeights: WeightPrecision = .q4K

    @Option(help: ArgumentHelp("Stop a draft model's chain when its probability of the whole chain falls below P (0 = only the per-token confidence and --draft-length stop it).",
                               valueName: "P"))
    var draftStop: Float = ProposerEnvironment.defaultDraftStop

    @Option(help: ArgumentHelp("Evaluate up to N tokens guessed by n-gram lookup with each draft-model forward (0 = off); every guess the draft agrees with saves it a forward. Output unchanged.",
                               valueName: "N"))
    var draftLookahead: Int = DraftModelProposer.defaultLookahead

    @Option(help: "Verification: greedy, stochastic (SpecInfer), sequoia (without replacement) or typical (lossy).")
    var verify: String?

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Top-k filter (0 = off).")
    var topK: Int = 0

    @Option(help: "Top-p filter (1 = off).")
    var topP: Float = 1

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Tokens of context for the target (and drafts).")
    var context: Int = 4096

    @Option(help: "Compute threads (default: all CPUs).")
    var threads: Int?

    var sampling: SamplingSettings { SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed) }

    func validate() throws {
        guard (0...1).contains(draftStop) else { throw ValidationError("--draft-stop \(draftStop) is not a probability from 0 to 1") }
        guard draftLookahead >= 0 else { throw ValidationError("--draft-lookahead \(draftLookahead) is negative (0 turns it off)") }
    }

    func budget() throws -> TreeBudget {
        guard let tree else { return TreeBudget(maxNodes: maxNodes, maxDepth: draftLength) }
        guard let branching = TreeBudget.parseBranching(tree) else {
            throw ValidationError("--tree '\(tree)' is not a list of positive integers such as 2,2,1")
        }
        return TreeBudget(maxNodes: maxNodes, maxDepth: draftLength, tree: branching)
    }

    /// `--verify`, or nil to choose by temperature.
    func verification() throws -> VerificationMethod? {
        guard let verify else { return nil }
        guard let method = VerificationMethod(rawValue: verify) else {
            throw ValidationError("--verify '\(verify)' is not one of \(VerificationMethod.names.joined(separator: ", "))")
        }
        return method
    }

    /// The draft-model options.
    var draft: DraftSettings {
        DraftSettings(headRows: draftHead, headCorpus: draftHeadCorpus, weights: draftWeights, stop: draftStop, lookahead: draftLookahead)
    }

    /// The strategy these options describe (with `proposers` instead of `--proposer` when given).
    func strategy(proposers: [String]? = nil) throws -> Strategy {
        Strategy(proposers: proposers ?? self.proposers, budget: try budget(), verification: try verification(), draft: draft)
    }

    /// Applies `--threads` and `SPECULATE_KERNELS`, then loads the target (pulled when missing).
    func loadTarget(weights: WeightPrecision = .file) async throws -> SpeculativeModel {
        if let threads { ComputeThreads.set(threads) }
        try ComputeThreads.applyKernelOverride()
        return try await SpeculativeModel.load(target, context: context, weights: weights, progress: { ProgressDisplay().handle($0) })
    }
}

extension SpeculativeModel {
    /// The proposers of `strategy` (models pulled when missing), with the registry's spec errors
    /// as the command line's usage errors.
    func commandLineProposers(_ strategy: Strategy) async throws -> [any DraftProposer] {
        do {
            return try await proposers(for: strategy, progress: { ProgressDisplay().handle($0) })
        } catch let error as ProposerSpecError {
            throw ValidationError(error.description)
        } catch let error as TokenRankingError {
            throw ValidationError("--draft-head-corpus: \(error.description)")
        }
    }

    /// A generator of `strategy` with a KV cache of its own.
    func commandLineGenerator(_ strategy: Strategy) async throws -> SpeculativeGenerator {
        SpeculativeGenerator(model: self, strategy: strategy, proposers: try await commandLineProposers(strategy),
                             session: try InferenceSession(model: model, context: context))
    }
}

/// `speculate run`: generate text with a chosen strategy.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Generate text with speculative decoding (the default subcommand).",
        discussion: """
            The prompt comes from the argument, --file, or standard input. Examples:
              speculate "def fibonacci(n):"
              speculate run --proposer draft:qwen2.5-coder-0.5b-instruct --proposer ngram "def f(x):"
              speculate run --proposer none --max-tokens 64 --chat "Explain tree attention."
            """)

    @OptionGroup var strategy: StrategyOptions

    @Option(help: "Tokens to generate.")
    var maxTokens = 128

    @Option(help: "Stop when the output contains this text (repeatable).")
    var stop: [String] = []

    @Option(help: "Read the prompt from this file.")
    var file: String?

    @Flag(help: "Wrap the prompt in the model's chat format (ChatML).")
    var chat = false

    @Option(help: "System message for --chat.")
    var system: String?

    @Flag(help: "Print one JSON record (text, token ids, statistics) instead of streaming text.")
    var json = false

    @Flag(help: "Colour each token by the proposer that drafted it, under auto by the member (terminals only).")
    var showDrafts = false

    @Flag(help: "Keep generating past end-of-sequence tokens (for long runs and benchmarks; output is still the model's greedy or sampled choice).")
    var ignoreEos = false

    @Option(help: ArgumentHelp("Every N generated tokens, print a JSON line to standard error: tokens, decode seconds, tokens/s of the last N, resident memory (for soak runs).",
                               valueName: "N"))
    var progressEvery: Int?

    @Argument(help: "The prompt.")
    var prompt: String?

    func run() async throws {
        let text = try promptText()
        let model = try await strategy.loadTarget()
        let generator = try await model.commandLineGenerator(try strategy.strategy())
        var messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        messages.append(ChatMessage(role: "user", content: text))
        let prompt: Prompt = chat ? .chat(messages) : .text(text)
        let interrupted = InterruptFlag.installed()
        let parameters = GenerateParameters(maxTokens: maxTokens, sampling: strategy.sampling, stop: stop, ignoreEndOfSequence: ignoreEos,
                                            shouldStop: { interrupted.isSet })
        let colour = showDrafts && !json && isatty(STDOUT_FILENO) != 0
        var palette = Palette(names: generator.proposers.map(\.name))
        var allTokens: [Token] = []
        var outputText = ""
        var statistics = RunStatistics()
        var progress = progressEvery.map { SoakProgress(every: $0) }
        for try await event in generator.generate(prompt, parameters: parameters) {
            switch event {
            case let .tokens(tokens, pieces):
                allTokens += tokens.map(\.token)
                progress?.record(tokens: allTokens.count)
                outputText += pieces.map(\.text).joined()
                guard !json else { continue }
                for piece in pieces {
                    FileHandle.standardOutput.write(Data((colour ? palette.paint(piece.text, drafters: piece.drafters) : piece.text).utf8))
                }
            case let .finished(stats):
                statistics = stats
            case .step:
                break
            }
        }
        if json {
            let record: [String: Any] = [
                "text": outputText, "tokens": allTokens.map(Int.init), "prompt_tokens": model.tokens(of: prompt).count,
                "statistics": Summary.dictionary(statistics), "kernels": ComputeThreads.kernelName,
                "kernel_revision": ComputeThreads.kernelRevision,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
        } else {
            FileHandle.standardOutput.write(Data("\n".utf8))
            if colour { FileHandle.standardError.write(Data(palette.legend.utf8)) }
            FileHandle.standardError.write(Data(Summary.text(statistics).utf8))
            if let auto = generator.proposers.first as? AutoProposer { FileHandle.standardError.write(Data(Summary.text(auto.snapshot).utf8)) }
        }
    }

    func validate() throws {
        if let progressEvery, progressEvery < 1 { throw ValidationError("--progress-every must be at least 1 (got \(progressEvery))") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1 (got \(maxTokens))") }
    }

    private func promptText() throws -> String {
        if let prompt { return prompt }
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read --file '\(file)'") }
            return String(decoding: data, as: UTF8.self)
        }
        let input = readStandardInput()
        guard !input.isEmpty else { throw ValidationError("no prompt: give one as an argument, with --file, or on standard input") }
        return input
    }
}

/// `--progress-every`: one JSON line per N tokens on standard error, for soak runs (is memory
/// flat? how fast does speed decay as attention grows?).
struct SoakProgress {
    let every: Int
    private let start = ContinuousClock.now
    private var last = ContinuousClock.now
    private var reported = 0

    init(every: Int) { self.every = every }

    mutating func record(tokens: Int) {
        guard tokens >= reported + every else { return }
        let now = ContinuousClock.now
        let window = (now - last) / .seconds(1), elapsed = (now - start) / .seconds(1)
        var line: [String: Any] = ["tokens": tokens, "seconds": elapsed, "window_tokens_per_second": Double(tokens - reported) / window]
        if let resident = Self.residentBytes() { line["resident_mb"] = Double(resident) / 1_048_576 }
        if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
        reported = tokens
        last = now
    }

    /// Resident set size from /proc/self/statm (Linux); nil elsewhere.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Set by Ctrl-C so that generation stops cleanly at the next step and the summary still prints.
final class InterruptFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    /// A flag raised by the next SIGINT (the signal source lives for the rest of the process).
    static func installed() -> InterruptFlag {
        let result = InterruptFlag()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            result.flag.store(true, ordering: .relaxed)
            _ = source
        }
        source.resume()
        return result
    }

    /// Whether Ctrl-C was pressed.
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// The end-of-run summary.
enum Summary {
    static func text(_ s: RunStatistics) -> String {
        var lines = [String(format: "\n%d tokens in %.2f s (%.1f tokens/s; prompt %.2f s), %d target forwards, %.2f tokens per forward, stopped: %@",
                            s.generatedTokens, s.decodeSeconds, s.tokensPerSecond, s.prefillSeconds, s.targetForwards,
                            s.meanAcceptedPerForward, s.stopReason.rawValue)]
        for p in s.proposers {
            lines.append(String(format: "  %@: %d drafted, %d accepted (%.0f%%)%@", p.name, p.drafted, p.accepted, p.acceptanceRate * 100,
                                p.failures > 0 ? ", \(p.failures) skipped" : ""))
        }
        if s.verifySeconds + s.proposeSeconds > 0 {
            lines.append(String(format: "  time: %.0f%% drafting, %.0f%% verifying", 100 * s.proposeSeconds / (s.proposeSeconds + s.verifySeconds),
                                100 * s.verifySeconds / (s.proposeSeconds + s.verifySeconds)))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What the auto policy learned: its step-time estimate and each member's cost and acceptance.
    static func text(_ snapshot: AutoPolicySnapshot) -> String {
        let curve = snapshot.verificationCost
        var lines = [String(format: "  auto: %d of %d steps sent no draft; target step %.1f ms; %.1f tokens/s without costly members",
                            snapshot.plainSteps, snapshot.steps, snapshot.stepSeconds * 1000, snapshot.baseTokensPerSecond),
                     String(format: "    trees of 2/4/8/16 tokens priced at %.2f/%.2f/%.2f/%.2f single steps",
                            curve.relativeCost(2), curve.relativeCost(4), curve.relativeCost(8), curve.relativeCost(16))]
        for member in snapshot.members {
            let acceptance = member.acceptanceByDepth.prefix(4).map { String(format: "%.2f", $0) }.joined(separator: " ")
            lines.append(String(format: "    %@: asked %d times, %.1f ms per drafted depth, acceptance by depth %@%@", member.name, member.asked,
                                member.secondsPerDepth * 1000, acceptance,
                                member.tokensPerSecond > 0 ? String(format: ", %.1f tokens/s with it", member.tokensPerSecond) : ""))
            if let error = member.lastError {
                lines.append("      \(member.failures) drafts skipped; last: \(error)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func dictionary(_ s: RunStatistics) -> [String: Any] {
        [
            "generated_tokens": s.generatedTokens, "decode_seconds": s.decodeSeconds, "prefill_seconds": s.prefillSeconds,
            "tokens_per_second": s.tokensPerSecond, "target_forwards": s.targetForwards,
            "mean_accepted_length": s.meanAcceptedPerForward, "stop_reason": s.stopReason.rawValue,
            "acceptance_by_depth": s.acceptanceByDepth,
            "proposers": s.proposers.map { ["name": $0.name, "drafted": $0.drafted, "accepted": $0.accepted, "failures": $0.failures] },
            "proposer_errors": s.proposerErrors,
        ]
    }
}

/// Terminal colours for --show-drafts: one colour per drafter name (the proposers, and under
/// `auto` its members as their drafts appear), the first drafter of a token deciding.
struct Palette {
    static let colours = ["\u{1B}[32m", "\u{1B}[34m", "\u{1B}[35m", "\u{1B}[36m", "\u{1B}[33m"]
    static let reset = "\u{1B}[0m"
    /// Drafter names in the order they got their colours.
    private(set) var names: [String]

    init(names: [String]) { self.names = names }

    mutating func paint(_ text: String, drafters: [String]) -> String {
        guard let drafter = drafters.first else { return "\u{1B}[1m" + text + Self.reset }
        if !names.contains(drafter) { names.append(drafter) }
        return Self.colours[names.firstIndex(of: drafter)! % Self.colours.count] + text + Self.reset
    }

    var legend: String {
        var parts = ["\u{1B}[1mbold\(Self.reset) = target"]
        for (i, name) in names.enumerated() { parts.append(Self.colours[i % Self.colours.count] + name + Self.reset) }
        return "legend: " + parts.joined(separator: ", ") + "\n"
    }
}

extension WeightPrecision: ExpressibleByArgument {}
