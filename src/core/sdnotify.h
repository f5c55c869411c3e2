/* sdnotify.h - tells systemd how the service is doing over the plain sd_notify datagram
 * protocol (no libsystemd): one AF_UNIX SOCK_DGRAM message of newline-separated
 * KEY=VALUE assignments sent to $NOTIFY_SOCKET. Without NOTIFY_SOCKET (not started by a
 * Type=notify unit: a container, a terminal, a test) every call is a successful no-op.
 * No call ever blocks: a full or absent receiver is an error, never a wait. */
#ifndef EBSD_SDNOTIFY_H
#define EBSD_SDNOTIFY_H
#include <stdbool.h>
#include "status.h"

/* Longest state message accepted (sd_notify itself has no smaller limit we rely on). */
#define SDNOTIFY_MAX_MESSAGE 2048

/* True if NOTIFY_SOCKET is set and non-empty, i.e. the calls below would send. */
bool sdnotify_enabled(void);

/* Sends state as one datagram, as is ("READY=1", "STATUS=...\nREADY=1").
 * EBSD_OK when sent or when NOTIFY_SOCKET is unset; EBSD_EINVAL for a NOTIFY_SOCKET that
 * is neither an absolute path nor an '@' abstract name or is too long for sockaddr_un;
 * EBSD_ETOOBIG for a state over SDNOTIFY_MAX_MESSAGE; EBSD_EBUSY when the receiver's
 * queue is full (would block); EBSD_EIO for any other socket error (errno kept, a warning
 * naming the call is logged). */
EBSD_MUST_CHECK ebsd_status sdnotify_send(const char *state);

/* "READY=1": startup finished (listening), or a reload finished. */
EBSD_MUST_CHECK ebsd_status sdnotify_ready(void);

/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now in µs>": a SIGHUP reload began;
 * send sdnotify_ready() when it is done (as Type=notify-reload requires). */
EBSD_MUST_CHECK ebsd_status sdnotify_reloading(void);

/* "STOPPING=1": draining began (SIGTERM). */
EBSD_MUST_CHECK ebsd_status sdnotify_stopping(void);

/* "STATUS=<text>": free-form status shown by `systemctl status`. text must be one line
 * (EBSD_EINVAL if it holds '\n'). */
EBSD_MUST_CHECK ebsd_status sdnotify_status(const char *text);

#endif
