/* sdnotify.c - the sd_notify datagram protocol without libsystemd (see sdnotify.h).
 * A fresh socket per message: notifications are rare (start, reload, stop), and a socket
 * kept open would be one more descriptor for every forked child to close. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

bool sdnotify_enabled(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    return path != NULL && path[0] != '\0';
}

/* Fills *sa from NOTIFY_SOCKET: "/abs/path" or "@abstract". Returns the address length,
 * or 0 if the value is unusable (relative, "vsock:", too long). */
static socklen_t notify_address(const char *path, struct sockaddr_un *sa)
{
    size_t len = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path[0] == '@') {
        /* Abstract namespace: a leading NUL, then the name; the length is exact (no
         * terminating NUL), since every byte of an abstract name is significant. */
        if (len < 2 || len > sizeof sa->sun_path)
            return 0;
        memcpy(sa->sun_path + 1, path + 1, len - 1);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    if (path[0] != '/' || len >= sizeof sa->sun_path)
        return 0;
    memcpy(sa->sun_path, path, len + 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

ebsd_status sdnotify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    ebsd_status st = EBSD_EIO;
    int fd = -1;

    if (path == NULL || path[0] == '\0')
        return EBSD_OK;
    if (state == NULL)
        return EBSD_EINVAL;
    size_t len = strlen(state);
    if (len > SDNOTIFY_MAX_MESSAGE)
        return EBSD_ETOOBIG;

    struct sockaddr_un sa;
    socklen_t salen = notify_address(path, &sa);
    if (salen == 0) {
        log_warn("sdnotify", "NOTIFY_SOCKET '%.200s' is not an absolute path or @name", path);
        return EBSD_EINVAL;
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("sdnotify", "socket(AF_UNIX, SOCK_DGRAM): %s", strerror(errno));
        goto out;
    }
    ssize_t n;
    do {
        n = sendto(fd, state, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            st = EBSD_EBUSY;
        log_warn("sdnotify", "sendto(%.200s): %s", path, strerror(e));
        errno = e;
        goto out;
    }
    if ((size_t)n != len) {
        log_warn("sdnotify", "sendto(%.200s): short write (%zd of %zu bytes)", path, n, len);
        goto out;
    }
    st = EBSD_OK;
out:
    if (fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return st;
}

ebsd_status sdnotify_ready(void)
{
    return sdnotify_send("READY=1");
}

ebsd_status sdnotify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd tell this reload from an earlier one (notify-reload). */
    char msg[64];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)clock_now_us());
    return sdnotify_send(msg);
}

ebsd_status sdnotify_stopping(void)
{
    return sdnotify_send("STOPPING=1");
}

ebsd_status sdnotify_status(const char *text)
{
    char msg[SDNOTIFY_MAX_MESSAGE + 1];
    if (text == NULL || strchr(text, '\n') != NULL)
        return EBSD_EINVAL;
    int n = snprintf(msg, sizeof msg, "STATUS=%s", text);
    if (n < 0 || (size_t)n >= sizeof msg)
        return EBSD_ETOOBIG;
    return sdnotify_send(msg);
}
