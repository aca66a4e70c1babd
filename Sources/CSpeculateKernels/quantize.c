// Quantization of float rows into Q4_K blocks, for requantizing a draft model at load (a
// draft's precision changes only how often its guesses are accepted, never the output: the
// target verifies every token).
//
// Per 32-value sub-block the range [min(x, 0), max(x)] is split into 15 steps; the block's
// float scale d and min scale dmin are the largest sub-block step and offset over 63, stored
// as halves, and each sub-block's 6-bit scale (rounded up) and min (rounded) are taken against
// those halves, so the values are quantized against exactly what dequantization will use. An
// element's error is then at most half its sub-block's step plus (d + dmin) / 2. Simpler than
// llama.cpp's iterative search (no least-squares refinement), which costs some accuracy.
#include "internal.h"
#include <math.h>

static int nearest(float v, int lo, int hi) {
    const long r = lrintf(v);
    return (int)(r < lo ? lo : r > hi ? hi : r);
}

static void put_half(uint8_t *p, float v) {
    uint16_t h;
    spec_f32_to_f16_portable(&v, 1, &h);
    memcpy(p, &h, 2);
}

void spec_quantize_q4_K(const float *x, int n, void *out) {
    uint8_t *blk = (uint8_t *)out;
    for (int b = 0; b < n / 256; b++, blk += 144, x += 256) {
        float step[8], offset[8], max_step = 0.0f, max_offset = 0.0f;
        for (int j = 0; j < 8; j++) {
            float lo = 0.0f, hi = -INFINITY;
            for (int l = 0; l < 32; l++) {
                const float v = isfinite(x[32 * j + l]) ? x[32 * j + l] : 0.0f;
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            step[j] = hi > lo ? (hi - lo) / 15.0f : 0.0f;
            offset[j] = -lo;
            if (step[j] > max_step) max_step = step[j];
            if (offset[j] > max_offset) max_offset = offset[j];
        }
        put_half(blk, max_step / 63.0f);
        put_half(blk + 2, max_offset / 63.0f);
        const float d = spec_half(blk), dmin = spec_half(blk + 2);
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            // Rounded up, so the codes always span the sub-block: no value is clamped by more
            // than the min's rounding (dmin / 2).
            sc[j] = (uint8_t)(d > 0.0f ? nearest(ceilf(step[j] / d), 0, 63) : 0);
            mn[j] = (uint8_t)(dmin > 0.0f ? nearest(offset[j] / dmin, 0, 63) : 0);
        }
        uint8_t *scales = blk + 4; // the inverse of spec_scale_min_k4
        for (int j = 0; j < 4; j++) {
            scales[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
            scales[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
            scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        uint8_t *qs = blk + 16;
        memset(qs, 0, 128);
        for (int j = 0; j < 8; j++) {
            const float scale = d * (float)sc[j], low = dmin * (float)mn[j];
            for (int l = 0; l < 32; l++) {
                const float v = isfinite(x[32 * j + l]) ? x[32 * j + l] : 0.0f;
                const int q = scale > 0.0f ? nearest((v + low) / scale, 0, 15) : 0;
                qs[32 * (j / 2) + l] |= (uint8_t)(q << (4 * (j % 2)));
            }
        }
    }
}

// Q4_0: per 32 values one half scale d and 4-bit codes q with value d * (q - 8). The value of
// largest magnitude maps to code 0 (d = that value / -8), so the full range [-8, 7] is used on
// the side where it matters; the rest are rounded to the nearest code.
void spec_quantize_q4_0(const float *x, int n, void *out) {
    uint8_t *blk = (uint8_t *)out;
    for (int b = 0; b < n / 32; b++, blk += 18, x += 32) {
        float extreme = 0.0f;
        for (int l = 0; l < 32; l++) {
            const float v = isfinite(x[l]) ? x[l] : 0.0f;
            if (fabsf(v) > fabsf(extreme)) extreme = v;
        }
        put_half(blk, extreme / -8.0f);
        const float d = spec_half(blk);
        for (int l = 0; l < 16; l++) {
            const float lo = isfinite(x[l]) ? x[l] : 0.0f, hi = isfinite(x[l + 16]) ? x[l + 16] : 0.0f;
            const int qlo = d != 0.0f ? nearest(lo / d + 8.0f, 0, 15) : 8;
            const int qhi = d != 0.0f ? nearest(hi / d + 8.0f, 0, 15) : 8;
            blk[2 + l] = (uint8_t)(qlo | qhi << 4);
        }
    }
}
