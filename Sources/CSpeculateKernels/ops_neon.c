// Tree attention for the AArch64 sets (neon, dotprod, i8mm), which otherwise use the portable
// operations. The same register tiling as ops_avx2.c, in 4-lane NEON vectors: scores keep one
// accumulator per (query head, key) pair and convert each key chunk from half precision once for
// all heads of the tile; weighted values keep 16 output lanes of up to six heads and convert each
// value chunk once for them. The softmax is the portable one (expf), so only the order of the
// score and value sums differs from the portable loop: results agree within rounding, which the
// kernel check bounds (Tests/Reference/kernel_check.c, run under qemu-aarch64).
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

/// How many keys ahead the score loop prefetches, and how many slots ahead the value loop does.
enum { KEY_AHEAD = 48, VALUE_AHEAD = 64 };

// SPEC_CHECK_MUTANT 5 (kernel check builds only): the value tiles leave out the last slot of
// each chunk, which the check must catch.
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 5
#define VALUE_END(j1) ((j1) - 1)
#else
#define VALUE_END(j1) (j1)
#endif

static inline float32x4_t load_half4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static inline void prefetch_row(const uint16_t *row, int hd) {
    for (int b = 0; b < hd * 2; b += 64) __builtin_prefetch((const char *)row + b);
}

static inline const uint16_t *key_row(const spec_attention *a, int first, size_t kv_offset, int j) {
    const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
    return a->keys + (size_t)slot * a->kv_stride + kv_offset;
}

/// Scores of H query heads against K keys (H * K <= 12), one accumulator per pair.
__attribute__((always_inline)) static inline void score_tile(const float *q, int hd, int H, int K, const uint16_t *const *k, float scale,
                                                              float *scores, size_t visible, int j) {
    float32x4_t acc[12];
    for (int i = 0; i < H * K; i++) acc[i] = vdupq_n_f32(0.0f);
    for (int e = 0; e < hd; e += 4) {
        float32x4_t key[4];
        for (int c = 0; c < K; c++) key[c] = load_half4(k[c] + e);
        for (int h = 0; h < H; h++) {
            const float32x4_t qv = vld1q_f32(q + (size_t)h * hd + e);
            for (int c = 0; c < K; c++) acc[h * K + c] = vfmaq_f32(acc[h * K + c], qv, key[c]);
        }
    }
    for (int i = 0; i < H * K; i++) scores[(size_t)(i / K) * visible + (size_t)(j + i % K)] = vaddvq_f32(acc[i]) * scale;
}

/// Weighted values for H heads (H <= 6) over 16 output lanes and the slots [j0, j1); each output
/// lane sums its slots in order, as the portable loop does.
__attribute__((always_inline)) static inline void value_tile(const spec_attention *a, int first, size_t kv_offset, int H, const float *scores,
                                                              size_t visible, int j0, int j1, int e, float *out) {
    const int hd = a->head_dim;
    float32x4_t acc[24];
    for (int h = 0; h < H; h++)
        for (int l = 0; l < 4; l++) acc[4 * h + l] = vld1q_f32(out + (size_t)h * hd + e + 4 * l);
    for (int j = j0; j < VALUE_END(j1); j++) {
        const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
        const uint16_t *v = a->values + (size_t)slot * a->kv_stride + kv_offset + e;
        if (e == 0 && j + VALUE_AHEAD < (int)visible) {
            const int later = j + VALUE_AHEAD < a->prefix ? j + VALUE_AHEAD : a->slots[first + j + VALUE_AHEAD - a->prefix];
            prefetch_row(a->values + (size_t)later * a->kv_stride + kv_offset, hd);
        }
        float32x4_t vv[4];
        for (int l = 0; l < 4; l++) vv[l] = load_half4(v + 4 * l);
        for (int h = 0; h < H; h++) {
            const float32x4_t p = vdupq_n_f32(scores[(size_t)h * visible + j]);
            for (int l = 0; l < 4; l++) acc[4 * h + l] = vfmaq_f32(acc[4 * h + l], p, vv[l]);
        }
    }
    for (int h = 0; h < H; h++)
        for (int l = 0; l < 4; l++) vst1q_f32(out + (size_t)h * hd + e + 4 * l, acc[4 * h + l]);
}

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
static void attend_group(const spec_attention *a, int node, int kv_head, float *scores) {
    const int hd = a->head_dim, group = a->group;
    const int first = a->slot_start[node], visible = a->prefix + a->slot_start[node + 1] - first;
    const float *q = a->queries + (size_t)node * a->q_stride + (size_t)kv_head * group * hd;
    float *out = a->output + (size_t)node * a->out_stride + (size_t)kv_head * group * hd;
    const size_t kv_offset = (size_t)kv_head * a->kv_head_stride;
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
    // The portable softmax.
    for (int g = 0; g < group; g++) {
        float *s = scores + (size_t)g * visible;
        float maximum = -INFINITY, total = 0.0f;
        for (int j = 0; j < visible; j++) maximum = s[j] > maximum ? s[j] : maximum;
        for (int j = 0; j < visible; j++) {
            s[j] = expf(s[j] - maximum);
            total += s[j];
        }
        for (int j = 0; j < visible; j++) s[j] /= total;
    }
    // Weighted values over chunks of slots small enough to stay in L1 across the lane slices.
    enum { VALUE_CHUNK = 64 };
    for (int g = 0; g < group; g++) memset(out + (size_t)g * hd, 0, sizeof(float) * (size_t)hd);
    for (int j0 = 0; j0 < visible; j0 += VALUE_CHUNK) {
        const int j1 = visible - j0 < VALUE_CHUNK ? visible : j0 + VALUE_CHUNK;
        for (int e = 0; e < hd; e += 16) {
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

/// Heads whose size is not a multiple of 16 (or above 512 values) take the portable path.
void spec_attend_group_neon(const spec_attention *a, int node, int kv_head, float *scores) {
    if (a->head_dim % 16 == 0 && a->head_dim <= 512) attend_group(a, node, kv_head, scores);
    else spec_attend_group_portable(a, node, kv_head, scores);
}
#else
void spec_attend_group_neon(const spec_attention *a, int node, int kv_head, float *scores) { spec_attend_group_portable(a, node, kv_head, scores); }
#endif
