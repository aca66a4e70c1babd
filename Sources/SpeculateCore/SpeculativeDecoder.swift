/// The decoding loop: propose → merge → verify (one target forward for the whole tree) →
/// commit → tell the proposers. With no proposers it is plain autoregressive decoding on the
/// same code path.
public struct SpeculativeDecoder: Sendable {
    /// The target model's session.
    public let target: any ModelSession
    /// The proposers, in the order their indices appear in statistics.
    public let proposers: [any DraftProposer]
    /// The tree merger.
    public let merger: any TreeMerger
    /// The verifier.
    public let verifier: any Verifier

    /// A decoder. Pass a verifier matching the sampling mode (greedy or stochastic).
    public init(
        target: any ModelSession, proposers: [any DraftProposer], merger: any TreeMerger = ScoreRankedMerger(),
        verifier: any Verifier = GreedyVerifier()
    ) {
        self.target = target
        self.proposers = proposers
        self.merger = merger
        self.verifier = verifier
    }

    /// Generates after `prompt`, streaming events; cancelling the consuming task stops promptly.
    public func generate(prompt: [Token], options: GenerationOptions) -> AsyncThrowingStream<DecoderEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(prompt: prompt, options: options) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Generates in the calling task, handing each event to `onEvent` as it happens. When this
    /// returns or throws, the decoder no longer touches the target session. A caller that reuses
    /// the session for the next generation needs that: the stream form runs in a task of its own,
    /// which may still be finishing a step after its consumer went away (a server's client that
    /// disconnected). Cancelling the calling task stops generation before the next step.
    public func generate(prompt: [Token], options: GenerationOptions, onEvent: (DecoderEvent) -> Void) async throws {
        try await run(prompt: prompt, options: options, emit: onEvent)
    }

    /// Generates and returns the tokens and the run's statistics.
    public func generateAll(prompt: [Token], options: GenerationOptions) async throws -> (
        tokens: [GeneratedToken], statistics: RunStatistics
    ) {
        var tokens: [GeneratedToken] = []
        var statistics = RunStatistics()
        try await run(prompt: prompt, options: options) { event in
            switch event {
            case .tokens(let new, _): tokens += new
            case .finished(let stats): statistics = stats
            case .step: break
            }
        }
        return (tokens, statistics)
    }

    private func run(prompt: [Token], options: GenerationOptions, emit: (DecoderEvent) -> Void) async throws {
        var run = try await DecodingRun.start(self, prompt: prompt, options: options)
        while try await run.step(emit: emit) {}
        run.finish(emit: emit)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
