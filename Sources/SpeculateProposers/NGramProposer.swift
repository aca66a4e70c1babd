import Foundation
import SpeculateCore
import Synchronization

/// Drafts by lookup: the last n tokens (n from `maxN` down to `minN`) are looked up in everything
/// seen so far — prompt and generated text — and what followed them is proposed. Distinct
/// continuations become separate branches, ranked by how often and how recently they occurred.
///
/// The index is incremental (each new token adds one entry per n), so proposing costs
/// microseconds even with long contexts. An optional static corpus is searched as well.
public final class NGramProposer: DraftProposer {
    public let name: String
    /// Longest n-gram looked up.
    public let maxN: Int
    /// Shortest n-gram looked up.
    public let minN: Int
    /// Most branches proposed.
    public let branches: Int
    private let state: Mutex<NGramIndex>
    private let corpus: NGramIndex?

    /// A proposer; `corpus` is optional extra text (already tokenized) to look up in.
    public init(name: String = "ngram", maxN: Int = 4, minN: Int = 1, branches: Int = 3, corpus: [Token]? = nil) {
        self.name = name
        self.maxN = max(1, maxN)
        self.minN = max(1, min(minN, maxN))
        self.branches = max(1, branches)
        state = Mutex(NGramIndex(minN: self.minN, maxN: self.maxN))
        if let corpus {
            var index = NGramIndex(minN: self.minN, maxN: self.maxN)
            index.extend(with: corpus)
            self.corpus = index
        } else {
            self.corpus = nil
        }
    }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let depth = min(context.budget.maxDepth, context.remainingContext)
        guard depth > 0 else { return [] }
        return state.withLock { index -> [DraftCandidate] in
            index.synchronize(with: context.tokens)
            var found = index.continuations(after: context.tokens, depth: depth, limit: branches)
            if found.isEmpty, let corpus {
                found = corpus.continuations(after: context.tokens, depth: depth, limit: branches)
            }
            return found
        }
    }

    public func observe(accepted: [Token], context: [Token]) async {
        state.withLock { $0.synchronize(with: context) }
    }
}

/// Positions of every n-gram (for n in minN...maxN) in a token sequence.
struct NGramIndex: Sendable {
    let minN: Int
    let maxN: Int
    private(set) var tokens: [Token] = []
    /// n-gram -> positions of the token that followed it (most recent last).
    private var followers: [[Token]: [Int]] = [:]

    init(minN: Int, maxN: Int) {
        self.minN = minN
        self.maxN = maxN
    }

    /// Brings the index in line with `context`, extending it when `context` continues what is indexed.
    mutating func synchronize(with context: [Token]) {
        if context.count >= tokens.count, context.starts(with: tokens) {
            extend(with: context[tokens.count...])
        } else {
            tokens = []
            followers = [:]
            extend(with: context[...])
        }
    }

    mutating func extend<S: Collection>(with new: S) where S.Element == Token {
        for token in new {
            let position = tokens.count  // the new token follows the n-grams ending just before it
            for n in minN...maxN where position >= n {
                followers[Array(tokens[(position - n)..<position]), default: []].append(position)
            }
            tokens.append(token)
        }
    }

    /// Up to `limit` distinct continuations of the end of `context`, from the longest n that matches.
    func continuations(after context: [Token], depth: Int, limit: Int) -> [DraftCandidate] {
        for n in stride(from: min(maxN, context.count), through: minN, by: -1) {
            let key = Array(context[(context.count - n)...])
            guard let positions = followers[key] else { continue }
            // Group occurrences by the token that followed; rank by count, then recency.
            var groups: [Token: (count: Int, latest: Int)] = [:]
            for position in positions where position < tokens.count {
                let next = tokens[position]
                let entry = groups[next] ?? (0, 0)
                groups[next] = (entry.count + 1, max(entry.latest, position))
            }
            guard !groups.isEmpty else { continue }
            let total = Float(positions.count)
            let ranked = groups.sorted {
                $0.value.count > $1.value.count
                    || ($0.value.count == $1.value.count && $0.value.latest > $1.value.latest)
            }
            return ranked.prefix(limit).map { first, info in
                // Follow the most recent occurrence for the rest of the branch.
                let start = info.latest
                let end = min(tokens.count, start + depth)
                let branch = Array(tokens[start..<end])
                let confidence = Float(info.count) / total * min(1, Float(n) / 3)
                return DraftCandidate(
                    tokens: branch, parents: (0..<branch.count).map { $0 - 1 },
                    distributions: Array(repeating: .deterministic, count: branch.count),
                    scores: (0..<branch.count).map { confidence * powf(0.8, Float($0)) })
            }
        }
        return []
    }
}
