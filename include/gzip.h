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

/* Compresses in[0..len) into a gzip stream (RFC 1952; zlib's deflate with a gzip wrapper,
 * level 6) in out, which this initialises (caller frees with buf_free, or takes the bytes
 * with buf_steal). EBSD_ETOOBIG if len > GZIP_MAX_INPUT; EBSD_EIO if zlib fails (out then
 * holds nothing to free). */
EBSD_MUST_CHECK ebsd_status gzip_compress(const void *in, size_t len, struct buf *out);

/* The same for a short input (a few hundred bytes: the per-response tail of a cached
 * answer, sent as a second gzip member after the cached body's, RFC 1952 section 2.2): a
 * small window and fast level, so it costs microseconds rather than zlib's 256 KiB state. */
EBSD_MUST_CHECK ebsd_status gzip_compress_small(const void *in, size_t len, struct buf *out);

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
