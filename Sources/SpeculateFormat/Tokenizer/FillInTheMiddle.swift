/// A model's fill-in-the-middle tokens, and its prompts in the prefix-suffix-middle order
/// (`<|fim_prefix|>` prefix `<|fim_suffix|>` suffix `<|fim_middle|>`), the layout code models
/// such as Qwen2.5-Coder and StarCoder are trained on: the model writes what goes between the
/// prefix and the suffix.
public struct FillInTheMiddle: Sendable, Equatable {
    /// The token that opens the prefix (the text before the cursor).
    public let prefix: TokenID
    /// The token that opens the suffix (the text after the cursor).
    public let suffix: TokenID
    /// The token after which the model writes the middle.
    public let middle: TokenID
    /// The token that opens another file of the repository (`<|file_sep|>`), if the model has one.
    public let fileSeparator: TokenID?
    /// Tokens that end a middle besides the model's end of text: padding, a new repository or a
    /// new file (`<|fim_pad|>`, `<|repo_name|>`, `<|file_sep|>`), as llama.cpp ends on them.
    public let endTokens: Set<TokenID>

    /// The known spellings of the four tokens, in the files that carry no `tokenizer.ggml.fim_*`
    /// keys (the catalog's Qwen2.5-Coder files among them).
    static let spellings: [(prefix: String, suffix: String, middle: String, separator: String)] = [
        ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"),
        ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"),
        ("<|fim_begin|>", "<|fim_hole|>", "<|fim_end|>", "<|file_sep|>"),
    ]

    /// The tokens of `tokenizer`: from `file`'s `tokenizer.ggml.fim_pre/suf/mid/sep_token_id`
    /// where it has them, else by the known spellings; nil for a model without them.
    public init?(tokenizer: Tokenizer, file: GGUFFile? = nil) {
        func key(_ name: String) -> TokenID? {
            guard let file, file.metadata["tokenizer.ggml.\(name)_token_id"] != nil,
                let id = try? file.integer("tokenizer.ggml.\(name)_token_id"), id >= 0, id < tokenizer.tokens.count
            else { return nil }
            return TokenID(id)
        }
        if let prefix = key("fim_pre"), let suffix = key("fim_suf"), let middle = key("fim_mid") {
            let ends = Set([key("fim_pad"), key("fim_rep")].compactMap { $0 })
            self.init(prefix: prefix, suffix: suffix, middle: middle, fileSeparator: key("fim_sep"), ends: ends)
            return
        }
        for spelling in Self.spellings {
            if let prefix = tokenizer.id(of: spelling.prefix), let suffix = tokenizer.id(of: spelling.suffix),
                let middle = tokenizer.id(of: spelling.middle)
            {
                self.init(
                    prefix: prefix, suffix: suffix, middle: middle, fileSeparator: tokenizer.id(of: spelling.separator),
                    ends: Set(Self.endSpellings.compactMap(tokenizer.id(of:))))
                return
            }
        }
        return nil
    }

    init(prefix: TokenID, suffix: TokenID, middle: TokenID, fileSeparator: TokenID?, ends: Set<TokenID> = []) {
        self.prefix = prefix
        self.suffix = suffix
        self.middle = middle
        self.fileSeparator = fileSeparator
        endTokens = ends.union(fileSeparator.map { [$0] } ?? [])
    }

    /// The spellings of the tokens that end a middle, besides the file separator.
    static let endSpellings = ["<|fim_pad|>", "<|repo_name|>", "<fim_pad>", "<reponame>", "<repo_name>"]

    /// Other files of the repository given as context (llama-server's `input_extra`).
    public struct File: Sendable, Equatable {
        /// The file's name (its path in the repository).
        public var name: String
        /// Its contents.
        public var text: String
        /// A file `name` holding `text`.
        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    /// The prompt: the other files (each `<|file_sep|>` name, newline, text), then prefix, suffix
    /// and the middle's opening, then `middleStart` (text the middle begins with). Texts are
    /// encoded without parsing control tokens: only this layout places them. Nil when `files`
    /// are given but the model has no file separator.
    public func prompt(
        prefix text: String, suffix: String, files: [File] = [], middleStart: String = "", tokenizer: Tokenizer
    ) -> [TokenID]? {
        var tokens: [TokenID] = tokenizer.addsBOS ? tokenizer.bosID.map { [$0] } ?? [] : []
        if !files.isEmpty {
            guard let fileSeparator else { return nil }
            for file in files {
                tokens += [fileSeparator] + tokenizer.encode(file.name + "\n" + file.text)
            }
        }
        tokens += [prefix] + tokenizer.encode(text) + [self.suffix] + tokenizer.encode(suffix) + [middle]
        return tokens + tokenizer.encode(middleStart)
    }
}
