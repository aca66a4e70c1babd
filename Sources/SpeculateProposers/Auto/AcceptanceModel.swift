import SpeculateCore

/// How often one member's nodes are accepted, given that their parent was: per depth, and per
/// depth and confidence bucket (the node's own probability as the member reports it).
struct AcceptanceModel {
    private var byDepth = Array(repeating: SmoothedRate(), count: AutoTuning.depthSlots)
    private var byConfidence = Array(
        repeating: Array(repeating: SmoothedRate(), count: AutoTuning.confidenceBuckets), count: AutoTuning.depthSlots)
    /// Per depth: nodes that stood beside a self-limiting member's node with another token (the
    /// target can accept at most one of the two, and the draft model is usually the one right).
    private var besideDraft = Array(repeating: SmoothedRate(), count: AutoTuning.depthSlots)
    /// Per confidence bucket: a self-limiting member's runner-up leaves (``DraftContext/runnersUp``).
    private var runnerUps = Array(repeating: SmoothedRate(), count: AutoTuning.confidenceBuckets)

    /// P(a node at `depth` is accepted | its parent was), from the depth statistics alone; each
    /// depth's prior is the estimate one level up (``AutoTuning/firstDepthPrior`` at depth 1).
    func depthAcceptance(_ depth: Int) -> Double {
        var estimate = AutoTuning.firstDepthPrior
        for level in 0..<min(depth, AutoTuning.depthSlots) { estimate = byDepth[level].estimate(prior: estimate) }
        return estimate
    }

    /// Calibrated acceptance of one node given its parent: its confidence bucket's rate, with the
    /// depth's rate as the prior.
    func nodeAcceptance(depth: Int, confidence: Float) -> Double {
        let slot = min(depth, AutoTuning.depthSlots) - 1
        return byConfidence[slot][Self.bucket(confidence)].estimate(
            prior: depthAcceptance(depth), weight: AutoTuning.confidencePriorWeight)
    }

    /// Calibrated acceptance of a node that stands beside a self-limiting member's node with
    /// another token, given its parent was accepted: its own rate there, with `prior` (its
    /// acceptance elsewhere times the chance that the other node is wrong).
    func besideDraftAcceptance(depth: Int, prior: Double) -> Double {
        besideDraft[min(depth, AutoTuning.depthSlots) - 1].estimate(prior: prior, weight: AutoTuning.besidePriorWeight)
    }

    /// Calibrated acceptance of one of this member's runner-up leaves given its parent was
    /// accepted: its bucket's rate, with the member's own probability for it as the prior.
    func runnerUpAcceptance(confidence: Float) -> Double {
        runnerUps[Self.bucket(confidence)].estimate(prior: Double(confidence), weight: AutoTuning.confidencePriorWeight)
    }

    /// Scores the nodes of `candidate` that stood beside a node of `selfLimitingPaths` (the paths
    /// of self-limiting members' nodes) with another token, and whose parent path was accepted.
    mutating func recordBesideDraft(_ candidate: DraftCandidate, accepted: [Token], selfLimitingPaths: Set<[Token]>) {
        let paths = candidate.nodePaths
        for (index, node) in candidate.judged(along: accepted).enumerated()
        where node.reached && node.depth <= AutoTuning.depthSlots
            && Self.standsBeside(paths[index], selfLimitingPaths: selfLimitingPaths)
        {
            besideDraft[node.depth - 1].add(node.hit)
        }
    }

    /// Whether a node on `path` stands beside a self-limiting member's node: one of
    /// `selfLimitingPaths` shares its parent path and ends in another token.
    static func standsBeside(_ path: [Token], selfLimitingPaths: Set<[Token]>) -> Bool {
        !selfLimitingPaths.contains(path)
            && selfLimitingPaths.contains { $0.count == path.count && $0.dropLast() == path.dropLast() }
    }

    /// Scores every node of `candidate` whose parent path was accepted (`accepted`: the accepted
    /// drafts and the target's token) — sent or pruned alike, so that pruning does not starve
    /// the statistics. With `runnersUp`, the nodes off the candidate's chain (its first child at
    /// every level) are a self-limiting member's runner-up leaves and have statistics of their
    /// own: they would drag its chain's rates down.
    mutating func record(_ candidate: DraftCandidate, accepted: [Token], runnersUp: Bool = false) {
        let confidence = Self.confidences(candidate)
        let onChain = runnersUp ? candidate.onFirstChain : []
        for (index, node) in candidate.judged(along: accepted).enumerated()
        where node.reached && node.depth <= AutoTuning.depthSlots {
            if runnersUp && !onChain[index] {
                runnerUps[Self.bucket(confidence[index])].add(node.hit)
                continue
            }
            byDepth[node.depth - 1].add(node.hit)
            byConfidence[node.depth - 1][Self.bucket(confidence[index])].add(node.hit)
        }
    }

    /// Acceptance at depths 1 through ``AutoTuning/depthSlots``, for reports.
    var byDepthEstimates: [Double] { (1...AutoTuning.depthSlots).map(depthAcceptance) }

    static func bucket(_ confidence: Float) -> Int {
        guard confidence.isFinite else { return 0 }
        return min(AutoTuning.confidenceBuckets - 1, max(0, Int(confidence * Float(AutoTuning.confidenceBuckets))))
    }

    /// Each node's own confidence: its score relative to its parent's (path scores become
    /// per-token probabilities), clamped to [0, 1].
    static func confidences(_ candidate: DraftCandidate) -> [Float] {
        candidate.scores.enumerated().map { index, score in
            let parent = candidate.parents[index]
            let own = parent < 0 ? score : (candidate.scores[parent] > 0 ? score / candidate.scores[parent] : 0)
            return own.isFinite ? min(1, max(0, own)) : 0
        }
    }
}

extension DraftCandidate {
    /// Whether any node was sampled (stochastic verification), rather than chosen greedily.
    var isSampled: Bool { distributions.contains { if case .sampled = $0 { true } else { false } } }

    /// Each node's depth (1 under the root); parents come before their children.
    var nodeDepths: [Int] {
        var depths: [Int] = []
        depths.reserveCapacity(parents.count)
        for parent in parents { depths.append(parent < 0 ? 1 : depths[parent] + 1) }
        return depths
    }

    /// Whether each node is on the draft's first chain: the first node under the root, and
    /// below it the first child of each chain node.
    package var onFirstChain: [Bool] {
        var result: [Bool] = []
        result.reserveCapacity(parents.count)
        var hasChainChild = Set<Int>()  // chain nodes (-1: the root) whose first child came already
        for parent in parents {
            let chain = (parent < 0 || result[parent]) && hasChainChild.insert(parent).inserted
            result.append(chain)
        }
        return result
    }

    /// Each node's path of tokens from the root (its own token last).
    var nodePaths: [[Token]] {
        var paths: [[Token]] = []
        paths.reserveCapacity(tokens.count)
        for (index, token) in tokens.enumerated() {
            let parent = parents[index]
            paths.append((parent < 0 ? [] : paths[parent]) + [token])
        }
        return paths
    }

    /// Each node judged against the target's tokens along the path it accepted (`accepted`, its
    /// own token last): `reached` when the node's parent path equals the accepted prefix, `hit`
    /// when it is reached and its token is the target's at its depth (it would have been accepted).
    func judged(along accepted: [Token]) -> [(depth: Int, reached: Bool, hit: Bool)] {
        var result: [(depth: Int, reached: Bool, hit: Bool)] = []
        result.reserveCapacity(tokens.count)
        for (index, depth) in nodeDepths.enumerated() {
            let parent = parents[index]
            let reached = (parent < 0 || result[parent].hit) && depth <= accepted.count
            result.append((depth, reached, reached && accepted[depth - 1] == tokens[index]))
        }
        return result
    }
}
