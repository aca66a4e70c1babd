import Foundation

/// A request the server refuses, reported the way the OpenAI API reports errors: an HTTP status
/// and a body `{"error": {"message", "type", "param", "code"}}` that clients already parse.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status code.
    public var status: Int
    /// What went wrong and what to do about it, for a person.
    public var message: String
    /// The OpenAI error class: `invalid_request_error`, `authentication_error`, `server_error`, ...
    public var type: String
    /// The request field at fault, if one is.
    public var param: String?
    /// A stable machine-readable code.
    public var code: String?
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    public var retryAfter: Int?

    /// An error with every field given.
    public init(
        status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil
    ) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    public var description: String { message }

    /// 400: the request is malformed or asks for something the server cannot do.
    public static func invalid(_ message: String, param: String? = nil, code: String = "invalid_request") -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 401: `--api-key` is set and the request did not send it.
    public static let unauthorized = APIError(
        status: 401,
        message:
            "Incorrect or missing API key: send the header 'Authorization: Bearer <key>' with the key the server was started with.",
        type: "authentication_error", code: "invalid_api_key")

    /// 404: no such route.
    public static func notFound(_ path: String) -> APIError {
        APIError(
            status: 404,
            message:
                "No route \(path): the server offers /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics and /.",
            type: "invalid_request_error", code: "not_found")
    }

    /// 404: the request names a model the server does not serve.
    public static func unknownModel(_ name: String, served: String) -> APIError {
        APIError(
            status: 404,
            message: "The model '\(name)' does not exist on this server; it serves '\(served)' (GET /v1/models).",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    /// 503: the queue of waiting requests is full.
    public static func queueFull(waiting: Int) -> APIError {
        APIError(
            status: 503,
            message: "The server is busy: \(waiting) requests are already waiting for the model. Retry later.",
            type: "server_error", code: "queue_full", retryAfter: 1)
    }

    /// 500: the model failed on a valid request (reported, the server keeps running).
    public static func internalFailure(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "server_error", code: "generation_failed")
    }

    /// The JSON object clients receive.
    public var body: [String: Any] {
        [
            "error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()]
                as [String: Any]
        ]
    }
}
