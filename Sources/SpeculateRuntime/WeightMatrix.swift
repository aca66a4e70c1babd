import CSpeculateKernels
import Foundation
import SpeculateFormat
import Synchronization

/// A quantized matrix: used in place, straight from the memory-mapped file, unless the active
/// kernel set reads another layout faster (``packedForKernels()``).
public struct WeightMatrix: Sendable {
    /// The tensor's name in the file.
    public let name: String
    /// Element type in the file.
    public let type: GGMLType
    /// Output rows.
    public private(set) var rows: Int
    /// Input columns (elements per row).
    public let columns: Int
    /// Bytes between rows in the file.
    public let rowBytes: Int
    /// The activation format the matrix's kernel reads.
    private(set) var activationFormat: Int32
    private let storage: ByteStorage
    private let offset: Int
    /// The type and layout the products read: the file's, a requantized copy
    /// (``requantized(to:)``) or a packed one (``packedForKernels()``, see `repack.c`).
    private(set) var kernelType: Int32
    /// Bytes per row in the layout the products read.
    private(set) var kernelRowBytes: Int
    /// The copy the products read, when it is not the file.
    private var owned: OwnedWeights?

    /// The matrix `name` in `file`, or `rows` of its rows from `firstRow` on when it holds
    /// `totalRows` (a fused tensor, such as Phi-3's query, key and value rows in one).
    init(file: GGUFFile, name: String, rows: Int, columns: Int, firstRow: Int = 0, totalRows: Int? = nil) throws {
        guard let info = file.tensor(named: name) else { throw RuntimeError.missingTensor(name) }
        let total = totalRows ?? rows
        guard info.dimensions == [columns, total] else {
            throw RuntimeError.shapeMismatch(tensor: name, expected: [columns, total], found: info.dimensions)
        }
        precondition(firstRow >= 0 && firstRow + rows <= total, "rows \(firstRow)..<\(firstRow + rows) of \(total)")
        let format = spec_act_format_for(Int32(info.type.rawValue))
        guard format >= 0 else {
            throw RuntimeError.badHyperParameter("tensor '\(name)' has type \(info.type) without a kernel")
        }
        self.name = name
        type = info.type
        self.rows = rows
        self.columns = columns
        rowBytes = info.rowBytes
        activationFormat = format
        storage = file.storage
        offset = file.dataOffset + info.offset + firstRow * info.rowBytes
        kernelType = Int32(info.type.rawValue)
        kernelRowBytes = info.rowBytes
    }

    /// The same matrix restricted to its first `count` rows.
    func limited(to count: Int) -> WeightMatrix {
        var copy = self
        copy.rows = min(rows, count)
        return copy
    }

    /// Whether the products read a packed layout (eight rows interleaved) rather than the file's.
    public var isPacked: Bool { spec_packed_base_type(kernelType) >= 0 }

    /// The matrix requantized for the products, when `precision` asks for fewer bits than the
    /// file has: to Q4_K where rows are whole 256-value blocks, else to Q4_0 (same 4.5 bits per
    /// weight, 32-value blocks). The file stays the source of embedding lookups. Rows are
    /// dequantized and quantized again in parallel. Returns `self` when nothing is to be done or
    /// memory runs out.
    func requantized(to precision: WeightPrecision) -> WeightMatrix {
        guard precision == .q4K, owned == nil, columns % 32 == 0 else { return self }
        let newType: GGMLType = columns % 256 == 0 ? .q4_K : .q4_0
        guard Self.wider(than: newType, type) else { return self }
        let quantize = newType == .q4_K ? spec_quantize_q4_K : spec_quantize_q4_0
        let newRowBytes = newType == .q4_K ? columns / 256 * 144 : columns / 32 * 18
        guard let buffer = OwnedWeights(byteCount: newRowBytes * rows) else { return self }
        let pieces = min(rows, 4 * ProcessInfo.processInfo.activeProcessorCount)
        let matrix = self
        let count = rows
        DispatchQueue.concurrentPerform(iterations: pieces) { piece in
            var row = [Float](repeating: 0, count: matrix.columns)
            row.withUnsafeMutableBufferPointer { floats in
                for r in (count * piece / pieces)..<(count * (piece + 1) / pieces) {
                    matrix.dequantizeRow(r, into: floats.baseAddress!)
                    quantize(floats.baseAddress!, Int32(matrix.columns), buffer.base + r * newRowBytes)
                }
            }
        }
        storage.adviseDontNeed(offset: offset, length: rowBytes * rows)
        var copy = self
        copy.owned = buffer
        copy.kernelType = Int32(newType.rawValue)
        copy.kernelRowBytes = newRowBytes
        copy.activationFormat = spec_act_format_for(copy.kernelType)
        return copy
    }

    /// A matrix of the given rows, in that order, in memory of its own (then packed like any
    /// matrix): a draft's output head restricted to a frequency-ranked subset of the vocabulary.
    /// Returns nil when a row is out of range or memory runs out.
    func gathering(rows selected: [Int]) -> WeightMatrix? {
        guard !selected.isEmpty, selected.allSatisfy({ (0..<rows).contains($0) }) else { return nil }
        let base = spec_packed_base_type(kernelType)
        let rowType = base >= 0 ? base : kernelType
        guard let elementType = GGMLType(rawValue: .init(rowType)) else { return nil }
        let newRowBytes = columns / elementType.blockSize * elementType.blockBytes
        guard newRowBytes > 0, let buffer = OwnedWeights(byteCount: newRowBytes * selected.count) else { return nil }
        for (i, row) in selected.enumerated() {
            if base >= 0 {
                spec_unpack_row(kernelType, Int32(columns), kernelBase, Int32(row), buffer.base + i * newRowBytes)
            } else {
                (buffer.base + i * newRowBytes).copyMemory(
                    from: kernelBase + row * kernelRowBytes, byteCount: newRowBytes)
            }
        }
        var copy = self
        copy.owned = buffer
        copy.rows = selected.count
        copy.kernelType = rowType
        copy.kernelRowBytes = newRowBytes
        return copy.packedForKernels()
    }

    /// Whether `type` stores more bits per weight than `reference` (so requantizing saves bytes).
    static func wider(than reference: GGMLType, _ type: GGMLType) -> Bool {
        let bits: [GGMLType: Double] = [
            .f32: 32, .f16: 16, .bf16: 16, .q8_0: 8.5, .q6_K: 6.5625, .q5_1: 6, .q5_0: 5.5, .q5_K: 5.5,
            .q4_1: 5, .q4_0: 4.5, .q4_K: 4.5, .q3_K: 3.4375, .q2_K: 2.625,
        ]
        guard let a = bits[type], let b = bits[reference] else { return false }
        return a > b
    }

    /// The matrix in the layout the active kernel set reads fastest (the VNNI sets read Q4_0, Q5_0,
    /// Q8_0, Q4_K and Q6_K, AVX2 Q5_0 and Q8_0, the Arm int8 sets Q4_K and Q6_K as groups of eight
    /// interleaved rows: see repack.c), packed here once (in parallel) into memory of
    /// its own; the file's pages of the tensor are then released from resident memory. Returns
    /// `self` unchanged when the set keeps the file's layout, or when memory runs out.
    func packedForKernels() -> WeightMatrix {
        let target = spec_packed_type_for(kernelType, Int32(rows), Int32(columns))
        guard target >= 0 else { return self }
        let packedRowBytes = spec_packed_row_bytes(target, Int32(columns))
        guard packedRowBytes > 0, let buffer = OwnedWeights(byteCount: packedRowBytes * rows) else { return self }
        let groups = rows / 8
        let pieces = min(groups, 4 * ProcessInfo.processInfo.activeProcessorCount)
        // The owners (all Sendable) cross into the workers; the pointers are taken inside.
        let file = storage
        let start = offset
        let source = owned
        let n = Int32(columns)
        let sourceRowBytes = kernelRowBytes
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: pieces) { piece in
            let first = groups * piece / pieces * 8
            let last = groups * (piece + 1) / pieces * 8
            let from = source.map { UnsafeRawPointer($0.base) } ?? file.base + start
            if spec_pack_rows(target, n, from, sourceRowBytes, Int32(first), Int32(last), buffer.base) != 0 {
                failures.add(1, ordering: .relaxed)
            }
        }
        guard failures.load(ordering: .relaxed) == 0 else { return self }
        if owned == nil { storage.adviseDontNeed(offset: offset, length: rowBytes * rows) }
        var copy = self
        copy.owned = buffer
        copy.kernelType = target
        copy.kernelRowBytes = packedRowBytes
        return copy
    }

    /// The first byte of the matrix in the file; valid while the model lives.
    var base: UnsafeRawPointer { storage.base + offset }

    /// The first byte of the layout the products read; valid while the model lives.
    var kernelBase: UnsafeRawPointer { owned.map { UnsafeRawPointer($0.base) } ?? base }

    /// Row `row` as floats (used for embedding lookups), from the file.
    func dequantizeRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
        Dequantizer.dequantize(type, from: base + row * rowBytes, count: columns, into: destination)
    }
}

/// How precisely a model's product weights are kept in memory.
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// As stored in the file.
    case file
    /// Requantized at load to 4.5 bits per weight (Q4_K, or Q4_0 for rows that are not whole
    /// 256-value blocks) where the file has more bits: a draft's precision changes only its
    /// acceptance, never the output, and fewer bytes per token make it faster.
    case q4K = "q4_k"
}

/// Memory of its own holding a matrix's weights (requantized or packed); written once at load,
/// then only read.
final class OwnedWeights: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let byteCount: Int

    init?(byteCount: Int) {
        guard byteCount > 0, let memory = aligned_alloc(64, (byteCount + 63) & ~63) else { return nil }
        base = memory
        self.byteCount = byteCount
    }

    deinit { free(base) }
}
