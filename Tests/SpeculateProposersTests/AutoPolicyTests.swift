import SpeculateCore
import SpeculateProposers
import SpeculateTestSupport
import Testing

/// The table-model targets here cost what their curves say, not what their verifications take on
/// this machine: every policy keeps the given prices (`learnsVerificationCost: false`), and
/// learning them is tested with synthetic times in `LearnedCostTests`.
@Suite("The auto policy")
struct AutoPolicyTests {
    static let vocabulary = 50
    /// This machine's measured shape: two tokens cost 1.2 steps, four 1.9, sixteen 7.3.
    static let cpuLike = VerificationCost(
        tokens: [1, 2, 4, 8, 16, 64], relative: [1, 1.18, 1.93, 3.39, 7.27, 33.1], oneTokenSeconds: 0.06)

    @Test("greedy output equals plain greedy with good, random and adversarial members")
    func lossless() async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: 31)
        let prompt: [Token] = [4, 5, 6]
        let expected = plainGreedy(target, prompt: prompt, count: 80)
        let auto = AutoProposer(
            members: [
                OracleProposer(target: target, depth: 6), RandomTreeProposer(vocabulary: Self.vocabulary, seed: 3),
                AdversarialProposer(vocabulary: Self.vocabulary),
            ], verificationCost: Self.cpuLike, learnsVerificationCost: false)
        let decoder = SpeculativeDecoder(target: target, proposers: [auto])
        let (tokens, stats) = try await decoder.generateAll(prompt: prompt, options: GenerationOptions(maxTokens: 80))
        #expect(tokens.map(\.token) == expected)
        #expect(stats.acceptedDrafts > 20, "a perfect member should be used: \(stats.acceptedDrafts) accepted")
        let adversarial = auto.snapshot.members[2]
        #expect(adversarial.failures > 0 && adversarial.lastError != nil, "a throwing member's failures are reported")
    }

    @Test("accepted drafts name the member that drafted them, not auto")
    func memberProvenance() async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: 35)
        let free = VerificationCost(tokens: [1, 64], relative: [1, 1.01], oneTokenSeconds: 0.01)
        let auto = AutoProposer(
            members: [
                RandomTreeProposer(vocabulary: Self.vocabulary, seed: 4), OracleProposer(target: target, depth: 4),
            ],
            verificationCost: free, learnsVerificationCost: false)
        let decoder = SpeculativeDecoder(target: target, proposers: [auto])
        let (tokens, _) = try await decoder.generateAll(prompt: [1, 2], options: GenerationOptions(maxTokens: 60))
        let drafted = tokens.filter { if case .drafted = $0.source { true } else { false } }
        #expect(drafted.count > 20, "the oracle's drafts should be accepted: \(drafted.count)")
        #expect(drafted.allSatisfy { !$0.drafters.isEmpty && !$0.drafters.contains("auto") })
        #expect(drafted.contains { $0.drafters.contains("oracle") })
        let fromTarget = tokens.filter { $0.source == .target }
        #expect(fromTarget.allSatisfy { $0.drafters.isEmpty })
    }

    @Test("sends nothing when verifying any extra token costs more than it can return")
    func nothingPays() async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: 32)
        let prohibitive = VerificationCost(tokens: [1, 2, 64], relative: [1, 3, 200], oneTokenSeconds: 0.01)
        let auto = AutoProposer(
            members: [OracleProposer(target: target, depth: 4)], verificationCost: prohibitive,
            learnsVerificationCost: false)
        let decoder = SpeculativeDecoder(target: target, proposers: [auto])
        let (_, stats) = try await decoder.generateAll(prompt: [1, 2], options: GenerationOptions(maxTokens: 40))
        #expect(stats.acceptedDrafts == 0)
        let snapshot = auto.snapshot
        #expect(snapshot.plainSteps == snapshot.steps, "\(snapshot.plainSteps) of \(snapshot.steps) steps plain")
    }

    @Test("grows deep trees when verification is nearly free and the member is right")
    func freeVerification() async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: 33)
        let free = VerificationCost(tokens: [1, 64], relative: [1, 1.01], oneTokenSeconds: 0.01)
        let auto = AutoProposer(
            members: [OracleProposer(target: target, depth: 8)], verificationCost: free, learnsVerificationCost: false)
        let decoder = SpeculativeDecoder(target: target, proposers: [auto])
        let (_, stats) = try await decoder.generateAll(prompt: [1, 2], options: GenerationOptions(maxTokens: 120))
        let perForward = Double(stats.acceptedDrafts + stats.targetForwards) / Double(stats.targetForwards)
        #expect(perForward > 4, "mean accepted length \(perForward)")
    }

    @Test("learns that a random member is useless and stops sending its drafts")
    func learnsUselessMember() async throws {
        let target = TableModelSession(vocabulary: Self.vocabulary, seed: 34)
        let auto = AutoProposer(
            members: [RandomTreeProposer(vocabulary: Self.vocabulary, seed: 9)], verificationCost: Self.cpuLike,
            learnsVerificationCost: false)
        let decoder = SpeculativeDecoder(target: target, proposers: [auto])
        _ = try await decoder.generateAll(prompt: [1, 2], options: GenerationOptions(maxTokens: 200))
        let snapshot = auto.snapshot
        #expect(
            snapshot.members[0].acceptanceByDepth[0] < 0.2,
            "learned acceptance \(snapshot.members[0].acceptanceByDepth[0])")
        #expect(
            Double(snapshot.plainSteps) > 0.8 * Double(snapshot.steps),
            "\(snapshot.plainSteps) of \(snapshot.steps) steps plain")
    }

    @Test("the cost curve interpolates and extrapolates")
    func costCurve() {
        #expect(Self.cpuLike.relativeCost(1) == 1)
        #expect(abs(Self.cpuLike.relativeCost(3) - (1.18 + 1.93) / 2) < 1e-9)
        #expect(Self.cpuLike.relativeCost(128) > 33.1)
    }
}
