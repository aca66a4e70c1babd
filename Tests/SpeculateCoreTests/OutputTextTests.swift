import SpeculateCore
import Testing

@Suite("Output text: one detokenizer and stop matcher for every caller")
struct OutputTextTests {
    /// Token i spells `texts[i]`; feeds them one per step and returns what was released, in
    /// order, and whether a stop string ended it.
    func run(_ stops: [String], _ texts: [String]) -> (sent: String, stopped: Bool) {
        let spellings = texts.map { Array($0.utf8) }
        var output = OutputText(spell: { spellings[Int($0)] }, stopStrings: stops)
        var sent = ""
        for index in texts.indices {
            _ = output.append([Token(index)])
            sent += output.takePieces().map(\.text).joined()
            if output.stopped { break }
        }
        sent += output.takePieces(final: true).map(\.text).joined()
        return (sent, output.stopped)
    }

    @Test("text ends before the first stop string, across tokens; nothing after it is released")
    func cuts() {
        #expect(run(["\n\n"], ["def f", "():\n", "\n", "return"]) == ("def f():", true))
        #expect(run(["END", "x"], ["abc", "dE", "ND", "x"]) == ("abcd", true))
        #expect(run(["stop"], ["no st", "opping"]) == ("no ", true))
        #expect(run(["zz"], ["plain", " text"]) == ("plain text", false))
        #expect(run([], ["a", "b"]) == ("ab", false))
        #expect(run(["é!"], ["café", "!"]) == ("caf", true))
        // The match that starts first wins, whatever its place in the list.
        #expect(run(["cd", "bcde"], ["abcdef"]) == ("a", true))
    }

    @Test("the text and the stopping token are the same however tokens are grouped into steps")
    func groupingInvariant() {
        // Every split of the tokens into consecutive steps gives what one token per step gives.
        let cases: [([String], [String])] = [
            (["abcd", "c"], ["ab", "c", "d"]),
            (["cd", "bcde"], ["ab", "cdef"]),
            (["\n\n", "END"], ["x", "E", "N", "D\n", "\n"]),
            (["é!"], ["caf", "é", "!"]),
        ]
        for (stops, texts) in cases {
            let spellings = texts.map { Array($0.utf8) }
            var reference: (text: String, token: Int?)?
            for mask in 0..<(1 << (texts.count - 1)) {
                // Bit i set: a step ends after token i.
                var steps: [[Token]] = [[]]
                for index in texts.indices {
                    steps[steps.count - 1].append(Token(index))
                    if index < texts.count - 1, mask & (1 << index) != 0 { steps.append([]) }
                }
                var output = OutputText(spell: { spellings[Int($0)] }, stopStrings: stops)
                var text = ""
                var stoppedAt: Int?
                for step in steps where stoppedAt == nil {
                    stoppedAt = output.append(step)
                    text += output.takePieces().map(\.text).joined()
                }
                text += output.takePieces(final: true).map(\.text).joined()
                if let reference {
                    #expect(text == reference.text && stoppedAt == reference.token, "\(stops) \(texts) steps \(steps)")
                } else {
                    reference = (text, stoppedAt)
                }
            }
        }
        #expect(run(["abcd", "c"], ["ab", "c", "d"]) == ("ab", true))
    }

    @Test("a possible start of a stop string is held back, then released when it is not one")
    func holds() {
        let spellings = ["abc E", "N", "o"].map { Array($0.utf8) }
        var output = OutputText(spell: { spellings[Int($0)] }, stopStrings: ["END"])
        #expect(output.append([0]) == nil)
        #expect(output.takePieces().map(\.text) == ["abc "])
        #expect(output.append([1]) == nil)
        #expect(output.takePieces().isEmpty)
        #expect(output.append([2]) == nil)
        // The held text keeps the token it came from.
        let pieces = output.takePieces()
        #expect(pieces.map(\.text) == ["E", "N", "o"])
        #expect(pieces.map(\.token) == [0, 1, 2])
        #expect(!output.stopped)
    }

    @Test("the token completing a stop string is reported; later tokens in the same call are dropped")
    func completingToken() {
        let spellings = ["x", "ST", "OP", "y", "z"].map { Array($0.utf8) }
        var output = OutputText(spell: { spellings[Int($0)] }, stopStrings: ["STOP"])
        #expect(output.append([0, 1]) == nil)
        #expect(output.append([2, 3, 4]) == 2)
        #expect(output.tokenCount == 3)
        #expect(output.takePieces(final: true).map(\.text) == ["x"])
    }

    @Test("a character split across tokens goes with the token that completes it; drafters follow")
    func splitCharacters() {
        // "€" is E2 82 AC: split 2 + 1 over tokens 1 and 2.
        let spellings: [[UInt8]] = [Array("a".utf8), [0xE2, 0x82], [0xAC, 0x62], [0xE2]]
        var output = OutputText(spell: { spellings[Int($0)] })
        _ = output.append([0, 1])
        #expect(output.takePieces().map(\.text) == ["a"])
        _ = output.append([2, 3])
        let pieces = output.takePieces { ["member \($0)"] }
        #expect(pieces.map(\.text) == ["€b"])
        #expect(pieces.map(\.token) == [2])
        #expect(pieces.map(\.drafters) == [["member 2"]])
        // A character that never completes becomes U+FFFD at the end, never before.
        #expect(output.takePieces(final: true).map(\.text) == ["\u{FFFD}"])
    }
}
