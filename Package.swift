// swift-tools-version: 6.2
// Speculate: plugin-based multi-draft speculative decoding for GGUF models on the CPU.
//
// Module map (one concern each; arrows and details in Sources/Speculate/Speculate.docc/Architecture.md):
// - SpeculateFormat:     GGUF reader, dequantization, byte-level BPE tokenizer, chat formatting.
// - SpeculateCore:       the protocols (DraftProposer, TreeMerger, Verifier, ModelSession, LogitProcessor),
//                        the decoder, the output text; knows no model and no proposer.
// - SpeculateRuntime:    the GGUF CPU transformer over the C kernels (CSpeculateKernels).
// - SpeculateProposers:  n-gram lookup, draft models, cross-tokenizer drafts, `auto`.
// - SpeculatePlugins:    C-ABI proposer plugins (Plugins/ABI), run in `speculate-plugin-host` (Plugins/Host)
//                        or in process; C functions as proposers through libffi (Plugins/FFI).
// - SpeculateCatalog:    the known-model catalog, the model cache and `models pull` (PyPI wheels,
//                        verified by SHA-256 through the system's libcrypto).
// - SpeculateStrategies: the `--proposer` registry, plugin search, the verification cost cache,
//                        the shipped token rankings.
// - SpeculateEngine:     the facade: load a target, build a strategy, generate as a stream.
// - Speculate:           the umbrella; re-exports the library modules, holds nothing.
// - SpeculateGrammar:   JSON grammars (JSON Schema subset) as logit masks inside verification.
// - SpeculateAPI:        the OpenAI request schema (no HTTP; fuzzed without building the server).
// - SpeculateServer:     `speculate serve` (Hummingbird 2, swift-nio, swift-log,
//                        swift-metrics + swift-prometheus).
// - SpeculateCLI:        the `speculate` executable.
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// `SPECULATE_PACKAGE_SUBSET=threads` leaves out the server, the CLI, the examples and the
/// packages only they need (SwiftNIO, Hummingbird, ...): what .ci/sanitizers builds under
/// ThreadSanitizer to check the decoder, `auto` and plugins, in a fraction of the full build's time.
let threadsSubset = ["threads", "tsan"].contains(Context.environment["SPECULATE_PACKAGE_SUBSET"] ?? "")
/// `SPECULATE_PACKAGE_SUBSET=tsan` (ThreadSanitizer in .ci/run) also leaves out the modules and
/// suites it does not run (the facade, the request schema, the format, runtime, engine, catalog
/// and grammar suites): every minute of its sanitized build counts against CI's budget.
let tsanSubset = Context.environment["SPECULATE_PACKAGE_SUBSET"] == "tsan"
let outsideTSanSubset: Set<String> = [
    "SpeculateEngine", "Speculate", "SpeculateAPI", "SpeculateFormatTests", "SpeculateRuntimeTests",
    "SpeculateEngineTests", "SpeculateCatalogTests", "SpeculateGrammarTests",
]
/// Targets and products the subset leaves out (with `applicationPackages`).
let outsideThreadsSubset: Set<String> = [
    "SpeculateServer", "SpeculateCLI", "SpeculateServerTests", "SpeculateCLITests", "KernelBench",
    "ComposeDecoder", "CustomProposer", "SwapMerger", "StreamStatistics",
    "speculate", "speculate-kernel-bench", "compose-decoder", "custom-proposer", "swap-merger", "stream-statistics",
]

/// Packages the library modules need.
let libraryPackages: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
]
/// Packages only the CLI, the server and the documentation need.
let applicationPackages: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    // The server (`speculate serve`).
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    // `swift package generate-documentation` for the DocC catalog in Docs/Speculate.docc.
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
]

let package = Package(
    name: "Speculate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SpeculateFormat", targets: ["SpeculateFormat"]),
        .library(name: "SpeculateCore", targets: ["SpeculateCore"]),
        .library(name: "SpeculateRuntime", targets: ["SpeculateRuntime"]),
        .library(name: "SpeculateProposers", targets: ["SpeculateProposers"]),
        .library(name: "SpeculateCatalog", targets: ["SpeculateCatalog"]),
        .library(name: "SpeculatePlugins", targets: ["SpeculatePlugins"]),
        .library(name: "SpeculateStrategies", targets: ["SpeculateStrategies"]),
        .library(name: "SpeculateEngine", targets: ["SpeculateEngine"]),
        .library(name: "Speculate", targets: ["Speculate"]),
        .library(name: "SpeculateGrammar", targets: ["SpeculateGrammar"]),
        .library(name: "SpeculateAPI", targets: ["SpeculateAPI"]),
        .library(name: "SpeculateServer", targets: ["SpeculateServer"]),
        // Example proposer plugins, loadable with `--proposer plugin:PATH`.
        // Examples: small programs that compose the library (Examples/).
        .executable(name: "compose-decoder", targets: ["ComposeDecoder"]),
        .executable(name: "custom-proposer", targets: ["CustomProposer"]),
        .executable(name: "swap-merger", targets: ["SwapMerger"]),
        .executable(name: "stream-statistics", targets: ["StreamStatistics"]),
        .library(name: "SpeculateLineEcho", type: .dynamic, targets: ["LineEchoPlugin"]),
        .library(name: "SpeculateSuffixMatch", type: .dynamic, targets: ["SuffixMatchPlugin"]),
        .executable(name: "speculate", targets: ["SpeculateCLI"]),
        // The process `plugin:` and `ffi:` proposers run in (Plugins/Host), found beside `speculate`.
        .executable(name: "speculate-plugin-host", targets: ["SpeculatePluginHost"]),
        // The matrix kernels alone on model-shaped synthetic weights (Benchmarks/KernelBench).
        .executable(name: "speculate-kernel-bench", targets: ["KernelBench"]),
    ],
    dependencies: libraryPackages + (threadsSubset ? [] : applicationPackages),
    targets: [
        .target(
            name: "SpeculateFormat",
            dependencies: [.product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: strictSwift
        ),
        .target(
            name: "CSpeculateKernels",
            cSettings: [.headerSearchPath(".")],
            // libm (lrintf, expf) and threads; Swift executables link them anyway, C ones need them named.
            linkerSettings: [
                .linkedLibrary("m", .when(platforms: [.linux])), .linkedLibrary("pthread", .when(platforms: [.linux])),
            ]
        ),
        // The plugin C ABI (Plugins/ABI/include/speculate_plugin.h), shared by the host and plugins.
        .target(
            name: "CSpeculatePluginABI",
            path: "Plugins/ABI"
        ),
        // The channel between Speculate and its plugin host process (internal to Speculate).
        .target(
            name: "CSpeculatePluginChannel",
            path: "Plugins/Channel"
        ),
        // Any C function as a proposer, called through libffi (`ffi:`), as a plugin table.
        .target(
            name: "CSpeculateFFIProposer",
            dependencies: ["CSpeculatePluginABI"],
            path: "Plugins/FFI",
            linkerSettings: [.linkedLibrary("ffi"), .linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        // `speculate-plugin-host`: loads one plugin (or the libffi adapter) in a process of its own.
        .executableTarget(
            name: "SpeculatePluginHost",
            dependencies: ["CSpeculatePluginABI", "CSpeculatePluginChannel", "CSpeculateFFIProposer"],
            path: "Plugins/Host",
            linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]
        ),
        .target(
            name: "SpeculatePlugins",
            dependencies: ["SpeculateCore", "CSpeculatePluginABI", "CSpeculatePluginChannel", "CSpeculateFFIProposer"],
            swiftSettings: strictSwift
        ),
        .target(
            name: "LineEchoPlugin",
            dependencies: ["CSpeculatePluginABI"],
            path: "Plugins/LineEcho",
            publicHeadersPath: "."
        ),
        .target(
            name: "SuffixMatchPlugin",
            dependencies: ["CSpeculatePluginABI"],
            path: "Plugins/SuffixMatch",
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateCore",
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateRuntime",
            dependencies: ["SpeculateFormat", "SpeculateCore", "CSpeculateKernels"],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateProposers",
            dependencies: ["SpeculateCore", "SpeculateRuntime", "SpeculateFormat"],
            swiftSettings: strictSwift
        ),
        // The system's libcrypto (Debian's libssl-dev) for the SHA-256 of downloaded models.
        .systemLibrary(
            name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        .target(
            name: "SpeculateCatalog",
            dependencies: [
                "CLibCrypto",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: strictSwift
        ),
        // What a strategy can name and what it needs: the `--proposer` registry, plugin search,
        // the verification cost cache and the shipped token rankings (a resource).
        .target(
            name: "SpeculateStrategies",
            dependencies: [
                "SpeculateCore", "SpeculateFormat", "SpeculateRuntime", "SpeculateProposers", "SpeculatePlugins",
                "SpeculateCatalog",
            ],
            resources: [.copy("Resources/qwen2.5-token-ranking.bin")],
            swiftSettings: strictSwift
        ),
        // The library facade: load a target, build a strategy on it, generate as a stream.
        .target(
            name: "SpeculateEngine",
            dependencies: [
                "SpeculateCore", "SpeculateFormat", "SpeculateRuntime", "SpeculateProposers", "SpeculateCatalog",
                "SpeculateStrategies", "SpeculateGrammar",
            ],
            swiftSettings: strictSwift
        ),
        // The umbrella: re-exports every library module, nothing of its own.
        .target(
            name: "Speculate",
            dependencies: [
                "SpeculateCore", "SpeculateFormat", "SpeculateRuntime", "SpeculateProposers", "SpeculatePlugins",
                "SpeculateCatalog",
                "SpeculateStrategies", "SpeculateEngine", "SpeculateGrammar",
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateGrammar",
            dependencies: ["SpeculateCore"],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateAPI",
            dependencies: ["SpeculateCore", "SpeculateFormat", "SpeculateGrammar"],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SpeculateServer",
            dependencies: [
                "SpeculateAPI",
                "SpeculateCore",
                "SpeculateEngine",
                "SpeculateFormat",
                "SpeculateGrammar",
                "SpeculatePlugins",
                "SpeculateRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "SpeculateCLI",
            dependencies: [
                "Speculate",
                "SpeculateServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                "SpeculateFormat",
                "SpeculateCatalog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(name: "KernelBench", dependencies: ["CSpeculateKernels"], path: "Benchmarks/KernelBench"),
        .executableTarget(
            name: "ComposeDecoder", dependencies: ["Speculate"], path: "Examples/ComposeDecoder",
            swiftSettings: strictSwift),
        .executableTarget(
            name: "CustomProposer", dependencies: ["Speculate"], path: "Examples/CustomProposer",
            swiftSettings: strictSwift),
        .executableTarget(
            name: "SwapMerger", dependencies: ["Speculate"], path: "Examples/SwapMerger", swiftSettings: strictSwift),
        .executableTarget(
            name: "StreamStatistics", dependencies: ["Speculate"], path: "Examples/StreamStatistics",
            swiftSettings: strictSwift),
        .target(
            name: "SpeculateTestSupport",
            dependencies: ["SpeculateCatalog", "SpeculateCore", "SpeculateFormat", "SpeculateRuntime"],
            path: "Tests/SpeculateTestSupport",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateFormatTests",
            dependencies: ["SpeculateFormat", "SpeculateCore", "SpeculateGrammar", "SpeculateTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateCoreTests",
            dependencies: ["SpeculateCore", "SpeculateProposers", "SpeculateGrammar", "SpeculateTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateProposersTests",
            dependencies: [
                "SpeculateProposers", "SpeculateCore", "SpeculateRuntime", "SpeculateFormat", "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateRuntimeTests",
            dependencies: [
                "SpeculateRuntime", "SpeculateCore", "SpeculateFormat", "CSpeculateKernels", "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateServerTests",
            dependencies: [
                "SpeculateServer", "SpeculateCore", "SpeculateGrammar", "SpeculateEngine", "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateCLITests",
            dependencies: ["SpeculateTestSupport", "SpeculateCLI"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculatePluginsTests",
            dependencies: [
                "SpeculatePlugins", "SpeculateCore", "SpeculateFormat", "SpeculateProposers", "SpeculateRuntime",
                "SpeculateStrategies",
                "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateStrategiesTests",
            dependencies: [
                "SpeculateStrategies", "SpeculateCore", "SpeculateFormat", "SpeculateRuntime", "SpeculateProposers",
                "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateEngineTests",
            dependencies: [
                "SpeculateEngine", "SpeculateCore", "SpeculateFormat", "SpeculateStrategies", "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateGrammarTests",
            dependencies: [
                "SpeculateGrammar", "SpeculateCore", "SpeculateFormat", "SpeculateEngine", "SpeculateTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SpeculateCatalogTests",
            dependencies: ["SpeculateCatalog", "SpeculateTestSupport"],
            swiftSettings: strictSwift
        ),
    ]
)

if threadsSubset {
    let outside = outsideThreadsSubset.union(tsanSubset ? outsideTSanSubset : [])
    package.targets.removeAll { outside.contains($0.name) }
    package.products.removeAll { outside.contains($0.name) }
}
