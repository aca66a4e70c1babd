import Foundation
import SpeculateFormat

/// Writes small GGUF images for tests, so that the reader can be checked on files whose
/// every byte is known, and mutated.
struct GGUFBuilder {
    var version: UInt32 = 3
    var metadata: [(String, GGUFValue)] = []
    var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []
    var alignment = 32

    func build() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        func putString(_ s: String) {
            put(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        }
        func typeID(_ v: GGUFValue) -> GGUFValueType {
            switch v {
            case .uint8: return .uint8
            case .int8: return .int8
            case .uint16: return .uint16
            case .int16: return .int16
            case .uint32: return .uint32
            case .int32: return .int32
            case .uint64: return .uint64
            case .int64: return .int64
            case .float32: return .float32
            case .float64: return .float64
            case .bool: return .bool
            case .string: return .string
            case .array: return .array
            }
        }
        func putValue(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .float64(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s)
            case .array(let elementType, let values):
                put(elementType.rawValue)
                put(UInt64(values.count))
                values.forEach(putValue)
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        put(version)
        put(UInt64(tensors.count))
        put(UInt64(metadata.count))
        for (key, value) in metadata {
            putString(key)
            put(typeID(value).rawValue)
            putValue(value)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            offsets.append(offset)
            offset += (tensor.data.count + alignment - 1) / alignment * alignment
        }
        for (tensor, tensorOffset) in zip(tensors, offsets) {
            putString(tensor.name)
            put(UInt32(tensor.dims.count))
            for dimension in tensor.dims { put(UInt64(dimension)) }
            put(tensor.type.rawValue)
            put(UInt64(tensorOffset))
        }
        while out.count % alignment != 0 { out.append(0) }
        for tensor in tensors {
            out.append(contentsOf: tensor.data)
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// A small file with every value type, nested arrays and two tensors.
    static func sample() -> GGUFBuilder {
        var builder = GGUFBuilder()
        builder.metadata = [
            ("general.architecture", .string("llama")),
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-30000)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-2_000_000_000)),
            ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))),
            ("f32", .float32(1.5)), ("f64", .float64(-2.25)), ("flag", .bool(true)),
            ("text", .string("héllo 🌍")),
            ("list", .array(elementType: .int32, values: [.int32(1), .int32(-2), .int32(3)])),
            ("words", .array(elementType: .string, values: [.string("a"), .string(""), .string("ĠĊ")])),
            (
                "nested",
                .array(
                    elementType: .array,
                    values: [
                        .array(elementType: .uint8, values: [.uint8(1)]),
                        .array(elementType: .string, values: []),
                    ])
            ),
        ]
        let floats: [Float] = [1, -2, 3.5, 0.25]
        let f32Bytes = floats.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
        var q8Block: [UInt8] = withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian) { Array($0) }
        q8Block += (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        builder.tensors = [
            ("weights.f32", [2, 2], .f32, f32Bytes),
            ("weights.q8", [32], .q8_0, q8Block),
        ]
        return builder
    }
}
