import SpeculateCore

/// Pricing when the target's forward is shared with other requests (`serve --parallel`): the
/// machine's time is the whole batch's, so a request's tree is worth its nodes only where they
/// bring more tokens than the time they add would bring the batch anyway.
///
/// With `load` tokens of other requests in the forward, plain decoding yields the batch
/// ρ = (load + 1) / c(load + 1) tokens per one-token step (c the verification curve). A tree of n
/// nodes adds c(load + 1 + n) − c(load + 1) steps of verification, and drafting adds its own
/// time (every other request waits for it), so n pays when its expected accepted tokens exceed
/// ρ times that. Alone (load 0) ρ is 1, the plain step's rate; under load ρ grows and the steep
/// part of the curve comes sooner, so trees shrink, and a draft model whose forwards cost a
/// fifth of a step each stops paying: `auto` falls back towards plain batched decoding, which
/// is what these CPUs do best at four or more requests. Greedy decoding only (a sampled step's
/// drafts must not hinge on timings).
extension PolicyState {
    /// The batch's plain rate, tokens per one-token step, with `load` other tokens in the forward.
    func batchRate(load: Int) -> Double { Double(load + 1) / cost.relativeCost(load + 1) }

    /// Steps of verification `nodes` more nodes add to a forward already carrying `load + 1` tokens.
    func marginalVerification(nodes: Int, load: Int) -> Double {
        cost.relativeCost(load + 1 + nodes) - cost.relativeCost(load + 1)
    }

    /// The depth to ask a costly member under load (nil: it does not pay), by its acceptance model
    /// and its drafting cost.
    func sharedDepth(_ member: Int, limit: Int, load: Int) -> Int? {
        let rate = batchRate(load: load)
        var best: (depth: Int, surplus: Double)?
        var survival = 1.0
        var expected = 0.0
        for depth in stride(from: 1, through: limit, by: 1) {
            survival *= members[member].acceptance.depthAcceptance(depth)
            expected += survival
            let drafting = members[member].secondsPerDepth * Double(depth) / stepSeconds
            let surplus = expected - rate * (marginalVerification(nodes: depth, load: load) + drafting)
            if surplus > (best?.surplus ?? 0) { best = (depth, surplus) }
        }
        return best?.depth
    }

    /// How many of the nodes, in `order` of value with `values` summed along it, to send under
    /// load: the count with the largest surplus of expected tokens over the batch's rate times
    /// their verification (none when no count has one).
    func sharedCount(values: [Double], load: Int, maxNodes: Int) -> Int {
        let rate = batchRate(load: load)
        var best = (count: 0, surplus: 0.0)
        var expected = 0.0
        for (rank, value) in values.prefix(maxNodes).enumerated() {
            expected += value
            let surplus = expected - rate * marginalVerification(nodes: rank + 1, load: load)
            if surplus > best.surplus { best = (rank + 1, surplus) }
        }
        return best.count
    }
}
