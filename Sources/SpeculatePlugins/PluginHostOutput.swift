import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads what a plugin host writes to its stdout and stderr (one pipe) on a thread of its own:
/// forwards the first lines to a sink, prefixed with the plugin's name, counts the rest, and
/// stops the host's process group once the total passes the limit.
final class PluginHostOutput: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `lock`.
    private let lock = NSLock()
    private var total = 0
    private var forwarded = 0
    private var flooded = false
    private var group: pid_t = 0
    private var closed = false
    private let limit: Int
    private let forwardLimit: Int
    private var prefix: String
    private let sink: @Sendable (String) -> Void

    /// Starts reading `descriptor` (which the reader closes when done).
    init(descriptor: Int32, prefix: String, limit: Int, forwardLimit: Int, sink: @escaping @Sendable (String) -> Void) {
        self.limit = limit
        self.forwardLimit = forwardLimit
        self.prefix = prefix
        self.sink = sink
        let thread = Thread { [self] in read(descriptor) }
        thread.name = "speculate.plugin-output"
        thread.start()
    }

    /// The process group to stop on flooding (set once the host is spawned).
    func watch(group: pid_t) { lock.withLock { self.group = group } }

    /// Prefixes later lines with `prefix`.
    func rename(_ prefix: String) { lock.withLock { self.prefix = prefix } }

    /// Whether the host was stopped for its output.
    var hasFlooded: Bool { lock.withLock { flooded } }

    /// After this the reader signals nothing (the group may be reaped and its id reused).
    func close() { lock.withLock { closed = true } }

    private func read(_ descriptor: Int32) {
        defer { Glibc.close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var line: [UInt8] = []
        while true {
            var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&waiting, 1, 100)
            // A descendant that left the group could hold the pipe open forever.
            if lock.withLock({ closed }) { return }
            if ready == 0 { continue }
            if ready < 0 { if errno == EINTR { continue } else { return } }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            lock.withLock {
                total += count
                guard total > limit, !flooded, !closed, group > 0 else { return }
                flooded = true
                // Under the lock: `close()` takes it before the group is reaped, so the id is
                // still the host's here.
                kill(-group, SIGKILL)
            }
            for byte in buffer[..<count] {
                if byte == 10 || line.count >= 1024 {
                    emit(line)
                    line.removeAll(keepingCapacity: true)
                    if byte == 10 { continue }
                }
                line.append(byte)
            }
        }
    }

    private func emit(_ line: [UInt8]) {
        let (show, note) = lock.withLock { () -> (Bool, Bool) in
            defer { forwarded += line.count + 1 }
            return (
                forwarded + line.count <= forwardLimit,
                forwarded <= forwardLimit && forwarded + line.count > forwardLimit
            )
        }
        let prefix = lock.withLock { self.prefix }
        if show {
            sink("\(prefix)\(String(decoding: line, as: UTF8.self))")
        } else if note {
            sink("\(prefix)(further output not shown)")
        }
    }
}
