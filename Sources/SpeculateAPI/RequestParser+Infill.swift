import Foundation
import SpeculateCore
import SpeculateFormat

/// llama-server's `/infill` body: `input_prefix`, `input_suffix`, `input_extra` (other files,
/// `[{"filename", "text"}]`), `prompt` (text the middle starts with), `n_predict` or
/// `max_tokens`, and the sampling fields the completions endpoint reads.
extension RequestParser {
    /// A `POST /infill` body.
    public func infill(_ body: Data) throws(APIError) -> GenerationJob {
        var object = try jsonObject(body)
        func text(_ key: String) throws(APIError) -> String {
            switch object[key] {
            case nil, is NSNull: return ""
            case let text as String: return text
            default: throw .invalid("'\(key)' must be a string", param: key)
            }
        }
        let prefix = try text("input_prefix")
        let suffix = try text("input_suffix")
        let middleStart = try text("prompt")
        guard !(prefix + suffix + middleStart).isEmpty else {
            throw .invalid("'input_prefix', 'input_suffix' and 'prompt' are all empty", param: "input_prefix")
        }
        var files: [FillInTheMiddle.File] = []
        switch object["input_extra"] {
        case nil, is NSNull: break
        case let list as [Any]:
            for (index, item) in list.enumerated() {
                guard let chunk = item as? [String: Any], let content = chunk["text"] as? String else {
                    throw .invalid(
                        "input_extra[\(index)] must be an object with a string 'text'", param: "input_extra")
                }
                files.append(FillInTheMiddle.File(name: chunk["filename"] as? String ?? "", text: content))
            }
        default: throw .invalid("'input_extra' must be a list of {filename, text}", param: "input_extra")
        }
        if object["max_tokens"] == nil, let n = object["n_predict"] {
            guard let count = integer(n), count == -1 || count >= 1 else {
                throw .invalid("'n_predict' must be a positive integer or -1", param: "n_predict")
            }
            if count >= 1 { object["max_tokens"] = count }
        }
        var job = try job(
            object, body: body, endpoint: .infill, prompt: prefix, messages: [], maxTokensKeys: ["max_tokens"],
            defaultMaxTokens: nil)
        job.infill = GenerationJob.Infill(prefix: prefix, suffix: suffix, files: files, middleStart: middleStart)
        return job
    }
}
