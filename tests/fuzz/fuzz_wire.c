/* fuzz_wire.c - the wire decoder the parent runs on bytes from its workers (src/engine/wire.c). The
 * first byte is the frame type, the rest its payload, as frame_reader_next hands them out.
 * Invariants: a record frame is taken only when its lengths add up, and what is taken has
 * terminated strings, 0/1 bools, at most WIRE_MAX_ATTACH attachments and WIRE_MAX_TAGS tags
 * per record, and attachment and tag indexes inside the ones decoded. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

static bool byte01(const bool *b)
{
    unsigned char c;
    memcpy(&c, b, 1);
    return c <= 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int type = data[0];
    const char *payload = (const char *)data + 1;
    size_t len = size - 1;
    size_t ntags = 0, kept_tags = 0;
    size_t n = wire_records(type, payload, len, &ntags);
    if (type == WIRE_INSTANCES && n != (size_t)-1) {
        FUZZ_ASSERT(ntags <= n * WIRE_MAX_TAGS);
        struct wire_inst *out = malloc((n ? n : 1) * sizeof *out);
        struct wire_tag *tags = malloc((ntags ? ntags : 1) * sizeof *tags);
        size_t kept = wire_take_instances(payload, len, out, tags, 0, &kept_tags);
        FUZZ_ASSERT(kept <= n && kept_tags <= ntags);
        for (size_t i = 0; i < kept; i++) {
            FUZZ_ASSERT(out[i].id[0] && memchr(out[i].id, 0, sizeof out[i].id) &&
                        memchr(out[i].state, 0, sizeof out[i].state) && out[i].nvol == 0 &&
                        out[i].ntags <= WIRE_MAX_TAGS &&
                        out[i].tags_at + out[i].ntags <= kept_tags);
            for (unsigned k = 0; k < out[i].ntags; k++)
                FUZZ_ASSERT(memchr(tags[out[i].tags_at + k].key, 0, WIRE_TAG_KEY) &&
                            memchr(tags[out[i].tags_at + k].value, 0, WIRE_TAG_VALUE));
        }
        free(out);
        free(tags);
    } else if (type == WIRE_VOLUMES) {
        size_t nv, na, kept_atts;
        if (!wire_count_volumes(payload, len, &nv, &na, &ntags))
            return 0;
        FUZZ_ASSERT(na <= nv * WIRE_MAX_ATTACH && ntags <= nv * WIRE_MAX_TAGS);
        struct wire_vol *out = malloc((nv ? nv : 1) * sizeof *out);
        struct wire_attach *atts = malloc((na ? na : 1) * sizeof *atts);
        struct wire_tag *tags = malloc((ntags ? ntags : 1) * sizeof *tags);
        size_t kept = wire_take_volumes(payload, len, out, atts, 0, &kept_atts, tags, 0,
                                        &kept_tags);
        FUZZ_ASSERT(kept <= nv && kept_atts <= na && kept_tags <= ntags);
        for (size_t i = 0; i < kept; i++) {
            const struct wire_vol *v = &out[i];
            FUZZ_ASSERT(v->id[0] && memchr(v->type, 0, sizeof v->type) &&
                        memchr(v->state, 0, sizeof v->state));
            FUZZ_ASSERT(byte01(&v->encrypted) && byte01(&v->multi));
            FUZZ_ASSERT(v->nattach <= WIRE_MAX_ATTACH && v->attach_at + v->nattach <= kept_atts);
            FUZZ_ASSERT(v->ntags <= WIRE_MAX_TAGS && v->tags_at + v->ntags <= kept_tags &&
                        memchr(v->az, 0, sizeof v->az));
            for (unsigned k = 0; k < v->ntags; k++)
                FUZZ_ASSERT(memchr(tags[v->tags_at + k].key, 0, WIRE_TAG_KEY) &&
                            memchr(tags[v->tags_at + k].value, 0, WIRE_TAG_VALUE));
            for (unsigned k = 0; k < v->nattach; k++) {
                const struct wire_attach *a = &atts[v->attach_at + k];
                FUZZ_ASSERT(memchr(a->instance_id, 0, WIRE_ID_LEN) &&
                            memchr(a->device, 0, sizeof a->device) && byte01(&a->dot));
            }
        }
        free(out);
        free(atts);
        free(tags);
    } else if (type == WIRE_DONE) {
        struct wire_stats s;
        if (wire_decode_done(payload, len, &s) == EBSD_OK)
            FUZZ_ASSERT(s.calls < 1000000000u && s.rss_kb >= 0);
    } else if (type == WIRE_ERROR) {
        struct wire_error e;
        if (wire_decode_error(payload, len, &e) == EBSD_OK)
            FUZZ_ASSERT(e.status != EBSD_OK && e.status <= EBSD_EUNSUPPORTED &&
                        memchr(e.code, 0, sizeof e.code) &&
                        memchr(e.message, 0, sizeof e.message));
    } else {
        FUZZ_ASSERT(n == (size_t)-1 || type == WIRE_INSTANCES);
    }
    return 0;
}
