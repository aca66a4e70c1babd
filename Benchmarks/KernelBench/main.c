// speculate-kernel-bench: the quantized matrix kernels alone, on weights laid out like a real
// model (Qwen2.5-Coder-1.5B Q4_K_M shapes by default), without the rest of the forward pass.
//
// Weights are random blocks with valid scales (the kernels' speed does not depend on the
// values) in separate allocations per layer, so every pass streams them from memory as
// decoding does. Reports, per batch size, the best of several passes: milliseconds, weight
// bytes read per second, multiply-adds per second and the cost relative to one token.
//
//   speculate-kernel-bench [--threads N] [--batches 1,2,4,8] [--passes N] [--layers N]
//                          [--hidden N] [--ffn N] [--kv N] [--vocab N] [--type q4_k|q4_0] [--file-layout]
//                          [--portable] [--attention CONTEXT [--head-dim N]]
//
// --attention CONTEXT also times tree attention alone: each batch of T nodes (a chain, as a
// drafted path is verified) over CONTEXT cached slots in every layer, with hidden / head-dim
// query heads and kv / head-dim KV heads (half-precision cache, one allocation per layer).
// --type q4_0 makes every matrix Q4_0 (head included): the layout of a draft requantized at
// load where rows are not whole 256-value blocks, e.g. Qwen2.5-Coder-0.5B with
// --layers 24 --hidden 896 --ffn 4864 --kv 128. --file-layout keeps the file's layout where the kernel set would pack
// (an A/B of the packed layouts on one machine).
#include "speculate_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/// One weight matrix: `rows` rows of `n` elements of `type`.
typedef struct {
    int type, rows, n;
    size_t row_bytes;
    uint8_t *data;
} matrix;

static size_t block_bytes(int type) {
    return type == SPEC_Q4_K ? 144 : type == SPEC_Q6_K ? 210 : type == SPEC_Q4_0 ? 18 : 0;
}
static int block_values(int type) {
    return type == SPEC_Q4_0 ? 32 : 256;
}

static int file_layout; // --file-layout: keep every matrix in the file's layout (A/B of packing)

static matrix make_matrix(int type, int rows, int n, unsigned *seed) {
    matrix m = {type, rows, n, (size_t)(n / block_values(type)) * block_bytes(type), NULL};
    const size_t size = m.row_bytes * (size_t)rows;
    m.data = aligned_alloc(64, (size + 63) & ~(size_t)63);
    if (!m.data) {
        fprintf(stderr, "error: out of memory allocating %zu bytes of weights\n", size);
        exit(1);
    }
    for (size_t i = 0; i < size; i++) m.data[i] = (uint8_t)(rand_r(seed) >> 7);
    // Scales: small positive halves (about 0.01), so the arithmetic stays in normal ranges.
    const uint16_t scale = 0x2147;
    for (size_t b = 0; b < size / block_bytes(type); b++) {
        uint8_t *block = m.data + b * block_bytes(type);
        if (type == SPEC_Q4_K) {
            memcpy(block, &scale, 2);
            memcpy(block + 2, &scale, 2);
        } else if (type == SPEC_Q4_0) {
            memcpy(block, &scale, 2);
        } else {
            memcpy(block + 208, &scale, 2);
        }
    }
    // The layout the kernel set prefers, as the runtime packs it at load (unless --file-layout).
    const int packed_type = file_layout ? -1 : spec_packed_type_for(type, rows, n);
    if (packed_type >= 0) {
        const size_t packed_row_bytes = spec_packed_row_bytes(packed_type, n);
        uint8_t *packed = aligned_alloc(64, (packed_row_bytes * (size_t)rows + 63) & ~(size_t)63);
        if (!packed || spec_pack_rows(packed_type, n, m.data, m.row_bytes, 0, rows, packed) != 0) {
            fprintf(stderr, "error: cannot pack %d x %d weights\n", rows, n);
            exit(1);
        }
        free(m.data);
        m = (matrix){packed_type, rows, n, packed_row_bytes, packed};
    }
    return m;
}

/// Times spec_attention_run for each batch size over `context` cached slots in every layer.
static void time_attention(int context, int layers, int hidden, int kv, int head_dim, const int *batches,
                           int batch_count, int passes) {
    const int heads = hidden / head_dim, kv_heads = kv / head_dim, capacity = context + 64;
    unsigned seed = 11;
    uint16_t **keys = malloc(sizeof(uint16_t *) * (size_t)layers),
             **values = malloc(sizeof(uint16_t *) * (size_t)layers);
    float *row = malloc(sizeof(float) * (size_t)kv);
    for (int l = 0; l < layers; l++) {
        keys[l] = malloc(sizeof(uint16_t) * (size_t)capacity * (size_t)kv);
        values[l] = malloc(sizeof(uint16_t) * (size_t)capacity * (size_t)kv);
        if (!keys[l] || !values[l]) {
            fprintf(stderr, "error: out of memory allocating the KV cache\n");
            exit(1);
        }
        for (int slot = 0; slot < capacity; slot++) {
            for (int i = 0; i < kv; i++) row[i] = (float)((rand_r(&seed) % 2001) - 1000) / 1000.0f;
            spec_f32_to_f16(row, kv, keys[l] + (size_t)slot * kv);
            for (int i = 0; i < kv; i++) row[i] = (float)((rand_r(&seed) % 2001) - 1000) / 1000.0f;
            spec_f32_to_f16(row, kv, values[l] + (size_t)slot * kv);
        }
    }
    float *queries = malloc(sizeof(float) * 64 * (size_t)hidden), *output = malloc(sizeof(float) * 64 * (size_t)hidden);
    for (int i = 0; i < 64 * hidden; i++) queries[i] = (float)((rand_r(&seed) % 2001) - 1000) / 500.0f;
    // A chain: node i sees the context and pending slots 0...i.
    int32_t slots[64 * 65 / 2], starts[65];
    int count = 0;
    starts[0] = 0;
    for (int node = 0; node < 64; node++) {
        for (int j = 0; j <= node; j++) slots[count++] = context + j;
        starts[node + 1] = count;
    }
    const size_t scores_stride = (size_t)(heads / kv_heads) * (size_t)capacity;
    float *scores = malloc(sizeof(float) * scores_stride * (size_t)spec_pool_threads());
    printf("attention over %d cached tokens: %d query heads, %d KV heads of %d (f16 cache, %.1f MB)\n", context, heads,
           kv_heads, head_dim, 2.0 * layers * capacity * kv * 2 / 1e6);
    printf("%6s %10s %14s %10s\n", "tokens", "ms", "ns/ctx token", "relative");
    double one = 0;
    for (int bi = 0; bi < batch_count; bi++) {
        const int T = batches[bi];
        double best = 1e30;
        for (int p = 0; p < passes; p++) {
            const double t0 = now_seconds();
            for (int l = 0; l < layers; l++) {
                // The runtime's layout: each KV head's slots adjacent.
                const spec_attention job = {
                    queries,  (size_t)hidden,   keys[l], values[l], (size_t)head_dim, (size_t)capacity * head_dim,
                    head_dim, heads / kv_heads, context, slots,     starts,           1.0f / sqrtf((float)head_dim),
                    output,   (size_t)hidden};
                spec_attention_run(&job, T, kv_heads, scores, scores_stride);
            }
            const double t = now_seconds() - t0;
            if (t < best) best = t;
        }
        if (T == 1 || bi == 0) one = best;
        printf("%6d %10.3f %14.1f %9.2fx\n", T, best * 1e3, best * 1e9 / context / T, best / one);
    }
}

static int parse_list(const char *text, int *values, int capacity) {
    int count = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && count < capacity; item = strtok_r(NULL, ",", &save)) {
        const int v = atoi(item);
        if (v < 1 || v > 64) {
            fprintf(stderr, "error: batch size %s is not in 1...64\n", item);
            exit(2);
        }
        values[count++] = v;
    }
    free(copy);
    return count;
}

int main(int argc, char **argv) {
    int threads = 0, passes = 8, layers = 28, hidden = 1536, ffn = 8960, kv = 256, vocab = 151936, portable = 0,
        layer_type = SPEC_Q4_K;
    int attention_context = 0, head_dim = 128;
    int batches[16] = {1, 2, 4, 8, 16}, batch_count = 5;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--portable")) {
            portable = 1;
            continue;
        }
        if (!strcmp(arg, "--file-layout")) {
            file_layout = 1;
            continue;
        }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            printf("usage: speculate-kernel-bench [--threads N] [--batches 1,2,4,8] [--passes N] [--layers N]\n"
                   "                              [--hidden N] [--ffn N] [--kv N] [--vocab N] [--type q4_k|q4_0] "
                   "[--file-layout] [--portable]\n"
                   "                              [--attention CONTEXT [--head-dim N]]\n"
                   "Times the quantized matrix kernels on synthetic weights shaped like Qwen2.5-Coder-1.5B Q4_K_M\n"
                   "(Q4_K layers, Q6_K output head; sizes multiples of 256), or with --type q4_0 every matrix Q4_0\n"
                   "(sizes multiples of 32; a requantized draft such as Qwen2.5-Coder-0.5B: --layers 24 --hidden 896\n"
                   "--ffn 4864 --kv 128). --attention CONTEXT also times tree attention alone over CONTEXT cached\n"
                   "tokens (query heads hidden / head-dim, KV heads kv / head-dim; head-dim 128, the 0.5B's is 64).\n");
            return 0;
        }
        if (!value) {
            fprintf(stderr, "error: %s needs a value (see --help)\n", arg);
            return 2;
        }
        i++;
        if (!strcmp(arg, "--threads"))
            threads = atoi(value);
        else if (!strcmp(arg, "--passes"))
            passes = atoi(value);
        else if (!strcmp(arg, "--layers"))
            layers = atoi(value);
        else if (!strcmp(arg, "--hidden"))
            hidden = atoi(value);
        else if (!strcmp(arg, "--ffn"))
            ffn = atoi(value);
        else if (!strcmp(arg, "--kv"))
            kv = atoi(value);
        else if (!strcmp(arg, "--vocab"))
            vocab = atoi(value);
        else if (!strcmp(arg, "--attention"))
            attention_context = atoi(value);
        else if (!strcmp(arg, "--head-dim"))
            head_dim = atoi(value);
        else if (!strcmp(arg, "--batches"))
            batch_count = parse_list(value, batches, 16);
        else if (!strcmp(arg, "--type")) {
            if (!strcmp(value, "q4_k"))
                layer_type = SPEC_Q4_K;
            else if (!strcmp(value, "q4_0"))
                layer_type = SPEC_Q4_0;
            else {
                fprintf(stderr, "error: --type %s: expected q4_k or q4_0\n", value);
                return 2;
            }
        } else {
            fprintf(stderr, "error: unknown option %s (see --help)\n", arg);
            return 2;
        }
    }
    const int unit = block_values(layer_type);
    if (hidden % unit || ffn % unit || hidden < unit || ffn < unit || kv < 1 || vocab < 1 || layers < 1 || passes < 1 ||
        batch_count < 1) {
        fprintf(stderr, "error: hidden and ffn must be positive multiples of %d; counts must be positive\n", unit);
        return 2;
    }
    if (attention_context < 0 || attention_context > 1 << 20 || head_dim < 1 || hidden % head_dim || kv % head_dim ||
        (hidden / head_dim) % (kv / head_dim)) {
        fprintf(stderr, "error: --attention takes 0...1048576 tokens; --head-dim must divide hidden and kv, with whole "
                        "query groups\n");
        return 2;
    }
    // --portable, else SPECULATE_KERNELS (unset: the best set this CPU runs).
    const int status = portable ? spec_kernels_select("portable") : spec_kernels_select_from_environment();
    if (status != SPEC_KERNELS_OK) {
        fprintf(stderr, "error: SPECULATE_KERNELS=%s: %s; this CPU runs:", getenv("SPECULATE_KERNELS"),
                status == SPEC_KERNELS_UNKNOWN ? "no kernel set has that name"
                                               : "this CPU lacks that set's instructions");
        for (int i = 0; i < spec_kernel_set_count(); i++)
            if (spec_kernel_set_supported(i)) fprintf(stderr, " %s", spec_kernel_set_name(i));
        fprintf(stderr, "\n");
        return 2;
    }
    if (threads > 0)
        spec_pool_set_threads(threads);
    else
        spec_pool_set_threads(2);

    // Per layer: q, k, v, o, gate, up, down — in the order and groups the runtime issues them.
    unsigned seed = 7;
    const int shapes[7][2] = {{hidden, hidden}, {kv, hidden},  {kv, hidden}, {hidden, hidden},
                              {ffn, hidden},    {ffn, hidden}, {hidden, ffn}};
    matrix *weights = malloc(sizeof(matrix) * (size_t)layers * 7);
    double layer_bytes = 0, layer_macs = 0;
    for (int l = 0; l < layers; l++) {
        for (int i = 0; i < 7; i++) {
            weights[l * 7 + i] = make_matrix(layer_type, shapes[i][0], shapes[i][1], &seed);
            layer_bytes += (double)weights[l * 7 + i].row_bytes * shapes[i][0];
            layer_macs += (double)shapes[i][0] * shapes[i][1];
        }
    }
    const matrix head = make_matrix(layer_type == SPEC_Q4_0 ? SPEC_Q4_0 : SPEC_Q6_K, vocab, hidden, &seed);
    const double head_bytes = (double)head.row_bytes * vocab, head_macs = (double)vocab * hidden;

    const int max_t = 64;
    const int format = spec_act_format_for(layer_type); // the head's type takes the same format
    const size_t narrow = spec_act_row_bytes(format, hidden), wide = spec_act_row_bytes(format, ffn);
    uint8_t *act_narrow = aligned_alloc(64, narrow * max_t), *act_wide = aligned_alloc(64, wide * max_t);
    float *x = malloc(sizeof(float) * (size_t)ffn);
    for (int t = 0; t < max_t; t++) {
        for (int i = 0; i < ffn; i++) x[i] = (float)((rand_r(&seed) % 2001) - 1000) / 1000.0f;
        spec_quantize_act(format, x, hidden, act_narrow + narrow * t);
        spec_quantize_act(format, x, ffn, act_wide + wide * t);
    }
    const int widest = vocab > ffn ? vocab : ffn;
    float *y = malloc(sizeof(float) * (size_t)widest * max_t);

    const int all_q4_0 = layer_type == SPEC_Q4_0;
    printf("kernels: %s%s, %d threads; %d layers of %dx%d (ffn %d, kv %d) %s + %dx%d %s head: %.0f MB\n",
           spec_kernels_name(), spec_packed_base_type(head.type) >= 0 ? " (weights packed)" : "", spec_pool_threads(),
           layers, hidden, hidden, ffn, kv, all_q4_0 ? "Q4_0" : "Q4_K", vocab, hidden, all_q4_0 ? "Q4_0" : "Q6_K",
           (layer_bytes + head_bytes) / 1e6);
    printf("%6s %10s %10s %10s %10s %10s\n", "tokens", "layers ms", "head ms", "GB/s", "GMAC/s", "relative");
    double one_token = 0;
    for (int bi = 0; bi < batch_count; bi++) {
        const int T = batches[bi];
        double best_layers = 1e30, best_head = 1e30;
        for (int p = 0; p < passes; p++) {
            const double t0 = now_seconds();
            for (int l = 0; l < layers; l++) {
                spec_matmul_job jobs[7];
                for (int i = 0; i < 7; i++) {
                    const matrix *m = &weights[l * 7 + i];
                    const int is_wide = m->n == ffn && ffn != hidden;
                    jobs[i] = (spec_matmul_job){m->type,
                                                m->n,
                                                m->data,
                                                m->row_bytes,
                                                m->rows,
                                                is_wide ? act_wide : act_narrow,
                                                is_wide ? wide : narrow,
                                                y,
                                                (size_t)m->rows};
                }
                spec_matmul_jobs(jobs, 3, T);     // q, k, v
                spec_matmul_jobs(jobs + 3, 1, T); // o
                spec_matmul_jobs(jobs + 4, 2, T); // gate, up
                spec_matmul_jobs(jobs + 6, 1, T); // down
            }
            const double t1 = now_seconds();
            const spec_matmul_job head_job = {head.type,  head.n, head.data, head.row_bytes,   head.rows,
                                              act_narrow, narrow, y,         (size_t)head.rows};
            spec_matmul_jobs(&head_job, 1, T);
            const double t2 = now_seconds();
            if (t1 - t0 < best_layers) best_layers = t1 - t0;
            if (t2 - t1 < best_head) best_head = t2 - t1;
        }
        const double total = best_layers + best_head;
        if (bi == 0 || T == 1) one_token = T == 1 ? total : one_token;
        printf("%6d %10.2f %10.2f %10.1f %10.1f %9.2fx\n", T, best_layers * 1e3, best_head * 1e3,
               (layer_bytes + head_bytes) / total / 1e9, (layer_macs + head_macs) * T / total / 1e9,
               one_token > 0 ? total / one_token : 0.0);
    }
    if (attention_context > 0)
        time_attention(attention_context, layers, hidden, kv, head_dim, batches, batch_count, passes);
    return 0;
}
