import SpeculateFormat

/// Why a model cannot be loaded or a request cannot be run.
public enum RuntimeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `general.architecture` names an architecture the runtime does not implement.
    case unsupportedArchitecture(String)
    /// A tensor the architecture needs is absent.
    case missingTensor(String)
    /// A tensor's shape differs from what the hyper-parameters imply.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A hyper-parameter is absent or impossible.
    case badHyperParameter(String)
    /// The file asks for something the runtime does not implement (named in the message).
    case unsupportedFeature(String)
    /// The requested context is longer than the model was trained for.
    case contextTooLong(requested: Int, trained: Int)
    /// The tokens do not fit in the session's context.
    case contextFull(needed: Int, capacity: Int)
    /// A token id outside the vocabulary.
    case tokenOutOfRange(TokenID, vocabulary: Int)
    /// A tree whose parent links are not earlier nodes of the same batch.
    case malformedTree(String)
    /// `commit` or `rollback` asked for something the cache does not hold.
    case invalidCacheOperation(String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let name):
            return
                "architecture '\(name)' is not supported (supported: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .missingTensor(let name):
            return "the model file lacks tensor '\(name)'"
        case .shapeMismatch(let tensor, let expected, let found):
            return "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case .badHyperParameter(let message):
            return "bad model hyper-parameter: \(message)"
        case .unsupportedFeature(let message):
            return "the model uses \(message), which Speculate does not implement"
        case .contextTooLong(let requested, let trained):
            return "a context of \(requested) tokens was requested but the model was trained for \(trained)"
        case .contextFull(let needed, let capacity):
            return
                "the context is full: \(needed) tokens needed, the session holds \(capacity) (use a larger --context)"
        case .tokenOutOfRange(let id, let vocabulary):
            return "token id \(id) is outside the vocabulary of \(vocabulary)"
        case .malformedTree(let message):
            return "malformed token tree: \(message)"
        case .invalidCacheOperation(let message):
            return "invalid KV-cache operation: \(message)"
        }
    }
}
