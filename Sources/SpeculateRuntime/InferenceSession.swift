import Foundation
import SpeculateFormat

/// One decoding context over a ``TransformerModel``: the KV cache and scratch memory.
///
/// Tokens are evaluated as a batch whose `parents` describe a tree: node `i` attends to the
/// committed prefix and to its ancestors in the batch only, at position `committed + depth`.
/// The batch's keys and values stay pending until ``commit(_:)`` moves one accepted path into
/// place after the prefix; the rest is dropped. Every node's result is computed by the same
/// code in the same order whatever the batch, so a node's logits are bit-identical whether it
/// is evaluated alone, in a chain or inside a tree.
///
/// A session is used by one task at a time; the lock makes that safe to share.
public final class InferenceSession: @unchecked Sendable {
    /// The model.
    public let model: TransformerModel
    /// Slots in the KV cache (committed tokens plus one pending batch).
    public let capacity: Int
    let lock = NSLock()
    var state: SessionState

    /// A session holding up to `context` tokens (committed plus pending).
    ///
    /// `headRows` restricts the output head to the first rows of the vocabulary (the others get
    /// -infinity): for a draft model, byte-level BPE ids are roughly in order of frequency, so
    /// scoring only the most frequent tokens makes drafting cheaper (FR-Spec). The target verifies
    /// every draft, so output stays lossless.
    public convenience init(model: TransformerModel, context: Int, headRows: Int? = nil) throws {
        if let headRows, headRows <= 0 {
            throw RuntimeError.badHyperParameter("head rows must be positive, got \(headRows)")
        }
        try self.init(
            model: model, context: context,
            head: headRows.map { HeadSelection.firstRows(min($0, model.config.vocabularySize)) })
    }

    /// A session whose output head scores only `headTokens` (the others get -infinity): a draft
    /// restricted to the tokens a corpus uses most (FR-Spec's frequency-ranked head). The rows
    /// are copied once into memory of the session's own.
    public convenience init(model: TransformerModel, context: Int, headTokens: [TokenID]) throws {
        let vocabulary = model.config.vocabularySize
        guard !headTokens.isEmpty else {
            throw RuntimeError.badHyperParameter("the output head needs at least one token")
        }
        if let bad = headTokens.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
            throw RuntimeError.tokenOutOfRange(bad, vocabulary: vocabulary)
        }
        guard Set(headTokens).count == headTokens.count else {
            throw RuntimeError.badHyperParameter("the output head's tokens repeat")
        }
        try self.init(model: model, context: context, head: .tokens(headTokens))
    }

    private init(model: TransformerModel, context: Int, head selection: HeadSelection?) throws {
        guard context > 0 else { throw RuntimeError.badHyperParameter("context must be positive, got \(context)") }
        guard context <= model.config.trainedContext else {
            throw RuntimeError.contextTooLong(requested: context, trained: model.config.trainedContext)
        }
        self.model = model
        capacity = context
        _ = ComputeThreads.configureOnce  // the pool's default size, before the first product
        try ComputeThreads.applyKernelOverride()  // SPECULATE_KERNELS, refused clearly when unusable
        let head: OutputHead
        switch selection {
        case nil: head = OutputHead(matrix: model.outputHead, tokens: nil)
        case .firstRows(let count): head = OutputHead(matrix: model.outputHead.limited(to: count), tokens: nil)
        case .tokens(let tokens):
            guard let matrix = model.outputHead.gathering(rows: tokens.map(Int.init)) else {
                throw RuntimeError.badHyperParameter(
                    "cannot build an output head of \(tokens.count) rows (out of memory)")
            }
            head = OutputHead(matrix: matrix, tokens: tokens)
        }
        state = SessionState(model: model, capacity: context, head: head)
    }

    deinit { state.deallocate() }

    /// Tokens committed to the cache.
    public var committedLength: Int { lock.withLock { state.committed } }

    /// Evaluates a batch of tree nodes. `parents[i]` is the batch index of node `i`'s parent
    /// (an earlier index), or -1 when it follows the committed prefix directly.
    public func evaluate(tokens: [TokenID], parents: [Int], logits: LogitRows = .all) throws -> Logits {
        try lock.withLock { try state.evaluate(tokens: tokens, parents: parents, logitRows: logits) }
    }

    /// Adds nodes to the pending tree of the last evaluation (for drafting a tree one depth at a
    /// time). Node indices continue after the pending ones; `parents` may name any earlier node.
    /// Logit rows are indices into this call's `tokens`.
    public func extend(tokens: [TokenID], parents: [Int], logits: LogitRows = .all) throws -> Logits {
        try lock.withLock { try state.evaluate(tokens: tokens, parents: parents, logitRows: logits, extending: true) }
    }

    /// Keeps the pending nodes on `path` (batch indices from a root down one branch) and
    /// drops the rest of the last batch.
    public func commit(_ path: [Int]) throws {
        try lock.withLock { try state.commit(path) }
    }

    /// Truncates the committed tokens to `length`.
    public func rollback(to length: Int) throws {
        try lock.withLock {
            guard length >= 0, length <= state.committed else {
                throw RuntimeError.invalidCacheOperation(
                    "cannot roll back to \(length) with \(state.committed) committed")
            }
            state.committed = length
            state.clearPending()
        }
    }
}

/// Which output rows a session scores.
enum HeadSelection {
    case firstRows(Int)
    case tokens([TokenID])
}

/// The output head a session scores: the model's (or its first rows, which are token ids
/// 0..<rows), or a gathered copy whose row i scores token `tokens[i]`.
struct OutputHead: Sendable {
    let matrix: WeightMatrix
    let tokens: [TokenID]?

    /// Whether `other` scores the same rows of the same weights (one product serves both).
    func isSame(as other: OutputHead) -> Bool {
        matrix.kernelBase == other.matrix.kernelBase && matrix.rows == other.matrix.rows && tokens == other.tokens
    }
}
