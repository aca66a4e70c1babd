// The intrinsics of the VNNI sets from SIMDe (Debian's libsimde-dev), for the kernel check's
// second build (-DSPEC_SIMDE -DSIMDE_NO_NATIVE), which runs those sets on any x86-64 CPU.
// Never part of the package build. Not a header of its own: included by avx512vnni.c and
// avxvnni.c in place of <immintrin.h>.
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#include <simde/x86/fma.h>
#include <math.h>

// SIMDe 0.7 emulates _mm256_fmadd_ps as a multiply and an add, rounded twice; the hardware
// instruction rounds once. The AVX2 set's bit-exactness that the check asserts depends on the
// single rounding, so the emulation uses the C library's fused fmaf per lane.
static inline simde__m256 spec_exact_fmadd_ps(simde__m256 a, simde__m256 b, simde__m256 c) {
    float x[8], y[8], z[8];
    simde_mm256_storeu_ps(x, a);
    simde_mm256_storeu_ps(y, b);
    simde_mm256_storeu_ps(z, c);
    for (int i = 0; i < 8; i++) z[i] = fmaf(x[i], y[i], z[i]);
    return simde_mm256_loadu_ps(z);
}
#undef _mm256_fmadd_ps
#define _mm256_fmadd_ps(a, b, c) spec_exact_fmadd_ps(a, b, c)
