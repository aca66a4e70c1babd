import CSpeculateKernels
import SpeculateFormat

/// A quantized matrix used in place, straight from the memory-mapped file.
public struct WeightMatrix: Sendable {
    /// The tensor's name in the file.
    public let name: String
    /// Element type.
    public let type: GGMLType
    /// Output rows.
    public private(set) var rows: Int
    /// Input columns (elements per row).
    public let columns: Int
    /// Bytes between rows.
    public let rowBytes: Int
    /// The activation format the matrix's kernel reads.
    let activationFormat: Int32
    private let storage: ByteStorage
    private let offset: Int

    init(file: GGUFFile, name: String, rows: Int, columns: Int) throws {
        guard let info = file.tensor(named: name) else { throw RuntimeError.missingTensor(name) }
        guard info.dimensions == [columns, rows] else {
            throw RuntimeError.shapeMismatch(tensor: name, expected: [columns, rows], found: info.dimensions)
        }
        let format = spec_act_format_for(Int32(info.type.rawValue))
        guard format >= 0 else { throw RuntimeError.badHyperParameter("tensor '\(name)' has type \(info.type) without a kernel") }
        self.name = name
        type = info.type
        self.rows = rows
        self.columns = columns
        rowBytes = info.rowBytes
        activationFormat = format
        storage = file.storage
        offset = file.dataOffset + info.offset
    }

    /// The same matrix restricted to its first `count` rows.
    func limited(to count: Int) -> WeightMatrix {
        var copy = self
        copy.rows = min(rows, count)
        return copy
    }

    /// The first byte of the matrix; valid while the model lives.
    var base: UnsafeRawPointer { storage.base + offset }

    /// Row `row` as floats (used for embedding lookups).
    func dequantizeRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
        Dequantizer.dequantize(type, from: base + row * rowBytes, count: columns, into: destination)
    }
}

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
    let feedForwardNorm: [Float]
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

    /// Loads the model at `path` (memory-mapped).
    public convenience init(path: String) throws {
        try self.init(gguf: GGUFFile(path: path))
    }

    /// Loads the model in `file`, checking every tensor's presence and shape.
    public init(gguf file: GGUFFile) throws {
        let config = try ModelConfig(gguf: file)
        self.config = config
        self.file = file
        let d = config.embeddingLength, kv = config.kvWidth, q = config.headCount * config.headDimension
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
        tokenEmbedding = try WeightMatrix(file: file, name: "token_embd.weight", rows: config.vocabularySize, columns: d)
        var layers: [LayerWeights] = []
        for i in 0..<config.layerCount {
            let p = "blk.\(i)."
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attn_norm.weight", d),
                query: try WeightMatrix(file: file, name: p + "attn_q.weight", rows: q, columns: d),
                key: try WeightMatrix(file: file, name: p + "attn_k.weight", rows: kv, columns: d),
                value: try WeightMatrix(file: file, name: p + "attn_v.weight", rows: kv, columns: d),
                output: try WeightMatrix(file: file, name: p + "attn_output.weight", rows: d, columns: q),
                queryBias: try optionalVector(p + "attn_q.bias", q),
                keyBias: try optionalVector(p + "attn_k.bias", kv),
                valueBias: try optionalVector(p + "attn_v.bias", kv),
                feedForwardNorm: try vector(p + "ffn_norm.weight", d),
                gate: try WeightMatrix(file: file, name: p + "ffn_gate.weight", rows: config.feedForwardLength, columns: d),
                up: try WeightMatrix(file: file, name: p + "ffn_up.weight", rows: config.feedForwardLength, columns: d),
                down: try WeightMatrix(file: file, name: p + "ffn_down.weight", rows: d, columns: config.feedForwardLength)))
        }
        self.layers = layers
        outputNorm = try vector("output_norm.weight", d)
        // Models with a tied output embedding (SmolLM2) have no output.weight.
        let headName = file.tensor(named: "output.weight") == nil ? "token_embd.weight" : "output.weight"
        outputHead = try WeightMatrix(file: file, name: headName, rows: config.vocabularySize, columns: d)
    }

    /// Bytes of weights the forward pass reads per token (for bandwidth estimates).
    public var weightBytes: Int {
        let perLayer = layers.first.map { l in
            [l.query, l.key, l.value, l.output, l.gate, l.up, l.down].reduce(0) { $0 + $1.rows * $1.rowBytes }
        } ?? 0
        return perLayer * layers.count + outputHead.rows * outputHead.rowBytes
    }
}
