// AVX2 + FMA kernels, compiled for that target only and chosen at run time.
//
// Each weight block is unpacked once into unsigned 8-bit lanes and then multiplied with every
// activation row of the batch (a tree of tokens): the weights stream from memory once per batch.
// Per (row, token) the arithmetic is the same whatever the batch size.
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

int spec_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/// Half to float with the F16C instruction (exact, like the portable conversion).
AVX2 static inline float half_f16c(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/// The eight 6-bit scales and mins of a Q4_K/Q5_K block, word-parallel.
static inline void scales_mins_k4(const uint8_t *packed, uint8_t *scales, uint8_t *mins) {
    uint32_t u0, u1, u2;
    memcpy(&u0, packed, 4);
    memcpy(&u1, packed + 4, 4);
    memcpy(&u2, packed + 8, 4);
    const uint32_t low6 = 0x3F3F3F3Fu, low4 = 0x0F0F0F0Fu, top2 = 0x03030303u;
    const uint32_t s_lo = u0 & low6, m_lo = u1 & low6;
    const uint32_t s_hi = (u2 & low4) | (((u0 >> 6) & top2) << 4);
    const uint32_t m_hi = ((u2 >> 4) & low4) | (((u1 >> 6) & top2) << 4);
    memcpy(scales, &s_lo, 4);
    memcpy(scales + 4, &s_hi, 4);
    memcpy(mins, &m_lo, 4);
    memcpy(mins + 4, &m_hi, 4);
}

/// Sum over 8 sub-blocks of 32 of mins[j] * (bsums[2j] + bsums[2j+1]).
AVX2 static inline int mins_dot_bsums(const uint8_t *mins, const int16_t *bsums) {
    const __m128i pair_sums = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_loadu_si128((const __m128i *)(bsums + 8)));
    uint64_t m8;
    memcpy(&m8, mins, 8);
    const __m128i prod = _mm_madd_epi16(pair_sums, _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8)));
    __m128i s = _mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// Broadcast masks: lanes take the 16-bit value j of a 128-bit vector, for j = 0..7.
static const uint8_t broadcast_word[8][32] = {
#define W(j) {2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1, \
               2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1,2*j,2*j+1}
    W(0), W(1), W(2), W(3), W(4), W(5), W(6), W(7)
#undef W
};

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Unsigned weights (0..63) times signed activations, summed to 8 int32 lanes.
AVX2 static inline __m256i dot_u8_s8(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

/// 32 bits -> 32 bytes of 0x10 where the bit is set.
AVX2 static inline __m256i bits_to_0x10(uint32_t bits) {
    const __m256i select = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), select);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/// 16 bytes of nibbles -> 32 bytes: low nibbles first, then high nibbles.
AVX2 static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i x = _mm_loadu_si128((const __m128i *)p);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

enum { TOKEN_CHUNK = 8 };

// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 with one token: the same integer sums and float steps as
// matmul_q32 (bit-identical results), without the per-token bookkeeping.
AVX2 static void matvec_q32(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                            const uint8_t *act, float *y) {
    const int nb = n / 32;
    const int bytes = type == SPEC_Q8_0 ? 34 : type == SPEC_Q4_0 ? 18 : type == SPEC_Q4_1 ? 20 : type == SPEC_Q5_0 ? 22 : 24;
    const int offset = type == SPEC_Q4_0 ? 8 : type == SPEC_Q5_0 ? 16 : 0;
    const int has_min = type == SPEC_Q4_1 || type == SPEC_Q5_1;
    const spec_act_view a = spec_act_at(SPEC_ACT_Q8_32, n, act);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps();
        float acc_min = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bytes;
            const __m256i x = _mm256_loadu_si256((const __m256i *)(a.q + b * 32));
            __m256i p;
            if (type == SPEC_Q8_0) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
                p = dot_u8_s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
            } else {
                __m256i q;
                if (type == SPEC_Q4_0) {
                    q = nibbles_32(blk + 2);
                } else if (type == SPEC_Q4_1) {
                    q = nibbles_32(blk + 4);
                } else {
                    uint32_t qh;
                    memcpy(&qh, blk + (type == SPEC_Q5_0 ? 2 : 4), 4);
                    q = _mm256_or_si256(nibbles_32(blk + (type == SPEC_Q5_0 ? 6 : 8)), bits_to_0x10(qh));
                }
                p = dot_u8_s8(q, x);
                if (offset) p = _mm256_sub_epi32(p, _mm256_setr_epi32(offset * a.s[b], 0, 0, 0, 0, 0, 0, 0));
                if (has_min) acc_min += half_f16c(blk + 2) * a.d[b] * (float)a.s[b];
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_f16c(blk) * a.d[b]), _mm256_cvtepi32_ps(p), acc);
        }
        y[r] = hsum(acc) + acc_min;
    }
}

// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 against Q8_32 activations.
AVX2 static void matmul_q32(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                            const uint8_t *act, size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 32;
    const int bytes = type == SPEC_Q8_0 ? 34 : type == SPEC_Q4_0 ? 18 : type == SPEC_Q4_1 ? 20 : type == SPEC_Q5_0 ? 22 : 24;
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
                __m256i q;
                if (type == SPEC_Q4_0) {
                    q = nibbles_32(blk + 2);
                } else if (type == SPEC_Q4_1) {
                    q = nibbles_32(blk + 4);
                } else {
                    uint32_t qh;
                    memcpy(&qh, blk + (type == SPEC_Q5_0 ? 2 : 4), 4);
                    q = _mm256_or_si256(nibbles_32(blk + (type == SPEC_Q5_0 ? 6 : 8)), bits_to_0x10(qh));
                }
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

// Q4_K with one token: the same integer sums and float steps as the batched path (so results are
// bit-identical), with the nibbles unpacked on the fly to keep everything in registers.
AVX2 static void matvec_q4_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                             const uint8_t *act, float *y) {
    const int nb = n / 256;
    const spec_act_view a = spec_act_at(SPEC_ACT_Q8_256, n, act);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    int r = r0;
    // Two rows per pass share every activation load.
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *rows[2] = {w + (size_t)r * row_bytes, w + (size_t)(r + 1) * row_bytes};
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        float acc_min[2] = {0.0f, 0.0f};
        for (int b = 0; b < nb; b++) {
            const int8_t *x = a.q + b * 256;
            __m256i scale_vector[2];
            uint8_t mn[2][8];
            for (int k = 0; k < 2; k++) {
                uint8_t sc[8];
                scales_mins_k4(rows[k] + (size_t)b * 144 + 4, sc, mn[k]);
                uint64_t sc8;
                memcpy(&sc8, sc, 8);
                scale_vector[k] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
            }
            __m256i sumi[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int c = 0; c < 4; c++) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(x + 64 * c));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + 64 * c + 32));
                const __m256i shuffle0 = _mm256_loadu_si256((const __m256i *)broadcast_word[2 * c]);
                const __m256i shuffle1 = _mm256_loadu_si256((const __m256i *)broadcast_word[2 * c + 1]);
                for (int k = 0; k < 2; k++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(rows[k] + (size_t)b * 144 + 16 + 32 * c));
                    const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(v, low4), x0);
                    const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), x1);
                    sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scale_vector[k], shuffle0)));
                    sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scale_vector[k], shuffle1)));
                }
            }
            const float dx = a.d[b];
            for (int k = 0; k < 2; k++) {
                const uint8_t *blk = rows[k] + (size_t)b * 144;
                const int summ = mins_dot_bsums(mn[k], a.s + b * 16);
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(half_f16c(blk) * dx), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
                acc_min[k] += half_f16c(blk + 2) * dx * (float)summ;
            }
        }
        y[r] = hsum(acc[0]) - acc_min[0];
        y[r + 1] = hsum(acc[1]) - acc_min[1];
    }
    for (; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps();
        float acc_min = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 144;
            uint8_t sc[8], mn[8];
            scales_mins_k4(blk + 4, sc, mn);
            const int8_t *x = a.q + b * 256;
            __m256i sumi = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
                const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(v, low4), _mm256_loadu_si256((const __m256i *)(x + 64 * c)));
                const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4),
                                                        _mm256_loadu_si256((const __m256i *)(x + 64 * c + 32)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c])));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1])));
            }
            const int summ = mins_dot_bsums(mn, a.s + b * 16);
            const float dx = a.d[b];
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_f16c(blk) * dx), _mm256_cvtepi32_ps(sumi), acc);
            acc_min += half_f16c(blk + 2) * dx * (float)summ;
        }
        y[r] = hsum(acc) - acc_min;
    }
}

// Q4_K and Q5_K against Q8_256 activations.
AVX2 static void matmul_q45_K(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                              const uint8_t *act, size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 256;
    const int bytes = type == SPEC_Q4_K ? 144 : 176;
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
                views[k] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                const float d = half_f16c(blk), dmin = half_f16c(blk + 2);
                uint8_t sc[8], mn[8];
                scales_mins_k4(blk + 4, sc, mn);
                uint64_t sc8;
                memcpy(&sc8, sc, 8);
                const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc8)));
                __m256i scale_of[8];
                for (int j = 0; j < 8; j++) scale_of[j] = _mm256_shuffle_epi8(sc16, _mm256_loadu_si256((const __m256i *)broadcast_word[j]));
                const uint8_t *qs = blk + (type == SPEC_Q4_K ? 16 : 48);
                __m256i q[8];
                const __m256i low4 = _mm256_set1_epi8(0x0F);
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
                    const int8_t *x = views[k].q + b * 256;
                    const int16_t *bs = views[k].s + b * 16;
                    __m256i sumi = _mm256_setzero_si256();
                    for (int j = 0; j < 8; j++) {
                        const __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)(x + 32 * j)));
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_of[j]));
                    }
                    const int summ = mins_dot_bsums(mn, bs);
                    const float dx = views[k].d[b];
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi), acc[k]);
                    acc_min[k] += dmin * dx * (float)summ;
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]) - acc_min[k];
        }
    }
}

// Q6_K with one token (bit-identical to the batched path, see matvec_q4_K).
AVX2 static void matvec_q6_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                             const uint8_t *act, float *y) {
    const int nb = n / 256;
    const spec_act_view a = spec_act_at(SPEC_ACT_Q8_256, n, act);
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 210;
            const int8_t *sc = (const int8_t *)(blk + 192);
            const int8_t *x = a.q + b * 256;
            __m256i sumi = _mm256_setzero_si256();
            for (int c = 0; c < 2; c++) {
                const __m256i qa = _mm256_loadu_si256((const __m256i *)(blk + c * 64));
                const __m256i qb = _mm256_loadu_si256((const __m256i *)(blk + c * 64 + 32));
                const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + c * 32));
                const __m256i lows[4] = {
                    _mm256_and_si256(qa, low4), _mm256_and_si256(qb, low4),
                    _mm256_and_si256(_mm256_srli_epi16(qa, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qb, 4), low4)};
                for (int s = 0; s < 4; s++) {
                    const int j = c * 4 + s;
                    const __m256i q = _mm256_or_si256(lows[s], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * s), two), 4));
                    const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(x + 32 * j)));
                    const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales));
                }
            }
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
            const __m256i prod = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(a.s + b * 16)));
            __m128i o = _mm_add_epi32(_mm256_castsi256_si128(prod), _mm256_extracti128_si256(prod, 1));
            o = _mm_add_epi32(o, _mm_shuffle_epi32(o, 0x4E));
            o = _mm_add_epi32(o, _mm_shuffle_epi32(o, 0xB1));
            sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * _mm_cvtsi128_si32(o), 0, 0, 0, 0, 0, 0, 0));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_f16c(blk + 208) * a.d[b]), _mm256_cvtepi32_ps(sumi), acc);
        }
        y[r] = hsum(acc);
    }
}

// Q6_K against Q8_256 activations.
AVX2 static void matmul_q6_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1,
                             const uint8_t *act, size_t act_stride, int T, float *y, size_t y_stride) {
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
                const int8_t *sc = (const int8_t *)(blk + 192);
                const float d = half_f16c(blk + 208);
                const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
                __m256i q[8], scales[8];
                const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
                for (int c = 0; c < 2; c++) {
                    const __m256i a = _mm256_loadu_si256((const __m256i *)(blk + c * 64));
                    const __m256i bq = _mm256_loadu_si256((const __m256i *)(blk + c * 64 + 32));
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + c * 32));
                    const __m256i lows[4] = {
                        _mm256_and_si256(a, low4), _mm256_and_si256(bq, low4),
                        _mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(_mm256_srli_epi16(bq, 4), low4)};
                    for (int s = 0; s < 4; s++) {
                        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(h, 2 * s), two);
                        q[c * 4 + s] = _mm256_or_si256(lows[s], _mm256_slli_epi16(high, 4));
                    }
                }
                for (int j = 0; j < 8; j++) {
                    scales[j] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
                }
                for (int k = 0; k < tc; k++) {
                    const int8_t *x = views[k].q + b * 256;
                    const int16_t *bs = views[k].s + b * 16;
                    __m256i sumi = _mm256_setzero_si256();
                    for (int j = 0; j < 8; j++) {
                        const __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)(x + 32 * j)));
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales[j]));
                    }
                    const __m256i prod = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bs));
                    __m128i o = _mm_add_epi32(_mm256_castsi256_si128(prod), _mm256_extracti128_si256(prod, 1));
                    o = _mm_add_epi32(o, _mm_shuffle_epi32(o, 0x4E));
                    o = _mm_add_epi32(o, _mm_shuffle_epi32(o, 0xB1));
                    const int offset = _mm_cvtsi128_si32(o);
                    sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * offset, 0, 0, 0, 0, 0, 0, 0));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * views[k].d[b]), _mm256_cvtepi32_ps(sumi), acc[k]);
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]);
        }
    }
}

int spec_matmul_avx2(int type, int n, const void *w, size_t row_bytes, int r0, int r1,
                     const void *act, size_t act_stride, int T, float *y, size_t y_stride) {
    switch (type) {
    case SPEC_Q8_0: case SPEC_Q4_0: case SPEC_Q4_1: case SPEC_Q5_0: case SPEC_Q5_1:
        if (T == 1) {
            matvec_q32(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        matmul_q32(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q4_K: case SPEC_Q5_K:
        if (type == SPEC_Q4_K && T == 1) {
            matvec_q4_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        matmul_q45_K(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q6_K:
        if (T == 1) {
            matvec_q6_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, y);
            return 1;
        }
        matmul_q6_K(n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    default:
        return 0;
    }
}

AVX2 float spec_dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float sum = hsum(acc);
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

AVX2 void spec_axpy_f32_avx2(float *y, float a, const float *x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

#else
int spec_cpu_has_avx2_fma(void) { return 0; }
int spec_matmul_avx2(int type, int n, const void *w, size_t row_bytes, int r0, int r1,
                     const void *act, size_t act_stride, int T, float *y, size_t y_stride) {
    (void)type; (void)n; (void)w; (void)row_bytes; (void)r0; (void)r1; (void)act; (void)act_stride; (void)T; (void)y; (void)y_stride;
    return 0;
}
float spec_dot_f32_avx2(const float *a, const float *b, int n) { (void)a; (void)b; (void)n; return 0; }
void spec_axpy_f32_avx2(float *y, float a, const float *x, int n) { (void)y; (void)a; (void)x; (void)n; }
#endif
