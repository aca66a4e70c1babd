import Foundation

/// Limits on the merged token tree, in SpecInfer's notation for branching: `<2,2,1>` allows at
/// most 2 children under the root, 2 under each depth-1 node and 1 under each depth-2 node.
public struct TreeBudget: Sendable, Equatable, CustomStringConvertible {
    /// Most nodes in the tree (not counting the root, the newest context token).
    public var maxNodes: Int
    /// Most drafted tokens on one path.
    public var maxDepth: Int
    /// Children allowed per node at each depth (index 0: under the root); empty = no limit.
    public var branching: [Int]

    /// A budget.
    public init(maxNodes: Int = 16, maxDepth: Int = 8, branching: [Int] = []) {
        self.maxNodes = maxNodes
        self.maxDepth = maxDepth
        self.branching = branching
    }

    /// A budget whose per-depth branching `tree` (when given) also limits the depth to its length.
    public init(maxNodes: Int, maxDepth: Int, tree: [Int]?) {
        self.init(maxNodes: maxNodes, maxDepth: tree.map { min(maxDepth, $0.count) } ?? maxDepth, branching: tree ?? [])
    }

    /// Parses `2,2,1` (or `<2,2,1>`) into per-depth branching; depth defaults to its length.
    public static func parseBranching(_ text: String) -> [Int]? {
        let trimmed = text.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
        let parts = trimmed.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }

    public var description: String {
        "nodes ≤ \(maxNodes), depth ≤ \(maxDepth)"
            + (branching.isEmpty ? "" : ", <\(branching.map(String.init).joined(separator: ","))>")
    }
}

/// One attempt to draft a token: who drafted it and from which distribution.
public struct DraftAttempt: Sendable, Equatable {
    /// Index of the proposer in the decoder's list.
    public let proposer: Int
    /// The distribution the proposer drew the token from.
    public let distribution: DraftDistribution
    /// Order in which the draft was proposed; stochastic verification visits attempts in this
    /// order, which does not depend on the drafted values (merging equal tokens must not reorder them).
    public let sequence: Int
    /// The candidate's ``DraftCandidate/origin``: who really drafted it when the proposer passes
    /// on others' drafts (`auto`'s members).
    public let origin: String?

    /// An attempt by proposer `proposer` (its index in the decoder's list), the `sequence`-th draft
    /// offered this step.
    public init(proposer: Int, distribution: DraftDistribution, sequence: Int, origin: String? = nil) {
        self.proposer = proposer
        self.distribution = distribution
        self.sequence = sequence
        self.origin = origin
    }
}

/// A node of the merged tree.
public struct TreeNode: Sendable, Equatable {
    /// The drafted token.
    public let token: Token
    /// Parent node index, or -1 for children of the root.
    public let parent: Int
    /// Drafted tokens above it, plus one.
    public let depth: Int
    /// Best score any proposer gave it.
    public var score: Float
    /// Every proposer that drafted this token here, with its distribution.
    public var attempts: [DraftAttempt]
    /// Children in the order verification visits them (best score first).
    public var children: [Int] = []

    /// Indices of the proposers that drafted this node.
    public var proposers: [Int] { attempts.map(\.proposer) }

    /// A node; mergers usually call ``TokenTree/addNode(token:parent:score:attempts:)`` instead,
    /// which keeps depths and child lists consistent.
    public init(token: Token, parent: Int, depth: Int, score: Float, attempts: [DraftAttempt], children: [Int] = []) {
        self.token = token
        self.parent = parent
        self.depth = depth
        self.score = score
        self.attempts = attempts
        self.children = children
    }
}

/// The merged tree the verifier checks. Nodes are in topological order (parents first); the
/// implicit root is the newest context token.
public struct TokenTree: Sendable, Equatable {
    /// The nodes.
    public var nodes: [TreeNode] = []
    /// Children of the root.
    public var rootChildren: [Int] = []

    /// An empty tree.
    public init() {}

    /// Number of drafted nodes.
    public var count: Int { nodes.count }

    /// Children of `node` (-1 = root).
    public func children(of node: Int) -> [Int] { node < 0 ? rootChildren : nodes[node].children }

    /// Appends a node under `parent` (-1 = root; must be an existing node) and returns its index.
    /// Children are verified in the order they are added.
    @discardableResult
    public mutating func addNode(token: Token, parent: Int, score: Float, attempts: [DraftAttempt]) -> Int {
        precondition(parent >= -1 && parent < nodes.count, "parent \(parent) is not a node of this tree")
        let depth = parent < 0 ? 1 : nodes[parent].depth + 1
        nodes.append(TreeNode(token: token, parent: parent, depth: depth, score: score, attempts: attempts))
        if parent < 0 { rootChildren.append(nodes.count - 1) } else { nodes[parent].children.append(nodes.count - 1) }
        return nodes.count - 1
    }

    /// The tree without the nodes `keep` refuses and everything under them, in the same order
    /// (`keep` sees each node's index in this tree, parents before children).
    public func pruned(keeping keep: (Int) -> Bool) -> TokenTree {
        var tree = TokenTree()
        var mapped = [Int](repeating: -1, count: nodes.count)
        for (index, node) in nodes.enumerated() {
            guard node.parent < 0 || mapped[node.parent] >= 0, keep(index) else { continue }
            mapped[index] = tree.addNode(
                token: node.token, parent: node.parent < 0 ? -1 : mapped[node.parent], score: node.score,
                attempts: node.attempts)
        }
        return tree
    }

    /// The node index path from the root to `node`.
    public func path(to node: Int) -> [Int] {
        var path: [Int] = []
        var current = node
        while current >= 0 {
            path.append(current)
            current = nodes[current].parent
        }
        return path.reversed()
    }
}

/// Combines every proposer's candidates into one tree within a budget.
public protocol TreeMerger: Sendable {
    /// The merged tree. `candidates` pairs each candidate with the index of its proposer.
    func merge(_ candidates: [(proposer: Int, candidate: DraftCandidate)], budget: TreeBudget) -> TokenTree

    /// What each proposer of an ensemble is asked to draft this step, given the step's budget
    /// and each proposer's totals so far (the merger then keeps what fits `budget`).
    func proposerBudgets(_ budget: TreeBudget, statistics: [ProposerStatistics]) -> [TreeBudget]
}

extension TreeMerger {
    /// The default share: a lone proposer gets the whole budget; in an ensemble each gets nodes
    /// in proportion to its smoothed acceptance so far, half the budget for an average member (at
    /// least one node, at most the whole budget). Shares follow past acceptance, never the
    /// values drafted this step, so stochastic verification stays lossless.
    public func proposerBudgets(_ budget: TreeBudget, statistics: [ProposerStatistics]) -> [TreeBudget] {
        guard statistics.count > 1 else { return statistics.map { _ in budget } }
        let shares = statistics.map { Double($0.accepted + 1) / Double($0.drafted + 2) }
        let total = shares.reduce(0, +)
        return shares.map { share in
            var member = budget
            let nodes = (Double(budget.maxNodes) * share / total * Double(statistics.count) / 2).rounded()
            member.maxNodes = min(budget.maxNodes, max(1, Int(nodes)))
            return member
        }
    }
}

/// The default merger: a trie of all candidates (shared prefixes become one node, whose KV is
/// computed once, and keep every proposer's attempt), pruned to the budget by score — a node is
/// kept only with its parent, within the per-depth branching limits.
///
/// When any draft was *sampled* (stochastic verification), which drafts survive must not depend
/// on the sampled values, or the output distribution would shift: then candidates are admitted
/// in proposal order, each costing its full length as if nothing merged, and cut at the budget.
public struct ScoreRankedMerger: TreeMerger {
    /// A merger.
    public init() {}

    public func merge(_ candidates: [(proposer: Int, candidate: DraftCandidate)], budget: TreeBudget) -> TokenTree {
        let sampled = candidates.contains {
            $0.candidate.distributions.contains { if case .sampled = $0 { return true } else { return false } }
        }
        guard !sampled else { return mergeInProposalOrder(candidates, budget: budget) }
        return mergeAll(candidates, budget: budget)
    }

    /// The trie of all candidates, pruned by score to the budget.
    func mergeAll(_ candidates: [(proposer: Int, candidate: DraftCandidate)], budget: TreeBudget) -> TokenTree {
        // 1. The trie of everything proposed.
        struct Entry {
            var token: Token
            var parent: Int
            var depth: Int
            var score: Float
            var attempts: [DraftAttempt]
        }
        var entries: [Entry] = []
        var index: [Int64: [Token: Int]] = [:]  // parent entry (+1) -> token -> entry
        var sequence = 0
        for (proposer, candidate) in candidates where candidate.isWellFormed {
            var mapped = [Int](repeating: -1, count: candidate.tokens.count)
            for i in candidate.tokens.indices {
                let parent = candidate.parents[i] < 0 ? -1 : mapped[candidate.parents[i]]
                if candidate.parents[i] >= 0 && parent < 0 { continue }  // its parent was dropped
                let depth = parent < 0 ? 1 : entries[parent].depth + 1
                guard depth <= budget.maxDepth else { continue }
                let token = candidate.tokens[i]
                let attempt = DraftAttempt(
                    proposer: proposer, distribution: candidate.distributions[i], sequence: sequence,
                    origin: candidate.origin)
                sequence += 1
                if let existing = index[Int64(parent + 1)]?[token] {
                    entries[existing].score = max(entries[existing].score, candidate.scores[i])
                    entries[existing].attempts.append(attempt)
                    mapped[i] = existing
                } else {
                    entries.append(
                        Entry(
                            token: token, parent: parent, depth: depth, score: candidate.scores[i], attempts: [attempt])
                    )
                    index[Int64(parent + 1), default: [:]][token] = entries.count - 1
                    mapped[i] = entries.count - 1
                }
            }
        }
        // 2. Keep the best-scored nodes whose parent is kept, within the limits.
        var kept = [Int](repeating: -1, count: entries.count)  // entry -> tree node
        var childCount: [Int: Int] = [:]  // tree node (-1 root) -> children kept
        var tree = TokenTree()
        let order = entries.indices.sorted {
            entries[$0].score > entries[$1].score || (entries[$0].score == entries[$1].score && $0 < $1)
        }
        var progress = true
        while progress && tree.count < budget.maxNodes {
            progress = false
            for e in order where kept[e] < 0 && tree.count < budget.maxNodes {
                let entry = entries[e]
                let parentNode = entry.parent < 0 ? -1 : kept[entry.parent]
                guard entry.parent < 0 || parentNode >= 0 else { continue }
                let limit =
                    budget.branching.isEmpty
                    ? Int.max : (entry.depth - 1 < budget.branching.count ? budget.branching[entry.depth - 1] : 0)
                guard childCount[parentNode, default: 0] < limit else { continue }
                childCount[parentNode, default: 0] += 1
                kept[e] = tree.count
                tree.addNode(token: entry.token, parent: parentNode, score: entry.score, attempts: entry.attempts)
                progress = true
            }
        }
        return tree
    }

    /// Distribution-preserving merge: admission by proposal order and worst-case size only.
    private func mergeInProposalOrder(_ candidates: [(proposer: Int, candidate: DraftCandidate)], budget: TreeBudget)
        -> TokenTree
    {
        var remaining = budget.maxNodes
        var admitted: [(proposer: Int, candidate: DraftCandidate)] = []
        for (proposer, candidate) in candidates where candidate.isWellFormed && remaining > 0 {
            // Keep nodes in index order while they fit (parents come before children).
            var keep: [Int] = []
            var depth = [Int](repeating: 0, count: candidate.tokens.count)
            for i in candidate.tokens.indices {
                let parent = candidate.parents[i]
                depth[i] = parent < 0 ? 1 : depth[parent] + 1
                guard keep.count < remaining, depth[i] <= budget.maxDepth, parent < 0 || keep.contains(parent) else {
                    continue
                }
                keep.append(i)
            }
            guard !keep.isEmpty else { continue }
            remaining -= keep.count
            let remap = Dictionary(uniqueKeysWithValues: keep.enumerated().map { ($0.element, $0.offset) })
            admitted.append(
                (
                    proposer,
                    DraftCandidate(
                        tokens: keep.map { candidate.tokens[$0] },
                        parents: keep.map { candidate.parents[$0] < 0 ? -1 : remap[candidate.parents[$0]]! },
                        distributions: keep.map { candidate.distributions[$0] },
                        scores: keep.map { candidate.scores[$0] })
                ))
        }
        // Everything admitted fits as a trie, whatever merges; no value-dependent pruning follows.
        let unlimited = TreeBudget(maxNodes: Int.max, maxDepth: budget.maxDepth, branching: [])
        return ScoreRankedMerger().mergeAll(admitted, budget: unlimited)
    }
}
