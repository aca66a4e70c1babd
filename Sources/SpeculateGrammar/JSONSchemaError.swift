/// A schema (or JSON text) this grammar cannot take, with the place and the reason.
public struct JSONSchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the keyword and where it is (`#/properties/name`).
    public let message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
