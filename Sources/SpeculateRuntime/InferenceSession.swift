import CSpeculateKernels
import Foundation
import SpeculateFormat

/// Logits for some rows of an evaluated batch.
public struct Logits: Sendable {
    /// The batch indices the rows belong to, in order.
    public let rows: [Int]
    /// Vocabulary size (values per row).
    public let vocabularySize: Int
    /// Row-major values.
    public let values: [Float]

    /// The logits of batch index `index` (which must be one of ``rows``).
    public func row(for index: Int) -> ArraySlice<Float> {
        guard let position = rows.firstIndex(of: index) else { return [] }
        return values[position * vocabularySize..<(position + 1) * vocabularySize]
    }
}

/// Which rows of a batch need logits.
public enum LogitRows: Sendable, Equatable {
    /// Every node (tree verification).
    case all
    /// Only the last node (prefill).
    case last
    /// The given batch indices.
    case selected([Int])
    /// None (a prefill chunk that is not the last).
    case none
}

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
    private let lock = NSLock()
    private var state: SessionState

    /// A session holding up to `context` tokens (committed plus pending).
    ///
    /// `headRows` restricts the output head to the first rows of the vocabulary (the others get
    /// -infinity): for a draft model, byte-level BPE ids are roughly in order of frequency, so
    /// scoring only the most frequent tokens makes drafting cheaper (FR-Spec). The target verifies
    /// every draft, so output stays lossless.
    public convenience init(model: TransformerModel, context: Int, headRows: Int? = nil) throws {
        if let headRows, headRows <= 0 { throw RuntimeError.badHyperParameter("head rows must be positive, got \(headRows)") }
        try self.init(model: model, context: context, head: headRows.map { HeadSelection.firstRows(min($0, model.config.vocabularySize)) })
    }

    /// A session whose output head scores only `headTokens` (the others get -infinity): a draft
    /// restricted to the tokens a corpus uses most (FR-Spec's frequency-ranked head). The rows
    /// are copied once into memory of the session's own.
    public convenience init(model: TransformerModel, context: Int, headTokens: [TokenID]) throws {
        let vocabulary = model.config.vocabularySize
        guard !headTokens.isEmpty else { throw RuntimeError.badHyperParameter("the output head needs at least one token") }
        if let bad = headTokens.first(where: { $0 < 0 || Int($0) >= vocabulary }) { throw RuntimeError.tokenOutOfRange(bad, vocabulary: vocabulary) }
        guard Set(headTokens).count == headTokens.count else { throw RuntimeError.badHyperParameter("the output head's tokens repeat") }
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
                throw RuntimeError.badHyperParameter("cannot build an output head of \(tokens.count) rows (out of memory)")
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
                throw RuntimeError.invalidCacheOperation("cannot roll back to \(length) with \(state.committed) committed")
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
}

/// The mutable part of a session (guarded by the session's lock).
struct SessionState {
    let model: TransformerModel
    let config: ModelConfig
    let capacity: Int
    let head: OutputHead
    var committed = 0
    var pendingParents: [Int] = []
    var pendingDepths: [Int] = []
    var pendingAncestors: [[Int]] = []

    mutating func clearPending() {
        pendingParents = []
        pendingDepths = []
        pendingAncestors = []
    }
    // Keys and values in IEEE half precision: half the memory and half the bytes attention reads
    // per token at long contexts; rounding is deterministic, so batch invariance is unaffected.
    let keys: UnsafeMutablePointer<UInt16>
    let values: UnsafeMutablePointer<UInt16>
    private var scratch = Scratch()
    private let inverseFrequencies: [Double]

    init(model: TransformerModel, capacity: Int, head: OutputHead) {
        self.head = head
        self.model = model
        config = model.config
        self.capacity = capacity
        let count = config.layerCount * capacity * config.kvWidth
        keys = .allocate(capacity: count)
        values = .allocate(capacity: count)
        keys.initialize(repeating: 0, count: count)
        values.initialize(repeating: 0, count: count)
        let headDimension = model.config.headDimension, base = model.config.ropeBase
        inverseFrequencies = (0..<headDimension / 2).map { pow(base, -2.0 * Double($0) / Double(headDimension)) }
    }

    // The cache lives as long as the session; SessionState is owned by exactly one session.
    func deallocate() {
        keys.deallocate()
        values.deallocate()
        scratch.deallocate()
    }

    /// Where a layer's KV head `head` keeps slot `slot` (in halves). The cache is head-major
    /// within a layer: each KV head's rows are contiguous, so the thread attending for one head
    /// streams its memory instead of reading every other 256 bytes (about a third less time per
    /// context token at long contexts, where attention waits on memory).
    private func cacheOffset(layer: Int, head: Int, slot: Int) -> Int {
        ((layer * config.kvHeadCount + head) * capacity + slot) * config.headDimension
    }

    mutating func commit(_ path: [Int]) throws {
        for (j, node) in path.enumerated() {
            guard node >= 0, node < pendingParents.count else {
                throw RuntimeError.invalidCacheOperation("node \(node) is not in the last batch of \(pendingParents.count)")
            }
            let expectedParent = j == 0 ? -1 : path[j - 1]
            guard pendingParents[node] == expectedParent else {
                throw RuntimeError.invalidCacheOperation("path \(path) is not a branch of the last tree")
            }
        }
        let width = config.headDimension
        for (j, node) in path.enumerated() where node != j {
            for layer in 0..<config.layerCount {
                for head in 0..<config.kvHeadCount {
                    let from = cacheOffset(layer: layer, head: head, slot: committed + node)
                    let to = cacheOffset(layer: layer, head: head, slot: committed + j)
                    (keys + to).update(from: keys + from, count: width)
                    (values + to).update(from: values + from, count: width)
                }
            }
        }
        committed += path.count
        clearPending()
    }

    mutating func evaluate(tokens: [TokenID], parents: [Int], logitRows: LogitRows, extending: Bool = false) throws -> Logits {
        let count = tokens.count
        // Extending adds nodes to the pending tree; their parents may be earlier pending nodes.
        let base = extending ? pendingParents.count : 0
        guard parents.count == count else { throw RuntimeError.malformedTree("\(count) tokens but \(parents.count) parents") }
        guard committed + base + count <= capacity else {
            throw RuntimeError.contextFull(needed: committed + base + count, capacity: capacity)
        }
        var depth = extending ? pendingDepths : []
        var ancestors = extending ? pendingAncestors : []
        for i in 0..<count {
            let token = tokens[i]
            guard token >= 0, Int(token) < config.vocabularySize else {
                throw RuntimeError.tokenOutOfRange(token, vocabulary: config.vocabularySize)
            }
            let parent = parents[i]
            guard parent >= -1, parent < base + i else { throw RuntimeError.malformedTree("node \(base + i) has parent \(parent)") }
            depth.append(parent < 0 ? 0 : depth[parent] + 1)
            ancestors.append((parent < 0 ? [] : ancestors[parent]) + [base + i])
        }
        pendingParents = (extending ? pendingParents : []) + parents
        pendingDepths = depth
        pendingAncestors = ancestors
        let outputRows: [Int]
        switch logitRows {
        case .all: outputRows = Array(0..<count)
        case .last: outputRows = count > 0 ? [count - 1] : []
        case let .selected(rows):
            guard rows.allSatisfy({ $0 >= 0 && $0 < count }) else { throw RuntimeError.malformedTree("logit rows \(rows) outside the batch") }
            outputRows = rows
        case .none: outputRows = []
        }
        guard count > 0 else { return Logits(rows: [], vocabularySize: config.vocabularySize, values: []) }
        let positions = depth[base...].map { committed + $0 }
        return forward(tokens: tokens, positions: positions, ancestors: Array(ancestors[base...]), firstSlot: committed + base,
                       outputRows: outputRows)
    }

    // MARK: Forward pass

    private mutating func forward(tokens: [TokenID], positions: [Int], ancestors: [[Int]], firstSlot: Int, outputRows: [Int]) -> Logits {
        let n = tokens.count
        let d = config.embeddingLength, qWidth = config.headCount * config.headDimension, kvWidth = config.kvWidth
        let ff = config.feedForwardLength, hd = config.headDimension
        scratch.reserve(tokens: n, config: config, capacity: capacity)
        let x = scratch.x, h = scratch.h, q = scratch.q, k = scratch.k, v = scratch.v
        let attention = scratch.attention, gate = scratch.gate, up = scratch.up
        for (i, token) in tokens.enumerated() { model.tokenEmbedding.dequantizeRow(Int(token), into: x + i * d) }
        let (cosines, sines) = rotaryTables(positions: positions)
        // Each node's visible pending slots (its ancestors and itself, root first), flattened.
        var slots: [Int32] = [], slotStarts: [Int32] = [0]
        for path in ancestors {
            slots.append(contentsOf: path.map { Int32(committed + $0) })
            slotStarts.append(Int32(slots.count))
        }

        for (layerIndex, layer) in model.layers.enumerated() {
            for i in 0..<n { rmsNorm(x + i * d, weight: layer.attentionNorm, into: h + i * d, count: d) }
            scratch.matmul([(layer.query, q, qWidth), (layer.key, k, kvWidth), (layer.value, v, kvWidth)], input: h, tokens: n)
            for i in 0..<n {
                if let bias = layer.queryBias { add(bias, to: q + i * qWidth) }
                if let bias = layer.keyBias { add(bias, to: k + i * kvWidth) }
                if let bias = layer.valueBias { add(bias, to: v + i * kvWidth) }
                for head in 0..<config.headCount { rotate(q + i * qWidth + head * hd, cos: cosines + i * hd / 2, sin: sines + i * hd / 2) }
                for head in 0..<config.kvHeadCount { rotate(k + i * kvWidth + head * hd, cos: cosines + i * hd / 2, sin: sines + i * hd / 2) }
                for head in 0..<config.kvHeadCount {
                    let slot = cacheOffset(layer: layerIndex, head: head, slot: firstSlot + i)
                    spec_f32_to_f16(k + i * kvWidth + head * hd, Int32(hd), keys + slot)
                    spec_f32_to_f16(v + i * kvWidth + head * hd, Int32(hd), values + slot)
                }
            }
            attend(layer: layerIndex, queries: q, nodes: n, slots: slots, slotStarts: slotStarts, into: attention)
            scratch.matmul([(layer.output, h, d)], input: attention, tokens: n)
            for i in 0..<n * d { x[i] += h[i] }
            for i in 0..<n { rmsNorm(x + i * d, weight: layer.feedForwardNorm, into: h + i * d, count: d) }
            scratch.matmul([(layer.gate, gate, ff), (layer.up, up, ff)], input: h, tokens: n)
            spec_silu_mul(gate, up, Int32(n * ff))
            scratch.matmul([(layer.down, h, d)], input: gate, tokens: n)
            for i in 0..<n * d { x[i] += h[i] }
        }

        guard !outputRows.isEmpty else { return Logits(rows: [], vocabularySize: config.vocabularySize, values: []) }
        for (j, row) in outputRows.enumerated() { rmsNorm(x + row * d, weight: model.outputNorm, into: h + j * d, count: d) }
        let vocabulary = config.vocabularySize
        let rows = head.matrix.rows
        var logits = [Float](repeating: rows < vocabulary ? -.infinity : 0, count: outputRows.count * vocabulary)
        if let tokens = head.tokens {
            // Row i of the gathered head scores token tokens[i]: compute densely, then scatter.
            var dense = [Float](repeating: 0, count: outputRows.count * rows)
            dense.withUnsafeMutableBufferPointer { buffer in
                scratch.matmul([(head.matrix, buffer.baseAddress!, rows)], input: h, tokens: outputRows.count)
            }
            for j in 0..<outputRows.count {
                for (i, token) in tokens.enumerated() { logits[j * vocabulary + Int(token)] = dense[j * rows + i] }
            }
        } else {
            logits.withUnsafeMutableBufferPointer { buffer in
                scratch.matmul([(head.matrix, buffer.baseAddress!, vocabulary)], input: h, tokens: outputRows.count)
            }
        }
        return Logits(rows: outputRows, vocabularySize: vocabulary, values: logits)
    }

    private func rmsNorm(_ input: UnsafeMutablePointer<Float>, weight: [Float], into output: UnsafeMutablePointer<Float>, count: Int) {
        weight.withUnsafeBufferPointer { spec_rms_norm(input, $0.baseAddress, Int32(count), config.rmsEpsilon, output) }
    }

    private func add(_ bias: [Float], to vector: UnsafeMutablePointer<Float>) {
        for i in bias.indices { vector[i] += bias[i] }
    }

    private mutating func rotaryTables(positions: [Int]) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        let half = config.headDimension / 2
        let cosines = scratch.cosines, sines = scratch.sines
        for (i, position) in positions.enumerated() {
            for j in 0..<half {
                let angle = Double(position) * inverseFrequencies[j]
                cosines[i * half + j] = Float(cos(angle))
                sines[i * half + j] = Float(sin(angle))
            }
        }
        return (cosines, sines)
    }

    private func rotate(_ vector: UnsafeMutablePointer<Float>, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let half = config.headDimension / 2
        for j in 0..<half {
            let (a, b) = config.architecture.rotatesHalves ? (j, j + half) : (2 * j, 2 * j + 1)
            let x0 = vector[a], x1 = vector[b]
            vector[a] = x0 * cos[j] - x1 * sin[j]
            vector[b] = x0 * sin[j] + x1 * cos[j]
        }
    }

    /// Tree attention: node i sees slots [0, committed) and its ancestors' pending slots
    /// (`slots`/`slotStarts`, flattened per node), computed in C per (node, KV head).
    private mutating func attend(layer: Int, queries: UnsafeMutablePointer<Float>, nodes: Int, slots: [Int32], slotStarts: [Int32],
                                 into output: UnsafeMutablePointer<Float>) {
        let hd = config.headDimension, qWidth = config.headCount * hd
        let group = config.headCount / config.kvHeadCount
        let base = cacheOffset(layer: layer, head: 0, slot: 0)
        let scoresStride = group * capacity
        let scores = scratch.scores(floats: ComputeThreads.count * scoresStride)
        slots.withUnsafeBufferPointer { slots in
            slotStarts.withUnsafeBufferPointer { starts in
                var attention = spec_attention(
                    queries: queries, q_stride: qWidth, keys: keys + base, values: values + base, kv_stride: hd, kv_head_stride: capacity * hd,
                    head_dim: Int32(hd), group: Int32(group), prefix: Int32(committed), slots: slots.baseAddress,
                    slot_start: starts.baseAddress, scale: 1 / Float(hd).squareRoot(), output: output, out_stride: qWidth)
                spec_attention_run(&attention, Int32(nodes), Int32(config.kvHeadCount), scores, scoresStride)
            }
        }
    }
}

/// Scratch memory for the forward pass, grown to the largest batch seen.
struct Scratch {
    private(set) var tokens = 0
    var x: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var h: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var q: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var k: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var v: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var attention: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var gate: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var up: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var cosines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var sines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var scoreBuffer: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var scoreCount = 1
    var activations: UnsafeMutableRawPointer = .allocate(byteCount: 64, alignment: 64)
    private var activationBytes = 64

    func deallocate() {
        for pointer in [x, h, q, k, v, attention, gate, up, cosines, sines, scoreBuffer] { pointer.deallocate() }
        activations.deallocate()
    }

    mutating func reserve(tokens needed: Int, config: ModelConfig, capacity: Int) {
        guard needed > tokens else { return }
        let n = max(needed, 16)
        let d = config.embeddingLength, qWidth = config.headCount * config.headDimension
        func grow(_ pointer: inout UnsafeMutablePointer<Float>, _ count: Int) {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        grow(&x, n * d)
        grow(&h, n * max(d, qWidth))
        grow(&q, n * qWidth)
        grow(&k, n * config.kvWidth)
        grow(&v, n * config.kvWidth)
        grow(&attention, n * qWidth)
        grow(&gate, n * config.feedForwardLength)
        grow(&up, n * config.feedForwardLength)
        grow(&cosines, n * config.headDimension / 2)
        grow(&sines, n * config.headDimension / 2)
        let widest = max(d, qWidth, config.feedForwardLength)
        activationBytes = 2 * n * spec_act_row_bytes(Int32(SPEC_ACT_F32.rawValue), Int32(widest))
        activations.deallocate()
        activations = .allocate(byteCount: activationBytes, alignment: 64)
        tokens = n
    }

    /// Attention scores scratch of at least `floats` floats.
    mutating func scores(floats: Int) -> UnsafeMutablePointer<Float> {
        if floats > scoreCount {
            scoreBuffer.deallocate()
            scoreBuffer = .allocate(capacity: floats)
            scoreCount = floats
        }
        return scoreBuffer
    }

    /// Computes `output = W · input` for each job (row-major, `tokens` rows of input),
    /// quantizing the input once per activation format and splitting rows across threads.
    mutating func matmul(_ jobs: [(matrix: WeightMatrix, output: UnsafeMutablePointer<Float>, outputStride: Int)],
                         input: UnsafeMutablePointer<Float>, tokens: Int) {
        let columns = jobs[0].matrix.columns
        var formats: [Int32: (UnsafeMutableRawPointer, Int)] = [:]
        var offset = 0
        for job in jobs where formats[job.matrix.activationFormat] == nil {
            let format = job.matrix.activationFormat
            let stride = spec_act_row_bytes(format, Int32(columns))
            let base = activations + offset
            offset += stride * tokens
            precondition(offset <= activationBytes, "activation scratch too small")
            for t in 0..<tokens { spec_quantize_act(format, input + t * columns, Int32(columns), base + t * stride) }
            formats[format] = (base, stride)
        }
        let plan = jobs.map { job -> spec_matmul_job in
            let (base, stride) = formats[job.matrix.activationFormat]!
            return spec_matmul_job(type: job.matrix.kernelType, n: Int32(job.matrix.columns), w: job.matrix.kernelBase,
                                   row_bytes: job.matrix.kernelRowBytes, rows: Int32(job.matrix.rows), act: base, act_stride: stride,
                                   y: job.output, y_stride: job.outputStride)
        }
        // Threads take chunks of whole rows from a shared counter (see spec_matmul_jobs).
        plan.withUnsafeBufferPointer { spec_matmul_jobs($0.baseAddress, Int32($0.count), Int32(tokens)) }
    }
}
