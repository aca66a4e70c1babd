/// The verifiers by name: what `--verify` and a request's `speculate.verify` choose from.
public enum VerificationMethod: String, Sendable, CaseIterable {
    /// ``GreedyVerifier``: the target's argmax (lossless for greedy decoding).
    case greedy
    /// ``SpeculativeSamplingVerifier``: SpecInfer's multi-draft rejection sampling (lossless).
    case stochastic
    /// ``SamplingWithoutReplacementVerifier``: Sequoia's variant (lossless).
    case sequoia
    /// ``TypicalAcceptanceVerifier``: Medusa's typical acceptance (lossy, says so).
    case typical

    /// The method for `name`; nil names the default for `temperature` (greedy at 0, stochastic
    /// otherwise). Unknown names are nil.
    public static func named(_ name: String?, temperature: Float) -> VerificationMethod? {
        guard let name else { return temperature > 0 ? .stochastic : .greedy }
        return VerificationMethod(rawValue: name)
    }

    /// The names, for help texts and errors.
    public static var names: [String] { allCases.map(\.rawValue) }

    /// A verifier of this kind.
    public var verifier: any Verifier {
        switch self {
        case .greedy: GreedyVerifier()
        case .stochastic: SpeculativeSamplingVerifier()
        case .sequoia: SamplingWithoutReplacementVerifier()
        case .typical: TypicalAcceptanceVerifier()
        }
    }
}
