import SpeculateCore

/// Pricing: how deep a member's chain pays, and which nodes of the returned drafts are worth a
/// place in the tree, with Sequoia's objective (expected accepted tokens per second of
/// verification and drafting).
extension PolicyState {
    /// The best chain depth for a member and its rate gain over plain decoding (> 1 pays).
    func bestDepth(_ member: Int, limit: Int) -> (depth: Int, gain: Double) {
        var best = (depth: 0, gain: 1.0)
        var survival = 1.0
        var expected = 0.0
        for depth in stride(from: 1, through: limit, by: 1) {
            survival *= members[member].acceptance.depthAcceptance(depth)
            expected += survival
            let seconds = stepSeconds * cost.relativeCost(1 + depth) + members[member].secondsPerDepth * Double(depth)
            let gain = (1 + expected) / seconds * stepSeconds
            if gain > best.gain { best = (depth, gain) }
        }
        return best
    }

    /// The nodes worth sending out of `drafts`: the n best by value with n maximising expected
    /// tokens per unit of a step's cost (verification plus `draftCost`, the step's drafting in
    /// one-token steps), among the n whose expected tokens per unit of verification alone beat a
    /// plain step by ``AutoTuning/minimumTreeGain`` (none when no n does).
    /// With sampled drafts, values may not decide which nodes survive (that would bias the
    /// output): then only the depth statistics set the values and nodes are taken in proposal
    /// order. `extraNodes` more than the best count are kept, when any pays at all (to time a
    /// larger tree).
    ///
    /// The drafting is spent whatever is sent, but every step pays it again, so a tree that
    /// yields more tokens saves steps and their drafting with them (Sequoia's objective counts
    /// it): priced by verification alone, `auto` cut the 0.5B draft's chains to 3 nodes where
    /// 8 paid, and took 8% more steps than the chain on HumanEval-10 for the same verification time.
    package func prune(
        _ drafts: [(member: Int, candidate: DraftCandidate)], budget: TreeBudget, sampled: Bool,
        draftCost: Double = 0, extraNodes: Int = 0
    ) -> [DraftCandidate] {
        guard !drafts.isEmpty else { return [] }
        if sampled, drafts.contains(where: { members[$0.member].selfLimiting }) {
            return pruneSampledContaining(drafts, budget: budget, draftCost: draftCost)
        }
        // A member that ends its own drafts where it is unsure (a draft model) has its whole draft
        // sent first, as the plain draft chain sends it: its own stop knows the text better than
        // the depth statistics do, and cut by value `auto` sent fewer of its nodes than the chain
        // and took more steps (HumanEval-20: 4.51 tokens per forward against 4.59); the other
        // members' nodes are added where they pay on top of it.
        let forcing = !sampled && drafts.contains { members[$0.member].selfLimiting }
        var forcedOwn: [[Token]: Double] = [:]
        // Every node's value: the product of calibrated acceptance along its path.
        var nodes: [(value: Double, depth: Int, path: [Token], forced: Bool, position: Int)] = []
        let offsets = drafts.reduce(into: [0]) { $0.append($0.last! + $1.candidate.tokens.count) }
        let forcedFirst =
            forcing
            ? drafts.indices.filter { members[drafts[$0].member].selfLimiting }
                + drafts.indices.filter { !members[drafts[$0].member].selfLimiting }
            : Array(drafts.indices)
        for draftIndex in forcedFirst {
            let draft = drafts[draftIndex]
            let member = members[draft.member]
            let confidence = AcceptanceModel.confidences(draft.candidate)
            let paths = draft.candidate.nodePaths
            // Its chain is forced; its runner-up leaves are priced like any other member's nodes.
            let onChain = forcing && member.selfLimiting ? draft.candidate.onFirstChain : []
            var values: [Double] = []
            for (index, depth) in draft.candidate.nodeDepths.enumerated() {
                let parent = draft.candidate.parents[index]
                var own =
                    sampled
                    ? member.acceptance.depthAcceptance(depth)
                    : member.acceptance.nodeAcceptance(depth: depth, confidence: confidence[index])
                let forced = forcing && member.selfLimiting && onChain[index]
                if forcing && member.selfLimiting && !forced {
                    // A runner-up: accepted only where the chain's token beside it is not, so its
                    // own rate there is its value.
                    own = member.acceptance.runnerUpAcceptance(confidence: confidence[index])
                } else if forced {
                    forcedOwn[paths[index]] = own
                } else if forcing, let rival = Self.rival(of: paths[index], in: forcedOwn) {
                    // The target accepts at most one of two siblings, and the draft model's is usually right.
                    own = member.acceptance.besideDraftAcceptance(depth: depth, prior: own * (1 - rival))
                }
                values.append((parent < 0 ? 1 : values[parent]) * own)
                nodes.append((values[index], depth, paths[index], forced, offsets[draftIndex] + index))
            }
        }
        // Order: forced nodes first, then by value (parents never lose to children: values only
        // shrink along a path), or in proposal order when values may not decide.
        let order =
            sampled
            ? Array(nodes.indices)
            : nodes.indices.sorted {
                (nodes[$0].forced ? 1 : 0, nodes[$0].value, -nodes[$0].depth)
                    > (nodes[$1].forced ? 1 : 0, nodes[$1].value, -nodes[$1].depth)
            }
        // A node on a path already counted is merged into it by the tree: it costs and adds nothing.
        // (Not with sampled drafts: which nodes are sent may not hinge on the sampled tokens.)
        var counted = Set<[Token]>()
        var unique: [Int] = []
        var uniqueAt: [Int] = []  // for each place in `order`, the unique nodes up to and including it
        for position in order {
            if sampled || counted.insert(nodes[position].path).inserted { unique.append(position) }
            uniqueAt.append(unique.count)
        }
        if load > 0 {
            // Sharing the forward: nodes by value at their marginal cost there (no forced chain).
            let count = sharedCount(
                values: unique.map { calibrated(nodes[$0].value) }, load: load, maxNodes: budget.maxNodes)
            guard count > 0 else { return [] }
            let kept = uniqueAt.firstIndex(of: count).map { order.prefix($0 + 1) } ?? order[...]
            var values = Array(repeating: 0.0, count: nodes.count)
            for node in nodes { values[node.position] = node.value }
            return Self.rebuild(
                drafts.map(\.candidate), keeping: Set(kept.map { nodes[$0].position }), values: values)
        }
        let leastCount = min(Set(nodes.filter(\.forced).map(\.path)).count, budget.maxNodes)
        var bestCount = 0
        var bestRate = 0.0
        var expected = 0.0
        for (rank, position) in unique.prefix(budget.maxNodes).enumerated() {
            expected += nodes[position].value
            guard rank + 1 >= leastCount else { continue }
            let verification = cost.relativeCost(rank + 2)
            let rate = (1 + expected) / (verification + draftCost)
            // The drafting is spent whether or not anything is sent, so it may not make a tree
            // pay that would not pay for its verification alone.
            if rate > bestRate && (1 + expected) / verification > AutoTuning.minimumTreeGain {
                bestRate = rate
                bestCount = rank + 1
            }
        }
        guard bestCount > 0 else { return [] }
        bestCount = min(bestCount + extraNodes, unique.count, budget.maxNodes)
        // Every node up to the last unique one kept, duplicates included (the tree merges them).
        let kept = uniqueAt.firstIndex(of: bestCount).map { order.prefix($0 + 1) } ?? order[...]
        var values = Array(repeating: 0.0, count: nodes.count)
        for node in nodes { values[node.position] = node.value }
        return Self.rebuild(
            drafts.map(\.candidate), keeping: Set(kept.map { nodes[$0].position }), values: values)
    }

    /// The self-limiting node beside `path` (same parent path, another token), by its own acceptance.
    private static func rival(of path: [Token], in forcedOwn: [[Token]: Double]) -> Double? {
        guard forcedOwn[path] == nil else { return nil }
        return forcedOwn.first { $0.key.count == path.count && $0.key.dropLast() == path.dropLast() }?.value
    }

    /// Sampled drafts with a self-limiting member among them: its whole drafts are sent, as the
    /// plain draft chain sends them, then the other members' nodes in proposal order, as many as
    /// pay when the self-limiting member's drafts are counted at their worst-case size (the
    /// budget's depth) with its depth statistics: so the count never hinges on the drafted tokens
    /// (which may not decide what is sent with stochastic verification), and a draft model's own
    /// stop, a function of the tokens before it as in the chain, sets where its draft ends. Cut to
    /// the count the depth statistics priced, `auto` at T = 0.7 sent 2.03 tokens per forward
    /// against the chain's 2.26 on chat-12 (0.965 of its speed).
    private func pruneSampledContaining(
        _ drafts: [(member: Int, candidate: DraftCandidate)], budget: TreeBudget, draftCost: Double
    ) -> [DraftCandidate] {
        let limiting = drafts.first { members[$0.member].selfLimiting }!.member
        let worstCase = min(budget.maxDepth, AutoTuning.depthSlots, budget.maxNodes)
        var expected = 0.0
        var survival = 1.0
        for depth in stride(from: 1, through: worstCase, by: 1) {
            survival *= members[limiting].acceptance.depthAcceptance(depth)
            expected += survival
        }
        // Every node valued by its member's depth statistics; the other members' in proposal order.
        var values: [Double] = []
        var others: [Double] = []
        for draft in drafts {
            var own: [Double] = []
            for (index, depth) in draft.candidate.nodeDepths.enumerated() {
                let parent = draft.candidate.parents[index]
                own.append((parent < 0 ? 1 : own[parent]) * members[draft.member].acceptance.depthAcceptance(depth))
            }
            values += own
            if !members[draft.member].selfLimiting { others += own }
        }
        var bestExtra = -1
        var bestRate = 0.0
        for extra in 0...min(others.count, budget.maxNodes - worstCase) {
            if extra > 0 { expected += others[extra - 1] }
            let verification = cost.relativeCost(worstCase + extra + 1)
            let rate = (1 + expected) / (verification + draftCost)
            if rate > bestRate && (1 + expected) / verification > AutoTuning.minimumTreeGain {
                bestRate = rate
                bestExtra = extra
            }
        }
        guard bestExtra >= 0 else { return [] }
        var keep = Set<Int>()
        var position = 0
        var sentOthers = 0
        var sentLimiting = 0
        for draft in drafts {
            for _ in draft.candidate.tokens.indices {
                if members[draft.member].selfLimiting {
                    if sentLimiting < budget.maxNodes - bestExtra { keep.insert(position) }
                    sentLimiting += 1
                } else {
                    if sentOthers < bestExtra { keep.insert(position) }
                    sentOthers += 1
                }
                position += 1
            }
        }
        return Self.rebuild(drafts.map(\.candidate), keeping: keep, values: values)
    }

    /// Each draft cut to the nodes in `keep` (positions counted across all drafts in order); a
    /// node whose parent was dropped goes too. Scores become the nodes' values.
    private static func rebuild(_ drafts: [DraftCandidate], keeping keep: Set<Int>, values: [Double])
        -> [DraftCandidate]
    {
        var result: [DraftCandidate] = []
        var position = 0
        for draft in drafts {
            var remap: [Int: Int] = [:]
            var kept = DraftCandidate(tokens: [], parents: [], distributions: [], scores: [], origin: draft.origin)
            for index in draft.tokens.indices {
                defer { position += 1 }
                let parent = draft.parents[index]
                guard keep.contains(position) else { continue }
                let keptParent = parent < 0 ? -1 : remap[parent]
                guard let keptParent else { continue }
                remap[index] = kept.tokens.count
                kept.tokens.append(draft.tokens[index])
                kept.parents.append(keptParent)
                kept.distributions.append(draft.distributions[index])
                kept.scores.append(Float(values[position]))
            }
            if !kept.tokens.isEmpty { result.append(kept) }
        }
        return result
    }

    /// Tokens a step would have yielded had it sent `drafts`, given the target's tokens along the
    /// path it did accept (`accepted`, its own token last): the deepest node matching that path,
    /// plus the target's token after it. Exact when that node is shallower than `accepted`, else a
    /// lower bound (what the target would have said beyond is unknown).
    package static func counterfactualTokens(_ drafts: [DraftCandidate], accepted: [Token]) -> Int {
        let deepest = drafts.flatMap { $0.judged(along: accepted) }.filter(\.hit).map(\.depth).max() ?? 0
        return deepest + 1
    }
}
