// Portable kernels: the reference arithmetic, used where no SIMD set applies and to check them.
//
// The float steps are written out one operation at a time and must not be fused into
// multiply-adds: the VNNI sets reproduce them bit for bit (x86_vnni.h). Clang honours the
// pragma; GCC builds of the check program pass -ffp-contract=off.
#include "internal.h"
#include <math.h>
#pragma STDC FP_CONTRACT OFF

int spec_act_format_for(int type) {
    switch (type) {
    case SPEC_Q4_0:
    case SPEC_Q4_1:
    case SPEC_Q5_0:
    case SPEC_Q5_1:
    case SPEC_Q8_0:
    case SPEC_Q4_0_X8:
    case SPEC_Q5_0_X8:
    case SPEC_Q8_0_X8: return SPEC_ACT_Q8_32;
    case SPEC_Q2_K:
    case SPEC_Q3_K:
    case SPEC_Q4_K:
    case SPEC_Q5_K:
    case SPEC_Q6_K: return SPEC_ACT_Q8_256;
    case SPEC_Q4_K_X8:
    case SPEC_Q6_K_X8: return SPEC_ACT_Q8_256;
    case SPEC_F32:
    case SPEC_F16:
    case SPEC_BF16: return SPEC_ACT_F32;
    default: return -1;
    }
}

size_t spec_act_row_bytes(int format, int n) {
    if (format == SPEC_ACT_F32) return spec_round32((size_t)n * 4);
    return spec_act_header_bytes(format, n) + spec_round32((size_t)n);
}

/// Symmetric 8-bit quantization of `count` values with one scale; returns the scale.
static float quantize_block(const float *x, int count, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < count; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    if (amax == 0.0f) {
        memset(q, 0, (size_t)count);
        return 0.0f;
    }
    const float inverse = 127.0f / amax;
    for (int i = 0; i < count; i++) {
        long v = lrintf(x[i] * inverse);
        q[i] = (int8_t)(v > 127 ? 127 : (v < -127 ? -127 : v));
    }
    return amax / 127.0f;
}

void spec_quantize_act_portable(int format, const float *x, int n, void *out) {
    uint8_t *base = (uint8_t *)out;
    if (format == SPEC_ACT_F32) {
        memcpy(base, x, (size_t)n * 4);
        return;
    }
    float *d = (float *)base;
    int16_t *s = (int16_t *)(base + (format == SPEC_ACT_Q8_32 ? (size_t)(n / 32) * 4 : (size_t)(n / 256) * 4));
    int8_t *q = (int8_t *)(base + spec_act_header_bytes(format, n));
    const int block = format == SPEC_ACT_Q8_32 ? 32 : 256;
    const int sum_span = format == SPEC_ACT_Q8_32 ? 32 : 16;
    for (int b = 0; b < n / block; b++) d[b] = quantize_block(x + b * block, block, q + b * block);
    for (int g = 0; g < n / sum_span; g++) {
        int sum = 0;
        for (int i = 0; i < sum_span; i++) sum += q[g * sum_span + i];
        s[g] = (int16_t)sum;
    }
    // Q8_256 also keeps the sums per 32 values (see spec_act_view).
    if (format != SPEC_ACT_Q8_32)
        for (int g = 0; g < n / 32; g++) s[n / 16 + g] = (int16_t)(s[2 * g] + s[2 * g + 1]);
}

static float bf16_to_f32(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// One row of weights against one activation row.
static float dot_row(int type, int n, const uint8_t *w, const void *act) {
    const int fmt = spec_act_format_for(type);
    if (fmt == SPEC_ACT_F32) {
        const float *x = (const float *)act;
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            const float wi = type == SPEC_F32   ? ((const float *)w)[i]
                             : type == SPEC_F16 ? spec_half(w + 2 * i)
                                                : bf16_to_f32(w + 2 * i);
            sum += wi * x[i];
        }
        return sum;
    }
    const spec_act_view a = spec_act_at(fmt, n, act);
    float acc = 0.0f, acc_min = 0.0f;
    switch (type) {
    case SPEC_Q8_0:
    case SPEC_Q4_0:
    case SPEC_Q4_1:
    case SPEC_Q5_0:
    case SPEC_Q5_1: {
        const int bytes = type == SPEC_Q8_0   ? 34
                          : type == SPEC_Q4_0 ? 18
                          : type == SPEC_Q4_1 ? 20
                          : type == SPEC_Q5_0 ? 22
                                              : 24;
        for (int b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + (size_t)b * bytes;
            const int8_t *x = a.q + b * 32;
            const float dw = spec_half(blk), dx = a.d[b];
            int sumi = 0;
            if (type == SPEC_Q8_0) {
                for (int l = 0; l < 32; l++) sumi += (int8_t)blk[2 + l] * x[l];
                acc += dw * dx * (float)sumi;
                continue;
            }
            const int has_min = type == SPEC_Q4_1 || type == SPEC_Q5_1;
            const uint8_t *qs = blk + (type == SPEC_Q4_0 ? 2 : type == SPEC_Q4_1 ? 4 : type == SPEC_Q5_0 ? 6 : 8);
            uint32_t qh = 0;
            if (type == SPEC_Q5_0) memcpy(&qh, blk + 2, 4);
            if (type == SPEC_Q5_1) memcpy(&qh, blk + 4, 4);
            for (int l = 0; l < 16; l++) {
                int lo = qs[l] & 0x0F, hi = qs[l] >> 4;
                if (type == SPEC_Q5_0 || type == SPEC_Q5_1) {
                    lo |= (int)((qh >> l) & 1) << 4;
                    hi |= (int)((qh >> (l + 16)) & 1) << 4;
                }
                sumi += lo * x[l] + hi * x[l + 16];
            }
            const int offset = type == SPEC_Q4_0 ? 8 : type == SPEC_Q5_0 ? 16 : 0;
            sumi -= offset * a.s[b];
            acc += dw * dx * (float)sumi;
            if (has_min) acc_min -= spec_half(blk + 2) * dx * (float)a.s[b];
        }
        return acc - acc_min;
    }
    case SPEC_Q4_K:
    case SPEC_Q5_K:
        for (int b = 0; b < n / 256; b++) {
            const uint8_t *blk = w + (size_t)b * (type == SPEC_Q4_K ? 144 : 176);
            const uint8_t *qh = blk + 16;
            const uint8_t *qs = blk + (type == SPEC_Q4_K ? 16 : 48);
            const int8_t *x = a.q + b * 256;
            const int16_t *bs = a.s + b * 16;
            int sumi = 0, summ = 0;
            for (int j = 0; j < 8; j++) {
                uint8_t sc, mn;
                spec_scale_min_k4(blk + 4, j, &sc, &mn);
                const int chunk = j / 2, shift = 4 * (j % 2);
                int dot = 0;
                for (int l = 0; l < 32; l++) {
                    int q = (qs[chunk * 32 + l] >> shift) & 0x0F;
                    if (type == SPEC_Q5_K) q |= ((qh[l] >> j) & 1) << 4;
                    dot += q * x[j * 32 + l];
                }
                sumi += sc * dot;
                summ += mn * (bs[2 * j] + bs[2 * j + 1]);
            }
            acc += spec_half(blk) * a.d[b] * (float)sumi;
            acc_min += spec_half(blk + 2) * a.d[b] * (float)summ;
        }
        return acc - acc_min;
    case SPEC_Q6_K:
        for (int b = 0; b < n / 256; b++) {
            const uint8_t *blk = w + (size_t)b * 210;
            const int8_t *sc = (const int8_t *)(blk + 192);
            const int8_t *x = a.q + b * 256;
            const int16_t *bs = a.s + b * 16;
            int sumi = 0, offset = 0;
            for (int g = 0; g < 16; g++) {
                int dot = 0;
                for (int k = 0; k < 16; k++) {
                    const int i = g * 16 + k, chunk = i / 128, within = i % 128;
                    const int lo = (blk[chunk * 64 + within % 64] >> (4 * (within / 64))) & 0x0F;
                    const int hi = (blk[128 + chunk * 32 + within % 32] >> (2 * (within / 32))) & 0x03;
                    dot += (lo | hi << 4) * x[i];
                }
                sumi += sc[g] * dot;
                offset += sc[g] * bs[g];
            }
            acc += spec_half(blk + 208) * a.d[b] * (float)(sumi - 32 * offset);
        }
        return acc;
    case SPEC_Q2_K:
        for (int b = 0; b < n / 256; b++) {
            const uint8_t *blk = w + (size_t)b * 84;
            const int8_t *x = a.q + b * 256;
            const int16_t *bs = a.s + b * 16;
            int sumi = 0, summ = 0;
            for (int g = 0; g < 16; g++) {
                int dot = 0;
                for (int k = 0; k < 16; k++) {
                    const int i = g * 16 + k;
                    const int q = (blk[16 + (i / 128) * 32 + i % 32] >> (2 * ((i % 128) / 32))) & 3;
                    dot += q * x[i];
                }
                sumi += (blk[g] & 0x0F) * dot;
                summ += (blk[g] >> 4) * bs[g];
            }
            acc += spec_half(blk + 80) * a.d[b] * (float)sumi;
            acc_min += spec_half(blk + 82) * a.d[b] * (float)summ;
        }
        return acc - acc_min;
    case SPEC_Q3_K:
        for (int b = 0; b < n / 256; b++) {
            const uint8_t *blk = w + (size_t)b * 110;
            const int8_t *x = a.q + b * 256;
            int sumi = 0;
            for (int g = 0; g < 16; g++) {
                const int low = (blk[96 + g % 8] >> (4 * (g / 8))) & 0x0F;
                const int high = (blk[104 + g % 4] >> (2 * (g / 4))) & 0x03;
                const int scale = (low | high << 4) - 32;
                int dot = 0;
                for (int k = 0; k < 16; k++) {
                    const int i = g * 16 + k;
                    const int lq = (blk[32 + (i / 128) * 32 + i % 32] >> (2 * ((i % 128) / 32))) & 3;
                    const int bit = (blk[i % 32] >> (i / 32)) & 1;
                    dot += (lq - ((bit ^ 1) << 2)) * x[i];
                }
                sumi += scale * dot;
            }
            acc += spec_half(blk + 108) * a.d[b] * (float)sumi;
        }
        return acc;
    default: return NAN;
    }
}

void spec_matmul_portable(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                          size_t act_stride, int T, float *y, size_t y_stride) {
    if (spec_packed_base_type(type) >= 0) {
        spec_matmul_packed_portable(type, n, w, r0, r1, act, act_stride, T, y, y_stride);
        return;
    }
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int t = 0; t < T; t++) {
            y[(size_t)t * y_stride + r] = dot_row(type, n, row, (const uint8_t *)act + (size_t)t * act_stride);
        }
    }
}

int spec_matmul_portable_set(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                             size_t act_stride, int T, float *y, size_t y_stride) {
    spec_matmul_portable(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride);
    return 1;
}

static int always(void) {
    return 1;
}
int spec_never_supported(void) {
    return 0;
}

const spec_kernel_set spec_set_portable = {.name = "portable",
                                           .supported = always,
                                           .matmul = spec_matmul_portable_set,
                                           .packs = spec_packs_none,
                                           SPEC_PORTABLE_OPS};
