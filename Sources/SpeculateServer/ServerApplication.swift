import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import SpeculateCore
import SpeculateFormat
import SpeculatePlugins
import SpeculateRuntime

/// Where and how the server listens.
public struct ServerOptions: Sendable {
    /// The address to bind (loopback unless told otherwise).
    public var host: String
    /// The port (0: the system picks one).
    public var port: Int
    /// When set, `/v1/*` and `/metrics` need `Authorization: Bearer <key>`.
    public var apiKey: String?
    /// Largest request body accepted.
    public var maxBodyBytes: Int

    /// Options with the defaults of `speculate serve`.
    public init(host: String = "127.0.0.1", port: Int = 8080, apiKey: String? = nil, maxBodyBytes: Int = 1 << 20) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
        self.maxBodyBytes = maxBodyBytes
    }
}

/// The OpenAI-compatible HTTP server: routes, streaming, authentication, errors and metrics.
public enum SpeculateHTTPServer {
    /// The Hummingbird application serving `engine`; `onRunning` receives the bound port (useful
    /// with port 0). Run it with `runService()` for graceful shutdown on SIGINT and SIGTERM.
    public static func application(
        engine: ServerEngine, parser: RequestParser, options: ServerOptions,
        registry: PrometheusCollectorRegistry?, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        let metrics = ServerMetrics()
        router.middlewares.add(OpenAIErrorMiddleware<BasicRequestContext>(metrics: metrics))
        router.middlewares.add(APIKeyMiddleware<BasicRequestContext>(key: options.apiKey))
        let routes = Routes(engine: engine, parser: parser, options: options, metrics: metrics)
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: LivePage.html)))
        }
        router.get("/health") { _, _ in await routes.health() }
        router.get("/v1/models") { _, _ in routes.models() }
        router.get("/v1/models/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard id == engine.modelName else { throw APIError.unknownModel(id, served: engine.modelName) }
            return jsonResponse(.ok, routes.modelObject)
        }
        router.get("/metrics") { _, _ in
            metrics.recordPluginHosts()
            metrics.recordBatching(engine.batcher.figures, slots: engine.parallel)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: registry?.emitToString() ?? "")))
        }
        router.post("/v1/completions") { request, _ in try await routes.generate(request, endpoint: .completions) }
        router.post("/v1/chat/completions") { request, _ in try await routes.generate(request, endpoint: .chat) }
        router.post("/infill") { request, _ in try await routes.generate(request, endpoint: .infill) }
        return Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "speculate"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? options.port) },
            logger: logger)
    }
}

/// The handlers, sharing the engine.
struct Routes: Sendable {
    let engine: ServerEngine
    let parser: RequestParser
    let options: ServerOptions
    let metrics: ServerMetrics
    let created = Int(Date().timeIntervalSince1970)

    var modelObject: [String: Any] {
        ["id": engine.modelName, "object": "model", "created": created, "owned_by": "speculate"]
    }

    func models() -> Response { jsonResponse(.ok, ["object": "list", "data": [modelObject]]) }

    /// The shared forwards so far: how many, the tokens they carried, how many carried each
    /// number of requests, their seconds and those of forwards that read prompts.
    private func batchingFigures() -> [String: Any] {
        let figures = engine.batcher.figures
        return [
            "forwards": figures.forwards, "tokens": figures.tokens, "seconds": figures.seconds,
            "prompt_seconds": figures.promptSeconds,
            "requests_per_forward": Dictionary(
                uniqueKeysWithValues: figures.sessionsPerForward.map { (String($0.key), $0.value) }),
            "draft_requests_per_forward": Dictionary(
                uniqueKeysWithValues: engine.draftBatching.sessionsPerForward.map { (String($0.key), $0.value) }),
        ]
    }

    func health() async -> Response {
        let depth = await engine.queue.depth
        return jsonResponse(
            .ok,
            [
                "status": "ok", "model": engine.modelName, "kernels": ComputeThreads.kernelName,
                "context": engine.context,
                "queue": ["running": depth.running, "waiting": depth.waiting, "capacity": engine.queue.capacity],
                "slots": engine.parallel, "loaded_models": engine.loadedModels,
                "batching": batchingFigures(),
                "plugins": [
                    "hosts_started": PluginHostEvents.started, "failures": PluginHostEvents.failures,
                    "restarts": PluginHostEvents.restarts, "dropped": PluginHostEvents.drops,
                ],
            ])
    }

    func generate(_ request: Request, endpoint: GenerationJob.Endpoint) async throws -> Response {
        let label = endpoint == .chat ? "chat" : endpoint == .infill ? "infill" : "completions"
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: options.maxBodyBytes) } catch is NIOTooManyBytesError {
            throw APIError.invalid(
                "The request body is larger than \(options.maxBodyBytes) bytes", code: "body_too_large")
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.invalid(
                "The request body is larger than \(options.maxBodyBytes) bytes", code: "body_too_large")
        }
        let data = Data(body.readableBytesView)
        let job: GenerationJob
        switch endpoint {
        case .completions: job = try parser.completion(data)
        case .infill: job = try parser.infill(data)
        case .chat:
            if let reason = engine.chatUnsupportedReason {
                throw APIError.invalid("\(engine.modelName): \(reason); use /v1/completions")
            }
            let tokenizer = engine.tokenizer
            job = try parser.chat(data) { (try? ChatFormat.text($0, tokenizer: tokenizer)) ?? "" }
        }
        let prepared = try engine.prepare(job)
        try await engine.queue.reserve()
        let stream = engine.run(prepared)
        let id =
            (endpoint == .chat ? "chatcmpl-" : endpoint == .infill ? "infill-" : "cmpl-")
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let created = Int(Date().timeIntervalSince1970)
        let response = ResponseShape(
            endpoint: endpoint, id: id, created: created, model: engine.modelName, tools: job.tools)
        guard job.stream else {
            var completions: [Completion] = []
            for try await event in stream { if case .finished(let done) = event { completions.append(done) } }
            guard completions.count == job.choices else {
                throw APIError.internalFailure("The generation ended without a result")
            }
            metrics.request(endpoint: label, status: 200)
            return jsonResponse(.ok, response.whole(completions))
        }
        metrics.request(endpoint: label, status: 200)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                var events = stream.makeAsyncIterator()
                // Per choice: whether its first chunk is still to come, and (with tools) the text
                // that starts a call, held back and sent as `tool_calls`.
                var first = Array(repeating: true, count: job.choices)
                let watchesCalls = job.tools.map { $0.choice != .none } ?? false
                var calls = Array(repeating: ToolCallStream(), count: job.choices)
                var finished: [Completion] = []
                var heldFigures = Array(repeating: [TokenLogprobEntry](), count: job.choices)
                while true {
                    let next: GenerationEvent?
                    do { next = try await events.next() } catch {
                        // Headers are sent: report the error in the stream, as OpenAI does. (A failed
                        // write, below, means the client is gone: it ends the response and, with the
                        // stream dropped, the decode.)
                        try await writer.write(
                            sse((error as? APIError ?? .internalFailure("The generation failed: \(error)")).body))
                        break
                    }
                    guard let event = next else { break }
                    switch event {
                    case .pieces(var pieces, let logprobs, let index):
                        // Figures of held-back text go with the next chunk that is sent.
                        heldFigures[index] += logprobs
                        if watchesCalls {
                            let text = calls[index].visible(pieces.map(\.text).joined())
                            guard !text.isEmpty else { continue }
                            pieces = [
                                TextPiece(
                                    text: text, token: pieces.last?.token ?? 0, drafters: pieces.last?.drafters ?? [])
                            ]
                        }
                        let figures = job.logprobs == nil ? nil : heldFigures[index]
                        heldFigures[index] = []
                        try await writer.write(
                            sse(response.chunk(pieces, first: first[index], logprobs: figures, index: index)))
                        first[index] = false
                    case .finished(let completion):
                        let index = completion.index
                        finished.append(completion)
                        let rest = calls[index].rest()
                        if watchesCalls, let chunks = response.toolCallChunks(completion, first: first[index]) {
                            for chunk in chunks { try await writer.write(sse(chunk)) }
                        } else {
                            // Text held back as a possible call that was none: it is content after all.
                            if !rest.isEmpty || !heldFigures[index].isEmpty {
                                let piece = TextPiece(text: rest, token: completion.completionTokens)
                                let figures = job.logprobs == nil ? nil : heldFigures[index]
                                try await writer.write(
                                    sse(response.chunk([piece], first: first[index], logprobs: figures, index: index)))
                                first[index] = false
                            }
                            try await writer.write(sse(response.last(completion, first: first[index])))
                        }
                        if job.includeUsage, finished.count == job.choices {
                            try await writer.write(sse(response.usageChunk(finished)))
                        }
                    }
                }
                // llama-server's own endpoints end their streams without OpenAI's [DONE].
                if endpoint != .infill { try await writer.write(ByteBuffer(string: "data: [DONE]\n\n")) }
                try await writer.finish(nil)
            })
    }
}

/// One server-sent event carrying `object` as JSON.
func sse(_ object: [String: Any]) -> ByteBuffer {
    ByteBuffer(string: "data: " + jsonText(object) + "\n\n")
}

func jsonText(_ object: Any) -> String {
    let data =
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

func jsonResponse(_ status: HTTPResponse.Status, _ object: Any, headers extra: HTTPFields = [:]) -> Response {
    var headers = extra
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: jsonText(object))))
}

func errorResponse(_ error: APIError) -> Response {
    var headers = HTTPFields()
    if let retry = error.retryAfter { headers[.retryAfter] = String(retry) }
    return jsonResponse(HTTPResponse.Status(code: error.status), error.body, headers: headers)
}

/// Every error leaves as an OpenAI error object: the server's own (``APIError``), the router's
/// (no such route, wrong method) and anything unexpected (500, logged, the server keeps going).
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let endpoint =
            request.uri.path.hasSuffix("/chat/completions")
            ? "chat" : request.uri.path.hasSuffix("/completions") ? "completions" : "other"
        do {
            return try await next(request, context)
        } catch let error as APIError {
            metrics.request(endpoint: endpoint, status: error.status)
            return errorResponse(error)
        } catch let error as HTTPError {
            let apiError =
                error.status == .notFound
                ? APIError.notFound(request.uri.path)
                : APIError(
                    status: error.status.code,
                    message: error.body ?? "\(error.status.reasonPhrase) (\(request.method) \(request.uri.path))",
                    type: "invalid_request_error", code: error.status == .methodNotAllowed ? "method_not_allowed" : nil)
            metrics.request(endpoint: endpoint, status: apiError.status)
            return errorResponse(apiError)
        } catch {
            context.logger.error("request failed: \(error)")
            metrics.request(endpoint: endpoint, status: 500)
            return errorResponse(.internalFailure("The server failed on this request: \(error)"))
        }
    }
}

/// `--api-key`: the OpenAI routes and the metrics need `Authorization: Bearer <key>`.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let key, request.uri.path.hasPrefix("/v1/") || request.uri.path == "/metrics" else {
            return try await next(request, context)
        }
        let sent = request.headers[.authorization] ?? ""
        guard constantTimeEqual(Array(sent.utf8), Array(("Bearer " + key).utf8)) else { throw APIError.unauthorized }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference (no timing hint about the key).
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }
}
