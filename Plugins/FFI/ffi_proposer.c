#define _GNU_SOURCE
#include "speculate_ffi_proposer.h"

#include <dlfcn.h>
#include <ffi.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The argument roles and the return kinds of the canonical signature. */
enum role { ROLE_CONTEXT, ROLE_CONTEXT_LENGTH, ROLE_DRAFT, ROLE_CAPACITY, ROLE_DRAFT_LENGTH };
enum result_kind { RESULT_VOID, RESULT_COUNT, RESULT_STATUS };
enum integer { INT_I32, INT_I64, INT_U32, INT_U64 };

#define MAX_ARGUMENTS 8

typedef struct ffi_instance {
    void *library;
    void *function;
    ffi_cif cif;
    ffi_type *argument_types[MAX_ARGUMENTS];
    enum role roles[MAX_ARGUMENTS];
    enum integer integers[MAX_ARGUMENTS];
    int argument_count;
    enum result_kind result;
    enum integer result_integer;
} ffi_instance;

static void say(char *error, size_t capacity, const char *format, ...) {
    if (!error || capacity == 0) return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(error, capacity, format, arguments);
    va_end(arguments);
}

static ffi_type *integer_type(enum integer kind) {
    switch (kind) {
    case INT_I32: return &ffi_type_sint32;
    case INT_I64: return &ffi_type_sint64;
    case INT_U32: return &ffi_type_uint32;
    case INT_U64: return &ffi_type_uint64;
    }
    return NULL;
}

static int parse_integer(const char *text, enum integer *kind) {
    static const char *names[] = {"i32", "i64", "u32", "u64"};
    for (int i = 0; i < 4; i++)
        if (strcmp(text, names[i]) == 0) {
            *kind = (enum integer)i;
            return 1;
        }
    return 0;
}

/* "name" or "name:type" into its parts; returns 1 if the name matches and the type is valid. */
static int parse_field(const char *field, const char *name, int typed, enum integer *kind) {
    size_t length = strlen(name);
    if (strncmp(field, name, length) != 0) return 0;
    if (!typed) return field[length] == 0;
    return field[length] == ':' && parse_integer(field + length + 1, kind);
}

/* Splits the options into lines (modifying `text`); returns the count. */
static int split_lines(char *text, char **lines, int capacity) {
    int count = 0;
    char *cursor = text;
    while (count < capacity) {
        lines[count++] = cursor;
        char *newline = strchr(cursor, '\n');
        if (!newline) break;
        *newline = 0;
        cursor = newline + 1;
    }
    return count;
}

static int32_t ffi_create(const spec_host *host, const char *options, void **instance, char *error,
                          size_t error_capacity) {
    (void)host;
    char *text = strdup(options);
    if (!text) return 1;
    char *lines[3 + MAX_ARGUMENTS + 1];
    int count = split_lines(text, lines, 3 + MAX_ARGUMENTS + 1);
    ffi_instance made = {0};
    int32_t status = 0;
    if (count < 3 || count > 3 + MAX_ARGUMENTS) {
        say(error, error_capacity, "the signature needs a library, a symbol, a return and 1-%d arguments",
            MAX_ARGUMENTS);
        status = 2;
        goto done;
    }
    if (strcmp(lines[2], "void") == 0)
        made.result = RESULT_VOID;
    else if (parse_field(lines[2], "count", 1, &made.result_integer))
        made.result = RESULT_COUNT;
    else if (parse_field(lines[2], "status", 1, &made.result_integer))
        made.result = RESULT_STATUS;
    else {
        say(error, error_capacity, "unknown return '%s'", lines[2]);
        status = 2;
        goto done;
    }
    int seen[5] = {0};
    made.argument_count = count - 3;
    for (int i = 0; i < made.argument_count; i++) {
        const char *field = lines[3 + i];
        enum integer kind = INT_I32;
        if (parse_field(field, "context", 0, &kind))
            made.roles[i] = ROLE_CONTEXT;
        else if (parse_field(field, "context_length", 1, &kind))
            made.roles[i] = ROLE_CONTEXT_LENGTH;
        else if (parse_field(field, "draft", 0, &kind))
            made.roles[i] = ROLE_DRAFT;
        else if (parse_field(field, "capacity", 1, &kind))
            made.roles[i] = ROLE_CAPACITY;
        else if (parse_field(field, "draft_length", 1, &kind))
            made.roles[i] = ROLE_DRAFT_LENGTH;
        else {
            say(error, error_capacity, "unknown argument '%s'", field);
            status = 2;
            goto done;
        }
        if (seen[made.roles[i]]++) {
            say(error, error_capacity, "argument '%s' appears twice", field);
            status = 2;
            goto done;
        }
        made.integers[i] = kind;
        made.argument_types[i] = (made.roles[i] == ROLE_CONTEXT_LENGTH || made.roles[i] == ROLE_CAPACITY)
                                     ? integer_type(kind)
                                     : &ffi_type_pointer;
    }
    if (!seen[ROLE_CONTEXT] || !seen[ROLE_DRAFT] || !seen[ROLE_CAPACITY]) {
        say(error, error_capacity, "the function must take the context, the draft buffer and its capacity");
        status = 2;
        goto done;
    }
    if ((made.result == RESULT_COUNT) == (seen[ROLE_DRAFT_LENGTH] != 0)) {
        say(error, error_capacity,
            "the draft length must come back either as the return value or through "
            "draft_length, not both or neither");
        status = 2;
        goto done;
    }
    made.library = dlopen(lines[0], RTLD_NOW | RTLD_LOCAL);
    if (!made.library) {
        const char *reason = dlerror();
        say(error, error_capacity, "cannot load '%s': %s", lines[0], reason ? reason : "unknown error");
        status = 3;
        goto done;
    }
    made.function = dlsym(made.library, lines[1]);
    if (!made.function) {
        say(error, error_capacity, "'%s' has no symbol '%s'", lines[0], lines[1]);
        status = 3;
        goto done;
    }
    ffi_type *result_type = made.result == RESULT_VOID ? &ffi_type_void : integer_type(made.result_integer);
    if (ffi_prep_cif(&made.cif, FFI_DEFAULT_ABI, (unsigned)made.argument_count, result_type, made.argument_types) !=
        FFI_OK) {
        say(error, error_capacity, "libffi cannot prepare a call with this signature");
        status = 4;
        goto done;
    }
    ffi_instance *result = malloc(sizeof *result);
    if (!result) {
        status = 5;
        goto done;
    }
    *result = made;
    /* The cif points at the instance's own argument types, which moved with the copy. */
    result->cif.arg_types = result->argument_types;
    *instance = result;
    made.library = NULL;
done:
    if (made.library) dlclose(made.library);
    free(text);
    return status;
}

/* Stores `value` as the integer type `kind` in `slot` (a 64-bit slot: libffi reads the size). */
static void store_integer(uint64_t *slot, enum integer kind, int64_t value) {
    switch (kind) {
    case INT_I32: *(int32_t *)slot = (int32_t)value; break;
    case INT_U32: *(uint32_t *)slot = (uint32_t)value; break;
    case INT_I64: *(int64_t *)slot = value; break;
    case INT_U64: *(uint64_t *)slot = (uint64_t)value; break;
    }
}

static int64_t load_integer(const void *slot, enum integer kind) {
    switch (kind) {
    case INT_I32: return *(const int32_t *)slot;
    case INT_U32: return *(const uint32_t *)slot;
    case INT_I64: return *(const int64_t *)slot;
    case INT_U64: {
        uint64_t value = *(const uint64_t *)slot;
        return value > INT64_MAX ? -1 : (int64_t)value;
    }
    }
    return -1;
}

static int32_t ffi_propose(void *handle, const spec_token *context, int32_t context_length, const spec_budget *budget,
                           spec_draft *draft, char *error, size_t error_capacity) {
    ffi_instance *instance = handle;
    int32_t capacity = draft->capacity < budget->max_depth ? draft->capacity : budget->max_depth;
    if (capacity <= 0) return 0;
    uint64_t slots[MAX_ARGUMENTS];
    void *pointers[MAX_ARGUMENTS];
    const spec_token *context_pointer = context;
    spec_token *draft_pointer = draft->tokens;
    uint64_t length_slot = 0;
    void *length_pointer = &length_slot;
    for (int i = 0; i < instance->argument_count; i++) {
        switch (instance->roles[i]) {
        case ROLE_CONTEXT: pointers[i] = &context_pointer; break;
        case ROLE_DRAFT: pointers[i] = &draft_pointer; break;
        case ROLE_DRAFT_LENGTH: pointers[i] = &length_pointer; break;
        case ROLE_CONTEXT_LENGTH:
            store_integer(&slots[i], instance->integers[i], context_length);
            pointers[i] = &slots[i];
            break;
        case ROLE_CAPACITY:
            store_integer(&slots[i], instance->integers[i], capacity);
            pointers[i] = &slots[i];
            break;
        }
    }
    /* libffi widens integer results narrower than a register to ffi_arg. */
    ffi_arg result = 0;
    ffi_call(&instance->cif, FFI_FN(instance->function), &result, pointers);
    int64_t count = 0;
    enum integer result_kind = instance->result_integer;
    int64_t returned = 0;
    if (instance->result != RESULT_VOID) {
        if (result_kind == INT_I32 || result_kind == INT_U32) {
            int32_t narrow = (int32_t)result;
            returned = result_kind == INT_I32 ? narrow : (int64_t)(uint32_t)narrow;
        } else {
            returned = load_integer(&result, result_kind);
        }
    }
    if (instance->result == RESULT_STATUS && returned != 0) {
        say(error, error_capacity, "the function returned status %lld", (long long)returned);
        return 1;
    }
    if (instance->result == RESULT_COUNT)
        count = returned;
    else {
        for (int i = 0; i < instance->argument_count; i++)
            if (instance->roles[i] == ROLE_DRAFT_LENGTH) count = load_integer(&length_slot, instance->integers[i]);
    }
    if (count <= 0) return 0;
    if (count > capacity) {
        say(error, error_capacity, "the function reported %lld tokens for a buffer of %d", (long long)count, capacity);
        return 1;
    }
    for (int32_t i = 0; i < (int32_t)count; i++) {
        draft->parents[i] = i - 1;
        draft->scores[i] = -(float)i;
        draft->probabilities[i] = NAN;
    }
    draft->count = (int32_t)count;
    return 0;
}

static void ffi_destroy(void *handle) {
    ffi_instance *instance = handle;
    /* The library stays loaded: the function may have left state (threads, atexit handlers). */
    free(instance);
}

static const spec_plugin_v1 table = {
    .abi_version = SPECULATE_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(spec_plugin_v1),
    .name = "ffi",
    .description = "a C function called through libffi from a signature given at run time",
    .options_help = "ffi:LIBRARY:SYMBOL[:SIGNATURE] (see `speculate proposers`)",
    .create = ffi_create,
    .propose = ffi_propose,
    .observe = NULL,
    .destroy = ffi_destroy,
};

const spec_plugin_v1 *spec_ffi_plugin_table(void) {
    return &table;
}
