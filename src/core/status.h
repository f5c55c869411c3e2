/* status.h - the one error convention of ebsd: every fallible function returns an
 * ebsd_status (EBSD_OK on success) and the compiler insists that callers look at it. */
#ifndef EBSD_STATUS_H
#define EBSD_STATUS_H

#define EBSD_MUST_CHECK __attribute__((warn_unused_result))

typedef enum {
    EBSD_OK = 0,
    EBSD_EINVAL,      /* bad argument or malformed input */
    EBSD_EPARSE,      /* input could not be parsed (XML, JSON, YAML, INI) */
    EBSD_ETOOBIG,     /* a capped buffer or limit was hit */
    EBSD_EIO,         /* system call or I/O failure (errno describes it) */
    EBSD_ETIMEDOUT,   /* the caller's deadline passed */
    EBSD_ENETWORK,    /* connection failed, reset, or TLS error */
    EBSD_EUPSTREAM,   /* the remote service answered with an error (code kept) */
    EBSD_ETHROTTLED,  /* throttled by the remote service or by our own rate limit */
    EBSD_ENOTFOUND,   /* no such thing (instance, file, profile, credential source) */
    EBSD_EAUTH,       /* credentials missing, invalid or refused */
    EBSD_ENOMEM,      /* a child's memory limit was exceeded (never used for malloc) */
    EBSD_ECHILD,      /* a child process crashed or wrote garbage */
    EBSD_EBUSY,       /* no capacity (children, connections) */
    EBSD_EUNSUPPORTED /* a feature this build deliberately does not provide */
} ebsd_status;

/* Returns a static, human-readable name for a status ("timed out"). Never NULL. */
const char *status_str(ebsd_status st);

#endif
