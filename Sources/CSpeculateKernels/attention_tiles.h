// Tree attention in register tiles, the part every vector set shares: which slots a node sees,
// prefetching, the order of head tiles and slot chunks. Not a header of its own: ops_avx2.c and
// ops_neon.c each define ATTN_TARGET (their target attribute, or nothing), include this, and then
// define the four vector steps declared below in their own instructions. Each output lane sums
// its slots in order, as the portable loop does; only the order inside a score's dot product and
// the softmax's arithmetic differ from it (the kernel check bounds the difference).

/// How many keys ahead the score loop prefetches, how many slots ahead the value loop does, and
/// the slots per value chunk: small enough to stay in L1 while every 16-lane slice and head tile
/// passes over them (64 slots x 2 bytes x head_dim).
enum { KEY_AHEAD = 48, VALUE_AHEAD = 64, VALUE_CHUNK = 64 };

/// Asks for a cache row's lines ahead of use. Out of cache, the score and value loops wait on
/// memory unless told: the value loop reads each row in 16-lane slices, which the hardware
/// prefetchers do not follow.
static inline void prefetch_row(const uint16_t *row, int hd) {
    for (int b = 0; b < hd * 2; b += 64) __builtin_prefetch((const char *)row + b);
}

/// The cache slot of visible position j of a node whose pending slots start at `first`.
static inline int visible_slot(const spec_attention *a, int first, int j) {
    return j < a->prefix ? j : a->slots[first + j - a->prefix];
}

/// The key row of visible position j.
static inline const uint16_t *key_row(const spec_attention *a, int first, size_t kv_offset, int j) {
    return a->keys + (size_t)visible_slot(a, first, j) * a->kv_stride + kv_offset;
}

/// The value row of visible position j.
static inline const uint16_t *value_row(const spec_attention *a, int first, size_t kv_offset, int j) {
    return a->values + (size_t)visible_slot(a, first, j) * a->kv_stride + kv_offset;
}

/// Called by value_tile for each slot of its first lane slice: the row VALUE_AHEAD slots on.
static inline void prefetch_value_ahead(const spec_attention *a, int first, size_t kv_offset, int j, int visible) {
    if (j + VALUE_AHEAD < visible) prefetch_row(value_row(a, first, kv_offset, j + VALUE_AHEAD), a->head_dim);
}

/// Scores of H query heads (at q, head_dim apart) against the K keys k[0..K) (H * K <= 12),
/// scaled, into scores[h * visible + j + c]. Called with constant H and K.
ATTN_TARGET static inline __attribute__((always_inline)) void score_tile(const float *q, int hd, int H, int K,
                                                                         const uint16_t *const *k, float scale,
                                                                         float *scores, size_t visible, int j);
/// Adds the weighted values of slots [j0, j1) to output lanes [e, e + 16) of H heads (H <= 6).
ATTN_TARGET static inline __attribute__((always_inline)) void value_tile(const spec_attention *a, int first,
                                                                         size_t kv_offset, int H, const float *scores,
                                                                         size_t visible, int j0, int j1, int e,
                                                                         float *out);
/// The same for the last 8 lanes [e, e + 8) of a head size that is not a multiple of 16, all
/// `group` heads.
ATTN_TARGET static void value_tail(const spec_attention *a, int first, size_t kv_offset, int group, const float *scores,
                                   size_t visible, int j0, int j1, int e, float *out);
/// Turns a head's scores s[0..visible) into softmax weights.
ATTN_TARGET static void softmax_row(float *s, int visible);

/// Scores of heads [h0, h0 + H) of the group for every visible slot: K keys at a time, then
/// one at a time for the rest. H and K are constants at each call site.
#define SCORE_HEADS(H, K)                                                                                              \
    do {                                                                                                               \
        const float *qh = q + (size_t)h0 * hd;                                                                         \
        float *sh = scores + (size_t)h0 * visible;                                                                     \
        int j = 0;                                                                                                     \
        for (; j + (K) <= visible; j += (K)) {                                                                         \
            const uint16_t *k[4];                                                                                      \
            for (int c = 0; c < (K); c++) k[c] = key_row(a, first, kv_offset, j + c);                                  \
            if (j + (K) + KEY_AHEAD <= visible)                                                                        \
                for (int c = 0; c < (K); c++) prefetch_row(key_row(a, first, kv_offset, j + KEY_AHEAD + c), hd);       \
            score_tile(qh, hd, (H), (K), k, a->scale, sh, (size_t)visible, j);                                         \
        }                                                                                                              \
        for (; j < visible; j++) {                                                                                     \
            const uint16_t *k[1] = {key_row(a, first, kv_offset, j)};                                                  \
            score_tile(qh, hd, (H), 1, k, a->scale, sh, (size_t)visible, j);                                           \
        }                                                                                                              \
    } while (0)

/// One node's attention for the `group` query heads that share KV head `kv_head` (head_dim a
/// multiple of 8): scores in tiles of up to six heads (two keys at a time) or up to three (four
/// keys), the softmax per head, then the weighted values per slot chunk and 16-lane slice in
/// tiles of up to six heads.
ATTN_TARGET static void attend_tiled(const spec_attention *a, int node, int kv_head, float *scores) {
    const int hd = a->head_dim, group = a->group;
    const int first = a->slot_start[node], visible = a->prefix + a->slot_start[node + 1] - first;
    const float *q = a->queries + (size_t)node * a->q_stride + (size_t)kv_head * group * hd;
    float *out = a->output + (size_t)node * a->out_stride + (size_t)kv_head * group * hd;
    const size_t kv_offset = (size_t)kv_head * a->kv_head_stride;
    for (int h0 = 0; h0 < group;) {
        const int left = group - h0;
        switch (left >= 6 ? 6 : left) {
        case 6:
            SCORE_HEADS(6, 2);
            h0 += 6;
            break;
        case 5:
            SCORE_HEADS(5, 2);
            h0 += 5;
            break;
        case 4:
            SCORE_HEADS(4, 2);
            h0 += 4;
            break;
        case 3:
            SCORE_HEADS(3, 4);
            h0 += 3;
            break;
        case 2:
            SCORE_HEADS(2, 4);
            h0 += 2;
            break;
        default:
            SCORE_HEADS(1, 4);
            h0 += 1;
            break;
        }
    }
    for (int g = 0; g < group; g++) softmax_row(scores + (size_t)g * visible, visible);
    for (int g = 0; g < group; g++) memset(out + (size_t)g * hd, 0, sizeof(float) * (size_t)hd);
    for (int j0 = 0; j0 < visible; j0 += VALUE_CHUNK) {
        const int j1 = visible - j0 < VALUE_CHUNK ? visible : j0 + VALUE_CHUNK;
        for (int e = 0; e < hd; e += 16) {
            if (e + 16 > hd) {
                value_tail(a, first, kv_offset, group, scores, (size_t)visible, j0, j1, e, out);
                continue;
            }
            for (int h0 = 0; h0 < group;) {
                const int left = group - h0;
                const float *sh = scores + (size_t)h0 * visible;
                float *oh = out + (size_t)h0 * hd;
                switch (left >= 6 ? 6 : left) {
                case 6:
                    value_tile(a, first, kv_offset, 6, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 6;
                    break;
                case 5:
                    value_tile(a, first, kv_offset, 5, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 5;
                    break;
                case 4:
                    value_tile(a, first, kv_offset, 4, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 4;
                    break;
                case 3:
                    value_tile(a, first, kv_offset, 3, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 3;
                    break;
                case 2:
                    value_tile(a, first, kv_offset, 2, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 2;
                    break;
                default:
                    value_tile(a, first, kv_offset, 1, sh, (size_t)visible, j0, j1, e, oh);
                    h0 += 1;
                    break;
                }
            }
        }
    }
}
#undef SCORE_HEADS
