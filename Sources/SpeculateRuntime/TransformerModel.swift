import Foundation
import SpeculateFormat

/// One transformer block's weights.
struct LayerWeights: Sendable {
    let attentionNorm: [Float]
    let query: WeightMatrix
    let key: WeightMatrix
    let value: WeightMatrix
    let output: WeightMatrix
    let queryBias: [Float]?
    let keyBias: [Float]?
    let valueBias: [Float]?
    /// Per-head RMSNorm weights of the queries and keys (Qwen3), applied before the rotation.
    let queryNorm: [Float]?
    let keyNorm: [Float]?
    let feedForwardNorm: [Float]
    /// Norms of the attention's and the feed-forward's outputs before their residual adds (Gemma).
    let postAttentionNorm: [Float]?
    let postFeedForwardNorm: [Float]?
    let gate: WeightMatrix
    let up: WeightMatrix
    let down: WeightMatrix
}

/// A loaded model: hyper-parameters plus weights that stay in the memory map (only norms
/// and biases are copied out as floats). Immutable, so one model serves many sessions.
public final class TransformerModel: Sendable {
    /// Hyper-parameters.
    public let config: ModelConfig
    /// The file the weights live in.
    public let file: GGUFFile
    let tokenEmbedding: WeightMatrix
    let layers: [LayerWeights]
    let outputNorm: [Float]
    let outputHead: WeightMatrix
    /// Per-frequency divisors of the rotary frequencies (`rope_freqs`: Llama 3's RoPE scaling,
    /// computed at conversion from the file's rope-scaling parameters), when the file has them.
    let ropeFrequencyFactors: [Float]?

    /// How the products' weights are kept (as in the file, or requantized).
    public let precision: WeightPrecision

    /// Loads the model at `path` (memory-mapped), its product weights kept at `precision`.
    public convenience init(path: String, precision: WeightPrecision = .file) throws {
        try self.init(gguf: GGUFFile(path: path), precision: precision)
    }

    /// Loads the model in `file`, checking every tensor's presence and shape.
    public init(gguf file: GGUFFile, precision: WeightPrecision = .file) throws {
        self.precision = precision
        let config = try ModelConfig(gguf: file)
        self.config = config
        self.file = file
        let d = config.embeddingLength
        let kv = config.kvWidth
        let q = config.headCount * config.headDimension
        func vector(_ name: String, _ length: Int) throws -> [Float] {
            guard let info = file.tensor(named: name) else { throw RuntimeError.missingTensor(name) }
            guard info.elementCount == length else {
                throw RuntimeError.shapeMismatch(tensor: name, expected: [length], found: info.dimensions)
            }
            return file.dequantize(info)
        }
        func optionalVector(_ name: String, _ length: Int) throws -> [Float]? {
            file.tensor(named: name) == nil ? nil : try vector(name, length)
        }
        tokenEmbedding = try WeightMatrix(
            file: file, name: "token_embd.weight", rows: config.vocabularySize, columns: d)
        var layers: [LayerWeights] = []
        for i in 0..<config.layerCount {
            let p = "blk.\(i)."
            let attention = try ProjectionLayout.attention(file, layer: i, config: config)
            let feedForward = try ProjectionLayout.feedForward(file, layer: i, config: config)
            layers.append(
                LayerWeights(
                    attentionNorm: try vector(p + "attn_norm.weight", d),
                    query: attention.query, key: attention.key, value: attention.value,
                    output: try WeightMatrix(file: file, name: p + "attn_output.weight", rows: d, columns: q),
                    queryBias: try optionalVector(p + "attn_q.bias", q),
                    keyBias: try optionalVector(p + "attn_k.bias", kv),
                    valueBias: try optionalVector(p + "attn_v.bias", kv),
                    queryNorm: try optionalVector(p + "attn_q_norm.weight", config.headDimension),
                    keyNorm: try optionalVector(p + "attn_k_norm.weight", config.headDimension),
                    feedForwardNorm: try vector(p + "ffn_norm.weight", d),
                    postAttentionNorm: try optionalVector(p + "post_attention_norm.weight", d),
                    postFeedForwardNorm: try optionalVector(p + "post_ffw_norm.weight", d),
                    gate: feedForward.gate, up: feedForward.up,
                    down: try WeightMatrix(
                        file: file, name: p + "ffn_down.weight", rows: d, columns: config.feedForwardLength)))
        }
        // The products' weights in the layout the kernel set reads fastest (the embedding table
        // stays in the file: it is read a row at a time).
        func prepared(_ m: WeightMatrix) -> WeightMatrix { m.requantized(to: precision).packedForKernels() }
        self.layers = layers.map { l in
            LayerWeights(
                attentionNorm: l.attentionNorm, query: prepared(l.query), key: prepared(l.key),
                value: prepared(l.value),
                output: prepared(l.output), queryBias: l.queryBias, keyBias: l.keyBias, valueBias: l.valueBias,
                queryNorm: l.queryNorm, keyNorm: l.keyNorm, feedForwardNorm: l.feedForwardNorm,
                postAttentionNorm: l.postAttentionNorm, postFeedForwardNorm: l.postFeedForwardNorm,
                gate: prepared(l.gate),
                up: prepared(l.up), down: prepared(l.down))
        }
        outputNorm = try vector("output_norm.weight", d)
        ropeFrequencyFactors = try optionalVector("rope_freqs.weight", config.headDimension / 2)
        if let factors = ropeFrequencyFactors, let bad = factors.first(where: { !($0 > 0) || !$0.isFinite }) {
            throw RuntimeError.badHyperParameter("rope_freqs.weight holds \(bad); every factor must be positive")
        }
        // Models with a tied output embedding (SmolLM2) have no output.weight; packing the head
        // then copies the table for the products and leaves the lookups on the file.
        let headName = file.tensor(named: "output.weight") == nil ? "token_embd.weight" : "output.weight"
        outputHead = prepared(try WeightMatrix(file: file, name: headName, rows: config.vocabularySize, columns: d))
    }

    /// Bytes of weights the forward pass reads per token (for bandwidth estimates).
    public var weightBytes: Int {
        let perLayer =
            layers.first.map { l in
                [l.query, l.key, l.value, l.output, l.gate, l.up, l.down].reduce(0) { $0 + $1.rows * $1.kernelRowBytes }
            } ?? 0
        return perLayer * layers.count + outputHead.rows * outputHead.kernelRowBytes
    }
}
