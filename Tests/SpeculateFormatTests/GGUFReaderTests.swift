import Foundation
import SpeculateFormat
import SpeculateTestSupport
import Testing

@Suite("GGUF reader")
struct GGUFReaderTests {
    @Test("reads every value type, nested arrays and tensor infos of a built file")
    func readsBuiltFile() throws {
        let builder = GGUFBuilder.sample()
        let file = try GGUFFile(bytes: builder.build())
        #expect(file.version == 3)
        #expect(file.metadataKeys == builder.metadata.map(\.0))
        for (key, value) in builder.metadata {
            #expect(file.metadata[key] == value, "key \(key)")
        }
        #expect(try file.integer("u64") == 1 << 40)
        #expect(try file.float("f32") == 1.5)
        #expect(try file.string("text") == "héllo 🌍")
        #expect(try file.stringArray("words") == ["a", "", "ĠĊ"])
        #expect(try file.integerArray("list") == [1, -2, 3])
        #expect(file.alignment == 32)
        let f32 = try file.requireTensor("weights.f32")
        #expect(f32.dimensions == [2, 2] && f32.type == .f32 && f32.rowCount == 2)
        #expect(file.dequantize(f32) == [1, -2, 3.5, 0.25])
        let q8 = try file.requireTensor("weights.q8")
        #expect(file.dequantize(q8) == (0..<32).map { Float($0 - 16) * 0.5 })
    }

    @Test("typed accessors report missing keys and wrong types")
    func typedAccessorErrors() throws {
        let file = try GGUFFile(bytes: GGUFBuilder.sample().build())
        #expect(throws: GGUFError.missingKey("absent")) { try file.integer("absent") }
        #expect(throws: GGUFError.typeMismatch(key: "text", expected: "an integer", found: "string")) {
            try file.integer("text")
        }
        #expect(throws: GGUFError.missingTensor("nope")) { try file.requireTensor("nope") }
    }

    @Test("specific corruptions give specific errors")
    func specificCorruptions() throws {
        var bytes = GGUFBuilder.sample().build()
        var bad = bytes
        bad[0] = 0x48
        #expect(throws: GGUFError.badMagic(found: [0x48, 0x47, 0x55, 0x46])) { try GGUFFile(bytes: bad) }
        bad = bytes
        bad[4] = 1
        #expect(throws: GGUFError.unsupportedVersion(1)) { try GGUFFile(bytes: bad) }
        bad = bytes
        bad.replaceSubrange(16..<24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: GGUFError.absurdCount(what: "metadata count", count: UInt64(Int64.max))) {
            try GGUFFile(bytes: bad)
        }
        bytes = Array(bytes.prefix(10))
        #expect(throws: GGUFError.self) { try GGUFFile(bytes: bytes) }

        var builder = GGUFBuilder.sample()
        builder.tensors[1].type = .q4_K  // 32 elements is not a whole Q4_K block of 256
        #expect(
            throws: GGUFError.badTensorShape(
                tensor: "weights.q8",
                reason: "row length 32 is not a multiple of the Q4_K block size 256")
        ) {
            try GGUFFile(bytes: builder.build())
        }
        builder = GGUFBuilder.sample()
        builder.tensors[0].dims = [2, 64]  // more data than the file holds
        #expect(throws: GGUFError.self) { try GGUFFile(bytes: builder.build()) }
        builder = GGUFBuilder.sample()
        builder.metadata.append(("u8", .uint8(1)))
        #expect(throws: GGUFError.duplicateKey("u8")) { try GGUFFile(bytes: builder.build()) }
    }

    @Test("thousands of mutated and truncated headers give errors, never traps")
    func fuzzMutations() throws {
        let original = GGUFBuilder.sample().build()
        let sample = try GGUFFile(bytes: original)
        let dataEnd = sample.dataOffset + sample.tensors.map { $0.offset + $0.byteCount }.max()!
        // Every truncation before the end of the last tensor's data must be rejected.
        for length in 0..<dataEnd {
            #expect(throws: GGUFError.self) { try GGUFFile(bytes: Array(original.prefix(length))) }
        }
        var generator = SplitMix64(seed: 0x5EC0_1A7E)
        var parsed = 0
        var rejected = 0
        for round in 0..<6000 {
            var bytes = original
            let mutations = 1 + Int(generator.next() % 4)
            for _ in 0..<mutations {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch round % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes[position] ^= UInt8(1 << (generator.next() % 8))
                default:
                    // Overwrite eight bytes with a huge little-endian count.
                    let value = generator.next() | 0x00F0_0000_0000_0000
                    for k in 0..<8 where position + k < bytes.count {
                        bytes[position + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))
                    }
                }
            }
            if generator.next() % 4 == 0 { bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count)))) }
            do {
                let file = try GGUFFile(bytes: bytes)
                // Whatever parsed must be safe to use.
                for tensor in file.tensors { _ = file.dequantize(tensor) }
                parsed += 1
            } catch {
                rejected += 1
            }
        }
        #expect(parsed + rejected == 6000)
        #expect(rejected > 1000)
    }

    @Test("truncated real model headers are rejected", arguments: ["smollm2-135m-instruct"])
    func truncatedRealHeader(model: String) throws {
        let path = try TestSupport.modelPath(model)
        let file = try GGUFFile(path: path)
        let full = Array(file.storage.buffer)
        for length in [0, 3, 23, 1000, 100_000, file.dataOffset - 1, full.count - 1] {
            #expect(throws: GGUFError.self) { try GGUFFile(bytes: Array(full.prefix(length))) }
        }
    }

    @Test(
        "metadata and tensor infos equal the gguf Python package's reading",
        // The 1.5B target (the 0.5B's layout, more tensors) only under `.ci/deep`.
        arguments: ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]
            + (ProcessInfo.processInfo.environment["SPECULATE_DEEP"] == "1" ? ["qwen2.5-coder-1.5b-instruct"] : []))
    func matchesReference(model: String) throws {
        let path = try TestSupport.modelPath(model)
        let file = try GGUFFile(path: path)
        let json = try TestSupport.runPython("gguf_dump_reference.py", [path])
        let reference = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(reference["version"] as? Int == Int(file.version))
        let metadata = try #require(reference["metadata"] as? [String: [String: Any]])
        #expect(Set(metadata.keys) == Set(file.metadataKeys))
        for (key, expected) in metadata {
            let value = try #require(file.metadata[key])
            switch value {
            case .array(let elementType, let values):
                #expect(expected["count"] as? Int == values.count, "\(key)")
                #expect(expected["element"] as? String == elementType.description, "\(key)")
                if elementType == .string || elementType.isInteger {
                    let text = values.map { $0.stringValue ?? String($0.intValue!) }.joined(separator: "\n")
                    #expect(expected["sha256"] as? String == sha256Hex(Array(text.utf8)), "\(key)")
                }
            case .string(let s): #expect(expected["value"] as? String == s, "\(key)")
            case .bool(let b): #expect(expected["value"] as? Bool == b, "\(key)")
            case .float32, .float64: #expect(expected["value"] as? Double == value.doubleValue, "\(key)")
            default: #expect(expected["value"] as? Int == value.intValue, "\(key)")
            }
            #expect(expected["type"] as? String == (value.arrayValue != nil ? "array" : value.typeName), "\(key)")
        }
        let tensors = try #require(reference["tensors"] as? [[String: Any]])
        #expect(tensors.count == file.tensors.count)
        for (expected, tensor) in zip(tensors, file.tensors) {
            #expect(expected["name"] as? String == tensor.name)
            #expect(expected["dims"] as? [Int] == tensor.dimensions)
            #expect(expected["type"] as? String == tensor.type.description)
            #expect(expected["offset"] as? Int == file.dataOffset + tensor.offset)
        }
    }
}

extension GGUFValueType {
    var isInteger: Bool { [.uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64].contains(self) }
}
