// Interleaved weight layouts ("packed types") for the kernel sets whose products read eight
// rows per vector (the VNNI sets; AVX2 for Q5_0 and Q8_0; the Arm int8 sets for the K-quants),
// and their portable reference.
//
// A kernel set may prefer a layout other than the file's (spec_kernel_set.packs). The runtime
// then converts such a matrix once at load (spec_pack_rows) and hands the packed type to the
// products. Every layout here is a lossless rearrangement of the file's blocks — the packed
// bytes can be turned back into the file's (spec_unpack_rows) — so the portable products of a
// packed type unpack each row and run the file type's portable code: the same arithmetic, the
// same results, for every set that has no kernel of its own for the layout.
//
// Every layout keeps groups of eight consecutive rows; a group's blocks follow one another, and
// a group starts at 8 * (packed row bytes) * group, so row r's group is where row r - r % 8
// would be in a plain layout.
//
// SPEC_Q4_K_X8, per 256-value block of eight rows (1184 bytes, 148 per row against 144):
//   [0, 1024)     32 vectors of 32 bytes: vector 8c + k holds bytes 4k..4k+3 of the block's
//                 32-byte chunk c of each row i at bytes 4i..4i+3 (low nibbles: sub-block 2c,
//                 high nibbles: sub-block 2c + 1; values 4k..4k+3 of the sub-block)
//   [1024, 1152)  16 columns of 8 bytes: column j < 8 the 6-bit scale of sub-block j of each
//                 row, column 8 + j its 6-bit min (decoded from the 12 packed bytes)
//   [1152, 1184)  the eight rows' half-precision d, then their dmin
// SPEC_Q6_K_X8, per block of eight rows (1680 bytes, 210 per row, as in the file):
//   [0, 1024)     32 nibble vectors: vector 4p + k holds the low 4 bits of value group
//                 8p + k (low nibble) and 8p + 4 + k (high nibble), a group being values
//                 4g..4g+3 of each row i at bytes 4i..4i+3
//   [1024, 1536)  16 vectors of high bits: vector 2p + h holds, in bits 2k..2k+1, the top two
//                 bits of group 8p + 4h + k
//   [1536, 1664)  16 columns of 8 bytes: the signed scale of sub-block j of each row
//   [1664, 1680)  the eight rows' half-precision d
// SPEC_Q4_0_X8, per 32-value block of eight rows (144 bytes, 18 per row, as in the file):
//   [0, 128)      4 vectors of 32 bytes: vector k holds bytes 4k..4k+3 of each row i's 16
//                 nibble bytes at bytes 4i..4i+3 (low nibbles: values 4k..4k+3, high nibbles:
//                 values 16 + 4k..16 + 4k + 3)
//   [128, 144)    the eight rows' half-precision d
// (Q4_0 is what the requantized drafts use for rows that are not whole 256-value blocks.)
// SPEC_Q5_0_X8, per 32-value block of eight rows (176 bytes, 22 per row, as in the file):
//   [0, 128)      the low four bits as in SPEC_Q4_0_X8
//   [128, 160)    the fifth bits: byte 4i + m holds, in bit k, the fifth bit of row i's value
//                 4k + m and, in bit 4 + k, that of value 16 + 4k + m (k, m = 0..3), so that
//                 one shift and one mask give a whole vector's fifth bits in place
//   [160, 176)    the eight rows' half-precision d
// SPEC_Q8_0_X8, per 32-value block of eight rows (272 bytes, 34 per row, as in the file):
//   [0, 256)      8 vectors of 32 bytes: vector k holds values 4k..4k+3 of each row i (signed
//                 bytes, as stored) at bytes 4i..4i+3
//   [256, 272)    the eight rows' half-precision d
// (Gemma 3's files store their rows of 640 values, not whole 256-value blocks, as Q5_0 and Q8_0.)
#include "internal.h"
#include <math.h>
#include <stdlib.h>

enum {
    Q4_0_BYTES = 18,
    Q5_0_BYTES = 22,
    Q8_0_BYTES = 34,
    Q4_K_BYTES = 144,
    Q6_K_BYTES = 210,
    Q4_0_X8_BLOCK = 144,
    Q5_0_X8_BLOCK = 176,
    Q8_0_X8_BLOCK = 272,
    Q4_K_X8_BLOCK = 1184,
    Q6_K_X8_BLOCK = 1680,
    GROUP = 8
};

/// A packed type's geometry: its file type, values per block, and bytes per block in the file
/// (one row) and packed (eight rows). False for an unknown type.
typedef struct {
    int base, values, file_bytes, packed_bytes;
} packed_geometry;

static int geometry(int packed_type, packed_geometry *g) {
    switch (packed_type) {
    case SPEC_Q4_0_X8: *g = (packed_geometry){SPEC_Q4_0, 32, Q4_0_BYTES, Q4_0_X8_BLOCK}; return 1;
    case SPEC_Q5_0_X8: *g = (packed_geometry){SPEC_Q5_0, 32, Q5_0_BYTES, Q5_0_X8_BLOCK}; return 1;
    case SPEC_Q8_0_X8: *g = (packed_geometry){SPEC_Q8_0, 32, Q8_0_BYTES, Q8_0_X8_BLOCK}; return 1;
    case SPEC_Q4_K_X8: *g = (packed_geometry){SPEC_Q4_K, 256, Q4_K_BYTES, Q4_K_X8_BLOCK}; return 1;
    case SPEC_Q6_K_X8: *g = (packed_geometry){SPEC_Q6_K, 256, Q6_K_BYTES, Q6_K_X8_BLOCK}; return 1;
    default: return 0;
    }
}

int spec_packed_base_type(int packed_type) {
    packed_geometry g;
    return geometry(packed_type, &g) ? g.base : -1;
}

size_t spec_packed_row_bytes(int packed_type, int n) {
    packed_geometry g;
    if (!geometry(packed_type, &g) || n <= 0 || n % g.values) return 0;
    return (size_t)(n / g.values) * (size_t)(g.packed_bytes / GROUP);
}

int spec_packed_type_for(int type, int rows, int n) {
    if (rows <= 0 || rows % GROUP || n <= 0) return -1;
    const int packed_type = spec_active_set()->packs(type);
    return packed_type >= 0 && spec_packed_row_bytes(packed_type, n) > 0 ? packed_type : -1;
}

int spec_packs_none(int type) {
    (void)type;
    return -1;
}

/// Row i of a group's block: the file's block bytes <-> the packed block. `to_packed` chooses
/// the direction; the packed block is cleared by the caller before rows are packed into it.
static void q4_K_row(uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    uint8_t *cols = packed + 1024, *halves = packed + 1152;
    if (to_packed) {
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 8; k++) memcpy(packed + (8 * c + k) * 32 + 4 * i, file_block + 16 + 32 * c + 4 * k, 4);
        for (int j = 0; j < 8; j++) spec_scale_min_k4(file_block + 4, j, &cols[j * 8 + i], &cols[(8 + j) * 8 + i]);
        memcpy(halves + 2 * i, file_block, 2);
        memcpy(halves + 16 + 2 * i, file_block + 2, 2);
        return;
    }
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 8; k++) memcpy(file_block + 16 + 32 * c + 4 * k, packed + (8 * c + k) * 32 + 4 * i, 4);
    uint8_t sc[8], mn[8], *scales = file_block + 4;
    for (int j = 0; j < 8; j++) {
        sc[j] = cols[j * 8 + i];
        mn[j] = cols[(8 + j) * 8 + i];
    }
    // The inverse of spec_scale_min_k4: entries 4-7 keep their low 4 bits in bytes 8-11 and
    // their top 2 bits in bits 6-7 of bytes 0-7.
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    memcpy(file_block, halves + 2 * i, 2);
    memcpy(file_block + 2, halves + 16 + 2 * i, 2);
}

static void q4_0_row(uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    for (int k = 0; k < 4; k++) {
        if (to_packed)
            memcpy(packed + 32 * k + 4 * i, file_block + 2 + 4 * k, 4);
        else
            memcpy(file_block + 2 + 4 * k, packed + 32 * k + 4 * i, 4);
    }
    if (to_packed)
        memcpy(packed + 128 + 2 * i, file_block, 2);
    else
        memcpy(file_block, packed + 128 + 2 * i, 2);
}

static void q5_0_row(uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    uint8_t *fifth = packed + 128;
    if (to_packed) {
        for (int k = 0; k < 4; k++) memcpy(packed + 32 * k + 4 * i, file_block + 6 + 4 * k, 4);
        uint32_t qh;
        memcpy(&qh, file_block + 2, 4);
        for (int k = 0; k < 4; k++)
            for (int m = 0; m < 4; m++)
                fifth[4 * i + m] |=
                    (uint8_t)(((qh >> (4 * k + m)) & 1) << k | ((qh >> (16 + 4 * k + m)) & 1) << (4 + k));
        memcpy(packed + 160 + 2 * i, file_block, 2);
        return;
    }
    for (int k = 0; k < 4; k++) memcpy(file_block + 6 + 4 * k, packed + 32 * k + 4 * i, 4);
    uint32_t qh = 0;
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 4; m++) {
            qh |= (uint32_t)((fifth[4 * i + m] >> k) & 1) << (4 * k + m);
            qh |= (uint32_t)((fifth[4 * i + m] >> (4 + k)) & 1) << (16 + 4 * k + m);
        }
    memcpy(file_block + 2, &qh, 4);
    memcpy(file_block, packed + 160 + 2 * i, 2);
}

static void q8_0_row(uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    for (int k = 0; k < 8; k++) {
        if (to_packed)
            memcpy(packed + 32 * k + 4 * i, file_block + 2 + 4 * k, 4);
        else
            memcpy(file_block + 2 + 4 * k, packed + 32 * k + 4 * i, 4);
    }
    if (to_packed)
        memcpy(packed + 256 + 2 * i, file_block, 2);
    else
        memcpy(file_block, packed + 256 + 2 * i, 2);
}

/// Row i of a block in either direction, by the packed type's file type.
static void convert_row(int base, uint8_t *file_block, uint8_t *packed, int i, int to_packed);

static void q6_K_row(uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    uint8_t *nibbles = packed, *high = packed + 1024, *cols = packed + 1536, *halves = packed + 1664;
    if (to_packed) { // the load-time direction, value by value in two simple passes
        uint8_t lo[256], hi[256];
        for (int chunk = 0; chunk < 2; chunk++) {
            for (int l = 0; l < 64; l++) {
                lo[chunk * 128 + l] = file_block[chunk * 64 + l] & 0x0F;
                lo[chunk * 128 + 64 + l] = file_block[chunk * 64 + l] >> 4;
            }
            for (int l = 0; l < 32; l++)
                for (int s = 0; s < 4; s++)
                    hi[chunk * 128 + 32 * s + l] = (file_block[128 + chunk * 32 + l] >> (2 * s)) & 0x03;
        }
        for (int g = 0; g < 64; g++) {
            const int p = g / 8, h = (g % 8) / 4, k = g % 4;
            for (int byte = 0; byte < 4; byte++) {
                nibbles[(4 * p + k) * 32 + 4 * i + byte] |= (uint8_t)(lo[4 * g + byte] << (4 * h));
                high[(2 * p + h) * 32 + 4 * i + byte] |= (uint8_t)(hi[4 * g + byte] << (2 * k));
            }
        }
        for (int j = 0; j < 16; j++) cols[j * 8 + i] = file_block[192 + j];
        memcpy(halves + 2 * i, file_block + 208, 2);
        return;
    }
    memset(file_block, 0, 192);
    for (int v = 0; v < 256; v++) {
        const int chunk = v / 128, within = v % 128;
        uint8_t *lo_byte = file_block + chunk * 64 + within % 64,
                *hi_byte = file_block + 128 + chunk * 32 + within % 32;
        const int lo_shift = 4 * (within / 64), hi_shift = 2 * (within / 32);
        const int g = v / 4, p = g / 8, h = (g % 8) / 4, k = g % 4, at = 4 * i + v % 4;
        const uint8_t *n_byte = nibbles + (4 * p + k) * 32 + at, *h_byte = high + (2 * p + h) * 32 + at;
        *lo_byte |= (uint8_t)(((*n_byte >> (4 * h)) & 0x0F) << lo_shift);
        *hi_byte |= (uint8_t)(((*h_byte >> (2 * k)) & 0x03) << hi_shift);
    }
    for (int j = 0; j < 16; j++) file_block[192 + j] = cols[j * 8 + i];
    memcpy(file_block + 208, halves + 2 * i, 2);
}

static void convert_row(int base, uint8_t *file_block, uint8_t *packed, int i, int to_packed) {
    if (base == SPEC_Q4_0)
        q4_0_row(file_block, packed, i, to_packed);
    else if (base == SPEC_Q5_0)
        q5_0_row(file_block, packed, i, to_packed);
    else if (base == SPEC_Q8_0)
        q8_0_row(file_block, packed, i, to_packed);
    else if (base == SPEC_Q4_K)
        q4_K_row(file_block, packed, i, to_packed);
    else
        q6_K_row(file_block, packed, i, to_packed);
}

int spec_pack_rows(int packed_type, int n, const void *src, size_t src_row_bytes, int r0, int r1, void *dst) {
    packed_geometry g;
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
    if (!geometry(packed_type, &g) || row_bytes == 0 || r0 < 0 || r0 % GROUP || r1 % GROUP || r1 < r0) return -1;
    if (src_row_bytes < (size_t)(n / g.values) * (size_t)g.file_bytes) return -1;
    uint8_t copy[Q6_K_BYTES];
    for (int r = r0; r < r1; r += GROUP) {
        uint8_t *group = (uint8_t *)dst + (size_t)r * row_bytes;
        memset(group, 0, row_bytes * GROUP);
        for (int b = 0; b < n / g.values; b++)
            for (int i = 0; i < GROUP; i++) {
                memcpy(copy, (const uint8_t *)src + (size_t)(r + i) * src_row_bytes + (size_t)b * g.file_bytes,
                       (size_t)g.file_bytes);
                convert_row(g.base, copy, group + (size_t)b * g.packed_bytes, i, 1);
            }
    }
    return 0;
}

void spec_unpack_row(int packed_type, int n, const void *packed, int r, void *out) {
    packed_geometry g;
    const size_t row_bytes = spec_packed_row_bytes(packed_type, n);
    if (!geometry(packed_type, &g) || row_bytes == 0) return;
    const uint8_t *group = (const uint8_t *)packed + (size_t)(r - r % GROUP) * row_bytes;
    for (int b = 0; b < n / g.values; b++) {
        uint8_t *file_block = (uint8_t *)out + (size_t)b * g.file_bytes;
        // The row functions read the packed block only, in this direction.
        convert_row(g.base, file_block, (uint8_t *)(group + (size_t)b * g.packed_bytes), r % GROUP, 0);
    }
}

void spec_matmul_packed_portable(int packed_type, int n, const void *w, int r0, int r1, const void *act,
                                 size_t act_stride, int T, float *y, size_t y_stride) {
    packed_geometry g;
    const int known = geometry(packed_type, &g);
    const size_t file_row = known ? (size_t)(n / g.values) * (size_t)g.file_bytes : 0;
    uint8_t *row = file_row ? malloc(file_row) : NULL;
    if (!row) { // no memory for one row: NaN results rather than a crash
        for (int t = 0; t < T; t++)
            for (int r = r0; r < r1; r++) y[(size_t)t * y_stride + r] = NAN;
        return;
    }
    for (int r = r0; r < r1; r++) {
        spec_unpack_row(packed_type, n, w, r, row);
        spec_matmul_portable(g.base, n, row, file_row, 0, 1, act, act_stride, T, y + r, y_stride);
    }
    free(row);
}
