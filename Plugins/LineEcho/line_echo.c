/*
 * line-echo: a Speculate proposer plugin written in C.
 *
 * Code repeats the structure of nearby lines (`self.a = a` / `self.b = b`, parallel `case`
 * arms, argument lists, table rows). This plugin anchors on line starts: it takes the tokens of
 * the current line so far and finds earlier lines, most recent first, that began with the same
 * tokens after the same indentation; what those lines continued with, up to and including
 * their newline, becomes the draft. Distinct continuations become separate branches.
 *
 * Options (comma- or space-separated key=value): lines=N (earlier lines searched, default 256),
 * branches=N (default 2), min-match=N (tokens of the current line that must match, default 1),
 * max=N (tokens per branch, default 12).
 */
#include "speculate_plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t vocab_size;
    unsigned char *ends_line; /* 1 if the token's text contains '\n' */
    int lines, branches, min_match, max_tokens;
    /* Index of line starts over the context seen so far. */
    spec_token *seen;
    int32_t seen_count, seen_capacity;
    int32_t *line_starts; /* positions just after a newline token (0 counts as a start) */
    int32_t line_count, line_capacity;
} line_echo;

static void write_error(char *error, size_t capacity, const char *message) {
    if (error && capacity > 0) snprintf(error, capacity, "%s", message);
}

static int parse_options(line_echo *self, const char *options, char *error, size_t capacity) {
    char buffer[512];
    if (strlen(options) >= sizeof buffer) {
        write_error(error, capacity, "options string too long");
        return 1;
    }
    strcpy(buffer, options);
    for (char *item = strtok(buffer, ", "); item; item = strtok(NULL, ", ")) {
        char *equals = strchr(item, '=');
        char *end = NULL;
        long value = equals ? strtol(equals + 1, &end, 10) : 0;
        if (!equals || end == equals + 1 || *end != '\0' || value < 0 || value > 100000) {
            char message[600];
            snprintf(message, sizeof message, "option '%s' is not key=N (keys: lines, branches, min-match, max)", item);
            write_error(error, capacity, message);
            return 1;
        }
        *equals = '\0';
        if (strcmp(item, "lines") == 0)
            self->lines = (int)value;
        else if (strcmp(item, "branches") == 0 && value >= 1)
            self->branches = (int)value;
        else if (strcmp(item, "min-match") == 0)
            self->min_match = (int)value;
        else if (strcmp(item, "max") == 0 && value >= 1)
            self->max_tokens = (int)value;
        else {
            char message[600];
            snprintf(message, sizeof message,
                     "unknown or out-of-range option '%s' (keys: lines, branches>=1, min-match, max>=1)", item);
            write_error(error, capacity, message);
            return 1;
        }
    }
    return 0;
}

static int32_t create(const spec_host *host, const char *options, void **instance, char *error, size_t capacity) {
    if (!host || host->struct_size < sizeof(spec_host) || host->vocab_size <= 0 || !host->token_text) {
        write_error(error, capacity, "host table missing or too old");
        return 1;
    }
    line_echo *self = calloc(1, sizeof *self);
    if (!self) {
        write_error(error, capacity, "out of memory");
        return 2;
    }
    self->vocab_size = host->vocab_size;
    self->lines = 256;
    self->branches = 2;
    self->min_match = 1;
    self->max_tokens = 12;
    if (parse_options(self, options ? options : "", error, capacity) != 0) {
        free(self);
        return 3;
    }
    self->ends_line = calloc((size_t)host->vocab_size, 1);
    if (!self->ends_line) {
        free(self);
        write_error(error, capacity, "out of memory");
        return 2;
    }
    char text[256];
    for (spec_token token = 0; token < host->vocab_size; token++) {
        int32_t length = host->token_text(host->context, token, text, (int32_t)sizeof text);
        if (length > (int32_t)sizeof text)
            length = (int32_t)sizeof text; /* a newline in a longer token is rare; ignore its tail */
        if (length > 0 && memchr(text, '\n', (size_t)length)) self->ends_line[token] = 1;
    }
    *instance = self;
    return SPEC_PLUGIN_OK;
}

static int grow(void **array, int32_t *capacity, int32_t needed, size_t element) {
    if (needed <= *capacity) return 0;
    int32_t next = *capacity ? *capacity : 256;
    while (next < needed) next *= 2;
    void *bigger = realloc(*array, (size_t)next * element);
    if (!bigger) return 1;
    *array = bigger;
    *capacity = next;
    return 0;
}

/* Brings the line index up to `context`: appends when the context extends what was seen,
 * rebuilds when it does not (a new prompt). */
static int index_context(line_echo *self, const spec_token *context, int32_t length) {
    int extends =
        length >= self->seen_count && memcmp(context, self->seen, (size_t)self->seen_count * sizeof *context) == 0;
    if (!extends) {
        self->seen_count = 0;
        self->line_count = 0;
    }
    if (grow((void **)&self->seen, &self->seen_capacity, length, sizeof *self->seen)) return 1;
    for (int32_t i = self->seen_count; i < length; i++) {
        self->seen[i] = context[i];
        if (i == 0 || (context[i - 1] >= 0 && context[i - 1] < self->vocab_size && self->ends_line[context[i - 1]])) {
            if (grow((void **)&self->line_starts, &self->line_capacity, self->line_count + 1,
                     sizeof *self->line_starts))
                return 1;
            self->line_starts[self->line_count++] = i;
        }
    }
    self->seen_count = length;
    return 0;
}

static int32_t propose(void *instance, const spec_token *context, int32_t length, const spec_budget *budget,
                       spec_draft *draft, char *error, size_t capacity) {
    line_echo *self = instance;
    if (length <= 0) return SPEC_PLUGIN_OK;
    if (index_context(self, context, length) != 0) {
        write_error(error, capacity, "out of memory");
        return 2;
    }
    /* The current line: tokens after the last line start (the newest token included). */
    spec_token newest = context[length - 1];
    int32_t current = (newest >= 0 && newest < self->vocab_size && self->ends_line[newest])
                          ? length
                          : self->line_starts[self->line_count - 1];
    int32_t typed = length - current;
    if (typed < self->min_match) return SPEC_PLUGIN_OK;
    spec_token indentation = current > 0 ? context[current - 1] : -1;
    int32_t depth_limit = budget->max_depth < self->max_tokens ? budget->max_depth : self->max_tokens;
    if (depth_limit > budget->remaining_context) depth_limit = budget->remaining_context;
    int32_t first_tokens[64];
    int found = 0;
    int searched = 0;
    /* Earlier lines: every indexed start before the current line's. */
    int32_t last_line = current == length ? self->line_count - 1 : self->line_count - 2;
    for (int32_t line = last_line; line >= 0 && searched < self->lines && found < self->branches; line--, searched++) {
        int32_t start = self->line_starts[line];
        int32_t next_start = line + 1 < self->line_count ? self->line_starts[line + 1] : length;
        if (next_start - start <= typed) continue; /* nothing left of that line to propose */
        if ((start > 0 ? context[start - 1] : -1) != indentation) continue;
        if (memcmp(context + start, context + current, (size_t)typed * sizeof *context) != 0) continue;
        spec_token first = context[start + typed];
        int duplicate = 0;
        for (int b = 0; b < found; b++) duplicate |= first_tokens[b] == first;
        if (duplicate) continue;
        /* Copy the rest of that line, newline token included, as one chain. */
        int32_t available = draft->capacity - draft->count;
        int32_t take = next_start - start - typed;
        if (take > depth_limit) take = depth_limit;
        if (take > available) take = available;
        if (take <= 0) break;
        float recency = 1.0f / (float)(found + 1);
        for (int32_t k = 0; k < take; k++) {
            int32_t node = draft->count++;
            draft->tokens[node] = context[start + typed + k];
            draft->parents[node] = k == 0 ? -1 : node - 1;
            /* Longer matched prefixes and more recent lines are better guesses; later tokens less so. */
            draft->scores[node] = recency * (float)(typed + 1) / (float)(typed + 2) * powf(0.9f, (float)k);
        }
        if (found < 64) first_tokens[found] = first;
        found++;
    }
    return SPEC_PLUGIN_OK;
}

static void destroy(void *instance) {
    line_echo *self = instance;
    if (!self) return;
    free(self->ends_line);
    free(self->seen);
    free(self->line_starts);
    free(self);
}

static const spec_plugin_v1 table = {
    .abi_version = SPECULATE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(spec_plugin_v1),
    .name = "line-echo",
    .description = "continues the current line like earlier lines that began the same way (parallel code structure)",
    .options_help =
        "lines=N (earlier lines searched, 256), branches=N (2), min-match=N (1), max=N tokens per branch (12)",
    .create = create,
    .propose = propose,
    .observe = NULL,
    .destroy = destroy,
};

__attribute__((visibility("default"))) const spec_plugin_v1 *speculate_plugin_entry(void) {
    return &table;
}
