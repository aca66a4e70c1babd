/// One generation in progress: the state the decoding loop carries from step to step, and the
/// step itself as named parts that read top to bottom (see ``step(emit:)``).
struct DecodingRun {
    private let decoder: SpeculativeDecoder
    private let options: GenerationOptions
    private let processing: LogitProcessing
    private let clock = ContinuousClock()
    private let promptLength: Int
    private var statistics = RunStatistics()
    private var random: SeededRandom
    /// The prompt and every token generated so far.
    private var context: [Token]
    /// Who drafted each generated token (for text pieces that belong to an earlier step's token).
    private var drafters: [[String]] = []
    /// The newest token: not yet in the target's cache, the root of the next tree.
    private var pending: Token = 0
    /// Tokens accepted by the last step and not yet emitted.
    private var newTokens: [GeneratedToken] = []
    /// This step's processed logits (root, then each node), kept only for log-probabilities.
    private var stepLogits: (root: [Float], nodes: [[Float]])?
    private var output: OutputText?
    private var stepIndex = 0
    private var decodeStart: ContinuousClock.Instant

    private var generatedCount: Int { context.count - promptLength }

    /// Reads the prompt into the target (reusing the tokens the caller says it already holds)
    /// and into the proposers, and takes the first token from the prompt's logits.
    static func start(_ decoder: SpeculativeDecoder, prompt: [Token], options: GenerationOptions) async throws
        -> DecodingRun
    {
        let target = decoder.target
        guard !prompt.isEmpty else { throw DecoderError.emptyPrompt }
        guard prompt.count < target.capacity else {
            throw DecoderError.promptTooLong(tokens: prompt.count, capacity: target.capacity)
        }
        var run = DecodingRun(decoder: decoder, options: options, prompt: prompt)
        let prefillStart = run.clock.now
        let kept = max(0, min(options.cachedPromptTokens, prompt.count - 1, target.committedLength))
        try target.rollback(to: kept)
        var promptLogits = try target.append(Array(prompt[kept...]))
        run.statistics.cachedPromptTokens = kept
        // Proposers with models of their own read the prompt now (a failure only costs that
        // proposer its head start: it catches up in its first draft).
        for (index, proposer) in decoder.proposers.enumerated() {
            do { try await proposer.prepare(prompt: prompt, concurrentTokens: decoder.target.concurrentTokens) } catch {
                run.statistics.proposers[index].failures += 1
                run.statistics.proposerErrors.append("prompt: \(proposer.name) could not read the prompt: \(error)")
            }
        }
        run.statistics.prefillSeconds = (run.clock.now - prefillStart).seconds
        run.decodeStart = run.clock.now
        // The first token comes from the prompt's logits: a step with an empty tree.
        var noNodes: [[Float]] = []
        run.processing.apply(
            root: &promptLogits, nodes: &noNodes, tree: TokenTree(), committed: prompt, promptLength: prompt.count)
        let first = decoder.verifier.verify(
            tree: TokenTree(), rootLogits: promptLogits, nodeLogits: [], sampling: options.sampling,
            random: &run.random
        ).next
        run.accept([GeneratedToken(token: first, source: .target, logprobs: run.logprobs(first, promptLogits))])
        await run.tellProposers([first])
        return run
    }

    private init(decoder: SpeculativeDecoder, options: GenerationOptions, prompt: [Token]) {
        self.decoder = decoder
        self.options = options
        processing = LogitProcessing(processors: options.logitProcessors)
        promptLength = prompt.count
        context = prompt
        random = SeededRandom(seed: options.sampling.seed)
        output = options.tokenBytes.map { OutputText(spell: $0, stopStrings: options.stopStrings) }
        statistics.proposers = decoder.proposers.map { ProposerStatistics(name: $0.name) }
        statistics.offeredByDepth = Array(repeating: 0, count: options.budget.maxDepth)
        statistics.acceptedByDepth = Array(repeating: 0, count: options.budget.maxDepth)
        decodeStart = ContinuousClock.now
    }

    /// One step: hand out what the last step accepted (or stop), then propose, merge, verify,
    /// commit and account. Returns false once generation has ended.
    mutating func step(emit: (DecoderEvent) -> Void) async throws -> Bool {
        guard let room = emitAccepted(emit: emit) else { return false }
        let proposeStart = clock.now
        let budget = stepBudget(room: room)
        let candidates = await propose(budget: budget)
        var tree = decoder.merger.merge(candidates, budget: budget)
        if options.sampling.isGreedy {
            tree = processing.admitted(tree, committed: context, promptLength: promptLength)
        }
        let proposeSeconds = (clock.now - proposeStart).seconds
        let verifyStart = clock.now
        let result = try verify(tree)
        try decoder.target.commit([0] + result.accepted.map { $0 + 1 })
        let verifySeconds = (clock.now - verifyStart).seconds
        let accepted = account(tree: tree, result: result, proposeSeconds: proposeSeconds, verifySeconds: verifySeconds)
        emit(
            .step(
                StepStatistics(
                    treeSize: tree.count, acceptedLength: result.accepted.count,
                    proposeSeconds: proposeSeconds, verifySeconds: verifySeconds)))
        await tellProposers(accepted)
        stepIndex += 1
        return true
    }

    /// Emits the last step's tokens, cut at the first stop condition among them. Returns the
    /// slots left for drafted nodes, or nil when generation ends here.
    private mutating func emitAccepted(emit: (DecoderEvent) -> Void) -> Int? {
        let offered = newTokens.count
        let reason = applyStopConditions()
        if newTokens.count < offered {
            context.removeLast(offered - newTokens.count)
            drafters.removeLast(offered - newTokens.count)
        }
        if !newTokens.isEmpty { emit(.tokens(newTokens, text: takeText(final: false))) }
        newTokens = []
        if let reason {
            statistics.stopReason = reason
            return nil
        }
        if Task.isCancelled || options.shouldStop() {
            statistics.stopReason = .cancelled
            return nil
        }
        let room = decoder.target.capacity - decoder.target.committedLength - 1
        if room < 0 {
            statistics.stopReason = .contextFull
            return nil
        }
        return room
    }

    /// Trims ``newTokens`` to end exactly at the first stop token, the token limit or the token
    /// completing a stop string, and says which one ended generation.
    private mutating func applyStopConditions() -> StopReason? {
        let before = generatedCount - newTokens.count
        var reason: StopReason?
        for (offset, token) in newTokens.enumerated() {
            if options.stopTokens.contains(token.token) {
                reason = .endOfSequence
            } else if before + offset + 1 >= options.maxTokens {
                reason = .maxTokens
            }
            if reason != nil {
                newTokens = Array(newTokens.prefix(offset + 1))
                break
            }
        }
        if let completing = output?.append(newTokens.map(\.token)) {
            newTokens = Array(newTokens.prefix(completing - before + 1))
            return .stopString
        }
        return reason
    }

    /// This step's tree budget: the options' budget within the context's room, and no drafts
    /// once the token limit is reached.
    private func stepBudget(room: Int) -> TreeBudget {
        var budget = options.budget
        budget.maxNodes = options.maxTokens - generatedCount > 0 ? min(budget.maxNodes, room) : 0
        return budget
    }

    /// Asks every proposer, in order, for drafts (each with its share of the budget, decided by
    /// the merger). Malformed drafts and failures cost only that proposer's draft this step.
    private mutating func propose(budget: TreeBudget) async -> [(proposer: Int, candidate: DraftCandidate)] {
        guard budget.maxNodes > 0 else { return [] }
        let room = decoder.target.capacity - decoder.target.committedLength - 1
        let budgets = decoder.merger.proposerBudgets(budget, statistics: statistics.proposers)
        let vocabulary = decoder.target.vocabularySize
        let load = decoder.target.concurrentTokens
        let plainLoad = decoder.target.concurrentPlainTokens
        var candidates: [(proposer: Int, candidate: DraftCandidate)] = []
        // Members are asked in order; the kernels of model-based members share one compute pool,
        // so running them concurrently would not overlap their work on this hardware.
        for (index, proposer) in decoder.proposers.enumerated() {
            let draftContext = DraftContext(
                tokens: context, budget: budgets[index], sampling: options.sampling, remainingContext: room,
                step: stepIndex, concurrentTokens: load, concurrentPlainTokens: plainLoad)
            do {
                for candidate in try await proposer.propose(draftContext) {
                    guard candidate.isWellFormed, candidate.tokens.allSatisfy({ $0 >= 0 && Int($0) < vocabulary })
                    else {
                        statistics.proposers[index].failures += 1
                        statistics.proposerErrors.append(
                            "step \(stepIndex): \(proposer.name) returned a malformed draft or token ids outside the vocabulary; skipped"
                        )
                        continue
                    }
                    candidates.append((index, candidate))
                }
            } catch {
                statistics.proposers[index].failures += 1
                statistics.proposerErrors.append("step \(stepIndex): \(proposer.name) failed: \(error); skipped")
            }
        }
        return candidates
    }

    /// One target forward over the pending token and the tree, the logit processors along each
    /// node's path, and the verifier's choice.
    private mutating func verify(_ tree: TokenTree) throws -> VerificationResult {
        let tokens = [pending] + tree.nodes.map(\.token)
        let parents = [-1] + tree.nodes.map { $0.parent + 1 }
        var logits = try decoder.target.evaluate(tokens: tokens, parents: parents, logitRows: nil)
        var root = logits.removeFirst()
        processing.apply(root: &root, nodes: &logits, tree: tree, committed: context, promptLength: promptLength)
        if options.logprobs != nil { stepLogits = (root, logits) }
        return decoder.verifier.verify(
            tree: tree, rootLogits: root, nodeLogits: logits, sampling: options.sampling, random: &random)
    }

    /// The log-probabilities of `token` under the processed `logits` that chose it, when asked for.
    func logprobs(_ token: Token, _ logits: [Float]) -> TokenLogprobs? {
        options.logprobs.map { TokenLogprobs(token: token, logits: logits, count: $0) }
    }

    /// The processed logits that chose each accepted token (the root's for the first, then each
    /// accepted node's for the one after it), when log-probabilities are asked for.
    private func stepLogprobs(_ tokens: [GeneratedToken], accepted: [Int]) -> [TokenLogprobs?] {
        guard let (root, nodes) = stepLogits else { return tokens.map { _ in nil } }
        let rows = [root] + accepted.map { nodes[$0] }
        return zip(tokens, rows).map { logprobs($0.token, $1) }
    }

    /// Counts the step in the run's statistics and takes in the accepted tokens; returns them.
    private mutating func account(
        tree: TokenTree, result: VerificationResult, proposeSeconds: Double, verifySeconds: Double
    ) -> [Token] {
        statistics.targetForwards += 1
        statistics.acceptedDrafts += result.accepted.count
        statistics.proposeSeconds += proposeSeconds
        statistics.verifySeconds += verifySeconds
        for node in tree.nodes {
            if node.depth - 1 < statistics.offeredByDepth.count { statistics.offeredByDepth[node.depth - 1] += 1 }
            for proposer in Set(node.proposers) { statistics.proposers[proposer].drafted += 1 }
        }
        var accepted: [GeneratedToken] = []
        for node in result.accepted.map({ tree.nodes[$0] }) {
            if node.depth - 1 < statistics.acceptedByDepth.count { statistics.acceptedByDepth[node.depth - 1] += 1 }
            for proposer in Set(node.proposers) { statistics.proposers[proposer].accepted += 1 }
            var names: [String] = []
            for attempt in node.attempts.sorted(by: { $0.sequence < $1.sequence }) {
                let name = attempt.origin ?? decoder.proposers[attempt.proposer].name
                if !names.contains(name) { names.append(name) }
            }
            accepted.append(GeneratedToken(token: node.token, source: .drafted(by: node.proposers), drafters: names))
        }
        accepted.append(GeneratedToken(token: result.next, source: .target))
        if options.logprobs != nil {
            for (index, figures) in stepLogprobs(accepted, accepted: result.accepted).enumerated() {
                accepted[index].logprobs = figures
            }
            stepLogits = nil
        }
        accept(accepted)
        return accepted.map(\.token)
    }

    /// Appends accepted tokens to the context; the last one becomes the next tree's root.
    private mutating func accept(_ tokens: [GeneratedToken]) {
        newTokens = tokens
        context += tokens.map(\.token)
        drafters += tokens.map(\.drafters)
        pending = tokens[tokens.count - 1].token
    }

    private func tellProposers(_ accepted: [Token]) async {
        for proposer in decoder.proposers { await proposer.observe(accepted: accepted, context: context) }
    }

    private mutating func takeText(final: Bool) -> [TextPiece] {
        let drafters = self.drafters
        return output?.takePieces(final: final) { drafters[$0] } ?? []
    }

    /// Emits the text held back until the end, then the run's figures.
    mutating func finish(emit: (DecoderEvent) -> Void) {
        let tail = takeText(final: true)
        if !tail.isEmpty { emit(.tokens([], text: tail)) }
        statistics.generatedTokens = generatedCount
        statistics.decodeSeconds = (clock.now - decodeStart).seconds
        emit(.finished(statistics))
    }
}
