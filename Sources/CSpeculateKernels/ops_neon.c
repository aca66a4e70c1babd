// Tree attention for the AArch64 sets (neon, dotprod, i8mm), which otherwise use the portable
// operations: attention_tiles.h's tiling (shared with ops_avx2.c) in 4-lane NEON vectors.
// Scores keep one accumulator per (query head, key) pair and convert each key chunk from half
// precision once for all heads of the tile; weighted values keep 16 output lanes of up to six
// heads and convert each value chunk once for them. The softmax is the portable one (expf), so only the order of the
// score and value sums differs from the portable loop: results agree within rounding, which the
// kernel check bounds (Tests/Reference/kernel_check.c, run under qemu-aarch64).
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

#define ATTN_TARGET
#include "attention_tiles.h"

// SPEC_CHECK_MUTANT 5 (kernel check builds only): the value tiles leave out the last slot of
// each chunk, which the check must catch.
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 5
#define VALUE_END(j1) ((j1)-1)
#else
#define VALUE_END(j1) (j1)
#endif

static inline float32x4_t load_half4(const uint16_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/// Scores of H query heads against K keys (H * K <= 12), one accumulator per pair.
static inline __attribute__((always_inline)) void score_tile(const float *q, int hd, int H, int K,
                                                             const uint16_t *const *k, float scale, float *scores,
                                                             size_t visible, int j) {
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
    for (int i = 0; i < H * K; i++)
        scores[(size_t)(i / K) * visible + (size_t)(j + i % K)] = vaddvq_f32(acc[i]) * scale;
}

/// Weighted values for H heads (H <= 6) over 16 output lanes: four accumulators per head, each
/// value chunk converted once for all H heads.
static inline __attribute__((always_inline)) void value_tile(const spec_attention *a, int first, size_t kv_offset,
                                                             int H, const float *scores, size_t visible, int j0, int j1,
                                                             int e, float *out) {
    const int hd = a->head_dim;
    float32x4_t acc[24];
    for (int h = 0; h < H; h++)
        for (int l = 0; l < 4; l++) acc[4 * h + l] = vld1q_f32(out + (size_t)h * hd + e + 4 * l);
    for (int j = j0; j < VALUE_END(j1); j++) {
        if (e == 0) prefetch_value_ahead(a, first, kv_offset, j, (int)visible);
        const uint16_t *v = value_row(a, first, kv_offset, j) + e;
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

/// A last 8-lane slice: one head at a time.
static void value_tail(const spec_attention *a, int first, size_t kv_offset, int group, const float *scores,
                       size_t visible, int j0, int j1, int e, float *out) {
    const int hd = a->head_dim;
    for (int g = 0; g < group; g++) {
        float32x4_t lo = vld1q_f32(out + (size_t)g * hd + e), hi = vld1q_f32(out + (size_t)g * hd + e + 4);
        for (int j = j0; j < VALUE_END(j1); j++) {
            const uint16_t *v = value_row(a, first, kv_offset, j) + e;
            const float32x4_t p = vdupq_n_f32(scores[(size_t)g * visible + j]);
            lo = vfmaq_f32(lo, p, load_half4(v));
            hi = vfmaq_f32(hi, p, load_half4(v + 4));
        }
        vst1q_f32(out + (size_t)g * hd + e, lo);
        vst1q_f32(out + (size_t)g * hd + e + 4, hi);
    }
}

/// The portable softmax.
static void softmax_row(float *s, int visible) {
    float maximum = -INFINITY, total = 0.0f;
    for (int j = 0; j < visible; j++) maximum = s[j] > maximum ? s[j] : maximum;
    for (int j = 0; j < visible; j++) {
        s[j] = expf(s[j] - maximum);
        total += s[j];
    }
    for (int j = 0; j < visible; j++) s[j] /= total;
}

/// Heads whose size is not a multiple of 8 (or above 512 values) take the portable path.
void spec_attend_group_neon(const spec_attention *a, int node, int kv_head, float *scores) {
    if (a->head_dim % 8 == 0 && a->head_dim <= 512)
        attend_tiled(a, node, kv_head, scores);
    else
        spec_attend_group_portable(a, node, kv_head, scores);
}
#else
void spec_attend_group_neon(const spec_attention *a, int node, int kv_head, float *scores) {
    spec_attend_group_portable(a, node, kv_head, scores);
}
#endif
