import Foundation

/// Something the decoder reports while it runs.
public enum DecoderEvent: Sendable {
    /// Newly accepted tokens, in order, and the text released with them, piece by piece
    /// (``OutputText``: whole characters only, never a stop string or text that may still become
    /// one; empty unless ``GenerationOptions/tokenBytes`` is set). A piece can belong to a token
    /// of an earlier event (text held back until it could not be a stop string). The last event
    /// before `.finished` may carry no tokens, only the text held back until the end.
    case tokens([GeneratedToken], text: [TextPiece])
    /// Figures of the step that produced them.
    case step(StepStatistics)
    /// The run ended.
    case finished(RunStatistics)
}

/// Errors the decoder reports.
public enum DecoderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The prompt is empty.
    case emptyPrompt
    /// The prompt does not fit in the target's context.
    case promptTooLong(tokens: Int, capacity: Int)
    /// A proposer draws from a vocabulary of another size than the target's.
    case vocabularyMismatch(String)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty"
        case .promptTooLong(let tokens, let capacity):
            return "the prompt has \(tokens) tokens but the context holds \(capacity); shorten it or raise --context"
        case .vocabularyMismatch(let message): return message
        }
    }
}
