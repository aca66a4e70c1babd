/// What ``AutoProposer`` has learned: per member, the measured drafting cost and acceptance,
/// and the verification cost it prices trees with.
public struct AutoPolicySnapshot: Sendable {
    /// One member's figures.
    public struct Member: Sendable {
        /// The member's name.
        public var name: String
        /// Steps it was asked.
        public var asked: Int
        /// Seconds per drafted depth (moving average).
        public var secondsPerDepth: Double
        /// Smoothed acceptance probability at depths 1, 2, … (given the parent was accepted).
        public var acceptanceByDepth: [Double]
        /// Realized tokens per second of steps that asked this member (costly members only; 0 if none).
        public var tokensPerSecond: Double
        /// Calls that threw.
        public var failures: Int
        /// The newest error's text, if any call threw.
        public var lastError: String?
    }
    /// The members.
    public var members: [Member]
    /// Realized tokens per second of steps that asked no costly member (0 if none).
    public var baseTokensPerSecond: Double
    /// The one-token target step time in use, seconds.
    public var stepSeconds: Double
    /// The verification cost curve in use: the seed curve as corrected by the verifications run.
    public var verificationCost: VerificationCost
    /// Steps where the policy sent no draft at all.
    public var plainSteps: Int
    /// All steps.
    public var steps: Int
}

extension PolicyState {
    package func snapshot(names: [String]) -> AutoPolicySnapshot {
        AutoPolicySnapshot(
            members: zip(names, members).map { name, member in
                AutoPolicySnapshot.Member(
                    name: name, asked: member.asked, secondsPerDepth: member.secondsPerDepth,
                    acceptanceByDepth: member.acceptance.byDepthEstimates, tokensPerSecond: member.rateWhenAsked.value,
                    failures: member.failures, lastError: member.lastError)
            },
            baseTokensPerSecond: baseRate.value, stepSeconds: stepSeconds, verificationCost: cost.curve,
            plainSteps: plainSteps, steps: steps)
    }
}
