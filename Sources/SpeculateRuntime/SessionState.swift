import CSpeculateKernels
import Foundation
import SpeculateFormat

/// The mutable part of a session (guarded by the session's lock).
struct SessionState {
    let model: TransformerModel
    let config: ModelConfig
    /// How this model's blocks are computed.
    let recipe: LayerRecipe
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
    var scratch = Scratch()
    let inverseFrequencies: [Double]
    /// The windowed layers' rotary frequencies (their own base without scaling, or the global
    /// layers'), when there are any.
    let windowInverseFrequencies: [Double]?

    init(model: TransformerModel, capacity: Int, head: OutputHead) {
        self.head = head
        self.model = model
        config = model.config
        recipe = model.config.architecture.recipe
        self.capacity = capacity
        let count = config.layerCount * capacity * config.kvWidth
        keys = .allocate(capacity: count)
        values = .allocate(capacity: count)
        keys.initialize(repeating: 0, count: count)
        values.initialize(repeating: 0, count: count)
        let headDimension = model.config.headDimension
        let base = model.config.ropeBase
        let scale = model.config.ropeFrequencyScale
        let factors = model.ropeFrequencyFactors
        inverseFrequencies = (0..<headDimension / 2).map { (j: Int) -> Double in
            let frequency: Double = pow(base, -2.0 * Double(j) / Double(headDimension))
            let divisor = Double(factors?[j] ?? 1)
            return frequency * scale / divisor
        }
        if model.config.slidingWindow == nil {
            windowInverseFrequencies = nil
        } else if let windowBase = model.config.windowRopeBase {
            windowInverseFrequencies = (0..<headDimension / 2).map { (j: Int) -> Double in
                pow(windowBase, -2.0 * Double(j) / Double(headDimension))
            }
        } else {
            windowInverseFrequencies = inverseFrequencies
        }
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
    func cacheOffset(layer: Int, head: Int, slot: Int) -> Int {
        cache.offset(layer: layer, head: head, slot: slot)
    }

    /// The cache as the forward pass reads and writes it.
    var cache: KVCacheView {
        KVCacheView(
            keys: keys, values: values, capacity: capacity, kvHeads: config.kvHeadCount,
            headDimension: config.headDimension, committed: committed)
    }

    mutating func commit(_ path: [Int]) throws {
        for (j, node) in path.enumerated() {
            guard node >= 0, node < pendingParents.count else {
                throw RuntimeError.invalidCacheOperation(
                    "node \(node) is not in the last batch of \(pendingParents.count)")
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

    /// A batch of tree nodes checked and placed, not yet applied: the pending tree it leaves, and
    /// the batch's positions, paths and output rows.
    struct BatchPlan {
        let tokens: [TokenID]
        let pendingParents: [Int]
        let pendingDepths: [Int]
        let pendingAncestors: [[Int]]
        /// The batch's nodes: positions, paths (root first, as pending indices) and first slot.
        let positions: [Int]
        let ancestors: [[Int]]
        let firstSlot: Int
        /// The rows of the batch whose logits are wanted.
        let outputRows: [Int]
    }

    /// Checks a batch against the cache and the pending tree and places it, changing nothing.
    func plan(tokens: [TokenID], parents: [Int], logitRows: LogitRows, extending: Bool = false) throws -> BatchPlan {
        let count = tokens.count
        // Extending adds nodes to the pending tree; their parents may be earlier pending nodes.
        let base = extending ? pendingParents.count : 0
        guard parents.count == count else {
            throw RuntimeError.malformedTree("\(count) tokens but \(parents.count) parents")
        }
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
            guard parent >= -1, parent < base + i else {
                throw RuntimeError.malformedTree("node \(base + i) has parent \(parent)")
            }
            depth.append(parent < 0 ? 0 : depth[parent] + 1)
            ancestors.append((parent < 0 ? [] : ancestors[parent]) + [base + i])
        }
        let outputRows: [Int]
        switch logitRows {
        case .all: outputRows = Array(0..<count)
        case .last: outputRows = count > 0 ? [count - 1] : []
        case .selected(let rows):
            guard rows.allSatisfy({ $0 >= 0 && $0 < count }) else {
                throw RuntimeError.malformedTree("logit rows \(rows) outside the batch")
            }
            outputRows = rows
        case .none: outputRows = []
        }
        return BatchPlan(
            tokens: tokens, pendingParents: (extending ? pendingParents : []) + parents, pendingDepths: depth,
            pendingAncestors: ancestors, positions: depth[base...].map { committed + $0 },
            ancestors: Array(ancestors[base...]), firstSlot: committed + base, outputRows: outputRows)
    }

    /// Makes a checked batch the pending tree and returns its share of a forward pass whose
    /// rows `rows` it will occupy.
    mutating func adopt(_ plan: BatchPlan, rows: Range<Int>) -> SequenceSlice {
        pendingParents = plan.pendingParents
        pendingDepths = plan.pendingDepths
        pendingAncestors = plan.pendingAncestors
        return slice(for: plan, rows: rows)
    }

    mutating func evaluate(tokens: [TokenID], parents: [Int], logitRows: LogitRows, extending: Bool = false) throws
        -> Logits
    {
        let plan = try plan(tokens: tokens, parents: parents, logitRows: logitRows, extending: extending)
        let slice = adopt(plan, rows: 0..<tokens.count)
        guard !tokens.isEmpty else { return Logits(rows: [], vocabularySize: config.vocabularySize, values: []) }
        return forward(tokens: tokens, slices: [slice])[0]
    }
}
