import CSpeculatePluginABI
import CSpeculatePluginChannel
import Foundation
import SpeculateCore

#if canImport(Glibc)
    import Glibc
#endif

/// What the host loads: a plugin library, or the libffi adapter.
enum PluginHostSource: Sendable, Equatable {
    case library(String)
    case foreignFunction

    var arguments: [String] {
        switch self {
        case .library(let path): return [path]
        case .foreignFunction: return ["--ffi"]
        }
    }
}

/// The draft a host wrote, copied out of shared memory before anything reads it.
struct HostedDraft {
    var code: Int32
    var count: Int32
    var tokens: [Int32]
    var parents: [Int32]
    var scores: [Float]
    var probabilities: [Float]
    var message: String
}

/// One `speculate-plugin-host` process and its channel: spawning it in a process group of its
/// own, the requests (`create`, `propose`, `observe`) with their deadlines, and stopping it.
/// Not thread-safe: its owner serializes calls. Once a call fails the process is stopped and
/// reaped, and every later call fails with the same reason.
final class PluginHostProcess {
    let pid: pid_t
    let channel: Int32
    let lifeline: Int32
    let sharedFile: Int32
    var shared: UnsafeMutableRawPointer
    var sharedSize: Int
    let output: PluginHostOutput
    let configuration: PluginHostConfiguration
    let payload: UnsafeMutableRawBufferPointer
    var sequence: UInt32 = 0
    var pendingObserve: UInt32?
    /// Tokens of the context in shared memory (at ``contextOffset``).
    var sharedContextCount = 0
    var failure: PluginHostFailure?
    var reaped = false
    /// When the last answer came and the CPU the host's other threads had used by then.
    var lastAnswer: (time: Double, otherCPU: Double)?
    /// Idle time (between an answer and the next request) and the other threads' CPU in it.
    var idle: (seconds: Double, otherCPU: Double) = (0, 0)
    var mappedBytes: Int64 = 0

    /// The context (and, during create, the vocabulary) starts after the draft area.
    static let contextOffset = Int(SPEC_CHANNEL_DRAFT_BYTES)
    static let maxNodes = Int(SPEC_CHANNEL_MAX_NODES)
    /// The most text one `tokenize` callback may hand this process (a corpus, typically).
    static let maxTokenizeBytes = 64 << 20

    /// Starts the host for `source`; the first thing it does is load the library.
    init(
        source: PluginHostSource, configuration: PluginHostConfiguration, outputPrefix: String,
        sink: @escaping @Sendable (String) -> Void
    ) throws(PluginHostFailure) {
        self.configuration = configuration
        guard access(configuration.executable, X_OK) == 0 else {
            throw .cannotStart(
                "no executable \(configuration.executable) (build the package with `swift build`, set SPECULATE_PLUGIN_HOST, or run the plugin in process with plugin-inprocess:)"
            )
        }
        var channelPair: [Int32] = [-1, -1]
        var lifelinePair: [Int32] = [-1, -1]
        var outputPair: [Int32] = [-1, -1]
        guard spec_channel_socketpair(&channelPair) == 0, spec_channel_pipe(&lifelinePair) == 0,
            spec_channel_pipe(&outputPair) == 0
        else {
            for fd in channelPair + lifelinePair + outputPair where fd >= 0 { Glibc.close(fd) }
            throw .cannotStart("cannot create its channel: \(String(cString: strerror(errno)))")
        }
        let memory = spec_channel_memfd("speculate-plugin")
        let initialSize = Self.contextOffset + 64 * 1024
        guard memory >= 0, ftruncate(memory, off_t(initialSize)) == 0,
            let mapping = mmap(nil, initialSize, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0),
            mapping != MAP_FAILED
        else {
            for fd in channelPair + lifelinePair + outputPair where fd >= 0 { Glibc.close(fd) }
            if memory >= 0 { Glibc.close(memory) }
            throw .cannotStart("cannot create its shared memory: \(String(cString: strerror(errno)))")
        }
        var arguments = [
            configuration.executable, "--memory-mb", String(configuration.memoryLimitMB), "--cpu-seconds",
            String(configuration.cpuSecondsLimit), "--files", String(configuration.openFilesLimit),
        ]
        arguments += source.arguments
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        // The host links the Swift runtime (so that plugins written in Swift load); its crash
        // backtracer would print pages into the plugin's output for every contained crash.
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        var cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in cEnvironment { free(entry) } }
        var child: pid_t = 0
        let status = configuration.executable.withCString { executable in
            cArguments.withUnsafeMutableBufferPointer { argv in
                cEnvironment.withUnsafeMutableBufferPointer { envp in
                    var request = spec_spawn_request(
                        executable: executable, arguments: argv.baseAddress, environment: envp.baseAddress,
                        output_fd: outputPair[1], channel_fd: channelPair[1], lifeline_fd: lifelinePair[0],
                        shared_fd: memory)
                    return spec_host_spawn(&request, &child)
                }
            }
        }
        // The child's ends live on in the child only.
        Glibc.close(channelPair[1])
        Glibc.close(lifelinePair[0])
        Glibc.close(outputPair[1])
        output = PluginHostOutput(
            descriptor: outputPair[0], prefix: outputPrefix, limit: configuration.outputLimit,
            forwardLimit: configuration.forwardedOutput, sink: sink)
        channel = channelPair[0]
        lifeline = lifelinePair[1]
        sharedFile = memory
        shared = mapping
        sharedSize = initialSize
        payload = .allocate(byteCount: Int(SPEC_CHANNEL_MAX_PAYLOAD), alignment: 8)
        pid = child
        guard status == 0 else {
            reaped = true
            failure = .cannotStart("posix_spawn \(configuration.executable): \(String(cString: strerror(status)))")
            output.close()
            throw failure!
        }
        output.watch(group: child)
    }

    deinit {
        stop()
        release()
    }

    /// Prefixes the plugin's forwarded output lines with `prefix` from now on.
    func labelOutput(_ prefix: String) { output.rename(prefix) }

    // MARK: Requests

    /// Waits for the host's report on loading the library: the checked description, or the
    /// error the library deserves.
    func loaded(path: String) throws(PluginError) -> PluginDescription {
        let message: (header: spec_channel_message, bytes: [UInt8])
        do {
            message = try receive(
                deadline: now() + configuration.startTimeLimit, during: "loading", limit: configuration.startTimeLimit)
        } catch { throw .hostFailed(plugin: path, reason: error.description) }
        let text = String(decoding: message.bytes, as: UTF8.self)
        switch Int(message.header.kind) {
        case Int(SPEC_MSG_LOAD_FAILED.rawValue):
            switch message.header.code {
            case Int32(SPEC_LOAD_NO_ENTRY): throw .missingEntryPoint(path: path)
            case Int32(SPEC_LOAD_NULL_TABLE): throw .nullTable(path: path)
            default: throw .cannotOpen(path: path, reason: text)
            }
        case Int(SPEC_MSG_LOADED.rawValue):
            let values = message.header.values
            let fields = message.bytes.split(separator: 0, omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            let bits = values.2
            let missing = [
                ("create", Int64(SPEC_TABLE_NO_CREATE)), ("propose", Int64(SPEC_TABLE_NO_PROPOSE)),
                ("destroy", Int64(SPEC_TABLE_NO_DESTROY)), ("name", Int64(SPEC_TABLE_NO_NAME)),
            ]
            .filter { bits & $0.1 != 0 }.map(\.0)
            return try PluginDescription.checked(
                path: path, abiVersion: UInt32(truncatingIfNeeded: values.0),
                structSize: UInt32(truncatingIfNeeded: values.1),
                expectedSize: MemoryLayout<spec_plugin_v1>.size, missing: missing,
                name: fields.count > 0 ? fields[0] : "", summary: fields.count > 1 ? fields[1] : "",
                optionsHelp: fields.count > 2 ? fields[2] : "", observes: bits & Int64(SPEC_TABLE_NO_OBSERVE) == 0)
        default:
            stop(because: .malformed("answered loading with message kind \(message.header.kind)", during: "loading"))
            throw .hostFailed(plugin: path, reason: failure!.description)
        }
    }

    /// Creates the plugin's instance, answering its tokenizer calls; the vocabulary is written
    /// to shared memory for its `token_text` calls.
    func create(plugin: String, options: String, vocabulary: PluginVocabulary) throws(PluginError) {
        let optionBytes = Array(options.utf8)
        guard optionBytes.count < Int(SPEC_CHANNEL_MAX_PAYLOAD) else {
            throw .creationFailed(
                plugin: plugin, code: -1, message: "options longer than \(SPEC_CHANNEL_MAX_PAYLOAD) bytes")
        }
        do {
            let vocabularyEnd = try writeVocabulary(vocabulary)
            var request = header(kind: SPEC_MSG_CREATE)
            request.values.0 = Int64(vocabulary.size)
            request.values.1 = Int64(Self.contextOffset)
            request.values.2 = Int64(sharedSize)
            try send(request, optionBytes, during: "create")
            var deadline = now() + configuration.startTimeLimit
            while true {
                let answer = try receive(deadline: deadline, during: "create", limit: configuration.startTimeLimit)
                switch Int(answer.header.kind) {
                case Int(SPEC_MSG_TOKENIZE.rawValue):
                    // The time this process spends tokenizing is not the plugin's.
                    let started = now()
                    try answerTokenize(answer, vocabulary: vocabulary, at: vocabularyEnd, deadline: deadline)
                    deadline += now() - started
                case Int(SPEC_MSG_CREATED.rawValue) where answer.header.sequence == request.sequence:
                    guard answer.header.code == 0 else {
                        throw PluginError.creationFailed(
                            plugin: plugin, code: answer.header.code,
                            message: String(decoding: answer.bytes, as: UTF8.self))
                    }
                    sharedContextCount = 0
                    return
                default:
                    throw fail(.malformed("answered create with message kind \(answer.header.kind)", during: "create"))
                }
            }
        } catch let error as PluginHostFailure {
            throw .hostFailed(plugin: plugin, reason: error.description)
        } catch let error as PluginError {
            throw error
        } catch {
            throw .hostFailed(plugin: plugin, reason: "\(error)")
        }
    }

    /// Asks for a draft of at most `capacity` nodes (at most the draft area's) continuing `context`.
    func propose(
        context: [Token], capacity: Int, maxDepth: Int, remainingContext: Int
    ) throws(PluginHostFailure) -> HostedDraft {
        try checkIdle()
        let deadline = now() + configuration.timeLimit
        try finishObserve(deadline: deadline)
        try writeContext(context)
        let nodes = min(capacity, Self.maxNodes)
        var request = header(kind: SPEC_MSG_PROPOSE)
        request.values = (
            Int64(context.count), Int64(Self.contextOffset), Int64(sharedSize), Int64(nodes), Int64(maxDepth),
            Int64(remainingContext)
        )
        try send(request, [], during: "propose")
        let answer = try receive(deadline: deadline, during: "propose")
        guard answer.header.kind == SPEC_MSG_PROPOSED.rawValue, answer.header.sequence == request.sequence else {
            throw fail(.malformed("answered propose with message kind \(answer.header.kind)", during: "propose"))
        }
        // Copied before anything reads them: the host could still be writing.
        let base = UnsafeRawPointer(shared)
        func copy<T>(_ offset: Int, _: T.Type) -> [T] {
            Array(UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: T.self), count: nodes))
        }
        let draft = HostedDraft(
            code: answer.header.code, count: Int32(clamping: answer.header.values.0),
            tokens: copy(0, Int32.self), parents: copy(Self.maxNodes * 4, Int32.self),
            scores: copy(Self.maxNodes * 8, Float.self), probabilities: copy(Self.maxNodes * 12, Float.self),
            message: String(decoding: answer.bytes.prefix(1024), as: UTF8.self))
        mappedBytes = spec_process_mapped_bytes(pid)
        lastAnswer = otherThreadsCPU().map { (now(), $0) }
        return draft
    }

    /// Tells the host the step's tokens; not waited for (the next `propose` waits for it).
    func observe(accepted: [Token], context: [Token]) throws(PluginHostFailure) {
        try finishObserve(deadline: now() + configuration.timeLimit)
        try writeContext(context)
        var request = header(kind: SPEC_MSG_OBSERVE)
        request.values.0 = Int64(accepted.count)
        request.values.1 = Int64(context.count)
        request.values.2 = Int64(Self.contextOffset)
        request.values.3 = Int64(sharedSize)
        let bytes = accepted.prefix(Int(SPEC_CHANNEL_MAX_PAYLOAD) / 4).withUnsafeBytes { Array($0) }
        request.values.0 = Int64(bytes.count / 4)
        try send(request, bytes, during: "observe")
        pendingObserve = request.sequence
    }

    /// Asks the host to destroy the instance and exit, then stops its whole process group.
    func stop() {
        guard !reaped else { return }
        if failure == nil, (try? send(header(kind: SPEC_MSG_QUIT), [], during: "quit")) != nil {
            // A plugin's destroy gets a moment; the group is killed either way.
            _ = waitForExit(seconds: 0.2)
        }
        reap()
    }
}
