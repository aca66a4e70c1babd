/// A suffix automaton over a growing token sequence: after each append it knows, for every
/// suffix of the sequence, whether and where it occurred before — in time linear in the length.
struct SuffixAutomaton {
    /// One state: the set of substrings that share their end positions.
    struct State {
        var length: Int32
        var link: Int32
        var transitions: [Int32: Int32]
        /// The two most recent end positions recorded for this state (-1 when unknown); either is
        /// an end of an occurrence of every substring of the state.
        var lastEnd: Int32
        var previousEnd: Int32
    }

    private(set) var states: [State] = [State(length: 0, link: -1, transitions: [:], lastEnd: -1, previousEnd: -1)]
    private(set) var text: [Int32] = []
    private var last: Int32 = 0

    /// How many suffix-link ancestors get their recent positions refreshed per append. Short
    /// suffixes far up the chain keep older (still valid) positions; this bounds each append.
    private let refreshDepth = 48

    /// Appends one symbol (token ids; a negative id separates documents and never matches usefully).
    mutating func append(_ symbol: Int32) {
        let position = Int32(text.count)
        text.append(symbol)
        let current = Int32(states.count)
        states.append(
            State(length: states[Int(last)].length + 1, link: -1, transitions: [:], lastEnd: -1, previousEnd: -1))
        var p = last
        while p != -1 && states[Int(p)].transitions[symbol] == nil {
            states[Int(p)].transitions[symbol] = current
            p = states[Int(p)].link
        }
        if p == -1 {
            states[Int(current)].link = 0
        } else {
            let q = states[Int(p)].transitions[symbol]!
            if states[Int(p)].length + 1 == states[Int(q)].length {
                states[Int(current)].link = q
            } else {
                var clone = states[Int(q)]
                clone.length = states[Int(p)].length + 1
                let cloneIndex = Int32(states.count)
                states.append(clone)
                while p != -1 && states[Int(p)].transitions[symbol] == q {
                    states[Int(p)].transitions[symbol] = cloneIndex
                    p = states[Int(p)].link
                }
                states[Int(q)].link = cloneIndex
                states[Int(current)].link = cloneIndex
            }
        }
        last = current
        // Every state on the suffix-link chain of `current` ends at `position`.
        var state = current
        var refreshed = 0
        while state > 0 && refreshed < refreshDepth {
            if states[Int(state)].lastEnd != position {
                states[Int(state)].previousEnd = states[Int(state)].lastEnd
                states[Int(state)].lastEnd = position
            }
            state = states[Int(state)].link
            refreshed += 1
        }
    }

    /// Earlier occurrences of suffixes of the whole text, longest suffix first: for each, the
    /// suffix length and the position right after an earlier occurrence's end.
    func earlierOccurrences(minimumLength: Int) -> [(length: Int, continuation: Int)] {
        var result: [(Int, Int)] = []
        let end = Int32(text.count - 1)
        var state = last
        while state > 0 && Int(states[Int(state)].length) >= minimumLength {
            let s = states[Int(state)]
            for candidate in [s.lastEnd, s.previousEnd] where candidate >= 0 && candidate < end {
                result.append((Int(s.length), Int(candidate) + 1))
                break
            }
            state = s.link
        }
        return result
    }
}
