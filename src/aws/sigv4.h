/* sigv4.h - AWS Signature Version 4 (HMAC-SHA256) signing and verification, with OpenSSL
 * EVP. Checked byte for byte against the official test suite (tests/unit/test_sigv4.c).
 * Signing is pure: no clock, no environment, no I/O. */
#ifndef EBSD_SIGV4_H
#define EBSD_SIGV4_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "status.h"

struct sigv4_header {
    const char *name;
    const char *value;
};

/* A request as it will go (or went) on the wire. Borrowed pointers; nothing is copied. */
struct sigv4_request {
    const char *method;   /* "GET", "POST" */
    const char *path;     /* path as on the request line ("/", "/example%20space/") */
    const char *query;    /* raw query string after '?', or NULL/"" for none */
    const struct sigv4_header *headers; /* must include Host */
    size_t nheaders;
    const void *body;     /* may be NULL when body_len is 0 */
    size_t body_len;
};

struct sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when none */
};

struct sigv4_params {
    const struct sigv4_credentials *creds;
    const char *region;       /* "us-east-1" */
    const char *service;      /* "ec2", "sts" */
    time_t when;              /* signing time (UTC seconds) */
    bool normalize_path;      /* remove dot segments and merge '//' (all services but S3) */
    bool sign_body;           /* add and sign x-amz-content-sha256 */
    bool omit_session_token;  /* add the token after signing (not signed) */
    bool no_double_encode;    /* S3: path is already encoded and is signed as is (default:
                                 every other service encodes the path once more) */
};

/* What signing produced. Strings are owned by the struct: free with sigv4_signed_free. */
struct sigv4_signed {
    char *canonical_request;
    char *string_to_sign;
    char signature[65];       /* lowercase hex */
    char *authorization;      /* value of the Authorization header */
    char amz_date[17];        /* "20150830T123600Z" */
    /* Headers the caller adds to the request, in this order: X-Amz-Date (unless the
     * request had one), X-Amz-Security-Token (when a token is set), x-amz-content-sha256
     * (when sign_body), Authorization. Values point into this struct. */
    struct sigv4_header add[4];
    size_t nadd;
    char *token_copy;
    char payload_hash[65];
};

/* Signs req. On success fills *out (caller calls sigv4_signed_free). An X-Amz-Date header
 * already in req is used as the signing time instead of params->when. */
EBSD_MUST_CHECK ebsd_status sigv4_sign(const struct sigv4_request *req,
                                       const struct sigv4_params *params,
                                       struct sigv4_signed *out);
void sigv4_signed_free(struct sigv4_signed *s);

/* What presigning produced (query-string authentication). Owned by the struct: free with
 * sigv4_presigned_free. */
struct sigv4_presigned {
    char *canonical_request;
    char *string_to_sign;
    char signature[65];
    /* The query string to send instead of req->query: the original query as given, then
     * X-Amz-Algorithm, -Credential, -Date, -SignedHeaders, -Expires, -Security-Token (when a
     * token is set) and X-Amz-Signature, all URI-encoded. */
    char *query;
};

/* Presigns req for expires_s seconds: the signature goes in the query, not in a header.
 * Every header of req is signed (the caller sends exactly these); the payload hash is that
 * of the body (sign_body adds no header here). omit_session_token leaves the token out of
 * the signature but still appends it. On success fills *out (caller calls
 * sigv4_presigned_free). */
EBSD_MUST_CHECK ebsd_status sigv4_presign(const struct sigv4_request *req,
                                          const struct sigv4_params *params, long expires_s,
                                          struct sigv4_presigned *out);
void sigv4_presigned_free(struct sigv4_presigned *p);

/* Lowercase hex SHA-256 of data into out[65]. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* URI-encodes s as SigV4 wants it (unreserved A-Za-z0-9-._~ kept, others %XX uppercase);
 * keeps '/' when encode_slash is false. Caller frees. */
char *sigv4_uri_encode(const char *s, size_t len, bool encode_slash);

/* Returns the secret key for an access key id, or NULL when the key is unknown. */
typedef const char *(*sigv4_secret_fn)(const char *access_key_id, void *ctx);

/* Why a request was refused, in EC2's terms. */
struct sigv4_verdict {
    char code[48];      /* "MissingAuthenticationToken", "AuthFailure",
                           "SignatureDoesNotMatch", "RequestExpired", "IncompleteSignature";
                           "" when valid */
    char message[256];
    char access_key_id[128]; /* from the Credential scope, once parsed ("" before) */
};

/* Verifies a received request (all of its headers, as received) signed with SigV4 in the
 * Authorization header. EBSD_OK when valid; EBSD_EAUTH with *verdict filled otherwise.
 * A timestamp more than max_skew seconds from now is RequestExpired. Checks run in this
 * order: MissingAuthenticationToken, IncompleteSignature, AuthFailure, RequestExpired,
 * SignatureDoesNotMatch. The path is normalized and double-encoded (EC2's rules); only the
 * headers named in SignedHeaders are used; the payload hash is that of the body (an
 * x-amz-content-sha256 header must agree with it). Comparison is constant-time. */
EBSD_MUST_CHECK ebsd_status sigv4_verify(const struct sigv4_request *req, sigv4_secret_fn lookup,
                                         void *ctx, time_t now, int max_skew,
                                         struct sigv4_verdict *verdict);

#endif
