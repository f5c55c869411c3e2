/* file.h - a small file read whole, with a hard cap: the config file, the bearer-token
 * file, the Redis password file, a web-identity token file, the shared AWS config files and
 * the size-hint state file. One open / fstat / read loop for all of them; each caller keeps
 * its own messages (struct file_error says which step failed, and why). */
#ifndef EBSD_FILE_H
#define EBSD_FILE_H
#include <stddef.h>
#include <sys/stat.h>
#include "status.h"

enum {
    FILE_NOFOLLOW = 1, /* a symbolic link is refused (O_NOFOLLOW: EBSD_EIO, ELOOP) */
    FILE_REGULAR = 2,  /* anything but a regular file is EBSD_EINVAL; never blocks on a FIFO */
    FILE_SECRET = 4,   /* one allocation of max + 1 bytes: no reallocated copy left behind,
                        * and the data is wiped on failure */
};

struct file_error {
    const char *op; /* "open", "fstat" or "read"; "" when the file itself was refused */
    int err_no;     /* errno of that step (ENOENT for EBSD_ENOTFOUND); 0 for EBSD_EINVAL and
                     * EBSD_ETOOBIG */
};

/* Reads path into *data (NUL-terminated, *len bytes before the NUL; caller frees; NULL on
 * failure). sb (may be NULL) gets fstat's answer. Returns EBSD_OK; EBSD_ENOTFOUND when path
 * does not exist (err says "open", ENOENT, so a caller that treats it as any failure needs
 * no case of its own); EBSD_EIO when a step failed (err says which); EBSD_EINVAL with
 * FILE_REGULAR and not a regular file; EBSD_ETOOBIG when the file is longer than max bytes,
 * by fstat or by what was read (a file that grows while read is caught too). */
EBSD_MUST_CHECK ebsd_status file_read(const char *path, size_t max, unsigned flags, char **data,
                                      size_t *len, struct stat *sb, struct file_error *err);

#endif
