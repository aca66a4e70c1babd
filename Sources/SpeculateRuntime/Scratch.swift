import CSpeculateKernels

/// Scratch memory for the forward pass, grown to the largest batch seen.
struct Scratch {
    private(set) var tokens = 0
    var x: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var h: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var q: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var k: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var v: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var attention: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var gate: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var up: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var cosines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var sines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    /// The windowed layers' rotary tables (their own base).
    var windowCosines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    var windowSines: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var scoreBuffer: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private var scoreCount = 1
    var activations: UnsafeMutableRawPointer = .allocate(byteCount: 64, alignment: 64)
    private var activationBytes = 64

    /// The rotary tables of the global layers and of the windowed ones.
    var rotary: (cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) { (cosines, sines) }
    var windowRotary: (cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        (windowCosines, windowSines)
    }

    func deallocate() {
        for pointer in [
            x, h, q, k, v, attention, gate, up, cosines, sines, windowCosines, windowSines, scoreBuffer,
        ] { pointer.deallocate() }
        activations.deallocate()
    }

    mutating func reserve(tokens needed: Int, config: ModelConfig, capacity: Int) {
        guard needed > tokens else { return }
        let n = max(needed, 16)
        let d = config.embeddingLength
        let qWidth = config.headCount * config.headDimension
        func grow(_ pointer: inout UnsafeMutablePointer<Float>, _ count: Int) {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        grow(&x, n * d)
        grow(&h, n * max(d, qWidth))
        grow(&q, n * qWidth)
        grow(&k, n * config.kvWidth)
        grow(&v, n * config.kvWidth)
        grow(&attention, n * qWidth)
        grow(&gate, n * config.feedForwardLength)
        grow(&up, n * config.feedForwardLength)
        grow(&cosines, n * config.headDimension / 2)
        grow(&sines, n * config.headDimension / 2)
        grow(&windowCosines, n * config.headDimension / 2)
        grow(&windowSines, n * config.headDimension / 2)
        let widest = max(d, qWidth, config.feedForwardLength)
        activationBytes = 2 * n * spec_act_row_bytes(Int32(SPEC_ACT_F32.rawValue), Int32(widest))
        activations.deallocate()
        activations = .allocate(byteCount: activationBytes, alignment: 64)
        tokens = n
    }

    /// Attention scores scratch of at least `floats` floats.
    mutating func scores(floats: Int) -> UnsafeMutablePointer<Float> {
        if floats > scoreCount {
            scoreBuffer.deallocate()
            scoreBuffer = .allocate(capacity: floats)
            scoreCount = floats
        }
        return scoreBuffer
    }

    /// Computes `output = W · input` for each job (row-major, `tokens` rows of input),
    /// quantizing the input once per activation format and splitting rows across threads.
    mutating func matmul(
        _ jobs: [(matrix: WeightMatrix, output: UnsafeMutablePointer<Float>, outputStride: Int)],
        input: UnsafeMutablePointer<Float>, tokens: Int
    ) {
        let columns = jobs[0].matrix.columns
        var formats: [Int32: (UnsafeMutableRawPointer, Int)] = [:]
        var offset = 0
        for job in jobs where formats[job.matrix.activationFormat] == nil {
            let format = job.matrix.activationFormat
            let stride = spec_act_row_bytes(format, Int32(columns))
            let base = activations + offset
            offset += stride * tokens
            precondition(offset <= activationBytes, "activation scratch too small")
            for t in 0..<tokens { spec_quantize_act(format, input + t * columns, Int32(columns), base + t * stride) }
            formats[format] = (base, stride)
        }
        let plan = jobs.map { job -> spec_matmul_job in
            let (base, stride) = formats[job.matrix.activationFormat]!
            return spec_matmul_job(
                type: job.matrix.kernelType, n: Int32(job.matrix.columns), w: job.matrix.kernelBase,
                row_bytes: job.matrix.kernelRowBytes, rows: Int32(job.matrix.rows), act: base, act_stride: stride,
                y: job.output, y_stride: job.outputStride)
        }
        // Threads take chunks of whole rows from a shared counter (see spec_matmul_jobs).
        plan.withUnsafeBufferPointer { spec_matmul_jobs($0.baseAddress, Int32($0.count), Int32(tokens)) }
    }
}
