// Kernel sets and their selection. Each instruction set lives in its own file and fills one
// table of function pointers (spec_kernel_set); the table is chosen once, on first use, and
// every public entry point below calls through it. Choosing once matters for correctness as
// well as speed: a token's logits are identical whether it is evaluated alone or in a tree only
// because every product of a process runs the same code.
#include "internal.h"
#include <stdatomic.h>
#include <stdlib.h>

/// Every set, in the order of the automatic choice: the first one the CPU supports is used.
/// On the one VNNI host measured (Zen 4 class, 2 vCPUs) `avx512vnni` was level with
/// `avx2` for one token and 5-25% faster from 2 to 64 tokens end to end (`speculate bench
/// --batch-costs`, alternated rounds). `avxvnni` is the same source in the VEX encoding with
/// half the registers; no AVX-VNNI machine was available to time it (see Docs/Benchmarks.md).
static const spec_kernel_set *const all_sets[] = {
    &spec_set_avx512vnni, &spec_set_avxvnni, &spec_set_avx2,     &spec_set_i8mm,
    &spec_set_dotprod,    &spec_set_neon,    &spec_set_portable,
};
enum { SET_COUNT = (int)(sizeof all_sets / sizeof all_sets[0]) };

static _Atomic(const spec_kernel_set *) active;

static const spec_kernel_set *best_supported(void) {
    for (int i = 0; i < SET_COUNT; i++)
        if (all_sets[i]->supported()) return all_sets[i];
    return &spec_set_portable;
}

/// Index of the set called `name`, or -1.
static int find_set(const char *name) {
    for (int i = 0; i < SET_COUNT; i++)
        if (!strcmp(all_sets[i]->name, name)) return i;
    return -1;
}

const spec_kernel_set *spec_active_set(void) {
    const spec_kernel_set *set = atomic_load_explicit(&active, memory_order_acquire);
    if (set) return set;
    // First use: the environment's choice when it names a set this CPU runs, else the best.
    // An invalid SPECULATE_KERNELS is reported by spec_kernels_select_from_environment, which
    // the command-line tools call before any work.
    const char *wanted = getenv("SPECULATE_KERNELS");
    const int index = wanted && *wanted ? find_set(wanted) : -1;
    const spec_kernel_set *chosen = index >= 0 && all_sets[index]->supported() ? all_sets[index] : best_supported();
    const spec_kernel_set *expected = NULL;
    if (atomic_compare_exchange_strong(&active, &expected, chosen)) return chosen;
    return expected;
}

int spec_kernels_select(const char *name) {
    if (!name || !*name) {
        atomic_store(&active, best_supported());
        return SPEC_KERNELS_OK;
    }
    const int index = find_set(name);
    if (index < 0) return SPEC_KERNELS_UNKNOWN;
    if (!all_sets[index]->supported()) return SPEC_KERNELS_UNSUPPORTED;
    atomic_store(&active, all_sets[index]);
    return SPEC_KERNELS_OK;
}

int spec_kernels_select_from_environment(void) {
    return spec_kernels_select(getenv("SPECULATE_KERNELS"));
}

int spec_kernel_set_count(void) {
    return SET_COUNT;
}
const char *spec_kernel_set_name(int index) {
    return index >= 0 && index < SET_COUNT ? all_sets[index]->name : NULL;
}
int spec_kernel_set_supported(int index) {
    return index >= 0 && index < SET_COUNT && all_sets[index]->supported();
}

void spec_kernels_force_portable(int portable) {
    (void)spec_kernels_select(portable ? "portable" : NULL);
}
const char *spec_kernels_name(void) {
    return spec_active_set()->name;
}

// The revision names the kernels' arithmetic and speed: cached verification cost curves are
// keyed by it, so raise it whenever a kernel's results or timing change. What each revision
// changed is listed in Docs/History.md ("Kernel revisions") and in git.
int spec_kernels_revision(void) {
    return 17;
}

void spec_matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act, size_t act_stride,
                 int T, float *y, size_t y_stride) {
    if (spec_active_set()->matmul(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride)) return;
    spec_matmul_portable(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride);
}

int spec_matmul_with_set(const char *name, int type, int n, const void *w, size_t row_bytes, int r0, int r1,
                         const void *act, size_t act_stride, int T, float *y, size_t y_stride) {
    const int index = name ? find_set(name) : -1;
    if (index < 0) return SPEC_KERNELS_UNKNOWN;
    if (!all_sets[index]->supported()) return SPEC_KERNELS_UNSUPPORTED;
    if (!all_sets[index]->matmul(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride))
        spec_matmul_portable(type, n, w, row_bytes, r0, r1, act, act_stride, T, y, y_stride);
    return SPEC_KERNELS_OK;
}

void spec_quantize_act(int format, const float *x, int n, void *out) {
    spec_active_set()->quantize_act(format, x, n, out);
}
void spec_f32_to_f16(const float *x, int n, uint16_t *out) {
    spec_active_set()->f32_to_f16(x, n, out);
}
void spec_f16_to_f32(const uint16_t *x, int n, float *out) {
    spec_active_set()->f16_to_f32(x, n, out);
}
void spec_rms_norm(const float *x, const float *weight, int n, float epsilon, float *out) {
    spec_active_set()->rms_norm(x, weight, n, epsilon, out);
}
void spec_silu_mul(float *gate, const float *up, int n) {
    spec_active_set()->silu_mul(gate, up, n);
}
void spec_gelu_mul(float *gate, const float *up, int n) {
    spec_active_set()->gelu_mul(gate, up, n);
}
