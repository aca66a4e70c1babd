import Foundation
import SpeculateFormat
import SpeculateTestSupport
import Testing

@Suite("Dequantization, bit-exact against gguf.quants.dequantize")
struct DequantizeTests {
    /// Per model, real tensors covering each type it uses; large matrices by a row range.
    static let cases: [(model: String, tensors: [String])] = [
        (
            "smollm2-135m-instruct",
            [
                "token_embd.weight:0:512",  // Q8_0
                "blk.0.attn_q.weight",  // Q4_1
                "blk.29.ffn_down.weight",  // Q4_1
                "blk.0.attn_norm.weight",  // F32
                "output_norm.weight",  // F32
            ]
        ),
        (
            "qwen2.5-coder-0.5b-instruct",
            [
                "blk.0.attn_q.weight",  // Q5_0
                "blk.0.ffn_down.weight",  // Q6_K / Q4_K / Q8_0, whatever the file holds
                "blk.1.ffn_down.weight",
                "blk.0.attn_v.weight",
                "blk.3.attn_v.weight",
                "token_embd.weight:1000:1400",
                "blk.0.attn_q.bias",  // F32
            ]
        ),
        (
            "qwen2.5-coder-1.5b-instruct",
            [
                "blk.0.attn_q.weight",  // Q4_K
                "blk.0.ffn_down.weight",  // Q6_K
                "blk.0.attn_v.weight",
                "token_embd.weight:151000:151400",
                "output.weight:0:300",
                "blk.27.attn_k.bias",  // F32
            ]
        ),
    ]

    @Test("real tensors of the three models", arguments: 0..<3)
    func realTensors(caseIndex: Int) throws {
        let (model, requests) = Self.cases[caseIndex]
        let path = try TestSupport.modelPath(model)
        let file = try GGUFFile(path: path)
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try TestSupport.runPython("dequantize_reference.py", [path, folder.path] + requests)
        var typesSeen: Set<String> = []
        for (index, request) in requests.enumerated() {
            let parts = request.split(separator: ":").map(String.init)
            let tensor = try file.requireTensor(parts[0])
            let rows = parts.count == 3 ? Int(parts[1])!..<Int(parts[2])! : nil
            let ours = file.dequantize(tensor, rows: rows)
            let reference = try Data(contentsOf: folder.appendingPathComponent("\(index).f32"))
            #expect(reference.count == ours.count * 4, "\(request)")
            let mismatches = reference.withUnsafeBytes { raw -> Int in
                let expected = raw.bindMemory(to: UInt32.self)
                return zip(expected, ours).reduce(0) { $0 + (UInt32(littleEndian: $1.0) == $1.1.bitPattern ? 0 : 1) }
            }
            #expect(
                mismatches == 0, "\(model) \(request) (\(tensor.type)): \(mismatches) of \(ours.count) values differ")
            typesSeen.insert(tensor.type.description)
        }
        print("\(model): bit-exact on \(requests.count) tensors of types \(typesSeen.sorted())")
    }

    @Test("every type the three models use is covered")
    func coverage() throws {
        var needed: Set<GGMLType> = []
        var covered: Set<GGMLType> = []
        for (model, requests) in Self.cases {
            let file = try GGUFFile(path: try TestSupport.modelPath(model))
            needed.formUnion(file.tensors.map(\.type))
            for request in requests {
                covered.insert(try file.requireTensor(String(request.split(separator: ":")[0])).type)
            }
        }
        #expect(needed.subtracting(covered).isEmpty, "types not covered: \(needed.subtracting(covered))")
    }

    @Test("synthetic blocks of every type", arguments: GGMLType.allCases)
    func syntheticBlocks(type: GGMLType) throws {
        // Random bytes are valid blocks for every type except that half-precision scales may
        // be NaN or infinite; both sides must still agree bit for bit (NaN payloads included).
        var generator = SplitMix64(seed: UInt64(type.rawValue) &+ 77)
        let blocks = 64
        var bytes = (0..<(blocks * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        if type == .f32 || type == .f16 || type == .bf16 {
            bytes = bytes.enumerated().map { $0.offset % 4 == 3 ? $0.element & 0x3F : $0.element }
        }
        let count = blocks * type.blockSize
        var builder = GGUFBuilder()
        builder.tensors = [("t", [count], type, bytes)]
        let folder = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("synthetic.gguf")
        try Data(builder.build()).write(to: path)
        let file = try GGUFFile(path: path.path)
        let ours = file.dequantize(try file.requireTensor("t"))
        _ = try TestSupport.runPython("dequantize_reference.py", [path.path, folder.path, "t"])
        let reference = try Data(contentsOf: folder.appendingPathComponent("0.f32"))
        let differ = reference.withUnsafeBytes { raw in
            zip(raw.bindMemory(to: UInt32.self), ours).filter { UInt32(littleEndian: $0.0) != $0.1.bitPattern }.count
        }
        #expect(reference.count == count * 4)
        #expect(differ == 0, "\(type): \(differ) of \(count) differ")
    }
}
