// Checks every kernel set this CPU (or this build) runs against the portable kernels on random
// blocks of every weight type and on tree attention (within a stated bound), and checks that a
// token's result is bit-identical whether it is computed alone or inside batches of 2 to 19 tokens. The VNNI sets are
// also checked for the exactness they promise: K-quants bit-identical to the portable kernels, 32-element types
// bit-identical to the AVX2 set. Built and run by the kernel tests: natively; with
// -DSPEC_SIMDE -DSIMDE_NO_NATIVE, where the VNNI sets run through SIMDe's portable intrinsics
// on any x86-64 CPU; and for AArch64 under qemu-aarch64 when a cross compiler is installed.
// -DSPEC_CHECK_MUTANT=N compiles a deliberately broken VNNI kernel, which must fail.
//
//   cc -O2 -ffp-contract=off -I Sources/CSpeculateKernels/include -I Sources/CSpeculateKernels
//      Tests/Reference/kernel_check.c Sources/CSpeculateKernels/*.c -lpthread -lm   (one line)
//
// -ffp-contract=off: GCC fuses a multiply and an add into one rounding by default where the
// target has FMA, which would make the portable float steps differ from the VNNI sets' ones.
#include "speculate_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9E3779B97F4A7C15ULL;
static uint64_t next_random(void) { // SplitMix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(next_random() >> 40) / (float)(1 << 24);
}

/// IEEE half bits of a positive normal float (truncated mantissa; exactness does not matter).
static uint16_t half_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)((((b >> 23) & 0xFF) - 127 + 15) << 10 | ((b >> 13) & 0x3FF));
}

static void put_half(uint8_t *p, float f) {
    const uint16_t h = half_bits(f);
    memcpy(p, &h, 2);
}

typedef struct {
    int type, block_bytes, block_values;
    const char *name;
} type_info;
static const type_info types[] = {
    {SPEC_Q8_0, 34, 32, "Q8_0"},   {SPEC_Q4_0, 18, 32, "Q4_0"},   {SPEC_Q4_1, 20, 32, "Q4_1"},
    {SPEC_Q5_0, 22, 32, "Q5_0"},   {SPEC_Q5_1, 24, 32, "Q5_1"},   {SPEC_Q4_K, 144, 256, "Q4_K"},
    {SPEC_Q5_K, 176, 256, "Q5_K"}, {SPEC_Q6_K, 210, 256, "Q6_K"},
};

/// Random bytes with the block's float scales replaced by small positive halves.
static void fill_block(const type_info *t, uint8_t *blk) {
    for (int i = 0; i < t->block_bytes; i++) blk[i] = (uint8_t)next_random();
    if (t->type == SPEC_Q6_K) {
        put_half(blk + 208, uniform(0.001f, 0.01f));
    } else {
        put_half(blk, uniform(0.001f, 0.01f));
        if (t->type == SPEC_Q4_1 || t->type == SPEC_Q5_1 || t->type == SPEC_Q4_K || t->type == SPEC_Q5_K) {
            put_half(blk + 2, uniform(0.001f, 0.01f));
        }
    }
}

static int is_vnni(const char *set) {
    return !strcmp(set, "avx512vnni") || !strcmp(set, "avxvnni");
}
static int is_k_quant(int type) {
    return type == SPEC_Q4_K || type == SPEC_Q5_K || type == SPEC_Q6_K;
}

/// Checks the set `set` (already selected) on every weight type; returns the failures.
static int check_set(const char *set, int avx2_supported, int N) {
    enum { ROWS = 37, T = 19 };
    int failures = 0;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const type_info *t = &types[k];
        if (N % t->block_values) continue;
        const int blocks = N / t->block_values;
        const size_t row_bytes = (size_t)blocks * t->block_bytes;
        uint8_t *w = malloc(row_bytes * ROWS);
        for (int r = 0; r < ROWS; r++)
            for (int b = 0; b < blocks; b++) fill_block(t, w + r * row_bytes + (size_t)b * t->block_bytes);
        const int format = spec_act_format_for(t->type);
        const size_t stride = spec_act_row_bytes(format, N);
        uint8_t *act = malloc(stride * T);
        float x[N];
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < N; j++) x[j] = uniform(-2.0f, 2.0f);
            if (i == 1) x[5] = 40.0f; // a block with an outlier: most of its values quantize to 0 and +-1
            spec_quantize_act(format, x, N, act + i * stride);
        }
        float *batched = malloc(sizeof(float) * ROWS * T), *portable = malloc(sizeof(float) * ROWS * T);
        float *part = malloc(sizeof(float) * ROWS * T), *reference = malloc(sizeof(float) * ROWS * T);
        spec_matmul(t->type, N, w, row_bytes, 0, ROWS, act, stride, T, batched, ROWS);
        spec_matmul_portable(t->type, N, w, row_bytes, 0, ROWS, act, stride, T, portable, ROWS);
        double worst = 0;
        for (int i = 0; i < ROWS * T; i++) {
            const double diff = fabs((double)batched[i] - portable[i]) / (1.0 + fabs((double)portable[i]));
            if (!(diff <= worst)) worst = diff; // NaN counts as worst
        }
        int mismatched = 0;
        // Every batch size from 1 to T, over row ranges that start and end at odd places.
        for (int size = 1; size <= T; size++) {
            for (int first = 0; first + size <= T; first += size) {
                spec_matmul(t->type, N, w, row_bytes, 3, ROWS - 2, act + first * stride, stride, size, part, ROWS);
                for (int i = 0; i < size; i++)
                    for (int r = 3; r < ROWS - 2; r++)
                        if (memcmp(&part[i * ROWS + r], &batched[(first + i) * ROWS + r], sizeof(float)) != 0)
                            mismatched++;
            }
        }
        // The exactness a VNNI set promises (x86_vnni.h).
        const char *exact_to = NULL;
        int inexact = 0;
        if (is_vnni(set) && is_k_quant(t->type)) {
            exact_to = "portable";
            memcpy(reference, portable, sizeof(float) * ROWS * T);
        } else if (is_vnni(set) && avx2_supported) {
            exact_to = "avx2";
            spec_kernels_select("avx2");
            spec_matmul(t->type, N, w, row_bytes, 0, ROWS, act, stride, T, reference, ROWS);
            spec_kernels_select(set);
        }
        if (exact_to)
            for (int i = 0; i < ROWS * T; i++) inexact += memcmp(&batched[i], &reference[i], sizeof(float)) != 0;
        // Sums in another order differ by a few roundings per block: the bound grows with the row.
        const int ok = worst <= 1e-4 * N / 768 && mismatched == 0 && inexact == 0;
        printf("kernel_check: %-10s %-5s vs portable (n=%d): max relative difference %.2e; results differing across "
               "batch sizes: %d",
               set, t->name, N, worst, mismatched);
        if (exact_to) printf("; differing from %s: %d", exact_to, inexact);
        printf("  %s\n", ok ? "ok" : "FAILED");
        failures += !ok;
        free(w);
        free(act);
        free(batched);
        free(portable);
        free(part);
        free(reference);
    }
    return failures;
}

/// Checks the packed layouts (repack.c) of Q8_0, Q4_0, Q5_0, Q4_K and Q6_K: packing then unpacking gives the
/// file's bytes back, and the products of the packed matrix — with `set`'s kernels, or with the
/// portable ones when `set` is NULL — equal the portable products of the file's layout bit for
/// bit, at every batch size and over row ranges that cut the groups of eight. Returns failures.
/// The row widths every check runs at.
static const int widths[] = {768, 640};

static int check_packed(const char *set, int N) {
    enum { ROWS = 40, T = 19 };
    static const int packable[] = {0, 1, 3, 5, 7}; // Q8_0, Q4_0, Q5_0, Q4_K, Q6_K in types[]
    int failures = 0;
    for (size_t k = 0; k < sizeof packable / sizeof packable[0]; k++) {
        const type_info *t = &types[packable[k]];
        if (N % t->block_values) continue;
        const int packed_type = t->type == SPEC_Q8_0   ? SPEC_Q8_0_X8
                                : t->type == SPEC_Q4_0 ? SPEC_Q4_0_X8
                                : t->type == SPEC_Q5_0 ? SPEC_Q5_0_X8
                                : t->type == SPEC_Q4_K ? SPEC_Q4_K_X8
                                                       : SPEC_Q6_K_X8;
        if (set && spec_packed_type_for(t->type, ROWS, N) != packed_type) continue;
        const int blocks = N / t->block_values, format = spec_act_format_for(t->type);
        const size_t row_bytes = (size_t)blocks * t->block_bytes,
                     packed_row_bytes = spec_packed_row_bytes(packed_type, N);
        uint8_t *w = malloc(row_bytes * ROWS), *packed = malloc(packed_row_bytes * ROWS), *back = malloc(row_bytes);
        for (int r = 0; r < ROWS; r++)
            for (int b = 0; b < blocks; b++) fill_block(t, w + r * row_bytes + (size_t)b * t->block_bytes);
        int unpacked_wrong = spec_pack_rows(packed_type, N, w, row_bytes, 0, ROWS, packed) != 0;
        for (int r = 0; r < ROWS; r++) {
            spec_unpack_row(packed_type, N, packed, r, back);
            unpacked_wrong += memcmp(back, w + r * row_bytes, row_bytes) != 0;
        }
        const size_t stride = spec_act_row_bytes(format, N);
        uint8_t *act = malloc(stride * T);
        float x[N];
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < N; j++) x[j] = uniform(-2.0f, 2.0f);
            spec_quantize_act(format, x, N, act + i * stride);
        }
        float *portable = malloc(sizeof(float) * ROWS * T), *part = malloc(sizeof(float) * ROWS * T);
        spec_matmul_portable(t->type, N, w, row_bytes, 0, ROWS, act, stride, T, portable, ROWS);
        int inexact = 0;
        for (int size = 1; size <= T; size++) {
            for (int first = 0; first + size <= T; first += size) {
                const int r0 = size % 2 ? 3 : 0, r1 = size % 3 ? ROWS - 5 : ROWS;
                if (set)
                    spec_matmul(packed_type, N, packed, packed_row_bytes, r0, r1, act + first * stride, stride, size,
                                part, ROWS);
                else
                    spec_matmul_portable(packed_type, N, packed, packed_row_bytes, r0, r1, act + first * stride, stride,
                                         size, part, ROWS);
                for (int i = 0; i < size; i++)
                    for (int r = r0; r < r1; r++)
                        inexact += memcmp(&part[i * ROWS + r], &portable[(first + i) * ROWS + r], sizeof(float)) != 0;
            }
        }
        const int ok = unpacked_wrong == 0 && inexact == 0;
        printf("kernel_check: %-10s %s_X8 packed (n=%d): rows not restored: %d; results differing from portable on "
               "the file's layout: %d  %s\n",
               set ? set : "portable", t->name, N, unpacked_wrong, inexact, ok ? "ok" : "FAILED");
        failures += !ok;
        free(w);
        free(packed);
        free(back);
        free(act);
        free(portable);
        free(part);
    }
    return failures;
}

/// Signed half bits of f, |f| kept at least 0.001 (a normal half).
static uint16_t signed_half(float f) {
    return (uint16_t)((f < 0 ? 0x8000 : 0) | half_bits(fabsf(f) < 0.001f ? 0.001f : fabsf(f)));
}

/// Tree attention of the selected set against the portable loop, on trees over a committed
/// prefix, for head sizes and query-head groups that reach every tile shape and fallback path.
/// Only the order of the score and value sums may differ: each output is a weighted mean of
/// values in [-1, 1] and each score a sum of at most 128 products below 1 in magnitude, so float
/// rounding moves an output by well under 1e-5; a wrong slot, head or weight moves it by ~0.1.
static int check_attention(const char *set) {
    static const int shapes[][3] = {{64, 2, 2}, {128, 6, 2}, {128, 7, 1}, {128, 5, 1},
                                    {64, 4, 2}, {48, 3, 1},  {40, 1, 2}}; // head_dim, group, KV heads
    static const int prefixes[] = {0, 5, 150};
    enum { NODES = 6 };
    const float bound = 1e-4f;
    float worst = 0.0f;
    int failures = 0, cases = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int hd = shapes[si][0], group = shapes[si][1], kv_heads = shapes[si][2];
        for (size_t pi = 0; pi < sizeof prefixes / sizeof prefixes[0]; pi++) {
            const int prefix = prefixes[pi], capacity = prefix + NODES;
            // Node i sees the prefix and the pending slots of its path: a chain for even i, its own slot only for odd
            // i.
            int32_t slot_start[NODES + 1], slots[NODES * NODES];
            int count = 0;
            for (int i = 0; i < NODES; i++) {
                slot_start[i] = count;
                if (i % 2 == 0)
                    for (int k = 0; k <= i; k++) slots[count++] = prefix + k;
                else
                    slots[count++] = prefix + i;
            }
            slot_start[NODES] = count;
            const size_t kv_stride = (size_t)hd, head_stride = (size_t)capacity * hd; // head-major
            uint16_t *keys = malloc(sizeof(uint16_t) * head_stride * kv_heads),
                     *values = malloc(sizeof(uint16_t) * head_stride * kv_heads);
            const size_t q_stride = (size_t)kv_heads * group * hd;
            float *queries = malloc(sizeof(float) * q_stride * NODES),
                  *expected = malloc(sizeof(float) * q_stride * NODES);
            float *got = malloc(sizeof(float) * q_stride * NODES), *scores = malloc(sizeof(float) * group * capacity);
            for (size_t i = 0; i < head_stride * kv_heads; i++)
                keys[i] = signed_half(uniform(-1, 1)), values[i] = signed_half(uniform(-1, 1));
            for (size_t i = 0; i < q_stride * NODES; i++) queries[i] = uniform(-1, 1);
            spec_attention a = {queries,  q_stride, keys,   values, kv_stride,  head_stride,
                                hd,       group,    prefix, slots,  slot_start, 1.0f / sqrtf((float)hd),
                                expected, q_stride};
            spec_kernels_select("portable");
            spec_attention_run(&a, NODES, kv_heads, scores, (size_t)group * capacity);
            spec_kernels_select(set);
            a.output = got;
            spec_attention_run(&a, NODES, kv_heads, scores, (size_t)group * capacity);
            float difference = 0.0f;
            for (size_t i = 0; i < q_stride * NODES; i++) {
                const float d = fabsf(got[i] - expected[i]);
                if (!(d <= difference)) difference = d; // NaN counts as worst
            }
            if (!(difference <= bound)) {
                printf("kernel_check: %-10s attention head_dim %d group %d prefix %d: differs by %g  FAILED\n", set, hd,
                       group, prefix, difference);
                failures++;
            }
            if (difference > worst) worst = difference;
            cases++;
            free(keys), free(values), free(queries), free(expected), free(got), free(scores);
        }
    }
    printf("kernel_check: %-10s attention, %d trees: largest difference from portable %.1e (bound %.0e)  %s\n", set,
           cases, worst, bound, failures ? "FAILED" : "pass");
    return failures;
}

int main(void) {
    int failures = 0, checked = 0, avx2_supported = 0;
    for (int i = 0; i < spec_kernel_set_count(); i++)
        if (!strcmp(spec_kernel_set_name(i), "avx2")) avx2_supported = spec_kernel_set_supported(i);
    printf("kernel_check: kernels %s\n", spec_kernels_name());
    for (int i = 0; i < spec_kernel_set_count(); i++) {
        const char *set = spec_kernel_set_name(i);
        if (!spec_kernel_set_supported(i) || !strcmp(set, "portable")) continue;
        if (spec_kernels_select(set) != SPEC_KERNELS_OK) {
            printf("kernel_check: %s reported as supported but refused  FAILED\n", set);
            failures++;
            continue;
        }
        printf("kernel_check: set %s\n", set);
        // 768 columns: whole 256-value superblocks; 640 (Gemma 3 270M's width): 32-value blocks
        // that do not fill groups of eight, the K-quants skipped.
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
            failures += check_set(set, avx2_supported, widths[w]);
            failures += check_packed(set, widths[w]);
        }
        failures += check_attention(set);
        checked++;
    }
    spec_kernels_select(NULL);
    printf("kernel_check: %d SIMD sets checked\n", checked);
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) failures += check_packed(NULL, widths[w]);
    // Half-precision conversions (the KV cache) against the compiler's _Float16, with the
    // selected kernels and then with the portable ones.
    for (int portable = 0; portable < 2; portable++) {
        spec_kernels_force_portable(portable);
        int wrong = 0;
        enum { COUNT = 1 << 16 };
        static float floats[COUNT], back[COUNT];
        static uint16_t halves[COUNT];
        for (int i = 0; i < COUNT; i++) {
            const uint32_t bits = (uint32_t)next_random();
            memcpy(&floats[i], &bits, 4);
            if (isnan(floats[i])) floats[i] = 1.0f;
            if (i % 4 == 0) floats[i] = ldexpf(floats[i], -100); // many halves' subnormal range and zero
            if (i % 4 == 1) floats[i] = uniform(-70000.0f, 70000.0f);
            if (i % 4 == 2) floats[i] = ldexpf(uniform(-1.0f, 1.0f), -14 - (int)(next_random() % 12));
        }
        spec_f32_to_f16(floats, COUNT, halves);
        for (int i = 0; i < COUNT; i++) {
            const _Float16 h = (_Float16)floats[i];
            uint16_t expected;
            memcpy(&expected, &h, 2);
            if (halves[i] != expected) wrong++;
            halves[i] = (uint16_t)i; // then every half value back to float
        }
        spec_f16_to_f32(halves, COUNT, back);
        for (int i = 0; i < COUNT; i++) {
            _Float16 h;
            const uint16_t bits = (uint16_t)i;
            memcpy(&h, &bits, 2);
            const float expected = (float)h;
            if (!(isnan(expected) && isnan(back[i])) && memcmp(&expected, &back[i], 4) != 0) wrong++;
        }
        printf("kernel_check: half conversions (%s) vs _Float16: %d differ  %s\n", spec_kernels_name(), wrong,
               wrong ? "FAILED" : "ok");
        failures += wrong != 0;
    }
    printf("kernel_check: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
