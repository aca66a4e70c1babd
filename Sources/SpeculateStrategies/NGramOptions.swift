import Foundation
import SpeculateCatalog
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateProposers
import SpeculateRuntime

/// The options of `ngram:...` (`max=`, `min=`, `branches=`, `corpus=`), validated.
public struct NGramOptions: Sendable {
    /// Longest and shortest suffix looked up, and continuations kept as branches.
    public var maxN = 4, minN = 1, branches = 1
    /// A text file whose tokens are searched too.
    public var corpus: String?

    /// Parses `argument` (the text after `ngram:`); with `treeRequested` branches default to 3.
    public init(_ argument: String, treeRequested: Bool) throws {
        branches = treeRequested ? 3 : 1
        for item in argument.split(separator: ",").map(String.init) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "'\(item)' is not key=value")
            }
            switch parts[0] {
            case "max", "min", "branches":
                guard let value = Int(parts[1]), (1...64).contains(value) else {
                    throw ProposerSpecError.badOptions(
                        spec: "ngram:\(argument)", reason: "\(parts[0]) must be a whole number from 1 to 64")
                }
                if parts[0] == "max" {
                    maxN = value
                } else if parts[0] == "min" {
                    minN = value
                } else {
                    branches = value
                }
            case "corpus": corpus = parts[1]
            default:
                throw ProposerSpecError.badOptions(
                    spec: "ngram:\(argument)", reason: "unknown option '\(parts[0])' (max, min, branches, corpus)")
            }
        }
        guard minN <= maxN else {
            throw ProposerSpecError.badOptions(spec: "ngram:\(argument)", reason: "min must not exceed max")
        }
    }

    func proposer(tokenizer: Tokenizer) throws -> NGramProposer {
        var corpusTokens: [Token]?
        if let corpus {
            guard let data = FileManager.default.contents(atPath: corpus) else {
                throw ProposerSpecError.badOptions(spec: "ngram", reason: "cannot read corpus file '\(corpus)'")
            }
            corpusTokens = tokenizer.encode(String(decoding: data, as: UTF8.self))
        }
        return NGramProposer(maxN: maxN, minN: minN, branches: branches, corpus: corpusTokens)
    }
}
