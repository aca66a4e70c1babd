import Metrics
import SpeculateCore
import SpeculatePlugins

/// The server's figures, through swift-metrics (the `serve` command bootstraps a Prometheus
/// registry and `/metrics` prints it): requests by endpoint and status, tokens, queue depth,
/// and the last run's speed and tokens per target forward.
public struct ServerMetrics: Sendable {
    private let promptTokens = Counter(label: "speculate_prompt_tokens_total")
    private let cachedPromptTokens = Counter(label: "speculate_prompt_cache_tokens_total")
    private let generatedTokens = Counter(label: "speculate_generated_tokens_total")
    private let targetForwards = Counter(label: "speculate_target_forwards_total")
    private let decodeSeconds = Metrics.Timer(label: "speculate_decode_seconds")
    private let lastTokensPerSecond = Gauge(label: "speculate_last_tokens_per_second")
    private let lastTokensPerForward = Gauge(label: "speculate_last_tokens_per_forward")
    private let decoding = Gauge(label: "speculate_decoding")
    private let waiting = Gauge(label: "speculate_queue_waiting")
    private let pluginFailures = Gauge(label: "speculate_plugin_host_failures")
    private let pluginRestarts = Gauge(label: "speculate_plugin_host_restarts")
    private let pluginDrops = Gauge(label: "speculate_plugin_drops")
    private let slots = Gauge(label: "speculate_slots")
    private let sharedForwards = Gauge(label: "speculate_target_batched_forwards")
    private let sharedTokens = Gauge(label: "speculate_target_batched_tokens")
    private let sharedSeconds = Gauge(label: "speculate_target_batched_seconds")

    public init() {}

    /// Counts one answered request.
    public func request(endpoint: String, status: Int) {
        Counter(label: "speculate_requests_total", dimensions: [("endpoint", endpoint), ("status", String(status))])
            .increment()
    }

    /// Plugin hosts stopped for misbehaving, restarted, and plugins dropped (process totals,
    /// counted in SpeculatePlugins; read when `/metrics` is asked).
    func recordPluginHosts() {
        pluginFailures.record(PluginHostEvents.failures)
        pluginRestarts.record(PluginHostEvents.restarts)
        pluginDrops.record(PluginHostEvents.drops)
    }

    /// The shared target forwards so far (process totals, read when `/metrics` is asked): how
    /// many, the tokens they carried (tokens per forward = the ratio), their seconds, and how
    /// many carried each number of requests (`speculate_target_forwards_by_requests{requests=}`,
    /// the batch-size histogram an autoscaler reads with the slots in use and the queue).
    func recordBatching(
        _ figures: (forwards: Int, tokens: Int, sessionsPerForward: [Int: Int], seconds: Double, promptSeconds: Double),
        slots count: Int
    ) {
        slots.record(count)
        sharedForwards.record(figures.forwards)
        sharedTokens.record(figures.tokens)
        sharedSeconds.record(figures.seconds)
        for (requests, forwards) in figures.sessionsPerForward {
            Gauge(label: "speculate_target_forwards_by_requests", dimensions: [("requests", String(requests))])
                .record(forwards)
        }
    }

    /// Requests decoding now (the slots in use).
    func decoding(_ count: Int) { decoding.record(count) }

    func queueDepth(_ depth: (running: Int, waiting: Int)) { waiting.record(depth.waiting) }

    func record(_ statistics: RunStatistics, promptTokens prompt: Int) {
        promptTokens.increment(by: prompt)
        cachedPromptTokens.increment(by: statistics.cachedPromptTokens)
        generatedTokens.increment(by: statistics.generatedTokens)
        targetForwards.increment(by: statistics.targetForwards)
        decodeSeconds.recordNanoseconds(Int64(statistics.decodeSeconds * 1e9))
        lastTokensPerSecond.record(statistics.tokensPerSecond)
        lastTokensPerForward.record(statistics.meanAcceptedPerForward)
    }
}
