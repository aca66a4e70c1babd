// The Arm dot-product kernel set (ARMv8.2 `sdot`: Apple M1 and later, AWS Graviton 2 and
// later, most Arm cores since 2017): the NEON set, plus Q4_K and Q6_K products over the packed
// layouts of repack.c (eight rows interleaved four bytes at a time), which the runtime then
// loads them into.
//
// The lanes hold rows, as in the x86 VNNI sets (x86_vnni.h): a group of eight rows' four
// weights is two 16-byte vectors, and `sdot` by element (vdotq_laneq_s32) multiplies them by
// one token's four activation bytes taken from a lane of a 16-byte activation load. Every
// block's integer totals are exact and the float steps are the portable ones in the portable
// order, so the results equal the portable kernels bit for bit at every batch size. Checked
// under qemu-aarch64 -cpu max (Tests/Reference/kernel_check.c); not timed on Arm hardware.
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#else
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static int supported(void) {
#if defined(__APPLE__)
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, NULL, 0) == 0 && value == 1;
#else
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
}

#define DOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#include "arm_packed.h"

enum { TOKENS_PER_PASS = 4 };

/// Eight unsigned bytes (one column of a packed block: a byte of each row) as two vectors of
/// four 32-bit lanes, signed or not.
static inline void column_u8(const uint8_t *p, int32x4_t *lo, int32x4_t *hi) {
    const uint16x8_t wide = vmovl_u8(vld1_u8(p));
    *lo = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(wide)));
    *hi = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(wide)));
}
static inline void column_s8(const uint8_t *p, int32x4_t *lo, int32x4_t *hi) {
    const int16x8_t wide = vmovl_s8(vld1_s8((const int8_t *)p));
    *lo = vmovl_s16(vget_low_s16(wide));
    *hi = vmovl_s16(vget_high_s16(wide));
}
/// Eight half-precision values as two float vectors (exact).
static inline void halves8(const uint8_t *p, float32x4_t *lo, float32x4_t *hi) {
    const uint16x8_t h = vld1q_u16((const uint16_t *)p);
    *lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
    *hi = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
}

/// sdot of 16 weight bytes with 4-byte group `lane` (0..3) of x (the lane must be a constant).
#define SDOT(acc, w, x, lane) vdotq_laneq_s32(acc, w, x, lane)

// s0 += w0 · lane k of x0 and s1 += w1 · lane k of x1, four bytes per lane. The lane of `sdot` is
// an immediate: the switch disappears once the caller's loop over k is unrolled.
DOT_TARGET static inline __attribute__((always_inline)) void
sdot_pair(int32x4_t *s0, int32x4_t *s1, int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1, int k) {
    switch (k) {
    case 0: *s0 = SDOT(*s0, w0, x0, 0), *s1 = SDOT(*s1, w1, x1, 0); break;
    case 1: *s0 = SDOT(*s0, w0, x0, 1), *s1 = SDOT(*s1, w1, x1, 1); break;
    case 2: *s0 = SDOT(*s0, w0, x0, 2), *s1 = SDOT(*s1, w1, x1, 2); break;
    default: *s0 = SDOT(*s0, w0, x0, 3), *s1 = SDOT(*s1, w1, x1, 3); break;
    }
}

/// One packed block b of eight rows against TOKENS tokens; acc[t][h] (h: rows 0-3, 4-7).
DOT_TARGET static inline __attribute__((always_inline)) void dot_block(const int TYPE, const int TOKENS,
                                                                       const uint8_t *blk, int b,
                                                                       const spec_act_view *a, float32x4_t (*acc)[2],
                                                                       float32x4_t (*acc_min)[2]) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t tot[TOKENS_PER_PASS][2];
    for (int t = 0; t < TOKENS; t++) tot[t][0] = tot[t][1] = zero;
    if (TYPE == SPEC_Q6_K) {
        const uint8x16_t low4 = vdupq_n_u8(0x0F), top2 = vdupq_n_u8(0x30);
        for (int p = 0; p < 8; p++) { // sub-blocks 2p and 2p + 1 (16 values each)
            int32x4_t s0[TOKENS_PER_PASS][2], s1[TOKENS_PER_PASS][2];
            for (int t = 0; t < TOKENS; t++) s0[t][0] = s0[t][1] = s1[t][0] = s1[t][1] = zero;
            int8x16_t x0[TOKENS_PER_PASS], x1[TOKENS_PER_PASS];
            for (int t = 0; t < TOKENS; t++) {
                x0[t] = vld1q_s8(a[t].q + 256 * b + 32 * p);      // sub-block 2p: groups 0-3 in lanes 0-3
                x1[t] = vld1q_s8(a[t].q + 256 * b + 32 * p + 16); // sub-block 2p + 1
            }
            for (int k = 0; k < 4; k++) {
                int8x16_t w0[2], w1[2];
                for (int h = 0; h < 2; h++) {
                    const uint8x16_t nib = vld1q_u8(blk + (4 * p + k) * 32 + 16 * h);
                    const uint8x16_t h0 = vld1q_u8(blk + 1024 + 2 * p * 32 + 16 * h),
                                     h1 = vld1q_u8(blk + 1024 + (2 * p + 1) * 32 + 16 * h);
                    const int8x16_t shift = vdupq_n_s8((int8_t)(4 - 2 * k)); // bits 2k..2k+1 to 4..5 (negative: right)
                    w0[h] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(nib, low4), vandq_u8(vshlq_u8(h0, shift), top2)));
                    w1[h] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(nib, 4), vandq_u8(vshlq_u8(h1, shift), top2)));
                }
                for (int t = 0; t < TOKENS; t++)
                    for (int h = 0; h < 2; h++) sdot_pair(&s0[t][h], &s1[t][h], w0[h], w1[h], x0[t], x1[t], k);
            }
            int32x4_t sc0[2], sc1[2];
            column_s8(blk + 1536 + 16 * p, &sc0[0], &sc0[1]);
            column_s8(blk + 1536 + 16 * p + 8, &sc1[0], &sc1[1]);
            for (int t = 0; t < TOKENS; t++)
                for (int h = 0; h < 2; h++)
                    tot[t][h] =
                        vaddq_s32(tot[t][h], vaddq_s32(vmulq_s32(s0[t][h], sc0[h]), vmulq_s32(s1[t][h], sc1[h])));
        }
        float32x4_t d[2];
        halves8(blk + 1664, &d[0], &d[1]);
        for (int t = 0; t < TOKENS; t++) {
            // The stored values are q + 32: minus 32 * the sum of scale * 16-value activation sum.
            int32x4_t offset[2] = {zero, zero};
            for (int g = 0; g < 16; g++) {
                int32x4_t sc[2];
                column_s8(blk + 1536 + 8 * g, &sc[0], &sc[1]);
                for (int h = 0; h < 2; h++) offset[h] = vmlaq_n_s32(offset[h], sc[h], a[t].s[16 * b + g]);
            }
            const float32x4_t dx = vdupq_n_f32(a[t].d[b]);
            for (int h = 0; h < 2; h++) {
                const int32x4_t total = vsubq_s32(tot[t][h], vshlq_n_s32(offset[h], Q6_OFFSET_SHIFT));
                acc[t][h] = vaddq_f32(acc[t][h], vmulq_f32(vmulq_f32(d[h], dx), vcvtq_f32_s32(total)));
            }
        }
        return;
    }
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    for (int c = 0; c < 4; c++) { // sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
        int32x4_t s0[TOKENS_PER_PASS][2], s1[TOKENS_PER_PASS][2];
        for (int t = 0; t < TOKENS; t++) s0[t][0] = s0[t][1] = s1[t][0] = s1[t][1] = zero;
        for (int half = 0; half < 2; half++) { // groups 4 * half .. 4 * half + 3
            int8x16_t x0[TOKENS_PER_PASS], x1[TOKENS_PER_PASS];
            for (int t = 0; t < TOKENS; t++) {
                x0[t] = vld1q_s8(a[t].q + 256 * b + 64 * c + 16 * half);
                x1[t] = vld1q_s8(a[t].q + 256 * b + 64 * c + 32 + 16 * half);
            }
            for (int k = 0; k < 4; k++) {
                int8x16_t w0[2], w1[2];
                for (int h = 0; h < 2; h++) {
                    const uint8x16_t packed = vld1q_u8(blk + (8 * c + 4 * half + k) * 32 + 16 * h);
                    w0[h] = vreinterpretq_s8_u8(vandq_u8(packed, low4));
                    w1[h] = vreinterpretq_s8_u8(vshrq_n_u8(packed, 4));
                }
                for (int t = 0; t < TOKENS; t++)
                    for (int h = 0; h < 2; h++) sdot_pair(&s0[t][h], &s1[t][h], w0[h], w1[h], x0[t], x1[t], k);
            }
        }
        int32x4_t sc0[2], sc1[2];
        column_u8(blk + 1024 + 8 * SCALE_COLUMN(2 * c), &sc0[0], &sc0[1]);
        column_u8(blk + 1024 + 8 * SCALE_COLUMN(2 * c + 1), &sc1[0], &sc1[1]);
        for (int t = 0; t < TOKENS; t++)
            for (int h = 0; h < 2; h++)
                tot[t][h] = vaddq_s32(tot[t][h], vaddq_s32(vmulq_s32(s0[t][h], sc0[h]), vmulq_s32(s1[t][h], sc1[h])));
    }
    float32x4_t d[2], dmin[2];
    halves8(blk + 1152, &d[0], &d[1]);
    halves8(blk + 1168, &dmin[0], &dmin[1]);
    for (int t = 0; t < TOKENS; t++) {
        // The mins: per row, the sum over sub-blocks j of min_j * (the two 16-value sums of j).
        int32x4_t summ[2] = {zero, zero};
        for (int j = 0; j < 8; j++) {
            int32x4_t mn[2];
            column_u8(blk + 1024 + 8 * (8 + j), &mn[0], &mn[1]);
            const int32_t sums = a[t].s[16 * b + 2 * j] + a[t].s[16 * b + 2 * j + 1];
            for (int h = 0; h < 2; h++) summ[h] = vmlaq_n_s32(summ[h], mn[h], sums);
        }
        const float32x4_t dx = vdupq_n_f32(a[t].d[b]);
        for (int h = 0; h < 2; h++) {
            acc[t][h] = vaddq_f32(acc[t][h], vmulq_f32(vmulq_f32(d[h], dx), vcvtq_f32_s32(tot[t][h])));
            acc_min[t][h] = vaddq_f32(acc_min[t][h], vmulq_f32(vmulq_f32(dmin[h], dx), vcvtq_f32_s32(summ[h])));
        }
    }
}

DOT_TARGET static inline __attribute__((always_inline)) void
dot_group(const int TYPE, const int TOKENS, int nb, const uint8_t *group, const spec_act_view *a, float (*out)[ROWS]) {
    const int bytes = TYPE == SPEC_Q6_K ? Q6_K_X8_BLOCK : Q4_K_X8_BLOCK;
    float32x4_t acc[TOKENS_PER_PASS][2], acc_min[TOKENS_PER_PASS][2];
    for (int t = 0; t < TOKENS; t++) acc[t][0] = acc[t][1] = acc_min[t][0] = acc_min[t][1] = vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) dot_block(TYPE, TOKENS, group + (size_t)b * bytes, b, a, acc, acc_min);
    for (int t = 0; t < TOKENS; t++)
        for (int h = 0; h < 2; h++)
            vst1q_f32(out[t] + 4 * h, TYPE == SPEC_Q6_K ? acc[t][h] : vsubq_f32(acc[t][h], acc_min[t][h]));
}

typedef void (*group_fn)(int nb, const uint8_t *group, const spec_act_view *a, float (*out)[ROWS]);
#define DOT_GROUP(NAME, TYPE, TOKENS)                                                                                  \
    DOT_TARGET static void NAME(int nb, const uint8_t *group, const spec_act_view *a, float(*out)[ROWS]) {             \
        dot_group(TYPE, TOKENS, nb, group, a, out);                                                                    \
    }
DOT_GROUP(q4_K_x8_1, SPEC_Q4_K, 1)
DOT_GROUP(q4_K_x8_2, SPEC_Q4_K, 2)
DOT_GROUP(q4_K_x8_3, SPEC_Q4_K, 3)
DOT_GROUP(q4_K_x8_4, SPEC_Q4_K, 4)
DOT_GROUP(q6_K_x8_1, SPEC_Q6_K, 1)
DOT_GROUP(q6_K_x8_2, SPEC_Q6_K, 2)
DOT_GROUP(q6_K_x8_3, SPEC_Q6_K, 3)
DOT_GROUP(q6_K_x8_4, SPEC_Q6_K, 4)
#undef DOT_GROUP
static const group_fn q4_K_x8[TOKENS_PER_PASS] = {q4_K_x8_1, q4_K_x8_2, q4_K_x8_3, q4_K_x8_4};
static const group_fn q6_K_x8[TOKENS_PER_PASS] = {q6_K_x8_1, q6_K_x8_2, q6_K_x8_3, q6_K_x8_4};

/// Rows r0..r1 of a packed matrix for T tokens (a group cut by the bounds is computed whole;
/// only its rows inside are stored).
static void packed_product(int packed_type, int n, const uint8_t *w, int r0, int r1, const uint8_t *act,
                           size_t act_stride, int T, float *y, size_t y_stride) {
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
    const group_fn *by_tokens = packed_type == SPEC_Q6_K_X8 ? q6_K_x8 : q4_K_x8;
    spec_act_view a[TOKENS_PER_PASS];
    float out[TOKENS_PER_PASS][ROWS];
    for (int g = r0 - r0 % ROWS; g < r1; g += ROWS) {
        const int lo = g > r0 ? g : r0, hi = g + ROWS < r1 ? g + ROWS : r1;
        for (int t0 = 0; t0 < T; t0 += TOKENS_PER_PASS) {
            const int count = T - t0 < TOKENS_PER_PASS ? T - t0 : TOKENS_PER_PASS;
            for (int t = 0; t < count; t++) a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + t) * act_stride);
            by_tokens[count - 1](n / 256, w + (size_t)g * row_bytes, a, out);
            for (int t = 0; t < count; t++)
                memcpy(y + (size_t)(t0 + t) * y_stride + lo, &out[t][lo - g], sizeof(float) * (size_t)(hi - lo));
        }
    }
}

static int matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act, size_t act_stride,
                  int T, float *y, size_t y_stride) {
    if (T < 1 || r1 <= r0) return 1;
    if (type == SPEC_Q4_K_X8 || type == SPEC_Q6_K_X8) {
        packed_product(type, n, (const uint8_t *)w, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    }
    return spec_matmul_neon(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride);
}

const spec_kernel_set spec_set_dotprod = {
    .name = "dotprod", .supported = supported, .matmul = matmul, .packs = packs, SPEC_NEON_OPS};
#else
const spec_kernel_set spec_set_dotprod = {.name = "dotprod",
                                          .supported = spec_never_supported,
                                          .matmul = spec_matmul_portable_set,
                                          .packs = spec_packs_none,
                                          SPEC_PORTABLE_OPS};
#endif
