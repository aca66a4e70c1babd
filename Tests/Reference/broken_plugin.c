/* Deliberately broken Speculate plugins for the loader's tests. Compile with -DVARIANT=N:
 * 1 no entry point, 2 entry returns NULL, 3 unknown ABI version, 4 truncated table,
 * 5 null create function, 6 invalid name, 0 a well-formed table whose behaviour the options
 * string picks: mode=refuse|null-instance (create) or
 * mode=good|error|tokens|parents|count|depth|nan|probability|hang|slow (propose: hang blocks for 5 s, far past the
 * tests' limits, as a stuck plugin would (a call that never returned would keep the test process from exiting); slow
 * sleeps 300 ms once and then behaves). */
#include "speculate_plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT 0
#endif

typedef struct {
    char mode[32];
    int32_t vocab;
} broken;

static int32_t create(const spec_host *host, const char *options, void **instance, char *error, size_t capacity) {
    broken *self = calloc(1, sizeof *self);
    self->vocab = host->vocab_size;
    if (strncmp(options, "mode=", 5) == 0) snprintf(self->mode, sizeof self->mode, "%s", options + 5);
    if (strcmp(self->mode, "refuse") == 0) {
        snprintf(error, capacity, "refused on purpose");
        free(self);
        return 7;
    }
    if (strcmp(self->mode, "null-instance") == 0) {
        free(self);
        return SPEC_PLUGIN_OK;
    }
    *instance = self;
    return SPEC_PLUGIN_OK;
}

static int32_t propose(void *instance, const spec_token *context, int32_t length, const spec_budget *budget,
                       spec_draft *draft, char *error, size_t capacity) {
    broken *self = instance;
    const char *mode = self->mode;
    spec_token last = context[length - 1];
    if (strcmp(mode, "error") == 0) {
        snprintf(error, capacity, "failed on purpose");
        return 9;
    }
    if (strcmp(mode, "hang") == 0) sleep(5);
    if (strcmp(mode, "slow") == 0) {
        usleep(300000);
        snprintf(self->mode, sizeof self->mode, "good");
    }
    int32_t n = draft->capacity < 3 ? draft->capacity : 3;
    for (int32_t i = 0; i < n; i++) {
        draft->tokens[i] = last;
        draft->parents[i] = i - 1;
        draft->scores[i] = 1.0f;
    }
    draft->count = n;
    if (strcmp(mode, "tokens") == 0)
        draft->tokens[0] = self->vocab + 5;
    else if (strcmp(mode, "parents") == 0)
        draft->parents[0] = 2;
    else if (strcmp(mode, "count") == 0)
        draft->count = draft->capacity + 10;
    else if (strcmp(mode, "depth") == 0) {
        for (int32_t i = 0; i < draft->capacity; i++) {
            draft->tokens[i] = last;
            draft->parents[i] = i - 1;
            draft->scores[i] = 1;
        }
        draft->count = draft->capacity;
        if (budget->max_depth >= draft->capacity) draft->count = 0; /* cannot exceed; report nothing */
    } else if (strcmp(mode, "nan") == 0)
        draft->scores[0] = NAN;
    else if (strcmp(mode, "probability") == 0)
        draft->probabilities[0] = 2.0f;
    return SPEC_PLUGIN_OK;
}

static void destroy(void *instance) {
    free(instance);
}

static const spec_plugin_v1 table = {
    .abi_version = VARIANT == 3 ? 99u : SPECULATE_PLUGIN_ABI_VERSION,
    .struct_size = VARIANT == 4 ? 8u : (uint32_t)sizeof(spec_plugin_v1),
    .name = VARIANT == 6 ? "has spaces; and more" : "broken",
    .description = "misbehaves on purpose",
    .options_help = "mode=...",
    .create = VARIANT == 5 ? NULL : create,
    .propose = propose,
    .observe = NULL,
    .destroy = destroy,
};

#if VARIANT == 1
__attribute__((visibility("default"))) const spec_plugin_v1 *not_the_entry_point(void) {
    return &table;
}
#else
__attribute__((visibility("default"))) const spec_plugin_v1 *speculate_plugin_entry(void) {
    return VARIANT == 2 ? NULL : &table;
}
#endif
