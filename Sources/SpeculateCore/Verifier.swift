/// The outcome of verifying one tree.
public struct VerificationResult: Sendable, Equatable {
    /// Accepted tree nodes, from the root down one branch.
    public var accepted: [Int]
    /// The token the target itself contributes after the accepted branch.
    public var next: Token
}

/// Decides which branch of a drafted tree the target accepts, given the target's logits at the
/// root (the newest context token) and at every node.
public protocol Verifier: Sendable {
    /// Whether the verifier's output keeps the target's distribution exactly.
    var isLossless: Bool { get }
    /// Verifies `tree`; `nodeLogits[i]` are the target's logits after node `i`.
    func verify(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom
    ) -> VerificationResult
}

/// Greedy verification: follow the child equal to the target's argmax; lossless with respect to
/// greedy decoding of the target.
public struct GreedyVerifier: Verifier {
    /// A greedy verifier.
    public init() {}
    public var isLossless: Bool { true }

    public func verify(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom
    ) -> VerificationResult {
        var accepted: [Int] = []
        var node = -1
        var logits = rootLogits
        while true {
            let best = Token(argmax(logits))
            guard let child = tree.children(of: node).first(where: { tree.nodes[$0].token == best }) else {
                return VerificationResult(accepted: accepted, next: best)
            }
            accepted.append(child)
            node = child
            logits = nodeLogits[child]
        }
    }
}

/// Stochastic verification by SpecInfer's multi-step speculative sampling (arXiv 2305.09781,
/// Algorithm 2): drafts are tried in the order they were proposed; a draft x drawn from q is
/// accepted with probability min(1, p(x)/q(x)), and on rejection p becomes norm(max(0, p − q)).
/// When every draft is rejected the next token is drawn from what is left of p. Deterministic
/// drafts have a one-hot q. Equal tokens share one node but keep their own attempts, visited in
/// proposal order. The output has exactly the target's sampling distribution.
public struct SpeculativeSamplingVerifier: Verifier {
    /// A verifier.
    public init() {}
    public var isLossless: Bool { true }

    public func verify(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom
    ) -> VerificationResult {
        Self.walk(
            tree: tree, rootLogits: rootLogits, nodeLogits: nodeLogits, sampling: sampling, random: &random,
            withoutReplacement: false)
    }

    /// The residual walk both stochastic verifiers share. With `withoutReplacement`, a rejected
    /// draft is also removed from its proposer's q (Sequoia); otherwise q stays (SpecInfer).
    static func walk(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom, withoutReplacement: Bool
    ) -> VerificationResult {
        var accepted: [Int] = []
        var node = -1
        var p = sampling.distribution(rootLogits)
        descend: while true {
            let attempts = tree.children(of: node)
                .flatMap { child in tree.nodes[child].attempts.map { (child: child, attempt: $0) } }
                .sorted { $0.attempt.sequence < $1.attempt.sequence }
            var remaining: [Int: [Float]] = [:]  // proposer -> its q with rejected drafts removed
            for (child, attempt) in attempts {
                let x = Int(tree.nodes[child].token)
                var distribution = attempt.distribution
                if withoutReplacement, case .sampled(let original) = distribution {
                    distribution = .sampled(remaining[attempt.proposer] ?? original)
                }
                let q = distribution.probability(of: Token(x))
                let acceptance = q > 0 ? min(1, p[x] / q) : 0
                if random.unit() < acceptance {
                    accepted.append(child)
                    node = child
                    p = sampling.distribution(nodeLogits[child])
                    continue descend
                }
                subtractResidual(&p, distribution, token: x)
                if withoutReplacement, case .sampled(var values) = distribution {
                    values[x] = 0
                    let total = values.reduce(0, +)
                    remaining[attempt.proposer] = total > 0 ? values.map { $0 / total } : values
                }
            }
            return VerificationResult(accepted: accepted, next: Token(random.sample(p)))
        }
    }

    /// p := norm(max(0, p − q)).
    static func subtractResidual(_ p: inout [Float], _ q: DraftDistribution, token: Int) {
        var updated = p
        switch q {
        case .deterministic: updated[token] = 0
        case .sampled(let values): for i in updated.indices { updated[i] = max(0, updated[i] - values[i]) }
        }
        let total = updated.reduce(0, +)
        guard total > 0 else { return }  // p ≤ q everywhere: nothing can be rejected in exact arithmetic
        p = updated.map { $0 / total }
    }
}

/// Typical acceptance (Medusa): accept a drafted token when the target gives it probability above
/// min(ε, δ·exp(−H(p))). **Lossy**: faster at higher temperatures, but the output no longer
/// follows the target's distribution exactly. Greedy within the accepted branch.
public struct TypicalAcceptanceVerifier: Verifier {
    /// Hard floor ε.
    public var epsilon: Float
    /// Entropy-scaled threshold δ.
    public var delta: Float

    /// A verifier with Medusa's suggested thresholds.
    public init(epsilon: Float = 0.09, delta: Float = 0.3) {
        self.epsilon = epsilon
        self.delta = delta
    }

    public var isLossless: Bool { false }

    public func verify(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom
    ) -> VerificationResult {
        var accepted: [Int] = []
        var node = -1
        var logits = rootLogits
        while true {
            let p =
                sampling.isGreedy
                ? SamplingSettings(temperature: 1).distribution(logits) : sampling.distribution(logits)
            let entropy = -p.reduce(Float(0)) { $1 > 0 ? $0 + $1 * logf($1) : $0 }
            let threshold = min(epsilon, delta * expf(-entropy))
            let children = tree.children(of: node).filter { p[Int(tree.nodes[$0].token)] > threshold }
            guard let child = children.max(by: { p[Int(tree.nodes[$0].token)] < p[Int(tree.nodes[$1].token)] }) else {
                let next = sampling.isGreedy ? Token(argmax(logits)) : Token(random.sample(p))
                return VerificationResult(accepted: accepted, next: next)
            }
            accepted.append(child)
            node = child
            logits = nodeLogits[child]
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Stochastic verification with Sequoia's sampling without replacement (arXiv 2402.12374,
/// Algorithm 2): like ``SpeculativeSamplingVerifier``, but after a proposer's draft x is rejected
/// that proposer's q also loses x (q := norm(q with x removed)). Proposers must then draw a
/// node's children *without replacement* from q. It keeps acceptance high at low temperature,
/// where sampling with replacement keeps proposing the same rejected token.
public struct SamplingWithoutReplacementVerifier: Verifier {
    /// A verifier.
    public init() {}
    public var isLossless: Bool { true }

    public func verify(
        tree: TokenTree, rootLogits: [Float], nodeLogits: [[Float]], sampling: SamplingSettings,
        random: inout SeededRandom
    ) -> VerificationResult {
        SpeculativeSamplingVerifier.walk(
            tree: tree, rootLogits: rootLogits, nodeLogits: nodeLogits, sampling: sampling,
            random: &random, withoutReplacement: true)
    }
}
