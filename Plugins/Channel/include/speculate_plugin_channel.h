/*
 * speculate_plugin_channel.h — how Speculate talks to its plugin host process
 * (`speculate-plugin-host`), which loads one plugin library and calls it on Speculate's behalf.
 * Internal to Speculate: plugin authors only ever see speculate_plugin.h.
 *
 * The host is started with these file descriptors and nothing else open:
 *   0        /dev/null
 *   1, 2     one pipe that Speculate reads (the plugin's own output, forwarded up to a limit)
 *   3        SPEC_CHANNEL_FD: a SOCK_SEQPACKET socket, one message per datagram
 *   4        SPEC_LIFELINE_FD: the read end of a pipe whose write end only Speculate holds;
 *            end of file means Speculate is gone, and the host kills its process group
 *   5        SPEC_SHARED_FD: a memfd both map (MAP_SHARED) for bulk data: the context tokens,
 *            the draft arrays, the vocabulary bytes and tokenizer answers
 *
 * Every message is one `spec_channel_message` header followed by `payload_length` bytes in the
 * same datagram. Requests go one at a time except `observe`, which is not waited for; answers
 * carry the request's sequence number. Speculate writes the shared memory only when no request
 * is outstanding, and reads the draft arrays only after the answer; it treats everything the
 * host sends or writes as untrusted (the host runs third-party code).
 */
#ifndef SPECULATE_PLUGIN_CHANNEL_H
#define SPECULATE_PLUGIN_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPEC_CHANNEL_FD 3
#define SPEC_LIFELINE_FD 4
#define SPEC_SHARED_FD 5

/** "SPCH": every header starts with it. */
#define SPEC_CHANNEL_MAGIC 0x48435053u
/** Largest payload in one message; longer text goes in parts or through shared memory. */
#define SPEC_CHANNEL_MAX_PAYLOAD 61440u
/** Most draft nodes one `propose` may return (the draft area's size). */
#define SPEC_CHANNEL_MAX_NODES 4096
/** Bytes of the draft area at the start of shared memory: tokens, parents, scores and
 *  probabilities for SPEC_CHANNEL_MAX_NODES nodes. */
#define SPEC_CHANNEL_DRAFT_BYTES (SPEC_CHANNEL_MAX_NODES * 16)

/** What a message is. Requests come from Speculate, answers from the host. */
typedef enum spec_channel_kind {
    /** Host: the library loaded. values: abi_version, struct_size, SPEC_TABLE_* bits of the
     *  table's null entries. Payload: name, description, options help, each NUL-terminated. */
    SPEC_MSG_LOADED = 1,
    /** Host: the library did not load. code: SPEC_LOAD_*. Payload: the reason. */
    SPEC_MSG_LOAD_FAILED = 2,
    /** Create an instance. values: vocab_size, vocabulary offset, shared size. Payload: options.
     *  The vocabulary at its offset: (vocab_size + 1) uint32 byte offsets, then the bytes. */
    SPEC_MSG_CREATE = 3,
    /** Host, during create: tokenize this text. values: total length; the payload is the first
     *  part, and SPEC_MSG_TOKENIZE_MORE messages carry the rest. */
    SPEC_MSG_TOKENIZE = 4,
    /** Host: the next part of the text of the SPEC_MSG_TOKENIZE in progress. */
    SPEC_MSG_TOKENIZE_MORE = 5,
    /** Speculate: the tokens. values: count, offset in shared memory, shared size. */
    SPEC_MSG_TOKENS = 6,
    /** Host: create returned. code: its return value (0 = an instance exists). Payload: message. */
    SPEC_MSG_CREATED = 7,
    /** Propose. values: context length, context offset, shared size, max_nodes, max_depth,
     *  remaining_context. The host fills the draft area (at offset 0). */
    SPEC_MSG_PROPOSE = 8,
    /** Host: propose returned. code: its return value. values: count. Payload: error message. */
    SPEC_MSG_PROPOSED = 9,
    /** Observe. values: accepted count, context length, context offset, shared size. Payload:
     *  the accepted tokens (int32). */
    SPEC_MSG_OBSERVE = 10,
    /** Host: observe returned. */
    SPEC_MSG_OBSERVED = 11,
    /** Destroy the instance and exit. */
    SPEC_MSG_QUIT = 12,
} spec_channel_kind;

/** Why a library did not load (SPEC_MSG_LOAD_FAILED's code). */
enum {
    SPEC_LOAD_CANNOT_OPEN = 1,
    SPEC_LOAD_NO_ENTRY = 2,
    SPEC_LOAD_NULL_TABLE = 3,
    SPEC_LOAD_BAD_FFI = 4,
};

/** Null entries of a plugin's table (SPEC_MSG_LOADED's third value). */
enum {
    SPEC_TABLE_NO_CREATE = 1,
    SPEC_TABLE_NO_PROPOSE = 2,
    SPEC_TABLE_NO_DESTROY = 4,
    SPEC_TABLE_NO_NAME = 8,
    SPEC_TABLE_NO_OBSERVE = 16,
};

/** The header of every message (72 bytes, the same layout on both sides: one machine). */
typedef struct spec_channel_message {
    uint32_t magic;
    uint32_t kind;
    uint32_t sequence;
    int32_t code;
    int64_t values[6];
    uint32_t payload_length;
    uint32_t reserved;
} spec_channel_message;

/** Sends one message; 0, or -1 with errno. Never raises SIGPIPE. */
int spec_channel_send(int fd, const spec_channel_message *header, const void *payload, size_t payload_length);

/**
 * Receives one message within `timeout_ms` (negative: no limit). Returns the payload length
 * (>= 0) with the header and payload filled in; 0 payload bytes are written past `capacity`.
 * Returns -1 on timeout, -2 when the other side is gone (end of file or hang-up), -3 on a
 * malformed message (wrong size, magic or payload length), -4 on another error (errno).
 */
int spec_channel_receive(int fd, spec_channel_message *header, void *payload, size_t capacity, int timeout_ms);

/** What `spec_host_spawn` needs: the executable, its arguments, and the descriptors the child
 *  gets as 1/2 (output), 3, 4 and 5. */
typedef struct spec_spawn_request {
    const char *executable;
    char *const *arguments;
    /** The child's environment (NULL: this process's). */
    char *const *environment;
    int output_fd;
    int channel_fd;
    int lifeline_fd;
    int shared_fd;
} spec_spawn_request;

/**
 * Starts the host in a process group of its own with only the descriptors above open (every
 * other one is closed in the child, whatever its close-on-exec flag). Returns 0 and the pid, or
 * an errno value.
 */
int spec_host_spawn(const spec_spawn_request *request, pid_t *pid);

/** Creates a socketpair (SOCK_SEQPACKET), a pipe and a memfd, all close-on-exec; 0 or errno. */
int spec_channel_socketpair(int fds[2]);
int spec_channel_pipe(int fds[2]);
int spec_channel_memfd(const char *name);

/** The CPU time (user + system, seconds) a process (tid <= 0) or one of its threads has used so
 *  far, from /proc; -1 if unknown. */
double spec_process_cpu_seconds(pid_t pid, pid_t tid);

/** The address space a process has mapped (bytes, from /proc); -1 if unknown. */
int64_t spec_process_mapped_bytes(pid_t pid);

#ifdef __cplusplus
}
#endif

#endif /* SPECULATE_PLUGIN_CHANNEL_H */
