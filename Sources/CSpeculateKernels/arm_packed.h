// What the Arm int8 sets (dotprod.c, i8mm.c) share about the packed Q4_K / Q6_K layouts of
// repack.c: the block sizes, which types they pack, and the check's deliberate breakages.
#ifndef SPEC_ARM_PACKED_H
#define SPEC_ARM_PACKED_H

#include "internal.h"

// SPEC_CHECK_MUTANT (kernel check builds only) breaks a kernel on purpose, as in x86_vnni.h:
// 2 = Q4_K sub-blocks given their neighbour's scale, 3 = Q6_K's +32 offset removed as +16.
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 2
#define SCALE_COLUMN(s) ((s) ^ 1)
#else
#define SCALE_COLUMN(s) (s)
#endif
#if defined(SPEC_CHECK_MUTANT) && SPEC_CHECK_MUTANT == 3
#define Q6_OFFSET_SHIFT 4
#else
#define Q6_OFFSET_SHIFT 5
#endif

// Rows per packed group and bytes per packed super-block.
enum { ROWS = 8, Q4_K_X8_BLOCK = 1184, Q6_K_X8_BLOCK = 1680 };

// The packed layout a weight type is read in by these sets, or -1.
static inline int packs(int type) {
    return type == SPEC_Q4_K ? SPEC_Q4_K_X8 : type == SPEC_Q6_K ? SPEC_Q6_K_X8 : -1;
}

#endif
