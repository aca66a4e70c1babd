import Foundation
import SpeculateTestSupport

/// Object files of the kernel check program, compiled once per compiler, flags and source in a
/// test process and shared by the variants that build them the same way.
///
/// The check is built in up to ten variants (native, SIMDe, sanitized, each deliberate mutant,
/// AArch64); a variant differs from another only in the files that read its defines, so every
/// other object is compiled once. Files are compiled concurrently (one per core).
final class ObjectCache: @unchecked Sendable {
    static let shared = ObjectCache()

    /// One object: compiled by the first caller, waited for by the others.
    private final class Entry: @unchecked Sendable {
        let lock = NSLock()
        /// Where the object goes, chosen once when the entry is made (so no two commands share a path).
        let path: String
        var result: Result<String, any Error>?
        init(path: String) { self.path = path }
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var macrosBySource: [String: Set<String>] = [:]
    private let folder: URL

    private init() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "speculate-kernel-objects-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// Compiles each of `sources` with `flags`, and with `defines` if the file reads one of them; returns the objects in order.
    func compile(_ sources: [String], compiler: [String], flags: [String], defines: [String]) throws -> [String] {
        let results = LockedArray<Result<String, any Error>>(count: sources.count)
        DispatchQueue.concurrentPerform(iterations: sources.count) { index in
            let source = sources[index]
            // A variant's defines go together (SIMDe's own is read inside its headers, past what
            // is scanned here) to every file that reads any of them.
            let names = defines.map { String($0.dropFirst(2).prefix { $0 != "=" }) }
            let includeFolders = zip(flags, flags.dropFirst()).filter { $0.0 == "-I" }.map(\.1)
            let words: Set<String>
            do { words = try macros(readBy: source, includeFolders: includeFolders) } catch {
                results[index] = .failure(error)
                return
            }
            let reads = !words.isDisjoint(with: names)
            let arguments = Array(compiler.dropFirst()) + flags + (reads ? defines : []) + ["-c", source]
            results[index] = Result { try object(for: compiler[0], arguments) }
        }
        return try results.values.map { try $0!.get() }
    }

    /// The object of one compiler command, compiled on first use.
    private func object(for executable: String, _ arguments: [String]) throws -> String {
        let key = ([executable] + arguments).joined(separator: "\u{1F}")
        lock.lock()
        let entry: Entry
        if let known = entries[key] {
            entry = known
        } else {
            let name = "\(entries.count)-\(URL(fileURLWithPath: arguments.last!).lastPathComponent).o"
            entry = Entry(path: folder.appendingPathComponent(name).path)
            entries[key] = entry
        }
        lock.unlock()
        entry.lock.lock()
        defer { entry.lock.unlock() }
        if let result = entry.result { return try result.get() }
        let result = Result { () throws -> String in
            _ = try TestSupport.runProcess(executable, arguments + ["-o", entry.path])
            return entry.path
        }
        entry.result = result
        return try result.get()
    }

    /// The words of `source` and of the headers it includes with quotes (transitively, looked up
    /// beside the includer, then in `includeFolders`) that look like macro names: a define
    /// matters to a file only if the file can read it. A quoted include that is not found is an
    /// error, so that no define silently misses a file.
    private func macros(readBy source: String, includeFolders: [String]) throws -> Set<String> {
        lock.lock()
        if let known = macrosBySource[source] {
            lock.unlock()
            return known
        }
        lock.unlock()
        var words = Set<String>()
        var pending = [source]
        var seen = Set<String>()
        while let file = pending.popLast() {
            guard seen.insert(file).inserted else { continue }
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let directory = URL(fileURLWithPath: file).deletingLastPathComponent().path
            for line in text.split(separator: "\n") {
                if let range = line.range(of: #"#include\s+"([^"]+)""#, options: .regularExpression) {
                    let name = String(line[range].split(separator: "\"")[1])
                    let candidates = ([directory] + includeFolders).map { $0 + "/" + name }
                    guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                        throw HarnessError(
                            "\(file) includes \"\(name)\", found in none of \(([directory] + includeFolders))")
                    }
                    pending.append(found)
                }
                for word in line.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }) {
                    words.insert(String(word))
                }
            }
        }
        lock.lock()
        macrosBySource[source] = words
        lock.unlock()
        return words
    }
}

/// A fixed-size array written at distinct indices from several threads.
private final class LockedArray<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    subscript(index: Int) -> Element? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return storage[index]
        }
        set {
            lock.lock()
            storage[index] = newValue
            lock.unlock()
        }
    }
    var values: [Element?] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
