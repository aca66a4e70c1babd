// swift-tools-version: 6.2
// Coverage-guided fuzz targets (libFuzzer) for Speculate's parsers of untrusted input. A package
// of its own so that the main package's `swift build` never needs the fuzzer's flags; build and
// run with Fuzz/run.sh (it passes -sanitize=fuzzer,address and -parse-as-library).
import PackageDescription

let package = Package(
    name: "SpeculateFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Speculate", path: "..")],
    targets: [
        .executableTarget(
            name: "SpeculateFuzz",
            dependencies: [
                .product(name: "SpeculateFormat", package: "Speculate"),
                .product(name: "SpeculateCore", package: "Speculate"),
                .product(name: "SpeculateRuntime", package: "Speculate"),
                .product(name: "SpeculatePlugins", package: "Speculate"),
                .product(name: "Speculate", package: "Speculate"),
                .product(name: "SpeculateAPI", package: "Speculate"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
