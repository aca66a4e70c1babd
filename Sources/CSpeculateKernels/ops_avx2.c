// AVX2 versions of the activation quantization and the forward pass's vector operations
// (see ops.c). Compiled for that target only and chosen at run time.
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <math.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/// e^x for 8 floats: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-6 polynomial (the
/// Cephes single-precision coefficients, ~1 ulp), 2^n through the exponent bits. Inputs are
/// clamped to the finite range, so very negative arguments give ~1e-38 rather than 0.
AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

/// e^x for one float, through the vector routine (so scalar tails match the vector lanes).
AVX2 static inline float exp1(float x) { return _mm256_cvtss_f32(exp8(_mm256_set1_ps(x))); }

AVX2 void spec_f32_to_f16_avx2(const float *x, int n, uint16_t *out) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        out[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0);
}

AVX2 void spec_f16_to_f32_avx2(const uint16_t *x, int n, float *out) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) out[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x[i])));
}

/// Eight half-precision values as floats.
AVX2 static inline __m256 load_half8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

AVX2 void spec_rms_norm_avx2(const float *x, const float *weight, int n, float epsilon, float *out) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float sum = hsum8(acc);
    for (; i < n; i++) sum += x[i] * x[i];
    const float scale = 1.0f / sqrtf(sum / (float)n + epsilon);
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(weight + i)));
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}

AVX2 void spec_silu_mul_avx2(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + exp1(-gate[i])) * up[i];
}

/// Symmetric 8-bit quantization of whole blocks, bit-identical to the portable version: the
/// same maximum, the same single-precision product and round-to-nearest-even (lrintf in the
/// default rounding mode), the same clamp.
AVX2 void spec_quantize_act_avx2(int format, const float *x, int n, void *out) {
    uint8_t *base = (uint8_t *)out;
    if (format == SPEC_ACT_F32) {
        memcpy(base, x, (size_t)n * 4);
        return;
    }
    float *d = (float *)base;
    int16_t *s = (int16_t *)(base + (format == SPEC_ACT_Q8_32 ? (size_t)(n / 32) * 4 : (size_t)(n / 256) * 4));
    int8_t *q = (int8_t *)(base + spec_act_header_bytes(format, n));
    const int block = format == SPEC_ACT_Q8_32 ? 32 : 256;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < n / block; b++) {
        const float *xb = x + b * block;
        int8_t *qb = q + b * block;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < block; i += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask));
        const float amax = hmax8(m);
        if (amax == 0.0f) {
            memset(qb, 0, (size_t)block);
            d[b] = 0.0f;
            continue;
        }
        const __m256 inverse = _mm256_set1_ps(127.0f / amax);
        for (int i = 0; i < block; i += 32) {
            const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i), inverse));
            const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8), inverse));
            const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 16), inverse));
            const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 24), inverse));
            // packs interleave the 128-bit lanes; the permutation puts the 32 values back in order.
            __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            packed = _mm256_permutevar8x32_epi32(packed, order);
            packed = _mm256_max_epi8(packed, _mm256_set1_epi8(-127));
            _mm256_storeu_si256((__m256i *)(qb + i), packed);
        }
        d[b] = amax / 127.0f;
    }
    // Sums of 32 (Q8_32) or 16 (Q8_256) values: biased to unsigned, summed per 8 bytes by SAD.
    const int span = format == SPEC_ACT_Q8_32 ? 32 : 16;
    for (int i = 0; i < n; i += 32) {
        const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + i)), _mm256_set1_epi8((char)0x80));
        const __m256i sums = _mm256_sad_epu8(u, _mm256_setzero_si256());
        int64_t part[4];
        _mm256_storeu_si256((__m256i *)part, sums);
        if (span == 32) {
            s[i / 32] = (int16_t)(part[0] + part[1] + part[2] + part[3] - 32 * 128);
        } else {
            s[i / 16] = (int16_t)(part[0] + part[1] - 16 * 128);
            s[i / 16 + 1] = (int16_t)(part[2] + part[3] - 16 * 128);
            s[n / 16 + i / 32] = (int16_t)(part[0] + part[1] + part[2] + part[3] - 32 * 128);
        }
    }
}

/// Four vectors' horizontal sums, in order, as one 4-float vector.
AVX2 static inline __m128 hsum8x4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// Asks for a cache row's lines ahead of use. Out of cache, the score and value loops wait on
/// memory unless told: the value loop reads each row in 16-lane slices, which the hardware
/// prefetchers do not follow.
static inline void prefetch_row(const uint16_t *row, int hd) {
    for (int b = 0; b < hd * 2; b += 64) __builtin_prefetch((const char *)row + b);
}

/// How many keys ahead the score loop prefetches, and how many slots ahead the value loop does.
enum { KEY_AHEAD = 48, VALUE_AHEAD = 64 };

/// Scores of H query heads against K keys (H * K <= 12): one accumulator per (head, key) pair
/// in registers, so each query chunk is loaded once per K keys and each key chunk is converted
/// from half precision once per H heads, straight from the cache. The old loop reloaded the
/// query and a float copy of the key for every pair and reduced each dot product on its own:
/// load-bound at about three times the multiply cost in cache. Out of cache, the head-major
/// layout (contiguous rows per KV head) and prefetch_row decide the speed instead.
/// Called with constant H and K, so the loops unroll and the arrays live in registers.
__attribute__((always_inline)) AVX2 static inline void score_tile(const float *q, int hd, int H, int K, const uint16_t *const *k,
                                                                    float scale, float *scores, size_t visible, int j) {
    __m256 acc[12];
    for (int i = 0; i < H * K; i++) acc[i] = _mm256_setzero_ps();
    for (int e = 0; e < hd; e += 8) {
        __m256 key[4];
        for (int c = 0; c < K; c++) key[c] = load_half8(k[c] + e);
        for (int h = 0; h < H; h++) {
            const __m256 qv = _mm256_loadu_ps(q + (size_t)h * hd + e);
            for (int c = 0; c < K; c++) acc[h * K + c] = _mm256_fmadd_ps(qv, key[c], acc[h * K + c]);
        }
    }
    // Reduce four pairs at a time (pairs in (head, key) order), padding the last group with zeros.
    for (int i = 0; i < H * K; i += 4) {
        const __m256 z = _mm256_setzero_ps();
        const __m128 sums = _mm_mul_ps(hsum8x4(acc[i], i + 1 < H * K ? acc[i + 1] : z, i + 2 < H * K ? acc[i + 2] : z,
                                                i + 3 < H * K ? acc[i + 3] : z), _mm_set1_ps(scale));
        float lanes[4];
        _mm_storeu_ps(lanes, sums);
        for (int t = 0; t < 4 && i + t < H * K; t++) scores[(size_t)((i + t) / K) * visible + (size_t)(j + (i + t) % K)] = lanes[t];
    }
}

/// Weighted values for H heads (H <= 6) over 16 output lanes and the slots [j0, j1): two
/// accumulators per head in registers, each value chunk converted once for all H heads. Each
/// output lane sums its slots in order, the same order as the portable loop.
__attribute__((always_inline)) AVX2 static inline void value_tile(const spec_attention *a, int first, size_t kv_offset, int H,
                                                                    const float *scores, size_t visible, int j0, int j1, int e, float *out) {
    const int hd = a->head_dim;
    __m256 acc[12];
    for (int h = 0; h < H; h++) {
        acc[2 * h] = _mm256_loadu_ps(out + (size_t)h * hd + e);
        acc[2 * h + 1] = _mm256_loadu_ps(out + (size_t)h * hd + e + 8);
    }
    for (int j = j0; j < j1; j++) {
        const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
        const uint16_t *v = a->values + (size_t)slot * a->kv_stride + kv_offset + e;
        if (e == 0 && j + VALUE_AHEAD < (int)visible) {  // the first slice asks for the rows a chunk ahead
            const int later = j + VALUE_AHEAD < a->prefix ? j + VALUE_AHEAD : a->slots[first + j + VALUE_AHEAD - a->prefix];
            prefetch_row(a->values + (size_t)later * a->kv_stride + kv_offset, hd);
        }
        const __m256 v0 = load_half8(v), v1 = load_half8(v + 8);
        for (int h = 0; h < H; h++) {
            const __m256 p = _mm256_broadcast_ss(scores + (size_t)h * visible + j);
            acc[2 * h] = _mm256_fmadd_ps(p, v0, acc[2 * h]);
            acc[2 * h + 1] = _mm256_fmadd_ps(p, v1, acc[2 * h + 1]);
        }
    }
    for (int h = 0; h < H; h++) {
        _mm256_storeu_ps(out + (size_t)h * hd + e, acc[2 * h]);
        _mm256_storeu_ps(out + (size_t)h * hd + e + 8, acc[2 * h + 1]);
    }
}

/// The key row of visible slot j.
static inline const uint16_t *key_row(const spec_attention *a, int first, size_t kv_offset, int j) {
    const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
    return a->keys + (size_t)slot * a->kv_stride + kv_offset;
}

/// Scores of heads [h0, h0 + H) of the group for every visible slot: K keys at a time, then
/// one at a time for the rest. H and K are constants at each call site.
#define SCORE_HEADS(H, K)                                                                                        \
    do {                                                                                                         \
        const float *qh = q + (size_t)h0 * hd;                                                                   \
        float *sh = scores + (size_t)h0 * visible;                                                               \
        int j = 0;                                                                                               \
        for (; j + (K) <= visible; j += (K)) {                                                                   \
            const uint16_t *k[4];                                                                                \
            for (int c = 0; c < (K); c++) k[c] = key_row(a, first, kv_offset, j + c);                            \
            if (j + (K) + KEY_AHEAD <= visible)                                                                  \
                for (int c = 0; c < (K); c++) prefetch_row(key_row(a, first, kv_offset, j + KEY_AHEAD + c), hd); \
            score_tile(qh, hd, (H), (K), k, a->scale, sh, (size_t)visible, j);                                   \
        }                                                                                                        \
        for (; j < visible; j++) {                                                                               \
            const uint16_t *k[1] = {key_row(a, first, kv_offset, j)};                                            \
            score_tile(qh, hd, (H), 1, k, a->scale, sh, (size_t)visible, j);                                     \
        }                                                                                                        \
    } while (0)

/// One node's attention for the `group` query heads that share KV head `kv_head`.
AVX2 static void attend_group(const spec_attention *a, int node, int kv_head, float *scores) {
    const int hd = a->head_dim, group = a->group;
    const int first = a->slot_start[node], visible = a->prefix + a->slot_start[node + 1] - first;
    const float *q = a->queries + (size_t)node * a->q_stride + (size_t)kv_head * group * hd;
    float *out = a->output + (size_t)node * a->out_stride + (size_t)kv_head * group * hd;
    const size_t kv_offset = (size_t)kv_head * a->kv_head_stride;
    // Scores, in tiles of up to six heads (two keys at a time) or up to three (four keys).
    for (int h0 = 0; h0 < group;) {
        const int left = group - h0;
        switch (left >= 6 ? 6 : left) {
        case 6: SCORE_HEADS(6, 2); h0 += 6; break;
        case 5: SCORE_HEADS(5, 2); h0 += 5; break;
        case 4: SCORE_HEADS(4, 2); h0 += 4; break;
        case 3: SCORE_HEADS(3, 4); h0 += 3; break;
        case 2: SCORE_HEADS(2, 4); h0 += 2; break;
        default: SCORE_HEADS(1, 4); h0 += 1; break;
        }
    }
    for (int g = 0; g < group; g++) {
        float *s = scores + (size_t)g * visible;
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 8 <= visible; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
        float maximum = hmax8(vmax);
        for (; j < visible; j++) maximum = s[j] > maximum ? s[j] : maximum;
        const __m256 vm = _mm256_set1_ps(maximum);
        __m256 vtotal = _mm256_setzero_ps();
        for (j = 0; j + 8 <= visible; j += 8) {
            const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
            _mm256_storeu_ps(s + j, e);
            vtotal = _mm256_add_ps(vtotal, e);
        }
        float total = hsum8(vtotal);
        for (; j < visible; j++) {
            s[j] = exp1(s[j] - maximum);
            total += s[j];
        }
        const __m256 inverse = _mm256_set1_ps(1.0f / total);
        for (j = 0; j + 8 <= visible; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inverse));
        for (; j < visible; j++) s[j] *= 1.0f / total;
    }
    // Weighted values over chunks of slots small enough to stay in L1 while every 16-lane
    // slice and head tile passes over them (64 slots x 2 bytes x head_dim).
    enum { VALUE_CHUNK = 64 };
    for (int g = 0; g < group; g++) memset(out + (size_t)g * hd, 0, sizeof(float) * (size_t)hd);
    for (int j0 = 0; j0 < visible; j0 += VALUE_CHUNK) {
        const int j1 = visible - j0 < VALUE_CHUNK ? visible : j0 + VALUE_CHUNK;
        for (int e = 0; e < hd; e += 16) {
            if (e + 16 > hd) {  // a last 8-lane slice: one head at a time, portable order
                for (int g = 0; g < group; g++) {
                    __m256 acc = _mm256_loadu_ps(out + (size_t)g * hd + e);
                    for (int j = j0; j < j1; j++) {
                        const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
                        const __m256 v = load_half8(a->values + (size_t)slot * a->kv_stride + kv_offset + e);
                        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + (size_t)g * visible + j), v, acc);
                    }
                    _mm256_storeu_ps(out + (size_t)g * hd + e, acc);
                }
                continue;
            }
            for (int h0 = 0; h0 < group;) {
                const int left = group - h0;
                const float *sh = scores + (size_t)h0 * visible;
                float *oh = out + (size_t)h0 * hd;
                switch (left >= 6 ? 6 : left) {
                case 6: value_tile(a, first, kv_offset, 6, sh, (size_t)visible, j0, j1, e, oh); h0 += 6; break;
                case 5: value_tile(a, first, kv_offset, 5, sh, (size_t)visible, j0, j1, e, oh); h0 += 5; break;
                case 4: value_tile(a, first, kv_offset, 4, sh, (size_t)visible, j0, j1, e, oh); h0 += 4; break;
                case 3: value_tile(a, first, kv_offset, 3, sh, (size_t)visible, j0, j1, e, oh); h0 += 3; break;
                case 2: value_tile(a, first, kv_offset, 2, sh, (size_t)visible, j0, j1, e, oh); h0 += 2; break;
                default: value_tile(a, first, kv_offset, 1, sh, (size_t)visible, j0, j1, e, oh); h0 += 1; break;
                }
            }
        }
    }
}

/// Heads whose size is not a multiple of 8 (or above 512 values) take the portable path.
void spec_attend_group_avx2(const spec_attention *a, int node, int kv_head, float *scores) {
    if (a->head_dim % 8 == 0 && a->head_dim <= 512) attend_group(a, node, kv_head, scores);
    else spec_attend_group_portable(a, node, kv_head, scores);
}

#else
void spec_f32_to_f16_avx2(const float *x, int n, uint16_t *out) { (void)x; (void)n; (void)out; }
void spec_f16_to_f32_avx2(const uint16_t *x, int n, float *out) { (void)x; (void)n; (void)out; }
void spec_rms_norm_avx2(const float *x, const float *weight, int n, float epsilon, float *out) { (void)x; (void)weight; (void)n; (void)epsilon; (void)out; }
void spec_silu_mul_avx2(float *gate, const float *up, int n) { (void)gate; (void)up; (void)n; }
void spec_quantize_act_avx2(int format, const float *x, int n, void *out) { (void)format; (void)x; (void)n; (void)out; }
void spec_attend_group_avx2(const spec_attention *a, int node, int kv_head, float *scores) { (void)a; (void)node; (void)kv_head; (void)scores; }
#endif
