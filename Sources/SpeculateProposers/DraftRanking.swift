import Foundation
import SpeculateCore

/// How a draft model ranks its next tokens: the most likely few under softmax, the runner-up
/// leaves beside a chain, the top indices for tree drafts.
extension DraftModelProposer {
    /// Runner-ups below this probability are not offered: at most one in fifty is the target's.
    static let smallestRunnerUp: Float = 0.02

    /// Adds each drafted position's runner-ups as leaves beside the chain's token there, after
    /// the chain's nodes (so the chain stays the first child at every level), within `maxNodes`.
    package static func addRunnersUp(
        _ runnerUps: [[(token: Token, probability: Float)]], to draft: inout DraftCandidate, maxNodes: Int
    ) {
        let chainLength = draft.tokens.count
        for (position, alternatives) in runnerUps.prefix(chainLength).enumerated() {
            for alternative in alternatives where alternative.probability >= smallestRunnerUp {
                guard draft.tokens.count < maxNodes else { return }
                draft.tokens.append(alternative.token)
                draft.parents.append(position - 1)
                draft.distributions.append(.deterministic)
                draft.scores.append((position == 0 ? 1 : draft.scores[position - 1]) * alternative.probability)
            }
        }
    }

    /// The `count` most likely tokens under softmax(`logits`), most likely first, with their
    /// probabilities: one pass for the best logits and one for the normalizer.
    ///
    /// `among`, when given, lists in ascending order the only indices whose logits can be finite
    /// (a reduced head's rows; the others are -infinity): the same result, as the others add
    /// exact zeros to the normalizer, for a fraction of the work (a 32,768-row head of a
    /// 151,936-token vocabulary).
    package static func mostLikely(_ logits: [Float], count: Int, among: [Int]? = nil)
        -> [(token: Token, probability: Float)]
    {
        var best: [(logit: Float, index: Int)] = []
        best.reserveCapacity(count + 1)
        var total: Float = 0
        logits.withUnsafeBufferPointer { values in
            var floor = -Float.infinity
            func consider(_ index: Int) {
                let value = values[index]
                guard value > floor || best.count < count else { return }
                var position = best.count
                while position > 0, best[position - 1].logit < value { position -= 1 }
                best.insert((value, index), at: position)
                if best.count > count { best.removeLast() }
                if best.count == count { floor = best[count - 1].logit }
            }
            if let among {
                for index in among { consider(index) }
            } else {
                for index in values.indices { consider(index) }
            }
            guard let maximum = best.first?.logit else { return }
            if let among {
                for index in among { total += expf(values[index] - maximum) }
            } else {
                for value in values { total += expf(value - maximum) }
            }
        }
        guard let maximum = best.first?.logit else { return [] }
        return best.map { (Token($0.index), expf($0.logit - maximum) / total) }
    }

    /// Indices of the `count` largest values, largest first.
    static func topIndices(_ values: [Float], count: Int) -> [Int] {
        var best: [(Float, Int)] = []
        for (i, v) in values.enumerated() where best.count < count || v > best[best.count - 1].0 {
            var position = best.count
            while position > 0, best[position - 1].0 < v { position -= 1 }
            best.insert((v, i), at: position)
            if best.count > count { best.removeLast() }
        }
        return best.map(\.1)
    }
}
