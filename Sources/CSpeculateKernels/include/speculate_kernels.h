// Speculate's hot CPU kernels: activation quantization, quantized matrix x activations
// products, float vector helpers and a small thread pool.
//
// Every kernel has a portable C version and, where it pays, versions for SIMD instruction sets
// (kernel sets: avx512vnni, avxvnni, avx2, neon), one chosen at run time from CPU detection or
// the SPECULATE_KERNELS environment variable. Within one process the choice is fixed, and every output value is
// computed by one code path in one order whatever the batch size or thread count: that is what
// makes a token's logits identical whether it is evaluated alone or inside a token tree.
#ifndef SPECULATE_KERNELS_H
#define SPECULATE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// GGML tensor type ids understood by the kernels.
enum spec_type {
    SPEC_F32 = 0,
    SPEC_F16 = 1,
    SPEC_Q4_0 = 2,
    SPEC_Q4_1 = 3,
    SPEC_Q5_0 = 6,
    SPEC_Q5_1 = 7,
    SPEC_Q8_0 = 8,
    SPEC_Q2_K = 10,
    SPEC_Q3_K = 11,
    SPEC_Q4_K = 12,
    SPEC_Q5_K = 13,
    SPEC_Q6_K = 14,
    SPEC_BF16 = 30,
};

/// Weight layouts of eight interleaved rows that some kernel sets read faster than the file's
/// (see repack.c). Not GGML ids: a matrix gets one only through spec_pack_rows.
enum spec_packed_type {
    SPEC_Q4_0_X8 = 1002,
    SPEC_Q5_0_X8 = 1006,
    SPEC_Q8_0_X8 = 1008,
    SPEC_Q4_K_X8 = 1012,
    SPEC_Q6_K_X8 = 1014
};

/// The packed layout the active kernel set prefers for a `rows` x `n` matrix of `type`, or -1
/// to keep the file's layout (the set has none, or rows is not a multiple of 8).
int spec_packed_type_for(int type, int rows, int n);
/// The file type a packed type rearranges, or -1.
int spec_packed_base_type(int packed_type);
/// Bytes per row of a packed matrix (a group of 8 rows spans 8 times this), 0 if invalid.
size_t spec_packed_row_bytes(int packed_type, int n);
/// Packs rows r0..r1 (multiples of 8) of the file-layout matrix `src` into `dst`, which holds
/// the packed matrix from row 0 (rows r0.. start at dst + r0 * spec_packed_row_bytes).
/// Returns 0, or -1 for invalid arguments.
int spec_pack_rows(int packed_type, int n, const void *src, size_t src_row_bytes, int r0, int r1, void *dst);
/// Writes row r of a packed matrix back in the file's layout (its base type's blocks) to `out`.
void spec_unpack_row(int packed_type, int n, const void *packed, int r, void *out);

/// Quantizes `n` floats (a multiple of 256) into n / 256 Q4_K blocks of 144 bytes at `out`
/// (non-finite values count as 0). For requantizing draft models at load.
void spec_quantize_q4_K(const float *x, int n, void *out);
/// Quantizes `n` floats (a multiple of 32) into n / 32 Q4_0 blocks of 18 bytes at `out`
/// (non-finite values count as 0). For rows whose length is not a multiple of 256.
void spec_quantize_q4_0(const float *x, int n, void *out);

/// Activation formats: 8-bit values with one float scale per 32 values (for the 32-element
/// weight types) or per 256 values (for the K-quants), plus integer sums of the 8-bit values.
enum spec_act_format { SPEC_ACT_Q8_32 = 0, SPEC_ACT_Q8_256 = 1, SPEC_ACT_F32 = 2 };

/// Results of spec_kernels_select.
enum spec_kernels_status { SPEC_KERNELS_OK = 0, SPEC_KERNELS_UNKNOWN = -1, SPEC_KERNELS_UNSUPPORTED = -2 };
/// Chooses the kernel set by name ("portable", "avx2", "avxvnni", "avx512vnni", "neon"); NULL or
/// "" chooses the best set this CPU supports. Refuses (and changes nothing) when the name is
/// unknown or the CPU lacks the instructions. Call while no kernel work is running.
int spec_kernels_select(const char *name);
/// spec_kernels_select with the SPECULATE_KERNELS environment variable (unset: the best set).
int spec_kernels_select_from_environment(void);
/// The kernel sets this build knows, best first, and whether this CPU runs each.
int spec_kernel_set_count(void);
const char *spec_kernel_set_name(int index);
int spec_kernel_set_supported(int index);
/// Forces the portable kernels (1) or goes back to the best supported set (0).
void spec_kernels_force_portable(int portable);
/// The name of the kernel set in use.
const char *spec_kernels_name(void);
/// Bumped whenever a kernel's speed characteristics change, so measurements cached on disk
/// (the verification cost curve) are taken again.
int spec_kernels_revision(void);

/// The activation format a weight type's kernel reads; -1 if the type has no kernel.
int spec_act_format_for(int type);
/// Bytes one row of `n` activations takes in `format`.
size_t spec_act_row_bytes(int format, int n);
/// Quantizes `n` floats (a whole number of blocks of the format) into `out`.
void spec_quantize_act(int format, const float *x, int n, void *out);

/// y[t * y_stride + r] = dot(row r of W, activation row t) for r in [r0, r1) and t in [0, T).
/// W has rows of `n` elements of `type`, `row_bytes` apart; activation rows are `act_stride`
/// bytes apart, in the format spec_act_format_for(type) gives.
void spec_matmul(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act, size_t act_stride,
                 int T, float *y, size_t y_stride);

/// The same product computed by the portable kernels (for checking the SIMD ones).
void spec_matmul_portable(int type, int n, const void *w, size_t row_bytes, int r0, int r1, const void *act,
                          size_t act_stride, int T, float *y, size_t y_stride);

/// spec_matmul with the named kernel set, whichever set is in use (for tests and comparisons);
/// returns a spec_kernels_status, computing nothing unless SPEC_KERNELS_OK.
int spec_matmul_with_set(const char *name, int type, int n, const void *w, size_t row_bytes, int r0, int r1,
                         const void *act, size_t act_stride, int T, float *y, size_t y_stride);

/// One matrix product of a batch: all rows of W times the same activations.
typedef struct spec_matmul_job {
    int type;          ///< weight type
    int n;             ///< columns (elements per row)
    const void *w;     ///< first row
    size_t row_bytes;  ///< bytes between rows
    int rows;          ///< rows to compute
    const void *act;   ///< activation rows, in spec_act_format_for(type)
    size_t act_stride; ///< bytes between activation rows
    float *y;          ///< output: y[t * y_stride + r]
    size_t y_stride;   ///< floats between output rows
} spec_matmul_job;

/// Computes every job for `T` activation rows on the thread pool. Threads take chunks of whole
/// rows (about 128 KiB of weights for up to four tokens, 32 rows for more) from a shared counter, so a
/// thread that is slowed down (a busy machine, a sibling hyperthread) does less of the work
/// instead of holding everyone up; a row's result does not depend on which thread computes it.
void spec_matmul_jobs(const spec_matmul_job *jobs, int count, int T);

/// Converts `n` floats to IEEE half precision, rounding to nearest even (the KV cache format).
void spec_f32_to_f16(const float *x, int n, uint16_t *out);
/// Converts `n` IEEE half-precision values to floats (exact).
void spec_f16_to_f32(const uint16_t *x, int n, float *out);

/// out = x / rms(x) * weight over `n` values (epsilon added to the mean square).
void spec_rms_norm(const float *x, const float *weight, int n, float epsilon, float *out);
/// gate[i] = silu(gate[i]) * up[i]: the SwiGLU feed-forward's gate.
void spec_silu_mul(float *gate, const float *up, int n);
/// gate[i] = gelu(gate[i]) * up[i], GELU in its tanh form: the GeGLU feed-forward's gate (Gemma).
void spec_gelu_mul(float *gate, const float *up, int n);

/// Tree attention over one layer's KV cache for a batch of nodes. Node i sees the `prefix`
/// committed slots and then its pending slots (itself and its ancestors, root first).
typedef struct spec_attention {
    const float *queries; ///< node i's query heads at queries + i * q_stride, head h at h * head_dim
    size_t q_stride;      ///< floats between nodes' queries
    const uint16_t
        *keys; ///< the layer's keys (half precision): KV head h's slot s at keys + h * kv_head_stride + s * kv_stride
    const uint16_t *values;    ///< the layer's values (half precision), laid out like the keys
    size_t kv_stride;          ///< values between slots
    size_t kv_head_stride;     ///< values between KV heads (head_dim when a slot's heads are adjacent)
    int head_dim;              ///< values per head
    int group;                 ///< query heads per KV head (query head h uses KV head h / group)
    int prefix;                ///< committed slots every node sees
    const int32_t *slots;      ///< every node's pending slots, concatenated
    const int32_t *slot_start; ///< node i's pending slots are slots[slot_start[i] ..< slot_start[i + 1]]
    float scale;               ///< score scale (1 / sqrt(head_dim))
    float *output;             ///< node i's output heads at output + i * out_stride
    size_t out_stride;         ///< floats between nodes' outputs
} spec_attention;

/// Runs the attention of `nodes` nodes over `kv_heads` KV heads on the thread pool. `scores`
/// holds scores_stride floats per pool thread (at least group * visible slots).
void spec_attention_run(const spec_attention *attention, int nodes, int kv_heads, float *scores, size_t scores_stride);

/// The same for `count` attentions at once (several sequences' caches in one forward), job j
/// with nodes[j] nodes: one pass of the pool for all, each (node, KV head) computed as alone.
void spec_attention_run_many(const spec_attention *jobs, const int *nodes, int count, int kv_heads, float *scores,
                             size_t scores_stride);

/// Runs fn(ctx, i, n) for i in [0, n) on the pool's threads (the caller takes part) and
/// returns when all are done. n is normally the thread count.
typedef void (*spec_task_fn)(void *ctx, int index, int count);
/// Sets the number of threads (1 = run on the caller only). Call while no work is running.
void spec_pool_set_threads(int threads);
/// The number of threads in use.
int spec_pool_threads(void);
/// Runs fn on every thread of the pool, each with its index.
void spec_pool_run(spec_task_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
