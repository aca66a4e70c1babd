import Foundation
import SpeculateTestSupport
import Testing

/// Plugins that crash, abort, exit, hang, spin, leak, write garbage on their channel, fork or
/// flood their output (Tests/Reference/test_proposers.c), under `speculate run` and
/// `speculate serve`: each costs its drafts, never the output, and leaves nothing running.
@Suite("Misbehaving plugins are contained", .serialized)
struct PluginContainmentTests {
    static let target = "smollm2-135m-instruct"
    static let prompt = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n"
    /// Behaviour and the phrase its one line must contain. `leak` and `spin` need a longer run
    /// (the leak reaches the 64 MiB limit after ~0.5 s; spinning is judged over a second or more).
    static let behaviours: [(name: String, phrase: String, tokens: Int)] = [
        ("segv", "crashed (SIGSEGV", 48), ("abort", "crashed (SIGABRT", 48), ("exit", "exited with status 3", 48),
        ("hang", "did not return from propose within 0.5 s", 48), ("observe-hang", "did not return from observe", 48),
        ("garbage", "broke the plugin channel", 48), ("flood", "KiB of output", 48), ("spin", "of a core busy", 200),
        ("leak", "memory limit", 200), ("fork", "", 48),
    ]
    /// Limits small enough for a test: a half-second call limit, 64 MiB (the host itself maps
    /// ~22 MiB), one restart.
    static let environment = [
        "SPECULATE_PLUGIN_TIMEOUT=0.5", "SPECULATE_PLUGIN_MEMORY_MB=64", "SPECULATE_PLUGIN_RESTARTS=1",
    ]

    static let library = Result { try TestSupport.buildTestProposers() }

    /// `speculate run --json` with the test limits; the generated tokens and standard error.
    static func run(_ proposer: String, tokens: Int) throws -> (tokens: [Int], errors: [String]) {
        let result = try TestSupport.runProcessCapturingAll(
            "/usr/bin/env",
            environment + [
                CLI.executable, "run", "--target", target, "--proposer", proposer, "--max-tokens", String(tokens),
                "--ignore-eos", "--json", prompt,
            ])
        let error = String(decoding: result.standardError, as: UTF8.self)
        try #require(result.status == 0, "\(proposer): \(error)")
        let record = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        let statistics = try #require(record["statistics"] as? [String: Any])
        return (try #require(record["tokens"] as? [Int]), try #require(statistics["proposer_errors"] as? [String]))
    }

    /// Processes still running whose command name or command line mentions `marker`, after up
    /// to two seconds for hosts whose parent just exited to take their group down.
    static func leftovers(_ marker: String) -> [String] {
        var found = running(marker)
        let deadline = Date().addingTimeInterval(2)
        while !found.isEmpty, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            found = running(marker)
        }
        return found
    }

    static func running(_ marker: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.compactMap { pid in
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            let command =
                (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map {
                    String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                } ?? ""
            let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ")
            guard state.map({ $0.count > 2 && $0[2] != "Z" }) ?? false else { return nil }
            return comm.contains(marker) || command.contains(marker) ? "\(pid) \(comm) \(command)" : nil
        }
    }

    @Test("under speculate run: the output equals plain decoding and one line says what happened")
    func run() throws {
        let library = try Self.library.get()
        var plain: [Int: [Int]] = [:]
        for tokens in Set(Self.behaviours.map(\.tokens)) {
            plain[tokens] = try Self.run("none", tokens: tokens).tokens
        }
        for behaviour in Self.behaviours {

            let (tokens, lines) = try Self.run("plugin:\(library):do=\(behaviour.name)", tokens: behaviour.tokens)

            #expect(tokens == plain[behaviour.tokens], "\(behaviour.name) changed the output")
            if behaviour.phrase.isEmpty {
                #expect(lines.isEmpty, "\(behaviour.name): \(lines)")
            } else {
                #expect(lines.count <= 2, "one line per failure: \(lines)")
                #expect(lines.first?.contains(behaviour.phrase) == true, "\(behaviour.name): \(lines)")
                #expect(
                    lines.first?.contains("restarting it in 1 s (restart 1 of 1)") == true
                        || lines.first?.contains("dropped for the rest of this run") == true, "\(lines)")
            }
        }
        #expect(Self.leftovers("spec-test-fork").isEmpty, "\(Self.leftovers("spec-test-fork"))")
        #expect(Self.leftovers(library).isEmpty, "\(Self.leftovers(library))")
    }

    /// A POST to the server through curl; the decoded JSON answer.
    static func post(_ server: ServerProcess, _ body: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let output = try TestSupport.runProcess(
            "/usr/bin/curl",
            [
                "-sS", "--max-time", "120", "-H", "Content-Type: application/json", "--data-binary", "@-",
                server.baseURL + "/v1/completions",
            ], input: data)
        return try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
    }

    @Test(
        "under speculate serve: requests before, during and after every failure are answered as plain; nothing is left after SIGTERM"
    )
    func serve() throws {
        let library = try Self.library.get()
        let reference = try CLI.run([
            "run", "--target", Self.target, "--proposer", "none", "--max-tokens", "48", "--context", "1024", "--json",
            Self.prompt,
        ])
        let expected = try #require(
            (try JSONSerialization.jsonObject(with: Data(reference.output.utf8)) as? [String: Any])?["text"]
                as? String)
        let specs = Self.behaviours.map { "plugin:\(library):do=\($0.name)" }
        let server = try ServerProcess(
            ["--target", Self.target, "--context", "1024"] + specs.flatMap { ["--proposer", $0] },
            environment: Self.environment)
        func text(_ answer: [String: Any]) -> String? {
            ((answer["choices"] as? [[String: Any]])?.first)?["text"] as? String
        }
        let request: [String: Any] = ["model": Self.target, "prompt": Self.prompt, "max_tokens": 48, "temperature": 0]
        // Every plugin at once (the server's own strategy: they fail during this request), each
        // alone (fails during its own request), then all at once again (restarted or dropped).
        #expect(text(try Self.post(server, request)) == expected, "all plugins together")
        for spec in specs {
            var alone = request
            alone["speculate"] = ["proposers": [spec]]
            let answer = try Self.post(server, alone)
            #expect(text(answer) == expected, "\(spec): \(answer)")
        }
        #expect(text(try Self.post(server, request)) == expected, "all plugins together, after")
        let health = try #require(
            try JSONSerialization.jsonObject(
                with: TestSupport.runProcess("/usr/bin/curl", ["-sS", server.baseURL + "/health"])) as? [String: Any])
        let plugins = try #require(health["plugins"] as? [String: Int], "\(health)")
        #expect((plugins["failures"] ?? 0) >= specs.count - 1, "\(plugins)")
        #expect((plugins["restarts"] ?? 0) > 0 && (plugins["dropped"] ?? 0) > 0, "\(plugins)")
        let metrics = String(
            decoding: try TestSupport.runProcess("/usr/bin/curl", ["-sS", server.baseURL + "/metrics"]), as: UTF8.self)
        let failures = metrics.split(separator: "\n").first { $0.hasPrefix("speculate_plugin_host_failures ") }
        #expect(
            failures.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true,
            "\(metrics.prefix(2000))")
        #expect(server.stop() == 0, "the server did not exit cleanly on SIGTERM")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(Self.leftovers("spec-test-fork").isEmpty, "\(Self.leftovers("spec-test-fork"))")
        #expect(Self.leftovers(library).isEmpty, "\(Self.leftovers(library))")
    }
}
