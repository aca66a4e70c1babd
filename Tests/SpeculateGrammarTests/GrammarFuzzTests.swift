import Foundation
import SpeculateGrammar
import SpeculateTestSupport
import Testing

/// Random schemas of the supported subset, random documents walked through their grammars byte
/// by byte, and every document checked by Python's `json` and `jsonschema` (references no one
/// here wrote): the grammar never lets out a document that is not valid JSON matching its schema.
@Suite("JSON grammar against jsonschema")
struct GrammarFuzzTests {
    /// A small deterministic generator (the seed decides every case).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func schema(depth: Int, _ random: inout Generator) -> String {
        let leaves = [
            #"{"type": "string"}"#, #"{"type": "number"}"#, #"{"type": "integer"}"#, #"{"type": "boolean"}"#,
            #"{"type": "null"}"#, #"{"enum": ["red", "green", 1, 12, null, true, "é\"x"]}"#,
            #"{"const": [1, {"a": "b"}]}"#,
            #"{"type": ["integer", "null"]}"#,
            #"{"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}"#,
            #"{"type": "object"}"#, #"{}"#, #"{"type": "object", "additionalProperties": {"type": "integer"}}"#,
        ]
        guard depth > 0, Int.random(in: 0..<3, using: &random) > 0 else { return leaves.randomElement(using: &random)! }
        if Bool.random(using: &random) {
            let minimum = Int.random(in: 0...2, using: &random)
            let maximum = minimum + Int.random(in: 0...3, using: &random)
            return
                #"{"type": "array", "items": \#(schema(depth: depth - 1, &random)), "minItems": \#(minimum), "maxItems": \#(maximum)}"#
        }
        let count = Int.random(in: 0...4, using: &random)
        let names = ["id", "name", "na", "value\\n", "ü", "a b"].shuffled(using: &random).prefix(count)
        let properties = names.map { "\"\($0)\": \(schema(depth: depth - 1, &random))" }.joined(separator: ", ")
        let required = names.filter { _ in Bool.random(using: &random) }.map { "\"\($0)\"" }.joined(separator: ", ")
        return
            #"{"type": "object", "properties": {\#(properties)}, "required": [\#(required)], "additionalProperties": false}"#
    }

    /// Bytes a walk tries: structure, digits, keyword and key letters, escapes, multi-byte UTF-8.
    static let alphabet: [UInt8] =
        Array(" \n{}[],:\"\\-+.0123456789eEtrufalsnidmvbxyzü/".utf8) + [0xC3, 0xA9, 0xE2, 0x82, 0xAC]
    static let closers: Set<UInt8> = Set("\"]}".utf8)
    static let growers: Set<UInt8> = Set(" \n{[,0123456789-+.eE\\".utf8)

    /// A random document: bytes the grammar takes, steered towards closing once it is long.
    static func document(_ grammar: JSONGrammar, _ random: inout Generator) -> String? {
        var matcher = JSONMatcher(grammar)
        var text: [UInt8] = []
        while text.count < 3000 {
            if matcher.isComplete, text.count > 60 || Int.random(in: 0..<4, using: &random) == 0 {
                return String(decoding: text, as: UTF8.self)
            }
            var allowed = alphabet.filter { byte in
                var probe = matcher
                return probe.feed(byte, grammar: grammar)
            }
            if text.count > 80 {
                let closing = allowed.filter(closers.contains)
                let calm = allowed.filter { !growers.contains($0) }
                allowed =
                    !closing.isEmpty && Int.random(in: 0..<3, using: &random) > 0
                    ? closing : calm.isEmpty ? allowed : calm
            }
            guard let byte = allowed.randomElement(using: &random) else {
                // Only the alphabet was tried; a true dead end (no byte at all) fails the test.
                if !matcher.isComplete,
                    !(0...255).contains(where: {
                        var probe = matcher
                        return probe.feed(UInt8($0), grammar: grammar)
                    })
                {
                    Issue.record("dead end after \(String(decoding: text, as: UTF8.self).debugDescription)")
                }
                return matcher.isComplete ? String(decoding: text, as: UTF8.self) : nil
            }
            matcher.feed(byte, grammar: grammar)
            text.append(byte)
        }
        return nil
    }

    @Test("800 random documents of 200 random schemas are valid JSON that jsonschema accepts")
    func randomDocuments() throws {
        var random = Generator(state: 20_261_207)
        var lines: [String] = []
        var unfinished = 0
        for _ in 0..<200 {
            let text = Self.schema(depth: 3, &random)
            let grammar = try JSONGrammar(schemaText: text)
            for _ in 0..<4 {
                guard let document = Self.document(grammar, &random) else {
                    unfinished += 1
                    continue
                }
                let documentJSON = String(
                    decoding: try JSONSerialization.data(
                        withJSONObject: [document], options: [.withoutEscapingSlashes]), as: UTF8.self
                ).dropFirst().dropLast()
                lines.append("{\"schema\": \(text), \"document\": \(documentJSON)}")
            }
        }
        #expect(unfinished < 40, "\(unfinished) walks did not finish")
        let output = try TestSupport.runProcess(
            "/usr/bin/env",
            [
                ProcessInfo.processInfo.environment["SPECULATE_PYTHON"] ?? "python3",
                TestSupport.packageRoot.appendingPathComponent("Tests/Reference/json_schema_check.py").path,
            ],
            input: Data(lines.joined(separator: "\n").utf8))
        let report = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
        #expect(report["checked"] as? Int == lines.count)
        let failures = report["failures"] as? [Any] ?? []
        #expect(failures.isEmpty, "\(failures)")
    }
}
