/// How tokens are chosen from the target's distribution. The same settings shape the target's
/// and every draft's distribution, which is what keeps stochastic verification lossless.
public struct SamplingSettings: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = all).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    public var topP: Float
    /// Seed of the random generator.
    public var seed: UInt64

    /// Settings; the defaults are greedy decoding.
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingSettings()

    /// Whether decoding is greedy.
    public var isGreedy: Bool { temperature <= 0 }

    /// The sampling distribution over the vocabulary for `logits` (temperature, then top-k, then top-p).
    public func distribution(_ logits: [Float]) -> [Float] {
        let n = logits.count
        guard n > 0 else { return [] }
        if isGreedy {
            var p = [Float](repeating: 0, count: n)
            p[argmax(logits)] = 1
            return p
        }
        let maximum = logits.max()!
        var p = logits.map { expf(($0 - maximum) / temperature) }
        if topK > 0, topK < n {
            // The k largest, ties broken by lower index, found in one pass.
            var kept: [(value: Float, index: Int)] = []
            kept.reserveCapacity(topK + 1)
            for i in 0..<n {
                let value = p[i]
                if kept.count == topK, value <= kept[kept.count - 1].value { continue }
                var position = kept.count
                while position > 0, kept[position - 1].value < value { position -= 1 }
                kept.insert((value, i), at: position)
                if kept.count > topK { kept.removeLast() }
            }
            var filtered = [Float](repeating: 0, count: n)
            for entry in kept { filtered[entry.index] = entry.value }
            p = filtered
        }
        var total = p.reduce(0, +)
        if topP < 1 {
            let order = p.indices.filter { p[$0] > 0 }.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
            var cumulative: Float = 0
            var filtered = [Float](repeating: 0, count: n)
            for index in order {
                filtered[index] = p[index]
                cumulative += p[index] / total
                if cumulative >= topP { break }
            }
            p = filtered
            total = p.reduce(0, +)
        }
        return p.map { $0 / total }
    }
}

/// Index of the largest value (the first on ties).
public func argmax(_ values: [Float]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
}

/// A seedable generator (SplitMix64): fast, and reproducible across runs and platforms.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// A generator starting from `seed`.
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    public mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A token drawn from the (normalized) distribution `p`.
    public mutating func sample(_ p: [Float]) -> Int {
        let u = unit()
        var cumulative: Float = 0
        var last = 0
        for (i, value) in p.enumerated() where value > 0 {
            cumulative += value
            last = i
            if u < cumulative { return i }
        }
        return last
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
