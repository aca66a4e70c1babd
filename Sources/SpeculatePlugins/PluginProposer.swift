import CSpeculatePluginABI
import Dispatch
import Foundation
import SpeculateCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A proposer backed by one instance of a plugin. Every value the plugin returns is checked;
/// anything out of bounds becomes a ``PluginError`` for that step (the decoder skips the draft
/// and records why), never a crash or a wrong token.
///
/// Calls into the plugin run on a serial queue of its own, in order. A `propose` that does not
/// return within ``timeLimit`` ends that step's wait with ``PluginError/timedOut(plugin:seconds:)``
/// and drops the plugin for the rest of the run: it is never called again (nor destroyed while
/// its call may still be running: the abandoned call keeps the instance alive). A plugin that
/// crashes takes the process with it: plugins run in-process and are trusted like any shared
/// library (see SECURITY.md).
public final class PluginProposer: DraftProposer {
    /// The plugin's name, prefixed `plugin:`.
    public let name: String
    /// The library the instance lives in.
    public let library: PluginLibrary
    /// How long one `propose` may take before the plugin is dropped: `SPECULATE_PLUGIN_TIMEOUT`
    /// (seconds) if set, else 2 s. A sane proposer answers in microseconds to milliseconds; a
    /// target step takes tens of milliseconds.
    public let timeLimit: Double
    private let vocabularySize: Int
    private let instance: Mutex<Instance>
    private let worker: DispatchQueue
    private let hung = Flag()

    /// The time limit `SPECULATE_PLUGIN_TIMEOUT` asks for (seconds, > 0), or the default 2 s.
    public static var configuredTimeLimit: Double {
        guard let text = ProcessInfo.processInfo.environment["SPECULATE_PLUGIN_TIMEOUT"], let value = Double(text),
            value > 0, value.isFinite
        else { return 2 }
        return value
    }

    /// The opaque handle the plugin returned. @unchecked: it is noncopyable, owned by the mutex
    /// and only used inside `withLock`, which is exactly the ABI's rule that calls on one instance
    /// never overlap; the plugin may be called from whichever thread holds the lock.
    private struct Instance: ~Copyable, @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void
        deinit { destroy(pointer) }
    }

    init(
        library: PluginLibrary, options: String, vocabulary: PluginVocabulary, timeLimit: Double, name: String? = nil
    ) throws(PluginError) {
        self.library = library
        self.name = name ?? "plugin:\(library.name)"
        self.vocabularySize = vocabulary.size
        self.timeLimit = timeLimit
        self.worker = DispatchQueue(label: "speculate.plugin.\(library.name)")
        let table = library.table.pointee
        let box = Unmanaged.passRetained(VocabularyBox(vocabulary))
        defer { box.release() }
        var host = spec_host(
            struct_size: UInt32(MemoryLayout<spec_host>.size), vocab_size: Int32(clamping: vocabulary.size),
            context: box.toOpaque(), tokenize: hostTokenize, token_text: hostTokenText)
        var errorBuffer = [CChar](repeating: 0, count: 1024)
        var handle: UnsafeMutableRawPointer?
        let code = options.withCString { options in
            errorBuffer.withUnsafeMutableBufferPointer { buffer in
                table.create!(&host, options, &handle, buffer.baseAddress, buffer.count)
            }
        }
        guard code == SPEC_PLUGIN_OK else {
            throw .creationFailed(plugin: library.name, code: code, message: PluginLibrary.message(errorBuffer))
        }
        guard let handle else {
            throw .creationFailed(
                plugin: library.name, code: code, message: "create succeeded but returned no instance")
        }
        instance = Mutex(Instance(pointer: handle, destroy: table.destroy!))
    }

    /// Asks the plugin for a tree within `context.budget` and validates it, waiting at most
    /// ``timeLimit`` for the answer.
    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        guard !hung.isSet else { throw PluginError.dropped(plugin: library.name) }
        let handoff = Handoff()
        let limit = timeLimit
        let pluginName = library.name
        let hung = hung
        // The plugin reads a copy of its own: a call abandoned at the time limit may still be
        // reading when the decoder appends to its context, and must not share that buffer.
        var isolated = context
        isolated.tokens = context.tokens.withUnsafeBufferPointer { Array($0) }
        let request = isolated
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            handoff.wait(with: continuation)
            worker.async {
                _ = handoff.offer(Result { try self.proposeNow(request) })
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
                // Marked before the waiter resumes, so its very next call already sees it.
                _ = handoff.offer(.failure(PluginError.timedOut(plugin: pluginName, seconds: limit)), ifFirst: hung.set)
            }
        }
        return try handoff.outcome.get()
    }

    /// The plugin's `propose`, on the calling thread.
    private func proposeNow(_ context: DraftContext) throws -> [DraftCandidate] {
        let capacity = max(0, min(context.budget.maxNodes, 4096))
        guard capacity > 0 else { return [] }
        let table = library.table.pointee
        let pluginName = library.name
        return try instance.withLock { instance throws(PluginError) -> [DraftCandidate] in
            var tokens = [Int32](repeating: -1, count: capacity)
            var parents = [Int32](repeating: -2, count: capacity)
            var scores = [Float](repeating: 0, count: capacity)
            var probabilities = [Float](repeating: .nan, count: capacity)
            var errorBuffer = [CChar](repeating: 0, count: 1024)
            var budget = spec_budget(
                max_nodes: Int32(capacity), max_depth: Int32(clamping: context.budget.maxDepth),
                remaining_context: Int32(clamping: context.remainingContext))
            var count: Int32 = 0
            let code = tokens.withUnsafeMutableBufferPointer { tokens in
                parents.withUnsafeMutableBufferPointer { parents in
                    scores.withUnsafeMutableBufferPointer { scores in
                        probabilities.withUnsafeMutableBufferPointer { probabilities in
                            errorBuffer.withUnsafeMutableBufferPointer { errorBuffer in
                                context.tokens.withUnsafeBufferPointer { contextTokens in
                                    var draft = spec_draft(
                                        capacity: Int32(capacity), count: 0, tokens: tokens.baseAddress,
                                        parents: parents.baseAddress, scores: scores.baseAddress,
                                        probabilities: probabilities.baseAddress)
                                    let code = table.propose!(
                                        instance.pointer, contextTokens.baseAddress, Int32(contextTokens.count),
                                        &budget, &draft, errorBuffer.baseAddress, errorBuffer.count)
                                    count = draft.count
                                    return code
                                }
                            }
                        }
                    }
                }
            }
            guard code == SPEC_PLUGIN_OK else {
                throw .proposeFailed(plugin: pluginName, code: code, message: PluginLibrary.message(errorBuffer))
            }
            let candidate = try PluginDraftValidation.candidate(
                plugin: pluginName, count: count, capacity: capacity, tokens: tokens,
                parents: parents, scores: scores, probabilities: probabilities,
                vocabularySize: vocabularySize, maxDepth: context.budget.maxDepth)
            return candidate.map { [$0] } ?? []
        }
    }

    /// Forwards the step's accepted tokens to the plugin, if it wants them.
    /// On the plugin's queue, after any earlier call and before the next `propose`; not waited
    /// for (a plugin that hangs here makes its next `propose` time out).
    public func observe(accepted: [Token], context: [Token]) async {
        guard let observe = library.table.pointee.observe, !hung.isSet else { return }
        worker.async {
            self.instance.withLock { instance in
                accepted.withUnsafeBufferPointer { accepted in
                    context.withUnsafeBufferPointer { context in
                        observe(
                            instance.pointer, accepted.baseAddress, Int32(accepted.count), context.baseAddress,
                            Int32(context.count))
                    }
                }
            }
        }
    }
}

/// The meeting point of a `propose` call, the plugin's answer and the time limit: the first
/// outcome offered is kept and wakes the waiter; later ones are dropped. An NSLock (a pthread
/// mutex) orders the answer's writes before the waiter's reads in a way ThreadSanitizer sees
/// (it does not see Synchronization.Mutex's futex, nor a continuation resumed from a Dispatch
/// thread, and reported the plugin's draft arrays as races until the handoff went through here).
private final class Handoff: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var result: Result<[DraftCandidate], any Error>?

    func wait(with continuation: CheckedContinuation<Void, Never>) {
        lock.withLock { self.continuation = continuation }
    }

    /// Keeps `outcome` if it is the first, runs `ifFirst` and wakes the waiter; false if too late.
    func offer(_ outcome: Result<[DraftCandidate], any Error>, ifFirst: () -> Void = {}) -> Bool {
        let waiter: CheckedContinuation<Void, Never>? = lock.withLock {
            guard result == nil else { return nil }
            result = outcome
            defer { continuation = nil }
            return continuation
        }
        guard let waiter else { return false }
        ifFirst()
        waiter.resume()
        return true
    }

    /// The kept outcome (after the waiter was woken).
    var outcome: Result<[DraftCandidate], any Error> { lock.withLock { result! } }
}

/// A flag raised once, readable from any thread.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Carries the vocabulary closures through the C `context` pointer during `create`.
private final class VocabularyBox {
    let vocabulary: PluginVocabulary
    init(_ vocabulary: PluginVocabulary) { self.vocabulary = vocabulary }
}

private let hostTokenize:
    @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, Int, UnsafeMutablePointer<Int32>?, Int32) -> Int32 =
        {
            context, text, length, output, capacity in
            guard let context, length >= 0, capacity >= 0, length == 0 || text != nil, capacity == 0 || output != nil
            else { return -1 }
            let vocabulary = Unmanaged<VocabularyBox>.fromOpaque(context).takeUnretainedValue().vocabulary
            let string =
                length == 0 ? "" : String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
            let tokens = vocabulary.tokenize(string)
            for (index, token) in tokens.prefix(Int(capacity)).enumerated() { output![index] = token }
            return Int32(clamping: tokens.count)
        }

private let hostTokenText:
    @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<CChar>?, Int32) -> Int32 = {
        context, token, output, capacity in
        guard let context, capacity >= 0, capacity == 0 || output != nil else { return -1 }
        let vocabulary = Unmanaged<VocabularyBox>.fromOpaque(context).takeUnretainedValue().vocabulary
        guard let bytes = vocabulary.tokenBytes(token) else { return -1 }
        for (index, byte) in bytes.prefix(Int(capacity)).enumerated() { output![index] = CChar(bitPattern: byte) }
        return Int32(clamping: bytes.count)
    }

/// Checks what a plugin wrote into its draft buffers before any of it reaches the tree merger
/// or the verifier: a plugin is third-party code and its draft is untrusted data.
public enum PluginDraftValidation {
    /// The draft as a candidate (nil if empty), or ``PluginError/invalidDraft(plugin:problem:)``
    /// naming the first problem: a count outside the buffers, a token outside the vocabulary, a
    /// parent that is not an earlier node, a node deeper than `maxDepth`, a non-finite score or a
    /// probability outside [0, 1]. Buffers shorter than `capacity` are refused too.
    public static func candidate(
        plugin pluginName: String, count: Int32, capacity: Int, tokens: [Int32], parents: [Int32],
        scores: [Float], probabilities: [Float], vocabularySize: Int,
        maxDepth: Int
    ) throws(PluginError) -> DraftCandidate? {
        guard capacity <= min(tokens.count, parents.count, scores.count, probabilities.count) else {
            throw .invalidDraft(plugin: pluginName, problem: "draft buffers shorter than the capacity \(capacity)")
        }
        guard count >= 0, Int(count) <= capacity else {
            throw .invalidDraft(plugin: pluginName, problem: "count \(count) outside 0...\(capacity)")
        }
        let n = Int(count)
        guard n > 0 else { return nil }
        var depths = [Int](repeating: 0, count: n)
        for index in 0..<n {
            let token = tokens[index]
            let parent = Int(parents[index])
            guard token >= 0, Int(token) < vocabularySize else {
                throw .invalidDraft(
                    plugin: pluginName,
                    problem: "node \(index) has token id \(token), outside the vocabulary of \(vocabularySize)")
            }
            guard parent >= -1, parent < index else {
                throw .invalidDraft(
                    plugin: pluginName,
                    problem: "node \(index) has parent \(parent); parents must be -1 or an earlier node")
            }
            depths[index] = parent < 0 ? 1 : depths[parent] + 1
            guard depths[index] <= maxDepth else {
                throw .invalidDraft(
                    plugin: pluginName,
                    problem: "node \(index) is at depth \(depths[index]), deeper than the budget's \(maxDepth)")
            }
            guard scores[index].isFinite else {
                throw .invalidDraft(plugin: pluginName, problem: "node \(index) has a non-finite score")
            }
            let probability = probabilities[index]
            guard probability.isNaN || (0...1).contains(probability) else {
                throw .invalidDraft(
                    plugin: pluginName, problem: "node \(index) has probability \(probability), outside [0, 1]")
            }
        }
        // Plugin drafts are verified as fixed guesses (one-hot q): lossless whatever they are.
        return DraftCandidate(
            tokens: Array(tokens[..<n]), parents: parents[..<n].map(Int.init),
            distributions: Array(repeating: .deterministic, count: n), scores: Array(scores[..<n]))
    }
}
