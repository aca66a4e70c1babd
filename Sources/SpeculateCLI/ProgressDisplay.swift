import Foundation
import SpeculateCatalog
import Synchronization

/// Renders pull progress on standard error: a redrawn bar on a terminal, sparse lines otherwise.
final class ProgressDisplay: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private let state = Mutex<(lastDraw: Double, lastPercent: Int)>((0, -1))

    func handle(_ event: PullEvent) {
        switch event {
        case .downloading(let package, let index, let count):
            line("downloading [\(index)/\(count)] \(package)")
        case .assembling(let done, let total):
            let percent = Int(done * 100 / max(total, 1))
            let now = Date().timeIntervalSince1970
            let shouldDraw = state.withLock { s -> Bool in
                let draw = isTerminal ? (now - s.lastDraw > 0.1 || done == total) : (percent / 25 != s.lastPercent / 25)
                if draw { s = (now, percent) }
                return draw
            }
            guard shouldDraw else { return }
            let width = 30
            let filled = width * percent / 100
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let text = "assembling [\(bar)] \(percent)% \(Self.megabytes(done)) / \(Self.megabytes(total))"
            if isTerminal {
                FileHandle.standardError.write(Data(("\r\u{1B}[2K" + text + (done == total ? "\n" : "")).utf8))
            } else {
                line(text)
            }
        case .finished(let path):
            line("verified (size and sha256) -> \(path)")
        case .alreadyPresent(let path):
            line("already present: \(path)")
        }
    }

    private func line(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }
}
