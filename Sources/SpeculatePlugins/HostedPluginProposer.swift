import Foundation
import SpeculateCore

/// A plugin run in a `speculate-plugin-host` process of its own: a plugin that crashes, aborts,
/// exits, hangs, floods its output, spins between calls or breaks the channel costs its drafts,
/// never the run. The failure is reported once (as a ``PluginError/stopped(plugin:reason:outcome:)``
/// from `propose`, which the decoder records as that step's skipped draft); the host is then
/// restarted after a back-off (``PluginHostConfiguration/restartDelay``, doubling) at most
/// ``PluginHostConfiguration/restarts`` times, and after that the plugin proposes nothing for the
/// rest of the proposer's life. Drafts are guesses the target verifies, so output is unaffected.
public final class HostedPluginProposer: DraftProposer, @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`; calls hold it for their whole exchange
    // with the host, which is the ABI's rule that calls on one instance never overlap.

    /// `plugin:NAME` (or `ffi:SYMBOL`).
    public let name: String
    /// What the plugin's table says.
    public let description: PluginDescription
    /// The limits and the host executable.
    public let configuration: PluginHostConfiguration

    private let source: PluginHostSource
    private let options: String
    private let vocabulary: PluginVocabulary
    private let sink: @Sendable (String) -> Void
    private let lock = NSLock()
    private var host: PluginHostProcess?
    private var restartsUsed = 0
    private var retryAt: Double = 0
    private var dropped = false
    /// A failure found in `observe`, reported by the next `propose`.
    private var unreported: PluginError?

    /// Starts a host for the plugin library at `path` and creates an instance with `options`.
    public convenience init(
        path: String, options: String, vocabulary: PluginVocabulary,
        configuration: PluginHostConfiguration = PluginHostConfiguration(),
        sink: @escaping @Sendable (String) -> Void = PluginHostedOutput.standardError
    ) throws(PluginError) {
        try self.init(
            source: .library(path), displayName: nil, options: options, vocabulary: vocabulary,
            configuration: configuration, sink: sink)
    }

    /// Starts a host that calls a C function through libffi (`ffi:`), named `ffi:SYMBOL`.
    public convenience init(
        foreignFunction signature: ForeignFunctionSignature, vocabulary: PluginVocabulary,
        configuration: PluginHostConfiguration = PluginHostConfiguration(),
        sink: @escaping @Sendable (String) -> Void = PluginHostedOutput.standardError
    ) throws(PluginError) {
        try self.init(
            source: .foreignFunction, displayName: "ffi:\(signature.symbol)", options: signature.adapterOptions,
            vocabulary: vocabulary, configuration: configuration, sink: sink)
    }

    init(
        source: PluginHostSource, displayName: String?, options: String, vocabulary: PluginVocabulary,
        configuration: PluginHostConfiguration, sink: @escaping @Sendable (String) -> Void
    ) throws(PluginError) {
        let path: String
        switch source {
        case .library(let location): path = location
        case .foreignFunction: path = "ffi"
        }
        let (host, description) = try Self.start(
            source: source, path: path, label: displayName ?? path, displayName: displayName,
            configuration: configuration, sink: sink)
        self.description = description
        self.name = displayName ?? "plugin:\(description.name)"
        self.source = source
        self.options = options
        self.vocabulary = vocabulary
        self.configuration = configuration
        self.sink = sink
        try host.create(plugin: description.name, options: options, vocabulary: vocabulary)
        self.host = host
        PluginHostEvents.recordStart(restart: false)
    }

    /// Starts a host and waits for its report on the library.
    private static func start(
        source: PluginHostSource, path: String, label: String, displayName: String?,
        configuration: PluginHostConfiguration,
        sink: @escaping @Sendable (String) -> Void
    ) throws(PluginError) -> (PluginHostProcess, PluginDescription) {
        let host: PluginHostProcess
        do {
            host = try PluginHostProcess(
                source: source, configuration: configuration, outputPrefix: "plugin \(label): ", sink: sink)
        } catch { throw .hostFailed(plugin: label, reason: error.description) }
        let description = try host.loaded(path: path)
        host.labelOutput("plugin \(displayName ?? description.name): ")
        return (host, description)
    }

    /// Reads a plugin library's description in a host process (nothing of it loads here).
    public static func describe(
        path: String, configuration: PluginHostConfiguration = PluginHostConfiguration()
    ) throws(PluginError) -> PluginDescription {
        let (host, description) = try start(
            source: .library(path), path: path, label: path, displayName: nil, configuration: configuration,
            sink: PluginHostedOutput.standardError)
        host.stop()
        return description
    }

    deinit { host?.stop() }

    /// Asks the host for a tree within `context.budget` and validates it.
    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        try lock.withLock { () throws(PluginError) -> [DraftCandidate] in
            if let report = unreported {
                unreported = nil
                throw report
            }
            let capacity = max(0, min(context.budget.maxNodes, Int(4096)))
            guard !dropped, capacity > 0, let host = try liveHost() else { return [] }
            let draft: HostedDraft
            do throws(PluginHostFailure) {
                draft = try host.propose(
                    context: context.tokens, capacity: capacity, maxDepth: context.budget.maxDepth,
                    remainingContext: context.remainingContext)
            } catch { throw stopped(error) }
            guard draft.code == 0 else {
                throw .proposeFailed(plugin: description.name, code: draft.code, message: draft.message)
            }
            let candidate = try PluginDraftValidation.candidate(
                plugin: description.name, count: draft.count, capacity: min(capacity, draft.tokens.count),
                tokens: draft.tokens, parents: draft.parents, scores: draft.scores,
                probabilities: draft.probabilities, vocabularySize: vocabulary.size,
                maxDepth: context.budget.maxDepth)
            return candidate.map { [$0] } ?? []
        }
    }

    /// Forwards the step's tokens to the host without waiting for the plugin.
    public func observe(accepted: [Token], context: [Token]) async {
        guard description.observes else { return }
        lock.withLock {
            guard !dropped, let host, host.failure == nil else { return }
            do throws(PluginHostFailure) {
                try host.observe(accepted: accepted, context: context)
            } catch { unreported = stopped(error) }
        }
    }

    /// The host to ask now: the running one, or a restarted one once the back-off has passed
    /// (nil while waiting). Called with the lock held.
    private func liveHost() throws(PluginError) -> PluginHostProcess? {
        if let host { return host }
        guard Date.timeIntervalSinceReferenceDate >= retryAt else { return nil }
        let label = name
        do {
            let (host, _) = try Self.start(
                source: source, path: description.path, label: label,
                displayName: name.hasPrefix("ffi:") ? name : nil, configuration: configuration, sink: sink)
            try host.create(plugin: description.name, options: options, vocabulary: vocabulary)
            self.host = host
            PluginHostEvents.recordStart(restart: true)
            return host
        } catch {
            throw stopped(.cannotStart(error.description))
        }
    }

    /// Drops the failed host and decides what comes next; the error to report.
    private func stopped(_ failure: PluginHostFailure) -> PluginError {
        host?.stop()
        host = nil
        let outcome: String
        if restartsUsed < configuration.restarts {
            restartsUsed += 1
            let delay = configuration.restartDelay * Double(1 << (restartsUsed - 1))
            retryAt = Date.timeIntervalSinceReferenceDate + delay
            outcome =
                "restarting it in \(PluginHostFailure.seconds(delay)) (restart \(restartsUsed) of \(configuration.restarts))"
        } else {
            dropped = true
            outcome = "dropped for the rest of this run"
        }
        PluginHostEvents.recordFailure(dropped: dropped)
        return .stopped(plugin: description.name, reason: failure.description, outcome: outcome)
    }
}

/// Where a hosted plugin's own output goes by default.
public enum PluginHostedOutput {
    /// Each line to standard error.
    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
