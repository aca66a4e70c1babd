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
AVX2 static inline float exp1(float x) {
    return _mm256_cvtss_f32(exp8(_mm256_set1_ps(x)));
}

AVX2 void spec_f32_to_f16_avx2(const float *x, int n, uint16_t *out) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        out[i] = (uint16_t)_mm_extract_epi16(
            _mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0);
}

AVX2 void spec_f16_to_f32_avx2(const uint16_t *x, int n, float *out) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) out[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x[i])));
}

/// Eight half-precision values as floats.
AVX2 static inline __m256 load_half8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

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
        _mm256_storeu_ps(out + i,
                         _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(weight + i)));
    for (; i < n; i++) out[i] = x[i] * scale * weight[i];
}

/// GELU's tanh form as a sigmoid: 0.5 (1 + tanh u) = 1 / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
AVX2 void spec_gelu_mul_avx2(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), twice = _mm256_set1_ps(-2.0f * 0.79788456080286535588f),
                 cubic = _mm256_set1_ps(0.044715f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(cubic, g), g, one);
        const __m256 e = exp8(_mm256_mul_ps(_mm256_mul_ps(twice, g), inner));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + exp1(-2.0f * 0.79788456080286535588f * g * (1.0f + 0.044715f * g * g))) * up[i];
    }
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

#define ATTN_TARGET AVX2
#include "attention_tiles.h"

/// Scores of H query heads against K keys (H * K <= 12): one accumulator per (head, key) pair
/// in registers, so each query chunk is loaded once per K keys and each key chunk is converted
/// from half precision once per H heads, straight from the cache. The old loop reloaded the
/// query and a float copy of the key for every pair and reduced each dot product on its own:
/// load-bound at about three times the multiply cost in cache. Out of cache, the head-major
/// layout (contiguous rows per KV head) and prefetch_row decide the speed instead.
/// Called with constant H and K, so the loops unroll and the arrays live in registers.
AVX2 static inline __attribute__((always_inline)) void score_tile(const float *q, int hd, int H, int K,
                                                                  const uint16_t *const *k, float scale, float *scores,
                                                                  size_t visible, int j) {
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
                                               i + 3 < H * K ? acc[i + 3] : z),
                                       _mm_set1_ps(scale));
        float lanes[4];
        _mm_storeu_ps(lanes, sums);
        for (int t = 0; t < 4 && i + t < H * K; t++)
            scores[(size_t)((i + t) / K) * visible + (size_t)(j + (i + t) % K)] = lanes[t];
    }
}

/// Weighted values for H heads (H <= 6) over 16 output lanes: two accumulators per head in
/// registers, each value chunk converted once for all H heads.
AVX2 static inline __attribute__((always_inline)) void value_tile(const spec_attention *a, int first, size_t kv_offset,
                                                                  int H, const float *scores, size_t visible, int j0,
                                                                  int j1, int e, float *out) {
    const int hd = a->head_dim;
    __m256 acc[12];
    for (int h = 0; h < H; h++) {
        acc[2 * h] = _mm256_loadu_ps(out + (size_t)h * hd + e);
        acc[2 * h + 1] = _mm256_loadu_ps(out + (size_t)h * hd + e + 8);
    }
    for (int j = j0; j < j1; j++) {
        if (e == 0) prefetch_value_ahead(a, first, kv_offset, j, (int)visible);
        const uint16_t *v = value_row(a, first, kv_offset, j) + e;
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

/// A last 8-lane slice: one head at a time.
AVX2 static void value_tail(const spec_attention *a, int first, size_t kv_offset, int group, const float *scores,
                            size_t visible, int j0, int j1, int e, float *out) {
    const int hd = a->head_dim;
    for (int g = 0; g < group; g++) {
        __m256 acc = _mm256_loadu_ps(out + (size_t)g * hd + e);
        for (int j = j0; j < j1; j++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + (size_t)g * visible + j),
                                  load_half8(value_row(a, first, kv_offset, j) + e), acc);
        _mm256_storeu_ps(out + (size_t)g * hd + e, acc);
    }
}

/// The softmax of one head's scores, eight at a time.
AVX2 static void softmax_row(float *s, int visible) {
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

/// Heads whose size is not a multiple of 8 (or above 512 values) take the portable path.
void spec_attend_group_avx2(const spec_attention *a, int node, int kv_head, float *scores) {
    if (a->head_dim % 8 == 0 && a->head_dim <= 512)
        attend_tiled(a, node, kv_head, scores);
    else
        spec_attend_group_portable(a, node, kv_head, scores);
}

#else
void spec_f32_to_f16_avx2(const float *x, int n, uint16_t *out) {
    (void)x;
    (void)n;
    (void)out;
}
void spec_f16_to_f32_avx2(const uint16_t *x, int n, float *out) {
    (void)x;
    (void)n;
    (void)out;
}
void spec_rms_norm_avx2(const float *x, const float *weight, int n, float epsilon, float *out) {
    (void)x;
    (void)weight;
    (void)n;
    (void)epsilon;
    (void)out;
}
void spec_silu_mul_avx2(float *gate, const float *up, int n) {
    (void)gate;
    (void)up;
    (void)n;
}
void spec_gelu_mul_avx2(float *gate, const float *up, int n) {
    (void)gate;
    (void)up;
    (void)n;
}
void spec_quantize_act_avx2(int format, const float *x, int n, void *out) {
    (void)format;
    (void)x;
    (void)n;
    (void)out;
}
void spec_attend_group_avx2(const spec_attention *a, int node, int kv_head, float *scores) {
    (void)a;
    (void)node;
    (void)kv_head;
    (void)scores;
}
#endif
