import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import Synchronization

/// Drafts with a small model of the same vocabulary, keeping its own KV cache in step with the
/// target's accepted tokens (rolling back rejected drafts instead of re-reading the context).
///
/// Chain mode drafts up to `draftLength` tokens, stopping early when its own confidence (the
/// probability of its pick) drops below `confidenceThreshold`, or the probability of the whole
/// chain so far below `pathThreshold` (a drafted token only pays when it is likely to be
/// accepted: its chance must exceed its cost in target steps); the length adapts to recent
/// acceptance. Under sampling, tokens are drawn from the draft distribution shaped like the
/// target's and that distribution is kept, so verification stays lossless.
///
/// Chains are drafted with lookahead (staged speculation): each draft forward also evaluates up
/// to ``lookahead`` tokens that n-gram lookup in the context guesses will follow, which costs
/// little more than one token on these memory-bound kernels. When the draft then picks a guessed
/// token, its logits are already computed and the forward is saved; the draft's choices are the
/// same as without guesses, token for token.
public final class DraftModelProposer: SelfLimitingProposer {
    public let name: String
    private let session: InferenceSession
    private let state: Mutex<DraftState>
    /// Longest chain drafted.
    public let maxDraftLength: Int
    /// Guessed tokens per forward unless told otherwise: as many as fit in a batch of four.
    public static let defaultLookahead = 3
    /// Stop drafting when the draft's own probability of its pick falls below this.
    public let confidenceThreshold: Float
    /// Stop drafting when the draft's probability of the whole chain falls below this.
    public let pathThreshold: Float
    /// Most tokens guessed by n-gram lookup and evaluated with each draft forward (0 = none);
    /// batches stay within four tokens, so more than 3 acts as 3 while drafting.
    public let lookahead: Int
    /// The only token ids a reduced head scores, ascending (nil: the whole vocabulary).
    private let scoredTokens: [Int]?
    /// Where this proposer's forwards are shared with other decoding loops' (a server's slots).
    private let lane: DraftLane?
    /// How chains are evaluated: `session` itself, or through `lane`.
    private let forwards: any ModelSession

    /// A proposer over `model` with a context of `context` tokens. `headRows` limits the draft's
    /// output head to the most frequent token ids (nil = the whole vocabulary).
    /// `headTokens`, when given, replaces `headRows`: the head scores exactly those token ids (for
    /// example the most frequent ones of a corpus, ``TokenFrequencyRanking``). With a `lane`, its
    /// chain forwards (and prompt reads) share forwards with the other lanes' drafts.
    public init(
        name: String, model: TransformerModel, context: Int, draftLength: Int = 8, confidenceThreshold: Float = 0.3,
        pathThreshold: Float = 0, headRows: Int? = nil, headTokens: [TokenID]? = nil,
        lookahead: Int = DraftModelProposer.defaultLookahead, lane: DraftLane? = nil
    ) throws {
        self.name = name
        self.lookahead = max(0, lookahead)
        if let headTokens {
            session = try InferenceSession(model: model, context: context, headTokens: headTokens)
            scoredTokens = headTokens.map(Int.init).sorted()
        } else {
            session = try InferenceSession(model: model, context: context, headRows: headRows)
            scoredTokens = headRows.map { Array(0..<min($0, model.config.vocabularySize)) }
        }
        maxDraftLength = max(1, draftLength)
        self.confidenceThreshold = confidenceThreshold
        self.pathThreshold = pathThreshold
        state = Mutex(DraftState(length: max(1, draftLength)))
        self.lane = lane
        forwards = lane?.session(session) ?? session
    }

    /// Decoding loops whose drafts share this proposer's forwards (1 when not shared): each
    /// one's drafting costs the batch about its share of the forward's time.
    public var drafters: Int { lane?.drafters(of: session.model) ?? 1 }

    /// Chains end on the draft's own confidence unless both thresholds are off.
    public var stopsWhenUnsure: Bool { confidenceThreshold > 0 || pathThreshold > 0 }

    /// How the draft's forwards went so far (see ``LookaheadCounters``).
    public var counters: LookaheadCounters { state.withLock { $0.counters } }

    /// Checks that `draft` and `target` tokenizers agree token for token.
    public static func checkCompatible(draft: Tokenizer, draftName: String, target: Tokenizer, targetName: String)
        throws
    {
        guard draft.vocabularySize == target.vocabularySize else {
            throw ProposerError.incompatibleVocabulary(
                draft: draftName, target: targetName,
                reason: "vocabularies of \(draft.vocabularySize) and \(target.vocabularySize) tokens")
        }
        if let index = zip(draft.tokens, target.tokens).enumerated().first(where: { $0.element.0 != $0.element.1 })?
            .offset
        {
            throw ProposerError.incompatibleVocabulary(
                draft: draftName, target: targetName,
                reason:
                    "token \(index) is '\(draft.tokens[index])' in the draft but '\(target.tokens[index])' in the target"
            )
        }
    }

    public func prepare(prompt: [Token]) async throws {
        guard !prompt.isEmpty, prompt.count < session.capacity else { return }
        try state.withLock { state in _ = try synchronize(&state, with: prompt) }
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        if !context.budget.branching.isEmpty { return try proposeTree(context) }
        return try state.withLock { state -> [DraftCandidate] in
            let limit = min(
                state.length, context.budget.maxDepth, context.remainingContext,
                session.capacity - context.tokens.count - 1)
            guard limit > 0 else { return [] }
            if lookahead > 0 { state.index.synchronize(with: context.tokens) }
            var (logits, ahead) = try synchronize(&state, with: context.tokens, guessing: lookahead)
            var random = SeededRandom(seed: context.sampling.seed &+ UInt64(context.step) &* 0x9E37)
            var tokens: [Token] = []
            var distributions: [DraftDistribution] = []
            var scores: [Float] = []
            var pathProbability: Float = 1
            // Runner-ups (greedy only): per drafted position, the next-best tokens and their probabilities.
            let runnersUp = context.sampling.isGreedy ? max(0, context.runnersUp) : 0
            var runnerUps: [[(token: Token, probability: Float)]] = []
            for _ in 0..<limit {
                let token: Token
                let probability: Float
                if context.sampling.isGreedy {
                    let best = Self.mostLikely(logits, count: 1 + runnersUp, among: scoredTokens)
                    token = best[0].token
                    probability = best[0].probability
                    runnerUps.append(Array(best.dropFirst()))
                    distributions.append(.deterministic)
                } else {
                    let q = context.sampling.distribution(logits)
                    token = Token(random.sample(q))
                    probability = q[Int(token)]
                    distributions.append(.sampled(q))
                }
                pathProbability *= probability
                tokens.append(token)
                scores.append(pathProbability)
                if probability < confidenceThreshold || pathProbability < pathThreshold || tokens.count == limit {
                    break
                }
                if let next = ahead.first, next.token == token {
                    // The draft picked what was guessed: the logits after it came with the guess's batch.
                    ahead.removeFirst()
                    logits = next.logits
                    state.counters.guessesTaken += 1
                    continue
                }
                try dropGuesses(&ahead, from: &state)
                (logits, ahead) = try advance(
                    &state, by: [token], guessing: lookahead, drafted: tokens, context: context.tokens)
            }
            state.lastDrafted = tokens.count
            var draft = DraftCandidate(
                tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 }, distributions: distributions,
                scores: scores)
            Self.addRunnersUp(runnerUps, to: &draft, maxNodes: context.budget.maxNodes)
            return [draft]
        }
    }

    /// A guessed token already evaluated (and cached) in the draft session, with the logits after it.
    private typealias Guess = (token: Token, logits: [Float])

    /// Draft forwards that can share a batch at almost no extra cost: on the CPU kernels, up to
    /// four tokens stream each weight once (the 0.5B draft's products: 1.00x / 1.00x / 1.01x /
    /// 1.11x the one-token time for 1–4 tokens, 1.66x for 5).
    private static let cheapBatch = 4

    /// Evaluates `tokens` after the cache, plus up to `guessing` tokens guessed to follow them
    /// (staged speculation: n-gram lookup drafts for the draft), in one forward, and caches them
    /// all. Returns the logits after the last of `tokens` and the guesses with their logits.
    private func advance(
        _ state: inout DraftState, by tokens: [Token], guessing: Int, drafted: [Token], context: [Token]
    ) throws -> ([Float], [Guess]) {
        // Shared forwards carry the other loops' tokens too: the cheap batch is split among them.
        let room = min(
            guessing, Self.cheapBatch / drafters - tokens.count,
            session.capacity - state.cached.count - tokens.count - 1)
        let guesses =
            room > 0 ? guessContinuation(index: state.index, context: context, drafted: drafted, count: room) : []
        state.counters.forwards += 1
        guard !guesses.isEmpty else {
            let logits = try forwards.append(tokens)
            state.cached += tokens
            return (logits, [])
        }
        let batch = tokens + guesses
        let rows = try forwards.evaluate(
            tokens: batch, parents: (0..<batch.count).map { $0 - 1 },
            logitRows: Array((tokens.count - 1)..<batch.count))
        try session.commit(Array(0..<batch.count))
        state.cached += batch
        state.counters.guessesMade += guesses.count
        let ahead = guesses.enumerated().map { Guess($0.element, rows[1 + $0.offset]) }
        return (rows[0], ahead)
    }

    /// Removes guesses the draft did not follow from its cache.
    private func dropGuesses(_ ahead: inout [Guess], from state: inout DraftState) throws {
        guard !ahead.isEmpty else { return }
        try session.rollback(to: state.cached.count - ahead.count)
        state.cached.removeLast(ahead.count)
        ahead = []
    }

    /// Up to `count` tokens that followed the latest occurrence of the longest n-gram
    /// (n ≥ 2) ending `context` + `drafted`, looked up in the context.
    private func guessContinuation(index: NGramIndex, context: [Token], drafted: [Token], count: Int) -> [Token] {
        var suffix = Array(drafted.suffix(index.maxN))
        if suffix.count < index.maxN { suffix = Array(context.suffix(index.maxN - suffix.count)) + suffix }
        return index.continuations(after: suffix, depth: count, limit: 1).first?.tokens ?? []
    }

    /// Tree mode: expands the frontier one depth at a time within the per-depth branching limits,
    /// evaluating each depth's new nodes in one batched, tree-masked draft forward. Greedy drafts
    /// take the top-k children and prune paths whose probability falls below 5%; sampled drafts
    /// take k independent samples per node and never prune by their own values (which keeps
    /// stochastic verification lossless).
    private func proposeTree(_ context: DraftContext) throws -> [DraftCandidate] {
        try state.withLock { state -> [DraftCandidate] in
            let maxDepth = min(context.budget.maxDepth, context.budget.branching.count, context.remainingContext)
            let maxNodes = min(context.budget.maxNodes, session.capacity - context.tokens.count - 1)
            guard maxDepth > 0, maxNodes > 0 else { return [] }
            let rootLogits = try synchronize(&state, with: context.tokens).0
            var random = SeededRandom(seed: context.sampling.seed &+ UInt64(context.step) &* 0x9E37 &+ 17)
            var tokens: [Token] = []
            var parents: [Int] = []
            var distributions: [DraftDistribution] = []
            var scores: [Float] = []
            // Frontier entries: local node (-1 = root), its logits, its path probability.
            var frontier: [(node: Int, logits: [Float], probability: Float)] = [(-1, rootLogits, 1)]
            for depth in 0..<maxDepth {
                let width = context.budget.branching[depth]
                var added: [Int] = []
                for entry in frontier where tokens.count < maxNodes {
                    let children: [(token: Int, probability: Float, distribution: DraftDistribution)]
                    if context.sampling.isGreedy {
                        let p = SamplingSettings(temperature: 1).distribution(entry.logits)
                        children = Self.topIndices(p, count: width).map { ($0, p[$0], .deterministic) }
                            .filter { entry.probability * $0.1 >= 0.05 || (depth == 0 && $0.0 == argmax(p)) }
                    } else {
                        let q = context.sampling.distribution(entry.logits)
                        children = (0..<width).map { _ in
                            let t = random.sample(q)
                            return (t, q[t], .sampled(q))
                        }
                    }
                    for child in children where tokens.count < maxNodes {
                        tokens.append(Token(child.token))
                        parents.append(entry.node)
                        distributions.append(child.distribution)
                        scores.append(entry.probability * child.probability)
                        added.append(tokens.count - 1)
                    }
                }
                guard !added.isEmpty, depth + 1 < maxDepth, tokens.count < maxNodes else { break }
                // One draft forward for the whole new depth. Every earlier node is pending in the draft
                // session in the same order, so local node indices are pending indices.
                let batchParents = added.map { parents[$0] }
                let result =
                    depth == 0
                    ? try session.evaluate(tokens: added.map { tokens[$0] }, parents: batchParents, logits: .all)
                    : try session.extend(tokens: added.map { tokens[$0] }, parents: batchParents, logits: .all)
                frontier = added.enumerated().map { offset, node in (node, Array(result.row(for: offset)), scores[node])
                }
            }
            state.lastDrafted = tokens.count
            guard !tokens.isEmpty else { return [] }
            return [DraftCandidate(tokens: tokens, parents: parents, distributions: distributions, scores: scores)]
        }
    }

    public func observe(accepted: [Token], context: [Token]) async {
        state.withLock { state in
            // Grow the draft length after fully accepted drafts, shrink after early rejections.
            let drafted = state.lastDrafted
            guard drafted > 0 else { return }
            let acceptedDrafts = max(0, accepted.count - 1)
            if acceptedDrafts >= drafted {
                state.length = min(maxDraftLength, state.length + 1)
            } else if acceptedDrafts < drafted / 2 {
                state.length = max(1, state.length - 1)
            }
            state.lastDrafted = 0
        }
    }

    /// Rolls the draft cache back to the longest prefix it shares with `context`, appends the
    /// rest (with up to `guessing` guessed tokens after it, see ``advance``), and returns the
    /// logits after the last context token.
    private func synchronize(_ state: inout DraftState, with context: [Token], guessing: Int = 0) throws -> (
        [Float], [Guess]
    ) {
        var common = 0
        let limit = min(state.cached.count, context.count - 1)
        while common < limit, state.cached[common] == context[common] { common += 1 }
        try session.rollback(to: common)
        state.cached = Array(context[..<common])
        state.lastDrafted = 0
        return try advance(&state, by: Array(context[common...]), guessing: guessing, drafted: [], context: context)
    }
}

/// The draft's view of the context.
struct DraftState: Sendable {
    var cached: [Token] = []
    var length: Int
    var lastDrafted = 0
    /// The context's n-grams, for guessing what the draft will say next.
    var index = NGramIndex(minN: 2, maxN: 4)
    var counters = LookaheadCounters()
}

/// Counts of a draft model's forwards and of the guesses evaluated with them.
public struct LookaheadCounters: Sendable, Equatable {
    /// Forwards run for chains (catch-ups with the target included).
    public var forwards = 0
    /// Guessed tokens evaluated alongside drafted ones.
    public var guessesMade = 0
    /// Guesses the draft then picked itself: each saved a forward.
    public var guessesTaken = 0
}
