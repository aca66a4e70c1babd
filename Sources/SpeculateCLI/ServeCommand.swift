import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import Speculate
import SpeculateServer

/// `speculate serve`: the OpenAI-compatible HTTP server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the OpenAI API (completions and chat, streamed or not) with speculative decoding.",
        discussion: """
            Loads the models once and answers POST /v1/completions, POST /v1/chat/completions, \
            GET /v1/models, GET /health and GET /metrics (Prometheus), with a live page at /. \
            Up to --parallel requests decode at once, their token trees verified in shared target \
            forwards (continuous batching); --queue more may wait, in arrival order; more get 503. \
            A request may choose its own strategy with a "speculate" object, e.g. \
            {"proposers": ["draft:qwen2.5-coder-0.5b-instruct", "ngram"], "tree": "2,2,1"}; \
            catalog models must be pulled already, and paths and plugins only work when the server \
            was started with them (--proposer). Examples:
              speculate serve --proposer auto --proposer draft:qwen2.5-coder-0.5b-instruct
              curl http://127.0.0.1:8080/v1/completions -H 'Content-Type: application/json' \\
                -d '{"prompt": "def fib(n):", "max_tokens": 64, "temperature": 0}'
            """)

    @OptionGroup var strategy: StrategyOptions

    @Option(help: "The address to listen on (loopback by default; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"

    @Option(help: "The port (0 picks a free one; the chosen port is printed).")
    var port = 8080

    @Option(
        help: ArgumentHelp(
            "Require 'Authorization: Bearer KEY' on /v1 routes and /metrics (also read from SPECULATE_API_KEY).",
            valueName: "key"))
    var apiKey: String?

    @Option(help: "Requests that may wait while the slots decode; more are refused with 503 and Retry-After.")
    var queue = 16

    @Option(
        help: ArgumentHelp(
            "Requests decoded at once (slots, each with a KV cache of --context tokens and proposers of its own); their trees share each target forward and their drafts each draft forward (4 suits a 2-core host: Docs/Serving.md).",
            valueName: "N"))
    var parallel = 1

    @Flag(
        inversion: .prefixedNo,
        help:
            "Load the target's paired draft (the catalog's pairing, when downloaded) at start, so that the first request using `auto` or the draft does not wait for it (default: when it takes at most a quarter of the memory)."
    )
    var preload: Bool?

    @Option(help: "Largest request body in bytes.")
    var maxBodyBytes = 1 << 20

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port \(port) is not a port number (0-65535)") }
        guard queue >= 0 else { throw ValidationError("--queue must be 0 or more") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be 1...64 (got \(parallel))") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        _ = try strategy.strategy()
    }

    func run() async throws {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: "speculate.serve")
        logger.logLevel =
            ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info

        let model = try await strategy.loadTarget()
        let modelName = (strategy.target as NSString).lastPathComponent.replacingOccurrences(of: ".gguf", with: "")
        let startup = try strategy.strategy()
        let defaults = StrategyRequest(
            proposers: strategy.proposers, tree: strategy.tree == nil ? nil : startup.budget.branching,
            maxNodes: strategy.maxNodes, maxDepth: strategy.draftLength, verify: startup.verification)
        let policy = ProposerPolicy(registry: model.registry, store: model.store, startupSpecs: strategy.proposers)
        // The server's own strategy is built before it listens (a bad one fails here, not on a
        // request), pulling the models it names; requests never download.
        _ = try await model.commandLineProposers(startup)
        let engine = try ServerEngine(
            modelName: modelName, model: model, draft: startup.draft, queueCapacity: queue,
            parallel: parallel,
            checkProposers: { specs throws(APIError) in try policy.check(specs) })
        if let (name, loaded) = try preloadedDraft(model, weights: startup.draft.weights) {
            engine.preload(loaded, name: name)
            logger.info("speculate serve: loaded the paired draft \(name)")
        }
        let parser = RequestParser(
            modelName: modelName, defaults: defaults, context: strategy.context,
            vocabularySize: model.model.config.vocabularySize)
        let serverOptions = ServerOptions(
            host: host, port: port, apiKey: apiKey ?? ProcessInfo.processInfo.environment["SPECULATE_API_KEY"],
            maxBodyBytes: maxBodyBytes)
        let strategyText = strategy.proposers.isEmpty ? "plain decoding" : strategy.proposers.joined(separator: " + ")
        let app = SpeculateHTTPServer.application(
            engine: engine, parser: parser, options: serverOptions, registry: registry, logger: logger
        ) { bound in
            // Unbuffered, so a parent process reading the pipe sees it at once.
            FileHandle.standardOutput.write(
                Data(
                    "speculate serve: listening on http://\(host):\(bound) (model \(modelName), \(strategyText), \(ComputeThreads.kernelName) kernels)\n"
                        .utf8))
        }
        try await app.runService()
    }

    /// The target's paired draft, loaded now when `--preload` says so or, by default, when it
    /// is downloaded and its file takes at most a quarter of the memory.
    private func preloadedDraft(_ model: SpeculativeModel, weights: WeightPrecision) throws -> (
        String, TransformerModel
    )? {
        guard preload != false, let name = model.pairedDraft(pullMissing: false) else { return nil }
        let url = try model.store.resolve(name)
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        guard preload == true || size <= Int(ProcessInfo.processInfo.physicalMemory / 4) else { return nil }
        return (name, try LoadedModels.model(path: url.path, precision: weights))
    }
}

/// What proposers a request may name. Requests come from other programs, so they may not make
/// the server open arbitrary paths, load shared libraries or download models: catalog models
/// already in the cache are fine; paths and plugins only when the server was started with
/// exactly that spec.
struct ProposerPolicy: Sendable {
    let registry: ProposerRegistry
    let store: ModelStore
    let startupSpecs: Set<String>

    init(registry: ProposerRegistry, store: ModelStore, startupSpecs: [String]) {
        self.registry = registry
        self.store = store
        self.startupSpecs = Set(registry.split(startupSpecs))
    }

    func check(_ specs: [String]) throws(APIError) {
        for spec in registry.split(specs) where !startupSpecs.contains(spec) {
            let (kind, argument) = ProposerRegistry.parse(spec)
            switch kind {
            case "none", "auto", "ngram":
                continue
            case "draft", "retok":
                guard let model = ModelCatalog.model(named: argument) else {
                    throw .invalid(
                        "speculate.proposers: '\(spec)' names a file; requests may use catalog models (speculate models list) or the server's own --proposer specs",
                        param: "speculate.proposers", code: "proposer_not_allowed")
                }
                guard store.isPresent(model) else {
                    throw .invalid(
                        "speculate.proposers: \(model.name) is not downloaded and the server does not download on request; run `speculate models pull \(model.name)`",
                        param: "speculate.proposers", code: "model_not_downloaded")
                }
            default:
                guard registry.factory(named: kind) != nil else {
                    throw .invalid(
                        "speculate.proposers: unknown proposer '\(spec)'; known: none, auto, \(registry.factories.map(\.usage).joined(separator: ", "))",
                        param: "speculate.proposers", code: "unknown_proposer")
                }
                throw .invalid(
                    "speculate.proposers: '\(spec)' is not allowed from requests; start the server with --proposer \(spec) to offer it",
                    param: "speculate.proposers", code: "proposer_not_allowed")
            }
        }
    }
}
