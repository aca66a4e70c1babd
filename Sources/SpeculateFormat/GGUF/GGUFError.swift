import Foundation

/// Everything that can be wrong with a GGUF file, each case naming what and where.
///
/// The reader never traps on bad input: every read is bounds-checked and every count is
/// checked against the bytes that remain before anything is allocated.
public enum GGUFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or mapped.
    case cannotOpen(path: String, reason: String)
    /// The first four bytes are not `GGUF`.
    case badMagic(found: [UInt8])
    /// A GGUF version this reader does not understand (it reads 2 and 3).
    case unsupportedVersion(UInt32)
    /// The file ends before a structure that should be there.
    case truncated(what: String, offset: Int, needed: Int, available: Int)
    /// A metadata value type id outside the GGUF specification.
    case unknownValueType(key: String, rawType: UInt32)
    /// A tensor type id this reader does not know.
    case unknownTensorType(tensor: String, rawType: UInt32)
    /// A count or size that cannot be right for a file of this size.
    case absurdCount(what: String, count: UInt64)
    /// Arrays nested deeper than the reader accepts.
    case nestingTooDeep(key: String)
    /// A string that is not valid UTF-8.
    case invalidString(what: String, offset: Int)
    /// A metadata key that appears twice.
    case duplicateKey(String)
    /// A tensor name that appears twice.
    case duplicateTensor(String)
    /// A tensor whose shape is impossible (zero or too many dimensions, overflow, not whole blocks).
    case badTensorShape(tensor: String, reason: String)
    /// A tensor whose data lies outside the file or is misaligned.
    case tensorOutOfBounds(tensor: String, offset: UInt64, size: UInt64, dataSize: UInt64)
    /// `general.alignment` is zero, not a power of two, or absurd.
    case badAlignment(UInt64)
    /// A metadata key the caller needs is absent.
    case missingKey(String)
    /// A metadata key holds a different type than the caller needs.
    case typeMismatch(key: String, expected: String, found: String)
    /// A tensor the caller needs is absent.
    case missingTensor(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open GGUF file '\(path)': \(reason)"
        case .badMagic(let found):
            let shown = found.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "not a GGUF file: the first bytes are [\(shown)], expected 'GGUF' (47 47 55 46)"
        case .unsupportedVersion(let version):
            return "unsupported GGUF version \(version) (Speculate reads versions 2 and 3)"
        case .truncated(let what, let offset, let needed, let available):
            return "truncated GGUF file: \(what) at byte \(offset) needs \(needed) bytes but only \(available) remain"
        case .unknownValueType(let key, let rawType):
            return "metadata key '\(key)' has unknown value type \(rawType)"
        case .unknownTensorType(let tensor, let rawType):
            return "tensor '\(tensor)' has unsupported or unknown tensor type \(rawType)"
        case .absurdCount(let what, let count):
            return "corrupt GGUF file: \(what) is \(count), more than the file could hold"
        case .nestingTooDeep(let key):
            return "metadata key '\(key)' nests arrays too deeply"
        case .invalidString(let what, let offset):
            return "\(what) at byte \(offset) is not valid UTF-8"
        case .duplicateKey(let key):
            return "metadata key '\(key)' appears more than once"
        case .duplicateTensor(let name):
            return "tensor '\(name)' appears more than once"
        case .badTensorShape(let tensor, let reason):
            return "tensor '\(tensor)' has a bad shape: \(reason)"
        case .tensorOutOfBounds(let tensor, let offset, let size, let dataSize):
            return
                "tensor '\(tensor)' (offset \(offset), \(size) bytes) lies outside the data section of \(dataSize) bytes"
        case .badAlignment(let value):
            return "general.alignment is \(value); it must be a power of two no larger than 65536"
        case .missingKey(let key):
            return "the model has no metadata key '\(key)'"
        case .typeMismatch(let key, let expected, let found):
            return "metadata key '\(key)' holds \(found), expected \(expected)"
        case .missingTensor(let name):
            return "the model has no tensor '\(name)'"
        }
    }
}
