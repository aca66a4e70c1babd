import Foundation
import SpeculateGrammar

/// Constrained output: OpenAI's `response_format` (`text`, `json_object`, `json_schema`) on both
/// endpoints, and llama-server's top-level `json_schema`. The schema is read again from the raw
/// body, because the order of its properties (the order they are generated in) is lost in
/// Foundation's dictionaries.
extension RequestParser {
    /// The grammar the request asks for, or nil for free text.
    func responseGrammar(_ object: [String: Any], body: Data) throws(APIError) -> JSONGrammar? {
        let format = object["response_format"]
        let llamaSchema = object["json_schema"]
        let hasFormat = format != nil && !(format is NSNull)
        let hasLlamaSchema = llamaSchema != nil && !(llamaSchema is NSNull)
        guard hasFormat || hasLlamaSchema else { return nil }
        guard !(hasFormat && hasLlamaSchema) else {
            throw .invalid("Give 'response_format' or 'json_schema', not both", param: "json_schema")
        }
        let ordered: JSONValue
        do { ordered = try JSONValue(parsing: body) } catch {
            throw .invalid("The body is not strict JSON: \(error.message)", code: "invalid_json")
        }
        if hasLlamaSchema {
            return try grammar(ordered["json_schema"], param: "json_schema")
        }
        guard let format = format as? [String: Any], let type = format["type"] as? String else {
            throw .invalid(
                "'response_format' must be an object with a 'type': text, json_object or json_schema",
                param: "response_format")
        }
        switch type {
        case "text": return nil
        case "json_object": return .anyObject
        case "json_schema":
            guard let wrapper = ordered["response_format"]?["json_schema"], case .object = wrapper else {
                throw .invalid(
                    "response_format.json_schema must be an object with a 'schema' (and a 'name')",
                    param: "response_format.json_schema")
            }
            for member in wrapper.objectKeys where !["name", "schema", "strict", "description"].contains(member) {
                throw .invalid(
                    "response_format.json_schema.\(member) is not a field (the fields are name, description, schema, strict)",
                    param: "response_format.json_schema.\(member)")
            }
            return try grammar(wrapper["schema"], param: "response_format.json_schema.schema")
        default:
            throw .invalid(
                "response_format.type '\(type)' is not one of text, json_object, json_schema",
                param: "response_format.type")
        }
    }

    private func grammar(_ schema: JSONValue?, param: String) throws(APIError) -> JSONGrammar {
        guard let schema else { throw .invalid("'\(param)' is required", param: param) }
        do { return try JSONGrammar(schema: schema) } catch {
            throw .invalid("'\(param)': \(error.message)", param: param, code: "invalid_schema")
        }
    }
}

extension JSONValue {
    /// The keys of an object (none for other values).
    fileprivate var objectKeys: [String] {
        guard case .object(let members) = self else { return [] }
        return members.map(\.key)
    }
}
