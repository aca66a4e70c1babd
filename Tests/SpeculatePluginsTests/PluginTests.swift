import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateProposers
import SpeculateRuntime
import SpeculateStrategies
import SpeculateTestSupport
import Synchronization
import Testing

/// Locates the example plugins `swift build` put next to the test binary, and builds the broken
/// ones from Tests/Reference/broken_plugin.c with the system C compiler.
enum PluginFixtures {
    static func example(_ product: String) throws -> String {
        let file = "lib\(product).so"
        let binaryDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [
            binaryDirectory, binaryDirectory.deletingLastPathComponent(),
            TestSupport.packageRoot.appendingPathComponent(".build/release"),
        ]
        .map { $0.appendingPathComponent(file).path }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw HarnessError(
                "\(file) not found (looked in \(candidates)); build the package first: swift build -c release")
        }
        return path
    }

    /// Each variant is compiled once per test process.
    static func broken(variant: Int) throws -> String {
        try brokenBuilds.withLock { builds in
            if let path = builds[variant] { return path }
            let path = try compileBroken(variant: variant)
            builds[variant] = path
            return path
        }
    }
    private static let brokenBuilds = Mutex<[Int: String]>([:])

    private static func compileBroken(variant: Int) throws -> String {
        let folder = try TestSupport.temporaryFolder()
        let output = folder.appendingPathComponent("libbroken\(variant).so").path
        let root = TestSupport.packageRoot.path
        _ = try TestSupport.runProcess(
            "/usr/bin/env",
            [
                "cc", "-shared", "-fPIC", "-O1", "-DVARIANT=\(variant)",
                "-I", root + "/Plugins/ABI/include", root + "/Tests/Reference/broken_plugin.c",
                "-o", output, "-lm",
            ])
        return output
    }
}

/// Where a test runs a plugin: loaded into the test process, or in a `speculate-plugin-host`.
enum PluginMode: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inProcess = "in process"
    case hosted = "in a plugin host process"

    var testDescription: String { rawValue }

    /// The modes the decoding tests run: both, unless `SPECULATE_TEST_PLUGIN_MODES=in-process`
    /// (.ci/sanitizers: under ThreadSanitizer a hosted plugin's threads are the parent's output
    /// reader, which `PluginHostTests` covers, and decoding the model twice under TSan's
    /// instrumented kernels costs most of a minute).
    static var tested: [PluginMode] {
        ProcessInfo.processInfo.environment["SPECULATE_TEST_PLUGIN_MODES"] == "in-process" ? [.inProcess] : allCases
    }

    func proposer(_ path: String, options: String = "", vocabulary: PluginVocabulary) throws(PluginError)
        -> any DraftProposer
    {
        switch self {
        case .inProcess: return try PluginLibrary(path: path).makeProposer(options: options, vocabulary: vocabulary)
        case .hosted: return try HostedPluginProposer(path: path, options: options, vocabulary: vocabulary)
        }
    }

    func describe(_ path: String) throws(PluginError) -> PluginDescription {
        switch self {
        case .inProcess: return try PluginLibrary(path: path).description
        case .hosted: return try HostedPluginProposer.describe(path: path)
        }
    }
}

@Suite("Proposer plugins", .serialized)
struct PluginTests {
    static let model = Result { try SharedModels.model("smollm2-135m-instruct") }

    static func vocabulary(_ tokenizer: Tokenizer) -> PluginVocabulary {
        PluginVocabulary(
            size: tokenizer.vocabularySize, tokenize: { tokenizer.encode($0) },
            tokenBytes: { tokenizer.contains($0) ? tokenizer.bytes(of: $0) : nil })
    }

    static func decode(
        _ model: TransformerModel, _ prompt: [Token], _ proposers: [any DraftProposer], maxTokens: Int = 32
    ) async throws -> ([Token], RunStatistics) {
        let decoder = SpeculativeDecoder(target: try InferenceSession(model: model, context: 512), proposers: proposers)
        let (tokens, stats) = try await decoder.generateAll(
            prompt: prompt, options: GenerationOptions(maxTokens: maxTokens))
        return (tokens.map(\.token), stats)
    }

    @Test("libraries that are not valid plugins are refused with a clear error", arguments: PluginMode.tested)
    func loaderRefusesBrokenLibraries(mode: PluginMode) throws {
        func refusal(_ variant: Int) throws -> PluginError? {
            let path = try PluginFixtures.broken(variant: variant)
            do {
                _ = try mode.describe(path)
                return nil
            } catch { return error }
        }
        guard case .missingEntryPoint? = try refusal(1) else {
            Issue.record("no entry point accepted")
            return
        }
        guard case .nullTable? = try refusal(2) else {
            Issue.record("null table accepted")
            return
        }
        guard case .unsupportedVersion(_, let found, let supported)? = try refusal(3) else {
            Issue.record("version 99 accepted")
            return
        }
        #expect(found == 99 && supported == 1)
        guard case .truncatedTable? = try refusal(4) else {
            Issue.record("short table accepted")
            return
        }
        guard case .invalidTable(_, let problem)? = try refusal(5) else {
            Issue.record("null create accepted")
            return
        }
        #expect(problem.contains("create"))
        guard case .invalidTable? = try refusal(6) else {
            Issue.record("bad name accepted")
            return
        }
        do {
            _ = try mode.describe("/nonexistent/libnothing.so")
            Issue.record("missing file accepted")
        } catch {
            guard case .cannotOpen = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(error.description.contains("/nonexistent/libnothing.so"))
        }
    }

    @Test(
        "a plugin that refuses its options or returns no instance gives a creation error",
        arguments: PluginMode.tested)
    func creationFailures(mode: PluginMode) throws {
        let model = try Self.model.get()
        let vocabulary = Self.vocabulary(try Tokenizer(gguf: model.file))
        let path = try PluginFixtures.broken(variant: 0)
        do {
            _ = try mode.proposer(path, options: "mode=refuse", vocabulary: vocabulary)
            Issue.record("refusal ignored")
        } catch {
            #expect(error == .creationFailed(plugin: "broken", code: 7, message: "refused on purpose"))
        }
        do {
            _ = try mode.proposer(path, options: "mode=null-instance", vocabulary: vocabulary)
            Issue.record("null instance accepted")
        } catch {
            guard case .creationFailed = error else {
                Issue.record("wrong error \(error)")
                return
            }
        }
    }

    @Test(
        "every kind of bad draft is skipped with a reason, and the output stays plain greedy",
        arguments: PluginMode.tested)
    func badDraftsAreSkipped(pluginMode: PluginMode) async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let path = try PluginFixtures.broken(variant: 0)
        let prompt = tokenizer.encode("def add(a, b):\n    return a + b\n\ndef sub(a, b):\n")
        // Twelve tokens: several steps, each of which asks the plugin (these run under ThreadSanitizer too).
        let (plain, _) = try await Self.decode(model, prompt, [], maxTokens: 12)
        let expectations = [
            "error": "failed on purpose", "tokens": "outside the vocabulary", "parents": "parent",
            "count": "count", "nan": "non-finite", "probability": "probability",
        ]
        for (mode, reason) in expectations.sorted(by: { $0.key < $1.key }) {
            let proposer = try pluginMode.proposer(
                path, options: "mode=\(mode)", vocabulary: Self.vocabulary(tokenizer))
            let (output, stats) = try await Self.decode(model, prompt, [proposer], maxTokens: 12)
            #expect(output == plain, "mode \(mode) changed the output")
            #expect(stats.proposers[0].failures > 0, "mode \(mode) was not reported")
            #expect(
                stats.proposerErrors.contains { $0.contains("plugin broken") && $0.contains(reason) },
                "mode \(mode): \(stats.proposerErrors.first ?? "no errors")")
        }
        // A well-behaved draft from the same library goes through.
        let good = try pluginMode.proposer(path, options: "mode=good", vocabulary: Self.vocabulary(tokenizer))
        let (output, stats) = try await Self.decode(model, prompt, [good], maxTokens: 12)
        #expect(output == plain)
        #expect(stats.proposers[0].failures == 0 && stats.proposers[0].drafted > 0)
    }

    @Test(
        "a plugin that hangs or answers too late is dropped for the run after its time limit, and the output stays plain greedy"
    )
    func hangingPluginIsDropped() async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let library = try PluginLibrary(path: try PluginFixtures.broken(variant: 0))
        let prompt = tokenizer.encode("def add(a, b):\n    return a + b\n\ndef sub(a, b):\n")
        // Twelve tokens: several steps, each of which asks the plugin (these run under ThreadSanitizer too).
        let (plain, _) = try await Self.decode(model, prompt, [], maxTokens: 12)
        for mode in ["hang", "slow"] {
            let proposer = try library.makeProposer(
                options: "mode=\(mode)", vocabulary: Self.vocabulary(tokenizer), timeLimit: 0.1)
            let (output, stats) = try await Self.decode(model, prompt, [proposer], maxTokens: 12)
            #expect(output == plain, "mode \(mode) changed the output")
            #expect(
                stats.proposerErrors.first?.contains("did not return from propose within 0.1 s") == true,
                "\(mode): \(stats.proposerErrors)")
            #expect(
                stats.proposerErrors.dropFirst().allSatisfy { $0.contains("was dropped") }, "later calls fail at once")
            #expect(stats.proposers[0].drafted == 0)
        }
        // Within the limit the same slow plugin is used normally.
        let patient = try library.makeProposer(
            options: "mode=slow", vocabulary: Self.vocabulary(tokenizer), timeLimit: 5)
        let (output, stats) = try await Self.decode(model, prompt, [patient], maxTokens: 12)
        #expect(output == plain)
        #expect(stats.proposers[0].failures == 0 && stats.proposers[0].drafted > 0)
    }

    @Test("a draft deeper than the budget is refused", arguments: PluginMode.tested)
    func tooDeep(mode: PluginMode) async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let proposer = try mode.proposer(
            try PluginFixtures.broken(variant: 0), options: "mode=depth", vocabulary: Self.vocabulary(tokenizer))
        let context = DraftContext(
            tokens: [1, 2, 3], budget: TreeBudget(maxNodes: 8, maxDepth: 2), sampling: .greedy,
            remainingContext: 100, step: 0)
        await #expect(throws: PluginError.self) { _ = try await proposer.propose(context) }
    }

    @Test(
        "the C example (line-echo) continues a line like the earlier ones and stays lossless",
        arguments: PluginMode.tested)
    func lineEcho(mode: PluginMode) async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let path = try PluginFixtures.example("SpeculateLineEcho")
        #expect(try mode.describe(path).name == "line-echo")
        let proposer = try mode.proposer(path, options: "branches=2,max=10", vocabulary: Self.vocabulary(tokenizer))
        let text =
            "class P:\n    def __init__(self, alpha, beta, gamma):\n        self.alpha = alpha\n        self.beta = beta\n        self."
        let context = DraftContext(
            tokens: tokenizer.encode(text), budget: TreeBudget(maxNodes: 16, maxDepth: 8), sampling: .greedy,
            remainingContext: 100, step: 0)
        let drafts = try await proposer.propose(context)
        var firstBranch: [Token] = []  // the first chain: nodes while each follows the previous one
        for (index, token) in (drafts.first?.tokens ?? []).enumerated() {
            guard drafts[0].parents[index] == index - 1 else { break }
            firstBranch.append(token)
        }
        let continuation = tokenizer.decode(firstBranch)
        #expect(
            continuation == "beta = beta\n" || continuation.hasPrefix("beta = beta\n"),
            "drafted \(continuation.debugDescription)")
        let prompt = tokenizer.encode("def f(a, b, c):\n    x_a = a * 2\n    x_b = b * 2\n")
        let (plain, _) = try await Self.decode(model, prompt, [], maxTokens: 48)
        let (output, stats) = try await Self.decode(
            model, prompt, [try mode.proposer(path, vocabulary: Self.vocabulary(tokenizer))], maxTokens: 48)
        #expect(output == plain)
        #expect(stats.proposers[0].failures == 0)
    }

    @Test(
        "the Swift example (suffix-match) predicts a corpus passage exactly and stays lossless",
        arguments: PluginMode.tested)
    func suffixMatch(mode: PluginMode) async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let corpus = try TestSupport.temporaryFolder().appendingPathComponent("corpus.txt")
        let passage = "The quick brown fox jumps over the lazy dog while the scheduler rebalances every queue twice."
        try Data(("Unrelated text first.\n" + passage + "\nMore unrelated text.").utf8).write(to: corpus)
        let path = try PluginFixtures.example("SpeculateSuffixMatch")
        #expect(try mode.describe(path).name == "suffix-match")
        let proposer = try mode.proposer(
            path, options: "corpus=\(corpus.path),min=2,max=8", vocabulary: Self.vocabulary(tokenizer))
        let passageTokens = tokenizer.encode(passage)
        let context = DraftContext(
            tokens: Array(passageTokens.prefix(6)), budget: TreeBudget(maxNodes: 16, maxDepth: 8), sampling: .greedy,
            remainingContext: 100, step: 0)
        let drafts = try await proposer.propose(context)
        #expect(drafts.first.map { Array($0.tokens.prefix(8)) } == Array(passageTokens[6..<14]))
        do {
            _ = try mode.proposer(
                path, options: "corpus=/nonexistent/corpus.txt", vocabulary: Self.vocabulary(tokenizer))
            Issue.record("missing corpus accepted")
        } catch {
            #expect(error.description.contains("/nonexistent/corpus.txt"))
        }
        let prompt = tokenizer.encode("Repeat exactly: " + passage + "\nAgain: The quick brown")
        let (plain, _) = try await Self.decode(model, prompt, [], maxTokens: 40)
        let (output, stats) = try await Self.decode(
            model, prompt, [try mode.proposer(path, vocabulary: Self.vocabulary(tokenizer))], maxTokens: 40)
        #expect(output == plain)
        #expect(stats.acceptedDrafts > 0, "no suffix-match draft accepted")
    }

    @Test("the registry builds plugins, n-gram options and auto from --proposer syntax, and explains mistakes")
    func registry() async throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let environment = ProposerEnvironment(
            targetName: "smollm2-135m-instruct", targetModel: model, targetTokenizer: tokenizer,
            context: 512, resolveModel: { URL(fileURLWithPath: try TestSupport.modelPath($0)) })
        let registry = ProposerRegistry.standard
        let path = try PluginFixtures.example("SpeculateLineEcho")
        let built = try await registry.make(
            ["plugin:\(path):branches=1,max=4", "ngram:max=3,min=2"], environment: environment)
        #expect(built.map(\.name) == ["plugin:line-echo", "ngram"])
        do {
            _ = try await registry.make(["ngarm"], environment: environment)
            Issue.record("unknown proposer accepted")
        } catch let error as ProposerSpecError {
            #expect(error.description.contains("Did you mean 'ngram'"))
        }
        await #expect(throws: ProposerSpecError.self) {
            _ = try await registry.make(["ngram:max=zero"], environment: environment)
        }
        await #expect(throws: ProposerSpecError.self) {
            _ = try await registry.make(["draft"], environment: environment)
        }
        await #expect(throws: PluginError.self) {
            _ = try await registry.make(["plugin:\(path):bogus=1"], environment: environment)
        }
        let search = PluginSearch(pluginDirectories: [URL(fileURLWithPath: path).deletingLastPathComponent().path])
        #expect(try search.load("suffix-match").name == "suffix-match")

        // `auto` adds the environment's paired draft unless a draft is given or it is told not to.
        var paired = environment
        paired.autoDraft = "smollm2-135m-instruct"
        func members(_ specs: [String], in environment: ProposerEnvironment) async throws -> [String] {
            let built = try await registry.make(specs, environment: environment)
            return try #require(built.first as? AutoProposer).members.map(\.name)
        }
        #expect(try await members(["auto"], in: environment) == ["ngram"])
        #expect(try await members(["auto"], in: paired) == ["draft:smollm2-135m-instruct", "ngram"])
        #expect(try await members(["auto:draft=none"], in: paired) == ["ngram"])
        #expect(
            try await members(["auto", "plugin:\(path)"], in: paired) == [
                "plugin:line-echo", "draft:smollm2-135m-instruct", "ngram",
            ])
        #expect(
            try await members(["auto", "retok:smollm2-135m-instruct"], in: paired) == [
                "retok:smollm2-135m-instruct", "ngram",
            ])
        do {
            _ = try await registry.make(["auto:draft=tiny"], environment: paired)
            Issue.record("auto:draft=tiny accepted")
        } catch let error as ProposerSpecError {
            #expect(error.description.contains("draft=none"))
        }
    }
}
