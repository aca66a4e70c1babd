import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateGrammar

extension GrammarVocabulary {
    /// `tokenizer`'s vocabulary for grammar masks: its text tokens (normal, byte and
    /// user-defined ones, by their bytes), ending on its end-of-turn and end-of-text tokens.
    public init(tokenizer: Tokenizer) throws(JSONSchemaError) {
        try self.init(size: tokenizer.vocabularySize, endTokens: Set(tokenizer.stopIDs.map { Token($0) })) { token in
            switch tokenizer.kinds[Int(token)] {
            case .normal, .byte, .userDefined: tokenizer.bytes(of: TokenID(token))
            default: nil
            }
        }
    }
}

extension SpeculativeModel {
    /// A constraint keeping generation inside `grammar` (``GenerateParameters/logitProcessors``),
    /// over this model's vocabulary (arranged once per model, then shared).
    public func constraint(_ grammar: JSONGrammar) throws(JSONSchemaError) -> GrammarConstraint {
        GrammarConstraint(grammar: grammar, vocabulary: try grammarVocabulary())
    }

    /// The vocabulary arranged for grammar masks, built on first use.
    public func grammarVocabulary() throws(JSONSchemaError) -> GrammarVocabulary {
        try grammarVocabularyCache.value { () throws(JSONSchemaError) in try GrammarVocabulary(tokenizer: tokenizer) }
    }
}

/// A value made once, on first use, by whichever thread asks first.
final class OnceCache<Value: Sendable>: @unchecked Sendable {
    // Guarded by `lock` (NSLock, which ThreadSanitizer sees).
    private let lock = NSLock()
    private var stored: Value?

    func value<Failure: Error>(_ make: () throws(Failure) -> Value) throws(Failure) -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let stored { return stored }
        let made = try make()
        stored = made
        return made
    }
}
