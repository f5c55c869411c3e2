/* redis.h - one asynchronous connection to Redis (Valkey, ElastiCache) on ebsd's own event
 * loop (h2o's lib/common/redis.c is the model). hiredis is used only for what does no I/O:
 * its reply reader and its command formatter. The socket is ebsd's: TCP, Unix or TLS
 * (OpenSSL, certificate and host name verified), non-blocking, on src/core/loop.h.
 *
 * A connection is up or down. Up: commands are pipelined, each with its own callback, and
 * each fails (EBSD_ETIMEDOUT) once command_timeout_ms has passed without a reply; a timeout
 * also closes the connection, since a Redis that does not answer one command will not
 * answer the next one either. Down: commands are refused at once (EBSD_ENETWORK), so a
 * caller falls back to local work without waiting; the connection reconnects by itself with
 * exponential backoff (100 ms doubling to 5 s). Connecting is TCP/Unix connect, TLS
 * handshake, AUTH (password, ACL user + password, or an ElastiCache IAM token), SELECT db
 * and PING, all within connect_timeout_ms. An idle connection PINGs once a second, so a
 * dead server is noticed (and /readyz says so) even without traffic.
 *
 * A subscriber connection (opts.subscriber) carries only SUBSCRIBE/PSUBSCRIBE and delivers
 * messages to callbacks; it resubscribes after every reconnect. Messages published while it
 * was down are lost: whoever waits on one must also keep a deadline of its own.
 *
 * Replies are untrusted: a reply may not buffer more than max_reply_bytes nor hold an
 * array of more than REDIS_MAX_ELEMENTS; either is a protocol error that closes the
 * connection (counted). Credentials are never logged.
 *
 * Host names are resolved with c-ares on the loop at every connection attempt (a failover
 * moves the name), and each address is tried in turn; numeric addresses and Unix sockets
 * need no lookup. */
#ifndef EBSD_REDIS_H
#define EBSD_REDIS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/read.h>
#include <hiredis/hiredis.h>
#include "redisurl.h"
#include "status.h"

struct loop;
struct redis;

#define REDIS_MAX_REPLY_BYTES (16u * 1024 * 1024) /* one reply, while buffered (default) */
#define REDIS_MAX_ELEMENTS 65536                  /* one array */
#define REDIS_MAX_PENDING 8192                    /* commands in flight per connection */
#define REDIS_MAX_SUBSCRIPTIONS 16
#define REDIS_MAX_SECRET 4096                     /* password or IAM token */

struct redis_options {
    struct redis_url url;          /* where (src/store/redisurl.h); user = the ACL user */
    const char *password;          /* AUTH password; NULL or "" = no AUTH (copied) */
    const char *ca_file;           /* rediss:// trust; NULL or "" = system store (copied) */
    uint32_t connect_timeout_ms;   /* connect + TLS + AUTH + SELECT + PING */
    uint32_t command_timeout_ms;   /* each command */
    uint32_t keepalive_ms;         /* PING an idle connection this often; 0 = 1000 */
    uint32_t backoff_min_ms;       /* first reconnect delay; 0 = 100 */
    uint32_t backoff_max_ms;       /* longest reconnect delay; 0 = 5000 */
    uint32_t max_reply_bytes;      /* cap on one buffered reply; 0 = REDIS_MAX_REPLY_BYTES */
    bool subscriber;               /* a pub/sub connection (redis_subscribe only) */
    const char *name;              /* for logs and CLIENT SETNAME ("ebsd", "ebsd-sub") */
};

/* Counters for /metrics (ebsd_redis_*). Monotonic over the connection's life. */
struct redis_stats {
    uint64_t connects;         /* handshakes completed */
    uint64_t connect_failures; /* attempts that did not reach up */
    uint64_t disconnects;      /* up -> down */
    uint64_t commands;         /* commands sent */
    uint64_t error_replies;    /* -ERR replies to commands */
    uint64_t timeouts;         /* commands failed by command_timeout_ms */
    uint64_t refused;          /* commands refused because the connection was down/full */
    uint64_t protocol_errors;  /* malformed or oversized replies */
};

/* A command's outcome, called exactly once per accepted command, on the loop. st is:
 * EBSD_OK (reply is a non-error reply), EBSD_EUPSTREAM (reply is a REDIS_REPLY_ERROR),
 * EBSD_ETIMEDOUT (no reply within command_timeout_ms; reply NULL) or EBSD_ENETWORK (the
 * connection closed first, or redis_free ran; reply NULL). reply is valid only during the
 * call. The callback may submit commands; it must not call redis_free on r. */
typedef void (*redis_reply_fn)(struct redis *r, const redisReply *reply, ebsd_status st,
                               void *arg);
/* Called when the connection goes up (up=true) or down (up=false). */
typedef void (*redis_state_fn)(struct redis *r, bool up, void *arg);
/* A pub/sub message; channel and msg are valid only during the call (not NUL-terminated). */
typedef void (*redis_message_fn)(struct redis *r, const char *channel, size_t channel_len,
                                 const char *msg, size_t msg_len, void *arg);

/* Creates a connection and starts connecting on l (never blocks). EBSD_EINVAL for bad options, EBSD_EIO if the TLS context cannot
 * be made (e.g. unreadable ca_file). Caller frees with redis_free. */
EBSD_MUST_CHECK ebsd_status redis_new(struct loop *l, const struct redis_options *opts,
                                      struct redis **out);
/* Closes the connection. First, blocking for at most the command timeout, what is queued is
 * sent and, on a command connection, the replies to every pending command are awaited and
 * handed to their callbacks as usual (which may send more: a script's EVAL after NOSCRIPT);
 * then every command still pending gets its callback with EBSD_ENETWORK. NULL is a no-op.
 * Not from inside one of r's callbacks. */
void redis_free(struct redis *r);

/* Sends a command (argv/argvlen as for redisFormatCommandArgv; argvlen NULL = strlen).
 * EBSD_OK: fn will be called exactly once. EBSD_ENETWORK (down), EBSD_EBUSY (too many
 * pending) or EBSD_EINVAL (subscriber connection, bad argc): refused, fn never called. */
EBSD_MUST_CHECK ebsd_status redis_command(struct redis *r, int argc, const char **argv,
                                          const size_t *argvlen, redis_reply_fn fn,
                                          void *arg);

/* Subscribes (SUBSCRIBE channel, or PSUBSCRIBE when pattern) on a subscriber connection;
 * fn gets every message of it, now and after reconnects. EBSD_EINVAL if r is not a
 * subscriber or the channel is already subscribed, EBSD_ETOOBIG past
 * REDIS_MAX_SUBSCRIPTIONS. The channel is copied. */
EBSD_MUST_CHECK ebsd_status redis_subscribe(struct redis *r, const char *channel, bool pattern,
                                            redis_message_fn fn, void *arg);

/* Replaces the credentials used by AUTH (user NULL = keep the URL's user). When the
 * connection is up and reauth is true, AUTH is sent now on it (ElastiCache extends an
 * IAM-authenticated connection by 12 hours per AUTH); a refused AUTH closes it. A
 * subscriber connection (which RESP2 does not let AUTH while subscribed) only keeps the
 * credentials for its next connect. Copies. */
void redis_set_auth(struct redis *r, const char *user, const char *password, bool reauth);

/* Sets the up/down callback (one per connection; NULL clears it). */
void redis_set_state_fn(struct redis *r, redis_state_fn fn, void *arg);

/* True while the connection is up (the /readyz "redis" field, ebsd_redis_up). */
bool redis_is_up(const struct redis *r);
/* Copies the counters. */
void redis_get_stats(const struct redis *r, struct redis_stats *out);

/* Reads an AUTH password from path: at most REDIS_MAX_SECRET bytes, one trailing "\n" or
 * "\r\n" removed, no other control bytes. Caller frees *out (and should wipe it).
 * EBSD_EIO (unreadable), EBSD_ETOOBIG, EBSD_EINVAL (empty or control bytes). */
EBSD_MUST_CHECK ebsd_status redis_password_load(const char *path, char **out);

#endif
