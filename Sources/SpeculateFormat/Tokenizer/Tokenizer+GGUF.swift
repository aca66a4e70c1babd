/// Reading a tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
extension Tokenizer {
    /// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` metadata.
    public init(gguf file: GGUFFile) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" || model == "llama" else { throw TokenizerError.unsupportedModel(model) }
        let tokens = try file.stringArray("tokenizer.ggml.tokens")
        var kinds = [TokenKind](repeating: .normal, count: tokens.count)
        if file.metadata["tokenizer.ggml.token_type"] != nil {
            let raw = try file.integerArray("tokenizer.ggml.token_type")
            guard raw.count == tokens.count else {
                throw TokenizerError.badMetadata("\(raw.count) token types for \(tokens.count) tokens")
            }
            kinds = raw.map { TokenKind(rawValue: Int32(clamping: $0)) ?? .normal }
        }
        func optionalID(_ key: String) throws -> TokenID? {
            guard file.metadata[key] != nil else { return nil }
            let id = try file.integer(key)
            guard id >= 0, id < tokens.count else {
                throw TokenizerError.badMetadata("\(key) = \(id) is outside the vocabulary of \(tokens.count)")
            }
            return TokenID(id)
        }
        func flag(_ key: String, otherwise: Bool) throws -> Bool {
            file.metadata[key] == nil ? otherwise : try file.integer(key) != 0
        }
        let special = try SpecialIDs(
            bos: optionalID("tokenizer.ggml.bos_token_id"), eos: optionalID("tokenizer.ggml.eos_token_id"),
            pad: optionalID("tokenizer.ggml.padding_token_id"), unknown: optionalID("tokenizer.ggml.unknown_token_id"))
        if model == "llama" {
            let scores = try file.floatArray("tokenizer.ggml.scores")
            // llama.cpp's defaults for SentencePiece files that do not say.
            try self.init(
                sentencePiece: tokens, scores: scores.map { Float($0) }, kinds: kinds, special: special,
                addsBOS: flag("tokenizer.ggml.add_bos_token", otherwise: true),
                addsSpacePrefix: flag("tokenizer.ggml.add_space_prefix", otherwise: true))
        } else {
            let preName = (try? file.string("tokenizer.ggml.pre")) ?? "default"
            guard let pre = PreTokenizer(ggmlName: preName) else { throw TokenizerError.unknownPreTokenizer(preName) }
            let merges = try file.stringArray("tokenizer.ggml.merges")
            try self.init(
                tokens: tokens, kinds: kinds, merges: merges, preTokenizer: pre, special: special,
                addsBOS: flag("tokenizer.ggml.add_bos_token", otherwise: false))
        }
        if file.metadata["tokenizer.chat_template"] != nil {
            chatTemplateSource = try file.string("tokenizer.chat_template")
        }
    }
}
