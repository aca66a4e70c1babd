import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Lines a hosted plugin printed, collected from the output thread.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}

extension PluginFixtures {
    /// The test proposers (Tests/Reference/test_proposers.c), built once.
    static let testProposers = Result { try TestSupport.buildTestProposers() }
}

@Suite("Plugins in a host process, and C functions through libffi", .serialized)
struct PluginHostTests {
    static let text =
        "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n"

    /// Every prefix of the text from 4 tokens on, asked with the same budget.
    static func contexts(_ tokenizer: Tokenizer) -> [DraftContext] {
        let tokens = tokenizer.encode(text)
        return (4...tokens.count).map {
            DraftContext(
                tokens: Array(tokens.prefix($0)), budget: TreeBudget(maxNodes: 16, maxDepth: 6), sampling: .greedy,
                remainingContext: 100, step: $0)
        }
    }

    /// What a proposer drafts for each context (tokens, parents and scores of every candidate).
    static func drafts(_ proposer: any DraftProposer, _ contexts: [DraftContext]) async throws -> [[String]] {
        var all: [[String]] = []
        for context in contexts {
            all.append(try await proposer.propose(context).map { "\($0.tokens) \($0.parents) \($0.scores)" })
            await proposer.observe(accepted: [], context: context.tokens)
        }
        return all
    }

    @Test("the example plugins draft the same trees out of process as in process")
    func sameDraftsBothWays() async throws {
        let model = try PluginTests.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let vocabulary = PluginTests.vocabulary(tokenizer)
        let contexts = Self.contexts(tokenizer)
        let corpus = try TestSupport.temporaryFolder().appendingPathComponent("corpus.txt")
        try Data((Self.text + "\ndef div(a, b):\n    return a / b\n").utf8).write(to: corpus)
        for (product, options) in [
            ("SpeculateLineEcho", "branches=2,max=6"), ("SpeculateSuffixMatch", "corpus=\(corpus.path),min=2"),
        ] {
            let path = try PluginFixtures.example(product)
            let inProcess = try await Self.drafts(
                try PluginMode.inProcess.proposer(path, options: options, vocabulary: vocabulary), contexts)
            let hosted = try await Self.drafts(
                try PluginMode.hosted.proposer(path, options: options, vocabulary: vocabulary), contexts)
            #expect(inProcess == hosted, "\(product)")
            #expect(inProcess.contains { !$0.isEmpty }, "\(product) drafted nothing")
        }
    }

    @Test(
        "C functions of four shapes, through libffi in and out of process, draft what the same logic as a plugin drafts"
    )
    func foreignFunctions() async throws {
        let model = try PluginTests.model.get()
        let tokenizer = try Tokenizer(gguf: model.file)
        let vocabulary = PluginTests.vocabulary(tokenizer)
        let contexts = Self.contexts(tokenizer)
        let library = try PluginFixtures.testProposers.get()
        let reference = try await Self.drafts(
            try PluginMode.hosted.proposer(library, vocabulary: vocabulary), contexts)
        #expect(reference.contains { !$0.isEmpty })
        let signatures = [
            "lookup32": "int32_t (const int32_t *context, int32_t context_length, int32_t *draft, int32_t capacity)",
            "lookup64":
                "int64_t lookup64(const int32_t *context, int64_t context_length, int32_t *draft, uint64_t capacity)",
            "lookup_out":
                "void (const int32_t *context, size_t context_length, int32_t *draft, size_t capacity, size_t *draft_length)",
            "lookup_status":
                "int (const int32_t *context, int64_t context_length, int32_t *draft, int32_t capacity, int64_t *draft_length)",
        ]
        for (symbol, signature) in signatures.sorted(by: { $0.key < $1.key }) {
            let parsed = try ForeignFunctionSignature.parse(argument: "\(library):\(symbol):\(signature)")
            let hosted = try HostedPluginProposer(foreignFunction: parsed, vocabulary: vocabulary)
            #expect(hosted.name == "ffi:\(symbol)")
            let inProcess = try PluginLibrary.foreignFunctionAdapter().makeProposer(
                options: parsed.adapterOptions, vocabulary: vocabulary, name: "ffi:\(symbol)")
            #expect(try await Self.drafts(hosted, contexts) == reference, "\(symbol) out of process")
            #expect(try await Self.drafts(inProcess, contexts) == reference, "\(symbol) in process")
        }
        // The signature from a manifest beside the library.
        try Data("# test functions\nlookup32: \(signatures["lookup32"]!)\n".utf8).write(
            to: URL(fileURLWithPath: library + ".ffi"))
        let fromManifest = try ForeignFunctionSignature.parse(argument: "\(library):lookup32")
        #expect(
            try await Self.drafts(
                try HostedPluginProposer(foreignFunction: fromManifest, vocabulary: vocabulary), contexts)
                == reference)
    }

    @Test("ffi: signatures that do not fit a proposer are refused, naming the mismatch")
    func wrongSignatures() throws {
        let library = try PluginFixtures.testProposers.get()
        let cases = [
            "int32_t (const int32_t *context, int32_t context_length, int32_t *draft)": "'capacity'",
            "int32_t (const int64_t *context, int32_t context_length, int32_t *draft, int32_t capacity)":
                "'context' must be an int32_t pointer",
            "int32_t (const int32_t *context, int32_t length, int32_t *draft, int32_t capacity)":
                "unknown parameter 'length'",
            "float (const int32_t *context, int32_t context_length, int32_t *draft, int32_t capacity)":
                "must return the draft length",
            "int32_t (const int32_t *context, double context_length, int32_t *draft, int32_t capacity)":
                "'context_length' must be an integer",
            "void (const int32_t *context, int32_t *draft, int32_t capacity)": "must return the draft length",
            "int32_t const int32_t *context": "expected RETURN",
        ]
        for (signature, problem) in cases {
            do {
                _ = try ForeignFunctionSignature.parse(argument: "\(library):lookup32:\(signature)")
                Issue.record("accepted: \(signature)")
            } catch {
                #expect(error.description.contains(problem), "\(signature): \(error)")
            }
        }
        #expect(throws: PluginError.self) { try ForeignFunctionSignature.parse(argument: "\(library)") }
        #expect(throws: PluginError.self) { try ForeignFunctionSignature.parse(argument: "/nonexistent.so:f") }
        // A symbol the library does not have: the adapter's create says so, in and out of process.
        let missing = try ForeignFunctionSignature.parse(
            argument:
                "\(library):nothing_here:int32_t (const int32_t *context, int32_t context_length, int32_t *draft, int32_t capacity)"
        )
        let vocabulary = PluginVocabulary(size: 100, tokenize: { _ in [] }, tokenBytes: { _ in [] })
        #expect {
            _ = try HostedPluginProposer(foreignFunction: missing, vocabulary: vocabulary)
        } throws: { ($0 as? PluginError)?.description.contains("nothing_here") == true }
        #expect {
            _ = try PluginLibrary.foreignFunctionAdapter().makeProposer(
                options: missing.adapterOptions, vocabulary: vocabulary)
        } throws: { ($0 as? PluginError)?.description.contains("nothing_here") == true }
    }

    @Test("the host inherits nothing but its channel, its lifeline and its shared memory")
    func inheritsNothing() throws {
        let library = try PluginFixtures.testProposers.get()
        // A file this process has open, not close-on-exec: the host must not see it.
        let open = Glibc.open("/dev/null", O_RDONLY)
        defer { Glibc.close(open) }
        let lines = LockedLines()
        let vocabulary = PluginVocabulary(size: 100, tokenize: { _ in [] }, tokenBytes: { _ in [] })
        let proposer = try HostedPluginProposer(
            path: library, options: "do=report-fds", vocabulary: vocabulary, sink: { lines.append($0) })
        let deadline = Date().addingTimeInterval(5)
        while !lines.all.contains(where: { $0.contains("fds:") }), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(lines.all.contains("plugin lookup: fds: 0 1 2 3 4 5"), "\(lines.all)")
        _ = proposer
    }

    @Test("a plugin that crashes while loading or creating is a clear error, and this process goes on")
    func crashWhileCreating() throws {
        let library = try PluginFixtures.testProposers.get()
        let vocabulary = PluginVocabulary(size: 100, tokenize: { _ in [] }, tokenBytes: { _ in [] })
        // A SIGSEGV; under a sanitizer (in-process plugin modes) the runtime's own exit after catching it.
        let sanitized = PluginMode.tested == [.inProcess]
        #expect {
            _ = try HostedPluginProposer(path: library, options: "do=create-segv", vocabulary: vocabulary)
        } throws: { error in
            guard case .hostFailed(let plugin, let reason)? = error as? PluginError else { return false }
            return plugin == "lookup" && reason.hasSuffix("during create")
                && (reason.contains("SIGSEGV") || (sanitized && reason.contains("exited with status")))
        }
    }
}
