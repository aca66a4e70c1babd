/// Why a tokenizer could not be built from a model's metadata.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `tokenizer.ggml.model` names a tokenizer family Speculate does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer Speculate does not implement.
    case unknownPreTokenizer(String)
    /// Metadata needed to build the tokenizer is absent or malformed.
    case badMetadata(String)
    /// A merge rule whose parts or result are not in the vocabulary.
    case badMerge(index: Int, rule: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return
                "tokenizer model '\(name)' is not supported (Speculate implements byte-level BPE, 'gpt2', and SentencePiece, 'llama')"
        case .unknownPreTokenizer(let name):
            let known = PreTokenizer.allCases.map(\.rawValue).joined(separator: ", ")
            return "pre-tokenizer '\(name)' is not supported (known: \(known))"
        case .badMetadata(let reason):
            return "bad tokenizer metadata: \(reason)"
        case .badMerge(let index, let rule):
            return "merge rule #\(index) '\(rule)' refers to tokens that are not in the vocabulary"
        }
    }
}

/// The role of a vocabulary entry (`tokenizer.ggml.token_type`).
public enum TokenKind: Int32, Sendable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// A token id. Vocabularies here have well under 2^31 entries.
public typealias TokenID = Int32
