import SpeculateFormat

/// Hyper-parameters read from GGUF metadata.
public struct ModelConfig: Sendable, Equatable {
    /// The architecture.
    public let architecture: ModelArchitecture
    /// Width of the residual stream.
    public let embeddingLength: Int
    /// Number of transformer blocks.
    public let layerCount: Int
    /// Query heads.
    public let headCount: Int
    /// Key/value heads (grouped-query attention when fewer than query heads).
    public let kvHeadCount: Int
    /// Width of one head.
    public let headDimension: Int
    /// Hidden width of the feed-forward block.
    public let feedForwardLength: Int
    /// Context the model was trained for.
    public let trainedContext: Int
    /// RMSNorm epsilon.
    public let rmsEpsilon: Float
    /// Rotary embedding base.
    public let ropeBase: Double
    /// Factor on every rotary frequency: 1, or 1 / factor under linear RoPE scaling (position
    /// interpolation). Llama 3's per-frequency scaling comes as the `rope_freqs` tensor instead.
    public let ropeFrequencyScale: Double
    /// Vocabulary size (rows of the embedding).
    public let vocabularySize: Int
    /// The attention window of the windowed layers, in positions (a query at position p sees keys
    /// at positions above p − window), when the family has such layers and the file declares one.
    public let slidingWindow: Int?
    /// Which layers attend within ``slidingWindow`` (all false without one).
    public let windowedLayers: [Bool]
    /// The rotary base of the windowed layers, when it is their own (unscaled); nil when they
    /// rotate as the global layers do (scaling included).
    public let windowRopeBase: Double?
    /// The factor on attention scores: 1/√(head width), except where the family says otherwise.
    public let attentionScale: Float

    /// Reads the hyper-parameters of `file`.
    public init(gguf file: GGUFFile) throws {
        let name = file.architecture ?? "(none)"
        guard let architecture = ModelArchitecture(rawValue: name) else {
            throw RuntimeError.unsupportedArchitecture(name)
        }
        self.architecture = architecture
        func integer(_ key: String) throws -> Int {
            guard let value = file.metadata["\(name).\(key)"]?.intValue, value > 0 else {
                throw RuntimeError.badHyperParameter("\(name).\(key) is missing or not a positive integer")
            }
            return value
        }
        embeddingLength = try integer("embedding_length")
        layerCount = try integer("block_count")
        headCount = try integer("attention.head_count")
        kvHeadCount = (try? integer("attention.head_count_kv")) ?? headCount
        feedForwardLength = try integer("feed_forward_length")
        trainedContext = try integer("context_length")
        rmsEpsilon = Float(file.metadata["\(name).attention.layer_norm_rms_epsilon"]?.doubleValue ?? 1e-5)
        ropeBase = file.metadata["\(name).rope.freq_base"]?.doubleValue ?? 10000
        switch file.metadata["\(name).rope.scaling.type"]?.stringValue ?? "none" {
        case "none":
            ropeFrequencyScale = 1
        case "linear":
            guard let factor = file.metadata["\(name).rope.scaling.factor"]?.doubleValue, factor > 0, factor.isFinite
            else {
                throw RuntimeError.badHyperParameter("\(name).rope.scaling.factor is missing or not positive")
            }
            ropeFrequencyScale = 1 / factor
        case let other:
            throw RuntimeError.unsupportedFeature("RoPE scaling '\(other)' (\(name).rope.scaling.type)")
        }
        // Phi-3's long-context files (LongRoPE) carry per-frequency factors for short and long
        // contexts and an attention factor; the runtime implements neither.
        if let factors = ["rope_factors_long.weight", "rope_factors_short.weight"].first(where: {
            file.tensor(named: $0) != nil
        }) {
            throw RuntimeError.unsupportedFeature("LongRoPE scaling (\(factors))")
        }
        guard embeddingLength % headCount == 0, headCount % kvHeadCount == 0 else {
            throw RuntimeError.badHyperParameter(
                "\(embeddingLength) wide with \(headCount) heads and \(kvHeadCount) key-value heads")
        }
        headDimension = (try? integer("attention.key_length")) ?? embeddingLength / headCount
        guard headDimension % 2 == 0 else {
            throw RuntimeError.badHyperParameter("odd head dimension \(headDimension)")
        }
        // Partial rotary embedding (Phi-2, some GPT-NeoX models) rotates fewer dimensions than a head has.
        if let rotated = file.metadata["\(name).rope.dimension_count"]?.intValue, rotated != headDimension {
            throw RuntimeError.unsupportedFeature(
                "rotary embedding over \(rotated) of \(headDimension) head dimensions (\(name).rope.dimension_count)")
        }
        let embedding = try file.requireTensor("token_embd.weight")
        vocabularySize = embedding.rowCount
        // Gemma 3 27B scales by 1/√(width / heads), as its reference code does (llama.cpp tells
        // it by its 62 layers); the other sizes by 1/√(head width).
        attentionScale =
            architecture == .gemma3 && layerCount == 62
            ? 1 / Float(embeddingLength / headCount).squareRoot() : 1 / Float(headDimension).squareRoot()
        let window = file.metadata["\(name).attention.sliding_window"]?.intValue ?? 0
        if let layout = architecture.recipe.slidingWindowLayers, window > 0 {
            slidingWindow = window
            windowRopeBase = file.metadata["\(name).rope.freq_base_swa"]?.doubleValue ?? layout.ropeBase
            switch file.metadata["\(name).attention.sliding_window_pattern"] {
            case .array(_, let values)?:
                guard values.count >= layerCount else {
                    throw RuntimeError.badHyperParameter(
                        "\(name).attention.sliding_window_pattern has \(values.count) entries for \(layerCount) layers")
                }
                windowedLayers = values.prefix(layerCount).map { ($0.intValue ?? 0) != 0 }
            case let stored:
                let period = stored?.intValue ?? layout.period
                guard period >= 0 else {
                    throw RuntimeError.badHyperParameter("\(name).attention.sliding_window_pattern is \(period)")
                }
                windowedLayers = (0..<layerCount).map { period == 0 || $0 % period < period - 1 }
            }
        } else {
            slidingWindow = nil
            windowRopeBase = nil
            windowedLayers = Array(repeating: false, count: layerCount)
        }
    }

    /// Width of all key (or value) heads together.
    public var kvWidth: Int { kvHeadCount * headDimension }
}
