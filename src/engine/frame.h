/* frame.h - length-prefixed messages on a pipe between a worker child and the parent.
 * Wire format: a 5-byte header {u8 type, u32 payload length in network byte order} and the
 * payload. Type 0 is never valid (a pipe of zeros is garbage, not a message).
 * The child writes with blocking frame_write; the parent reads its non-blocking end with a
 * frame_reader, which buffers at most one maximum-size frame (header + max_payload bytes)
 * no matter how much the child sends: when the buffer is full the reader stops reading
 * until the caller takes frames out, so use it with level-triggered readiness (epoll's
 * default, poll). A length over the reader's cap, type 0 or a type the check hook refuses
 * is EBSD_EPARSE, and the reader stays failed: the parent fails that one request. */
#ifndef EBSD_FRAME_H
#define EBSD_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define FRAME_HEADER_LEN 5
/* Default cap on one payload. */
#define FRAME_DEFAULT_MAX (16u << 20)
/* Largest cap a reader accepts (the length field is 32 bits; we keep well below it). */
#define FRAME_MAX_LIMIT (1u << 30)

/* Writes one frame to blocking fd: header and payload, retrying partial writes and EINTR.
 * len must be <= FRAME_MAX_LIMIT and type non-zero (else EBSD_EINVAL). EBSD_EIO if the
 * write fails (EPIPE when the parent has gone: the child should just exit; a child has
 * SIGPIPE at its default action, so it usually dies first - that is fine). */
EBSD_MUST_CHECK ebsd_status frame_write(int fd, uint8_t type, const void *data, size_t len);

/* Optional hook: returns whether type is one the reader's user understands. */
typedef bool (*frame_type_ok_fn)(uint8_t type);

/* The parent's side. Fields are private: use the functions. */
struct frame_reader {
    unsigned char *buf;   /* owned; NULL until the first read */
    size_t cap, start, end;
    size_t max_payload;
    bool failed;          /* sticky EBSD_EPARSE */
    bool eof;
    frame_type_ok_fn type_ok;
};

/* Prepares an empty reader whose frames may carry up to max_payload bytes (0 = the default;
 * capped at FRAME_MAX_LIMIT). Takes the buffer of a freed reader when one is kept, else
 * allocates nothing yet. */
void frame_reader_init(struct frame_reader *r, size_t max_payload);
/* Sets (or clears with NULL) the type check hook. */
void frame_reader_set_type_check(struct frame_reader *r, frame_type_ok_fn ok);
/* Gives the buffer up (kept for the next reader while up to 16 of at most 1 MiB are, else
 * freed); r may be initialised again. Does not close any descriptor. */
void frame_reader_free(struct frame_reader *r);

/* Reads what non-blocking fd has (EAGAIN ends the read, it is not an error) until the
 * buffer is full. *eof becomes true once the writer closed its end (read returned 0) and
 * stays true on later calls. EBSD_OK, EBSD_EPARSE (garbage header seen), EBSD_EIO (read
 * failed; logged). Invalidates data returned by frame_reader_next. */
EBSD_MUST_CHECK ebsd_status frame_reader_feed(struct frame_reader *r, int fd, bool *eof);

/* Takes the next complete frame out of the buffer: EBSD_OK with *type, *data and *len set
 * (data points into the reader, valid until the next feed or free; not NUL-terminated),
 * EBSD_ENOTFOUND when no complete frame is buffered, EBSD_EPARSE on garbage. */
EBSD_MUST_CHECK ebsd_status frame_reader_next(struct frame_reader *r, uint8_t *type,
                                              const char **data, size_t *len);

/* Bytes buffered and not yet taken out by frame_reader_next. Once next says ENOTFOUND after
 * EOF, a non-zero value means the writer died in the middle of a frame: judge such a child
 * by its exit status. */
size_t frame_reader_pending(const struct frame_reader *r);

#endif
