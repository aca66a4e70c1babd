// The AVX-512 VNNI kernel set (AMD Zen 4 and later, Intel Ice Lake server and later): the
// kernels of x86_vnni.h in the EVEX encoding (256-bit vectors with AVX-512 VL, which gives 32
// vector registers), and the AVX2 vector operations. 256-bit rather than 512-bit vectors: Zen 4
// runs a 512-bit instruction as two 256-bit halves, so the wider form would only pay on Intel
// server cores with two 512-bit multiply units (not measured here).
//
// Built with -DSPEC_SIMDE (the kernel check's second build), the same source runs on any x86-64
// CPU through SIMDe's portable implementations of the intrinsics.
#include "internal.h"

#if defined(SPEC_SIMDE)
#include "x86_simde.h"
#define VNNI_TARGET
static int supported(void) {
    return 1;
}
#define VNNI_AVAILABLE 1
#elif defined(__x86_64__)
#include <immintrin.h>
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
static int supported(void) {
    __builtin_cpu_init();
    return spec_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
#define VNNI_AVAILABLE 1
#endif

#if VNNI_AVAILABLE
#define VNNI_DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define VNNI_DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#include "x86_vnni.h"
const spec_kernel_set spec_set_avx512vnni = {
    .name = "avx512vnni", .supported = supported, .matmul = vnni_matmul, .packs = vnni_packs, VNNI_OPS};
#else
const spec_kernel_set spec_set_avx512vnni = {.name = "avx512vnni",
                                             .supported = spec_never_supported,
                                             .matmul = spec_matmul_portable_set,
                                             .packs = spec_packs_none,
                                             SPEC_PORTABLE_OPS};
#endif
