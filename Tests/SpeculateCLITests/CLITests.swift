import Foundation
import SpeculateTestSupport
import Testing

/// Runs the built `speculate` executable.
enum CLI {
    static var executable: String {
        let besideTests = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("speculate").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return TestSupport.packageRoot.appendingPathComponent(".build/release/speculate").path
    }

    static func run(_ arguments: [String], input: String? = nil) throws -> (
        status: Int32, output: String, error: String
    ) {
        let result = try TestSupport.runProcessCapturingAll(executable, arguments, input: input.map { Data($0.utf8) })
        return (
            result.status, String(decoding: result.standardOutput, as: UTF8.self),
            String(decoding: result.standardError, as: UTF8.self)
        )
    }
}

@Suite("The speculate command line", .serialized)
struct CLITests {
    @Test("strategies give the same greedy text as plain decoding (SmolLM2 and the Qwen pair)")
    func strategiesAgree() throws {
        let cases: [(target: String, proposers: [[String]])] = [
            (
                "smollm2-135m-instruct",
                [
                    ["--proposer", "ngram"], ["--proposer", "draft:smollm2-135m-instruct"],
                    ["--proposer", "draft:smollm2-135m-instruct", "--proposer", "ngram", "--tree", "2,2,1"],
                    ["--proposer", "plugin:line-echo"],
                    ["--proposer", "plugin:suffix-match:min=3", "--proposer", "ngram"],
                    ["--proposer", "auto", "--proposer", "plugin:line-echo"],
                ]
            ),
            (
                // The pair through `auto` in CI (the draft alone is checked in the library's
                // Proposers suite, n-gram lookup above); all three under `.ci/deep`.
                "qwen2.5-coder-1.5b-instruct",
                [["--proposer", "auto", "--proposer", "draft:qwen2.5-coder-0.5b-instruct"]]
                    + (ProcessInfo.processInfo.environment["SPECULATE_DEEP"] == "1"
                        ? [["--proposer", "draft:qwen2.5-coder-0.5b-instruct"], ["--proposer", "ngram"]] : [])
            ),
        ]
        for (target, strategies) in cases {
            let common = [
                "run", "--target", target, "--max-tokens", "24", "--json",
                "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n",
            ]
            let plain = try CLI.run(common + ["--proposer", "none"])
            #expect(plain.status == 0, "\(plain.error)")
            let plainRecord = try #require(
                try JSONSerialization.jsonObject(with: Data(plain.output.utf8)) as? [String: Any])
            let plainTokens = try #require(plainRecord["tokens"] as? [Int])
            #expect(!plainTokens.isEmpty)
            for strategy in strategies {
                let run = try CLI.run(common + strategy)
                #expect(run.status == 0, "\(strategy): \(run.error)")
                let record = try #require(
                    try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
                #expect(record["tokens"] as? [Int] == plainTokens, "\(target) \(strategy)")
                #expect(record["text"] as? String == plainRecord["text"] as? String)
                let statistics = try #require(record["statistics"] as? [String: Any])
                #expect(statistics["mean_accepted_length"] as? Double != nil)
            }
        }
    }

    @Test("proposers lists the built-in proposers and the example plugins, and checks a plugin by path")
    func proposersListing() throws {
        let listing = try CLI.run(["proposers"])
        #expect(listing.status == 0)
        for name in ["ngram", "draft:", "retok:", "plugin:", "auto", "plugin:line-echo", "plugin:suffix-match"] {
            #expect(listing.output.contains(name), "missing \(name)")
        }
        let bad = try CLI.run(["proposers", "--plugin", "/etc/hostname"])
        #expect(bad.status != 0)
        #expect(bad.error.contains("cannot load plugin '/etc/hostname'"))
        let typo = try CLI.run(["run", "--target", "smollm2-135m-instruct", "--proposer", "plugin:line-ecko", "x"])
        #expect(typo.status != 0)
        #expect(typo.error.contains("no plugin named 'line-ecko'") && typo.error.contains("line-echo"))
        // A model without a chat format Speculate renders (Gemma 3 270M is a base model) refuses --chat.
        let chat = try CLI.run(["run", "--target", "gemma-3-270m", "--proposer", "none", "--chat", "hi"])
        #expect(chat.status != 0)
        #expect(chat.error.contains("has no chat template"), "\(chat.error)")
    }

    @Test("the example programs run and show what they claim")
    func examples() throws {
        let directory = URL(fileURLWithPath: CLI.executable).deletingLastPathComponent()
        func run(_ name: String) throws -> String {
            let result = try TestSupport.runProcessCapturingAll(directory.appendingPathComponent(name).path, [])
            #expect(result.status == 0, "\(name): \(String(decoding: result.standardError, as: UTF8.self))")
            return String(decoding: result.standardOutput, as: UTF8.self)
        }
        #expect(try run("swap-merger").contains("identical output: true"))
        let custom = try run("custom-proposer")
        #expect(custom.contains("brackets:") && custom.contains("ngram:"))
        let stream = try run("stream-statistics")
        #expect(stream.contains("step 1:") && stream.contains("per forward"))
    }

    @Test("the kernel benchmark times each batch size and rejects bad options")
    func kernelBench() throws {
        let bench = URL(fileURLWithPath: CLI.executable).deletingLastPathComponent().appendingPathComponent(
            "speculate-kernel-bench"
        ).path
        let small = [
            "--layers", "2", "--hidden", "512", "--ffn", "1024", "--kv", "128", "--vocab", "4096", "--passes", "2",
            "--batches", "1,2,8",
        ]
        for extra in [[], ["--portable"]] {
            let result = try TestSupport.runProcessCapturingAll(bench, small + extra)
            let output = String(decoding: result.standardOutput, as: UTF8.self)
            #expect(result.status == 0, "\(String(decoding: result.standardError, as: UTF8.self))")
            #expect(output.contains(extra.isEmpty ? "kernels: " : "kernels: portable"))
            // One row per batch size: tokens, layers ms, head ms, GB/s, GMAC/s, relative cost.
            let rows = output.split(separator: "\n").filter { $0.hasSuffix("x") }.map { $0.split(separator: " ") }
            #expect(rows.map { $0.first.map(String.init) } == ["1", "2", "8"])
            #expect(rows.first?.last == "1.00x")
            #expect(rows.allSatisfy { row in row.dropFirst().dropLast().allSatisfy { (Double($0) ?? 0) > 0 } })
        }
        for bad in [["--batches", "0"], ["--hidden", "300"], ["--frobnicate", "1"], ["--threads"]] {
            let result = try TestSupport.runProcessCapturingAll(bench, bad)
            #expect(result.status == 2, "\(bad)")
            #expect(String(decoding: result.standardError, as: UTF8.self).hasPrefix("error: "), "\(bad)")
        }
    }

    @Test("plain text output streams the completion and prints a summary on standard error")
    func plainOutput() throws {
        let run = try CLI.run(
            ["--target", "smollm2-135m-instruct", "--max-tokens", "8", "--proposer", "ngram"],
            input: "The capital of France is")
        #expect(run.status == 0)
        #expect(!run.output.isEmpty)
        #expect(run.error.contains("tokens/s"))
    }

    @Test("auto alone brings the target's paired draft model; auto:draft=none leaves it out")
    func autoPairedDraft() throws {
        let common = [
            "run", "--target", "qwen2.5-coder-1.5b-instruct", "--max-tokens", "24",
            "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n",
        ]
        let plain = try CLI.run(common + ["--proposer", "none"])
        let paired = try CLI.run(common + ["--proposer", "auto"])
        let alone = try CLI.run(common + ["--proposer", "auto:draft=none"])
        #expect(plain.status == 0 && paired.status == 0 && alone.status == 0, "\(paired.error) \(alone.error)")
        #expect(paired.output == plain.output && alone.output == plain.output)
        // The policy's summary on standard error lists its members.
        #expect(paired.error.contains("draft:qwen2.5-coder-0.5b-instruct: asked"), "\(paired.error)")
        #expect(!alone.error.contains("draft:qwen2.5-coder-0.5b-instruct"), "\(alone.error)")
        let bad = try CLI.run(common + ["--proposer", "auto:deep"])
        #expect(bad.status != 0 && bad.error.contains("draft=none"), "\(bad.error)")
    }

    @Test("bad input gives one clear line and a non-zero exit")
    func badInput() throws {
        let cases: [([String], String)] = [
            (["run", "--target", "qwen-coder-1.5b", "hi"], "Did you mean 'qwen2.5-coder-1.5b-instruct'?"),
            (["run", "--target", "/no/such.gguf", "hi"], "does not exist"),
            (["run", "--target", "smollm2-135m-instruct", "--proposer", "ngarm", "hi"], "Did you mean 'ngram'?"),
            (["run", "--target", "smollm2-135m-instruct", "--tree", "2,x", "hi"], "--tree '2,x'"),
            (
                ["run", "--target", "qwen2.5-coder-0.5b-instruct", "--proposer", "draft:smollm2-135m-instruct", "hi"],
                "cannot draft for"
            ),
            (["run", "--target", "smollm2-135m-instruct", "--context", "100000", "hi"], "trained for 8192"),
            (["run", "--target", "smollm2-135m-instruct", "--verify", "magic", "hi"], "--verify 'magic'"),
            (["models", "pull", "nonexistent-model"], "unknown model 'nonexistent-model'"),
            (
                ["run", "--target", "smollm2-135m-instruct", "--draft-lookahead=-1", "hi"],
                "--draft-lookahead -1 is negative"
            ),
            (
                ["bench", "--target", "smollm2-135m-instruct", "--strategy", "ngram ahead=many"],
                "ahead=many is not a count"
            ),
            (["run", "--target", "smollm2-135m-instruct", "--frequency-penalty", "3", "hi"], "outside -2...2"),
            (["run", "--target", "smollm2-135m-instruct", "--repeat-penalty", "0", "hi"], "outside (0, 10]"),
            (["run", "--target", "smollm2-135m-instruct", "--min-p", "1.5", "hi"], "--min-p 1.5 is outside 0...1"),
        ]
        for (arguments, message) in cases {
            let run = try CLI.run(arguments)
            #expect(run.status != 0, "\(arguments) should fail")
            #expect(run.error.contains(message), "\(arguments): \(run.error)")
            #expect(!run.error.contains("Fatal error") && !run.error.contains("Stack dump"))
        }
        let tooLong = try CLI.run([
            "run", "--target", "smollm2-135m-instruct", "--context", "16", String(repeating: "word ", count: 40),
        ])
        #expect(tooLong.status != 0 && tooLong.error.contains("the context holds 16"))
    }

    @Test("tokenize and detokenize round trip, and match the library")
    func tokenizeCommands() throws {
        let text = "def héllo():\n    return '世界'  # 🎉"
        let ids = try CLI.run(["tokenize", "--model", "qwen2.5-coder-0.5b-instruct"], input: text)
        #expect(ids.status == 0)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(ids.output.utf8)) as? [Int])
        #expect(!parsed.isEmpty)
        let back = try CLI.run(["detokenize", "--model", "qwen2.5-coder-0.5b-instruct"], input: ids.output)
        #expect(back.output == text)
        let special = try CLI.run([
            "tokenize", "--model", "qwen2.5-coder-0.5b-instruct", "--special", "<|im_start|>user",
        ])
        #expect(special.output.hasPrefix("[151644,"))
        let bad = try CLI.run(["detokenize", "--model", "qwen2.5-coder-0.5b-instruct", "12", "nope"])
        #expect(bad.status != 0 && bad.error.contains("'nope' is not a token id"))
    }

    @Test(
        "models info prints the facts",
        arguments: [
            "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gemma-3-270m",
        ]
    )
    func modelsInfo(name: String) throws {
        let info = try CLI.run(["models", "info", name])
        #expect(info.status == 0)
        for field in ["architecture", "parameters", "tensors", "tokenizer", "eos", "chat format"] {
            #expect(info.output.contains(field), "\(name): \(field)")
        }
        #expect(info.output.contains("runs in Speculate     yes"), "\(info.output)")
    }

    @Test("bench compares strategies per prompt, repeated and interleaved, with categories")
    func benchPerPrompt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "speculate-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let prompts = folder.appendingPathComponent("prompts.jsonl")
        try
            (#"{"prompt": "def add(a, b):\n    return", "category": "code"}"# + "\n"
            + #"{"turns": ["Name three colours."], "category": "chat"}"# + "\n")
            .write(to: prompts, atomically: true, encoding: .utf8)
        let common = [
            "bench", "--target", "smollm2-135m-instruct", "--prompts-file", prompts.path, "--prompts", "2",
            "--max-tokens", "8", "--threads", "2",
        ]
        let run = try CLI.run(common + ["--strategy", "ngram", "--repeats", "3", "--json"])
        #expect(run.status == 0, "\(run.error)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
        #expect(document["repeats"] as? Int == 3)
        let strategies = try #require(document["strategies"] as? [[String: Any]])
        #expect(strategies.map { $0["name"] as? String } == ["plain", "ngram"])
        let ngram = strategies[1]
        #expect(ngram["identical_to_plain"] as? Bool == true)
        #expect(ngram["generated_tokens"] as? Int == 2 * 3 * 8, "every run's tokens count in the totals")
        let rows = try #require(ngram["per_prompt"] as? [[String: Any]])
        #expect(rows.map { $0["prompt"] as? Int } == [0, 1])
        #expect(rows.map { $0["category"] as? String } == ["code", "chat"])
        #expect(rows.allSatisfy { ($0["speedup"] as? Double ?? 0) > 0 && $0["generated_tokens"] as? Int == 8 })
        let bad = try CLI.run(common + ["--strategy", "ngram", "--repeats", "0"])
        #expect(bad.status != 0 && bad.error.contains("--repeats must be at least 1"), "\(bad.error)")
        // `auto` reports the verification curve it priced trees with; other strategies have none.
        let auto = try CLI.run(common + ["--strategy", "auto", "--strategy", "ngram", "--json"])
        #expect(auto.status == 0, "\(auto.error)")
        let autoDocument = try #require(
            try JSONSerialization.jsonObject(with: Data(auto.output.utf8)) as? [String: Any])
        let autoStrategies = try #require(autoDocument["strategies"] as? [[String: Any]])
        #expect(autoStrategies.map { $0["verification_cost"] != nil } == [false, true, false])
        let curve = try #require(autoStrategies[1]["verification_cost"] as? [String: Any])
        #expect((curve["one_token_seconds"] as? Double ?? 0) > 0)
        #expect((curve["relative"] as? [String: Double]).map { Set($0.keys) } == ["2", "4", "6", "8"])
    }

    @Test("bench --batch-costs --json has the documented fields")
    func benchBatchCosts() throws {
        let run = try CLI.run([
            "bench", "--batch-costs", "--batch-prefix", "300", "--target", "smollm2-135m-instruct", "--json",
        ])
        #expect(run.status == 0, "\(run.error)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any])
        #expect(document["batch_prefix"] as? Int == 300)
        let costs = try #require(document["batch_costs"] as? [[String: Any]])
        #expect(costs.map { $0["tokens"] as? Int } == [1, 2, 4, 8, 16, 32, 64])
        #expect(costs.first?["relative_cost"] as? Double == 1)
    }
}
