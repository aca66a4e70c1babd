// AVX2 + FMA kernels, compiled for that target only and chosen at run time.
//
// Each weight block is unpacked once into unsigned 8-bit lanes and then multiplied with every
// activation row of the batch (a tree of tokens): the weights stream from memory once per batch.
// Per (row, token) the arithmetic is the same whatever the batch size.
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define X86_TARGET AVX2
#define X86_DOT_U8_S8(w, x) _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
#include "x86_common.h"
// The packed Q5_0 and Q8_0 layouts (repack.c), read eight rows per vector. maddubs adds pairs of
// products in 16 bits: Q5_0's pairs stay below 2 * 31 * 127, and Q8_0 is read as |q| against x
// with q's sign (pairs at most 2 * 128 * 127), both below 2^15.
#define Q32_DOT(acc, u, s) _mm256_add_epi32(acc, X86_DOT_U8_S8(u, s))
#define Q32_Q8_UNSIGNED 0
#define Q32_TOKENS 4 // 16 vector registers
#include "x86_q32_packed.h"

/// The packed layout this set reads `type` in (Gemma 3 stores its 640-value rows as these).
static int avx2_packs(int type) {
    return type == SPEC_Q5_0 ? SPEC_Q5_0_X8 : type == SPEC_Q8_0 ? SPEC_Q8_0_X8 : -1;
}

int spec_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

// ---- K-quants ----------------------------------------------------------------------------
//
// Per (row, token) a block of 256 weights contributes, lane by lane,
//     acc += (d * dx) * sumi  [- (dmin * dx) * msum]
// where sumi (8 int32 lanes) sums scale_j * (q · x) over the eight 32-weight sub-blocks and
// msum (Q4_K/Q5_K) the mins times the activation sums. The single-token and batched kernels
// build exactly these lanes and steps (integer sums are exact in any order), then reduce with
// hsum: a row's result does not depend on the batch it is computed in.

/// Shuffle masks for Q6_K scales: the low 128-bit lane takes 16-bit word 2i, the high lane word 2i + 1.
static const uint8_t q6_scale_pair[4][32] = {
#define P(i)                                                                                                           \
    {                                                                                                                  \
        4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1,    \
            4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3,      \
            4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2,         \
            4 * i + 3                                                                                                  \
    }
    P(0), P(1), P(2), P(3)
#undef P
};

/// The Q4_K/Q5_K block step shared by the single-token and batched kernels; `blk` starts with
/// the block's two half-precision scales (d, dmin), converted together.
AVX2 static inline __m256 k4_accumulate(__m256 acc, __m256i sumi, __m256i min_pairs, const int16_t *bsums,
                                        const uint8_t *blk, const float *dx) {
    uint32_t halves;
    memcpy(&halves, blk, 4);
    const __m128 scales = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)halves)), _mm_broadcast_ss(dx));
    const __m256i msum = _mm256_madd_epi16(min_pairs, _mm256_loadu_si256((const __m256i *)bsums));
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), _mm256_cvtepi32_ps(sumi), acc);
    return _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(scales)), _mm256_cvtepi32_ps(msum), acc);
}

/// The Q6_K block step: removes the +32 offset of the stored 6-bit values, then accumulates.
AVX2 static inline __m256 q6_accumulate(__m256 acc, __m256i sumi, __m256i scales16, const int16_t *bsums, float d,
                                        float dx) {
    const __m256i offset =
        _mm256_slli_epi32(_mm256_madd_epi16(scales16, _mm256_loadu_si256((const __m256i *)bsums)), 5);
    return _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, offset)), acc);
}

/// dot8_scaled for two tokens at once: each weight and scale vector is read once for both
/// (measured faster for Q6_K, not for Q4_K).
AVX2 static inline void dot8_scaled_2(const __m256i *q, const __m256i *scale_of, const int8_t *xa, const int8_t *xb,
                                      __m256i *sa, __m256i *sb) {
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256(), b0 = _mm256_setzero_si256(),
            b1 = _mm256_setzero_si256();
    for (int j = 0; j < 8; j += 2) {
        const __m256i q0 = q[j], q1 = q[j + 1], s0 = scale_of[j], s1 = scale_of[j + 1];
        a0 = _mm256_add_epi32(
            a0, _mm256_madd_epi16(_mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(xa + 32 * j))), s0));
        b0 = _mm256_add_epi32(
            b0, _mm256_madd_epi16(_mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(xb + 32 * j))), s0));
        a1 = _mm256_add_epi32(
            a1,
            _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(xa + 32 * j + 32))), s1));
        b1 = _mm256_add_epi32(
            b1,
            _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(xb + 32 * j + 32))), s1));
    }
    *sa = _mm256_add_epi32(a0, a1);
    *sb = _mm256_add_epi32(b0, b1);
}

/// Sum over the 8 sub-blocks of scale_j * (q_j · x_j), for 8 prepared weight vectors.
AVX2 static inline __m256i dot8_scaled(const __m256i *q, const __m256i *scale_of, const int8_t *x) {
    __m256i s0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q[0], _mm256_loadu_si256((const __m256i *)x)), scale_of[0]);
    __m256i s1 =
        _mm256_madd_epi16(_mm256_maddubs_epi16(q[1], _mm256_loadu_si256((const __m256i *)(x + 32))), scale_of[1]);
    for (int j = 2; j < 8; j += 2) {
        s0 = _mm256_add_epi32(
            s0, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)(x + 32 * j))),
                                  scale_of[j]));
        s1 = _mm256_add_epi32(
            s1,
            _mm256_madd_epi16(_mm256_maddubs_epi16(q[j + 1], _mm256_loadu_si256((const __m256i *)(x + 32 * j + 32))),
                              scale_of[j + 1]));
    }
    return _mm256_add_epi32(s0, s1);
}

// Q4_K with one to four tokens (ROWS and TOKENS are constants at each call site), unpacking the
// nibbles on the fly; with two rows per pass they share the activation loads. Decoding (one
// token) and the smallest trees are the most frequent products, and unpacking into registers
// beats unpacked copies there.
AVX2 static inline __attribute__((always_inline)) void q4_K_narrow(const int ROWS, const int TOKENS, int n,
                                                                   const uint8_t *w, size_t row_bytes, int r0, int r1,
                                                                   const uint8_t *act, size_t act_stride, float *y,
                                                                   size_t y_stride) {
    const int nb = n / 256;
    spec_act_view a[4];
    for (int t = 0; t < TOKENS; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)t * act_stride);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int r = r0; r < r1; r += ROWS) {
        const int pair = ROWS == 2 && r + 1 < r1;
        const uint8_t *rows[2] = {w + (size_t)r * row_bytes, w + (size_t)(r + pair) * row_bytes};
        __m256 acc[2][4];
        for (int k = 0; k < ROWS; k++)
            for (int t = 0; t < TOKENS; t++) acc[k][t] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __m256i scales[2], min_pairs[2], sumi[2][4];
            for (int k = 0; k < ROWS; k++) {
                prefetch_ahead(rows[k] + (size_t)b * 144, 144);
                k4_scales(rows[k] + (size_t)b * 144 + 4, &scales[k], &min_pairs[k]);
                for (int t = 0; t < TOKENS; t++) sumi[k][t] = _mm256_setzero_si256();
            }
            for (int c = 0; c < 4; c++) {
                // With two rows the activations are loaded once for both.
                __m256i x0[4], x1[4];
                if (ROWS == 2) {
                    for (int t = 0; t < TOKENS; t++) {
                        x0[t] = _mm256_loadu_si256((const __m256i *)(a[t].q + b * 256 + 64 * c));
                        x1[t] = _mm256_loadu_si256((const __m256i *)(a[t].q + b * 256 + 64 * c + 32));
                    }
                }
                const __m256i shuffle0 = _mm256_loadu_si256((const __m256i *)broadcast_word[2 * c]);
                const __m256i shuffle1 = _mm256_loadu_si256((const __m256i *)broadcast_word[2 * c + 1]);
                for (int k = 0; k < ROWS; k++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(rows[k] + (size_t)b * 144 + 16 + 32 * c));
                    const __m256i q0 = _mm256_and_si256(v, low4), q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                    const __m256i s0 = _mm256_shuffle_epi8(scales[k], shuffle0),
                                  s1 = _mm256_shuffle_epi8(scales[k], shuffle1);
                    for (int t = 0; t < TOKENS; t++) {
                        const int8_t *x = a[t].q + b * 256 + 64 * c;
                        const __m256i xa = ROWS == 2 ? x0[t] : _mm256_loadu_si256((const __m256i *)x);
                        const __m256i xb = ROWS == 2 ? x1[t] : _mm256_loadu_si256((const __m256i *)(x + 32));
                        sumi[k][t] = _mm256_add_epi32(sumi[k][t], _mm256_madd_epi16(_mm256_maddubs_epi16(q0, xa), s0));
                        sumi[k][t] = _mm256_add_epi32(sumi[k][t], _mm256_madd_epi16(_mm256_maddubs_epi16(q1, xb), s1));
                    }
                }
            }
            for (int k = 0; k < ROWS; k++) {
                const uint8_t *blk = rows[k] + (size_t)b * 144;
                for (int t = 0; t < TOKENS; t++)
                    acc[k][t] = k4_accumulate(acc[k][t], sumi[k][t], min_pairs[k], a[t].s + b * 16, blk, a[t].d + b);
            }
        }
        for (int t = 0; t < TOKENS; t++) {
            y[(size_t)t * y_stride + r] = hsum(acc[0][t]);
            if (pair) y[(size_t)t * y_stride + r + 1] = hsum(acc[1][t]);
        }
    }
}

// One row at a time for one and two tokens: with two rows interleaved each thread streams two
// places of the weights at once, and decoding ran ~12% slower end to end (Zen 3, A/B on the
// kernel benchmark and `speculate bench --baseline`), although two rows are slightly faster when
// the rows are cached. Three tokens measured faster with two rows.
AVX2 static void matvec_q4_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act, float *y) {
    q4_K_narrow(1, 1, n, w, row_bytes, r0, r1, act, 0, y, 0);
}

AVX2 static void q4_K_rows1_tokens2(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                                    size_t act_stride, float *y, size_t y_stride) {
    q4_K_narrow(1, 2, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}
AVX2 static void q4_K_rows2_tokens3(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                                    size_t act_stride, float *y, size_t y_stride) {
    q4_K_narrow(2, 3, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}
AVX2 static void q4_K_rows1_tokens4(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                                    size_t act_stride, float *y, size_t y_stride) {
    q4_K_narrow(1, 4, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}

// Q4_K with two or more tokens: groups of up to four tokens, each group over a few rows at a
// time so the rows are still in L1 for the next group. Every (row, token) result goes through
// the same block steps in the same order whatever the grouping.
AVX2 static void matmul_q4_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                             size_t act_stride, int T, float *y, size_t y_stride) {
    enum { ROW_GROUP = 4 };
    for (int rr = r0; rr < r1; rr += ROW_GROUP) {
        const int re = rr + ROW_GROUP < r1 ? rr + ROW_GROUP : r1;
        for (int t0 = 0; t0 < T; t0 += 4) {
            const int tc = T - t0 < 4 ? T - t0 : 4;
            const uint8_t *a = act + (size_t)t0 * act_stride;
            float *out = y + (size_t)t0 * y_stride;
            if (tc == 4)
                q4_K_rows1_tokens4(n, w, row_bytes, rr, re, a, act_stride, out, y_stride);
            else if (tc == 3)
                q4_K_rows2_tokens3(n, w, row_bytes, rr, re, a, act_stride, out, y_stride);
            else if (tc == 2)
                q4_K_rows1_tokens2(n, w, row_bytes, rr, re, a, act_stride, out, y_stride);
            else
                matvec_q4_K(n, w, row_bytes, rr, re, a, out);
        }
    }
}

// Q5_K (and Q4_K, which now takes matmul_q4_K) against Q8_256 activations: each block is
// unpacked once into registers spilled to the stack and used for every token.
AVX2 static void matmul_q45_K(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                              size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 256;
    const int bytes = type == SPEC_Q4_K ? 144 : 176;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    spec_act_view views[TOKEN_CHUNK];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            __m256 acc[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = _mm256_setzero_ps();
                views[k] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                if (t0 == 0) prefetch_ahead(blk, bytes);
                __m256i scales, min_pairs, q[8], scale_of[8];
                k4_scales(blk + 4, &scales, &min_pairs);
                for (int j = 0; j < 8; j++)
                    scale_of[j] = _mm256_shuffle_epi8(scales, _mm256_loadu_si256((const __m256i *)broadcast_word[j]));
                const uint8_t *qs = blk + (type == SPEC_Q4_K ? 16 : 48);
                for (int c = 0; c < 4; c++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    q[2 * c] = _mm256_and_si256(v, low4);
                    q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                }
                if (type == SPEC_Q5_K) {
                    const __m256i hbits = _mm256_loadu_si256((const __m256i *)(blk + 16));
                    const __m256i one = _mm256_set1_epi8(1);
                    for (int j = 0; j < 8; j++) {
                        const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(hbits, j), one);
                        q[j] = _mm256_or_si256(q[j], _mm256_slli_epi16(bit, 4));
                    }
                }
                for (int k = 0; k < tc; k++) {
                    const __m256i sumi = dot8_scaled(q, scale_of, views[k].q + b * 256);
                    acc[k] = k4_accumulate(acc[k], sumi, min_pairs, views[k].s + b * 16, blk, views[k].d + b);
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]);
        }
    }
}

/// A Q6_K block's 16 scales as 16-bit words ([0..7 | 8..15]) and the per-sub-block scale vectors.
AVX2 static inline __m256i q6_scales(const uint8_t *blk, __m256i *scale_of) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
    const __m256i first = _mm256_permute4x64_epi64(scales16, 0x44), second = _mm256_permute4x64_epi64(scales16, 0xEE);
    for (int i = 0; i < 4; i++) {
        const __m256i mask = _mm256_loadu_si256((const __m256i *)q6_scale_pair[i]);
        scale_of[i] = _mm256_shuffle_epi8(first, mask);
        scale_of[i + 4] = _mm256_shuffle_epi8(second, mask);
    }
    return scales16;
}

// Q6_K with one to four tokens (TOKENS constant per call site), unpacking on the fly.
AVX2 static inline __attribute__((always_inline)) void q6_K_narrow(const int TOKENS, int n, const uint8_t *w,
                                                                   size_t row_bytes, int r0, int r1, const uint8_t *act,
                                                                   size_t act_stride, float *y, size_t y_stride) {
    const int nb = n / 256;
    spec_act_view a[4];
    for (int t = 0; t < TOKENS; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)t * act_stride);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc[4];
        for (int t = 0; t < TOKENS; t++) acc[t] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 210;
            prefetch_ahead(blk, 210);
            __m256i scale_of[8];
            const __m256i scales16 = q6_scales(blk, scale_of);
            __m256i s0[4], s1[4];
            for (int t = 0; t < TOKENS; t++) s0[t] = s1[t] = _mm256_setzero_si256();
            for (int c = 0; c < 2; c++) {
                __m256i q[4];
                q6_unpack(blk, c, q);
                for (int s = 0; s < 4; s += 2) {
                    const int j = c * 4 + s;
                    for (int t = 0; t < TOKENS; t++) {
                        const int8_t *x = a[t].q + b * 256;
                        s0[t] = _mm256_add_epi32(
                            s0[t], _mm256_madd_epi16(
                                       _mm256_maddubs_epi16(q[s], _mm256_loadu_si256((const __m256i *)(x + 32 * j))),
                                       scale_of[j]));
                        s1[t] = _mm256_add_epi32(
                            s1[t],
                            _mm256_madd_epi16(
                                _mm256_maddubs_epi16(q[s + 1], _mm256_loadu_si256((const __m256i *)(x + 32 * j + 32))),
                                scale_of[j + 1]));
                    }
                }
            }
            const float d = half_f16c(blk + 208);
            for (int t = 0; t < TOKENS; t++)
                acc[t] = q6_accumulate(acc[t], _mm256_add_epi32(s0[t], s1[t]), scales16, a[t].s + b * 16, d, a[t].d[b]);
        }
        for (int t = 0; t < TOKENS; t++) y[(size_t)t * y_stride + r] = hsum(acc[t]);
    }
}

AVX2 static void matvec_q6_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act, float *y) {
    q6_K_narrow(1, n, w, row_bytes, r0, r1, act, 0, y, 0);
}
AVX2 static void q6_K_tokens2(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                              size_t act_stride, float *y, size_t y_stride) {
    q6_K_narrow(2, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}
AVX2 static void q6_K_tokens3(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                              size_t act_stride, float *y, size_t y_stride) {
    q6_K_narrow(3, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}
AVX2 static void q6_K_tokens4(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                              size_t act_stride, float *y, size_t y_stride) {
    q6_K_narrow(4, n, w, row_bytes, r0, r1, act, act_stride, y, y_stride);
}

// Q6_K with more than four tokens: blocks unpacked once per row into registers spilled to the
// stack, then used for every token (two tokens per pass).
AVX2 static void matmul_q6_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                             size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 256;
    spec_act_view views[TOKEN_CHUNK];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            __m256 acc[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = _mm256_setzero_ps();
                views[k] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * 210;
                if (t0 == 0) prefetch_ahead(blk, 210);
                const float d = half_f16c(blk + 208);
                __m256i q[8], scale_of[8];
                const __m256i scales16 = q6_scales(blk, scale_of);
                q6_unpack(blk, 0, q);
                q6_unpack(blk, 1, q + 4);
                int k = 0;
                for (; k + 2 <= tc; k += 2) {
                    __m256i sa, sb;
                    dot8_scaled_2(q, scale_of, views[k].q + b * 256, views[k + 1].q + b * 256, &sa, &sb);
                    acc[k] = q6_accumulate(acc[k], sa, scales16, views[k].s + b * 16, d, views[k].d[b]);
                    acc[k + 1] = q6_accumulate(acc[k + 1], sb, scales16, views[k + 1].s + b * 16, d, views[k + 1].d[b]);
                }
                if (k < tc) {
                    const __m256i sumi = dot8_scaled(q, scale_of, views[k].q + b * 256);
                    acc[k] = q6_accumulate(acc[k], sumi, scales16, views[k].s + b * 16, d, views[k].d[b]);
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]);
        }
    }
}
static int matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act, size_t act_stride,
                  int T, float *y, size_t y_stride) {
    switch (type) {
    case SPEC_Q8_0:
    case SPEC_Q4_0:
    case SPEC_Q4_1:
    case SPEC_Q5_0:
    case SPEC_Q5_1:
        if (T == 1) {
            matvec_q32(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        matmul_q32(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q4_K:
    case SPEC_Q5_K:
        if (type == SPEC_Q4_K && T == 1) {
            matvec_q4_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        if (type == SPEC_Q4_K) {
            matmul_q4_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
            return 1;
        }
        matmul_q45_K(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q6_K:
        if (T == 1) {
            matvec_q6_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        if (T <= 4) {
            if (T == 2)
                q6_K_tokens2(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, y, y_stride);
            else if (T == 3)
                q6_K_tokens3(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, y, y_stride);
            else
                q6_K_tokens4(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, y, y_stride);
            return 1;
        }
        matmul_q6_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q5_0_X8:
    case SPEC_Q8_0_X8:
        q32_packed_product(type, n, (const uint8_t *)w, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    default: return 0;
    }
}

const spec_kernel_set spec_set_avx2 = {
    .name = "avx2", .supported = spec_cpu_has_avx2_fma, .matmul = matmul, .packs = avx2_packs, SPEC_AVX2_OPS};

#else
int spec_cpu_has_avx2_fma(void) {
    return 0;
}
// Never selected on this architecture; the portable functions fill the table.
const spec_kernel_set spec_set_avx2 = {.name = "avx2",
                                       .supported = spec_never_supported,
                                       .matmul = spec_matmul_portable_set,
                                       .packs = spec_packs_none,
                                       SPEC_PORTABLE_OPS};
#endif
