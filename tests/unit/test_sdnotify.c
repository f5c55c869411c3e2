/* test_sdnotify.c - the exact datagrams sent to a NOTIFY_SOCKET we bind ourselves, in the
 * filesystem and in the abstract namespace, and that nothing ever blocks. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"

static char g_dir[64];
static char g_path[128];

/* Binds a datagram socket at a fresh path in a fresh directory; sets NOTIFY_SOCKET. */
static int bind_path_socket(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ebsd-sdnotify-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    snprintf(g_path, sizeof g_path, "%s/notify", g_dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, g_path, strlen(g_path) + 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("bind");
        return -1;
    }
    setenv("NOTIFY_SOCKET", g_path, 1);
    return fd;
}

static void unbind_path_socket(int fd)
{
    close(fd);
    unlink(g_path);
    rmdir(g_dir);
    unsetenv("NOTIFY_SOCKET");
}

/* Binds "@name" in the abstract namespace (exact length, no trailing NUL, as systemd does). */
static int bind_abstract_socket(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name); /* name starts with '@' */
    memcpy(sa.sun_path + 1, name + 1, len - 1);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, salen) != 0) {
        perror("bind abstract");
        return -1;
    }
    setenv("NOTIFY_SOCKET", name, 1);
    return fd;
}

/* Receives one datagram without waiting; "" if none is queued. */
static const char *recv_one(int fd)
{
    static char buf[SDNOTIFY_MAX_MESSAGE + 64];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    return buf;
}

static void unset_is_noop(void)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK(!sdnotify_enabled());
    CHECK_INT(sdnotify_ready(), EBSD_OK);
    CHECK_INT(sdnotify_reloading(), EBSD_OK);
    CHECK_INT(sdnotify_stopping(), EBSD_OK);
    CHECK_INT(sdnotify_status("idle"), EBSD_OK);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK(!sdnotify_enabled());
    CHECK_INT(sdnotify_ready(), EBSD_OK);
    unsetenv("NOTIFY_SOCKET");
}

static void path_socket_datagrams(void)
{
    int fd = bind_path_socket();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(sdnotify_enabled());

    CHECK_INT(sdnotify_ready(), EBSD_OK);
    CHECK_STR(recv_one(fd), "READY=1");

    CHECK_INT(sdnotify_stopping(), EBSD_OK);
    CHECK_STR(recv_one(fd), "STOPPING=1");

    CHECK_INT(sdnotify_status("serving on 0.0.0.0:8080"), EBSD_OK);
    CHECK_STR(recv_one(fd), "STATUS=serving on 0.0.0.0:8080");

    CHECK_INT(sdnotify_send("STATUS=x\nREADY=1"), EBSD_OK);
    CHECK_STR(recv_one(fd), "STATUS=x\nREADY=1");

    /* RELOADING=1 carries CLOCK_MONOTONIC microseconds taken during the call. */
    int64_t before = clock_now_us();
    CHECK_INT(sdnotify_reloading(), EBSD_OK);
    int64_t after = clock_now_us();
    const char *msg = recv_one(fd);
    const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";
    CHECK(strncmp(msg, prefix, strlen(prefix)) == 0);
    if (strncmp(msg, prefix, strlen(prefix)) == 0) {
        const char *digits = msg + strlen(prefix);
        char *end = NULL;
        errno = 0;
        long long usec = strtoll(digits, &end, 10);
        CHECK(errno == 0 && end != digits && *end == '\0');
        CHECK(usec >= before && usec <= after);
    }

    /* Nothing else was sent. */
    CHECK_STR(recv_one(fd), "");
    unbind_path_socket(fd);
}

static void abstract_socket_datagrams(void)
{
    char name[64];
    snprintf(name, sizeof name, "@ebsd-test-sdnotify-%ld-%ld", (long)getpid(), (long)time(NULL));
    int fd = bind_abstract_socket(name);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_INT(sdnotify_ready(), EBSD_OK);
    CHECK_STR(recv_one(fd), "READY=1");
    CHECK_INT(sdnotify_stopping(), EBSD_OK);
    CHECK_STR(recv_one(fd), "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void bad_values(void)
{
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK_INT(sdnotify_ready(), EBSD_EINVAL);
    setenv("NOTIFY_SOCKET", "@", 1);
    CHECK_INT(sdnotify_ready(), EBSD_EINVAL);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    CHECK_INT(sdnotify_ready(), EBSD_EINVAL);
    char longpath[300];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    CHECK_INT(sdnotify_ready(), EBSD_EINVAL);

    /* Nobody listening: an error, not a hang. */
    setenv("NOTIFY_SOCKET", "/nonexistent-dir-ebsd/notify", 1);
    CHECK_INT(sdnotify_ready(), EBSD_EIO);

    int fd = bind_path_socket();
    CHECK(fd >= 0);
    CHECK_INT(sdnotify_status("two\nlines"), EBSD_EINVAL);
    char big[SDNOTIFY_MAX_MESSAGE + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(sdnotify_send(big), EBSD_ETOOBIG);
    CHECK_INT(sdnotify_status(big), EBSD_ETOOBIG);
    CHECK_STR(recv_one(fd), "");
    if (fd >= 0)
        unbind_path_socket(fd);
    unsetenv("NOTIFY_SOCKET");
}

/* A receiver that never reads fills up; the sender gets EBSD_EBUSY at once, never waits. */
static void full_receiver_never_blocks(void)
{
    int fd = bind_path_socket();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    int small = 1; /* the kernel rounds this up to its minimum */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    int64_t t0 = clock_now_ms();
    ebsd_status st = EBSD_OK;
    int sent = 0;
    for (int i = 0; i < 100000 && st == EBSD_OK; i++) {
        st = sdnotify_status("filling the queue of a receiver that never reads");
        if (st == EBSD_OK)
            sent++;
    }
    CHECK_INT(st, EBSD_EBUSY);
    CHECK(sent > 0);
    CHECK(clock_now_ms() - t0 < 5000);
    unbind_path_socket(fd);
}

TEST_MAIN(T(unset_is_noop), T(path_socket_datagrams), T(abstract_socket_datagrams), T(bad_values),
          T(full_receiver_never_blocks))
