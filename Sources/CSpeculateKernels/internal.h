// Shared declarations of the kernel files (not part of the public header).
#ifndef SPECULATE_KERNELS_INTERNAL_H
#define SPECULATE_KERNELS_INTERNAL_H
#include "speculate_kernels.h"
#include <string.h>

/// Pointers into one activation row.
typedef struct {
    const float *d;     // scales: per 32 (Q8_32) or per 256 (Q8_256)
    const int16_t *s;   // sums of the 8-bit values: per 32 (Q8_32) or per 16 (Q8_256)
    const int16_t *s32; // Q8_256 only: sums per 32 values as well (the K-quants' mins and
                        // offsets take one pair of these per two sub-blocks instead of four
                        // 16-value sums: half the VNNI kernels' vpdpwssd for that term)
    const int8_t *q;    // the 8-bit values
} spec_act_view;

static inline size_t spec_round32(size_t x) {
    return (x + 31) & ~(size_t)31;
}

static inline size_t spec_act_header_bytes(int format, int n) {
    if (format == SPEC_ACT_Q8_32) return spec_round32((size_t)(n / 32) * 6);
    return spec_round32((size_t)(n / 256) * 4 + (size_t)(n / 16) * 2 + (size_t)(n / 32) * 2);
}

static inline spec_act_view spec_act_at(int format, int n, const void *row) {
    const uint8_t *p = (const uint8_t *)row;
    spec_act_view v;
    v.d = (const float *)p;
    v.s = (const int16_t *)(p + (format == SPEC_ACT_Q8_32 ? (size_t)(n / 32) * 4 : (size_t)(n / 256) * 4));
    v.s32 = format == SPEC_ACT_Q8_32 ? v.s : v.s + n / 16;
    v.q = (const int8_t *)(p + spec_act_header_bytes(format, n));
    return v;
}

static inline float spec_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { // subnormal: normalize
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400) == 0) {
                mantissa <<= 1;
                exponent--;
            }
            bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline void spec_scale_min_k4(const uint8_t *scales, int j, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *mn = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        *mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/// A matrix product kernel; returns 0 when it has no kernel for `type` (the portable one runs).
typedef int (*spec_matmul_fn)(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                              size_t act_stride, int T, float *y, size_t y_stride);

/// One kernel set: the functions of one instruction set, chosen once per process (dispatch.c).
/// Every field is filled; a set reuses another set's functions where it has nothing better.
typedef struct spec_kernel_set {
    const char *name;
    int (*supported)(void); ///< 1 when this CPU (and this build) can run the set
    spec_matmul_fn matmul;
    int (*packs)(int type); ///< the packed type (repack.c) this set's products prefer for `type`, or -1
    void (*quantize_act)(int format, const float *x, int n, void *out);
    void (*f32_to_f16)(const float *x, int n, uint16_t *out);
    void (*f16_to_f32)(const uint16_t *x, int n, float *out);
    void (*rms_norm)(const float *x, const float *weight, int n, float epsilon, float *out);
    void (*silu_mul)(float *gate, const float *up, int n);
    void (*gelu_mul)(float *gate, const float *up, int n);
    void (*attend_group)(const spec_attention *a, int node, int kv_head, float *scores);
} spec_kernel_set;

/// Designated initializers for a set's operations other than the products: the portable ones,
/// or the AVX2 ones (which the x86 sets share).
#define SPEC_PORTABLE_OPS                                                                                              \
    .quantize_act = spec_quantize_act_portable, .f32_to_f16 = spec_f32_to_f16_portable,                                \
    .f16_to_f32 = spec_f16_to_f32_portable, .rms_norm = spec_rms_norm_portable, .silu_mul = spec_silu_mul_portable,    \
    .gelu_mul = spec_gelu_mul_portable, .attend_group = spec_attend_group_portable
/// The AArch64 sets' operations: the portable ones with NEON tree attention (ops_neon.c).
#define SPEC_NEON_OPS                                                                                                  \
    .quantize_act = spec_quantize_act_portable, .f32_to_f16 = spec_f32_to_f16_portable,                                \
    .f16_to_f32 = spec_f16_to_f32_portable, .rms_norm = spec_rms_norm_portable, .silu_mul = spec_silu_mul_portable,    \
    .gelu_mul = spec_gelu_mul_portable, .attend_group = spec_attend_group_neon
#define SPEC_AVX2_OPS                                                                                                  \
    .quantize_act = spec_quantize_act_avx2, .f32_to_f16 = spec_f32_to_f16_avx2, .f16_to_f32 = spec_f16_to_f32_avx2,    \
    .rms_norm = spec_rms_norm_avx2, .silu_mul = spec_silu_mul_avx2, .gelu_mul = spec_gelu_mul_avx2,                    \
    .attend_group = spec_attend_group_avx2

/// supported() of a set this architecture cannot run.
int spec_never_supported(void);
/// packs() of a set that reads every type in the file's layout.
int spec_packs_none(int type);
/// The portable products of a packed type: each row unpacked, then the file type's code.
void spec_matmul_packed_portable(int packed_type, int n, const void *w, int r0, int r1, const void *act,
                                 size_t act_stride, int T, float *y, size_t y_stride);

/// The set in use (chosen on first use: SPECULATE_KERNELS if valid, else the first supported).
const spec_kernel_set *spec_active_set(void);

extern const spec_kernel_set spec_set_portable, spec_set_avx2, spec_set_avxvnni, spec_set_avx512vnni, spec_set_neon,
    spec_set_dotprod, spec_set_i8mm;

/// The NEON set's products (neon.c), which the Arm dot-product sets reuse for the types they
/// have no kernels of their own for; returns 0 off AArch64.
int spec_matmul_neon(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                     size_t act_stride, int T, float *y, size_t y_stride);

// Portable functions (portable.c, ops.c), which other sets reuse.
int spec_matmul_portable_set(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                             size_t act_stride, int T, float *y, size_t y_stride);
void spec_quantize_act_portable(int format, const float *x, int n, void *out);
void spec_f32_to_f16_portable(const float *x, int n, uint16_t *out);
void spec_f16_to_f32_portable(const uint16_t *x, int n, float *out);
void spec_rms_norm_portable(const float *x, const float *weight, int n, float epsilon, float *out);
void spec_silu_mul_portable(float *gate, const float *up, int n);
void spec_gelu_mul_portable(float *gate, const float *up, int n);
void spec_gelu_mul_avx2(float *gate, const float *up, int n);
void spec_attend_group_portable(const spec_attention *a, int node, int kv_head, float *scores);
/// Tree attention in NEON (ops_neon.c; the portable loop off AArch64).
void spec_attend_group_neon(const spec_attention *a, int node, int kv_head, float *scores);

// AVX2 vector operations (ops_avx2.c), shared by the x86 sets.
int spec_cpu_has_avx2_fma(void);
void spec_f32_to_f16_avx2(const float *x, int n, uint16_t *out);
void spec_f16_to_f32_avx2(const uint16_t *x, int n, float *out);
void spec_rms_norm_avx2(const float *x, const float *weight, int n, float epsilon, float *out);
void spec_silu_mul_avx2(float *gate, const float *up, int n);
void spec_quantize_act_avx2(int format, const float *x, int n, void *out);
void spec_attend_group_avx2(const spec_attention *a, int node, int kv_head, float *scores);
#endif
