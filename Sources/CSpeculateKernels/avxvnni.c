// The AVX-VNNI kernel set (Intel Alder Lake and later clients, AMD Zen 5): the kernels of
// x86_vnni.h in the VEX encoding (16 vector registers), and the AVX2 vector operations. A CPU
// with AVX-512 VNNI also takes that set first; this one serves CPUs without AVX-512.
//
// Built with -DSPEC_SIMDE (the kernel check's second build), the same source runs on any x86-64
// CPU through SIMDe. SIMDe 0.7 lacks the VEX spellings (_mm256_dpbusd_avx_epi32), whose
// arithmetic is that of the EVEX ones, so the SIMDe build maps them onto those.
#include "internal.h"

#if defined(SPEC_SIMDE)
#include "x86_simde.h"
#define VNNI_TARGET
#define VNNI_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define VNNI_DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
static int supported(void) { return 1; }
#define VNNI_AVAILABLE 1
#elif defined(__x86_64__)
#include <immintrin.h>
#define VNNI_TARGET __attribute__((target("avxvnni,avx2,fma,f16c")))
#define VNNI_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define VNNI_DPWSSD(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
static int supported(void) {
    __builtin_cpu_init();
    return spec_cpu_has_avx2_fma() && __builtin_cpu_supports("avxvnni");
}
#define VNNI_AVAILABLE 1
#endif

#if VNNI_AVAILABLE
#include "x86_vnni.h"
#define SET_MATMUL vnni_matmul
#else
static int supported(void) { return 0; }
#define SET_MATMUL spec_matmul_portable_set
#endif

const spec_kernel_set spec_set_avxvnni = {
    .name = "avxvnni", .supported = supported, .matmul = SET_MATMUL,
#if VNNI_AVAILABLE && !defined(SPEC_SIMDE)
    .quantize_act = spec_quantize_act_avx2, .dot_f32 = spec_dot_f32_avx2, .axpy_f32 = spec_axpy_f32_avx2,
    .f32_to_f16 = spec_f32_to_f16_avx2, .f16_to_f32 = spec_f16_to_f32_avx2, .rms_norm = spec_rms_norm_avx2,
    .silu_mul = spec_silu_mul_avx2, .attend_group = spec_attend_group_avx2,
#else
    .quantize_act = spec_quantize_act_portable, .dot_f32 = spec_dot_f32_portable, .axpy_f32 = spec_axpy_f32_portable,
    .f32_to_f16 = spec_f32_to_f16_portable, .f16_to_f32 = spec_f16_to_f32_portable, .rms_norm = spec_rms_norm_portable,
    .silu_mul = spec_silu_mul_portable, .attend_group = spec_attend_group_portable,
#endif
};
