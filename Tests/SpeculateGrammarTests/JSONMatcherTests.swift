import Foundation
import SpeculateGrammar
import Testing

/// The byte-level matcher against texts whose verdict is known, and the schema subset's errors.
@Suite("JSON grammar")
struct JSONMatcherTests {
    static func accepts(_ grammar: JSONGrammar, _ text: String) -> Bool {
        var matcher = JSONMatcher(grammar)
        return matcher.feed(Array(text.utf8), grammar: grammar) && matcher.isComplete
    }

    @Test("json_object mode takes any JSON object and nothing else")
    func anyObject() {
        let grammar = JSONGrammar.anyObject
        for text in [
            "{}", " {\"a\": 1}", "{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\\n\"],\"b\":{\"c\":{}}}",
            "{\"é\": \"日本\", \"emoji\": \"😀\"}", "{\"a\": 0.0, \"b\": -0, \"c\": 1E9}",
        ] {
            let verdict = Self.accepts(grammar, text)
            #expect(verdict, "\(text)")
        }
        for text in [
            "[]", "1", "\"a\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
            "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\u{01}\"}", "{} ", "{}{}", "{\"a\":-}", "{\"a\":[1,]}",
            "{\"a\":\"\\u12G4\"}",
        ] {
            let verdict = Self.accepts(grammar, text)
            #expect(!verdict, "\(text)")
        }
        // Invalid UTF-8 inside strings: a stray continuation byte, an overlong form, a surrogate.
        for bytes: [UInt8] in [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82]] {
            var matcher = JSONMatcher(grammar)
            let text = Array("{\"a\":\"".utf8) + bytes + Array("\"}".utf8)
            #expect(!(matcher.feed(text, grammar: grammar) && matcher.isComplete), "\(bytes)")
        }
        // Whitespace is bounded per gap.
        let spaced = (
            Self.accepts(grammar, "{" + String(repeating: " ", count: 24) + "}"),
            Self.accepts(grammar, "{" + String(repeating: " ", count: 25) + "}")
        )
        #expect(spaced == (true, false))
    }

    @Test("schemas: properties in order, required ones present, enums, unions, arrays, refs")
    func schemas() throws {
        let person = try JSONGrammar(
            schemaText: """
                {"type": "object", "properties": {
                   "name": {"type": "string"}, "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"enum": ["a", "b", 12, 1]}, "minItems": 1, "maxItems": 2},
                   "nick": {"type": ["string", "null"]}, "ok": {"type": "boolean"}},
                 "required": ["name", "tags"], "additionalProperties": false}
                """)
        for text in [
            #"{"name": "Ann", "tags": ["a"]}"#, #"{"name":"Ann","age":3,"tags":[12, 1],"nick":null,"ok":true}"#,
            #"{"name": "A", "tags": ["b"], "ok": false}"#, #"{"name": "A", "tags": [1], "nick": "x"}"#,
        ] {
            let verdict = Self.accepts(person, text)
            #expect(verdict, "\(text)")
        }
        for text in [
            #"{"tags": ["a"], "name": "Ann"}"#, #"{"name": "Ann"}"#, #"{"name": "Ann", "tags": []}"#,
            #"{"name": "Ann", "tags": ["a", "b", "a"]}"#, #"{"name": "Ann", "tags": ["c"]}"#,
            #"{"name": "Ann", "age": 3.5, "tags": ["a"]}"#, #"{"name": "Ann", "tags": ["a"], "extra": 1}"#,
            #"{"name": 1, "tags": ["a"]}"#, #"{"name": "A", "tags": [123]}"#,
        ] {
            let verdict = Self.accepts(person, text)
            #expect(!verdict, "\(text)")
        }
        let tree = try JSONGrammar(
            schemaText: """
                {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object",
                  "properties": {"value": {"type": "number"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                  "required": ["value"]}}}
                """)
        let trees = (
            Self.accepts(tree, #"{"value": 1, "children": [{"value": 2}, {"value": 3, "children": []}]}"#),
            Self.accepts(tree, #"{"value": 1, "children": [{}]}"#)
        )
        #expect(trees == (true, false))
        let constant = try JSONGrammar(schemaText: #"{"const": {"kind": "x", "n": [1, 2]}}"#)
        let constants = (
            Self.accepts(constant, #"{"kind":"x","n":[1,2]}"#), Self.accepts(constant, #"{"kind": "x", "n": [1, 2]}"#)
        )
        #expect(constants == (true, false))
    }

    @Test("unsupported keywords and broken schemas are refused by name")
    func errors() {
        let cases: [(String, String)] = [
            (#"{"type": "string", "pattern": "a+"}"#, "'pattern' is not supported"),
            (#"{"type": "strin"}"#, "'strin' is not a JSON Schema type"),
            (#"{"properties": {"a": {}}, "required": ["b"]}"#, "'b'"),
            (#"{"anyOf": [{"type": "integer"}, {"type": "number"}]}"#, "alternatives must start differently"),
            (##"{"$ref": "#/$defs/missing"}"##, "does not resolve"),
            (#"{"$ref": "http://x/y"}"#, "only references inside the schema"),
            (#"{"type": "array", "minItems": 3, "maxItems": 2}"#, "minItems is above maxItems"),
            (#"{"properties": {"a": {}}, "additionalProperties": true}"#, "additionalProperties"),
            ("{\"type\": ", "not valid JSON"),
            ("false", "allows no value"),
        ]
        for (schema, message) in cases {
            do {
                _ = try JSONGrammar(schemaText: schema)
                Issue.record("accepted \(schema)")
            } catch {
                #expect(error.message.contains(message), "\(schema): \(error.message)")
            }
        }
    }

    @Test("JSONValue keeps key order and number text, and refuses what Python's json refuses")
    func values() throws {
        let value = try JSONValue(parsing: Array(#"{"b": 1.50, "a": [true, null, "\u00e9\ud83d\ude00"]}"#.utf8))
        #expect(value.text == #"{"b":1.50,"a":[true,null,"é😀"]}"#)
        for text in ["{", "[1,]", "01", "\"\u{01}\"", "{\"a\" 1}", "1 2", "nul"] {
            #expect(throws: JSONSchemaError.self, "\(text)") { try JSONValue(parsing: Array(text.utf8)) }
        }
    }
}
