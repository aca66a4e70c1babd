import Foundation
import SpeculateCatalog
import SpeculateFormat

/// Token ids ranked by how often a corpus uses them, most frequent first (FR-Spec, arXiv
/// 2502.14856): a draft that scores only the top N of them keeps most of its acceptance while
/// reading a fraction of its output head. Ranking never affects output (the target verifies).
///
/// A ranking is counted once per tokenizer and corpus and kept in the cache directory
/// (`rankings/NAME-VOCABULARY-KEY.bin`, the key a hash of the corpus files' paths, sizes and
/// modification dates), so later runs start at once.
public struct TokenFrequencyRanking: Sendable, Equatable {
    /// Every token id of the vocabulary: those the corpus uses by falling count, then the rest
    /// in id order (byte-level BPE ids roughly follow frequency already).
    public let tokens: [TokenID]
    /// Tokens the corpus used at least once.
    public let seen: Int

    /// Suffixes of the files read from a corpus directory (text a draft will meet: code and prose).
    public static let textSuffixes: Set<String> = [
        "py", "txt", "md", "rst", "c", "h", "swift", "js", "ts", "java", "go", "rs",
        "json", "jsonl", "html", "css", "sh", "toml", "yaml", "yml",
    ]

    /// Counts `corpus` (a file, or a directory read recursively in path order) with `tokenizer`,
    /// reading at most `byteBudget` bytes.
    public static func count(corpus: URL, tokenizer: Tokenizer, byteBudget: Int = 8 << 20) throws
        -> TokenFrequencyRanking
    {
        let files = try corpusFiles(corpus)
        var counts = [Int](repeating: 0, count: tokenizer.vocabularySize)
        var read = 0
        for file in files where read < byteBudget {
            guard let data = try? Data(contentsOf: file), !data.isEmpty else { continue }
            let slice = data.prefix(byteBudget - read)
            read += slice.count
            for token in tokenizer.encode(String(decoding: slice, as: UTF8.self)) where Int(token) < counts.count {
                counts[Int(token)] += 1
            }
        }
        guard read > 0 else { throw TokenRankingError.emptyCorpus(corpus.path) }
        let order = counts.indices.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
        return TokenFrequencyRanking(tokens: order.map { TokenID($0) }, seen: counts.filter { $0 > 0 }.count)
    }

    /// The ranking of `corpus` for `tokenizer` from `directory`, counting and storing it if absent.
    public static func cached(
        corpus: URL, tokenizer: Tokenizer, name: String,
        directory: URL = ModelStore().root.appendingPathComponent("rankings")
    ) throws -> TokenFrequencyRanking {
        let files = try corpusFiles(corpus)
        var key = FNV1a()
        for file in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: file.path)
            key.add(
                "\(file.path)|\(attributes?[.size] ?? 0)|\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)\n"
            )
        }
        let safeName = String(
            URL(fileURLWithPath: name).lastPathComponent.map {
                $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_"
            })
        let file = directory.appendingPathComponent(
            "\(safeName)-\(tokenizer.vocabularySize)-\(String(key.value, radix: 16)).bin")
        if let stored = try? Data(contentsOf: file), let ranking = decode(stored, vocabulary: tokenizer.vocabularySize)
        {
            return ranking
        }
        let ranking = try count(corpus: corpus, tokenizer: tokenizer)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? ranking.encoded().write(to: file, options: .atomic)
        return ranking
    }

    /// FNV-1a over every token's text followed by a newline: identifies a vocabulary, so that a
    /// built-in ranking is only ever used with the tokenizer it was counted with.
    public static func fingerprint(_ tokenizer: Tokenizer) -> UInt64 {
        var hash = FNV1a()
        for token in tokenizer.tokens {
            hash.add(token)
            hash.add("\n")
        }
        return hash.value
    }

    /// The ranking shipped with Speculate for `tokenizer`'s vocabulary, or nil for other
    /// vocabularies. Today one: the Qwen2.5 vocabulary (target and draft of the catalog).
    ///
    /// Its order alternates two rankings, skipping ids already placed: the ids by their counts
    /// in permissively licensed text (the Python standard library and documentation, counted by
    /// `Benchmarks/make_ranking.py`), and the ids in vocabulary order (byte-level BPE ids follow
    /// merge order, roughly frequency in the tokenizer's own training text). The corpus alone
    /// is code and technical prose: at 32768 rows it covered 98.4% of the target's tokens on
    /// code but 84.7% on everyday prose (92.3% for the first ids); alternating gives 98.1% and
    /// 90.3% (measured on outputs of prompts outside the benchmark sets).
    public static func builtIn(for tokenizer: Tokenizer) -> TokenFrequencyRanking? {
        guard let shipped = BuiltInRanking.qwen25, tokenizer.vocabularySize == shipped.vocabulary,
            fingerprint(tokenizer) == shipped.fingerprint
        else { return nil }
        return decodedBuiltIn
    }

    /// The shipped ids, interleaved with id order once.
    private static let decodedBuiltIn: TokenFrequencyRanking? = BuiltInRanking.qwen25.map { shipped in
        let vocabulary = shipped.vocabulary
        let counted = shipped.ids
        var placed = [Bool](repeating: false, count: vocabulary)
        var tokens: [TokenID] = []
        tokens.reserveCapacity(vocabulary)
        var nextCounted = 0
        var nextID = 0
        while tokens.count < vocabulary {
            while nextCounted < counted.count, placed[counted[nextCounted]] { nextCounted += 1 }
            if nextCounted < counted.count {
                placed[counted[nextCounted]] = true
                tokens.append(TokenID(counted[nextCounted]))
            }
            while nextID < vocabulary, placed[nextID] { nextID += 1 }
            if nextID < vocabulary {
                placed[nextID] = true
                tokens.append(TokenID(nextID))
            }
        }
        return TokenFrequencyRanking(tokens: tokens, seen: shipped.seen)
    }

    /// The files of a corpus: the file itself, or a directory's text files in path order.
    static func corpusFiles(_ corpus: URL) throws -> [URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: corpus.path, isDirectory: &isDirectory) else {
            throw TokenRankingError.missingCorpus(corpus.path)
        }
        guard isDirectory.boolValue else { return [corpus] }
        let enumerator = FileManager.default.enumerator(at: corpus, includingPropertiesForKeys: [.isRegularFileKey])
        var files: [URL] = []
        while let url = enumerator?.nextObject() as? URL {
            if textSuffixes.contains(url.pathExtension.lowercased()),
                (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true
            {
                files.append(url)
            }
        }
        guard !files.isEmpty else { throw TokenRankingError.emptyCorpus(corpus.path) }
        return files.sorted { $0.path < $1.path }
    }

    /// Little-endian: seen count, then every token id.
    func encoded() -> Data {
        var data = Data(capacity: 4 * (tokens.count + 1))
        for value in [Int32(seen)] + tokens.map({ Int32($0) }) {
            withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    /// A stored ranking, or nil when it is not a permutation of the vocabulary.
    static func decode(_ data: Data, vocabulary: Int) -> TokenFrequencyRanking? {
        guard data.count == 4 * (vocabulary + 1) else { return nil }
        let values = (0...vocabulary).map { i in
            data.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        }
        let tokens = values.dropFirst().map { TokenID($0) }
        var present = [Bool](repeating: false, count: vocabulary)
        for token in tokens {
            guard token >= 0, Int(token) < vocabulary, !present[Int(token)] else { return nil }
            present[Int(token)] = true
        }
        return TokenFrequencyRanking(tokens: tokens, seen: Int(values[0]))
    }
}

/// Why a corpus could not be ranked.
public enum TokenRankingError: Error, Equatable, CustomStringConvertible {
    case missingCorpus(String)
    case emptyCorpus(String)

    public var description: String {
        switch self {
        case .missingCorpus(let path): "corpus '\(path)' does not exist"
        case .emptyCorpus(let path): "corpus '\(path)' has no text to count (files ending in .py, .txt, .md, ...)"
        }
    }
}

/// 64-bit FNV-1a, for cache keys (not for security).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01B3
        }
    }
}
