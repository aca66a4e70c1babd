import Foundation
import Speculate

/// The end-of-run summary.
enum Summary {
    static func text(_ s: RunStatistics) -> String {
        var lines = [
            String(
                format:
                    "\n%d tokens in %.2f s (%.1f tokens/s; prompt %.2f s), %d target forwards, %.2f tokens per forward, stopped: %@",
                s.generatedTokens, s.decodeSeconds, s.tokensPerSecond, s.prefillSeconds, s.targetForwards,
                s.meanAcceptedPerForward, s.stopReason.rawValue)
        ]
        for p in s.proposers {
            lines.append(
                String(
                    format: "  %@: %d drafted, %d accepted (%.0f%%)%@", p.name, p.drafted, p.accepted,
                    p.acceptanceRate * 100,
                    p.failures > 0 ? ", \(p.failures) skipped" : ""))
        }
        // What went wrong with proposers (a plugin stopped, a draft refused): the first few.
        for error in s.proposerErrors.prefix(5) { lines.append("  \(error)") }
        if s.proposerErrors.count > 5 { lines.append("  ... and \(s.proposerErrors.count - 5) more proposer errors") }
        if s.verifySeconds + s.proposeSeconds > 0 {
            lines.append(
                String(
                    format: "  time: %.0f%% drafting, %.0f%% verifying",
                    100 * s.proposeSeconds / (s.proposeSeconds + s.verifySeconds),
                    100 * s.verifySeconds / (s.proposeSeconds + s.verifySeconds)))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What the auto policy learned: its step-time estimate and each member's cost and acceptance.
    static func text(_ snapshot: AutoPolicySnapshot) -> String {
        let curve = snapshot.verificationCost
        var lines = [
            String(
                format:
                    "  auto: %d of %d steps sent no draft; target step %.1f ms; %.1f tokens/s without costly members",
                snapshot.plainSteps, snapshot.steps, snapshot.stepSeconds * 1000, snapshot.baseTokensPerSecond),
            String(
                format: "    trees of 2/4/8/16 tokens priced at %.2f/%.2f/%.2f/%.2f single steps",
                curve.relativeCost(2), curve.relativeCost(4), curve.relativeCost(8), curve.relativeCost(16)),
        ]
        for member in snapshot.members {
            let acceptance = member.acceptanceByDepth.prefix(4).map { String(format: "%.2f", $0) }.joined(
                separator: " ")
            lines.append(
                String(
                    format: "    %@: asked %d times, %.1f ms per drafted depth, acceptance by depth %@%@", member.name,
                    member.asked,
                    member.secondsPerDepth * 1000, acceptance,
                    member.tokensPerSecond > 0 ? String(format: ", %.1f tokens/s with it", member.tokensPerSecond) : "")
            )
            if let error = member.lastError {
                lines.append("      \(member.failures) drafts skipped; last: \(error)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func dictionary(_ s: RunStatistics) -> [String: Any] {
        [
            "generated_tokens": s.generatedTokens, "decode_seconds": s.decodeSeconds,
            "prefill_seconds": s.prefillSeconds,
            "tokens_per_second": s.tokensPerSecond, "target_forwards": s.targetForwards,
            "mean_accepted_length": s.meanAcceptedPerForward, "stop_reason": s.stopReason.rawValue,
            "acceptance_by_depth": s.acceptanceByDepth,
            "proposers": s.proposers.map {
                ["name": $0.name, "drafted": $0.drafted, "accepted": $0.accepted, "failures": $0.failures]
            },
            "proposer_errors": s.proposerErrors,
        ]
    }
}

/// Terminal colours for --show-drafts: one colour per drafter name (the proposers, and under
/// `auto` its members as their drafts appear), the first drafter of a token deciding.
struct Palette {
    static let colours = ["\u{1B}[32m", "\u{1B}[34m", "\u{1B}[35m", "\u{1B}[36m", "\u{1B}[33m"]
    static let reset = "\u{1B}[0m"
    /// Drafter names in the order they got their colours.
    private(set) var names: [String]

    init(names: [String]) { self.names = names }

    mutating func paint(_ text: String, drafters: [String]) -> String {
        guard let drafter = drafters.first else { return "\u{1B}[1m" + text + Self.reset }
        if !names.contains(drafter) { names.append(drafter) }
        return Self.colours[names.firstIndex(of: drafter)! % Self.colours.count] + text + Self.reset
    }

    var legend: String {
        var parts = ["\u{1B}[1mbold\(Self.reset) = target"]
        for (i, name) in names.enumerated() { parts.append(Self.colours[i % Self.colours.count] + name + Self.reset) }
        return "legend: " + parts.joined(separator: ", ") + "\n"
    }
}
