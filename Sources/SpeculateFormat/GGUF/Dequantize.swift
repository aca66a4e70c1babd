// swift-format-ignore-file: AlwaysUseLowerCamelCase

// (one function per GGML type, named as the type (q4_0, q6_K).)
/// Conversion of GGML blocks to `Float`, bit-exact with the `gguf` Python package.
///
/// Every formula keeps the reference's order of float32 operations (for example
/// `(d * scale) * q - (dmin * min)` for Q4_K), so results match to the bit, not just closely.
/// The runtime's fast kernels work on the blocks directly; this path is for loading small
/// tensors (norms, biases, embedding rows) and for checking the kernels.
public enum Dequantizer {
    /// Converts `count` elements (a whole number of blocks) of `type` at `source` into `destination`.
    public static func dequantize(
        _ type: GGMLType, from source: UnsafeRawPointer, count: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        precondition(count % type.blockSize == 0, "element count must be a whole number of blocks")
        let blocks = count / type.blockSize
        let stride = type.blockBytes
        for block in 0..<blocks {
            let src = source + block * stride
            let dst = destination + block * type.blockSize
            switch type {
            case .f32: dst.pointee = Float(bitPattern: src.loadUnaligned(as: UInt32.self))
            case .f16: dst.pointee = half(src)
            case .bf16: dst.pointee = Float(bitPattern: UInt32(src.loadUnaligned(as: UInt16.self)) << 16)
            case .q4_0: q4_0(src, dst)
            case .q4_1: q4_1(src, dst)
            case .q5_0: q5_0(src, dst)
            case .q5_1: q5_1(src, dst)
            case .q8_0: q8_0(src, dst)
            case .q2_K: q2_K(src, dst)
            case .q3_K: q3_K(src, dst)
            case .q4_K: q4_K(src, dst)
            case .q5_K: q5_K(src, dst)
            case .q6_K: q6_K(src, dst)
            }
        }
    }

    /// Reads an IEEE half at `pointer` as a `Float` (exact).
    @inline(__always)
    public static func half(_ pointer: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: pointer.loadUnaligned(as: UInt16.self)))
    }

    @inline(__always)
    private static func byte(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }

    private static func q4_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        for l in 0..<16 {
            let q = byte(s, 2 + l)
            y[l] = d * Float(Int(q & 0x0F) - 8)
            y[l + 16] = d * Float(Int(q >> 4) - 8)
        }
    }

    private static func q4_1(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        let m = half(s + 2)
        for l in 0..<16 {
            let q = byte(s, 4 + l)
            y[l] = d * Float(q & 0x0F) + m
            y[l + 16] = d * Float(q >> 4) + m
        }
    }

    private static func q5_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        let qh = UInt32(littleEndian: (s + 2).loadUnaligned(as: UInt32.self))
        for l in 0..<16 {
            let q = byte(s, 6 + l)
            let low = Int(q & 0x0F) | Int((qh >> UInt32(l)) & 1) << 4
            let high = Int(q >> 4) | Int((qh >> UInt32(l + 16)) & 1) << 4
            y[l] = d * Float(low - 16)
            y[l + 16] = d * Float(high - 16)
        }
    }

    private static func q5_1(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        let m = half(s + 2)
        let qh = UInt32(littleEndian: (s + 4).loadUnaligned(as: UInt32.self))
        for l in 0..<16 {
            let q = byte(s, 8 + l)
            let low = UInt32(q & 0x0F) | ((qh >> UInt32(l)) & 1) << 4
            let high = UInt32(q >> 4) | ((qh >> UInt32(l + 16)) & 1) << 4
            y[l] = d * Float(low) + m
            y[l + 16] = d * Float(high) + m
        }
    }

    private static func q8_0(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        for l in 0..<32 { y[l] = Float(Int8(bitPattern: byte(s, 2 + l))) * d }
    }

    // Layout: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
    private static func q2_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s + 80)
        let dmin = half(s + 82)
        for i in 0..<256 {
            let chunk = i / 128
            let shift = (i % 128) / 32
            let l = i % 32
            let q = (byte(s, 16 + chunk * 32 + l) >> UInt8(2 * shift)) & 3
            let sc = byte(s, i / 16)
            let dl = d * Float(sc & 0x0F)
            let ml = dmin * Float(sc >> 4)
            y[i] = dl * Float(q) - ml
        }
    }

    // Layout: hmask[32], qs[64], scales[12] (6-bit, offset 32), d.
    private static func q3_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s + 108)
        var scales = [Float](repeating: 0, count: 16)
        for j in 0..<16 {
            let low = (byte(s, 96 + j % 8) >> UInt8(4 * (j / 8))) & 0x0F
            let high = (byte(s, 104 + j % 4) >> UInt8(2 * (j / 4))) & 0x03
            scales[j] = Float(Int(low | high << 4) - 32)
        }
        for i in 0..<256 {
            let chunk = i / 128
            let shift = (i % 128) / 32
            let l = i % 32
            let low = Int((byte(s, 32 + chunk * 32 + l) >> UInt8(2 * shift)) & 3)
            let bit = Int((byte(s, l) >> UInt8(i / 32)) & 1)
            let q = low - ((bit ^ 1) << 2)
            y[i] = (d * scales[i / 16]) * Float(q)
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block.
    @inline(__always)
    static func scaleMin(_ scales: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 {
            return (byte(scales, j) & 0x3F, byte(scales, j + 4) & 0x3F)
        }
        let packed = byte(scales, j + 4)
        let sc = (packed & 0x0F) | ((byte(scales, j - 4) >> 2) & 0x30)
        let mn = (packed >> 4) | ((byte(scales, j) >> 2) & 0x30)
        return (sc, mn)
    }

    // Layout: d, dmin, scales[12], qs[128].
    private static func q4_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        let dmin = half(s + 2)
        for sub in 0..<8 {
            let (sc, mn) = scaleMin(s + 4, sub)
            let dl = d * Float(sc)
            let ml = dmin * Float(mn)
            let chunk = sub / 2
            let nibble = UInt8(4 * (sub % 2))
            for l in 0..<32 {
                let q = (byte(s, 16 + chunk * 32 + l) >> nibble) & 0x0F
                y[sub * 32 + l] = dl * Float(q) - ml
            }
        }
    }

    // Layout: d, dmin, scales[12], qh[32], qs[128].
    private static func q5_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s)
        let dmin = half(s + 2)
        for sub in 0..<8 {
            let (sc, mn) = scaleMin(s + 4, sub)
            let dl = d * Float(sc)
            let ml = dmin * Float(mn)
            let chunk = sub / 2
            let nibble = UInt8(4 * (sub % 2))
            for l in 0..<32 {
                let low = (byte(s, 48 + chunk * 32 + l) >> nibble) & 0x0F
                let high = (byte(s, 16 + l) >> UInt8(sub)) & 1
                y[sub * 32 + l] = dl * Float(low | high << 4) - ml
            }
        }
    }

    // Layout: ql[128], qh[64], scales[16] (int8), d.
    private static func q6_K(_ s: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(s + 208)
        for i in 0..<256 {
            let chunk = i / 128
            let within = i % 128
            let low = (byte(s, chunk * 64 + within % 64) >> UInt8(4 * (within / 64))) & 0x0F
            let high = (byte(s, 128 + chunk * 32 + within % 32) >> UInt8(2 * (within / 32))) & 0x03
            let q = Int(low | high << 4) - 32
            let scale = Float(Int8(bitPattern: byte(s, 192 + i / 16)))
            y[i] = (d * scale) * Float(q)
        }
    }
}

extension GGUFFile {
    /// Rows `rows` of `tensor` as `Float`s (row-major, `rowLength` values per row).
    public func dequantize(_ tensor: GGUFTensorInfo, rows: Range<Int>? = nil) -> [Float] {
        let range = rows ?? 0..<tensor.rowCount
        precondition(range.lowerBound >= 0 && range.upperBound <= tensor.rowCount, "row range out of bounds")
        let count = range.count * tensor.rowLength
        let source = data(of: tensor).baseAddress! + range.lowerBound * tensor.rowBytes
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            Dequantizer.dequantize(tensor.type, from: source, count: count, into: buffer.baseAddress!)
            initialized = count
        }
    }
}
