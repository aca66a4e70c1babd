// The int8 dot-product (VNNI) kernels, compiled once per encoding of the instructions:
// avx512vnni.c (EVEX: AVX-512 F/BW/VL + VNNI, 32 vector registers) and avxvnni.c (VEX:
// AVX-VNNI). Not a header of its own: each includer defines
//   VNNI_TARGET             the target attribute (empty when built against SIMDe)
//   VNNI_DPBUSD(acc, u, s)  acc + four u8 x s8 products per int32 lane (vpdpbusd)
//   VNNI_DPWSSD(acc, a, b)  acc + two i16 x i16 products per int32 lane (vpdpwssd)
// and then defines its spec_kernel_set with vnni_matmul and VNNI_OPS.
//
// The 32-element block types (Q8_0, Q4_0/1, Q5_0/1) use x86_common.h with vpdpbusd in place of
// maddubs + madd: the same integer sums in the same lanes, so they equal the AVX2 set bit for bit.
//
// The K-quants (Q4_K, Q5_K, Q6_K) reproduce the portable kernels bit for bit instead. Per
// (row, token, block) they compute the block's exact integer totals — sumi = sum over
// sub-blocks of scale * (q . x) and the mins' or offset's sum — and then take the portable
// float steps in the portable order, several tokens per vector:
//     acc += (d * dx) * (float)sumi;  acc_min += (dmin * dx) * (float)summ;  y = acc - acc_min
// Integer sums are exact in any grouping, so how the lanes are arranged (one token or four, any
// batch size, any thread) cannot change a result: batch invariance holds by construction.
//
// The sub-block scales are applied without a 32-bit multiply: vpdpbusd gives each 32-weight
// sub-block's dot product as 8 lanes of 4 products (|lane| <= 4 * 63 * 127 < 2^15), two such
// vectors are packed to 16-bit words (exact, no saturation), and one vpdpwssd multiplies the
// words by their scales and adds them to the running total: per 64 weights and token two
// vpdpbusd + one vpdpwssd, against four maddubs/madd in the AVX2 set.
#include <pthread.h>
#include <stdlib.h>
#define X86_TARGET VNNI_TARGET
// The other operations: AVX2's, except in the SIMDe build (whose CPU may lack AVX2).
#if defined(SPEC_SIMDE)
#define VNNI_OPS SPEC_PORTABLE_OPS
#else
#define VNNI_OPS SPEC_AVX2_OPS
#endif
// SPEC_CHECK_MUTANT (kernel check builds only) breaks one kernel on purpose, to prove that the
// check catches it: 1 = 32-element dot products off by one per lane, 2 = Q4_K/Q5_K sub-blocks
// given their neighbour's scale, 3 = Q6_K's +32 offset removed as +16, 4 = packed Q4_0's -8
// offset applied as -7.
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 1
#define X86_DOT_U8_S8(w, x) VNNI_DPBUSD(_mm256_set1_epi32(1), w, x)
#else
#define X86_DOT_U8_S8(w, x) VNNI_DPBUSD(_mm256_setzero_si256(), w, x)
#endif
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 2
#define K4_PAIR(c) ((c) ^ 1)
#else
#define K4_PAIR(c) (c)
#endif
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 3
#define Q6_OFFSET_SHIFT 4
#else
#define Q6_OFFSET_SHIFT 5
#endif
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 4
#define Q4_0_OFFSET 7
#else
#define Q4_0_OFFSET 8
#endif
#include "x86_common.h"

/// Q4_K/Q5_K: word positions 0-3 of each 128-bit lane take 16-bit word 2c of the scales vector
/// (sub-block 2c), positions 4-7 word 2c + 1, lined up with packs_epi32(dot 2c, dot 2c + 1).
static const uint8_t k4_scale_pairs[4][32] = {
#define S(c)                                                                                                           \
    {                                                                                                                  \
        4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3, 4 * c + 2,       \
            4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c,          \
            4 * c + 1, 4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2,  \
            4 * c + 3                                                                                                  \
    }
    S(0), S(1), S(2), S(3)
#undef S
};

/// Q6_K: scale bytes into the high byte of 16-bit words (then an arithmetic shift sign-extends
/// them). packs_epi32(dot j, dot j + 1) for j = 2p holds 16-value sub-blocks 2j, 2j + 2 in the
/// low lane and 2j + 1, 2j + 3 in the high lane.
static const uint8_t q6_scale_words[4][32] = {
#define Z 0x80
#define Q(p)                                                                                                           \
    {                                                                                                                  \
        Z, 4 * p, Z, 4 * p, Z, 4 * p, Z, 4 * p, Z, 4 * p + 2, Z, 4 * p + 2, Z, 4 * p + 2, Z, 4 * p + 2, Z, 4 * p + 1,  \
            Z, 4 * p + 1, Z, 4 * p + 1, Z, 4 * p + 1, Z, 4 * p + 3, Z, 4 * p + 3, Z, 4 * p + 3, Z, 4 * p + 3           \
    }
    Q(0), Q(1), Q(2), Q(3)
#undef Q
#undef Z
};

/// Sums each of a[t] and b[t] (t < TOKENS <= 4) over its 8 lanes (exactly, in int32): lanes
/// [a0, b0, a1, b1 | a2, b2, a3, b3]; lanes of tokens past TOKENS are not meaningful.
X86_TARGET static inline __m256i reduce_pairs(const int TOKENS, const __m256i *a, const __m256i *b) {
    if (TOKENS == 1) { // decoding: two horizontal adds instead of six
        const __m256i h = _mm256_hadd_epi32(a[0], b[0]), hh = _mm256_hadd_epi32(h, h);
        return _mm256_zextsi128_si256(_mm_add_epi32(_mm256_castsi256_si128(hh), _mm256_extracti128_si256(hh, 1)));
    }
    const __m256i h0 = _mm256_hadd_epi32(a[0], b[0]), h1 = _mm256_hadd_epi32(a[1], b[1]);
    const __m256i h2 = _mm256_hadd_epi32(a[2], b[2]), h3 = _mm256_hadd_epi32(a[3], b[3]);
    const __m256i g0 = _mm256_hadd_epi32(h0, h1), g1 = _mm256_hadd_epi32(h2, h3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(g0, g1, 0x20), _mm256_permute2x128_si256(g0, g1, 0x31));
}

/// Activation scales of block b for up to four tokens, each twice: [dx0, dx0, dx1, dx1, ...].
X86_TARGET static inline __m256 token_scales(const int TOKENS, const spec_act_view *a, int b) {
    float d[4] = {0, 0, 0, 0};
    for (int t = 0; t < TOKENS; t++) d[t] = a[t].d[b];
    return _mm256_setr_ps(d[0], d[0], d[1], d[1], d[2], d[2], d[3], d[3]);
}

/// The 64 values of 32-byte chunk c (0..3) of a Q4_K/Q5_K block: sub-block 2c (low nibbles) and
/// 2c + 1 (high nibbles), with Q5_K's fifth bits.
X86_TARGET static inline void k45_unpack(const int TYPE, const uint8_t *blk, int c, __m256i *q0, __m256i *q1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + (TYPE == SPEC_Q4_K ? 16 : 48) + 32 * c));
    *q0 = _mm256_and_si256(v, low4);
    *q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    if (TYPE == SPEC_Q5_K) {
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)(blk + 16));
        *q0 = _mm256_or_si256(*q0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c), one), 4));
        *q1 = _mm256_or_si256(*q1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * c + 1), one), 4));
    }
}

// Q4_K and Q5_K with one to four tokens (TYPE and TOKENS constant at each call site), one row
// at a time so each thread streams one place of the weights.
X86_TARGET static inline __attribute__((always_inline)) void k45_tokens(const int TYPE, const int TOKENS, int n,
                                                                        const uint8_t *w, size_t row_bytes, int r0,
                                                                        int r1, const uint8_t *act, size_t act_stride,
                                                                        float *y, size_t y_stride) {
    const int nb = n / 256, bytes = TYPE == SPEC_Q4_K ? 144 : 176;
    spec_act_view a[4];
    for (int t = 0; t < TOKENS; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)t * act_stride);
    const __m256i zero = _mm256_setzero_si256();
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps(); // [acc, acc_min] per token
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bytes;
            prefetch_ahead(blk, bytes);
            __m256i scales, min_pairs, tot[4], msum[4];
            k4_scales(blk + 4, &scales, &min_pairs);
            for (int t = 0; t < 4; t++) tot[t] = msum[t] = zero;
            for (int c = 0; c < 4; c++) {
                __m256i q0, q1;
                k45_unpack(TYPE, blk, c, &q0, &q1);
                const __m256i pair_scales =
                    _mm256_shuffle_epi8(scales, _mm256_loadu_si256((const __m256i *)k4_scale_pairs[K4_PAIR(c)]));
                for (int t = 0; t < TOKENS; t++) {
                    const int8_t *x = a[t].q + b * 256 + 64 * c;
                    const __m256i d0 = VNNI_DPBUSD(zero, q0, _mm256_loadu_si256((const __m256i *)x));
                    const __m256i d1 = VNNI_DPBUSD(zero, q1, _mm256_loadu_si256((const __m256i *)(x + 32)));
                    tot[t] = VNNI_DPWSSD(tot[t], _mm256_packs_epi32(d0, d1), pair_scales);
                }
            }
            for (int t = 0; t < TOKENS; t++)
                msum[t] = _mm256_madd_epi16(min_pairs, _mm256_loadu_si256((const __m256i *)(a[t].s + b * 16)));
            uint32_t halves;
            memcpy(&halves, blk, 4);
            const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)halves)); // [d, dmin, 0, 0]
            const __m256 dm4 = _mm256_castpd_ps(_mm256_broadcastsd_pd(_mm_castps_pd(dm)));
            const __m256 totals = _mm256_cvtepi32_ps(reduce_pairs(TOKENS, tot, msum));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(dm4, token_scales(TOKENS, a, b)), totals));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        for (int t = 0; t < TOKENS; t++) y[(size_t)t * y_stride + r] = lanes[2 * t] - lanes[2 * t + 1];
    }
}

// Q6_K with one to four tokens, one row at a time.
X86_TARGET static inline __attribute__((always_inline)) void q6_tokens(const int TOKENS, int n, const uint8_t *w,
                                                                       size_t row_bytes, int r0, int r1,
                                                                       const uint8_t *act, size_t act_stride, float *y,
                                                                       size_t y_stride) {
    const int nb = n / 256;
    spec_act_view a[4];
    for (int t = 0; t < TOKENS; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)t * act_stride);
    const __m256i zero = _mm256_setzero_si256();
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps(); // [acc, unused] per token
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 210;
            prefetch_ahead(blk, 210);
            const __m128i scale_bytes = _mm_loadu_si128((const __m128i *)(blk + 192));
            const __m256i both = _mm256_broadcastsi128_si256(scale_bytes), scales16 = _mm256_cvtepi8_epi16(scale_bytes);
            __m256i pair_scales[4], tot[4], none[4];
            for (int p = 0; p < 4; p++)
                pair_scales[p] = _mm256_srai_epi16(
                    _mm256_shuffle_epi8(both, _mm256_loadu_si256((const __m256i *)q6_scale_words[p])), 8);
            for (int t = 0; t < 4; t++) tot[t] = none[t] = zero;
            for (int c = 0; c < 2; c++) {
                __m256i q[4];
                q6_unpack(blk, c, q);
                for (int t = 0; t < TOKENS; t++) {
                    const int8_t *x = a[t].q + b * 256 + 128 * c;
                    __m256i d[4];
                    for (int i = 0; i < 4; i++)
                        d[i] = VNNI_DPBUSD(zero, q[i], _mm256_loadu_si256((const __m256i *)(x + 32 * i)));
                    tot[t] = VNNI_DPWSSD(tot[t], _mm256_packs_epi32(d[0], d[1]), pair_scales[2 * c]);
                    tot[t] = VNNI_DPWSSD(tot[t], _mm256_packs_epi32(d[2], d[3]), pair_scales[2 * c + 1]);
                }
            }
            // The stored values are q + 32: subtract 32 * sum of scale * activation sum per 16.
            for (int t = 0; t < TOKENS; t++)
                tot[t] = _mm256_sub_epi32(
                    tot[t], _mm256_slli_epi32(
                                _mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *)(a[t].s + b * 16))),
                                Q6_OFFSET_SHIFT));
            const __m256 totals = _mm256_cvtepi32_ps(reduce_pairs(TOKENS, tot, none));
            const __m256 d = _mm256_set1_ps(half_f16c(blk + 208));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(d, token_scales(TOKENS, a, b)), totals));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        for (int t = 0; t < TOKENS; t++) y[(size_t)t * y_stride + r] = lanes[2 * t];
    }
}

#define VNNI_TOKENS(NAME, CALL)                                                                                        \
    X86_TARGET static void NAME(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, size_t stride, \
                                float *y, size_t y_stride) {                                                           \
        CALL;                                                                                                          \
    }
VNNI_TOKENS(q4_K_1, k45_tokens(SPEC_Q4_K, 1, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q4_K_2, k45_tokens(SPEC_Q4_K, 2, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q4_K_3, k45_tokens(SPEC_Q4_K, 3, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q4_K_4, k45_tokens(SPEC_Q4_K, 4, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q5_K_1, k45_tokens(SPEC_Q5_K, 1, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q5_K_2, k45_tokens(SPEC_Q5_K, 2, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q5_K_3, k45_tokens(SPEC_Q5_K, 3, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q5_K_4, k45_tokens(SPEC_Q5_K, 4, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q6_K_1, q6_tokens(1, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q6_K_2, q6_tokens(2, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q6_K_3, q6_tokens(3, n, w, rb, r0, r1, act, stride, y, y_stride))
VNNI_TOKENS(q6_K_4, q6_tokens(4, n, w, rb, r0, r1, act, stride, y, y_stride))
#undef VNNI_TOKENS

// ---- Eight tokens per vector (batches of 8 and more) ----------------------------------------
//
// Larger batches are compute-bound, and there the lanes hold tokens instead of weights: the
// activations of 8 tokens are transposed once per call so that one 32-byte vector holds the
// same 4 activation bytes of each token, and each 4-byte group of unpacked weights is broadcast
// to all lanes. One vpdpbusd then advances 8 tokens by 4 products each, a sub-block's scale is
// one 32-bit multiply per 8 tokens (instead of a vpdpwssd per token), and the float steps run
// on 8 tokens at once. The integer totals are exact, so results equal the narrow kernels' bit
// for bit and a batch's remainder (T mod 8) goes through those.

enum { WIDE = 8 };
/// Batches from this many tokens take the wide kernels (every whole group of 8 tokens; the rest
/// goes through the narrow ones). With four rows per pass they ran ~1.5x the narrow kernels'
/// rate on Q4_K at 8 tokens in L1 (Zen 4, single thread: 67 vs 47 GMAC/s; avx2 45).
/// -DSPEC_WIDE_MIN=N when building the kernel benchmark compares thresholds.
#ifndef SPEC_WIDE_MIN
#define SPEC_WIDE_MIN 8
#endif

/// 8 tokens' activation rows in lanes: q[d][t] is the d-th 4-byte group of token t, sums[b][p][t]
/// the p-th pair of 16-value sums of block b, scales[b][t] the block's scale.
typedef struct {
    int32_t *q, *sums;
    float *scales;
    uint8_t *row;   ///< scratch: up to 4 rows of unpacked weights (n bytes each)
    int32_t *words; ///< scratch: 24 scale words per row and block (wide_unpack)
} wide_acts;

static _Thread_local void *wide_data;
static _Thread_local size_t wide_capacity;
static pthread_key_t wide_key;
static int wide_key_ready;
static pthread_once_t wide_once = PTHREAD_ONCE_INIT;
static void wide_release(void *buffer) {
    free(buffer);
    wide_data = NULL;
    wide_capacity = 0;
}
static void wide_key_create(void) {
    wide_key_ready = pthread_key_create(&wide_key, wide_release) == 0;
}

/// A per-thread buffer for the transposed activations, grown as needed. The thread that calls a
/// product works on it too, and may be any thread (a dispatch worker, a server's), so the buffer
/// is freed when its thread exits (a thread-specific key's destructor); AddressSanitizer's leak
/// check found it lost with its thread. NULL when memory runs out; the caller then takes the
/// narrow kernels.
static void *wide_buffer(size_t bytes) {
    if (bytes > wide_capacity) {
        free(wide_data);
        wide_capacity = 0;
        pthread_once(&wide_once, wide_key_create);
        wide_data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (wide_key_ready) pthread_setspecific(wide_key, wide_data);
        if (!wide_data) return NULL;
        wide_capacity = bytes;
    }
    return wide_data;
}

/// Transposes 8 rows of 8 int32 (row t at rows + t * stride bytes) into out[k * 8 + t].
X86_TARGET static inline void transpose8(const uint8_t *rows, size_t stride, int32_t *out) {
    __m256i r[8];
    for (int t = 0; t < 8; t++) r[t] = _mm256_loadu_si256((const __m256i *)(rows + (size_t)t * stride));
    const __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
    const __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
    const __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
    const __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
    const __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
    const __m256i c[8] = {
        _mm256_permute2x128_si256(b0, b4, 0x20), _mm256_permute2x128_si256(b1, b5, 0x20),
        _mm256_permute2x128_si256(b2, b6, 0x20), _mm256_permute2x128_si256(b3, b7, 0x20),
        _mm256_permute2x128_si256(b0, b4, 0x31), _mm256_permute2x128_si256(b1, b5, 0x31),
        _mm256_permute2x128_si256(b2, b6, 0x31), _mm256_permute2x128_si256(b3, b7, 0x31),
    };
    for (int k = 0; k < 8; k++) _mm256_storeu_si256((__m256i *)(out + k * 8), c[k]);
}

/// Lays out 8 tokens' Q8_256 activation rows for the wide kernels; false when out of memory.
X86_TARGET static int wide_prepare(int n, const uint8_t *act, size_t act_stride, wide_acts *w) {
    const int nb = n / 256;
    int32_t *base = wide_buffer((size_t)n * WIDE + (size_t)nb * 8 * WIDE * 4 + (size_t)nb * WIDE * 4 +
                                (size_t)nb * 4 * 24 * 4 + (size_t)n * 4);
    if (!base) return 0;
    w->q = base;
    w->sums = base + (size_t)n / 4 * WIDE;
    w->scales = (float *)(w->sums + (size_t)nb * 8 * WIDE);
    w->words = (int32_t *)(w->scales + (size_t)nb * WIDE);
    w->row = (uint8_t *)(w->words + (size_t)nb * 4 * 24);
    const spec_act_view first = spec_act_at(SPEC_ACT_Q8_256, n, act);
    const size_t q_offset = (size_t)((const uint8_t *)first.q - act),
                 s_offset = (size_t)((const uint8_t *)first.s - act);
    for (int c = 0; c < n / 32; c++) transpose8(act + q_offset + 32 * (size_t)c, act_stride, w->q + (size_t)c * 64);
    for (int b = 0; b < nb; b++) {
        transpose8(act + s_offset + 32 * (size_t)b, act_stride, w->sums + (size_t)b * 64);
        for (int t = 0; t < WIDE; t++)
            w->scales[b * WIDE + t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)t * act_stride).d[b];
    }
    return 1;
}

/// Stores 8 tokens' results of row r.
X86_TARGET static inline void wide_store(__m256 v, float *y, size_t y_stride, int r) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    for (int t = 0; t < WIDE; t++) y[(size_t)t * y_stride + r] = lanes[t];
}

/// Unpacks ROWS rows of a K-quant matrix for the wide kernels: the weights as bytes, one row
/// after another (`n` bytes each), and per row and block the 32-bit words the kernels multiply
/// with: Q4_K/Q5_K the 8 sub-block scales and the 8 mins as (min, min) word pairs, Q6_K the 16
/// scales and the 8 (scale, scale) pairs of neighbouring 16-value sub-blocks. The whole group is
/// unpacked before any of it is read back as 4-byte broadcasts: a load that closely follows
/// a wider store of the same bytes waits for that store to complete. Weights are prefetched a
/// few pages ahead as in the narrow kernels: without it the unpacking waited on memory for a
/// third of the kernel's time at 8 tokens.
X86_TARGET static inline __attribute__((always_inline)) void
wide_unpack(const int TYPE, const int ROWS, int n, const uint8_t *w, size_t row_bytes, int r, const wide_acts *x) {
    const int nb = n / 256;
    for (int i = 0; i < ROWS; i++) {
        const uint8_t *row = w + (size_t)(r + i) * row_bytes;
        for (int b = 0; b < nb; b++) {
            uint8_t *q = x->row + (size_t)i * n + 256 * b;
            int32_t *words = x->words + ((size_t)i * nb + b) * 24;
            if (TYPE == SPEC_Q6_K) {
                const uint8_t *blk = row + (size_t)b * 210;
                const int8_t *sc = (const int8_t *)(blk + 192);
                prefetch_ahead(blk, 210);
                for (int c = 0; c < 2; c++) {
                    __m256i v[4];
                    q6_unpack(blk, c, v);
                    for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(q + 128 * c + 32 * k), v[k]);
                }
                for (int g = 0; g < 16; g++) words[g] = sc[g];
                for (int p = 0; p < 8; p++)
                    words[16 + p] = (int32_t)((uint32_t)(uint16_t)(int16_t)sc[2 * p] |
                                              (uint32_t)(uint16_t)(int16_t)sc[2 * p + 1] << 16);
            } else {
                const uint8_t *blk = row + (size_t)b * (TYPE == SPEC_Q4_K ? 144 : 176);
                prefetch_ahead(blk, TYPE == SPEC_Q4_K ? 144 : 176);
                for (int c = 0; c < 4; c++) {
                    __m256i q0, q1;
                    k45_unpack(TYPE, blk, c, &q0, &q1);
                    _mm256_storeu_si256((__m256i *)(q + 64 * c), q0);
                    _mm256_storeu_si256((__m256i *)(q + 64 * c + 32), q1);
                }
                for (int j = 0; j < 8; j++) {
                    uint8_t sc, mn;
                    spec_scale_min_k4(blk + 4, j, &sc, &mn);
                    words[j] = sc;
                    words[8 + j] = (int32_t)(mn * 0x10001u);
                }
            }
        }
    }
}

/// Sub-blocks of `VALUES` weights (32 for Q4_K/Q5_K, 16 for Q6_K) of block b of ROWS unpacked
/// rows against 8 tokens: tot[i] += scale * dot per sub-block. Per pair of 4-byte groups the two
/// activation vectors are loaded once for all rows, and each row has two chains (even and odd
/// groups), so 2 * ROWS vpdpbusd are in flight and loads per vpdpbusd stay at 1 + 1/ROWS.
X86_TARGET static inline __attribute__((always_inline)) void wide_block(const int VALUES, const int ROWS, int n,
                                                                        const wide_acts *x, int b, __m256i *tot) {
    const int nb = n / 256, groups = VALUES / 4;
    const int32_t *xq = x->q + (size_t)b * 64 * WIDE;
    for (int s = 0; s < 256 / VALUES; s++) {
        __m256i even[4], odd[4];
        for (int i = 0; i < ROWS; i++) even[i] = odd[i] = _mm256_setzero_si256();
        for (int k = 0; k < groups; k += 2) {
            const int d = s * groups + k; // 4-byte group within the block
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + d * WIDE));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + (d + 1) * WIDE));
            for (int i = 0; i < ROWS; i++) {
                const uint8_t *q = x->row + (size_t)i * n + 256 * b + 4 * d;
                int32_t w0, w1;
                memcpy(&w0, q, 4);
                memcpy(&w1, q + 4, 4);
                even[i] = VNNI_DPBUSD(even[i], _mm256_set1_epi32(w0), x0);
                odd[i] = VNNI_DPBUSD(odd[i], _mm256_set1_epi32(w1), x1);
            }
        }
        for (int i = 0; i < ROWS; i++) {
            const int32_t scale = x->words[((size_t)i * nb + b) * 24 + s];
            tot[i] = _mm256_add_epi32(tot[i],
                                      _mm256_mullo_epi32(_mm256_add_epi32(even[i], odd[i]), _mm256_set1_epi32(scale)));
        }
    }
}

/// Q4_K/Q5_K (the mins) or Q6_K (the +32 offset): sum over the 8 word pairs of block b of
/// pair * (two 16-value activation sums), per row and token.
X86_TARGET static inline __attribute__((always_inline)) void wide_sums(const int ROWS, int n, const wide_acts *x, int b,
                                                                       int first, __m256i *out) {
    const int nb = n / 256;
    for (int i = 0; i < ROWS; i++) out[i] = _mm256_setzero_si256();
    for (int p = 0; p < 8; p++) {
        const __m256i sums = _mm256_loadu_si256((const __m256i *)(x->sums + ((size_t)b * 8 + p) * WIDE));
        for (int i = 0; i < ROWS; i++)
            out[i] = _mm256_add_epi32(
                out[i], _mm256_madd_epi16(_mm256_set1_epi32(x->words[((size_t)i * nb + b) * 24 + first + p]), sums));
    }
}

// K-quants for 8 tokens, ROWS rows at a time; the float steps are the portable ones per token.
X86_TARGET static inline __attribute__((always_inline)) void k_wide_rows(const int TYPE, const int ROWS, int n,
                                                                         const uint8_t *w, size_t row_bytes, int r,
                                                                         const wide_acts *x, float *y,
                                                                         size_t y_stride) {
    const int nb = n / 256;
    wide_unpack(TYPE, ROWS, n, w, row_bytes, r, x);
    __m256 acc[4], acc_min[4];
    for (int i = 0; i < ROWS; i++) acc[i] = acc_min[i] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i tot[4], sums[4];
        for (int i = 0; i < ROWS; i++) tot[i] = _mm256_setzero_si256();
        wide_block(TYPE == SPEC_Q6_K ? 16 : 32, ROWS, n, x, b, tot);
        wide_sums(ROWS, n, x, b, TYPE == SPEC_Q6_K ? 16 : 8, sums);
        const __m256 dx = _mm256_loadu_ps(x->scales + b * WIDE);
        for (int i = 0; i < ROWS; i++) {
            const uint8_t *row = w + (size_t)(r + i) * row_bytes;
            if (TYPE == SPEC_Q6_K) {
                const __m256i total = _mm256_sub_epi32(tot[i], _mm256_slli_epi32(sums[i], Q6_OFFSET_SHIFT));
                acc[i] = _mm256_add_ps(
                    acc[i], _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(half_f16c(row + (size_t)b * 210 + 208)), dx),
                                          _mm256_cvtepi32_ps(total)));
            } else {
                const uint8_t *blk = row + (size_t)b * (TYPE == SPEC_Q4_K ? 144 : 176);
                acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(half_f16c(blk)), dx),
                                                             _mm256_cvtepi32_ps(tot[i])));
                acc_min[i] =
                    _mm256_add_ps(acc_min[i], _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(half_f16c(blk + 2)), dx),
                                                            _mm256_cvtepi32_ps(sums[i])));
            }
        }
    }
    for (int i = 0; i < ROWS; i++)
        wide_store(TYPE == SPEC_Q6_K ? acc[i] : _mm256_sub_ps(acc[i], acc_min[i]), y, y_stride, r + i);
}

#define WIDE_KERNEL(NAME, TYPE)                                                                                        \
    X86_TARGET static void NAME(int n, const uint8_t *w, size_t rb, int r0, int r1, const wide_acts *x, float *y,      \
                                size_t ys) {                                                                           \
        int r = r0;                                                                                                    \
        for (; r + 4 <= r1; r += 4) k_wide_rows(TYPE, 4, n, w, rb, r, x, y, ys);                                       \
        for (; r < r1; r++) k_wide_rows(TYPE, 1, n, w, rb, r, x, y, ys);                                               \
    }
WIDE_KERNEL(q4_K_wide, SPEC_Q4_K)
WIDE_KERNEL(q5_K_wide, SPEC_Q5_K)
WIDE_KERNEL(q6_wide, SPEC_Q6_K)
#undef WIDE_KERNEL

// ---- Packed weights: eight rows per vector (repack.c's SPEC_Q4_K_X8 and SPEC_Q6_K_X8) ---------
//
// The runtime packs Q4_K and Q6_K matrices at load when this set is active (vnni_packs). There
// the lanes hold rows: one 32-byte vector holds the same four weights of eight rows, and each
// token's four activation bytes are broadcast to all lanes (EVEX builds take the broadcast
// straight from memory as vpdpbusd's operand). One vpdpbusd advances one token by four products
// in eight rows; the weights of a group of eight rows are one contiguous stream, unpacked once
// per block and reused by every token of a pass; a sub-block's scale is one vpmulld per token
// and eight rows; no horizontal sums; results are eight consecutive floats of a token's output.
// Exact integer totals and the portable float steps, so the results equal the portable kernels
// on the file's layout bit for bit, for any batch size.
enum { LANE_ROWS = 8, Q4_K_X8_BLOCK = 1184, Q6_K_X8_BLOCK = 1680 };
/// Tokens per pass over a group of rows (their sub-block sums and totals stay in registers).
#ifndef VNNI_LANE_TOKENS
#define VNNI_LANE_TOKENS 8
#endif
enum { LANE_TOKENS = VNNI_LANE_TOKENS };
/// Packed weights are requested 4 KiB ahead into L2, not L1 as in the narrow kernels: with the
/// L1 hint a single-token Q6_K product streamed from memory at half the speed (11-21 ms against
/// 7-11 ms for the 1.5B model's head, Zen 4); with no prefetch at all, at a third.
#ifndef PACKED_PREFETCH_BYTES
#define PACKED_PREFETCH_BYTES 4096
#endif
#ifndef PACKED_PREFETCH_HINT
#define PACKED_PREFETCH_HINT _MM_HINT_T1
#endif

static int vnni_packs(int type) {
    switch (type) {
    case SPEC_Q4_K: return SPEC_Q4_K_X8;
    case SPEC_Q6_K: return SPEC_Q6_K_X8;
    case SPEC_Q4_0: return SPEC_Q4_0_X8;
    case SPEC_Q5_0: return SPEC_Q5_0_X8;
    case SPEC_Q8_0: return SPEC_Q8_0_X8;
    default: return -1;
    }
}

/// The four activation bytes at x, broadcast.
X86_TARGET static inline __m256i broadcast4(const void *x) {
    int32_t v;
    memcpy(&v, x, 4);
    return _mm256_set1_epi32(v);
}

/// Q6_K_X8: the 6-bit weights of groups 8p + k (sub-block 2p) and 8p + 4 + k (sub-block 2p + 1).
X86_TARGET static inline void q6_x8_weights(const uint8_t *blk, int p, int k, __m256i *w0, __m256i *w1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
    const __m256i nibbles = _mm256_loadu_si256((const __m256i *)(blk + (4 * p + k) * 32));
    const __m256i h0 = _mm256_loadu_si256((const __m256i *)(blk + 1024 + 2 * p * 32));
    const __m256i h1 = _mm256_loadu_si256((const __m256i *)(blk + 1024 + (2 * p + 1) * 32));
    // Bits 2k..2k+1 of each byte to bits 4-5; a 16-bit shift only moves bits across bytes
    // outside the mask.
#define TOP_BITS(h)                                                                                                    \
    (k == 0 ? _mm256_slli_epi16(h, 4) : k == 1 ? _mm256_slli_epi16(h, 2) : k == 2 ? (h) : _mm256_srli_epi16(h, 2))
    *w0 = _mm256_or_si256(_mm256_and_si256(nibbles, low4), _mm256_and_si256(TOP_BITS(h0), top2));
    *w1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(nibbles, 4), low4), _mm256_and_si256(TOP_BITS(h1), top2));
#undef TOP_BITS
}

/// One packed block (block b) of eight rows against TOKENS tokens: acc[t] += (d * dx) * sumi,
/// acc_min[t] += (dmin * dx) * summ, eight rows per vector.
X86_TARGET static inline __attribute__((always_inline)) void lane_block(const int TYPE, const int TOKENS,
                                                                        const uint8_t *blk, int b,
                                                                        const spec_act_view *a, __m256 *acc,
                                                                        __m256 *acc_min) {
    const __m256i zero = _mm256_setzero_si256(), low4 = _mm256_set1_epi8(0x0F);
    // Two sub-blocks at a time, and with fewer than four tokens each sub-block's groups split
    // over SPLIT chains, so that at least eight vpdpbusd chains are in flight (its latency is
    // about four cycles; two issue per cycle).
    const int SPLIT = TOKENS == 1 ? 4 : TOKENS < 4 ? 2 : 1;
    __m256i tot[LANE_TOKENS], s0[4][LANE_TOKENS], s1[4][LANE_TOKENS];
    for (int t = 0; t < TOKENS; t++) tot[t] = zero;
    if (TYPE == SPEC_Q6_K) {
        for (int p = 0; p < 8; p++) { // sub-blocks 2p and 2p + 1, of 16 values (4 groups) each
            for (int s = 0; s < SPLIT; s++)
                for (int t = 0; t < TOKENS; t++) s0[s][t] = s1[s][t] = zero;
            for (int k = 0; k < 4; k++) {
                __m256i w0, w1;
                q6_x8_weights(blk, p, k, &w0, &w1);
                const int s = k % SPLIT;
                for (int t = 0; t < TOKENS; t++) {
                    const int8_t *x = a[t].q + 256 * b + 32 * p + 4 * k;
                    s0[s][t] = VNNI_DPBUSD(s0[s][t], w0, broadcast4(x));
                    s1[s][t] = VNNI_DPBUSD(s1[s][t], w1, broadcast4(x + 16));
                }
            }
            const __m256i scale0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1536 + 16 * p)));
            const __m256i scale1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1536 + 16 * p + 8)));
            for (int t = 0; t < TOKENS; t++) {
                __m256i d0 = s0[0][t], d1 = s1[0][t];
                for (int s = 1; s < SPLIT; s++)
                    d0 = _mm256_add_epi32(d0, s0[s][t]), d1 = _mm256_add_epi32(d1, s1[s][t]);
                tot[t] = _mm256_add_epi32(
                    tot[t], _mm256_add_epi32(_mm256_mullo_epi32(d0, scale0), _mm256_mullo_epi32(d1, scale1)));
            }
        }
        // The stored values are q + 32: minus 32 * the sum of scale * 16-value activation sum,
        // as (scale 2p, scale 2p + 1) word pairs against the two sums.
        __m256i pairs[8];
        for (int p = 0; p < 8; p++) {
            const __m128i c0 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(blk + 1536 + 16 * p)));
            const __m128i c1 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(blk + 1536 + 16 * p + 8)));
            pairs[p] = _mm256_setr_m128i(_mm_unpacklo_epi16(c0, c1), _mm_unpackhi_epi16(c0, c1));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 1664)));
        for (int t = 0; t < TOKENS; t++) {
            __m256i even = zero, odd = zero;
            for (int p = 0; p < 8; p += 2) {
                even = VNNI_DPWSSD(even, pairs[p], broadcast4(a[t].s + 16 * b + 2 * p));
                odd = VNNI_DPWSSD(odd, pairs[p + 1], broadcast4(a[t].s + 16 * b + 2 * p + 2));
            }
            const __m256i total =
                _mm256_sub_epi32(tot[t], _mm256_slli_epi32(_mm256_add_epi32(even, odd), Q6_OFFSET_SHIFT));
            acc[t] = _mm256_add_ps(
                acc[t], _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[t].d[b])), _mm256_cvtepi32_ps(total)));
        }
        return;
    }
    for (int c = 0; c < 4; c++) { // sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
        for (int s = 0; s < SPLIT; s++)
            for (int t = 0; t < TOKENS; t++) s0[s][t] = s1[s][t] = zero;
        for (int k = 0; k < 8; k++) {
            const __m256i packed = _mm256_loadu_si256((const __m256i *)(blk + (8 * c + k) * 32));
            const __m256i w0 = _mm256_and_si256(packed, low4),
                          w1 = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
            const int s = k % SPLIT;
            for (int t = 0; t < TOKENS; t++) {
                const int8_t *x = a[t].q + 256 * b + 64 * c + 4 * k;
                s0[s][t] = VNNI_DPBUSD(s0[s][t], w0, broadcast4(x));
                s1[s][t] = VNNI_DPBUSD(s1[s][t], w1, broadcast4(x + 32));
            }
        }
        const __m256i scale0 =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1024 + 8 * K4_PAIR(2 * c))));
        const __m256i scale1 =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1024 + 8 * K4_PAIR(2 * c + 1))));
        for (int t = 0; t < TOKENS; t++) {
            __m256i d0 = s0[0][t], d1 = s1[0][t];
            for (int s = 1; s < SPLIT; s++) d0 = _mm256_add_epi32(d0, s0[s][t]), d1 = _mm256_add_epi32(d1, s1[s][t]);
            tot[t] = _mm256_add_epi32(tot[t],
                                      _mm256_add_epi32(_mm256_mullo_epi32(d0, scale0), _mm256_mullo_epi32(d1, scale1)));
        }
    }
    // The mins: per row, the sum over sub-blocks j of min_j * (the 32-value sum of j), as
    // (min_j, min_j+1) word pairs against the pair of sums of sub-blocks j and j + 1: four
    // vpdpwssd per token and block (with the two 16-value sums per sub-block it took eight, and
    // dropping this term altogether sped the 8-token kernel up by 11%).
    __m256i mins[4];
    for (int j = 0; j < 4; j++) {
        const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1024 + 8 * (8 + 2 * j))));
        const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 1024 + 8 * (9 + 2 * j))));
        mins[j] = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 1152)));
    const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 1168)));
    for (int t = 0; t < TOKENS; t++) {
        const int16_t *sums = a[t].s32 + 8 * b;
        const __m256i even = VNNI_DPWSSD(VNNI_DPWSSD(zero, mins[0], broadcast4(sums)), mins[2], broadcast4(sums + 4));
        const __m256i odd =
            VNNI_DPWSSD(VNNI_DPWSSD(zero, mins[1], broadcast4(sums + 2)), mins[3], broadcast4(sums + 6));
        const __m256 dx = _mm256_set1_ps(a[t].d[b]);
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(tot[t])));
        acc_min[t] = _mm256_add_ps(
            acc_min[t], _mm256_mul_ps(_mm256_mul_ps(dmin, dx), _mm256_cvtepi32_ps(_mm256_add_epi32(even, odd))));
    }
}

/// A whole group of eight packed rows against TOKENS tokens: out[t] = the eight rows' results.
X86_TARGET static inline __attribute__((always_inline)) void lane_group(const int TYPE, const int TOKENS, int nb,
                                                                        const uint8_t *group, const spec_act_view *a,
                                                                        float (*out)[LANE_ROWS]) {
    const int bytes = TYPE == SPEC_Q6_K ? Q6_K_X8_BLOCK : Q4_K_X8_BLOCK;
    __m256 acc[LANE_TOKENS], acc_min[LANE_TOKENS];
    for (int t = 0; t < TOKENS; t++) acc[t] = acc_min[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = group + (size_t)b * bytes;
        for (int o = 0; o < bytes; o += 64)
            _mm_prefetch((const char *)blk + PACKED_PREFETCH_BYTES + o, PACKED_PREFETCH_HINT);
        lane_block(TYPE, TOKENS, blk, b, a, acc, acc_min);
    }
    for (int t = 0; t < TOKENS; t++)
        _mm256_storeu_ps(out[t], TYPE == SPEC_Q6_K ? acc[t] : _mm256_sub_ps(acc[t], acc_min[t]));
}

// The packed 32-value block types (Q4_0_X8, Q5_0_X8, Q8_0_X8), shared with the AVX2 set.
#define Q32_DOT(acc, u, s) VNNI_DPBUSD(acc, u, s)
#define Q32_Q8_UNSIGNED 1
#define Q32_Q4_0_OFFSET Q4_0_OFFSET
#define Q32_TOKENS VNNI_LANE_TOKENS
#include "x86_q32_packed.h"

typedef void (*lane_group_fn)(int nb, const uint8_t *group, const spec_act_view *a, float (*out)[LANE_ROWS]);
#define LANE_GROUP(NAME, TYPE, TOKENS)                                                                                 \
    X86_TARGET static void NAME(int nb, const uint8_t *group, const spec_act_view *a, float(*out)[LANE_ROWS]) {        \
        lane_group(TYPE, TOKENS, nb, group, a, out);                                                                   \
    }
LANE_GROUP(q4_K_x8_1, SPEC_Q4_K, 1)
LANE_GROUP(q4_K_x8_2, SPEC_Q4_K, 2)
LANE_GROUP(q4_K_x8_3, SPEC_Q4_K, 3)
LANE_GROUP(q4_K_x8_4, SPEC_Q4_K, 4)
LANE_GROUP(q6_K_x8_1, SPEC_Q6_K, 1)
LANE_GROUP(q6_K_x8_2, SPEC_Q6_K, 2)
LANE_GROUP(q6_K_x8_3, SPEC_Q6_K, 3)
LANE_GROUP(q6_K_x8_4, SPEC_Q6_K, 4)
#if VNNI_LANE_TOKENS > 4
LANE_GROUP(q4_K_x8_5, SPEC_Q4_K, 5)
LANE_GROUP(q4_K_x8_6, SPEC_Q4_K, 6)
LANE_GROUP(q4_K_x8_7, SPEC_Q4_K, 7)
LANE_GROUP(q4_K_x8_8, SPEC_Q4_K, 8)
LANE_GROUP(q6_K_x8_5, SPEC_Q6_K, 5)
LANE_GROUP(q6_K_x8_6, SPEC_Q6_K, 6)
LANE_GROUP(q6_K_x8_7, SPEC_Q6_K, 7)
LANE_GROUP(q6_K_x8_8, SPEC_Q6_K, 8)
static const lane_group_fn q4_K_x8_by_tokens[LANE_TOKENS] = {q4_K_x8_1, q4_K_x8_2, q4_K_x8_3, q4_K_x8_4,
                                                             q4_K_x8_5, q4_K_x8_6, q4_K_x8_7, q4_K_x8_8};
static const lane_group_fn q6_K_x8_by_tokens[LANE_TOKENS] = {q6_K_x8_1, q6_K_x8_2, q6_K_x8_3, q6_K_x8_4,
                                                             q6_K_x8_5, q6_K_x8_6, q6_K_x8_7, q6_K_x8_8};
#else
static const lane_group_fn q4_K_x8_by_tokens[LANE_TOKENS] = {q4_K_x8_1, q4_K_x8_2, q4_K_x8_3, q4_K_x8_4};
static const lane_group_fn q6_K_x8_by_tokens[LANE_TOKENS] = {q6_K_x8_1, q6_K_x8_2, q6_K_x8_3, q6_K_x8_4};
#endif
#undef LANE_GROUP

/// Rows r0..r1 of a packed matrix (any bounds: a group cut by them is computed whole and only
/// its rows inside are stored) for T tokens, in passes of up to LANE_TOKENS tokens per group.
static void packed_product(int packed_type, int n, const uint8_t *w, int r0, int r1, const uint8_t *act,
                           size_t act_stride, int T, float *y, size_t y_stride) {
    if (packed_type == SPEC_Q4_0_X8 || packed_type == SPEC_Q5_0_X8 || packed_type == SPEC_Q8_0_X8) {
        q32_packed_product(packed_type, n, w, r0, r1, act, act_stride, T, y, y_stride);
        return;
    }
    const int nb = n / 256;
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
    const lane_group_fn *by_tokens = packed_type == SPEC_Q6_K_X8 ? q6_K_x8_by_tokens : q4_K_x8_by_tokens;
    spec_act_view a[LANE_TOKENS];
    float out[LANE_TOKENS][LANE_ROWS];
    for (int g = r0 - r0 % LANE_ROWS; g < r1; g += LANE_ROWS) {
        const int lo = g > r0 ? g : r0, hi = g + LANE_ROWS < r1 ? g + LANE_ROWS : r1;
        for (int t0 = 0; t0 < T; t0 += LANE_TOKENS) {
            const int count = T - t0 < LANE_TOKENS ? T - t0 : LANE_TOKENS;
            for (int t = 0; t < count; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + t) * act_stride);
            // Two or three tokens run as four (the last one repeated, its extra results dropped):
            // the four-token pass streams the rows as fast as the one-token pass, while the
            // two- and three-token passes measured 1.18x and 1.35x its time (1.5B target, 2
            // threads, Zen 4). Each token's result is exact and independent of the others.
            const int padded = count == 2 || count == 3 ? 4 : count;
            for (int t = count; t < padded; t++) a[t] = a[count - 1];
            by_tokens[padded - 1](nb, w + (size_t)g * row_bytes, a, out);
            for (int t = 0; t < count; t++)
                memcpy(y + (size_t)(t0 + t) * y_stride + lo, &out[t][lo - g], sizeof(float) * (size_t)(hi - lo));
        }
    }
}

typedef void (*tokens_fn)(int n, const uint8_t *w, size_t rb, int r0, int r1, const uint8_t *act, size_t stride,
                          float *y, size_t y_stride);

/// K-quant products of any batch size: up to four tokens in one pass; more in groups of four
/// over groups of four rows, so the rows are still in L1 for the next group of tokens.
typedef void (*wide_fn)(int n, const uint8_t *w, size_t rb, int r0, int r1, const wide_acts *x, float *y,
                        size_t y_stride);

static void k_quant_product(const tokens_fn *by_tokens, wide_fn wide, int n, const uint8_t *w, size_t row_bytes, int r0,
                            int r1, const uint8_t *act, size_t act_stride, int T, float *y, size_t y_stride) {
    // From SPEC_WIDE_MIN tokens on, every whole group of 8 through the wide kernel, the rest below.
    wide_acts x;
    for (int done = 0, wide_tokens = T >= SPEC_WIDE_MIN ? T / WIDE * WIDE : 0;
         done < wide_tokens && wide_prepare(n, act, act_stride, &x); done += WIDE) {
        wide(n, w, row_bytes, r0, r1, &x, y, y_stride);
        act += WIDE * act_stride;
        y += WIDE * y_stride;
        T -= WIDE;
    }
    if (T == 0) return;
    if (T <= 4) {
        by_tokens[T - 1](n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
        return;
    }
    enum { ROW_GROUP = 4 };
    for (int rr = r0; rr < r1; rr += ROW_GROUP) {
        const int re = rr + ROW_GROUP < r1 ? rr + ROW_GROUP : r1;
        for (int t0 = 0; t0 < T; t0 += 4) {
            const int tc = T - t0 < 4 ? T - t0 : 4;
            by_tokens[tc - 1](n, w, row_bytes, rr, re, act + (size_t)t0 * act_stride, act_stride,
                              y + (size_t)t0 * y_stride, y_stride);
        }
    }
}

static const tokens_fn q4_K_by_tokens[4] = {q4_K_1, q4_K_2, q4_K_3, q4_K_4};
static const tokens_fn q5_K_by_tokens[4] = {q5_K_1, q5_K_2, q5_K_3, q5_K_4};
static const tokens_fn q6_K_by_tokens[4] = {q6_K_1, q6_K_2, q6_K_3, q6_K_4};

static int vnni_matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                       size_t act_stride, int T, float *y, size_t y_stride) {
    const uint8_t *weights = (const uint8_t *)w, *activations = (const uint8_t *)act;
    if (T < 1 || r1 <= r0) return 1;
    switch (type) {
    case SPEC_Q8_0:
    case SPEC_Q4_0:
    case SPEC_Q4_1:
    case SPEC_Q5_0:
    case SPEC_Q5_1:
        if (T == 1)
            matvec_q32(type, n, weights, row_bytes, r0, r1, activations, y);
        else
            matmul_q32(type, n, weights, row_bytes, r0, r1, activations, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q4_K:
        k_quant_product(q4_K_by_tokens, q4_K_wide, n, weights, row_bytes, r0, r1, activations, act_stride, T, y,
                        y_stride);
        return 1;
    case SPEC_Q5_K:
        k_quant_product(q5_K_by_tokens, q5_K_wide, n, weights, row_bytes, r0, r1, activations, act_stride, T, y,
                        y_stride);
        return 1;
    case SPEC_Q6_K:
        k_quant_product(q6_K_by_tokens, q6_wide, n, weights, row_bytes, r0, r1, activations, act_stride, T, y,
                        y_stride);
        return 1;
    case SPEC_Q4_0_X8:
    case SPEC_Q5_0_X8:
    case SPEC_Q8_0_X8:
    case SPEC_Q4_K_X8:
    case SPEC_Q6_K_X8: packed_product(type, n, weights, r0, r1, activations, act_stride, T, y, y_stride); return 1;
    default: return 0;
    }
}
