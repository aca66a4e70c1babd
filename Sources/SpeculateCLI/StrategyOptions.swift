import ArgumentParser
import Foundation
import Speculate

/// Options that choose the models, proposers, tree and sampling (shared by `run` and `bench`).
struct StrategyOptions: ParsableArguments {
    @Option(help: "The target model: a catalog name or a .gguf path.")
    var target: String = ModelCatalog.defaultTarget

    @Option(
        name: .customLong("proposer"),
        help: ArgumentHelp(
            "A proposer; repeat for an ensemble. none | auto | ngram[:OPTIONS] | draft:NAME-or-PATH | retok:NAME-or-PATH | plugin:PATH-or-NAME[:OPTIONS].",
            discussion:
                "`none` is plain autoregressive decoding on the same runtime; `auto` lets the cost-model policy choose among the other proposers given (and n-gram lookup) every step, adding the target's paired draft model from the catalog when no draft is given (`auto:draft=none` leaves it out). `speculate proposers` lists them all.",
            valueName: "proposer"))
    var proposers: [String] = []

    @Option(help: ArgumentHelp("Per-depth branching of the tree, e.g. 2,2,1.", valueName: "k1,k2,..."))
    var tree: String?

    @Option(help: "Most drafted nodes in one tree.")
    var maxNodes: Int = 16

    @Option(help: "Longest draft (tree depth).")
    var draftLength: Int = 8

    @Option(
        help: ArgumentHelp(
            "Draft models score only N rows of their output heads: the N most frequent tokens (FR-Spec), by the built-in ranking for Qwen2.5 vocabularies or by --draft-head-corpus, else the first N ids; 0 scores every token. Lossless either way. Default: 32768 ranked rows where a ranking exists, else all.",
            valueName: "N"))
    var draftHead: Int?

    @Option(
        help: ArgumentHelp(
            "Rank --draft-head's rows by token counts in this text file or directory (FR-Spec; counted once, cached) instead of the built-in ranking.",
            valueName: "path"))
    var draftHeadCorpus: String?

    @Option(
        help: ArgumentHelp(
            "Draft models' weights: requantized at load to 4.5 bits per weight (q4_k: faster drafting, output unchanged, slightly lower acceptance) or as in the file.",
            valueName: "q4_k|file"))
    var draftWeights: WeightPrecision = .q4K

    @Option(
        help: ArgumentHelp(
            "Stop a draft model's chain when its probability of the whole chain falls below P (0 = only the per-token confidence and --draft-length stop it).",
            valueName: "P"))
    var draftStop: Float = ProposerEnvironment.defaultDraftStop

    @Option(
        help: ArgumentHelp(
            "Evaluate up to N tokens guessed by n-gram lookup with each draft-model forward (0 = off); every guess the draft agrees with saves it a forward. Output unchanged.",
            valueName: "N"))
    var draftLookahead: Int = DraftModelProposer.defaultLookahead

    @Option(help: "Verification: greedy, stochastic (SpecInfer), sequoia (without replacement) or typical (lossy).")
    var verify: String?

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Top-k filter (0 = off).")
    var topK: Int = 0

    @Option(help: "Top-p filter (1 = off).")
    var topP: Float = 1

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Tokens of context for the target (and drafts).")
    var context: Int = 4096

    @Option(help: "Compute threads (default: all CPUs).")
    var threads: Int?

    var sampling: SamplingSettings { SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed) }

    func validate() throws {
        guard (0...1).contains(draftStop) else {
            throw ValidationError("--draft-stop \(draftStop) is not a probability from 0 to 1")
        }
        guard draftLookahead >= 0 else {
            throw ValidationError("--draft-lookahead \(draftLookahead) is negative (0 turns it off)")
        }
    }

    func budget() throws -> TreeBudget {
        guard let tree else { return TreeBudget(maxNodes: maxNodes, maxDepth: draftLength) }
        guard let branching = TreeBudget.parseBranching(tree) else {
            throw ValidationError("--tree '\(tree)' is not a list of positive integers such as 2,2,1")
        }
        return TreeBudget(maxNodes: maxNodes, maxDepth: draftLength, tree: branching)
    }

    /// `--verify`, or nil to choose by temperature.
    func verification() throws -> VerificationMethod? {
        guard let verify else { return nil }
        guard let method = VerificationMethod(rawValue: verify) else {
            throw ValidationError(
                "--verify '\(verify)' is not one of \(VerificationMethod.names.joined(separator: ", "))")
        }
        return method
    }

    /// The draft-model options.
    var draft: DraftSettings {
        DraftSettings(
            headRows: draftHead, headCorpus: draftHeadCorpus, weights: draftWeights, stop: draftStop,
            lookahead: draftLookahead)
    }

    /// The strategy these options describe (with `proposers` instead of `--proposer` when given).
    func strategy(proposers: [String]? = nil) throws -> Strategy {
        Strategy(
            proposers: proposers ?? self.proposers, budget: try budget(), verification: try verification(), draft: draft
        )
    }

    /// Applies `--threads` and `SPECULATE_KERNELS`, then loads the target (pulled when missing).
    func loadTarget(weights: WeightPrecision = .file) async throws -> SpeculativeModel {
        if let threads { ComputeThreads.set(threads) }
        try ComputeThreads.applyKernelOverride()
        return try await SpeculativeModel.load(
            target, context: context, weights: weights, progress: { ProgressDisplay().handle($0) })
    }
}

extension SpeculativeModel {
    /// The proposers of `strategy` (models pulled when missing), with the registry's spec errors
    /// as the command line's usage errors.
    func commandLineProposers(_ strategy: Strategy) async throws -> [any DraftProposer] {
        do {
            return try await proposers(for: strategy, progress: { ProgressDisplay().handle($0) })
        } catch let error as ProposerSpecError {
            throw ValidationError(error.description)
        } catch let error as TokenRankingError {
            throw ValidationError("--draft-head-corpus: \(error.description)")
        }
    }

    /// A generator of `strategy` with a KV cache of its own.
    func commandLineGenerator(_ strategy: Strategy) async throws -> SpeculativeGenerator {
        SpeculativeGenerator(
            model: self, strategy: strategy, proposers: try await commandLineProposers(strategy),
            session: try InferenceSession(model: model, context: context))
    }
}

extension WeightPrecision: ExpressibleByArgument {}
