import Foundation
import Speculate

/// `bench`'s reports: the JSON document, the table, CSV and the SVG chart.
extension StrategyBenchmark {
    static func document(
        _ results: [StrategyResult], prompts promptSet: [BenchPrompt], target: String, maxTokens: Int, repeats: Int = 1
    ) -> [String: Any] {
        let plainRate = results[0].seconds > 0 ? Double(results[0].tokens) / results[0].seconds : 0
        let prompts = promptSet.count
        return [
            "target": target, "prompts": prompts, "repeats": repeats, "max_tokens": maxTokens,
            "threads": ComputeThreads.count,
            "kernels": ComputeThreads.kernelName, "peak_memory_bytes": peakMemory,
            "strategies": results.map { r -> [String: Any] in
                let rate = r.seconds > 0 ? Double(r.tokens) / r.seconds : 0
                // Seconds of drafting per drafted node, in plain target steps (seconds per plain token).
                let draftCost = r.drafted > 0 && plainRate > 0 ? r.proposeSeconds / Double(r.drafted) * plainRate : 0
                let rows = r.perPrompt.enumerated().map { i, row -> [String: Any] in
                    let plain = results[0].perPrompt.indices.contains(i) ? results[0].perPrompt[i] : row
                    let plainPromptRate = plain.seconds > 0 ? Double(plain.tokens) / plain.seconds : 0
                    let promptRate = row.seconds > 0 ? Double(row.tokens) / row.seconds : 0
                    var object: [String: Any] = [
                        "prompt": i, "tokens_per_second": row.tokensPerSecond, "generated_tokens": row.tokens,
                        "speedup": plainPromptRate > 0 ? promptRate / plainPromptRate : 0,
                        "mean_accepted_length": row.meanAccepted,
                    ]
                    if i < promptSet.count, let category = promptSet[i].category { object["category"] = category }
                    return object
                }
                var object: [String: Any] = [
                    "name": r.name, "tokens_per_second": r.median, "tokens_per_second_min": r.spread.0,
                    "tokens_per_second_max": r.spread.1, "speedup": plainRate > 0 ? rate / plainRate : 0,
                    "mean_accepted_length": r.meanAccepted, "acceptance_by_depth": r.acceptanceByDepth,
                    "draft_time_share": r.proposeSeconds / max(r.proposeSeconds + r.verifySeconds, 1e-9),
                    "verify_time_share": r.verifySeconds / max(r.proposeSeconds + r.verifySeconds, 1e-9),
                    "identical_to_plain": r.identical, "generated_tokens": r.tokens,
                    "outputs_outside_schema": r.invalidOutputs, "grammar_masks": r.masksComputed,
                    "grammar_mask_seconds": r.maskSeconds, "decode_seconds": r.seconds,
                    "prefill_seconds": r.prefillSeconds, "prompt_tokens": r.promptTokens,
                    "drafted_nodes": r.drafted, "draft_cost_target_steps": draftCost, "per_prompt": rows,
                ]
                let describe = { (curve: VerificationCost) -> [String: Any] in
                    [
                        "one_token_seconds": curve.oneTokenSeconds,
                        "relative": Dictionary(
                            uniqueKeysWithValues: Self.reportedCurveSizes.map { (String($0), curve.relativeCost($0)) }),
                    ]
                }
                if let curve = r.verificationCost { object["verification_cost"] = describe(curve) }
                if let curve = r.learnedCost { object["learned_verification_cost"] = describe(curve) }
                return object
            },
        ]
    }

    static func table(_ document: [String: Any]) -> String {
        var lines = [
            "strategy                                   tok/s (min-max)      speedup  accepted/fwd  draft%  draft cost  identical"
        ]
        for s in document["strategies"] as? [[String: Any]] ?? [] {
            let name = (s["name"] as? String ?? "").padding(toLength: 42, withPad: " ", startingAt: 0)
            let cost = s["draft_cost_target_steps"] as? Double ?? 0
            lines.append(
                String(
                    format: "%@ %6.1f (%5.1f-%5.1f)  %6.2fx  %12.2f  %5.0f%%  %@  %@", name,
                    s["tokens_per_second"] as? Double ?? 0, s["tokens_per_second_min"] as? Double ?? 0,
                    s["tokens_per_second_max"] as? Double ?? 0, s["speedup"] as? Double ?? 0,
                    s["mean_accepted_length"] as? Double ?? 0, 100 * (s["draft_time_share"] as? Double ?? 0),
                    cost > 0 ? String(format: "%10.3f", cost) : "         -",
                    (s["identical_to_plain"] as? Bool ?? false) ? "yes" : "NO"))
            if let masks = s["grammar_masks"] as? Int, masks > 0, let seconds = s["grammar_mask_seconds"] as? Double {
                lines.append(
                    String(
                        format: "  grammar masks: %d computed, %.2f ms each, %.1f%% of decoding", masks,
                        1000 * seconds / Double(masks), 100 * seconds / max(s["decode_seconds"] as? Double ?? 0, 1e-9)))
            }
            if let invalid = s["outputs_outside_schema"] as? Int, invalid > 0 {
                lines.append("  \(invalid) outputs are not whole documents of their schema (cut by --max-tokens?)")
            }
        }
        for s in document["strategies"] as? [[String: Any]] ?? [] {
            for (key, what) in [
                ("verification_cost", "started pricing trees with"),
                ("learned_verification_cost", "ended pricing them with"),
            ] {
                guard let curve = s[key] as? [String: Any], let relative = curve["relative"] as? [String: Double] else {
                    continue
                }
                let points = reportedCurveSizes.map { String(format: "%d: %.2f", $0, relative[String($0)] ?? 0) }
                    .joined(separator: ", ")
                lines.append(
                    String(
                        format: "%@ %@ one token at %.1f ms and n tokens at (n: x one token) %@",
                        s["name"] as? String ?? "", what, 1000 * (curve["one_token_seconds"] as? Double ?? 0), points))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Tree sizes whose cost `bench` reports for `auto`'s curve: where int8 kernels stay at about
    /// one token's time (2-4) and where the curve decides how large trees grow (6, 8).
    static let reportedCurveSizes = [2, 4, 6, 8]

    static func csv(_ document: [String: Any]) -> String {
        var lines = ["name,tokens_per_second,speedup,mean_accepted_length,draft_time_share,identical_to_plain"]
        for s in document["strategies"] as? [[String: Any]] ?? [] {
            let name = (s["name"] as? String ?? "").replacingOccurrences(of: "\"", with: "\"\"")
            lines.append(
                "\"\(name)\",\(s["tokens_per_second"] ?? 0),\(s["speedup"] ?? 0),\(s["mean_accepted_length"] ?? 0),\(s["draft_time_share"] ?? 0),\(s["identical_to_plain"] ?? false)"
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A bar chart of speedup per strategy and a line per strategy of acceptance by depth.
    static func svg(_ document: [String: Any]) -> String {
        let strategies = document["strategies"] as? [[String: Any]] ?? []
        let width = 760.0
        let barHeight = 26.0
        let left = 300.0
        let height = 60 + Double(strategies.count) * (barHeight + 8) + 220
        let maxSpeed = max(1.5, strategies.map { $0["speedup"] as? Double ?? 0 }.max() ?? 1)
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg +=
            "<text x=\"10\" y=\"24\" font-size=\"16\">Speedup over plain decoding (same run) — \(document["target"] ?? "")</text>\n"
        let scale = (width - left - 60) / maxSpeed
        let oneX = left + scale
        for (i, s) in strategies.enumerated() {
            let y = 44 + Double(i) * (barHeight + 8)
            let speed = s["speedup"] as? Double ?? 0
            let colour = speed >= 1 ? "#2a9d8f" : "#e76f51"
            let label = (s["name"] as? String ?? "").replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(
                of: "<", with: "&lt;")
            svg += "<text x=\"10\" y=\"\(y + 17)\">\(label)</text>\n"
            svg +=
                "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(max(1, speed * scale))\" height=\"\(barHeight)\" fill=\"\(colour)\"/>\n"
            svg += "<text x=\"\(left + speed * scale + 6)\" y=\"\(y + 17)\">\(String(format: "%.2fx", speed))</text>\n"
        }
        let chartTop = 60 + Double(strategies.count) * (barHeight + 8)
        svg +=
            "<line x1=\"\(oneX)\" y1=\"40\" x2=\"\(oneX)\" y2=\"\(chartTop - 10)\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
        svg += "<text x=\"10\" y=\"\(chartTop + 14)\" font-size=\"16\">Acceptance by tree depth</text>\n"
        let plotTop = chartTop + 30
        let plotHeight = 160.0
        let plotLeft = 60.0
        let plotWidth = width - 100
        svg +=
            "<rect x=\"\(plotLeft)\" y=\"\(plotTop)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
        let palette = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6d597a"]
        for (i, s) in strategies.enumerated() {
            let rates = s["acceptance_by_depth"] as? [Double] ?? []
            guard rates.count > 1 else { continue }
            let points = rates.enumerated().map { d, r in
                "\(plotLeft + Double(d) / Double(rates.count - 1) * plotWidth),\(plotTop + plotHeight * (1 - r))"
            }.joined(separator: " ")
            svg +=
                "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"2\"/>\n"
        }
        svg +=
            "<text x=\"\(plotLeft)\" y=\"\(plotTop + plotHeight + 16)\">depth 1</text><text x=\"\(plotLeft - 40)\" y=\"\(plotTop + 10)\">100%</text>\n"
        return svg + "</svg>\n"
    }
}
