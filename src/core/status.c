/* status.c - names for ebsd_status values, for logs and error messages. */
#include "status.h"

const char *status_str(ebsd_status st)
{
    switch (st) {
    case EBSD_OK: return "ok";
    case EBSD_EINVAL: return "invalid argument";
    case EBSD_EPARSE: return "parse error";
    case EBSD_ETOOBIG: return "too big";
    case EBSD_EIO: return "I/O error";
    case EBSD_ETIMEDOUT: return "timed out";
    case EBSD_ENETWORK: return "network error";
    case EBSD_EUPSTREAM: return "upstream error";
    case EBSD_ETHROTTLED: return "throttled";
    case EBSD_ENOTFOUND: return "not found";
    case EBSD_EAUTH: return "authentication error";
    case EBSD_ENOMEM: return "memory limit exceeded";
    case EBSD_ECHILD: return "child process failed";
    case EBSD_EBUSY: return "busy";
    case EBSD_EUNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}
