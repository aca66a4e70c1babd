import Foundation

/// Something the decoder reports while it runs.
public enum DecoderEvent: Sendable {
    /// Newly accepted tokens, in order, with the text they complete (empty unless
    /// ``GenerationOptions/tokenBytes`` is set; a character split across tokens is held back
    /// until it is whole).
    case tokens([GeneratedToken], text: String)
    /// Figures of the step that produced them.
    case step(StepStatistics)
    /// The run ended.
    case finished(RunStatistics)
}

/// Errors the decoder reports.
public enum DecoderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The prompt is empty.
    case emptyPrompt
    /// The prompt does not fit in the target's context.
    case promptTooLong(tokens: Int, capacity: Int)
    /// A proposer draws from a vocabulary of another size than the target's.
    case vocabularyMismatch(String)

    public var description: String {
        switch self {
        case .emptyPrompt: return "the prompt is empty"
        case let .promptTooLong(tokens, capacity):
            return "the prompt has \(tokens) tokens but the context holds \(capacity); shorten it or raise --context"
        case let .vocabularyMismatch(message): return message
        }
    }
}

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    /// Most tokens to generate.
    public var maxTokens: Int
    /// Tree limits.
    public var budget: TreeBudget
    /// Target sampling.
    public var sampling: SamplingSettings
    /// Tokens that end generation (not emitted... they are emitted, then generation stops).
    public var stopTokens: Set<Token>
    /// Texts that end generation (needs `tokenBytes`): generation ends with the token that
    /// completes one (matched on UTF-8 bytes, across token boundaries).
    public var stopStrings: [String]
    /// The UTF-8 bytes a token stands for (for example `{ tokenizer.bytes(of: $0) }`): turns on
    /// text in ``DecoderEvent/tokens(_:text:)`` and stop strings. The decoder keeps the output's
    /// bytes and decodes only what each step adds, so text costs the same per token at any length.
    public var tokenBytes: (@Sendable (Token) -> [UInt8])?
    /// Checked before every step; returning true ends generation cleanly (for example on Ctrl-C).
    public var shouldStop: @Sendable () -> Bool = { false }
    /// How many leading prompt tokens the target session already holds, committed, from an
    /// earlier generation (a server's prompt cache): the decoder keeps them and evaluates only
    /// the rest of the prompt. The caller guarantees that the session's first tokens are these;
    /// the decoder still evaluates at least the last prompt token (its logits start decoding).
    /// The kernels are batch-invariant, so the kept entries equal a fresh prefill's bit for bit.
    public var cachedPromptTokens = 0

    /// Options; the defaults generate 128 greedy tokens with a 16-node tree.
    public init(maxTokens: Int = 128, budget: TreeBudget = TreeBudget(), sampling: SamplingSettings = .greedy,
                stopTokens: Set<Token> = [], stopStrings: [String] = [], tokenBytes: (@Sendable (Token) -> [UInt8])? = nil) {
        self.maxTokens = maxTokens
        self.budget = budget
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.stopStrings = stopStrings
        self.tokenBytes = tokenBytes
    }
}

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
    public init(target: any ModelSession, proposers: [any DraftProposer], merger: any TreeMerger = ScoreRankedMerger(),
                verifier: any Verifier = GreedyVerifier()) {
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
    public func generateAll(prompt: [Token], options: GenerationOptions) async throws -> (tokens: [GeneratedToken], statistics: RunStatistics) {
        var tokens: [GeneratedToken] = []
        var statistics = RunStatistics()
        try await run(prompt: prompt, options: options) { event in
            switch event {
            case let .tokens(new, _): tokens += new
            case let .finished(stats): statistics = stats
            case .step: break
            }
        }
        return (tokens, statistics)
    }

    private func run(prompt: [Token], options: GenerationOptions, emit: (DecoderEvent) -> Void) async throws {
        guard !prompt.isEmpty else { throw DecoderError.emptyPrompt }
        guard prompt.count < target.capacity else { throw DecoderError.promptTooLong(tokens: prompt.count, capacity: target.capacity) }
        let vocabulary = target.vocabularySize
        var stats = RunStatistics()
        stats.proposers = proposers.map { ProposerStatistics(name: $0.name) }
        stats.offeredByDepth = Array(repeating: 0, count: options.budget.maxDepth)
        stats.acceptedByDepth = Array(repeating: 0, count: options.budget.maxDepth)
        var random = SeededRandom(seed: options.sampling.seed)
        let clock = ContinuousClock()

        let kept = max(0, min(options.cachedPromptTokens, prompt.count - 1, target.committedLength))
        try target.rollback(to: kept)
        let prefillStart = clock.now
        let promptLogits = try target.append(Array(prompt[kept...]))
        stats.cachedPromptTokens = kept
        // Proposers with models of their own read the prompt now (a failure only costs that
        // proposer its head start: it catches up in its first draft).
        for (index, proposer) in proposers.enumerated() {
            do { try await proposer.prepare(prompt: prompt) } catch {
                stats.proposers[index].failures += 1
                stats.proposerErrors.append("prompt: \(proposer.name) could not read the prompt: \(error)")
            }
        }
        stats.prefillSeconds = (clock.now - prefillStart).seconds
        let decodeStart = clock.now

        var context = prompt
        var generated: [Token] = []
        // The first token comes from the prompt's logits: a step with an empty tree.
        var pending = verifier.verify(tree: TokenTree(), rootLogits: promptLogits, nodeLogits: [], sampling: options.sampling, random: &random).next
        var newTokens = [GeneratedToken(token: pending, source: .target)]
        context.append(pending)
        generated.append(pending)
        for proposer in proposers { await proposer.observe(accepted: [pending], context: context) }

        var output = options.tokenBytes.map { OutputText(spell: $0, stopStrings: options.stopStrings) }
        func emitTokens(_ new: [GeneratedToken]) {
            guard !new.isEmpty else { return }
            emit(.tokens(new, text: output?.takeText() ?? ""))
        }
        var step = 0
        while true {
            let offered = newTokens.count
            if let reason = stopReason(generated: generated, new: &newTokens, output: &output, options: options) {
                stats.stopReason = reason
                generated.removeLast(offered - newTokens.count)
                emitTokens(newTokens)
                break
            }
            emitTokens(newTokens)
            if Task.isCancelled || options.shouldStop() { stats.stopReason = .cancelled; break }
            let room = target.capacity - target.committedLength - 1  // slots for drafted nodes
            if room < 0 { stats.stopReason = .contextFull; break }

            // Propose and merge.
            let proposeStart = clock.now
            var budget = options.budget
            budget.maxNodes = min(budget.maxNodes, room, options.maxTokens - generated.count > 0 ? budget.maxNodes : 0)
            // Each member of an ensemble gets a share of the node budget by its smoothed acceptance
            // so far; results are taken in member order (never in an order that depends on values).
            let shares = stats.proposers.map { Double($0.accepted + 1) / Double($0.drafted + 2) }
            let totalShare = shares.reduce(0, +)
            let contexts = proposers.indices.map { index -> DraftContext in
                var memberBudget = budget
                if proposers.count > 1 {
                    memberBudget.maxNodes = max(1, Int((Double(budget.maxNodes) * shares[index] / totalShare * Double(proposers.count) / 2).rounded()))
                    memberBudget.maxNodes = min(memberBudget.maxNodes, budget.maxNodes)
                }
                return DraftContext(tokens: context, budget: memberBudget, sampling: options.sampling, remainingContext: room, step: step)
            }
            var candidates: [(proposer: Int, candidate: DraftCandidate)] = []
            if budget.maxNodes > 0 {
                // Members are asked in order; the kernels of model-based members share one compute pool,
                // so running them concurrently would not overlap their work on this hardware.
                var outcomes: [Int: Result<[DraftCandidate], any Error>] = [:]
                for (index, proposer) in proposers.enumerated() {
                    do { outcomes[index] = .success(try await proposer.propose(contexts[index])) } catch { outcomes[index] = .failure(error) }
                }
                for index in proposers.indices {
                    let outcome = outcomes[index]
                    let name = proposers[index].name
                    switch outcome {
                    case let .success(drafts)?:
                        for candidate in drafts {
                            guard candidate.isWellFormed, candidate.tokens.allSatisfy({ $0 >= 0 && Int($0) < vocabulary }) else {
                                stats.proposers[index].failures += 1
                                stats.proposerErrors.append("step \(step): \(name) returned a malformed draft or token ids outside the vocabulary; skipped")
                                continue
                            }
                            candidates.append((index, candidate))
                        }
                    case let .failure(error)?:
                        stats.proposers[index].failures += 1
                        stats.proposerErrors.append("step \(step): \(name) failed: \(error); skipped")
                    case nil:
                        break
                    }
                }
            }
            let tree = merger.merge(candidates, budget: budget)
            let proposeSeconds = (clock.now - proposeStart).seconds

            // One target forward over [pending] + tree.
            let verifyStart = clock.now
            let tokens = [pending] + tree.nodes.map(\.token)
            let parents = [-1] + tree.nodes.map { $0.parent + 1 }
            let logits = try target.evaluate(tokens: tokens, parents: parents, logitRows: nil)
            let result = verifier.verify(tree: tree, rootLogits: logits[0], nodeLogits: Array(logits.dropFirst()),
                                         sampling: options.sampling, random: &random)
            try target.commit([0] + result.accepted.map { $0 + 1 })
            let verifySeconds = (clock.now - verifyStart).seconds

            // Account and emit.
            stats.targetForwards += 1
            stats.acceptedDrafts += result.accepted.count
            stats.proposeSeconds += proposeSeconds
            stats.verifySeconds += verifySeconds
            for node in tree.nodes {
                if node.depth - 1 < stats.offeredByDepth.count { stats.offeredByDepth[node.depth - 1] += 1 }
                for proposer in Set(node.proposers) { stats.proposers[proposer].drafted += 1 }
            }
            newTokens = []
            for node in result.accepted.map({ tree.nodes[$0] }) {
                if node.depth - 1 < stats.acceptedByDepth.count { stats.acceptedByDepth[node.depth - 1] += 1 }
                for proposer in Set(node.proposers) { stats.proposers[proposer].accepted += 1 }
                var drafters: [String] = []
                for attempt in node.attempts.sorted(by: { $0.sequence < $1.sequence }) {
                    let name = attempt.origin ?? proposers[attempt.proposer].name
                    if !drafters.contains(name) { drafters.append(name) }
                }
                newTokens.append(GeneratedToken(token: node.token, source: .drafted(by: node.proposers), drafters: drafters))
            }
            newTokens.append(GeneratedToken(token: result.next, source: .target))
            let appended = newTokens.map(\.token)
            context += appended
            generated += appended
            pending = result.next
            emit(.step(StepStatistics(treeSize: tree.count, acceptedLength: result.accepted.count,
                                      proposeSeconds: proposeSeconds, verifySeconds: verifySeconds)))
            for proposer in proposers { await proposer.observe(accepted: appended, context: context) }
            step += 1
        }
        stats.generatedTokens = generated.count
        stats.decodeSeconds = (clock.now - decodeStart).seconds
        emit(.finished(stats))
    }

    /// Applies the stop conditions to the newest tokens, trimming `new` (and what counts as
    /// generated) to end exactly at the condition.
    private func stopReason(generated: [Token], new: inout [GeneratedToken], output: inout OutputText?,
                            options: GenerationOptions) -> StopReason? {
        let before = generated.count - new.count
        var reason: StopReason?
        for (offset, token) in new.enumerated() {
            if options.stopTokens.contains(token.token) { reason = .endOfSequence }
            else if before + offset + 1 >= options.maxTokens { reason = .maxTokens }
            if reason != nil {
                new = Array(new.prefix(offset + 1))
                break
            }
        }
        // A stop string completed by a kept token ends generation at that token.
        if let completing = output?.append(new.map(\.token)) {
            new = Array(new.prefix(completing - before + 1))
            output?.truncate(toTokens: completing + 1)
            return .stopString
        }
        return reason
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
