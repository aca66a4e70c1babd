import Foundation
import SpeculateCore

/// The fields that change the target's scores before sampling: OpenAI's penalties and
/// `logit_bias`, llama-server's `repeat_penalty`/`repeat_last_n` and `min_p`. Each becomes a
/// ``LogitProcessor``, which verification applies at every drafted node along its own path, so
/// that the output with speculation is the output without it.
extension RequestParser {
    /// llama-server's sampling fields this server does not implement, with the value that
    /// leaves each off: refused when set to anything else, never silently ignored.
    static let unimplementedSamplingFields: [(key: String, off: Double?)] = [
        ("grammar", nil), ("mirostat", 0), ("typical_p", 1), ("dry_multiplier", 0),
        ("xtc_probability", 0), ("dynatemp_range", 0), ("top_n_sigma", -1),
    ]

    func logitProcessors(_ object: [String: Any]) throws(APIError) -> [any LogitProcessor] {
        for (key, off) in Self.unimplementedSamplingFields {
            guard let value = object[key], !(value is NSNull) else { continue }
            if let off, let number = value as? NSNumber, boolean(value) == nil, number.doubleValue == off { continue }
            if let text = value as? String, text.isEmpty { continue }
            throw .invalid("'\(key)' is not supported by this server", param: key, code: "unsupported_parameter")
        }
        var shaping = LogitShaping()
        shaping.presencePenalty = Float(try number(object, "presence_penalty", default: 0, in: -2...2))
        shaping.frequencyPenalty = Float(try number(object, "frequency_penalty", default: 0, in: -2...2))
        let repeatPenalty = try number(object, "repeat_penalty", default: 1, in: 0...10)
        guard repeatPenalty > 0 else { throw .invalid("'repeat_penalty' must be above 0", param: "repeat_penalty") }
        shaping.repeatPenalty = Float(repeatPenalty)
        if let value = object["repeat_last_n"], !(value is NSNull) {
            guard let n = integer(value), n >= -1 else {
                throw .invalid(
                    "'repeat_last_n' must be an integer of at least -1 (-1: the whole context, 0: off)",
                    param: "repeat_last_n")
            }
            shaping.repeatWindow = n == -1 ? context : n
        }
        shaping.minP = Float(try number(object, "min_p", default: 0, in: 0...1))
        var processors = shaping.processors
        if let bias = try logitBias(object["logit_bias"]) { processors.append(bias) }
        return processors
    }

    /// `logit_bias`: token ids (as strings) to a bias in -100...100.
    private func logitBias(_ value: Any?) throws(APIError) -> LogitBias? {
        guard let value, !(value is NSNull) else { return nil }
        guard let map = value as? [String: Any] else {
            throw .invalid("'logit_bias' must be an object of token ids to biases", param: "logit_bias")
        }
        guard map.count <= 1024 else {
            throw .invalid("'logit_bias' has \(map.count) entries; at most 1024 are allowed", param: "logit_bias")
        }
        var biases: [Token: Float] = [:]
        for (key, entry) in map {
            guard let id = Int(key), id >= 0, id < vocabularySize else {
                throw .invalid(
                    "logit_bias: '\(key)' is not a token id of this model (0..<\(vocabularySize))", param: "logit_bias")
            }
            guard let number = entry as? NSNumber, boolean(entry) == nil, number.doubleValue.isFinite,
                (-100...100).contains(number.doubleValue)
            else {
                throw .invalid("logit_bias['\(key)'] must be a number from -100 to 100", param: "logit_bias")
            }
            biases[Token(id)] = Float(number.doubleValue)
        }
        return biases.isEmpty ? nil : LogitBias(biases)
    }
}
