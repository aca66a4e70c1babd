import SpeculateCore

/// Whether a costly member (a draft model) pays, from the evidence at hand. A member whose drafts
/// are greedy is judged by its steps paired with their counterfactual without it, and is used
/// until it has enough of them (every step that asks it yields one; a step without it yields
/// nothing). A member whose drafts are sampled while the decoding is greedy (a plugin may draft
/// that way) has no counterfactual: it is judged by the realized tokens per second of steps with
/// and without it, and before any evidence by the model-based gain of its best depth. (With
/// sampled decoding every member is asked every step, and no verdict is needed.)
struct CostlyMemberVerdict {
    /// Whether enough paired steps exist to decide by them.
    let hasPairedEvidence: Bool
    /// Whether any evidence (paired, or realized rates of both sides) exists.
    let hasEvidence: Bool
    /// Tokens per second with it over without it (or the modelled gain, before evidence).
    let advantage: Double
    /// Whether it should be used.
    let pays: Bool
    /// Whether its realized rate is known but the rate without it is not yet: a step must go
    /// without it first.
    let needsStepsWithout: Bool
    /// While in use, every this-many-th step goes without it (to keep the rate without it fresh).
    let stepsBetweenRefreshes: Int

    init(_ member: MemberState, baseRate: MovingRate, modelledGain: Double, inUse: Bool) {
        hasPairedEvidence = member.paired.samples >= AutoTuning.pairedEvidence
        guard member.draftsSampled else {
            // Greedy drafts: on trial until paired evidence exists (before it, steps without the
            // member would teach nothing about it, and a modelled gain from two first-contact
            // steps kept the 0.5B draft out of chat-12's first prompt for 30 steps).
            hasEvidence = hasPairedEvidence
            advantage = hasPairedEvidence ? member.paired.advantage : modelledGain
            pays = !hasPairedEvidence || advantage > Self.requiredPairedAdvantage(inUse: inUse)
            needsStepsWithout = false
            stepsBetweenRefreshes = Int.max
            return
        }
        let ownRateKnown = member.rateWhenAsked.samples >= AutoTuning.rateEvidence
        let baseRateKnown = baseRate.samples >= AutoTuning.rateEvidence
        hasEvidence = hasPairedEvidence || (ownRateKnown && baseRateKnown)
        advantage =
            hasPairedEvidence
            ? member.paired.advantage
            : hasEvidence ? member.rateWhenAsked.value / baseRate.value : modelledGain
        let required = hasPairedEvidence ? Self.requiredPairedAdvantage(inUse: inUse) : AutoTuning.requiredAdvantage
        pays = hasEvidence ? advantage > required : modelledGain > AutoTuning.trialGain
        needsStepsWithout = ownRateKnown && !baseRateKnown && !hasPairedEvidence
        // Paired evidence needs no step without the member; realized rates do.
        stepsBetweenRefreshes =
            hasPairedEvidence
            ? Int.max
            : hasEvidence && advantage > AutoTuning.clearAdvantage
                ? AutoTuning.clearAdvantageRefresh : AutoTuning.baselineRefresh
    }

    /// The paired advantage needed: a member in use stays until it is clearly behind (stretches
    /// where lookup alone does as well come and go within a prompt, and each return costs a
    /// catch-up); one paused must show a gain to come back.
    static func requiredPairedAdvantage(inUse: Bool) -> Double {
        inUse ? AutoTuning.pairedStopBelow : AutoTuning.requiredPairedAdvantage
    }

    /// Whether the evidence says it is clearly worse than going without it.
    var isClearlyWorse: Bool { hasEvidence && advantage < AutoTuning.clearlyWorse }
}

extension PolicyState {
    /// Which members to ask this step, and how deep.
    /// With `sampling`, every member is asked every step at full depth: which drafts exist must not
    /// hinge on timings or realized rates there (a CI run under heavy load, where timings moved
    /// members onto the costly path, failed the chi-square test once, p = 0.0003; not explained yet).
    package mutating func plan(
        budget: TreeBudget, sampling: Bool = false, load: Int = 0, plainLoad: Int = 0, drafters: [Int] = []
    ) -> [(member: Int, depth: Int)] {
        steps += 1
        plannedForSampling = sampling
        self.load = sampling ? 0 : max(0, load)
        self.plainLoad = sampling ? 0 : max(0, min(plainLoad, load))
        self.drafters = drafters
        let limit = min(budget.maxDepth, AutoTuning.depthSlots, budget.maxNodes)
        guard limit > 0 else { return [] }
        let asks = members.indices.compactMap { member in
            askDepth(member, limit: limit, sampling: sampling).map { (member, $0) }
        }
        askedCostly = asks.map { $0.0 }.filter { members[$0].costMeasured && !isCheap($0) }
        for (member, _) in asks { members[member].markAsked(at: steps) }
        return asks
    }

    func isCheap(_ member: Int) -> Bool { members[member].isCheap(fraction: cheapFraction, stepSeconds: stepSeconds) }

    /// The depth to ask `member` for this step, or nil to leave it out.
    private mutating func askDepth(_ member: Int, limit: Int, sampling: Bool) -> Int? {
        let (depth, gain) = bestDepth(member, limit: limit)
        if !members[member].costMeasured && !sampling {
            return min(limit, AutoTuning.firstContactDepth)  // first contact: measure its cost
        }
        if sampling || isCheap(member) {
            return limit  // free to ask; pruning decides what is sent
        }
        // Under load its drafting holds up every request: it is asked where it pays the batch,
        // and only while it is in step (a member left out, or whose prompt went unread, would
        // first catch up on every token it missed while the others wait), unless its forwards
        // are shared (its catch-up then rides in the others' draft forwards).
        if load > 0 {
            guard members[member].lastAskedStep == steps - 1 || sharers(member) > 1 else { return nil }
            return sharedDepth(member, limit: limit, load: load)
        }
        // A costly member is judged by evidence, drafting included (see ``CostlyMemberVerdict``).
        let verdict = CostlyMemberVerdict(
            members[member], baseRate: baseRate, modelledGain: gain,
            inUse: members[member].inUse(at: steps))
        let exploringDepth = max(1, min(limit, depth > 0 ? depth : AutoTuning.firstContactDepth))
        if members[member].burstLeft > 0 {
            members[member].burstLeft -= 1
            return exploringDepth
        }
        if verdict.pays && !verdict.needsStepsWithout && steps % verdict.stepsBetweenRefreshes != 0 {
            members[member].pause = AutoTuning.explorationInterval
            if members[member].selfLimiting { return limit }
            return verdict.hasEvidence ? max(1, depth) : exploringDepth  // on trial: deep enough to judge
        }
        if !verdict.pays && steps - members[member].lastAskedStep >= members[member].pause {
            // Exploration comes in short bursts: the first call of a burst pays for catching the
            // member up on the tokens it missed and is not counted; the later ones measure its rate.
            members[member].burstLeft = AutoTuning.burstLength - 1
            let growth = verdict.isClearlyWorse ? AutoTuning.pauseGrowthWhenClearlyWorse : AutoTuning.pauseGrowth
            members[member].pause = min(members[member].pause * growth, AutoTuning.longestPause)
            members[member].isCatchUpCall = true
            return exploringDepth
        }
        return nil
    }
}
