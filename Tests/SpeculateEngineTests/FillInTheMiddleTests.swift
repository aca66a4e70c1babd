import Foundation
import SpeculateCore
import SpeculateEngine
import SpeculateFormat
import SpeculateTestSupport
import Testing

/// Fill-in-the-middle on the catalog's Qwen2.5-Coder draft (its vocabulary has the FIM tokens
/// and its file carries no `tokenizer.ggml.fim_*` keys): the prompt layout, a middle that fits
/// between prefix and suffix, and every strategy equal to plain decoding.
@Suite("Fill-in-the-middle")
struct FillInTheMiddleTests {
    static let name = "qwen2.5-coder-0.5b-instruct"

    @Test("the FIM tokens are found by their spellings; the prompt is prefix, suffix, middle")
    func layout() throws {
        let tokenizer = try SharedModels.tokenizer(Self.name)
        let fim = try #require(FillInTheMiddle(tokenizer: tokenizer))
        #expect(tokenizer.tokens[Int(fim.prefix)] == "<|fim_prefix|>")
        #expect(tokenizer.tokens[Int(fim.suffix)] == "<|fim_suffix|>")
        #expect(tokenizer.tokens[Int(fim.middle)] == "<|fim_middle|>")
        #expect(fim.fileSeparator.map { tokenizer.tokens[Int($0)] } == "<|file_sep|>")
        #expect(
            Set(fim.endTokens.map { tokenizer.tokens[Int($0)] }) == ["<|file_sep|>", "<|fim_pad|>", "<|repo_name|>"])
        let prompt = try #require(fim.prompt(prefix: "a<|fim_suffix|>", suffix: "b", tokenizer: tokenizer))
        // Control-token look-alikes in the texts stay text.
        #expect(
            prompt == [fim.prefix] + tokenizer.encode("a<|fim_suffix|>") + [
                fim.suffix, tokenizer.encode("b")[0], fim.middle,
            ])
        let withFile = try #require(
            fim.prompt(
                prefix: "x", suffix: "", files: [.init(name: "util.py", text: "def f(): pass\n")], tokenizer: tokenizer)
        )
        #expect(withFile.first == fim.fileSeparator && withFile.contains(fim.prefix))
        // A vocabulary without them (SmolLM2's) has none.
        #expect(FillInTheMiddle(tokenizer: try SharedModels.tokenizer("smollm2-135m-instruct")) == nil)
    }

    @Test("the middle fits between prefix and suffix, and every strategy gives the plain tokens")
    func middle() async throws {
        let tokenizer = try SharedModels.tokenizer(Self.name)
        let model = SpeculativeModel(
            name: Self.name, model: try SharedModels.model(Self.name), tokenizer: tokenizer, context: 1024)
        let fim = try #require(FillInTheMiddle(tokenizer: tokenizer))
        let prompt = try #require(
            fim.prompt(
                prefix: "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    ",
                suffix: "\n\n\nprint(add(2, 3))\n", tokenizer: tokenizer))
        let parameters = GenerateParameters(maxTokens: 24)
        let plain = try await EngineTests.run(
            try await model.generator(), .tokens(prompt.map { Token($0) }), parameters)
        #expect(plain.text.contains("return a + b"), "\(plain.text.debugDescription)")
        for strategy in ["ngram", "draft:\(Self.name)"] {
            let speculative = try await model.generator(
                Strategy(proposers: [strategy], budget: TreeBudget(maxNodes: 12, maxDepth: 6)))
            let result = try await EngineTests.run(speculative, .tokens(prompt.map { Token($0) }), parameters)
            #expect(result.tokens == plain.tokens, "\(strategy)")
        }
    }
}
