#define _GNU_SOURCE
#include "speculate_plugin_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int spec_channel_send(int fd, const spec_channel_message *header, const void *payload, size_t payload_length) {
    if (payload_length > SPEC_CHANNEL_MAX_PAYLOAD) {
        errno = EMSGSIZE;
        return -1;
    }
    spec_channel_message copy = *header;
    copy.magic = SPEC_CHANNEL_MAGIC;
    copy.payload_length = (uint32_t)payload_length;
    struct iovec parts[2] = {{&copy, sizeof copy}, {(void *)payload, payload_length}};
    struct msghdr message = {0};
    message.msg_iov = parts;
    message.msg_iovlen = payload_length > 0 ? 2 : 1;
    for (;;) {
        ssize_t sent = sendmsg(fd, &message, MSG_NOSIGNAL);
        if (sent >= 0) return 0;
        if (errno != EINTR) return -1;
    }
}

int spec_channel_receive(int fd, spec_channel_message *header, void *payload, size_t capacity, int timeout_ms) {
    struct pollfd waiting = {fd, POLLIN, 0};
    for (;;) {
        int ready = poll(&waiting, 1, timeout_ms);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return -4;
        if (ready == 0) return -1;
        break;
    }
    /* One datagram: the header, then the payload; a datagram longer than both is malformed. */
    char overflow;
    struct iovec parts[3] = {{header, sizeof *header}, {payload, capacity}, {&overflow, 1}};
    struct msghdr message = {0};
    message.msg_iov = parts;
    message.msg_iovlen = 3;
    ssize_t received;
    do {
        received = recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return errno == ECONNRESET ? -2 : -4;
    if (received == 0) return -2;
    if ((size_t)received < sizeof *header || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) return -3;
    size_t body = (size_t)received - sizeof *header;
    if (header->magic != SPEC_CHANNEL_MAGIC || header->payload_length != body || body > capacity) return -3;
    return (int)body;
}

int spec_host_spawn(const spec_spawn_request *request, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int status = posix_spawn_file_actions_init(&actions);
    if (status != 0) return status;
    status = posix_spawnattr_init(&attributes);
    if (status != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return status;
    }
    /* dup2 clears close-on-exec on the target; everything from 6 up is closed whatever its flag,
     * so the host inherits no server socket and no file of the parent's. */
    int targets[5] = {1, 2, SPEC_CHANNEL_FD, SPEC_LIFELINE_FD, SPEC_SHARED_FD};
    int sources[5] = {request->output_fd, request->output_fd, request->channel_fd, request->lifeline_fd,
                      request->shared_fd};
    /* Move the sources above every one of them first, so that no dup2 overwrites a source that is
     * still needed. */
    int base = SPEC_SHARED_FD + 1;
    for (int i = 0; i < 5; i++)
        if (sources[i] >= base) base = sources[i] + 1;
    for (int i = 0; i < 5 && status == 0; i++)
        status = posix_spawn_file_actions_adddup2(&actions, sources[i], base + i);
    /* After the moves: a source may itself be descriptor 0 when this process runs without stdin. */
    if (status == 0) status = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    for (int i = 0; i < 5 && status == 0; i++)
        status = posix_spawn_file_actions_adddup2(&actions, base + i, targets[i]);
    if (status == 0) status = posix_spawn_file_actions_addclosefrom_np(&actions, SPEC_SHARED_FD + 1);
    if (status == 0) status = posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigset_t none;
    sigemptyset(&none);
    if (status == 0) status = posix_spawnattr_setsigdefault(&attributes, &defaults);
    if (status == 0) status = posix_spawnattr_setsigmask(&attributes, &none);
    if (status == 0)
        status = posix_spawnattr_setflags(&attributes,
                                          POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (status == 0) {
        extern char **environ;
        status = posix_spawn(pid, request->executable, &actions, &attributes, request->arguments,
                             request->environment ? request->environment : environ);
    }
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    return status;
}

int spec_channel_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : errno;
}

int spec_channel_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno;
}

int spec_channel_memfd(const char *name) {
    /* Sealed against shrinking: a host that truncated it would make Speculate's own accesses to
     * its mapping fault (SIGBUS). Speculate still grows it. */
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads a small /proc file into `text` (NUL-terminated); its length, or -1. */
static ssize_t read_proc(const char *path, char *text, size_t capacity) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = read(fd, text, capacity - 1);
    close(fd);
    if (length <= 0) return -1;
    text[length] = 0;
    return length;
}

double spec_process_cpu_seconds(pid_t pid, pid_t tid) {
    char path[64];
    if (tid > 0)
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    else
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char text[1024];
    if (read_proc(path, text, sizeof text) < 0) return -1;
    /* Fields 14 and 15 (utime, stime) follow the command name, which ends at the last ')'. */
    char *end = strrchr(text, ')');
    if (!end) return -1;
    unsigned long user = 0, system = 0;
    if (sscanf(end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user, &system) != 2) return -1;
    long ticks = sysconf(_SC_CLK_TCK);
    return ticks > 0 ? (double)(user + system) / (double)ticks : -1;
}

int64_t spec_process_mapped_bytes(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    char text[256];
    if (read_proc(path, text, sizeof text) < 0) return -1;
    unsigned long pages = 0;
    if (sscanf(text, "%lu", &pages) != 1) return -1;
    return (int64_t)pages * sysconf(_SC_PAGESIZE);
}
