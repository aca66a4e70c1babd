// The forward pass's vector operations besides the matrix products: RMS normalization, the
// SwiGLU gate, and tree attention over the KV cache. Portable versions here, AVX2 versions in
// ops_avx2.c; the kernel set in use (dispatch.c) picks one, like the products. Each output is
// computed per row (per node) by one code path, so results do not depend on the batch.
#include "internal.h"
#include <math.h>
#include <stdatomic.h>

/// Float to half with round-to-nearest-even, the rounding F16C's conversion uses.
static uint16_t half_from_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    const uint32_t sign = (bits >> 16) & 0x8000;
    const uint32_t magnitude = bits & 0x7FFFFFFF;
    if (magnitude >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (magnitude > 0x7F800000 ? 0x200 : 0)); // inf, NaN
    if (magnitude >= 0x477FF000) return (uint16_t)(sign | 0x7C00); // rounds past the largest half
    if (magnitude < 0x38800000) {                          // a half subnormal (or zero): shift the full significand
        if (magnitude < 0x33000000) return (uint16_t)sign; // below half of the smallest subnormal
        const uint32_t significand = (magnitude & 0x7FFFFF) | 0x800000;
        const int shift = 126 - (int)(magnitude >> 23); // 14 for the largest subnormal exponent
        const uint32_t kept = significand >> shift, rest = significand & ((1u << shift) - 1),
                       halfway = 1u << (shift - 1);
        return (uint16_t)(sign | (kept + (rest > halfway || (rest == halfway && (kept & 1)))));
    }
    const uint32_t rebased = magnitude - 0x38000000; // exponent from bias 127 to bias 15
    const uint32_t kept = rebased >> 13, rest = rebased & 0x1FFF;
    return (uint16_t)(sign | (kept + (rest > 0x1000 || (rest == 0x1000 && (kept & 1)))));
}

#pragma STDC FP_CONTRACT OFF

void spec_f32_to_f16_portable(const float *x, int n, uint16_t *out) {
    for (int i = 0; i < n; i++) out[i] = half_from_float(x[i]);
}

void spec_f16_to_f32_portable(const uint16_t *x, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = spec_half((const uint8_t *)(x + i));
}

void spec_rms_norm_portable(const float *x, const float *weight, int n, float epsilon, float *out) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i] * x[i];
    const float scale = 1.0f / sqrtf(sum / (float)n + epsilon);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void spec_silu_mul_portable(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void spec_gelu_mul_portable(float *gate, const float *up, int n) {
    const float root_two_over_pi = 0.79788456080286535588f, cubic = 0.044715f;
    for (int i = 0; i < n; i++) {
        const float x = gate[i];
        gate[i] = 0.5f * x * (1.0f + tanhf(root_two_over_pi * x * (1.0f + cubic * x * x))) * up[i];
    }
}

/// One node's attention for the query heads of one KV head, portable arithmetic.
void spec_attend_group_portable(const spec_attention *a, int node, int kv_head, float *scores) {
    const int hd = a->head_dim, group = a->group;
    const int first = a->slot_start[node], visible = a->prefix + a->slot_start[node + 1] - first;
    const float *q = a->queries + (size_t)node * a->q_stride + (size_t)kv_head * group * hd;
    float *out = a->output + (size_t)node * a->out_stride + (size_t)kv_head * group * hd;
    for (int g = 0; g < group; g++) {
        float *s = scores + (size_t)g * visible;
        float maximum = -INFINITY;
        for (int j = 0; j < visible; j++) {
            const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
            const uint16_t *k = a->keys + (size_t)kv_head * a->kv_head_stride + (size_t)slot * a->kv_stride;
            float dot = 0.0f;
            for (int e = 0; e < hd; e++) dot += q[g * hd + e] * spec_half((const uint8_t *)(k + e));
            s[j] = dot * a->scale;
            if (s[j] > maximum) maximum = s[j];
        }
        float total = 0.0f;
        for (int j = 0; j < visible; j++) {
            s[j] = expf(s[j] - maximum);
            total += s[j];
        }
        float *o = out + (size_t)g * hd;
        for (int e = 0; e < hd; e++) o[e] = 0.0f;
        for (int j = 0; j < visible; j++) {
            const int slot = j < a->prefix ? j : a->slots[first + j - a->prefix];
            const uint16_t *v = a->values + (size_t)kv_head * a->kv_head_stride + (size_t)slot * a->kv_stride;
            const float p = s[j] / total;
            for (int e = 0; e < hd; e++) o[e] += p * spec_half((const uint8_t *)(v + e));
        }
    }
}

typedef struct {
    const spec_attention *jobs;
    const int *nodes; // per job
    int count, total_nodes, kv_heads;
    float *scores;
    size_t scores_stride;
    atomic_int next;
} attention_queue;

static void attention_worker(void *context, int index, int threads) {
    (void)threads;
    attention_queue *queue = context;
    float *scores = queue->scores + (size_t)index * queue->scores_stride;
    void (*const attend)(const spec_attention *, int, int, float *) = spec_active_set()->attend_group;
    for (;;) {
        const int item = atomic_fetch_add_explicit(&queue->next, 1, memory_order_relaxed);
        if (item >= queue->total_nodes * queue->kv_heads) return;
        int node = item / queue->kv_heads, job = 0;
        const int kv_head = item % queue->kv_heads;
        while (node >= queue->nodes[job]) node -= queue->nodes[job++];
        attend(&queue->jobs[job], node, kv_head, scores);
    }
}

void spec_attention_run_many(const spec_attention *jobs, const int *nodes, int count, int kv_heads, float *scores,
                             size_t scores_stride) {
    int total = 0;
    for (int j = 0; j < count; j++) total += nodes[j];
    attention_queue queue = {jobs, nodes, count, total, kv_heads, scores, scores_stride, 0};
    atomic_init(&queue.next, 0);
    spec_pool_run(attention_worker, &queue);
}

void spec_attention_run(const spec_attention *attention, int nodes, int kv_heads, float *scores, size_t scores_stride) {
    spec_attention_run_many(attention, &nodes, 1, kv_heads, scores, scores_stride);
}
