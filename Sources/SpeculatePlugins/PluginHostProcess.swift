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
    private let channel: Int32
    private let lifeline: Int32
    private let sharedFile: Int32
    private var shared: UnsafeMutableRawPointer
    private var sharedSize: Int
    private let output: PluginHostOutput
    private let configuration: PluginHostConfiguration
    private let payload: UnsafeMutableRawBufferPointer
    private var sequence: UInt32 = 0
    private var pendingObserve: UInt32?
    /// Tokens of the context in shared memory (at ``contextOffset``).
    private var sharedContextCount = 0
    private(set) var failure: PluginHostFailure?
    private var reaped = false
    /// When the last answer came and the CPU the host's other threads had used by then.
    private var lastAnswer: (time: Double, otherCPU: Double)?
    /// Idle time (between an answer and the next request) and the other threads' CPU in it.
    private var idle: (seconds: Double, otherCPU: Double) = (0, 0)
    private var mappedBytes: Int64 = 0

    /// The context (and, during create, the vocabulary) starts after the draft area.
    private static let contextOffset = Int(SPEC_CHANNEL_DRAFT_BYTES)
    private static let maxNodes = Int(SPEC_CHANNEL_MAX_NODES)
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

    // MARK: Channel

    private func header(kind: spec_channel_kind) -> spec_channel_message {
        sequence &+= 1
        var message = spec_channel_message()
        message.kind = kind.rawValue
        message.sequence = sequence
        return message
    }

    private func send(_ message: spec_channel_message, _ bytes: [UInt8], during: String) throws(PluginHostFailure) {
        if let failure { throw failure }
        var message = message
        let status = bytes.withUnsafeBytes { spec_channel_send(channel, &message, $0.baseAddress, $0.count) }
        guard status == 0 else { throw fail(gone(during: during)) }
    }

    private func receive(deadline: Double, during: String, limit: Double? = nil) throws(PluginHostFailure) -> (
        header: spec_channel_message, bytes: [UInt8]
    ) {
        if let failure { throw failure }
        var message = spec_channel_message()
        let remaining = max(0, deadline - now())
        let length = spec_channel_receive(
            channel, &message, payload.baseAddress, payload.count, Int32(min(remaining * 1000, 1e9).rounded(.up)))
        switch length {
        case 0...: return (message, Array(UnsafeRawBufferPointer(rebasing: payload[..<Int(length)])))
        case -1: throw fail(.timedOut(seconds: limit ?? configuration.timeLimit, during: during))
        case -2: throw fail(gone(during: during))
        case -3: throw fail(.malformed("sent bytes that are not a channel message", during: during))
        default: throw fail(.malformed(String(cString: strerror(errno)), during: during))
        }
    }

    /// Waits for the answer to an `observe` still outstanding.
    private func finishObserve(deadline: Double) throws(PluginHostFailure) {
        guard let expected = pendingObserve else { return }
        let answer = try receive(deadline: deadline, during: "observe")
        guard answer.header.kind == SPEC_MSG_OBSERVED.rawValue, answer.header.sequence == expected else {
            throw fail(.malformed("answered observe with message kind \(answer.header.kind)", during: "observe"))
        }
        pendingObserve = nil
    }

    private func answerTokenize(
        _ first: (header: spec_channel_message, bytes: [UInt8]), vocabulary: PluginVocabulary, at offset: Int,
        deadline: Double
    ) throws(PluginHostFailure) {
        let total = Int(first.header.values.0)
        guard total >= 0, total <= 1 << 30 else {
            throw fail(.malformed("tokenize of \(total) bytes", during: "create"))
        }
        var text = first.bytes
        while text.count < total {
            let part = try receive(deadline: deadline, during: "create")
            guard part.header.kind == SPEC_MSG_TOKENIZE_MORE.rawValue else {
                throw fail(.malformed("a tokenize request ended early", during: "create"))
            }
            text += part.bytes
        }
        guard text.count == total else { throw fail(.malformed("a tokenize request ran long", during: "create")) }
        let tokens = vocabulary.tokenize(String(decoding: text, as: UTF8.self))
        try reserve(offset + tokens.count * 4)
        tokens.withUnsafeBytes { (shared + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var answer = header(kind: SPEC_MSG_TOKENS)
        answer.values.0 = Int64(tokens.count)
        answer.values.1 = Int64(offset)
        answer.values.2 = Int64(sharedSize)
        try send(answer, [], during: "create")
    }

    // MARK: Shared memory

    /// Grows the shared memory to hold `bytes` (the host remaps when a message says so).
    private func reserve(_ bytes: Int) throws(PluginHostFailure) {
        guard bytes > sharedSize else { return }
        var size = sharedSize
        while size < bytes { size *= 2 }
        guard ftruncate(sharedFile, off_t(size)) == 0,
            let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, sharedFile, 0), mapping != MAP_FAILED
        else { throw fail(.cannotStart("cannot grow shared memory to \(size) bytes")) }
        munmap(shared, sharedSize)
        shared = mapping
        sharedSize = size
    }

    /// Writes the vocabulary after the draft area: (size + 1) byte offsets, then the bytes.
    /// Returns where free space starts.
    private func writeVocabulary(_ vocabulary: PluginVocabulary) throws(PluginHostFailure) -> Int {
        var offsets: [UInt32] = [0]
        var bytes: [UInt8] = []
        offsets.reserveCapacity(vocabulary.size + 1)
        for token in 0..<vocabulary.size {
            bytes += vocabulary.tokenBytes(Token(token)) ?? []
            offsets.append(UInt32(bytes.count))
        }
        let start = Self.contextOffset
        let end = start + offsets.count * 4 + bytes.count
        try reserve((end + 3) / 4 * 4 + 64 * 1024)
        offsets.withUnsafeBytes { (shared + start).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        bytes.withUnsafeBytes {
            guard let base = $0.baseAddress else { return }
            (shared + start + offsets.count * 4).copyMemory(from: base, byteCount: $0.count)
        }
        sharedContextCount = 0
        return (end + 3) / 4 * 4
    }

    /// Makes shared memory hold `context`, writing only what changed since the last call.
    private func writeContext(_ context: [Token]) throws(PluginHostFailure) {
        try reserve(Self.contextOffset + context.count * 4)
        let stored = (shared + Self.contextOffset).assumingMemoryBound(to: Int32.self)
        var same = min(sharedContextCount, context.count)
        context.withUnsafeBufferPointer { tokens in
            if memcmp(stored, tokens.baseAddress!, same * 4) != 0 {
                var index = 0
                while index < same && stored[index] == tokens[index] { index += 1 }
                same = index
            }
            if context.count > same {
                (stored + same).update(from: tokens.baseAddress! + same, count: context.count - same)
            }
        }
        sharedContextCount = context.count
    }

    // MARK: Stopping

    /// CPU seconds the host's threads other than its main one have used so far.
    private func otherThreadsCPU() -> Double? {
        let total = spec_process_cpu_seconds(pid, 0)
        let main = spec_process_cpu_seconds(pid, pid)
        return total >= 0 && main >= 0 ? total - main : nil
    }

    /// Before a request: whether the host's other threads kept the CPU busy while no call was
    /// open (since the last answer), judged over a second or more of such idle time. Time inside
    /// calls does not count, so a plugin may use worker threads while it proposes.
    private func checkIdle() throws(PluginHostFailure) {
        guard let last = lastAnswer, let other = otherThreadsCPU() else { return }
        lastAnswer = nil
        idle.seconds += now() - last.time
        idle.otherCPU += other - last.otherCPU
        guard idle.seconds >= 1 else { return }
        let share = idle.otherCPU / idle.seconds
        idle = (0, 0)
        if share > configuration.spinningShare { throw fail(.spinning(share: share)) }
    }

    /// Stops the host for `reason` and returns the failure every later call reports.
    private func fail(_ reason: PluginHostFailure) -> PluginHostFailure {
        if let failure { return failure }
        stop(because: reason)
        return failure!
    }

    private func stop(because reason: PluginHostFailure) {
        guard failure == nil else { return }
        failure = output.hasFlooded ? .flooded(bytes: configuration.outputLimit) : reason
        reap()
    }

    /// What the end of the channel means: how the host ended, once it has.
    private func gone(during: String) -> PluginHostFailure {
        guard let status = waitForExit(seconds: 0.5) else {
            return .malformed("closed its channel", during: during)
        }
        if output.hasFlooded { return .flooded(bytes: configuration.outputLimit) }
        if status.signaled {
            let limit = Int64(configuration.memoryLimitMB) * 1024 * 1024
            return .crashed(
                signal: status.code, during: during, nearMemoryLimit: limit > 0 && mappedBytes > limit * 3 / 4)
        }
        return .exited(status: status.code, during: during)
    }

    /// How the host ended, waiting up to `seconds`, without reaping it (its process id, and so
    /// its group's, stay reserved until `reap`).
    private func waitForExit(seconds: Double) -> (signaled: Bool, code: Int32)? {
        let deadline = now() + seconds
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid
            {
                let code = info._sifields._sigchld.si_status
                return (info.si_code != CLD_EXITED, code)
            }
            if now() >= deadline { return nil }
            usleep(5000)
        }
    }

    /// Kills the whole process group (the plugin's own children too) and reaps the host.
    private func reap() {
        guard !reaped else { return }
        reaped = true
        kill(-pid, SIGKILL)
        output.close()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    private func release() {
        Glibc.close(channel)
        Glibc.close(lifeline)
        Glibc.close(sharedFile)
        munmap(shared, sharedSize)
        payload.deallocate()
    }

    private func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
