// AVX2 + FMA kernels, compiled for that target only and chosen at run time.
//
// Each weight block is unpacked once into unsigned 8-bit lanes and then multiplied with every
// activation row of the batch (a tree of tokens): the weights stream from memory once per batch.
// Per (row, token) the arithmetic is the same whatever the batch size.
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

int spec_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

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
                const float dw = spec_half(blk);
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
                const float m = has_min ? spec_half(blk + 2) : 0.0f;
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
                const float d = spec_half(blk), dmin = spec_half(blk + 2);
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 8; j++) spec_scale_min_k4(blk + 4, j, &sc[j], &mn[j]);
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
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(sc[j])));
                    }
                    int summ = 0;
                    for (int j = 0; j < 8; j++) summ += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
                    const float dx = views[k].d[b];
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi), acc[k]);
                    acc_min[k] += dmin * dx * (float)summ;
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = hsum(acc[k]) - acc_min[k];
        }
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
                const float d = spec_half(blk + 208);
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
                    int offset = 0;
                    for (int g = 0; g < 16; g++) offset += sc[g] * bs[g];
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
        matmul_q32(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q4_K: case SPEC_Q5_K:
        matmul_q45_K(type, n, (const uint8_t *)w, row_bytes, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q6_K:
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
