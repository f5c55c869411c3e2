/* fuzz_sigv4.c - SigV4 canonicalization (src/aws/sigv4.c). The input is a raw HTTP request in
 * the test suite's .req form: "METHOD TARGET HTTP/1.1", header lines "Name:value" (a line
 * starting with a space or tab continues the previous one), a blank line, the body. It is
 * signed, presigned, signed-then-verified (which must pass: a round-trip oracle between the
 * signer and EC2's verifier), and verified as received (the Authorization header parser). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fuzz.h"
#include "sigv4.h"

#define MAX_HEADERS 64
#define WHEN 1440938160 /* 20150830T123600Z, the test suite's time */

static const char *lookup(const char *access_key_id, void *ctx)
{
    return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
}

static time_t amz_time(const char *amz)
{
    struct tm tm = {0};
    if (sscanf(amz, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return WHEN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static bool plain_headers(const struct sigv4_header *h, size_t n)
{
    static const char tchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(h[i].name, "authorization") ||
            !strcasecmp(h[i].name, "x-amz-content-sha256") || !h[i].name[0] || strspn(h[i].name, tchar) != strlen(h[i].name))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strdup(data, size);
    size_t len = strlen(s);
    struct sigv4_header h[MAX_HEADERS + 4];
    size_t nh = 0;

    /* Head and body. */
    char *body = strstr(s, "\n\n");
    size_t body_len = 0;
    if (body) {
        *body = '\0';
        body += 2;
        body_len = len - (size_t)(body - s);
    }
    for (char *p = s; (p = strchr(p, '\n')) != NULL; p++)
        if (p[1] == ' ' || p[1] == '\t')
            *p = ' ';
    char *line = s, *next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    char *method = line, *target = strchr(line, ' ');
    if (target) {
        *target++ = '\0';
        char *ver = strrchr(target, ' ');
        if (ver)
            *ver = '\0';
    } else {
        target = "/";
    }
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    for (line = next; line && nh < MAX_HEADERS; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[ll - 1] = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        h[nh++] = (struct sigv4_header){line, colon + 1};
    }
    struct sigv4_request req = {
        .method = method, .path = target, .query = query, .headers = h, .nheaders = nh,
        .body = body, .body_len = body ? body_len : 0,
    };
    unsigned sum = 0;
    for (size_t i = 0; i < size; i++)
        sum += data[i];
    struct sigv4_credentials creds = {
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        (sum & 1) ? "session-token-example" : NULL,
    };
    struct sigv4_params params = {
        .creds = &creds, .region = "us-east-1", .service = "service", .when = WHEN,
        .normalize_path = !(sum & 2), .sign_body = (sum & 4) != 0,
        .omit_session_token = (sum & 8) != 0, .no_double_encode = (sum & 16) != 0,
    };

    struct sigv4_verdict verdict;
    /* As received: exercises the Authorization and X-Amz-Date parsers. */
    ebsd_status st = sigv4_verify(&req, lookup, NULL, WHEN, 900, &verdict);
    FUZZ_ASSERT(st == EBSD_OK || st == EBSD_EAUTH);
    FUZZ_ASSERT(memchr(verdict.code, '\0', sizeof verdict.code) != NULL);

    struct sigv4_signed sig;
    if (sigv4_sign(&req, &params, &sig) == EBSD_OK) {
        FUZZ_ASSERT(strlen(sig.signature) == 64);
        FUZZ_ASSERT(sig.nadd <= 4);
        /* The signed request as it would go out, verified as EC2 would. */
        struct sigv4_request sent = req;
        size_t n = nh;
        for (size_t i = 0; i < sig.nadd; i++)
            h[n++] = sig.add[i];
        sent.nheaders = n;
        /* Verified at its signing time (a request's own X-Amz-Date is that). */
        st = sigv4_verify(&sent, lookup, NULL, amz_time(sig.amz_date), 900, &verdict);
        FUZZ_ASSERT(st == EBSD_OK || st == EBSD_EAUTH);
        /* What we sign, EC2's rules accept: with the path rules verify uses, no signature
         * already in the request, header names that are HTTP tokens (the signer trusts its
         * caller's names; verify refuses others), and no x-amz-content-sha256 of the
         * caller's (the signer signs it as given, S3-style; verify wants the body's). */
        if (params.normalize_path && !params.no_double_encode && plain_headers(h, nh) &&
            st != EBSD_OK) {
            fprintf(stderr, "sign/verify round trip: %s: %s\n", verdict.code, verdict.message);
            abort();
        }
        sigv4_signed_free(&sig);
    }
    struct sigv4_presigned pre;
    if (sigv4_presign(&req, &params, 300, &pre) == EBSD_OK)
        sigv4_presigned_free(&pre);

    char *enc = sigv4_uri_encode(target, strlen(target), (sum & 32) != 0);
    free(enc);
    free(s);
    return 0;
}
