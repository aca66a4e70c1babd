/*
 * speculate-plugin-host: loads one proposer plugin (or the libffi adapter) and calls it on
 * Speculate's behalf, so that a plugin that crashes, hangs or leaks takes down this process only.
 *
 *     speculate-plugin-host [--memory-mb N] [--cpu-seconds N] [--files N] (--ffi | LIBRARY)
 *
 * Started by Speculate with the descriptors speculate_plugin_channel.h describes; not meant to be
 * run by hand. Limits are applied before the library is loaded, so its constructors run under
 * them too.
 */
#define _GNU_SOURCE
#include "speculate_ffi_proposer.h"
#include "speculate_plugin.h"
#include "speculate_plugin_channel.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static const spec_plugin_v1 *plugin;
static void *instance;
static uint8_t *shared;
static size_t shared_size;
static _Alignas(8) char payload[SPEC_CHANNEL_MAX_PAYLOAD];
/* The vocabulary Speculate wrote into shared memory for `token_text`, valid during create. */
static int32_t vocabulary_size;
static int64_t vocabulary_offset;

/* Speculate is gone (its channel or lifeline closed): the whole process group goes with this
 * process, the plugin's own children included. Every such path ends here, not in a plain exit,
 * which would leave those children running. */
static void end_group(void) {
    kill(0, SIGKILL);
    _exit(0);
}

static void fail(const char *message) {
    fprintf(stderr, "speculate-plugin-host: %s\n", message);
    _exit(70);
}

/* Maps (or remaps) the shared memory at the size Speculate says it has now. */
static void map_shared(int64_t size) {
    if (size <= 0 || (uint64_t)size > ((uint64_t)1 << 40)) fail("bad shared memory size");
    if ((size_t)size == shared_size) return;
    if (shared) munmap(shared, shared_size);
    shared = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, SPEC_SHARED_FD, 0);
    if (shared == MAP_FAILED) fail("cannot map shared memory");
    shared_size = (size_t)size;
}

/* Whether [offset, offset + length) lies inside shared memory. */
static int in_shared(int64_t offset, int64_t length) {
    return offset >= 0 && length >= 0 && (uint64_t)offset + (uint64_t)length <= shared_size;
}

static void send_message(uint32_t kind, uint32_t sequence, int32_t code, const int64_t *values, int value_count,
                         const void *bytes, size_t length) {
    spec_channel_message header = {0};
    header.kind = kind;
    header.sequence = sequence;
    header.code = code;
    for (int i = 0; i < value_count; i++) header.values[i] = values[i];
    if (length > SPEC_CHANNEL_MAX_PAYLOAD) length = SPEC_CHANNEL_MAX_PAYLOAD;
    if (spec_channel_send(SPEC_CHANNEL_FD, &header, bytes, length) != 0) end_group();
}

/* Speculate is gone when its end of the lifeline closes, when the channel's other end hangs up,
 * or when this process has been handed to another parent: take the whole process group down,
 * the plugin's own children included. */
static pid_t parent;

static void *watch_lifeline(void *unused) {
    (void)unused;
    for (;;) {
        struct pollfd ends[2] = {{SPEC_LIFELINE_FD, POLLIN, 0}, {SPEC_CHANNEL_FD, POLLRDHUP, 0}};
        int ready = poll(ends, 2, 1000);
        if (ready < 0 && errno != EINTR) break;
        if (getppid() != parent) break;
        if (ready > 0 && (ends[0].revents || (ends[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))) {
            char byte;
            if (ends[0].revents && read(SPEC_LIFELINE_FD, &byte, 1) > 0) continue;
            break;
        }
    }
    end_group();
    return NULL;
}

static void apply_limit(int resource, long value, long slack) {
    if (value <= 0) return;
    /* CPU: the hard limit a little above the soft one, so SIGXCPU (reported as such) comes first. */
    struct rlimit limit = {(rlim_t)value, (rlim_t)(value + slack)};
    if (setrlimit(resource, &limit) != 0) fail("cannot apply a resource limit");
}

/* The tokenizer callback: asks Speculate over the channel (the plugin is inside `create`). */
static int32_t host_tokenize(void *context, const char *utf8, size_t length, spec_token *out, int32_t capacity) {
    (void)context;
    if ((length > 0 && !utf8) || capacity < 0 || (capacity > 0 && !out) || length > (size_t)INT32_MAX) return -1;
    int64_t total = (int64_t)length;
    size_t first = length < SPEC_CHANNEL_MAX_PAYLOAD ? length : SPEC_CHANNEL_MAX_PAYLOAD;
    send_message(SPEC_MSG_TOKENIZE, 0, 0, &total, 1, utf8, first);
    for (size_t sent = first; sent < length;) {
        size_t part = length - sent < SPEC_CHANNEL_MAX_PAYLOAD ? length - sent : SPEC_CHANNEL_MAX_PAYLOAD;
        send_message(SPEC_MSG_TOKENIZE_MORE, 0, 0, NULL, 0, utf8 + sent, part);
        sent += part;
    }
    spec_channel_message answer;
    int received = spec_channel_receive(SPEC_CHANNEL_FD, &answer, payload, sizeof payload, -1);
    if (received < 0) end_group();
    if (answer.kind != SPEC_MSG_TOKENS) fail("expected tokens");
    map_shared(answer.values[2]);
    int64_t count = answer.values[0];
    if (count < 0 || count > INT32_MAX || !in_shared(answer.values[1], count * 4)) fail("bad tokens answer");
    int32_t copied = count < capacity ? (int32_t)count : capacity;
    if (copied > 0) memcpy(out, shared + answer.values[1], (size_t)copied * 4);
    return (int32_t)count;
}

/* The token-text callback: answered from the vocabulary in shared memory. */
static int32_t host_token_text(void *context, spec_token token, char *out, int32_t capacity) {
    (void)context;
    if (capacity < 0 || (capacity > 0 && !out) || token < 0 || token >= vocabulary_size) return -1;
    const uint32_t *offsets = (const uint32_t *)(shared + vocabulary_offset);
    const uint8_t *bytes = shared + vocabulary_offset + ((int64_t)vocabulary_size + 1) * 4;
    uint32_t start = offsets[token], end = offsets[token + 1];
    if (end < start) return -1;
    int32_t length = (int32_t)(end - start);
    if (length <= capacity) memcpy(out, bytes + start, (size_t)length);
    return length;
}

static void handle_create(const spec_channel_message *request, int length) {
    map_shared(request->values[2]);
    vocabulary_size = (int32_t)request->values[0];
    vocabulary_offset = request->values[1];
    if (request->values[0] <= 0 || request->values[0] > INT32_MAX - 1 ||
        !in_shared(vocabulary_offset, (request->values[0] + 1) * 4))
        fail("bad vocabulary");
    const uint32_t *offsets = (const uint32_t *)(shared + vocabulary_offset);
    if (!in_shared(vocabulary_offset + (request->values[0] + 1) * 4, offsets[vocabulary_size])) fail("bad vocabulary");
    char *options = malloc((size_t)length + 1);
    if (!options) fail("out of memory");
    memcpy(options, payload, (size_t)length);
    options[length] = 0;
    spec_host host = {sizeof(spec_host), vocabulary_size, NULL, host_tokenize, host_token_text};
    char error[1024] = {0};
    void *made = NULL;
    int32_t code = plugin->create(&host, options, &made, error, sizeof error);
    free(options);
    error[sizeof error - 1] = 0;
    if (code == SPEC_PLUGIN_OK && !made) {
        code = -1;
        snprintf(error, sizeof error, "create succeeded but returned no instance");
    }
    instance = code == SPEC_PLUGIN_OK ? made : NULL;
    /* The vocabulary is only valid during create; its memory becomes the context afterwards. */
    vocabulary_size = 0;
    send_message(SPEC_MSG_CREATED, request->sequence, code, NULL, 0, error, strlen(error));
}

static void handle_propose(const spec_channel_message *request) {
    map_shared(request->values[2]);
    int64_t length = request->values[0], offset = request->values[1];
    int32_t nodes = (int32_t)request->values[3];
    if (!instance || length < 0 || length > INT32_MAX || !in_shared(offset, length * 4) || nodes < 0 ||
        nodes > SPEC_CHANNEL_MAX_NODES || shared_size < SPEC_CHANNEL_DRAFT_BYTES)
        fail("bad propose request");
    spec_budget budget = {nodes, (int32_t)request->values[4], (int32_t)request->values[5]};
    spec_draft draft = {nodes,
                        0,
                        (spec_token *)shared,
                        (int32_t *)(shared + SPEC_CHANNEL_MAX_NODES * 4),
                        (float *)(shared + SPEC_CHANNEL_MAX_NODES * 8),
                        (float *)(shared + SPEC_CHANNEL_MAX_NODES * 12)};
    for (int32_t i = 0; i < nodes; i++) {
        draft.tokens[i] = -1;
        draft.parents[i] = -2;
        draft.scores[i] = 0;
        draft.probabilities[i] = __builtin_nanf("");
    }
    char error[1024] = {0};
    int32_t code = plugin->propose(instance, (const spec_token *)(shared + offset), (int32_t)length, &budget, &draft,
                                   error, sizeof error);
    error[sizeof error - 1] = 0;
    int64_t count = draft.count;
    send_message(SPEC_MSG_PROPOSED, request->sequence, code, &count, 1, error, strlen(error));
}

static void handle_observe(const spec_channel_message *request, int length) {
    map_shared(request->values[3]);
    int64_t accepted = request->values[0], context_length = request->values[1], offset = request->values[2];
    if (!instance || accepted < 0 || accepted * 4 != length || context_length < 0 || context_length > INT32_MAX ||
        !in_shared(offset, context_length * 4))
        fail("bad observe request");
    if (plugin->observe)
        plugin->observe(instance, (const spec_token *)payload, (int32_t)accepted, (const spec_token *)(shared + offset),
                        (int32_t)context_length);
    send_message(SPEC_MSG_OBSERVED, request->sequence, 0, NULL, 0, NULL, 0);
}

/* Loads the plugin and reports its table, or why it did not load. */
static void load(const char *library, int ffi) {
    if (ffi) {
        plugin = spec_ffi_plugin_table();
    } else {
        void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *reason = dlerror();
            reason = reason ? reason : "unknown error";
            send_message(SPEC_MSG_LOAD_FAILED, 0, SPEC_LOAD_CANNOT_OPEN, NULL, 0, reason, strlen(reason));
            _exit(0);
        }
        spec_plugin_entry_fn entry = (spec_plugin_entry_fn)dlsym(handle, SPECULATE_PLUGIN_ENTRY_SYMBOL);
        if (!entry) {
            send_message(SPEC_MSG_LOAD_FAILED, 0, SPEC_LOAD_NO_ENTRY, NULL, 0, NULL, 0);
            _exit(0);
        }
        plugin = entry();
        if (!plugin) {
            send_message(SPEC_MSG_LOAD_FAILED, 0, SPEC_LOAD_NULL_TABLE, NULL, 0, NULL, 0);
            _exit(0);
        }
    }
    /* Only the first two fields are read before Speculate has checked them. */
    int64_t values[3] = {plugin->abi_version, plugin->struct_size, 0};
    size_t used = 0;
    if (plugin->abi_version == SPECULATE_PLUGIN_ABI_VERSION && plugin->struct_size >= sizeof(spec_plugin_v1)) {
        values[2] = (plugin->create ? 0 : SPEC_TABLE_NO_CREATE) | (plugin->propose ? 0 : SPEC_TABLE_NO_PROPOSE) |
                    (plugin->destroy ? 0 : SPEC_TABLE_NO_DESTROY) | (plugin->name ? 0 : SPEC_TABLE_NO_NAME) |
                    (plugin->observe ? 0 : SPEC_TABLE_NO_OBSERVE);
        const char *texts[3] = {plugin->name, plugin->description, plugin->options_help};
        for (int i = 0; i < 3; i++) {
            size_t length = texts[i] ? strnlen(texts[i], 4096) : 0;
            if (length > 0) memcpy(payload + used, texts[i], length);
            used += length;
            payload[used++] = 0;
        }
    }
    send_message(SPEC_MSG_LOADED, 0, 0, values, 3, payload, used);
}

int main(int argc, char **argv) {
    long memory_mb = 0, cpu_seconds = 0, files = 0;
    int ffi = 0;
    const char *library = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--memory-mb") == 0 && i + 1 < argc)
            memory_mb = atol(argv[++i]);
        else if (strcmp(argv[i], "--cpu-seconds") == 0 && i + 1 < argc)
            cpu_seconds = atol(argv[++i]);
        else if (strcmp(argv[i], "--files") == 0 && i + 1 < argc)
            files = atol(argv[++i]);
        else if (strcmp(argv[i], "--ffi") == 0)
            ffi = 1;
        else
            library = argv[i];
    }
    if (!ffi && !library) fail("usage: speculate-plugin-host [limits] (--ffi | LIBRARY); started by Speculate");
    parent = getppid();
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_lifeline, NULL) != 0) fail("cannot start the lifeline watcher");
    apply_limit(RLIMIT_AS, memory_mb * 1024 * 1024, 0);
    apply_limit(RLIMIT_CPU, cpu_seconds, 5);
    apply_limit(RLIMIT_NOFILE, files, 0);
    struct rlimit no_core = {0, 0}; /* a core dump would delay the crash report by seconds */
    setrlimit(RLIMIT_CORE, &no_core);
    /* The channel, lifeline and shared memory stay out of any program the plugin starts: such a
     * program would keep the channel open after this process dies. */
    for (int fd = SPEC_CHANNEL_FD; fd <= SPEC_SHARED_FD; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    load(library, ffi);
    for (;;) {
        spec_channel_message request;
        int length = spec_channel_receive(SPEC_CHANNEL_FD, &request, payload, sizeof payload, -1);
        if (length == -2) end_group();
        if (length < 0) fail("malformed request");
        switch (request.kind) {
        case SPEC_MSG_CREATE: handle_create(&request, length); break;
        case SPEC_MSG_PROPOSE: handle_propose(&request); break;
        case SPEC_MSG_OBSERVE: handle_observe(&request, length); break;
        case SPEC_MSG_QUIT:
            if (instance) plugin->destroy(instance);
            _exit(0);
        default: fail("unknown request");
        }
    }
    return 0;
}
