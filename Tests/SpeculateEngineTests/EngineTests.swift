import SpeculateCore
import SpeculateEngine
import SpeculateFormat
import SpeculateStrategies
import SpeculateTestSupport
import Testing

@Suite("The library facade", .serialized)
struct EngineTests {
    static let name = "smollm2-135m-instruct"

    /// The target through the facade, sharing the test process's loaded weights.
    static func model() throws -> SpeculativeModel {
        SpeculativeModel(
            name: name, model: try SharedModels.model(name), tokenizer: try SharedModels.tokenizer(name), context: 512)
    }

    /// The text and tokens of one generation.
    static func run(_ generator: SpeculativeGenerator, _ prompt: Prompt, _ parameters: GenerateParameters) async throws
        -> (text: String, tokens: [Token], statistics: RunStatistics)
    {
        var text = ""
        var tokens: [Token] = []
        var statistics = RunStatistics()
        for try await event in generator.generate(prompt, parameters: parameters) {
            switch event {
            case .tokens(let new, let pieces):
                tokens += new.map(\.token)
                text += pieces.map(\.text).joined()
            case .finished(let figures): statistics = figures
            case .step: break
            }
        }
        return (text, tokens, statistics)
    }

    @Test("a strategy from spec strings gives the plain output, and the text is the tokens' text")
    func specStringsMatchPlain() async throws {
        let model = try Self.model()
        let prompt = Prompt.text("def fibonacci(n):\n")
        let parameters = GenerateParameters(maxTokens: 40, ignoreEndOfSequence: true)
        let plain = try await Self.run(try await model.generator(), prompt, parameters)
        #expect(plain.tokens.count == 40)
        #expect(plain.text == model.tokenizer.decode(plain.tokens, skipControl: true))
        let speculative = try await model.generator(
            Strategy(proposers: ["ngram", "auto:draft=none"], budget: TreeBudget(maxNodes: 8, maxDepth: 4)))
        let result = try await Self.run(speculative, prompt, parameters)
        #expect(result.tokens == plain.tokens)
        #expect(result.statistics.proposers.map(\.name) == ["auto"])
    }

    @Test("stop strings end the text before them, chat prompts use the chat format, bad specs are clear errors")
    func stopsChatAndErrors() async throws {
        let model = try Self.model()
        let generator = try await model.generator()
        let whole = try await Self.run(
            generator, .text("def add(a, b):\n"), GenerateParameters(maxTokens: 30, ignoreEndOfSequence: true))
        let stop = String(whole.text.dropFirst(6).prefix(3))
        let cut = try await Self.run(
            generator, .text("def add(a, b):\n"),
            GenerateParameters(maxTokens: 30, stop: [stop], ignoreEndOfSequence: true))
        let expected = whole.text.components(separatedBy: stop)[0]
        #expect(cut.text == expected)
        #expect(cut.statistics.stopReason == .stopString)
        let chat = try await Self.run(
            generator, .chat([ChatMessage(role: "user", content: "Say hi.")]), GenerateParameters(maxTokens: 8))
        #expect(chat.statistics.cachedPromptTokens == 0 && !chat.tokens.isEmpty)
        #expect(
            try model.tokens(of: .chat([ChatMessage(role: "user", content: "Say hi.")]))
                == ChatFormat.tokens([ChatMessage(role: "user", content: "Say hi.")], tokenizer: model.tokenizer))
        await #expect(throws: ProposerSpecError.self) {
            _ = try await model.generator(Strategy(proposers: ["nonsense"]))
        }
    }

    @Test("auto's draft for a file the catalog does not name: a downloaded model with the same vocabulary")
    func pairingByVocabulary() throws {
        let target = "qwen2.5-coder-1.5b-instruct"
        let byPath = SpeculativeModel(
            name: try TestSupport.modelPath(target), model: try SharedModels.model(target),
            tokenizer: try SharedModels.tokenizer(target))
        #expect(byPath.pairedDraft(pullMissing: false) == "qwen2.5-coder-0.5b-instruct")
        // SmolLM2's vocabulary is its own: no catalog model shares it.
        let smol = SpeculativeModel(
            name: try TestSupport.modelPath(Self.name), model: try SharedModels.model(Self.name),
            tokenizer: try SharedModels.tokenizer(Self.name))
        #expect(smol.pairedDraft(pullMissing: false) == nil)
    }
}
