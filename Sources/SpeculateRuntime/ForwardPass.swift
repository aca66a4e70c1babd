import CSpeculateKernels
import Foundation
import SpeculateFormat

/// The forward pass shared by every model family: a pre-norm transformer block per layer
/// (attention with rotary positions over the KV cache and the pending tree, then a gated
/// feed-forward), with the differences between families read from the model's ``LayerRecipe``.
extension SessionState {
    /// Rotary cosines and sines for the batch's positions.
    typealias RotaryTables = (cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>)

    /// One forward over the rows of every slice (`tokens` holds them all, slice after slice),
    /// in this session's scratch memory; each slice's keys and values go to its own cache and
    /// it attends over that cache only. Returns each slice's logits. Every row is computed by
    /// the same code in the same order whatever else is in the batch (the kernels never mix
    /// rows), so a sequence's logits are bit-identical alone or batched with others.
    mutating func forward(tokens: [TokenID], slices: [SequenceSlice]) -> [Logits] {
        let n = tokens.count
        let d = config.embeddingLength
        scratch.reserve(tokens: n, config: config, capacity: capacity)
        let x = scratch.x
        for (i, token) in tokens.enumerated() { model.tokenEmbedding.dequantizeRow(Int(token), into: x + i * d) }
        if recipe.scalesEmbeddings {
            let scale = Float(d).squareRoot()
            for i in 0..<n * d { x[i] *= scale }
        }
        let positions = slices.flatMap(\.positions)
        let rotary = rotaryTables(positions: positions, frequencies: inverseFrequencies, into: scratch.rotary)
        var windowRotary: RotaryTables?
        if config.slidingWindow != nil, let frequencies = windowInverseFrequencies {
            windowRotary = rotaryTables(positions: positions, frequencies: frequencies, into: scratch.windowRotary)
        }
        // Every slice's attention lists in one array each, built once for every layer.
        let layouts = FlatTreeLayouts(slices.map(\.tree))
        let windowLayouts =
            windowRotary == nil ? nil : FlatTreeLayouts(slices.map { $0.windowedTree ?? $0.tree })
        for (index, layer) in model.layers.enumerated() {
            let windowed = config.windowedLayers[index] ? windowRotary : nil
            attentionBlock(
                layer, index: index, tokens: n, rotary: windowed ?? rotary, slices: slices,
                layouts: windowed == nil ? layouts : windowLayouts ?? layouts)
            feedForwardBlock(layer, tokens: n)
        }
        return outputLogits(slices: slices)
    }

    /// x += attention(norm(x)): Q/K/V, their biases, per-head Q/K norms, rotary positions, the
    /// new keys and values into the cache, tree attention, the output projection and its norm
    /// where the family has one.
    private mutating func attentionBlock(
        _ layer: LayerWeights, index: Int, tokens n: Int, rotary: RotaryTables, slices: [SequenceSlice],
        layouts: FlatTreeLayouts
    ) {
        let d = config.embeddingLength
        let qWidth = config.headCount * config.headDimension
        let kvWidth = config.kvWidth
        let hd = config.headDimension
        let x = scratch.x
        let h = scratch.h
        let q = scratch.q
        let k = scratch.k
        let v = scratch.v
        for i in 0..<n { rmsNorm(x + i * d, weight: layer.attentionNorm, into: h + i * d, count: d) }
        scratch.matmul(
            [(layer.query, q, qWidth), (layer.key, k, kvWidth), (layer.value, v, kvWidth)], input: h, tokens: n)
        for i in 0..<n {
            if let bias = layer.queryBias { add(bias, to: q + i * qWidth) }
            if let bias = layer.keyBias { add(bias, to: k + i * kvWidth) }
            if let bias = layer.valueBias { add(bias, to: v + i * kvWidth) }
            if let norm = layer.queryNorm {
                for head in 0..<config.headCount {
                    rmsNorm(q + i * qWidth + head * hd, weight: norm, into: q + i * qWidth + head * hd, count: hd)
                }
            }
            if let norm = layer.keyNorm {
                for head in 0..<config.kvHeadCount {
                    rmsNorm(k + i * kvWidth + head * hd, weight: norm, into: k + i * kvWidth + head * hd, count: hd)
                }
            }
            let cos = rotary.cos + i * hd / 2
            let sin = rotary.sin + i * hd / 2
            for head in 0..<config.headCount { rotate(q + i * qWidth + head * hd, cos: cos, sin: sin) }
            for head in 0..<config.kvHeadCount { rotate(k + i * kvWidth + head * hd, cos: cos, sin: sin) }
        }
        for slice in slices {
            let cache = slice.cache
            for i in slice.rows {
                for head in 0..<config.kvHeadCount {
                    let slot = cache.offset(
                        layer: index, head: head, slot: slice.tree.firstSlot + i - slice.rows.lowerBound)
                    spec_f32_to_f16(k + i * kvWidth + head * hd, Int32(hd), cache.keys + slot)
                    spec_f32_to_f16(v + i * kvWidth + head * hd, Int32(hd), cache.values + slot)
                }
            }
        }
        attend(layer: index, queries: q, slices: slices, layouts: layouts, into: scratch.attention)
        scratch.matmul([(layer.output, h, d)], input: scratch.attention, tokens: n)
        if let norm = layer.postAttentionNorm {
            for i in 0..<n { rmsNorm(h + i * d, weight: norm, into: h + i * d, count: d) }
        }
        for i in 0..<n * d { x[i] += h[i] }
    }

    /// x += postNorm(down(act(gate(norm(x))) * up(norm(x)))), the post-norm where the family has one.
    private mutating func feedForwardBlock(_ layer: LayerWeights, tokens n: Int) {
        let d = config.embeddingLength
        let ff = config.feedForwardLength
        let x = scratch.x
        let h = scratch.h
        let gate = scratch.gate
        let up = scratch.up
        for i in 0..<n { rmsNorm(x + i * d, weight: layer.feedForwardNorm, into: h + i * d, count: d) }
        scratch.matmul([(layer.gate, gate, ff), (layer.up, up, ff)], input: h, tokens: n)
        switch recipe.activation {
        case .silu: spec_silu_mul(gate, up, Int32(n * ff))
        case .geluTanh: spec_gelu_mul(gate, up, Int32(n * ff))
        }
        scratch.matmul([(layer.down, h, d)], input: gate, tokens: n)
        if let norm = layer.postFeedForwardNorm {
            for i in 0..<n { rmsNorm(h + i * d, weight: norm, into: h + i * d, count: d) }
        }
        for i in 0..<n * d { x[i] += h[i] }
    }

    /// Each slice's output head over the final norm of its rows asked for (scattered to token
    /// ids when the head is a gathered subset; the other tokens get -infinity). Slices scoring
    /// the same head share one product, so its weights are read once for the whole batch.
    private mutating func outputLogits(slices: [SequenceSlice]) -> [Logits] {
        var results = [Logits?](repeating: nil, count: slices.count)
        var remaining = Array(slices.indices)
        while let first = remaining.first {
            let group = remaining.filter { slices[$0].head.isSame(as: slices[first].head) }
            remaining.removeAll { group.contains($0) }
            let rows = group.flatMap { index in slices[index].outputRows.map { slices[index].rows.lowerBound + $0 } }
            let logits = outputLogits(rows: rows, head: slices[first].head)
            let width = config.vocabularySize
            var offset = 0
            for index in group {
                let count = slices[index].outputRows.count
                results[index] = Logits(
                    rows: slices[index].outputRows, vocabularySize: width,
                    values: Array(logits[(offset * width)..<((offset + count) * width)]))
                offset += count
            }
        }
        return results.map { $0! }
    }

    /// `head`'s logits for batch rows `outputRows`, one row of the vocabulary each.
    private mutating func outputLogits(rows outputRows: [Int], head: OutputHead) -> [Float] {
        guard !outputRows.isEmpty else { return [] }
        let d = config.embeddingLength
        let x = scratch.x
        let h = scratch.h
        for (j, row) in outputRows.enumerated() {
            rmsNorm(x + row * d, weight: model.outputNorm, into: h + j * d, count: d)
        }
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
        return logits
    }

    private func rmsNorm(
        _ input: UnsafeMutablePointer<Float>, weight: [Float], into output: UnsafeMutablePointer<Float>, count: Int
    ) {
        weight.withUnsafeBufferPointer { spec_rms_norm(input, $0.baseAddress, Int32(count), config.rmsEpsilon, output) }
    }

    private func add(_ bias: [Float], to vector: UnsafeMutablePointer<Float>) {
        for i in bias.indices { vector[i] += bias[i] }
    }

    private func rotaryTables(positions: [Int], frequencies: [Double], into tables: RotaryTables) -> RotaryTables {
        let half = config.headDimension / 2
        let (cosines, sines) = tables
        for (i, position) in positions.enumerated() {
            for j in 0..<half {
                let angle = Double(position) * frequencies[j]
                cosines[i * half + j] = Float(cos(angle))
                sines[i * half + j] = Float(sin(angle))
            }
        }
        return (cosines, sines)
    }

    private func rotate(
        _ vector: UnsafeMutablePointer<Float>, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>
    ) {
        let half = config.headDimension / 2
        for j in 0..<half {
            let (a, b) = recipe.rotaryPairs == .halves ? (j, j + half) : (2 * j, 2 * j + 1)
            let x0 = vector[a]
            let x1 = vector[b]
            vector[a] = x0 * cos[j] - x1 * sin[j]
            vector[b] = x0 * sin[j] + x1 * cos[j]
        }
    }

    /// Tree attention, each slice over its own cache: node i sees slots [0, tree.prefix) and its
    /// ancestors' pending slots (`slots`/`slotStarts`, flattened per node), computed in C per
    /// (node, KV head), every slice's nodes in one pass of the thread pool.
    private mutating func attend(
        layer: Int, queries: UnsafeMutablePointer<Float>, slices: [SequenceSlice], layouts: FlatTreeLayouts,
        into output: UnsafeMutablePointer<Float>
    ) {
        let hd = config.headDimension
        let qWidth = config.headCount * hd
        let group = config.headCount / config.kvHeadCount
        let scoresStride = group * (slices.map(\.cache.capacity).max() ?? 0)
        let scores = scratch.scores(floats: ComputeThreads.count * scoresStride)
        layouts.slots.withUnsafeBufferPointer { slotBuffer in
            layouts.starts.withUnsafeBufferPointer { startBuffer in
                var jobs: [spec_attention] = []
                for (index, slice) in slices.enumerated() {
                    let tree = layouts.trees[index]
                    let base = slice.cache.offset(layer: layer, head: 0, slot: 0)
                    jobs.append(
                        spec_attention(
                            queries: queries + slice.rows.lowerBound * qWidth, q_stride: qWidth,
                            keys: slice.cache.keys + base, values: slice.cache.values + base, kv_stride: hd,
                            kv_head_stride: slice.cache.capacity * hd, head_dim: Int32(hd), group: Int32(group),
                            prefix: Int32(tree.prefix),
                            slots: slotBuffer.baseAddress.map { $0 + layouts.slotOffsets[index] },
                            slot_start: startBuffer.baseAddress! + layouts.startOffsets[index],
                            scale: config.attentionScale, output: output + slice.rows.lowerBound * qWidth,
                            out_stride: qWidth))
                }
                let nodes = slices.map { Int32($0.rows.count) }
                spec_attention_run_many(jobs, nodes, Int32(jobs.count), Int32(config.kvHeadCount), scores, scoresStride)
            }
        }
    }
}
