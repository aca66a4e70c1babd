import SpeculateFormat

/// A session's KV cache as the forward pass sees it: half-precision keys and values, head-major
/// within each layer, and how many slots are committed.
struct KVCacheView {
    let keys: UnsafeMutablePointer<UInt16>
    let values: UnsafeMutablePointer<UInt16>
    let capacity: Int
    let kvHeads: Int
    let headDimension: Int
    let committed: Int

    /// Where a layer's KV head `head` keeps slot `slot` (in halves). Each KV head's rows are
    /// contiguous, so the thread attending for one head streams its memory instead of reading
    /// every other 256 bytes (about a third less time per context token at long contexts).
    func offset(layer: Int, head: Int, slot: Int) -> Int {
        ((layer * kvHeads + head) * capacity + slot) * headDimension
    }
}

/// One sequence's share of a forward pass: its rows of the batch, the cache they attend over
/// and write to, the tree they form, and which of their logits are wanted. A forward over
/// several sequences shares every weight read among all their rows and keeps attention per
/// sequence, so each row's result is the one it gets alone.
struct SequenceSlice {
    /// The batch's paths in the tree attention: where each node's keys and values go, and which
    /// pending slots each node sees (its ancestors and itself, root first, flattened).
    struct TreeLayout {
        let firstSlot: Int
        /// The committed slots every node sees before its own list.
        let prefix: Int
        let slots: [Int32]
        let slotStarts: [Int32]
    }

    let cache: KVCacheView
    /// This sequence's rows in the batch.
    let rows: Range<Int>
    /// Each row's position.
    let positions: [Int]
    let tree: TreeLayout
    /// The layout of sliding-window layers, for models that have them.
    let windowedTree: TreeLayout?
    /// Rows (indices into `rows`) whose logits are wanted, scored by `head`.
    let outputRows: [Int]
    let head: OutputHead
}

/// Every slice's tree layout with its lists flattened into one array each (and where each
/// slice's part starts), so that one set of pointers serves the C attention in every layer.
struct FlatTreeLayouts {
    let trees: [SequenceSlice.TreeLayout]
    let slots: [Int32]
    let starts: [Int32]
    let slotOffsets: [Int]
    let startOffsets: [Int]

    init(_ trees: [SequenceSlice.TreeLayout]) {
        self.trees = trees
        slots = trees.flatMap(\.slots)
        starts = trees.flatMap(\.slotStarts)
        slotOffsets = trees.reduce(into: [0]) { $0.append($0.last! + $1.slots.count) }
        startOffsets = trees.reduce(into: [0]) { $0.append($0.last! + $1.slotStarts.count) }
    }
}

extension SessionState {
    /// The slice a checked batch forms over this session's cache (committed slots unchanged).
    func slice(for plan: BatchPlan, rows: Range<Int>) -> SequenceSlice {
        var slots: [Int32] = []
        var slotStarts: [Int32] = [0]
        for path in plan.ancestors {
            slots.append(contentsOf: path.map { Int32(committed + $0) })
            slotStarts.append(Int32(slots.count))
        }
        let tree = SequenceSlice.TreeLayout(
            firstSlot: plan.firstSlot, prefix: committed, slots: slots, slotStarts: slotStarts)
        let windowed = config.slidingWindow.map {
            windowedLayout(tree, positions: plan.positions, ancestors: plan.ancestors, window: $0)
        }
        return SequenceSlice(
            cache: cache, rows: rows, positions: plan.positions, tree: tree, windowedTree: windowed,
            outputRows: plan.outputRows, head: head)
    }

    /// The layout of a windowed layer: node i at position p sees only positions above p − window
    /// (llama.cpp's standard sliding window), committed ones and its ancestors alike, listed
    /// explicitly. While no node reaches past the window it is the full layout.
    private func windowedLayout(
        _ full: SequenceSlice.TreeLayout, positions: [Int], ancestors: [[Int]], window: Int
    ) -> SequenceSlice.TreeLayout {
        guard let farthest = positions.max(), farthest - window + 1 > 0 else { return full }
        var slots: [Int32] = []
        var slotStarts: [Int32] = [0]
        for (position, path) in zip(positions, ancestors) {
            let first = position - window + 1
            if first < committed { slots.append(contentsOf: (max(0, first)..<committed).map { Int32($0) }) }
            // The path's j-th node (root first) is at position committed + j.
            for (j, node) in path.enumerated() where committed + j >= first { slots.append(Int32(committed + node)) }
            slotStarts.append(Int32(slots.count))
        }
        return SequenceSlice.TreeLayout(firstSlot: full.firstSlot, prefix: 0, slots: slots, slotStarts: slotStarts)
    }
}
