/* gzip.h - content negotiation and compression for big answers: does the client's
 * Accept-Encoding take gzip, is the body worth compressing, the gzip body itself (zlib),
 * and the ETag and Vary that keep caches from mixing the two representations. */
#ifndef EBSD_GZIP_H
#define EBSD_GZIP_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "status.h"

/* Bodies smaller than this go out as they are: a gzip header and trailer (18 bytes) plus
 * Content-Encoding and Vary cost more than a small JSON answer saves, and a body that fits
 * one TCP segment gains nothing in latency. */
#define GZIP_MIN_BYTES 1024

/* The Vary token every answer that may be compressed carries (identity ones too). */
#define GZIP_VARY "Accept-Encoding"

/* Largest body gzip_compress takes (the cache's own cap is far below). */
#define GZIP_MAX_INPUT (256u * 1024 * 1024)

/* The quality (0..1000, thousandths) that an Accept-Encoding value gives gzip (RFC 9110
 * section 12.5.3): the q of "gzip" (or its alias "x-gzip") when listed, else of "*" when
 * listed, else 0. A missing q is 1000; "q=0" refuses; a malformed q-value counts as 0 for
 * its entry. Tokens and "q" are case-insensitive; whitespace around ',', ';' and '=' is
 * allowed. NULL (no header) is 0: ebsd sends identity unless gzip is asked for. */
unsigned gzip_accept_q(const char *accept_encoding);

/* True if a body of len bytes should go out gzipped to a client that sent
 * accept_encoding (NULL if absent): len >= min_bytes and gzip_accept_q > 0. */
bool gzip_wanted(const char *accept_encoding, size_t len, size_t min_bytes);

/* True if an answer of len bytes depends on Accept-Encoding, that is, carries
 * "Vary: Accept-Encoding" whichever representation it gets: len >= min_bytes. */
bool gzip_varies(size_t len, size_t min_bytes);

/* Compresses in[0..len) into one whole gzip stream (RFC 1952, level 6): gzip_open then
 * gzip_close with an empty tail. out is initialised here (caller frees with buf_free, or
 * takes the bytes with buf_steal). EBSD_ETOOBIG if len > GZIP_MAX_INPUT; EBSD_EIO if zlib
 * fails (out then holds nothing to free). */
EBSD_MUST_CHECK ebsd_status gzip_compress(const void *in, size_t len, struct buf *out);

/* Bytes of state gzip_open puts before the stream: CRC-32 and length of the input. */
#define GZIP_OPEN_STATE 8

/* The start of a gzip stream whose end is written later, once per response (the cached body
 * of an answer is compressed once; each response appends its own tail, its source and
 * request_id): out = GZIP_OPEN_STATE bytes of state (CRC-32 and length of in), then the gzip
 * header and in deflated (level 6), ended by a sync flush, so the stream is byte-aligned and
 * has no final block and no trailer yet. One gzip member in the end, which every decoder
 * reads (curl 7.88 fails on a stream of several members). out is initialised here (caller
 * frees with buf_free). EBSD_ETOOBIG if len > GZIP_MAX_INPUT; EBSD_EIO if zlib fails. */
EBSD_MUST_CHECK ebsd_status gzip_open(const void *in, size_t len, struct buf *out);

/* A complete gzip stream: open[0..open_len) (from gzip_open, state included) without its
 * state, then tail deflated as the final blocks (a fresh raw deflate stream with a small
 * window: it never refers back, so microseconds and about 3 KiB of zlib state, not 256 KiB),
 * then the trailer: the CRC-32 of the whole content (zlib's crc32_combine of the open part's
 * and the tail's) and its length. Decompresses to in + tail. out is initialised here.
 * EBSD_EINVAL if open is too short to come from gzip_open; EBSD_EIO if zlib fails. */
EBSD_MUST_CHECK ebsd_status gzip_close(const void *open, size_t open_len, const void *tail,
                                       size_t tail_len, struct buf *out);

/* The ETag of the gzip representation of the entity whose identity ETag is etag: the suffix
 * "-gzip" inside the quotes, as Apache's mod_deflate does ("abc" -> "abc-gzip",
 * W/"abc" -> W/"abc-gzip"), so a cache or If-None-Match never mistakes one representation
 * for the other. Writes into out (size bytes). EBSD_EINVAL if etag is not a quoted entity
 * tag; EBSD_ETOOBIG if out is too small. */
EBSD_MUST_CHECK ebsd_status gzip_etag(const char *etag, char *out, size_t size);

/* Appends token to a Vary value: out = existing (NULL or "" for none) + ", " + token, unless
 * existing already lists token (case-insensitively) or is "*". EBSD_ETOOBIG if out (size
 * bytes) is too small. */
EBSD_MUST_CHECK ebsd_status gzip_vary_add(const char *existing, const char *token, char *out,
                                          size_t size);

#endif
