// Helpers and the 32-element block kernels (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) shared by the x86
// kernel sets. Not a header of its own: avx2.c and x86_vnni.h include it after defining
//   X86_TARGET          the target attribute of every function (empty under SIMDe)
//   X86_DOT_U8_S8(w,x)  unsigned bytes times signed bytes, four products per int32 lane.
// Both definitions of the dot product put the same exact integer sums in the same lanes, so
// every set that includes this file computes these types bit-identically to the AVX2 set.
/// Half to float with the F16C instruction (exact, like the portable conversion).
X86_TARGET static inline float half_f16c(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/// Broadcast masks: lanes take the 16-bit value j of a 128-bit vector, for j = 0..7.
static const uint8_t broadcast_word[8][32] = {
#define W(j)                                                                                                           \
    {                                                                                                                  \
        2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1,    \
            2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j,           \
            2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1, 2 * j, 2 * j + 1                          \
    }
    W(0), W(1), W(2), W(3), W(4),
    W(5), W(6), W(7)
#undef W
};

X86_TARGET static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Unsigned weights (0..63) times signed activations, each group of four products summed
/// into one of 8 int32 lanes (the includer's X86_DOT_U8_S8: maddubs + madd, or vpdpbusd).
X86_TARGET static inline __m256i dot_u8_s8(__m256i w, __m256i x) {
    return X86_DOT_U8_S8(w, x);
}

/// 32 bits -> 32 bytes of 0x10 where the bit is set.
X86_TARGET static inline __m256i bits_to_0x10(uint32_t bits) {
    const __m256i select = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), select);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/// 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles.
X86_TARGET static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i x = _mm_loadu_si128((const __m128i *)p);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

/// The 32 unsigned values of a Q4_0, Q4_1, Q5_0 or Q5_1 block.
X86_TARGET static inline __attribute__((always_inline)) __m256i q32_unpack(const int type, const uint8_t *blk) {
    if (type == SPEC_Q4_0) return nibbles_32(blk + 2);
    if (type == SPEC_Q4_1) return nibbles_32(blk + 4);
    uint32_t qh;
    memcpy(&qh, blk + (type == SPEC_Q5_0 ? 2 : 4), 4);
    return _mm256_or_si256(nibbles_32(blk + (type == SPEC_Q5_0 ? 6 : 8)), bits_to_0x10(qh));
}

enum { TOKEN_CHUNK = 8 };

/// How far ahead of the block being read the weights are requested. Decoding streams every
/// weight once per token from memory mapped in 4 KiB pages, where the hardware prefetchers stop
/// at each page boundary; asking a few pages ahead raised the bandwidth of a single-token
/// product from about 14 to 22 GB/s on the development machine (2 threads, Zen 3). Both knobs
/// can be set when compiling the kernel benchmark by hand (-DPREFETCH_AHEAD_BYTES=..,
/// -DPREFETCH_HINT=_MM_HINT_T1); on Zen 3, 4 KiB into L1 measured best.
#ifndef PREFETCH_AHEAD_BYTES
#define PREFETCH_AHEAD_BYTES 4096
#endif
#ifndef PREFETCH_HINT
#define PREFETCH_HINT _MM_HINT_T0
#endif
enum { PREFETCH_AHEAD = PREFETCH_AHEAD_BYTES };

/// Requests the cache lines of the block `bytes` long that starts PREFETCH_AHEAD bytes after
/// `block`. Blocks are contiguous, so over a row every line is requested once or twice.
X86_TARGET static inline void prefetch_ahead(const uint8_t *block, int bytes) {
    for (int offset = 0; offset < bytes; offset += 64)
        _mm_prefetch((const char *)block + PREFETCH_AHEAD + offset, PREFETCH_HINT);
}

// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 with one token: the same integer sums and float steps as
// matmul_q32 (bit-identical results), without the per-token bookkeeping.
X86_TARGET static inline __attribute__((always_inline)) void matvec_q32_typed(const int type, int n, const uint8_t *w,
                                                                              size_t row_bytes, int r0, int r1,
                                                                              const uint8_t *act, float *y) {
    const int nb = n / 32;
    const int bytes = type == SPEC_Q8_0   ? 34
                      : type == SPEC_Q4_0 ? 18
                      : type == SPEC_Q4_1 ? 20
                      : type == SPEC_Q5_0 ? 22
                                          : 24;
    const int offset = type == SPEC_Q4_0 ? 8 : type == SPEC_Q5_0 ? 16 : 0;
    const int has_min = type == SPEC_Q4_1 || type == SPEC_Q5_1;
    const spec_act_view a = spec_act_at(SPEC_ACT_Q8_32, n, act);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps();
        float acc_min = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bytes;
            if ((b & 1) == 0) prefetch_ahead(blk, 2 * bytes);
            const __m256i x = _mm256_loadu_si256((const __m256i *)(a.q + b * 32));
            __m256i p;
            if (type == SPEC_Q8_0) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
                p = dot_u8_s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
            } else {
                const __m256i q = q32_unpack(type, blk);
                p = dot_u8_s8(q, x);
                if (offset) p = _mm256_sub_epi32(p, _mm256_setr_epi32(offset * a.s[b], 0, 0, 0, 0, 0, 0, 0));
                if (has_min) acc_min += half_f16c(blk + 2) * a.d[b] * (float)a.s[b];
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_f16c(blk) * a.d[b]), _mm256_cvtepi32_ps(p), acc);
        }
        y[r] = hsum(acc) + acc_min;
    }
}

// One copy per type, so the per-block type tests fold away.
X86_TARGET static void matvec_q8_0(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, float *y) {
    matvec_q32_typed(SPEC_Q8_0, n, w, rb, r0, r1, act, y);
}
X86_TARGET static void matvec_q4_0(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, float *y) {
    matvec_q32_typed(SPEC_Q4_0, n, w, rb, r0, r1, act, y);
}
X86_TARGET static void matvec_q4_1(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, float *y) {
    matvec_q32_typed(SPEC_Q4_1, n, w, rb, r0, r1, act, y);
}
X86_TARGET static void matvec_q5_0(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, float *y) {
    matvec_q32_typed(SPEC_Q5_0, n, w, rb, r0, r1, act, y);
}
X86_TARGET static void matvec_q5_1(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, float *y) {
    matvec_q32_typed(SPEC_Q5_1, n, w, rb, r0, r1, act, y);
}

X86_TARGET static void matvec_q32(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                                  const uint8_t *act, float *y) {
    switch (type) {
    case SPEC_Q8_0: matvec_q8_0(n, w, row_bytes, r0, r1, act, y); break;
    case SPEC_Q4_0: matvec_q4_0(n, w, row_bytes, r0, r1, act, y); break;
    case SPEC_Q4_1: matvec_q4_1(n, w, row_bytes, r0, r1, act, y); break;
    case SPEC_Q5_0: matvec_q5_0(n, w, row_bytes, r0, r1, act, y); break;
    default: matvec_q5_1(n, w, row_bytes, r0, r1, act, y); break;
    }
}

// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 against Q8_32 activations.
X86_TARGET static inline __attribute__((always_inline)) void matmul_q32_typed(const int type, int n, const uint8_t *w,
                                                                              size_t row_bytes, int r0, int r1,
                                                                              const uint8_t *act, size_t act_stride,
                                                                              int T, float *y, size_t y_stride) {
    const int nb = n / 32;
    const int bytes = type == SPEC_Q8_0   ? 34
                      : type == SPEC_Q4_0 ? 18
                      : type == SPEC_Q4_1 ? 20
                      : type == SPEC_Q5_0 ? 22
                                          : 24;
    const int offset = type == SPEC_Q4_0 ? 8 : type == SPEC_Q5_0 ? 16 : 0;
    const int has_min = type == SPEC_Q4_1 || type == SPEC_Q5_1;
    spec_act_view views[TOKEN_CHUNK];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            __m256 acc[TOKEN_CHUNK];
            float acc_min[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = _mm256_setzero_ps();
                acc_min[k] = 0.0f;
                views[k] = spec_act_at(SPEC_ACT_Q8_32, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                if (t0 == 0 && (b & 1) == 0) prefetch_ahead(blk, 2 * bytes);
                const float dw = half_f16c(blk);
                if (type == SPEC_Q8_0) {
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
                    const __m256i aq = _mm256_sign_epi8(q, q);
                    for (int k = 0; k < tc; k++) {
                        const __m256i x = _mm256_loadu_si256((const __m256i *)(views[k].q + b * 32));
                        const __m256i p = dot_u8_s8(aq, _mm256_sign_epi8(x, q));
                        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * views[k].d[b]), _mm256_cvtepi32_ps(p), acc[k]);
                    }
                    continue;
                }
                const __m256i q = q32_unpack(type, blk);
                const float m = has_min ? half_f16c(blk + 2) : 0.0f;
                for (int k = 0; k < tc; k++) {
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(views[k].q + b * 32));
                    __m256i p = dot_u8_s8(q, x);
                    if (offset) p = _mm256_sub_epi32(p, _mm256_setr_epi32(offset * views[k].s[b], 0, 0, 0, 0, 0, 0, 0));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * views[k].d[b]), _mm256_cvtepi32_ps(p), acc[k]);
                    if (has_min) acc_min[k] += m * views[k].d[b] * (float)views[k].s[b];
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]) + acc_min[k];
        }
    }
}

#define MATMUL_Q32(NAME, TYPE)                                                                                         \
    X86_TARGET static void NAME(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, size_t stride, \
                                int T, float *y, size_t y_stride) {                                                    \
        matmul_q32_typed(TYPE, n, w, rb, r0, r1, act, stride, T, y, y_stride);                                         \
    }
MATMUL_Q32(matmul_q8_0, SPEC_Q8_0)
MATMUL_Q32(matmul_q4_0, SPEC_Q4_0)
MATMUL_Q32(matmul_q4_1, SPEC_Q4_1)
MATMUL_Q32(matmul_q5_0, SPEC_Q5_0)
MATMUL_Q32(matmul_q5_1, SPEC_Q5_1)
#undef MATMUL_Q32

X86_TARGET static void matmul_q32(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                                  const uint8_t *act, size_t act_stride, int T, float *y, size_t y_stride) {
    switch (type) {
    case SPEC_Q8_0: matmul_q8_0(n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride); break;
    case SPEC_Q4_0: matmul_q4_0(n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride); break;
    case SPEC_Q4_1: matmul_q4_1(n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride); break;
    case SPEC_Q5_0: matmul_q5_0(n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride); break;
    default: matmul_q5_1(n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride); break;
    }
}

/// A Q4_K/Q5_K block's eight scales as 16-bit words in both lanes, and its eight mins each
/// repeated twice (lined up with the 16 activation sums of 16 values each), unpacked with byte
/// shuffles. The 12 packed bytes: [0..3] scales 0-3 (6 bits; top 2 bits = high bits of scales
/// 4-7), [4..7] mins 0-3 (likewise for mins 4-7), [8..11] low nibbles scales 4-7, high nibbles
/// mins 4-7. Reads 16 bytes; the block's 4-bit values follow, so that stays inside it.
X86_TARGET static inline void k4_scales(const uint8_t *packed, __m256i *scales, __m256i *min_pairs) {
    const __m128i v = _mm_loadu_si128((const __m128i *)packed);
    // Bytes 0-7 become scales 0-7, bytes 8-15 mins 0-7: first the 6- or 4-bit parts ...
    const __m128i body = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i nibbles = _mm_blend_epi16(body, _mm_srli_epi16(body, 4), 0xC0); // mins 4-7: high nibbles
    const __m128i low =
        _mm_and_si128(nibbles, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    // ... then the top two bits of entries 4-7, taken from bits 6-7 of bytes 0-3 and 4-7.
    const __m128i tops = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i all = _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(tops, 2), _mm_set1_epi8(0x30)));
    const __m256i both = _mm256_broadcastsi128_si256(all);
    *scales = _mm256_shuffle_epi8(both, _mm256_setr_epi8(0, -1, 1, -1, 2, -1, 3, -1, 4, -1, 5, -1, 6, -1, 7, -1, 0, -1,
                                                         1, -1, 2, -1, 3, -1, 4, -1, 5, -1, 6, -1, 7, -1));
    *min_pairs =
        _mm256_shuffle_epi8(both, _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1, 12, -1,
                                                   12, -1, 13, -1, 13, -1, 14, -1, 14, -1, 15, -1, 15, -1));
}

/// The 6-bit values of sub-block pair c (0 or 1) of a Q6_K block: four vectors of 32.
X86_TARGET static inline void q6_unpack(const uint8_t *blk, int c, __m256i *q) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
    const __m256i qa = _mm256_loadu_si256((const __m256i *)(blk + c * 64));
    const __m256i qb = _mm256_loadu_si256((const __m256i *)(blk + c * 64 + 32));
    const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + c * 32));
    q[0] = _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_slli_epi16(_mm256_and_si256(h, two), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(qb, low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), two), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), two), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), two), 4));
}
