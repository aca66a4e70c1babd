/// Requests take the model's slots in arrival order, with a bounded wait list.
///
/// Up to `slots` requests decode at once (their trees share forwards: ``ForwardBatcher``); the
/// rest wait. A request first *reserves* a place (refused with 503 when `capacity` requests
/// already wait behind the running ones), then waits for its turn, and finishes, which hands its
/// slot to the next in line.
public actor RequestQueue {
    /// Most requests that may wait behind the running ones.
    public let capacity: Int
    /// Most requests that run at once.
    public let slots: Int
    private var running = 0
    private var reserved = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// A queue running `slots` requests at once and letting `capacity` more wait.
    public init(capacity: Int, slots: Int = 1) {
        self.capacity = max(0, capacity)
        self.slots = max(1, slots)
    }

    /// Reserves a place in line, or throws a 503 error when the wait list is full.
    public func reserve() throws(APIError) {
        guard reserved < slots + capacity else { throw .queueFull(waiting: max(0, reserved - running)) }
        reserved += 1
    }

    /// Waits until a slot is free for the caller (which must hold a reservation).
    public func waitTurn() async {
        guard running >= slots else {
            running += 1
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
            running = max(0, running - 1)
        } else {
            waiters.removeFirst().resume()
        }
    }

    /// Slots no request holds.
    public var freeSlots: Int { slots - running }

    /// Requests holding a place: those decoding and those waiting.
    public var depth: (running: Int, waiting: Int) { (running, max(0, reserved - running)) }
}
