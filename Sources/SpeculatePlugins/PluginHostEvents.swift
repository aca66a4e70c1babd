import Synchronization

/// Process-wide counts of what plugin hosts went through, for `/health` and `/metrics`.
public enum PluginHostEvents {
    private static let startedCount = Atomic<Int>(0)
    private static let restartedCount = Atomic<Int>(0)
    private static let droppedCount = Atomic<Int>(0)
    private static let stoppedCount = Atomic<Int>(0)

    /// Host processes started (first starts and restarts).
    public static var started: Int { startedCount.load(ordering: .relaxed) }
    /// Hosts started again after a failure.
    public static var restarts: Int { restartedCount.load(ordering: .relaxed) }
    /// Plugins dropped for the rest of their run after their last allowed failure.
    public static var drops: Int { droppedCount.load(ordering: .relaxed) }
    /// Hosts stopped for misbehaving (crash, hang, flood, spinning, broken channel).
    public static var failures: Int { stoppedCount.load(ordering: .relaxed) }

    static func recordStart(restart: Bool) {
        startedCount.add(1, ordering: .relaxed)
        if restart { restartedCount.add(1, ordering: .relaxed) }
    }
    static func recordFailure(dropped: Bool) {
        stoppedCount.add(1, ordering: .relaxed)
        if dropped { droppedCount.add(1, ordering: .relaxed) }
    }
}
