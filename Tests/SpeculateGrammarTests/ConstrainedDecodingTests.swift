import Foundation
import SpeculateCore
import SpeculateEngine
import SpeculateFormat
import SpeculateGrammar
import SpeculateTestSupport
import Testing

/// Grammars over a real vocabulary (Qwen2.5's 151,665 tokens): masks equal to checking every
/// token on its own, and constrained decoding with speculation equal to constrained plain
/// decoding, its output valid JSON of the schema.
@Suite("Constrained decoding")
struct ConstrainedDecodingTests {
    static let name = "qwen2.5-coder-0.5b-instruct"
    static let schema = """
        {"type": "object", "properties": {
           "name": {"type": "string"}, "language": {"enum": ["python", "swift", "c"]},
           "arguments": {"type": "array", "items": {"type": "object",
              "properties": {"name": {"type": "string"}, "type": {"type": "string"}}, "required": ["name", "type"]}},
           "pure": {"type": "boolean"}, "lines": {"type": "integer"}},
         "required": ["name", "language", "arguments", "pure", "lines"]}
        """

    @Test("masks equal every token checked on its own, at structural and string positions")
    func masks() throws {
        let tokenizer = try SharedModels.tokenizer(Self.name)
        let vocabulary = try GrammarVocabulary(tokenizer: tokenizer)
        let grammar = try JSONGrammar(schemaText: Self.schema)
        let text = Array(#"{"name": "add_two", "language": "python", "arguments": [{"name": "a", "type": "in"#.utf8)
        let constraint = GrammarConstraint(grammar: grammar, vocabulary: vocabulary)
        var state = JSONMatcher(grammar)
        var checked = 0
        for (offset, byte) in text.enumerated() {
            if [0, 1, 2, 9, 12, 22, 40, text.count - 1].contains(offset) {
                var logits = [Float](repeating: 0, count: tokenizer.vocabularySize)
                let prefix = tokenizer.encode(String(decoding: text[..<offset], as: UTF8.self))
                // The constraint sees the same bytes as tokens; skip prefixes that end mid-character.
                if tokenizer.decode(prefix).utf8.count == offset {
                    constraint.process(&logits, history: TokenHistory(committed: prefix, promptLength: 0))
                    for id in 0..<tokenizer.vocabularySize {
                        var probe = state
                        let expected: Bool
                        if tokenizer.stopIDs.contains(TokenID(id)) {
                            expected = state.isComplete
                        } else if [.normal, .byte, .userDefined].contains(tokenizer.kinds[id]) {
                            let bytes = tokenizer.bytes(of: TokenID(id))
                            expected = !bytes.isEmpty && probe.feed(bytes, grammar: grammar)
                        } else {
                            expected = false
                        }
                        if (logits[id] == 0) != expected {
                            Issue.record("offset \(offset): token \(id) \(tokenizer.tokens[id].debugDescription)")
                            return
                        }
                    }
                    checked += 1
                }
            }
            state.feed(byte, grammar: grammar)
        }
        #expect(checked >= 6)
        let figures = constraint.statistics
        print("grammar masks: \(figures.computed) computed in \(String(format: "%.1f", figures.seconds * 1000)) ms")
    }

    @Test("constrained speculative decoding equals constrained plain decoding; the output is the schema's")
    func decoding() async throws {
        let tokenizer = try SharedModels.tokenizer(Self.name)
        let model = SpeculativeModel(
            name: Self.name, model: try SharedModels.model(Self.name), tokenizer: tokenizer, context: 1024)
        let prompt = Prompt.chat([
            ChatMessage(
                role: "user",
                content: "Describe the Python function `def add_two(a: int, b: int) -> int: return a + b` as JSON.")
        ])
        // A short document (its name, language, purity and size) keeps the run to a few dozen tokens.
        let grammar = try JSONGrammar(
            schemaText: """
                {"type": "object", "properties": {"name": {"type": "string"},
                 "language": {"enum": ["python", "swift", "c"]}, "pure": {"type": "boolean"}, "lines": {"type": "integer"}},
                 "required": ["name", "language", "pure", "lines"]}
                """)
        func parameters() throws -> GenerateParameters {
            GenerateParameters(maxTokens: 48, logitProcessors: [try model.constraint(grammar)])
        }
        let plain = try await Self.run(try await model.generator(), prompt, try parameters())
        var matcher = JSONMatcher(grammar)
        #expect(matcher.feed(Array(plain.text.utf8), grammar: grammar) && matcher.isComplete, "\(plain.text)")
        let value = try JSONValue(parsing: Array(plain.text.utf8))
        #expect(value["language"] == .string("python"), "\(plain.text)")
        // The draft proposes unconstrained tokens the grammar cuts; n-gram lookup under grammars
        // runs through the server tests.
        for strategy in ["draft:\(Self.name)"] {
            let speculative = try await model.generator(
                Strategy(proposers: [strategy], budget: TreeBudget(maxNodes: 12, maxDepth: 6)))
            let result = try await Self.run(speculative, prompt, try parameters())
            #expect(result.tokens == plain.tokens, "\(strategy): \(result.text)")
        }
    }

    static func run(_ generator: SpeculativeGenerator, _ prompt: Prompt, _ parameters: GenerateParameters)
        async throws -> (text: String, tokens: [Token])
    {
        var text = ""
        var tokens: [Token] = []
        for try await event in generator.generate(prompt, parameters: parameters) {
            if case .tokens(let new, let pieces) = event {
                tokens += new.map(\.token)
                text += pieces.map(\.text).joined()
            }
        }
        return (text, tokens)
    }
}
