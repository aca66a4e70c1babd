// NEON kernels for 64-bit ARM (Advanced SIMD is part of every AArch64 CPU, so no run-time test).
//
// Each weight block is unpacked once into signed 8-bit lanes and then dotted with every
// activation row of the batch. Integer sums are exact in any order, and each (row, token)
// result takes the same float steps in the same order whatever the batch, so a token's
// logits do not depend on the tree it is evaluated in. Checked against the portable kernels
// under emulation (Tests/Reference/kernel_check.c, run by the kernel tests when qemu-aarch64
// and an AArch64 C compiler are installed); its speed has not been measured on ARM hardware.
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

static int supported(void) {
    return 1;
}

/// acc + a · b over 16 signed bytes, widened to four 32-bit lanes (ARMv8.0: no dot-product
/// instruction needed; the products of two int8 values fit int16 and pairs are added in int32).
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

static inline int dot32(const int8x16_t *w, const int8_t *x) {
    int32x4_t acc = dot16(vdupq_n_s32(0), w[0], vld1q_s8(x));
    return vaddvq_s32(dot16(acc, w[1], vld1q_s8(x + 16)));
}

/// Bytes of 0x10 where bit i (i = 0..15) of `bits` is set.
static inline uint8x16_t bits_to_0x10(uint32_t bits) {
    static const uint8_t select[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t spread = vcombine_u8(vdup_n_u8((uint8_t)(bits & 0xFF)), vdup_n_u8((uint8_t)((bits >> 8) & 0xFF)));
    return vandq_u8(vtstq_u8(spread, vld1q_u8(select)), vdupq_n_u8(0x10));
}

enum { TOKEN_CHUNK = 8 };

// 32-element blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) against Q8_32 activations.
static void matmul_q32(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                       size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 32;
    const int bytes = type == SPEC_Q8_0   ? 34
                      : type == SPEC_Q4_0 ? 18
                      : type == SPEC_Q4_1 ? 20
                      : type == SPEC_Q5_0 ? 22
                                          : 24;
    const int has_min = type == SPEC_Q4_1 || type == SPEC_Q5_1;
    spec_act_view views[TOKEN_CHUNK];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            float acc[TOKEN_CHUNK], acc_min[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = acc_min[k] = 0.0f;
                views[k] = spec_act_at(SPEC_ACT_Q8_32, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                int8x16_t q[2];
                if (type == SPEC_Q8_0) {
                    q[0] = vld1q_s8((const int8_t *)blk + 2);
                    q[1] = vld1q_s8((const int8_t *)blk + 18);
                } else {
                    const int qs = type == SPEC_Q4_0 ? 2 : type == SPEC_Q4_1 ? 4 : type == SPEC_Q5_0 ? 6 : 8;
                    const uint8x16_t v = vld1q_u8(blk + qs);
                    uint8x16_t lo = vandq_u8(v, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(v, 4);
                    if (type == SPEC_Q5_0 || type == SPEC_Q5_1) {
                        uint32_t qh;
                        memcpy(&qh, blk + (type == SPEC_Q5_0 ? 2 : 4), 4);
                        lo = vorrq_u8(lo, bits_to_0x10(qh));
                        hi = vorrq_u8(hi, bits_to_0x10(qh >> 16));
                    }
                    const int offset = type == SPEC_Q4_0 ? 8 : type == SPEC_Q5_0 ? 16 : 0;
                    q[0] = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8((int8_t)offset));
                    q[1] = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8((int8_t)offset));
                }
                const float dw = spec_half(blk), m = has_min ? spec_half(blk + 2) : 0.0f;
                for (int k = 0; k < tc; k++) {
                    const float dx = views[k].d[b];
                    acc[k] += dw * dx * (float)dot32(q, views[k].q + b * 32);
                    if (has_min) acc_min[k] += m * dx * (float)views[k].s[b];
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = acc[k] + acc_min[k];
        }
    }
}

// Q4_K and Q5_K against Q8_256 activations: eight sub-blocks of 32 with 6-bit scales and mins.
static void matmul_q45_K(int type, int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                         size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 256, bytes = type == SPEC_Q4_K ? 144 : 176;
    spec_act_view views[TOKEN_CHUNK];
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            float acc[TOKEN_CHUNK], acc_min[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = acc_min[k] = 0.0f;
                views[k] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                const uint8_t *qs = blk + (type == SPEC_Q4_K ? 16 : 48);
                int8x16_t q[16]; // sub-block j in q[2j], q[2j + 1]
                for (int c = 0; c < 4; c++) {
                    const uint8x16_t v0 = vld1q_u8(qs + 32 * c), v1 = vld1q_u8(qs + 32 * c + 16);
                    uint8x16_t l0 = vandq_u8(v0, vdupq_n_u8(0x0F)), l1 = vandq_u8(v1, vdupq_n_u8(0x0F));
                    uint8x16_t h0 = vshrq_n_u8(v0, 4), h1 = vshrq_n_u8(v1, 4);
                    if (type == SPEC_Q5_K) {
                        const uint8x16_t b0 = vld1q_u8(blk + 16), b1 = vld1q_u8(blk + 32), one = vdupq_n_u8(1);
                        const int j = 2 * c; // the fifth bit of sub-block j is bit j of qh[l]
                        l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)-j)), one), 4));
                        l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)-j)), one), 4));
                        h0 = vorrq_u8(h0, vshlq_n_u8(vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)(-j - 1))), one), 4));
                        h1 = vorrq_u8(h1, vshlq_n_u8(vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)(-j - 1))), one), 4));
                    }
                    q[4 * c] = vreinterpretq_s8_u8(l0);
                    q[4 * c + 1] = vreinterpretq_s8_u8(l1);
                    q[4 * c + 2] = vreinterpretq_s8_u8(h0);
                    q[4 * c + 3] = vreinterpretq_s8_u8(h1);
                }
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 8; j++) spec_scale_min_k4(blk + 4, j, &sc[j], &mn[j]);
                const float d = spec_half(blk), dmin = spec_half(blk + 2);
                for (int k = 0; k < tc; k++) {
                    const int8_t *x = views[k].q + b * 256;
                    const int16_t *bs = views[k].s + b * 16;
                    int sumi = 0, summ = 0;
                    for (int j = 0; j < 8; j++) {
                        sumi += sc[j] * dot32(q + 2 * j, x + 32 * j);
                        summ += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
                    }
                    const float dx = views[k].d[b];
                    acc[k] += d * dx * (float)sumi;
                    acc_min[k] += dmin * dx * (float)summ;
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = acc[k] - acc_min[k];
        }
    }
}

// Q6_K against Q8_256 activations: 16 groups of 16 six-bit values with signed 8-bit scales.
static void matmul_q6_K(int n, const uint8_t *w, size_t row_bytes, int r0, int r1, const uint8_t *act,
                        size_t act_stride, int T, float *y, size_t y_stride) {
    const int nb = n / 256;
    spec_act_view views[TOKEN_CHUNK];
    const uint8x16_t low4 = vdupq_n_u8(0x0F), two = vdupq_n_u8(0x03);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t0 = 0; t0 < T; t0 += TOKEN_CHUNK) {
            const int tc = T - t0 < TOKEN_CHUNK ? T - t0 : TOKEN_CHUNK;
            float acc[TOKEN_CHUNK];
            for (int k = 0; k < tc; k++) {
                acc[k] = 0.0f;
                views[k] = spec_act_at(SPEC_ACT_Q8_256, n, act + (size_t)(t0 + k) * act_stride);
            }
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * 210;
                int8x16_t q[16]; // group g (16 values) in q[g]
                for (int h = 0; h < 2; h++) {
                    const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
                    const uint8x16_t l[4] = {vld1q_u8(ql), vld1q_u8(ql + 16), vld1q_u8(ql + 32), vld1q_u8(ql + 48)};
                    const uint8x16_t hb[2] = {vld1q_u8(qh), vld1q_u8(qh + 16)};
                    for (int g = 0; g < 8; g++) {
                        // values 16g'..16g'+15 of this half: low nibble of l[g % 4] for g < 4, else its high
                        // nibble; the top two bits from hb[g % 2] shifted by 2 * (g / 2).
                        const uint8x16_t lo = g < 4 ? vandq_u8(l[g], low4) : vshrq_n_u8(l[g - 4], 4);
                        const uint8x16_t hi = vandq_u8(vshlq_u8(hb[g % 2], vdupq_n_s8((int8_t)(-2 * (g / 2)))), two);
                        q[8 * h + g] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hi, 4))), vdupq_n_s8(32));
                    }
                }
                const int8_t *scales = (const int8_t *)(blk + 192);
                const float d = spec_half(blk + 208);
                for (int k = 0; k < tc; k++) {
                    const int8_t *x = views[k].q + b * 256;
                    int sumi = 0;
                    for (int g = 0; g < 16; g++)
                        sumi += scales[g] * vaddvq_s32(dot16(vdupq_n_s32(0), q[g], vld1q_s8(x + 16 * g)));
                    acc[k] += d * views[k].d[b] * (float)sumi;
                }
            }
            for (int k = 0; k < tc; k++) y[(size_t)(t0 + k) * y_stride + r] = acc[k];
        }
    }
}

int spec_matmul_neon(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                     size_t act_stride, int T, float *y, size_t y_stride) {
    const uint8_t *weights = (const uint8_t *)w, *activations = (const uint8_t *)act;
    switch (type) {
    case SPEC_Q8_0:
    case SPEC_Q4_0:
    case SPEC_Q4_1:
    case SPEC_Q5_0:
    case SPEC_Q5_1: matmul_q32(type, n, weights, row_bytes, r0, r1, activations, act_stride, T, y, y_stride); return 1;
    case SPEC_Q4_K:
    case SPEC_Q5_K:
        matmul_q45_K(type, n, weights, row_bytes, r0, r1, activations, act_stride, T, y, y_stride);
        return 1;
    case SPEC_Q6_K: matmul_q6_K(n, weights, row_bytes, r0, r1, activations, act_stride, T, y, y_stride); return 1;
    default: return 0; // the portable kernels cover the rest
    }
}

#else
static int supported(void) {
    return 0;
}
int spec_matmul_neon(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                     size_t act_stride, int T, float *y, size_t y_stride) {
    (void)type;
    (void)n;
    (void)w;
    (void)row_bytes;
    (void)r0;
    (void)r1;
    (void)act;
    (void)act_stride;
    (void)T;
    (void)y;
    (void)y_stride;
    return 0;
}
#endif

// The products in NEON; the vector operations are the portable ones (compiled to NEON by the
// compiler's auto-vectorizer where it can) except tree attention, tiled by hand (ops_neon.c).
const spec_kernel_set spec_set_neon = {
    .name = "neon", .supported = supported, .matmul = spec_matmul_neon, .packs = spec_packs_none, SPEC_NEON_OPS};
