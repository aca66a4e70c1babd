/// Requests take the model one at a time, in arrival order, with a bounded wait list.
///
/// The CPU runs one decode at a time (every kernel already uses all compute threads), so the
/// server does not interleave requests: it queues them. A request first *reserves* a place
/// (refused with 503 when `capacity` requests already wait behind the running one), then waits
/// for its turn, and finishes, which hands the model to the next in line.
public actor RequestQueue {
    /// Most requests that may wait behind the running one.
    public let capacity: Int
    private var running = false
    private var reserved = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// A queue letting `capacity` requests wait.
    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// Reserves a place in line, or throws a 503 error when the wait list is full.
    public func reserve() throws(APIError) {
        guard reserved <= capacity else { throw .queueFull(waiting: reserved - 1) }
        reserved += 1
    }

    /// Waits until the model is free for the caller (which must hold a reservation).
    public func waitTurn() async {
        guard running else {
            running = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Gives up a reservation whose turn never came (the request failed before waiting).
    public func cancelReservation() {
        reserved = max(0, reserved - 1)
    }

    /// Ends the caller's turn and lets the next request in.
    public func finish() {
        reserved = max(0, reserved - 1)
        if waiters.isEmpty {
            running = false
        } else {
            waiters.removeFirst().resume()
        }
    }

    /// Requests holding a place: the one decoding (if any) and those waiting.
    public var depth: (running: Int, waiting: Int) { (running ? 1 : 0, max(0, reserved - (running ? 1 : 0))) }
}
