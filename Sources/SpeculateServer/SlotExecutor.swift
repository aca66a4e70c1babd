import Foundation

/// A task executor with a thread of its own: a request's decoding loop runs on it, so the loop
/// may block in a batched forward (``ForwardBatcher``) without taking one of the few threads of
/// Swift's shared pool (two on a 2-core host: two blocked decoders would starve everything).
final class SlotExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    /// An executor whose thread is named `name` (it lives as long as the process).
    init(name: String) {
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.withLock {
            jobs.append(unowned)
            condition.signal()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
