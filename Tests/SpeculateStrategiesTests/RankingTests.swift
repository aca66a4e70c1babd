import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateProposers
import SpeculateRuntime
import SpeculateStrategies
import SpeculateTestSupport
import Testing

@Suite("Frequency-ranked draft heads")
struct TokenRankingTests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ranking-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a corpus's most used tokens rank first; the ranking is a cached permutation of the vocabulary")
    func ranking() throws {
        let model = try SharedModels.model("smollm2-135m-instruct")
        let tokenizer = try Tokenizer(gguf: model.file)
        let corpus = try Self.temporaryDirectory()
        let cache = try Self.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: corpus)
            try? FileManager.default.removeItem(at: cache)
        }
        try String(repeating: " zebra", count: 50).write(
            to: corpus.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
        try String(repeating: " lambda", count: 20).write(
            to: corpus.appendingPathComponent("b.py"), atomically: true, encoding: .utf8)
        try String(repeating: " ignored", count: 99).write(
            to: corpus.appendingPathComponent("c.bin"), atomically: true, encoding: .utf8)
        let ranking = try TokenFrequencyRanking.cached(
            corpus: corpus, tokenizer: tokenizer, name: "smol", directory: cache)
        let zebra = tokenizer.encode(" zebra")
        let lambda = tokenizer.encode(" lambda")
        #expect(Set(ranking.tokens.prefix(zebra.count)) == Set(zebra))
        #expect(Set(ranking.tokens.prefix(zebra.count + lambda.count)) == Set(zebra + lambda))
        #expect(ranking.seen == Set(zebra + lambda).count)
        #expect(
            Set(ranking.tokens).count == tokenizer.vocabularySize && ranking.tokens.count == tokenizer.vocabularySize)
        // Stored once, read back the same.
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 1)
        #expect(
            try TokenFrequencyRanking.cached(corpus: corpus, tokenizer: tokenizer, name: "smol", directory: cache)
                == ranking)
    }

    @Test("missing and empty corpora are clear errors")
    func badCorpora() throws {
        let model = try SharedModels.model("smollm2-135m-instruct")
        let tokenizer = try Tokenizer(gguf: model.file)
        let empty = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: TokenRankingError.emptyCorpus(empty.path)) {
            try TokenFrequencyRanking.count(corpus: empty, tokenizer: tokenizer)
        }
        let missing = empty.appendingPathComponent("nope")
        #expect(throws: TokenRankingError.missingCorpus(missing.path)) {
            try TokenFrequencyRanking.count(corpus: missing, tokenizer: tokenizer)
        }
    }

    @Test("a draft with a ranked head stays lossless")
    func rankedDraftIsLossless() async throws {
        let model = try SharedModels.model("smollm2-135m-instruct")
        let tokenizer = try Tokenizer(gguf: model.file)
        let prompt = tokenizer.encode(try TestSupport.humanEvalPrompts(1)[0])
        let plain = SpeculativeDecoder(target: try InferenceSession(model: model, context: 1024), proposers: [])
        let (expected, _) = try await plain.generateAll(prompt: prompt, options: GenerationOptions(maxTokens: 48))
        // The prompt's own tokens and a slice of the vocabulary, out of id order.
        var seen = Set<TokenID>()
        let head = (prompt + (0..<3000).map { TokenID(48_000 - $0) }).filter { seen.insert($0).inserted }
        let draft = try DraftModelProposer(
            name: "ranked", model: model, context: 1024, draftLength: 4, headTokens: head)
        let decoder = SpeculativeDecoder(target: try InferenceSession(model: model, context: 1024), proposers: [draft])
        let (output, stats) = try await decoder.generateAll(prompt: prompt, options: GenerationOptions(maxTokens: 48))
        #expect(output.map(\.token) == expected.map(\.token))
        #expect(stats.proposers[0].drafted > 0)
    }

    @Test("the built-in ranking belongs to the Qwen2.5 vocabulary only, and ranks its common tokens first")
    func builtInRanking() throws {
        let qwen = try SharedModels.tokenizer("qwen2.5-coder-0.5b-instruct")
        let ranking = try #require(TokenFrequencyRanking.builtIn(for: qwen))
        #expect(ranking.tokens.count == qwen.vocabularySize && Set(ranking.tokens).count == qwen.vocabularySize)
        // Tokens any Python or English text uses are near the top; rare ones are not.
        let top = Set(ranking.tokens.prefix(2000))
        for text in [" the", " return", "def", " self", "(", " =", "\n"] {
            let ids = qwen.encode(text)
            #expect(ids.count == 1 && top.contains(ids[0]), "'\(text)' should be among the 2,000 most frequent tokens")
        }
        let smol = try SharedModels.tokenizer("smollm2-135m-instruct")
        #expect(TokenFrequencyRanking.builtIn(for: smol) == nil)
    }

    @Test("draft heads: ranked by default where a ranking exists, 0 keeps every row, negative is refused")
    func draftHeadChoice() throws {
        let model = try SharedModels.model("qwen2.5-coder-0.5b-instruct")
        let qwen = try Tokenizer(gguf: model.file)
        func choice(_ rows: Int?, tokenizer: Tokenizer) throws -> (rows: Int?, tokens: [TokenID]?) {
            let environment = ProposerEnvironment(
                targetName: "target", targetModel: model, targetTokenizer: qwen, draftHead: rows)
            return try environment.draftHeadChoice(tokenizer: tokenizer, draftName: "draft")
        }
        let ranked = try #require(TokenFrequencyRanking.builtIn(for: qwen))
        let byDefault = try choice(nil, tokenizer: qwen)
        #expect(
            byDefault.rows == nil
                && byDefault.tokens == Array(ranked.tokens.prefix(ProposerEnvironment.defaultDraftHead)))
        #expect(try choice(100, tokenizer: qwen).tokens == Array(ranked.tokens.prefix(100)))
        let all = try choice(0, tokenizer: qwen)
        #expect(all.rows == nil && all.tokens == nil)
        #expect(try choice(qwen.vocabularySize + 5, tokenizer: qwen).tokens == nil)
        #expect(throws: ProposerSpecError.self) { try choice(-3, tokenizer: qwen) }
        // A vocabulary without a ranking: the first ids when asked for, else the whole head.
        let smol = try SharedModels.tokenizer("smollm2-135m-instruct")
        #expect(try choice(nil, tokenizer: smol).rows == nil && choice(nil, tokenizer: smol).tokens == nil)
        #expect(try choice(500, tokenizer: smol).rows == 500 && choice(500, tokenizer: smol).tokens == nil)
    }
}
