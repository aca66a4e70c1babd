import SpeculateFormat

/// Where a layer's projection matrices live in the file: one tensor each, or fused as Phi-3's
/// converter writes them (`attn_qkv`: the query rows, then the key rows, then the value rows;
/// `ffn_up` with twice the feed-forward's rows: the gate's, then the up projection's, as
/// llama.cpp's `phi3` graph splits it for its SwiGLU). A fused tensor is read in place, as row
/// ranges of one tensor.
enum ProjectionLayout {
    /// Whether `layer`'s query, key and value rows are one `attn_qkv` tensor.
    static func fusesAttention(_ file: GGUFFile, layer: Int) -> Bool {
        file.tensor(named: "blk.\(layer).attn_qkv.weight") != nil
    }

    /// Whether `layer`'s gate and up rows are one `ffn_up` tensor of `2 × feedForwardLength`
    /// rows (and there is no `ffn_gate`).
    static func fusesFeedForward(_ file: GGUFFile, layer: Int, feedForwardLength: Int) -> Bool {
        file.tensor(named: "blk.\(layer).ffn_gate.weight") == nil
            && file.tensor(named: "blk.\(layer).ffn_up.weight")?.dimensions.last == 2 * feedForwardLength
    }

    /// The matrix tensors `layer` needs in `file`'s layout.
    static func requiredMatrices(_ file: GGUFFile, layer: Int, config: ModelConfig) -> [String] {
        let attention = fusesAttention(file, layer: layer) ? ["attn_qkv"] : ["attn_q", "attn_k", "attn_v"]
        let fused = fusesFeedForward(file, layer: layer, feedForwardLength: config.feedForwardLength)
        let feedForward = fused ? ["ffn_up"] : ["ffn_gate", "ffn_up"]
        return (attention + ["attn_output"] + feedForward + ["ffn_down"]).map { "blk.\(layer).\($0).weight" }
    }

    /// `layer`'s query, key and value matrices.
    static func attention(_ file: GGUFFile, layer: Int, config: ModelConfig) throws -> (
        query: WeightMatrix, key: WeightMatrix, value: WeightMatrix
    ) {
        let p = "blk.\(layer)."
        let d = config.embeddingLength
        let q = config.headCount * config.headDimension
        let kv = config.kvWidth
        guard fusesAttention(file, layer: layer) else {
            return (
                try WeightMatrix(file: file, name: p + "attn_q.weight", rows: q, columns: d),
                try WeightMatrix(file: file, name: p + "attn_k.weight", rows: kv, columns: d),
                try WeightMatrix(file: file, name: p + "attn_v.weight", rows: kv, columns: d)
            )
        }
        let name = p + "attn_qkv.weight"
        let total = q + 2 * kv
        return (
            try WeightMatrix(file: file, name: name, rows: q, columns: d, firstRow: 0, totalRows: total),
            try WeightMatrix(file: file, name: name, rows: kv, columns: d, firstRow: q, totalRows: total),
            try WeightMatrix(file: file, name: name, rows: kv, columns: d, firstRow: q + kv, totalRows: total)
        )
    }

    /// `layer`'s gate and up matrices.
    static func feedForward(_ file: GGUFFile, layer: Int, config: ModelConfig) throws -> (
        gate: WeightMatrix, up: WeightMatrix
    ) {
        let p = "blk.\(layer)."
        let d = config.embeddingLength
        let ff = config.feedForwardLength
        guard fusesFeedForward(file, layer: layer, feedForwardLength: ff) else {
            return (
                try WeightMatrix(file: file, name: p + "ffn_gate.weight", rows: ff, columns: d),
                try WeightMatrix(file: file, name: p + "ffn_up.weight", rows: ff, columns: d)
            )
        }
        let name = p + "ffn_up.weight"
        return (
            try WeightMatrix(file: file, name: name, rows: ff, columns: d, firstRow: 0, totalRows: 2 * ff),
            try WeightMatrix(file: file, name: name, rows: ff, columns: d, firstRow: ff, totalRows: 2 * ff)
        )
    }
}
