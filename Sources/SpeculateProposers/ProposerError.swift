/// Why a draft model cannot serve a target.
public enum ProposerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The draft's vocabulary differs from the target's.
    case incompatibleVocabulary(draft: String, target: String, reason: String)
    /// Options that make no sense.
    case badOption(String)

    public var description: String {
        switch self {
        case .incompatibleVocabulary(let draft, let target, let reason):
            return "draft model '\(draft)' cannot draft for '\(target)': \(reason)"
        case .badOption(let message):
            return message
        }
    }
}
