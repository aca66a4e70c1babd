import Foundation

/// A token ranking shipped as a resource (`Resources/*.bin`, written by
/// `Benchmarks/make_ranking.py`): the ids a corpus uses, most frequent first, for one vocabulary.
///
/// Layout, little-endian: the magic `SPRK`, a version (1), the vocabulary's fingerprint (64 bits,
/// ``TokenFrequencyRanking/fingerprint(_:)``), the vocabulary size, the number of distinct ids the
/// corpus used and the number of ids stored (32 bits each), then each id in 3 bytes.
struct BuiltInRanking: Sendable {
    let fingerprint: UInt64
    let vocabulary: Int
    let seen: Int
    let ids: [Int]

    /// The ranking of the Qwen2.5 vocabulary (the catalog's target and draft), or nil when the
    /// resource is missing or malformed.
    static let qwen25: BuiltInRanking? = Bundle.module.url(forResource: "qwen2.5-token-ranking", withExtension: "bin")
        .flatMap { try? Data(contentsOf: $0) }
        .flatMap(BuiltInRanking.init(data:))

    /// Reads the layout above; nil when the data is not a well-formed ranking.
    init?(data: Data) {
        let bytes = [UInt8](data)
        let header = 28
        guard bytes.count >= header, bytes.prefix(4).elementsEqual(Array("SPRK".utf8)) else { return nil }
        func value(_ offset: Int, _ width: Int) -> UInt64 {
            (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
        }
        guard value(4, 4) == 1 else { return nil }
        fingerprint = value(8, 8)
        vocabulary = Int(value(16, 4))
        seen = Int(value(20, 4))
        let count = Int(value(24, 4))
        guard bytes.count == header + 3 * count, vocabulary > 0 else { return nil }
        ids = (0..<count).map { Int(value(header + 3 * $0, 3)) }
        guard ids.allSatisfy({ $0 < vocabulary }) else { return nil }
    }
}
