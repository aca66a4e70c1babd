import Foundation
import SpeculateCore
import SpeculateFormat

/// Measures what the speculative strategies depend on: the time to evaluate a batch of n
/// tree nodes in one forward, relative to one token (t(n)/t(1)).
public struct BatchCostProbe: Sendable {
    /// One measured batch size.
    public struct Point: Sendable, Equatable {
        /// Tokens evaluated in one forward.
        public let tokens: Int
        /// Seconds for that forward (the median or the fastest of the repeats).
        public let seconds: Double
        /// The time relative to the one-token time: the median over the rounds of each round's
        /// ratio (a round times every size in turn, so the host's drift between rounds cancels
        /// out, and one lucky or unlucky forward moves one ratio of several, where the ratio of
        /// two fastest times takes the luck of both: start-up probes priced 8 tokens at
        /// 2.3–2.4 one-token steps where the decoder's own trees took 1.8).
        public let relativeCost: Double
    }

    /// The model measured.
    public let model: TransformerModel

    /// A probe of `model`.
    public init(model: TransformerModel) { self.model = model }

    /// Which of a size's repeated timings stands for it.
    public enum Statistic: Sendable {
        /// The middle one: what a run typically sees.
        case median
        /// The fastest one: noise on a shared machine only ever adds time, so the fastest is the
        /// least disturbed figure (a median of three once put 8 tokens at 2.48x one token where
        /// quiet runs measure 1.8-1.9x).
        case fastest
    }

    /// Measures batches of `sizes` tokens after a `prefix`-token context, `repeats` times each,
    /// interleaving the sizes so that machine noise hits all of them alike.
    public func measure(
        sizes: [Int] = [1, 2, 4, 8, 16, 32, 64], prefix: Int = 128, repeats: Int = 5,
        statistic: Statistic = .median
    ) throws -> [Point] {
        let session = try InferenceSession(model: model, context: prefix + (sizes.max() ?? 1) + 1)
        let vocabulary = model.config.vocabularySize
        let context = (0..<prefix).map { TokenID(($0 * 7919 + 13) % vocabulary) }
        _ = try session.append(context)
        var samples: [Int: [Double]] = [:]
        _ = try session.evaluate(tokens: [1], parents: [-1])  // warm-up
        for round in 0..<repeats {
            for size in sizes {
                let tokens = (0..<size).map { TokenID(($0 * 31 + round + 1) % vocabulary) }
                // A tree whose nodes have up to two children: the shape verification uses.
                let parents = (0..<size).map { $0 == 0 ? -1 : ($0 - 1) / 2 }
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try session.evaluate(tokens: tokens, parents: parents)
                samples[size, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        let chosen = samples.mapValues { statistic == .fastest ? $0.min()! : $0.sorted()[$0.count / 2] }
        let unit = samples[1] ?? samples[sizes.min() ?? 1] ?? []
        func medianRatio(_ size: Int) -> Double {
            let ratios = zip(samples[size] ?? [], unit).map { $0 / $1 }.sorted()
            return ratios.isEmpty ? 1 : ratios[ratios.count / 2]
        }
        return sizes.map { Point(tokens: $0, seconds: chosen[$0]!, relativeCost: medianRatio($0)) }
    }
}
