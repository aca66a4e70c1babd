import Foundation
import SpeculateTestSupport
import Testing

/// A `speculate serve` process on loopback (port chosen by the system), stopped with SIGTERM.
final class ServerProcess {
    let process = Process()
    let port: Int
    private let output = Pipe()

    /// `environment`: extra `NAME=VALUE` settings for the server.
    init(_ arguments: [String], environment: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: CLI.executable)
        process.arguments = ["serve", "--port", "0"] + arguments
        var variables = ProcessInfo.processInfo.environment
        for setting in environment {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            variables[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        process.environment = variables
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line on standard output names the bound port.
        var text = ""
        let deadline = Date().addingTimeInterval(300)
        while !text.contains("\n"), Date() < deadline, process.isRunning {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { Thread.sleep(forTimeInterval: 0.05) }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let range = text.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
            let port = Int(text[range].split(separator: ":").last ?? "")
        else {
            process.terminate()
            throw HarnessError("speculate serve did not start: \(text)")
        }
        self.port = port
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Sends SIGTERM and returns the exit status (waits up to 30 s).
    func stop() -> Int32? {
        process.terminate()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    deinit { if process.isRunning { process.terminate() } }
}

@Suite("speculate serve against the official openai client", .serialized)
struct ServerTests {
    static let target = "smollm2-135m-instruct"
    static let prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    static let message = "Name three colours, one per line."

    /// `speculate run --json` for the same prompt: what the server must return.
    func reference(_ extra: [String]) throws -> (text: String, promptTokens: Int, completionTokens: Int) {
        let run = try CLI.run(
            ["run", "--target", Self.target, "--proposer", "none", "--max-tokens", "32", "--context", "1024", "--json"]
                + extra)
        #expect(run.status == 0, "\(run.error)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
        return (
            try #require(record["text"] as? String), try #require(record["prompt_tokens"] as? Int),
            try #require((record["tokens"] as? [Int])?.count)
        )
    }

    @Test(
        "completions and chat, streamed and not, every strategy equal to `speculate run`; bad requests; disconnects; a full queue; a load run; clean shutdown"
    )
    func openAIClient() throws {
        let completion = try reference([Self.prompt])
        let chat = try reference(["--chat", Self.message])
        // A stop string that occurs in the completion: its first line break, or a piece of it.
        let text = completion.text
        let stop = text.contains("\n") ? "\n" : String(text.dropFirst(text.count / 2).prefix(3))
        try #require(!stop.isEmpty)
        let expected: [String: Any] = [
            "model": Self.target,
            "completion": [
                "prompt": Self.prompt, "max_tokens": 32, "text": completion.text,
                "prompt_tokens": completion.promptTokens,
                "completion_tokens": completion.completionTokens, "stop": stop,
            ],
            "chat": [
                "message": Self.message, "max_tokens": 32, "text": chat.text, "prompt_tokens": chat.promptTokens,
                "completion_tokens": chat.completionTokens,
            ],
            "strategies": [[], ["ngram"], ["draft:\(Self.target)"], ["draft:\(Self.target)", "ngram"], ["auto"]],
        ]
        let folder = try TestSupport.temporaryFolder()
        let expectedFile = folder.appendingPathComponent("expected.json")
        try JSONSerialization.data(withJSONObject: expected).write(to: expectedFile)

        let key = "test-key-\(UInt32.random(in: 0...UInt32.max))"
        let server = try ServerProcess(["--target", Self.target, "--context", "1024", "--queue", "3", "--api-key", key])
        let python = ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3"
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Reference/server_client.py").path
        let result = try TestSupport.runProcessCapturingAll(
            "/usr/bin/env",
            [
                python, script, server.baseURL, expectedFile.path, key,
                String(server.process.processIdentifier),
            ])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        print(report)
        #expect(result.status == 0, "\(report)\n\(String(decoding: result.standardError, as: UTF8.self))")
        #expect(report.contains("\"failures\": []"), "\(report)")
        #expect(server.stop() == 0, "the server did not exit cleanly on SIGTERM")
    }

    @Test(
        "a coder model through the openai client: tool calls (auto, required, named, streamed, round trip) and fill-in-the-middle, every strategy equal to plain"
    )
    func coderClient() throws {
        let key = "coder-key-\(UInt32.random(in: 0...UInt32.max))"
        let model = "qwen2.5-coder-0.5b-instruct"
        let server = try ServerProcess(["--target", model, "--context", "1024", "--api-key", key])
        let python = ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3"
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Reference/coder_client.py").path
        let result = try TestSupport.runProcessCapturingAll(
            "/usr/bin/env", [python, script, server.baseURL, key, model])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        #expect(result.status == 0, "\(report)\n\(String(decoding: result.standardError, as: UTF8.self))")
        #expect(report.contains("\"failures\": []"), "\(report)")
        #expect(server.stop() == 0, "the server did not exit cleanly on SIGTERM")
    }

    static let chromium = "/usr/bin/chromium"

    @Test(
        "the live page streams a completion in headless Chromium with provenance-coloured tokens",
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: chromium), "needs Debian's chromium (.ci/run installs it)")
    )
    func livePage() throws {
        let key = "page-key-\(UInt32.random(in: 0...UInt32.max))"
        let server = try ServerProcess(["--target", Self.target, "--context", "1024", "--api-key", key])
        let screenshot = try TestSupport.temporaryFolder().appendingPathComponent("live-page.png").path
        let python = ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3"
        let script = TestSupport.packageRoot.appendingPathComponent("Tests/Reference/page_check.py").path
        let result = try TestSupport.runProcessCapturingAll(
            "/usr/bin/env", [python, script, server.baseURL, Self.chromium, screenshot, key])
        let report = String(decoding: result.standardOutput, as: UTF8.self)
        print(report)  // the DOM figures and the screenshot's path
        #expect(
            result.status == 0 && report.contains("\"failures\": []"),
            "\(report)\n\(String(decoding: result.standardError, as: UTF8.self))")
        #expect(FileManager.default.fileExists(atPath: screenshot))
        #expect(server.stop() == 0)
    }
}
