// The AVX-VNNI kernel set (Intel Alder Lake and later clients, AMD Zen 5): the kernels of
// x86_vnni.h in the VEX encoding (16 vector registers), and the AVX2 vector operations. A CPU
// with AVX-512 VNNI also takes that set first; this one serves CPUs without AVX-512.
//
// Built with -DSPEC_SIMDE (the kernel check's second build), the same source runs on any x86-64
// CPU through SIMDe. SIMDe 0.7 lacks the VEX spellings (_mm256_dpbusd_avx_epi32), whose
// arithmetic is that of the EVEX ones, so the SIMDe build maps them onto those.
#include "internal.h"
// 16 vector registers: passes of four tokens over packed rows (the EVEX set takes eight).
#define VNNI_LANE_TOKENS 4

#if defined(SPEC_SIMDE)
#include "x86_simde.h"
#define VNNI_TARGET
#define VNNI_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define VNNI_DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
static int supported(void) {
    return 1;
}
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
const spec_kernel_set spec_set_avxvnni = {
    .name = "avxvnni", .supported = supported, .matmul = vnni_matmul, .packs = vnni_packs, VNNI_OPS};
#else
const spec_kernel_set spec_set_avxvnni = {.name = "avxvnni",
                                          .supported = spec_never_supported,
                                          .matmul = spec_matmul_portable_set,
                                          .packs = spec_packs_none,
                                          SPEC_PORTABLE_OPS};
#endif
