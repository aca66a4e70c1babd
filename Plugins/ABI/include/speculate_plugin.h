/*
 * speculate_plugin.h — the C ABI of Speculate proposer plugins, version 1.
 *
 * A plugin is a shared library that exports one function:
 *
 *     const spec_plugin_v1 *speculate_plugin_entry(void);
 *
 * returning a pointer to a table that lives as long as the library stays loaded. The host
 * (`speculate run --proposer plugin:PATH[:OPTIONS]`, or `PluginLibrary` in Swift) checks
 * `abi_version` and `struct_size` before touching anything else, then calls `create` once per
 * decoder, `propose` once per decoding step, `observe` after every step, and `destroy` at the end.
 * Calls on one instance never overlap; different instances may be used from different threads.
 *
 * Token trees. `propose` fills one tree of at most `out->capacity` nodes in the caller's arrays:
 * node i continues the context when `parents[i] == -1`, otherwise it follows node `parents[i]`,
 * which must be an earlier node (`parents[i] < i`). Several nodes with the same parent are
 * alternative branches. The host checks every value: token ids outside [0, vocab_size),
 * parents that do not point backwards, a count above the capacity, trees deeper than
 * `budget->max_depth`, non-finite scores or probabilities outside [0, 1] make it skip the whole
 * draft and report the problem; the generated text is unaffected either way (drafts are only
 * guesses that the target verifies).
 *
 * Verification treats plugin drafts as fixed guesses, which keeps stochastic decoding lossless
 * whatever the plugin proposes; `probabilities` (the plugin's own estimate that a node's token is
 * right, given its parent) only rank nodes when the tree budget is tight and inform the `auto`
 * strategy.
 *
 * Errors. Functions that can fail return SPEC_PLUGIN_OK (0) or a nonzero code, and may write a
 * NUL-terminated UTF-8 message of at most `error_capacity` bytes (including the NUL) into
 * `error`. A failing `create` is reported to the user; a failing `propose` skips that step's draft.
 *
 * Versioning. A new ABI version adds a new table type (spec_plugin_v2, ...) whose first two
 * fields stay `abi_version` and `struct_size`; hosts refuse versions they do not know.
 */
#ifndef SPECULATE_PLUGIN_H
#define SPECULATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. */
#define SPECULATE_PLUGIN_ABI_VERSION 1u

/** The name of the one symbol a plugin exports. */
#define SPECULATE_PLUGIN_ENTRY_SYMBOL "speculate_plugin_entry"

/** Success. Any other return value of a plugin function is an error code. */
#define SPEC_PLUGIN_OK 0

/** A token id of the target model's vocabulary. */
typedef int32_t spec_token;

/** What the host offers a plugin instance: the vocabulary and the target's tokenizer. */
typedef struct spec_host {
    /** sizeof(spec_host) as the host compiled it. */
    uint32_t struct_size;
    /** Token ids are in [0, vocab_size). */
    int32_t vocab_size;
    /** Passed back unchanged to the callbacks below. */
    void *context;
    /**
     * Tokenizes `length` bytes of UTF-8 text (special-token text is not parsed). Writes up to
     * `capacity` ids to `out` and returns how many the text has (call again with a larger buffer
     * when that exceeds `capacity`), or -1 on invalid arguments. Valid only during `create`.
     */
    int32_t (*tokenize)(void *context, const char *utf8, size_t length, spec_token *out, int32_t capacity);
    /**
     * Writes the UTF-8 bytes of one token (not NUL-terminated) to `out` and returns their count
     * (call again with a larger buffer when that exceeds `capacity`), or -1 for an id outside the
     * vocabulary. Valid only during `create`.
     */
    int32_t (*token_text)(void *context, spec_token token, char *out, int32_t capacity);
} spec_host;

/** How large a tree `propose` may return this step. */
typedef struct spec_budget {
    /** Most nodes (equals `spec_draft.capacity`). */
    int32_t max_nodes;
    /** Most nodes on one root-to-leaf path. */
    int32_t max_depth;
    /** Tokens that still fit in the target's context after the newest one. */
    int32_t remaining_context;
} spec_budget;

/** The caller-owned arrays a plugin fills with its tree. */
typedef struct spec_draft {
    /** Length of each array below. */
    int32_t capacity;
    /** Out: nodes written (0 = no draft this step). */
    int32_t count;
    /** Out: the token of each node. */
    spec_token *tokens;
    /** Out: the parent of each node (-1 or an earlier index). */
    int32_t *parents;
    /** Out: a ranking score per node, higher is better (for example a path probability). */
    float *scores;
    /** Out, optional: the plugin's probability in [0, 1] that the node is right given its
     *  parent; leave the host's prefilled NaN to say "unknown". */
    float *probabilities;
} spec_draft;

/** The table a plugin's entry point returns (ABI version 1). */
typedef struct spec_plugin_v1 {
    /** Must be SPECULATE_PLUGIN_ABI_VERSION (1). */
    uint32_t abi_version;
    /** sizeof(spec_plugin_v1) as the plugin compiled it. */
    uint32_t struct_size;
    /** Short name, [a-z0-9-], shown in statistics. */
    const char *name;
    /** One sentence on what the plugin proposes. */
    const char *description;
    /** How to write the options string, for `speculate proposers --plugin PATH`. */
    const char *options_help;

    /**
     * Makes an instance from an options string (never NULL; "" means defaults). On success stores
     * a non-NULL handle in `*instance` and returns SPEC_PLUGIN_OK.
     */
    int32_t (*create)(const spec_host *host, const char *options, void **instance, char *error, size_t error_capacity);

    /**
     * Proposes continuations of `context` (every token so far: prompt and output, newest last).
     * `draft->count` is 0 on entry.
     */
    int32_t (*propose)(void *instance, const spec_token *context, int32_t context_length, const spec_budget *budget,
                       spec_draft *draft, char *error, size_t error_capacity);

    /** Tells the instance the tokens appended this step (accepted drafts plus the target's own
     *  token) and the whole context after them. Optional (may be NULL). */
    void (*observe)(void *instance, const spec_token *accepted, int32_t accepted_count, const spec_token *context,
                    int32_t context_length);

    /** Frees the instance. */
    void (*destroy)(void *instance);
} spec_plugin_v1;

/** The signature of the entry point. */
typedef const spec_plugin_v1 *(*spec_plugin_entry_fn)(void);

/** The ABI version of the header the host was built with (for Swift, which cannot see macros
 *  with casts, and for sanity checks). */
uint32_t spec_plugin_header_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SPECULATE_PLUGIN_H */
