/* file.c - a small file read whole, with a hard cap (see file.h). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"

static ebsd_status failed(struct file_error *err, const char *op, ebsd_status st)
{
    err->op = op;
    err->err_no = st == EBSD_EIO || st == EBSD_ENOTFOUND ? errno : 0;
    return st;
}

ebsd_status file_read(const char *path, size_t max, unsigned flags, char **data, size_t *len,
                      struct stat *sb, struct file_error *err)
{
    struct file_error ignored;
    struct stat local;
    err = err ? err : &ignored;
    sb = sb ? sb : &local;
    *data = NULL;
    *len = 0;
    err->op = "";
    err->err_no = 0;
    int oflags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
    if (flags & FILE_NOFOLLOW)
        oflags |= O_NOFOLLOW;
    if (flags & FILE_REGULAR)
        oflags |= O_NONBLOCK; /* a FIFO must not block the open: fstat refuses it next */
    int fd = open(path, oflags);
    if (fd < 0)
        return failed(err, "open", errno == ENOENT ? EBSD_ENOTFOUND : EBSD_EIO);
    ebsd_status st;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (fstat(fd, sb) != 0) {
        st = failed(err, "fstat", EBSD_EIO);
        goto out;
    }
    if ((flags & FILE_REGULAR) && !S_ISREG(sb->st_mode)) {
        st = failed(err, "", EBSD_EINVAL);
        goto out;
    }
    if (sb->st_size > 0 && (unsigned long long)sb->st_size > max) {
        st = failed(err, "", EBSD_ETOOBIG);
        goto out;
    }
    /* room for one byte past the cap: reading it tells a file that grew after fstat */
    if (flags & FILE_SECRET)
        cap = max + 1;
    else
        cap = (sb->st_size > 0 ? (size_t)sb->st_size : 4096) + 1;
    if (cap > max + 1)
        cap = max + 1;
    buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                st = failed(err, "", EBSD_ETOOBIG);
                goto out;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = failed(err, "read", EBSD_EIO);
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        st = failed(err, "", EBSD_ETOOBIG);
        goto out;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
    st = EBSD_OK;
out:
    if (buf && (flags & FILE_SECRET))
        explicit_bzero(buf, cap + 1);
    free(buf);
    close(fd);
    return st;
}
