// The Arm int8 matrix-multiply kernel set (ARMv8.6 `smmla`: Apple M2 and later, AWS
// Graviton 3 and later): the dotprod set, with Q4_K and Q6_K products of two or more tokens
// over the packed layouts of repack.c done as 2 x 8 by 8 x 2 tiles.
//
// One `smmla` (vmmlaq_s32) multiplies eight consecutive weights of two rows by the same eight
// activations of two tokens: 32 products, against 16 for `sdot`. The packed layout interleaves
// rows four bytes at a time, so the tiles come from zipping two neighbouring four-byte groups
// (vzip1q/vzip2q on 32-bit lanes); each accumulator holds (row 2i, token 0), (2i, token 1),
// (2i + 1, token 0), (2i + 1, token 1). An odd token count repeats the last token in the
// spare lanes and drops those results. Exact integer totals and the portable float steps, so
// results equal the portable kernels bit for bit at every batch size; one token takes the
// dotprod kernels (there is no second token to pair). Checked under qemu-aarch64 -cpu max;
// not timed on Arm hardware.
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
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

static int supported(void) {
#if defined(__APPLE__)
    int dot = 0, mm = 0;
    size_t size = sizeof dot;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &dot, &size, NULL, 0) != 0) return 0;
    size = sizeof mm;
    return dot == 1 && sysctlbyname("hw.optional.arm.FEAT_I8MM", &mm, &size, NULL, 0) == 0 && mm == 1;
#else
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) && (getauxval(AT_HWCAP2) & HWCAP2_I8MM);
#endif
}

#define MM_TARGET __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#include "arm_packed.h"

enum { PAIRS = 2 };

/// A column of the packed block (a byte of each of the eight rows) as four vectors, one per
/// row pair, each value twice: [v(2i), v(2i), v(2i + 1), v(2i + 1)], lined up with the tiles.
static inline void column_pairs(const uint8_t *p, int is_signed, int32x4_t *out) {
    int32x4_t lo, hi;
    if (is_signed) {
        const int16x8_t wide = vmovl_s8(vld1_s8((const int8_t *)p));
        lo = vmovl_s16(vget_low_s16(wide));
        hi = vmovl_s16(vget_high_s16(wide));
    } else {
        const uint16x8_t wide = vmovl_u8(vld1_u8(p));
        lo = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(wide)));
        hi = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(wide)));
    }
    out[0] = vzip1q_s32(lo, lo);
    out[1] = vzip2q_s32(lo, lo);
    out[2] = vzip1q_s32(hi, hi);
    out[3] = vzip2q_s32(hi, hi);
}

static inline void halves_pairs(const uint8_t *p, float32x4_t *out) {
    const uint16x8_t h = vld1q_u16((const uint16_t *)p);
    const float32x4_t lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
    const float32x4_t hi = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
    out[0] = vzip1q_f32(lo, lo);
    out[1] = vzip2q_f32(lo, lo);
    out[2] = vzip1q_f32(hi, hi);
    out[3] = vzip2q_f32(hi, hi);
}

/// Two neighbouring 4-byte groups of eight rows (32 bytes each, rows 0-3 then 4-7) as the four
/// row pairs' 2 x 8 tiles.
static inline void tiles(const int8x16_t *g0, const int8x16_t *g1, int8x16_t *out) {
    for (int h = 0; h < 2; h++) {
        out[2 * h] = vreinterpretq_s8_s32(vzip1q_s32(vreinterpretq_s32_s8(g0[h]), vreinterpretq_s32_s8(g1[h])));
        out[2 * h + 1] = vreinterpretq_s8_s32(vzip2q_s32(vreinterpretq_s32_s8(g0[h]), vreinterpretq_s32_s8(g1[h])));
    }
}

/// The weights of 4-byte group `index` of a Q4_K_X8 block: the low nibbles (sub-block 2c) and
/// the high ones (2c + 1), rows 0-3 and 4-7.
static inline void q4_group(const uint8_t *blk, int index, int8x16_t *w0, int8x16_t *w1) {
    for (int h = 0; h < 2; h++) {
        const uint8x16_t packed = vld1q_u8(blk + index * 32 + 16 * h);
        w0[h] = vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0F)));
        w1[h] = vreinterpretq_s8_u8(vshrq_n_u8(packed, 4));
    }
}

/// The 6-bit weights of Q6_K_X8 groups 8p + k (w0) and 8p + 4 + k (w1).
static inline void q6_group(const uint8_t *blk, int p, int k, int8x16_t *w0, int8x16_t *w1) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F), top2 = vdupq_n_u8(0x30);
    const int8x16_t shift = vdupq_n_s8((int8_t)(4 - 2 * k)); // bits 2k..2k+1 to 4..5 (negative: right)
    for (int h = 0; h < 2; h++) {
        const uint8x16_t nib = vld1q_u8(blk + (4 * p + k) * 32 + 16 * h);
        const uint8x16_t h0 = vld1q_u8(blk + 1024 + 2 * p * 32 + 16 * h),
                         h1 = vld1q_u8(blk + 1024 + (2 * p + 1) * 32 + 16 * h);
        w0[h] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(nib, low4), vandq_u8(vshlq_u8(h0, shift), top2)));
        w1[h] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(nib, 4), vandq_u8(vshlq_u8(h1, shift), top2)));
    }
}

/// The 8 activation bytes at `offset` of two tokens, as the right-hand tile.
static inline int8x16_t token_tile(const spec_act_view *pair, int offset) {
    return vcombine_s8(vld1_s8(pair[0].q + offset), vld1_s8(pair[1].q + offset));
}

/// One packed block b of eight rows against PAIRS_NOW token pairs: acc[p][i] for row pair i.
MM_TARGET static inline __attribute__((always_inline)) void mm_block(const int TYPE, const int PAIRS_NOW,
                                                                     const uint8_t *blk, int b, const spec_act_view *a,
                                                                     float32x4_t (*acc)[4], float32x4_t (*acc_min)[4]) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t tot[PAIRS][4];
    for (int q = 0; q < PAIRS_NOW; q++)
        for (int i = 0; i < 4; i++) tot[q][i] = zero;
    const int subs = TYPE == SPEC_Q6_K ? 8 : 4; // Q6_K: pairs of 16-value sub-blocks; Q4_K: 32-byte chunks
    for (int c = 0; c < subs; c++) {
        int32x4_t s0[PAIRS][4], s1[PAIRS][4];
        for (int q = 0; q < PAIRS_NOW; q++)
            for (int i = 0; i < 4; i++) s0[q][i] = s1[q][i] = zero;
        const int steps = TYPE == SPEC_Q6_K ? 2 : 4; // pairs of 4-byte groups per sub-block
        for (int k = 0; k < steps; k++) {
            int8x16_t g0a[2], g1a[2], g0b[2], g1b[2], t0[4], t1[4];
            if (TYPE == SPEC_Q6_K) {
                q6_group(blk, c, 2 * k, g0a, g1a);
                q6_group(blk, c, 2 * k + 1, g0b, g1b);
            } else {
                q4_group(blk, 8 * c + 2 * k, g0a, g1a);
                q4_group(blk, 8 * c + 2 * k + 1, g0b, g1b);
            }
            tiles(g0a, g0b, t0); // first sub-block of the pair
            tiles(g1a, g1b, t1); // second
            for (int q = 0; q < PAIRS_NOW; q++) {
                // Activation offsets of the two sub-blocks' 8 values.
                const int o0 = TYPE == SPEC_Q6_K ? 256 * b + 32 * c + 8 * k : 256 * b + 64 * c + 8 * k;
                const int o1 = o0 + (TYPE == SPEC_Q6_K ? 16 : 32);
                const int8x16_t x0 = token_tile(a + 2 * q, o0), x1 = token_tile(a + 2 * q, o1);
                for (int i = 0; i < 4; i++) {
                    s0[q][i] = vmmlaq_s32(s0[q][i], t0[i], x0);
                    s1[q][i] = vmmlaq_s32(s1[q][i], t1[i], x1);
                }
            }
        }
        int32x4_t sc0[4], sc1[4];
        if (TYPE == SPEC_Q6_K) {
            column_pairs(blk + 1536 + 16 * c, 1, sc0);
            column_pairs(blk + 1536 + 16 * c + 8, 1, sc1);
        } else {
            column_pairs(blk + 1024 + 8 * SCALE_COLUMN(2 * c), 0, sc0);
            column_pairs(blk + 1024 + 8 * SCALE_COLUMN(2 * c + 1), 0, sc1);
        }
        for (int q = 0; q < PAIRS_NOW; q++)
            for (int i = 0; i < 4; i++)
                tot[q][i] = vaddq_s32(tot[q][i], vaddq_s32(vmulq_s32(s0[q][i], sc0[i]), vmulq_s32(s1[q][i], sc1[i])));
    }
    float32x4_t d[4];
    halves_pairs(blk + (TYPE == SPEC_Q6_K ? 1664 : 1152), d);
    for (int q = 0; q < PAIRS_NOW; q++) {
        const spec_act_view *pair = a + 2 * q;
        const float32x4_t dx = {pair[0].d[b], pair[1].d[b], pair[0].d[b], pair[1].d[b]};
        int32x4_t extra[4] = {zero, zero, zero, zero}; // Q6_K: the offset sums; Q4_K: the mins' sums
        if (TYPE == SPEC_Q6_K) {
            for (int g = 0; g < 16; g++) {
                int32x4_t sc[4];
                column_pairs(blk + 1536 + 8 * g, 1, sc);
                const int32x4_t sums = {pair[0].s[16 * b + g], pair[1].s[16 * b + g], pair[0].s[16 * b + g],
                                        pair[1].s[16 * b + g]};
                for (int i = 0; i < 4; i++) extra[i] = vmlaq_s32(extra[i], sc[i], sums);
            }
            for (int i = 0; i < 4; i++) {
                const int32x4_t total = vsubq_s32(tot[q][i], vshlq_n_s32(extra[i], Q6_OFFSET_SHIFT));
                acc[q][i] = vaddq_f32(acc[q][i], vmulq_f32(vmulq_f32(d[i], dx), vcvtq_f32_s32(total)));
            }
        } else {
            for (int j = 0; j < 8; j++) {
                int32x4_t mn[4];
                column_pairs(blk + 1024 + 8 * (8 + j), 0, mn);
                const int32_t s0 = pair[0].s[16 * b + 2 * j] + pair[0].s[16 * b + 2 * j + 1];
                const int32_t s1 = pair[1].s[16 * b + 2 * j] + pair[1].s[16 * b + 2 * j + 1];
                const int32x4_t sums = {s0, s1, s0, s1};
                for (int i = 0; i < 4; i++) extra[i] = vmlaq_s32(extra[i], mn[i], sums);
            }
            float32x4_t dmin[4];
            halves_pairs(blk + 1168, dmin);
            for (int i = 0; i < 4; i++) {
                acc[q][i] = vaddq_f32(acc[q][i], vmulq_f32(vmulq_f32(d[i], dx), vcvtq_f32_s32(tot[q][i])));
                acc_min[q][i] = vaddq_f32(acc_min[q][i], vmulq_f32(vmulq_f32(dmin[i], dx), vcvtq_f32_s32(extra[i])));
            }
        }
    }
}

/// A whole group of eight packed rows against 2 * PAIRS_NOW tokens: out[t][row].
MM_TARGET static inline __attribute__((always_inline)) void mm_group(const int TYPE, const int PAIRS_NOW, int nb,
                                                                     const uint8_t *group, const spec_act_view *a,
                                                                     float (*out)[ROWS]) {
    const int bytes = TYPE == SPEC_Q6_K ? Q6_K_X8_BLOCK : Q4_K_X8_BLOCK;
    float32x4_t acc[PAIRS][4], acc_min[PAIRS][4];
    for (int q = 0; q < PAIRS_NOW; q++)
        for (int i = 0; i < 4; i++) acc[q][i] = acc_min[q][i] = vdupq_n_f32(0.0f);
    for (int b = 0; b < nb; b++) mm_block(TYPE, PAIRS_NOW, group + (size_t)b * bytes, b, a, acc, acc_min);
    for (int q = 0; q < PAIRS_NOW; q++)
        for (int i = 0; i < 4; i++) {
            float lanes[4];
            vst1q_f32(lanes, TYPE == SPEC_Q6_K ? acc[q][i] : vsubq_f32(acc[q][i], acc_min[q][i]));
            out[2 * q][2 * i] = lanes[0];
            out[2 * q + 1][2 * i] = lanes[1];
            out[2 * q][2 * i + 1] = lanes[2];
            out[2 * q + 1][2 * i + 1] = lanes[3];
        }
}

typedef void (*group_fn)(int nb, const uint8_t *group, const spec_act_view *a, float (*out)[ROWS]);
#define MM_GROUP(NAME, TYPE, PAIRS_NOW)                                                                                \
    MM_TARGET static void NAME(int nb, const uint8_t *group, const spec_act_view *a, float(*out)[ROWS]) {              \
        mm_group(TYPE, PAIRS_NOW, nb, group, a, out);                                                                  \
    }
MM_GROUP(q4_K_x8_pairs1, SPEC_Q4_K, 1)
MM_GROUP(q4_K_x8_pairs2, SPEC_Q4_K, 2)
MM_GROUP(q6_K_x8_pairs1, SPEC_Q6_K, 1)
MM_GROUP(q6_K_x8_pairs2, SPEC_Q6_K, 2)
#undef MM_GROUP

/// Rows r0..r1 of a packed matrix for T >= 2 tokens, in passes of up to 2 * PAIRS tokens.
static void packed_product(int packed_type, int n, const uint8_t *w, int r0, int r1, const uint8_t *act,
                           size_t act_stride, int T, float *y, size_t y_stride) {
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
    const int q6 = packed_type == SPEC_Q6_K_X8;
    spec_act_view a[2 * PAIRS];
    float out[2 * PAIRS][ROWS];
    for (int g = r0 - r0 % ROWS; g < r1; g += ROWS) {
        const int lo = g > r0 ? g : r0, hi = g + ROWS < r1 ? g + ROWS : r1;
        for (int t0 = 0; t0 < T; t0 += 2 * PAIRS) {
            const int count = T - t0 < 2 * PAIRS ? T - t0 : 2 * PAIRS, pairs = (count + 1) / 2;
            for (int t = 0; t < 2 * pairs; t++) // an odd count repeats its last token
                a[t] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + (t < count ? t : count - 1)) * act_stride);
            const group_fn fn =
                pairs == 1 ? (q6 ? q6_K_x8_pairs1 : q4_K_x8_pairs1) : (q6 ? q6_K_x8_pairs2 : q4_K_x8_pairs2);
            fn(n / 256, w + (size_t)g * row_bytes, a, out);
            for (int t = 0; t < count; t++)
                memcpy(y + (size_t)(t0 + t) * y_stride + lo, &out[t][lo - g], sizeof(float) * (size_t)(hi - lo));
        }
    }
}

static int matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act, size_t act_stride,
                  int T, float *y, size_t y_stride) {
    if ((type == SPEC_Q4_K_X8 || type == SPEC_Q6_K_X8) && T >= 2 && r1 > r0) {
        packed_product(type, n, (const uint8_t *)w, r0, r1, (const uint8_t *)act, act_stride, T, y, y_stride);
        return 1;
    }
    return spec_set_dotprod.matmul(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride);
}

const spec_kernel_set spec_set_i8mm = {
    .name = "i8mm", .supported = supported, .matmul = matmul, .packs = packs, SPEC_NEON_OPS};
#else
const spec_kernel_set spec_set_i8mm = {.name = "i8mm",
                                       .supported = spec_never_supported,
                                       .matmul = spec_matmul_portable_set,
                                       .packs = spec_packs_none,
                                       SPEC_PORTABLE_OPS};
#endif
