/*
 * speculate_ffi_proposer.h — any C function that predicts tokens, as a Speculate proposer,
 * called through libffi from a signature given at run time (`ffi:LIBRARY:SYMBOL[:SIGNATURE]`).
 *
 * The adapter is an ordinary plugin table (speculate_plugin.h), so the plugin host runs it out
 * of process exactly like a plugin library, and Speculate can run it in process too. Its options
 * string is the signature in the checked, canonical form Speculate writes after parsing what the
 * user gave, one field per line:
 *
 *     LIBRARY \n SYMBOL \n RETURN \n ARGUMENT \n ARGUMENT ...
 *
 * RETURN is `void`, `count:TYPE` (the function returns the draft length; negative means no
 * draft) or `status:TYPE` (0 means success, the length is written through `draft_length`).
 * Each ARGUMENT is `context` (const int32_t *, every token so far), `context_length:TYPE`,
 * `draft` (int32_t *, where the function writes its tokens), `capacity:TYPE` (how many it may
 * write) or `draft_length:TYPE` (a TYPE * the function writes the length through). TYPE is one
 * of i32, i64, u32, u64. The draft is a chain: each token follows the one before it.
 */
#ifndef SPECULATE_FFI_PROPOSER_H
#define SPECULATE_FFI_PROPOSER_H

#include "speculate_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The adapter's plugin table (name "ffi"). */
const spec_plugin_v1 *spec_ffi_plugin_table(void);

#ifdef __cplusplus
}
#endif

#endif /* SPECULATE_FFI_PROPOSER_H */
