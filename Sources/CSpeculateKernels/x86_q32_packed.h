// The packed 32-value block types of repack.c (SPEC_Q4_0_X8, SPEC_Q5_0_X8, SPEC_Q8_0_X8) against
// Q8_32 activations, eight rows per vector. Not a header of its own: x86_vnni.h and avx2.c
// include it after x86_common.h, defining
//   Q32_DOT(acc, u, s)   acc + four u8 x s8 products per int32 lane (vpdpbusd, or maddubs +
//                        madd, whose 16-bit pair sums must then stay below 2^15)
//   Q32_Q8_UNSIGNED      1: Q8_0's weights are read as q + 128 against x (no pair limit);
//                        0: as |q| against x with q's sign (pairs at most 2 * 128 * 127)
//   Q32_Q4_0_OFFSET      8 (the kernel check's mutants change it), or leave Q4_0_X8 out
//                        when undefined (a set that does not pack Q4_0)
//   Q32_TOKENS           tokens per pass over a group (their sums stay in registers: 8 where
//                        there are 32 vector registers, 4 where there are 16)
//
// Per block the exact integer total of each row and token, sumi = q . x - offset * sum(x), then
// the portable float steps acc += (d * dx) * sumi in block order: the portable results bit for
// bit, whatever the batch size, in every set that includes this file.
enum { Q32_ROWS = 8, Q4_0_X8_BYTES = 144, Q5_0_X8_BYTES = 176, Q8_0_X8_BYTES = 272 };
/// Packed weights are requested 4 KiB ahead into L2, as the VNNI sets' other packed types are.
#ifndef Q32_PREFETCH_BYTES
#define Q32_PREFETCH_BYTES 4096
#endif

/// The four activation bytes at x, broadcast.
X86_TARGET static inline __m256i q32_broadcast4(const void *x) {
    int32_t v;
    memcpy(&v, x, 4);
    return _mm256_set1_epi32(v);
}

/// The unsigned weights of vector k of a packed block: values 4k..4k+3 of each row in w0 and,
/// for the 4- and 5-bit types, values 16 + 4k..16 + 4k + 3 in w1. The stored values are q + 8
/// (Q4_0) and q + 16 (Q5_0); Q8_0's are signed (see Q32_Q8_UNSIGNED for how they are read).
X86_TARGET static inline __attribute__((always_inline)) void q32_x8_weights(const int TYPE, const uint8_t *blk, int k,
                                                                            __m256i *w0, __m256i *w1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i packed = _mm256_loadu_si256((const __m256i *)(blk + 32 * k));
    if (TYPE == SPEC_Q8_0) {
        *w1 = packed; // the signs, for Q32_Q8_UNSIGNED 0
        *w0 = Q32_Q8_UNSIGNED ? _mm256_xor_si256(packed, _mm256_set1_epi8((char)0x80)) : _mm256_abs_epi8(packed);
        return;
    }
    *w0 = _mm256_and_si256(packed, low4);
    *w1 = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
    if (TYPE == SPEC_Q5_0) {
        // Bit k of each fifth-bit byte to bit 4 (for w0), bit 4 + k to bit 4 (for w1); a 16-bit
        // shift by at most 4 moves bits across bytes only outside the mask.
        const __m256i fifth = _mm256_loadu_si256((const __m256i *)(blk + 128)), bit4 = _mm256_set1_epi8(0x10);
        const __m256i up = k == 0   ? _mm256_slli_epi16(fifth, 4)
                           : k == 1 ? _mm256_slli_epi16(fifth, 3)
                           : k == 2 ? _mm256_slli_epi16(fifth, 2)
                                    : _mm256_slli_epi16(fifth, 1);
        const __m256i down = k == 0   ? fifth
                             : k == 1 ? _mm256_srli_epi16(fifth, 1)
                             : k == 2 ? _mm256_srli_epi16(fifth, 2)
                                      : _mm256_srli_epi16(fifth, 3);
        *w0 = _mm256_or_si256(*w0, _mm256_and_si256(up, bit4));
        *w1 = _mm256_or_si256(*w1, _mm256_and_si256(down, bit4));
    }
}

/// A whole group of eight packed rows against TOKENS tokens: out[t] = the eight rows' results.
/// A block's weight vectors run as two chains per token; blocks are independent chains, so
/// out-of-order execution overlaps them when one token alone would wait on latency.
X86_TARGET static inline __attribute__((always_inline)) void q32_group(const int TYPE, const int TOKENS, int nb,
                                                                       const uint8_t *group, const spec_act_view *a,
                                                                       float (*out)[Q32_ROWS]) {
    const int bytes = TYPE == SPEC_Q8_0 ? Q8_0_X8_BYTES : TYPE == SPEC_Q5_0 ? Q5_0_X8_BYTES : Q4_0_X8_BYTES;
#ifdef Q32_Q4_0_OFFSET
    const int q4_0_offset = Q32_Q4_0_OFFSET;
#else
    const int q4_0_offset = 8;
#endif
    const int offset = TYPE == SPEC_Q8_0 ? (Q32_Q8_UNSIGNED ? 128 : 0) : TYPE == SPEC_Q5_0 ? 16 : q4_0_offset;
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[Q32_TOKENS];
    for (int t = 0; t < TOKENS; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = group + (size_t)b * bytes;
        for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)blk + Q32_PREFETCH_BYTES + o, _MM_HINT_T1);
        __m256i s0[Q32_TOKENS], s1[Q32_TOKENS];
        for (int t = 0; t < TOKENS; t++) s0[t] = s1[t] = zero;
        if (TYPE == SPEC_Q8_0) {
            for (int k = 0; k < 8; k++) {
                __m256i w, sign;
                q32_x8_weights(TYPE, blk, k, &w, &sign);
                for (int t = 0; t < TOKENS; t++) {
                    __m256i x = q32_broadcast4(a[t].q + 32 * b + 4 * k);
                    if (!Q32_Q8_UNSIGNED) x = _mm256_sign_epi8(x, sign);
                    if (k % 2)
                        s1[t] = Q32_DOT(s1[t], w, x);
                    else
                        s0[t] = Q32_DOT(s0[t], w, x);
                }
            }
        } else {
            for (int k = 0; k < 4; k++) {
                __m256i w0, w1;
                q32_x8_weights(TYPE, blk, k, &w0, &w1);
                for (int t = 0; t < TOKENS; t++) {
                    const int8_t *x = a[t].q + 32 * b + 4 * k;
                    s0[t] = Q32_DOT(s0[t], w0, q32_broadcast4(x));
                    s1[t] = Q32_DOT(s1[t], w1, q32_broadcast4(x + 16));
                }
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + bytes - 16)));
        for (int t = 0; t < TOKENS; t++) {
            __m256i sumi = _mm256_add_epi32(s0[t], s1[t]);
            if (offset) sumi = _mm256_sub_epi32(sumi, _mm256_set1_epi32(offset * a[t].s[b]));
            acc[t] = _mm256_add_ps(
                acc[t], _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[t].d[b])), _mm256_cvtepi32_ps(sumi)));
        }
    }
    for (int t = 0; t < TOKENS; t++) _mm256_storeu_ps(out[t], acc[t]);
}

typedef void (*q32_group_fn)(int nb, const uint8_t *group, const spec_act_view *a, float (*out)[Q32_ROWS]);
#define Q32_GROUP(NAME, TYPE, TOKENS)                                                                                  \
    X86_TARGET static void NAME(int nb, const uint8_t *group, const spec_act_view *a, float(*out)[Q32_ROWS]) {         \
        q32_group(TYPE, TOKENS, nb, group, a, out);                                                                    \
    }
#if Q32_TOKENS == 8
#define Q32_GROUPS(PREFIX, TYPE)                                                                                       \
    Q32_GROUP(PREFIX##_1, TYPE, 1)                                                                                     \
    Q32_GROUP(PREFIX##_2, TYPE, 2)                                                                                     \
    Q32_GROUP(PREFIX##_3, TYPE, 3)                                                                                     \
    Q32_GROUP(PREFIX##_4, TYPE, 4)                                                                                     \
    Q32_GROUP(PREFIX##_5, TYPE, 5)                                                                                     \
    Q32_GROUP(PREFIX##_6, TYPE, 6)                                                                                     \
    Q32_GROUP(PREFIX##_7, TYPE, 7)                                                                                     \
    Q32_GROUP(PREFIX##_8, TYPE, 8)                                                                                     \
    static const q32_group_fn PREFIX##_by_tokens[8] = {PREFIX##_1, PREFIX##_2, PREFIX##_3, PREFIX##_4,                 \
                                                       PREFIX##_5, PREFIX##_6, PREFIX##_7, PREFIX##_8};
#elif Q32_TOKENS == 4
#define Q32_GROUPS(PREFIX, TYPE)                                                                                       \
    Q32_GROUP(PREFIX##_1, TYPE, 1)                                                                                     \
    Q32_GROUP(PREFIX##_2, TYPE, 2)                                                                                     \
    Q32_GROUP(PREFIX##_3, TYPE, 3)                                                                                     \
    Q32_GROUP(PREFIX##_4, TYPE, 4)                                                                                     \
    static const q32_group_fn PREFIX##_by_tokens[4] = {PREFIX##_1, PREFIX##_2, PREFIX##_3, PREFIX##_4};
#else
#error "Q32_TOKENS must be 4 or 8"
#endif
#ifdef Q32_Q4_0_OFFSET
Q32_GROUPS(q4_0_x8, SPEC_Q4_0)
#endif
Q32_GROUPS(q5_0_x8, SPEC_Q5_0)
Q32_GROUPS(q8_0_x8, SPEC_Q8_0)
#undef Q32_GROUPS
#undef Q32_GROUP

/// Rows r0..r1 of a packed Q4_0/Q5_0/Q8_0 matrix (any bounds: a group cut by them is computed
/// whole and only its rows inside are stored) for T tokens, in passes of up to eight tokens.
static void q32_packed_product(int packed_type, int n, const uint8_t *w, int r0, int r1, const uint8_t *act,
                               size_t act_stride, int T, float *y, size_t y_stride) {
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
#ifdef Q32_Q4_0_OFFSET
    const q32_group_fn *by_tokens = packed_type == SPEC_Q4_0_X8   ? q4_0_x8_by_tokens
                                    : packed_type == SPEC_Q5_0_X8 ? q5_0_x8_by_tokens
                                                                  : q8_0_x8_by_tokens;
#else
    const q32_group_fn *by_tokens = packed_type == SPEC_Q5_0_X8 ? q5_0_x8_by_tokens : q8_0_x8_by_tokens;
#endif
    spec_act_view a[Q32_TOKENS];
    float out[Q32_TOKENS][Q32_ROWS];
    for (int g = r0 - r0 % Q32_ROWS; g < r1; g += Q32_ROWS) {
        const int lo = g > r0 ? g : r0, hi = g + Q32_ROWS < r1 ? g + Q32_ROWS : r1;
        for (int t0 = 0; t0 < T; t0 += Q32_TOKENS) {
            const int count = T - t0 < Q32_TOKENS ? T - t0 : Q32_TOKENS;
            for (int t = 0; t < count; t++) a[t] = spec_act_at(SPEC_ACT_Q8_32, n, act + (size_t)(t0 + t) * act_stride);
            by_tokens[count - 1](n / 32, w + (size_t)g * row_bytes, a, out);
            for (int t = 0; t < count; t++)
                memcpy(y + (size_t)(t0 + t) * y_stride + lo, &out[t][lo - g], sizeof(float) * (size_t)(hi - lo));
        }
    }
}
