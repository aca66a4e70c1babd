import Foundation
import SpeculateCore
import SpeculateFormat
import SpeculateRuntime
import SpeculateTestSupport
import Testing

/// Model files whose tensors lie about their shapes or whose bytes are mutated: the loader refuses
/// them with a typed error, or what it accepts runs a forward pass reading only checked memory.
/// The files start from the fuzz corpus's tiny qwen2 model (Fuzz/make_seeds.py: width 32, one
/// layer, byte-level tokenizer), so every mutation is cheap to load and run.
@Suite("Malicious model files")
struct MaliciousModelTests {
    static func seed(_ name: String) throws -> [UInt8] {
        let url = TestSupport.packageRoot.appendingPathComponent("Fuzz/Corpus/gguf/\(name)")
        return Array(try Data(contentsOf: url))
    }

    /// Loads `bytes` as a model and, if it loads, runs a prefill and one decode step.
    static func loadAndRun(_ bytes: [UInt8]) throws {
        let model = try TransformerModel(gguf: try GGUFFile(bytes: bytes))
        let session = try InferenceSession(model: model, context: 16)
        let vocabulary = model.config.vocabularySize
        let logits = try session.append([0, 1, 2].map { TokenID($0 % vocabulary) })
        #expect(logits.count == vocabulary)
        _ = try session.evaluate(tokens: [TokenID(3 % vocabulary)], parents: [-1])
    }

    @Test(
        "the seed models load and run",
        arguments: ["tiny-model-q8_0.gguf", "tiny-model-q4_0.gguf", "tiny-model-f16.gguf"])
    func seedsLoad(name: String) throws {
        try Self.loadAndRun(try Self.seed(name))
    }

    @Test("tensors whose shapes disagree with the hyper-parameters are refused by name")
    func lyingShapes() throws {
        let original = try GGUFFile(bytes: try Self.seed("tiny-model-q8_0.gguf"))
        // Rewrite one dimension field in the tensor table (the reader accepts the file: the data
        // still lies inside it) and expect the loader to name the tensor.
        func rewritten(tensor name: String, dimension: Int, to value: UInt64) throws -> [UInt8] {
            var bytes = try Self.seed("tiny-model-q8_0.gguf")
            let nameBytes = Array(name.utf8)
            var length = UInt64(nameBytes.count).littleEndian
            let needle = withUnsafeBytes(of: &length) { Array($0) } + nameBytes
            let start = try #require(
                (0...(bytes.count - needle.count)).first { bytes[$0..<$0 + needle.count].elementsEqual(needle) })
            // After the name: a u32 dimension count, then u64 dimensions.
            let field = start + needle.count + 4 + 8 * dimension
            withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(field..<field + 8, with: $0) }
            return bytes
        }
        let q = try #require(original.tensor(named: "blk.0.attn_q.weight"))
        // Fewer rows than the heads need: the data is inside the file, the shape is wrong.
        let fewerRows = try rewritten(tensor: "blk.0.attn_q.weight", dimension: 1, to: UInt64(q.dimensions[1] / 2))
        #expect(throws: RuntimeError.self) { try Self.loadAndRun(fewerRows) }
        do { try Self.loadAndRun(fewerRows) } catch { #expect("\(error)".contains("blk.0.attn_q.weight"), "\(error)") }
        // A norm vector shorter than the width.
        let shortNorm = try rewritten(tensor: "blk.0.attn_norm.weight", dimension: 0, to: 16)
        #expect(throws: RuntimeError.self) { try Self.loadAndRun(shortNorm) }
        // A row length that claims more columns than the data holds is caught by the reader.
        let wide = try rewritten(tensor: "blk.0.ffn_down.weight", dimension: 0, to: 1 << 20)
        #expect(throws: (any Error).self) { try Self.loadAndRun(wide) }
    }

    @Test("thousands of mutated tiny models are refused or run safely")
    func mutatedModels() throws {
        let original = try Self.seed("tiny-model-q4_0.gguf")
        let file = try GGUFFile(bytes: original)
        var generator = SplitMix64(seed: 0xBAD_F11E)
        var loaded = 0
        var refused = 0
        for round in 0..<3000 {
            var bytes = original
            // Mostly the header (metadata and the tensor table), sometimes tensor data.
            let span = round % 4 == 0 ? bytes.count : file.dataOffset
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let position = Int(generator.next() % UInt64(span))
                switch generator.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes[position] ^= UInt8(1 << (generator.next() % 8))
                default:
                    let value = generator.next() >> (generator.next() % 64)
                    for k in 0..<8 where position + k < bytes.count {
                        bytes[position + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))
                    }
                }
            }
            do {
                try Self.loadAndRun(bytes)
                loaded += 1
            } catch {
                refused += 1
            }
        }
        #expect(loaded + refused == 3000)
        #expect(loaded > 100 && refused > 100, "loaded \(loaded), refused \(refused): both paths exercised")
    }
}
