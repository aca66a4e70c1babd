/// A little-endian cursor over bytes that checks every read against the end.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    private func ensure(_ count: Int, what: @autoclosure () -> String) throws(GGUFError) {
        guard count >= 0, count <= remaining else {
            throw .truncated(what: what(), offset: offset, needed: count, available: remaining)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, what: @autoclosure () -> String) throws(GGUFError) -> T {
        try ensure(MemoryLayout<T>.size, what: what())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func bytes(_ count: Int, what: @autoclosure () -> String) throws(GGUFError) -> [UInt8] {
        try ensure(count, what: what())
        let result = Array(bytes[offset..<offset + count])
        offset += count
        return result
    }

    mutating func string(what: @autoclosure () -> String) throws(GGUFError) -> String {
        let start = offset
        let length = try read(UInt64.self, what: what() + " length")
        guard length <= UInt64(remaining) else {
            throw .truncated(what: what(), offset: offset, needed: Int(clamping: length), available: remaining)
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(length)])
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw .invalidString(what: what(), offset: start)
        }
        offset += Int(length)
        return text
    }

    mutating func value(of type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what: "value of '\(key)'"))
        case .int8: return .int8(try read(Int8.self, what: "value of '\(key)'"))
        case .uint16: return .uint16(try read(UInt16.self, what: "value of '\(key)'"))
        case .int16: return .int16(try read(Int16.self, what: "value of '\(key)'"))
        case .uint32: return .uint32(try read(UInt32.self, what: "value of '\(key)'"))
        case .int32: return .int32(try read(Int32.self, what: "value of '\(key)'"))
        case .uint64: return .uint64(try read(UInt64.self, what: "value of '\(key)'"))
        case .int64: return .int64(try read(Int64.self, what: "value of '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what: "value of '\(key)'")))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what: "value of '\(key)'")))
        case .bool:
            let raw = try read(UInt8.self, what: "value of '\(key)'")
            guard raw <= 1 else { throw .typeMismatch(key: key, expected: "bool (0 or 1)", found: "byte \(raw)") }
            return .bool(raw == 1)
        case .string: return .string(try string(what: "string value of '\(key)'"))
        case .array:
            guard depth < 4 else { throw .nestingTooDeep(key: key) }
            let rawElementType = try read(UInt32.self, what: "array type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawElementType) else {
                throw .unknownValueType(key: key, rawType: rawElementType)
            }
            let count = try read(UInt64.self, what: "array length of '\(key)'")
            guard count <= UInt64(remaining / elementType.minimumSize) else {
                throw .absurdCount(what: "array length of '\(key)'", count: count)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                values.append(try value(of: elementType, key: key, depth: depth + 1))
            }
            return .array(elementType: elementType, values: values)
        }
    }
}
