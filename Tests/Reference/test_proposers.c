/* Proposers for the plugin-host tests, one shared library:
 *
 * - A plugin ("lookup") that drafts what followed the last earlier occurrence of the context's
 *   last two tokens, and misbehaves on purpose when its options say so:
 *   do=segv|abort|exit|hang|spin|leak|garbage|fork|flood|observe-hang, after=N (the call that
 *   misbehaves, default 3). spin starts a thread that loops forever and returns normally; leak
 *   starts a thread that leaks 100 MB/s of touched memory; garbage writes bytes to every
 *   descriptor from 3 to 9; fork leaves a child (named spec-test-fork) that sleeps forever;
 *   flood writes 4 MiB to stderr; report-fds writes the open descriptors to stderr during create.
 * - The same lookup as plain C functions of several shapes, for `ffi:`:
 *     int32_t lookup32(const int32_t *context, int32_t context_length, int32_t *draft, int32_t capacity)
 *     int64_t lookup64(const int32_t *context, int64_t context_length, int32_t *draft, uint64_t capacity)
 *     void lookup_out(const int32_t *context, size_t context_length, int32_t *draft, size_t capacity,
 *                     size_t *draft_length)
 *     int lookup_status(const int32_t *context, int64_t context_length, int32_t *draft, int32_t capacity,
 *                       int64_t *draft_length)
 */
#define _GNU_SOURCE
#include "speculate_plugin.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int64_t lookup(const int32_t *context, int64_t length, int32_t *draft, int64_t capacity) {
    if (length < 3 || capacity <= 0) return 0;
    int32_t a = context[length - 2], b = context[length - 1];
    for (int64_t i = length - 3; i >= 0; i--) {
        if (context[i] != a || context[i + 1] != b) continue;
        int64_t count = 0;
        for (int64_t j = i + 2; j < length && count < capacity && count < 8; j++) draft[count++] = context[j];
        return count;
    }
    return 0;
}

int32_t lookup32(const int32_t *context, int32_t context_length, int32_t *draft, int32_t capacity) {
    return (int32_t)lookup(context, context_length, draft, capacity);
}

int64_t lookup64(const int32_t *context, int64_t context_length, int32_t *draft, uint64_t capacity) {
    return lookup(context, context_length, draft, (int64_t)capacity);
}

void lookup_out(const int32_t *context, size_t context_length, int32_t *draft, size_t capacity, size_t *draft_length) {
    *draft_length = (size_t)lookup(context, (int64_t)context_length, draft, (int64_t)capacity);
}

int lookup_status(const int32_t *context, int64_t context_length, int32_t *draft, int32_t capacity,
                  int64_t *draft_length) {
    *draft_length = lookup(context, context_length, draft, capacity);
    return 0;
}

typedef struct {
    char behaviour[32];
    int after;
    int calls;
} plugin;

static void *spin(void *unused) {
    (void)unused;
    for (volatile unsigned long i = 0;; i++) {
    }
    return NULL;
}

static void *leak(void *unused) {
    (void)unused;
    for (;;) {
        char *block = malloc(1 << 20);
        memset(block, 1, 1 << 20); /* NULL past the memory limit: a crash, as a real leak ends */
        usleep(10000);
    }
    return NULL;
}

static void misbehave(plugin *self) {
    const char *what = self->behaviour;
    if (strcmp(what, "segv") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    } else if (strcmp(what, "abort") == 0) {
        abort();
    } else if (strcmp(what, "exit") == 0) {
        _exit(3);
    } else if (strcmp(what, "hang") == 0) {
        for (;;) pause();
    } else if (strcmp(what, "spin") == 0 || strcmp(what, "leak") == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, strcmp(what, "spin") == 0 ? spin : leak, NULL);
        pthread_detach(thread);
    } else if (strcmp(what, "garbage") == 0) {
        for (int fd = 3; fd < 10; fd++) (void)!write(fd, "garbage!", 8);
    } else if (strcmp(what, "fork") == 0) {
        if (fork() == 0) {
            prctl(PR_SET_NAME, "spec-test-fork");
            for (;;) pause();
        }
    } else if (strcmp(what, "flood") == 0) {
        static char line[1024];
        memset(line, 'x', sizeof line - 1);
        line[sizeof line - 1] = '\n';
        for (int i = 0; i < 4096; i++) (void)!write(2, line, sizeof line);
    }
}

static int32_t create(const spec_host *host, const char *options, void **instance, char *error, size_t capacity) {
    (void)host;
    plugin *self = calloc(1, sizeof *self);
    self->after = 3;
    const char *behaviour = strstr(options, "do=");
    if (behaviour) sscanf(behaviour + 3, "%31[a-z-]", self->behaviour);
    const char *after = strstr(options, "after=");
    if (after) self->after = atoi(after + 6);
    if (strcmp(self->behaviour, "report-fds") == 0) {
        /* What the host inherited: every open descriptor but the directory's own. */
        DIR *directory = opendir("/proc/self/fd");
        int own = directory ? dirfd(directory) : -1, present[64] = {0};
        for (struct dirent *entry; directory && (entry = readdir(directory));) {
            int fd = atoi(entry->d_name);
            if (entry->d_name[0] != '.' && fd != own && fd < 64) present[fd] = 1;
        }
        if (directory) closedir(directory);
        fprintf(stderr, "fds:");
        for (int fd = 0; fd < 64; fd++)
            if (present[fd]) fprintf(stderr, " %d", fd);
        fprintf(stderr, "\n");
        fflush(stderr);
    }
    if (strcmp(self->behaviour, "create-segv") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    (void)error;
    (void)capacity;
    *instance = self;
    return SPEC_PLUGIN_OK;
}

static int32_t propose(void *instance, const spec_token *context, int32_t context_length, const spec_budget *budget,
                       spec_draft *draft, char *error, size_t error_capacity) {
    (void)error;
    (void)error_capacity;
    plugin *self = instance;
    if (++self->calls == self->after && strcmp(self->behaviour, "observe-hang") != 0) misbehave(self);
    int64_t capacity = draft->capacity < budget->max_depth ? draft->capacity : budget->max_depth;
    int64_t count = lookup(context, context_length, draft->tokens, capacity);
    for (int64_t i = 0; i < count; i++) {
        draft->parents[i] = (int32_t)i - 1;
        draft->scores[i] = -(float)i;
    }
    draft->count = (int32_t)count;
    return SPEC_PLUGIN_OK;
}

static void observe(void *instance, const spec_token *accepted, int32_t accepted_count, const spec_token *context,
                    int32_t context_length) {
    (void)accepted;
    (void)accepted_count;
    (void)context;
    (void)context_length;
    plugin *self = instance;
    if (self->calls == self->after && strcmp(self->behaviour, "observe-hang") == 0)
        for (;;) pause();
}

static void destroy(void *instance) {
    free(instance);
}

static const spec_plugin_v1 table = {
    SPECULATE_PLUGIN_ABI_VERSION,
    sizeof(spec_plugin_v1),
    "lookup",
    "drafts what followed the last two tokens earlier; misbehaves on purpose (do=...)",
    "do=segv|abort|exit|hang|spin|leak|garbage|fork|flood|observe-hang|create-segv|report-fds, after=N (3)",
    create,
    propose,
    observe,
    destroy,
};

const spec_plugin_v1 *speculate_plugin_entry(void) {
    return &table;
}
