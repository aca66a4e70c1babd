import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateTestSupport
import Testing

/// The SentencePiece tokenizer on a real vocabulary (Gemma 3's 262,144 tokens), against llama.cpp.
@Suite("SentencePiece tokenizer")
struct SentencePieceTests {
    static let model = "gemma-3-270m"
    /// llama.cpp's ids for the corpus, as counts and hashes (`llama_cpp_tokens.py` says how they
    /// are made). With `LLAMA_TOKENIZE` set to llama.cpp's `llama-tokenize`, the test asks it
    /// afresh and rewrites the file.
    static let fixture = TestSupport.packageRoot.appendingPathComponent(
        "Tests/Reference/Fixtures/gemma3-llama-cpp-tokens.json")

    static func cases() throws -> [(text: String, special: Bool)] {
        try VocabularyTests.corpus().map { ($0, false) } + TokenizerTests.withSpecials.map { ($0, true) }
            + ["<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<bos><unk><mask> <pad>"].map {
                ($0, true)
            }
    }

    /// FNV-1a 64 of the ids written as decimals joined by commas.
    static func hash(_ ids: [TokenID]) -> String {
        var value: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in ids.map(String.init).joined(separator: ",").utf8 {
            value = (value ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    @Test("token ids equal llama.cpp's on the corpus")
    func matchesLlamaCpp() throws {
        let tokenizer = try SharedModels.tokenizer(Self.model)
        let cases = try Self.cases()
        #expect(cases.count >= 300)
        if let tool = ProcessInfo.processInfo.environment["LLAMA_TOKENIZE"] {
            let folder = try TestSupport.temporaryFolder()
            defer { try? FileManager.default.removeItem(at: folder) }
            let input = folder.appendingPathComponent("in.json")
            try JSONSerialization.data(withJSONObject: cases.map { ["text": $0.text, "special": $0.special] })
                .write(to: input)
            try FileManager.default.createDirectory(
                at: Self.fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
            _ = try TestSupport.runPython(
                "llama_cpp_tokens.py", [tool, try TestSupport.modelPath(Self.model), input.path, Self.fixture.path])
        }
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as? [[String: Any]])
        #expect(expected.count == cases.count, "the fixture is of another corpus: regenerate it")
        var agreed = 0
        for (testCase, reference) in zip(cases, expected) {
            let ours = tokenizer.encode(testCase.text, parseSpecial: testCase.special)
            if ours.count == reference["count"] as? Int, Self.hash(ours) == reference["fnv"] as? String {
                agreed += 1
            } else {
                Issue.record(
                    "special=\(testCase.special) \(testCase.text.prefix(60).debugDescription): ours \(ours.prefix(30)) (\(ours.count)), llama.cpp \(reference["count"] ?? "?") ids"
                )
            }
        }
        print("\(Self.model): \(agreed) of \(cases.count) texts tokenized exactly as llama.cpp")
    }

    @Test("prompts start with <bos>; text decodes to itself, streamed without broken characters")
    func promptsAndText() throws {
        let tokenizer = try SharedModels.tokenizer(Self.model)
        #expect(tokenizer.scheme == .sentencePiece)
        let bos = try #require(tokenizer.bosID)
        #expect(tokenizer.encodePrompt("Hi") == [bos] + tokenizer.encode("Hi"))
        #expect(tokenizer.stopIDs.contains(try #require(tokenizer.id(of: "<end_of_turn>"))))
        for (text, special) in try Self.cases() {
            let ids = tokenizer.encode(text, parseSpecial: special)
            #expect(tokenizer.decode(ids) == text, "\(text.prefix(60).debugDescription)")
            let pieces = TokenizerTests.streamed(ids, tokenizer)
            #expect(!pieces.contains { $0.contains("\u{FFFD}") }, "\(text.prefix(40).debugDescription)")
            #expect(pieces.joined() == text)
        }
        // A character no token spells falls back to its bytes' tokens, and streams whole.
        let rare = "\u{10FFFD}\u{2A6D6}"
        let ids = tokenizer.encode(rare)
        #expect(ids.allSatisfy { tokenizer.kinds[Int($0)] == .byte || tokenizer.kinds[Int($0)] == .normal })
        #expect(ids.contains { tokenizer.kinds[Int($0)] == .byte }, "\(ids)")
        #expect(TokenizerTests.streamed(ids, tokenizer).joined() == rare)
    }
}
