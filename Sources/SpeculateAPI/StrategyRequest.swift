import Foundation
import SpeculateCore
import SpeculateFormat

/// How a request wants its tokens drafted and verified: the `speculate` extension object of a
/// request, or the server's own strategy when the request has none.
public struct StrategyRequest: Sendable, Hashable {
    /// Proposer specs in `--proposer` syntax (`none`, `auto`, `ngram`, `draft:NAME`, ...).
    public var proposers: [String]
    /// Per-depth branching of the tree (`2,2,1`), or nil for the proposers' own shapes.
    public var tree: [Int]?
    /// Most drafted nodes in one tree.
    public var maxNodes: Int
    /// Longest draft (tree depth).
    public var maxDepth: Int
    /// The verifier; nil chooses by temperature.
    public var verify: VerificationMethod?

    /// A strategy with every field given.
    public init(
        proposers: [String], tree: [Int]? = nil, maxNodes: Int = 16, maxDepth: Int = 8,
        verify: VerificationMethod? = nil
    ) {
        self.proposers = proposers
        self.tree = tree
        self.maxNodes = maxNodes
        self.maxDepth = maxDepth
        self.verify = verify
    }

    /// The tree limits this strategy sets.
    public var budget: TreeBudget { TreeBudget(maxNodes: maxNodes, maxDepth: maxDepth, tree: tree) }

    /// The JSON form, as requests send it and responses echo it.
    package var json: [String: Any] {
        var object: [String: Any] = [
            "proposers": proposers, "max_nodes": maxNodes, "max_depth": maxDepth,
            "verify": verify?.rawValue ?? NSNull(),
        ]
        object["tree"] = tree.map { $0.map(String.init).joined(separator: ",") } ?? NSNull()
        return object
    }
}
