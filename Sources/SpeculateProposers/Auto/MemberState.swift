/// What the `auto` policy knows about one member: what its drafting costs, how often its nodes
/// are accepted, how its steps fared, and where it is in its exploration schedule.
struct MemberState {
    /// Whether the member ends its drafts on its own confidence (``SelfLimitingProposer``): in
    /// use, it is asked for the budget's full depth, as its own stop knows when it is sure better
    /// than the average acceptance ``PolicyState/bestDepth(_:limit:)`` prices with (the 0.5B draft
    /// went 7–8 deep on code by itself where the priced depth cut it at 3: HumanEval-20 1.80x
    /// against 1.74x).
    let selfLimiting: Bool

    // MARK: Cost

    /// Seconds per drafted depth (a moving average once steady calls are measured).
    var secondsPerDepth = 0.0
    /// Whether any call has been timed yet.
    var costMeasured = false
    /// Whether `secondsPerDepth` comes from a call that followed one on the previous step (rather
    /// than from the first contact, which may include catching up on a prompt).
    var costFromSteadyCalls = false

    // MARK: Calls

    /// Steps it was asked.
    var asked = 0
    /// The step it was last asked on.
    var lastAskedStep = -1000
    /// Whether this step's call follows one on the previous step (its cost is then the cost of
    /// drafting alone, not of absorbing tokens it missed).
    var followsPreviousCall = false
    /// Whether this step's call is the first of an exploration burst (it catches up on missed
    /// tokens and is not counted as evidence).
    var isCatchUpCall = false
    /// Calls left in the current exploration burst.
    var burstLeft = 0
    /// Steps of idleness before the next exploration burst (grows while bursts find nothing).
    var pause = AutoTuning.explorationInterval

    // MARK: Evidence

    /// Which of its nodes the target accepted.
    var acceptance = AcceptanceModel()
    /// Realized tokens per second of the steps that asked it (costly members).
    var rateWhenAsked = MovingRate()
    /// Its steps against their counterfactual without it (greedy steps, costly members).
    var paired = PairedRate()
    /// Whether its latest drafts were sampled: then no step has a counterfactual, and it is judged
    /// by realized rates of steps with and without it instead.
    var draftsSampled = false

    // MARK: Failures

    /// Calls that threw.
    var failures = 0
    /// The newest error's text.
    var lastError: String?

    init(selfLimiting: Bool) {
        self.selfLimiting = selfLimiting
    }

    /// Whether it drafts a depth for less than `fraction` of a target step of `stepSeconds`
    /// (false until its cost is measured).
    func isCheap(fraction: Double, stepSeconds: Double) -> Bool {
        costMeasured && secondsPerDepth < fraction * stepSeconds
    }

    /// Whether it was asked on the step before `step`.
    func inUse(at step: Int) -> Bool { lastAskedStep == step - 1 }

    /// Notes that it is asked on `step`.
    mutating func markAsked(at step: Int) {
        asked += 1
        followsPreviousCall = lastAskedStep == step - 1
        lastAskedStep = step
    }

    /// Updates the cost per drafted depth from one call. Once a first figure exists, only calls
    /// that follow a call on the previous step count: a member asked after a pause must first
    /// absorb every token it missed, which says nothing about what drafting costs while in use.
    mutating func recordDraftTime(seconds: Double, depth: Int) {
        let perDepth = seconds / Double(max(1, depth))
        if !costMeasured {
            secondsPerDepth = perDepth
            costMeasured = true
        } else if followsPreviousCall {
            secondsPerDepth =
                costFromSteadyCalls
                ? (1 - AutoTuning.draftTimeWeight) * secondsPerDepth + AutoTuning.draftTimeWeight * perDepth : perDepth
            costFromSteadyCalls = true
        }
    }

    mutating func recordFailure(_ message: String) {
        failures += 1
        lastError = message
    }
}
