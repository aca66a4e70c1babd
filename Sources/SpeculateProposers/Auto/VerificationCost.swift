/// The target's cost of verifying n tokens in one forward, relative to one token: t(n)/t(1).
/// Measured on the machine (`BatchCostProbe` via the `Speculate` module's cache) because it
/// decides how large a tree can pay: on a GPU t(16) is close to 1, on a small CPU it is not.
public struct VerificationCost: Sendable, Codable, Equatable {
    /// Batch sizes measured, ascending, starting at 1.
    public var tokens: [Int]
    /// t(n)/t(1) for each of `tokens`.
    public var relative: [Double]
    /// Seconds of one single-token forward when measured.
    public var oneTokenSeconds: Double

    /// A curve from measured points.
    public init(tokens: [Int], relative: [Double], oneTokenSeconds: Double) {
        let order = tokens.indices.sorted { tokens[$0] < tokens[$1] }
        self.tokens = order.map { tokens[$0] }
        self.relative = order.map { relative[$0] }
        self.oneTokenSeconds = oneTokenSeconds
    }

    /// t(n)/t(1), interpolated linearly between measured sizes and extrapolated from the last two.
    public func relativeCost(_ n: Int) -> Double {
        guard let first = tokens.first, tokens.count == relative.count, !tokens.isEmpty else {
            return Double(max(1, n))
        }
        if n <= first { return relative[0] }
        for index in 1..<tokens.count where n <= tokens[index] {
            let (a, b) = (tokens[index - 1], tokens[index])
            let fraction = Double(n - a) / Double(b - a)
            return relative[index - 1] + fraction * (relative[index] - relative[index - 1])
        }
        guard tokens.count >= 2 else { return relative[0] * Double(n) / Double(first) }
        let (a, b) = (tokens[tokens.count - 2], tokens[tokens.count - 1])
        let slope = (relative[tokens.count - 1] - relative[tokens.count - 2]) / Double(b - a)
        return relative[tokens.count - 1] + slope * Double(n - b)
    }
}
