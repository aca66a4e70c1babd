import ArgumentParser
import Foundation
import Speculate
import Synchronization

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
    @OptionGroup var shaping: LogitShapingOptions

    @Option(help: "Tokens to generate.")
    var maxTokens = 128

    @Option(help: "Stop when the output contains this text (repeatable).")
    var stop: [String] = []

    @Option(help: "Read the prompt from this file.")
    var file: String?

    @Flag(help: "Wrap the prompt in the model's own chat format (from its tokenizer.chat_template).")
    var chat = false

    @Option(help: "System message for --chat.")
    var system: String?

    @Flag(help: "Print one JSON record (text, token ids, statistics) instead of streaming text.")
    var json = false

    @Flag(help: "Colour each token by the proposer that drafted it, under auto by the member (terminals only).")
    var showDrafts = false

    @Flag(
        help:
            "Keep generating past end-of-sequence tokens (for long runs and benchmarks; output is still the model's greedy or sampled choice)."
    )
    var ignoreEos = false

    @Option(
        help: ArgumentHelp(
            "Every N generated tokens, print a JSON line to standard error: tokens, decode seconds, tokens/s of the last N, resident memory (for soak runs).",
            valueName: "N"))
    var progressEvery: Int?

    @Argument(help: "The prompt.")
    var prompt: String?

    func run() async throws {
        let text = try promptText()
        let model = try await strategy.loadTarget()
        if chat, case .failure(let reason) = model.tokenizer.chatFormat {
            // A format the model was not trained on would be a prompt it never saw.
            throw ValidationError("--chat: \(model.name): \(reason)")
        }
        let generator = try await model.commandLineGenerator(try strategy.strategy())
        var messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        messages.append(ChatMessage(role: "user", content: text))
        let prompt: Prompt = chat ? .chat(messages) : .text(text)
        let interrupted = InterruptFlag.installed()
        let parameters = GenerateParameters(
            maxTokens: maxTokens, sampling: strategy.sampling, stop: stop, ignoreEndOfSequence: ignoreEos,
            logitProcessors: try shaping.processors(for: model), shouldStop: { interrupted.isSet })
        let colour = showDrafts && !json && isatty(STDOUT_FILENO) != 0
        var palette = Palette(names: generator.proposers.map(\.name))
        var allTokens: [Token] = []
        var outputText = ""
        var statistics = RunStatistics()
        var progress = progressEvery.map { SoakProgress(every: $0) }
        for try await event in generator.generate(prompt, parameters: parameters) {
            switch event {
            case .tokens(let tokens, let pieces):
                allTokens += tokens.map(\.token)
                progress?.record(tokens: allTokens.count)
                outputText += pieces.map(\.text).joined()
                guard !json else { continue }
                for piece in pieces {
                    FileHandle.standardOutput.write(
                        Data((colour ? palette.paint(piece.text, drafters: piece.drafters) : piece.text).utf8))
                }
            case .finished(let stats):
                statistics = stats
            case .step:
                break
            }
        }
        if json {
            let record: [String: Any] = [
                "text": outputText, "tokens": allTokens.map(Int.init),
                "prompt_tokens": try model.tokens(of: prompt).count,
                "statistics": Summary.dictionary(statistics), "kernels": ComputeThreads.kernelName,
                "kernel_revision": ComputeThreads.kernelRevision,
            ]
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self)
            )
        } else {
            FileHandle.standardOutput.write(Data("\n".utf8))
            if colour { FileHandle.standardError.write(Data(palette.legend.utf8)) }
            FileHandle.standardError.write(Data(Summary.text(statistics).utf8))
            if let auto = generator.proposers.first as? AutoProposer {
                FileHandle.standardError.write(Data(Summary.text(auto.snapshot).utf8))
            }
        }
    }

    func validate() throws {
        if let progressEvery, progressEvery < 1 {
            throw ValidationError("--progress-every must be at least 1 (got \(progressEvery))")
        }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1 (got \(maxTokens))") }
    }

    private func promptText() throws -> String {
        if let prompt { return prompt }
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read --file '\(file)'")
            }
            return String(decoding: data, as: UTF8.self)
        }
        let input = readStandardInput()
        guard !input.isEmpty else {
            throw ValidationError("no prompt: give one as an argument, with --file, or on standard input")
        }
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
        let window = (now - last) / .seconds(1)
        let elapsed = (now - start) / .seconds(1)
        var line: [String: Any] = [
            "tokens": tokens, "seconds": elapsed, "window_tokens_per_second": Double(tokens - reported) / window,
        ]
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
