/* wire.h - what workers tell the parent over their pipes: the frame types, the fixed-size
 * records (the one model of an instance and of a volume that the engine collects and the
 * answer aggregates), and their encoding (child side) and decoding (parent side).
 *
 * INSTANCES and VOLUMES frames carry the records below copied as they are: parent and child
 * are the same binary. An INSTANCES frame is, for each instance, a struct wire_inst followed
 * by its ntags struct wire_tag; a VOLUMES frame is, for each volume, a struct wire_vol
 * followed by its nattach struct wire_attach, then its ntags tags. Attachments and tags live
 * beside the records in the parent too (attach_at, tags_at): most volumes have one
 * attachment and most queries no tag, so fixed arrays in every record would multiply the
 * bytes copied, sorted and kept. The
 * decoder checks every length, terminates every string and normalises every bool, so a
 * corrupt frame can fail its request but never overrun. DONE and ERROR frames are small
 * JSON objects. */
#ifndef EBSD_WIRE_H
#define EBSD_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ec2.h"
#include "status.h"

enum wire_type { WIRE_INSTANCES = 1, WIRE_VOLUMES = 2, WIRE_DONE = 3, WIRE_ERROR = 4,
                 WIRE_CREDS = 5 };

#define WIRE_ID_LEN 24
#define WIRE_MAX_ATTACH 16          /* EC2 multi-attach: up to 16 instances per volume */
#define WIRE_FRAME_MAX (64u << 20)  /* the largest frame the parent accepts */

/* What breakdowns need of tags, bounded: at most WIRE_MAX_TAGS per record (the keys a query groups by first, then, when the task keeps
 * every tag, the others in EC2's order), keys of at most WIRE_TAG_KEY - 1 bytes (a longer
 * key is never kept; route.c refuses to group by one) and values cut at WIRE_TAG_VALUE - 1
 * bytes on a UTF-8 boundary. */
#define WIRE_MAX_TAGS 4
#define WIRE_TAG_KEY 64
#define WIRE_TAG_VALUE 128
struct wire_tag {
    char key[WIRE_TAG_KEY];
    char value[WIRE_TAG_VALUE];
};

/* Which tags a worker puts in its records: the keys asked for (a query's group_by tags; the
 * same names are looked for on instances and volumes) and whether the rest follow. At most
 * WIRE_PICK_KEYS keys: one per group_by key (engine.h's ENGINE_MAX_GROUPS). */
#define WIRE_PICK_KEYS 2
struct wire_tag_pick {
    const char *keys[WIRE_PICK_KEYS];
    unsigned nkeys;
    bool all;
};

struct wire_inst {
    char id[WIRE_ID_LEN];
    char state[16];
    unsigned nvol;                  /* filled by the aggregation, not sent */
    int64_t gib;                    /* filled by the aggregation, not sent */
    char type[32];                  /* instanceType */
    unsigned ntags;                 /* at most WIRE_MAX_TAGS */
    size_t tags_at;                 /* its tags: tags[tags_at .. tags_at + ntags) */
};

struct wire_attach {
    char instance_id[WIRE_ID_LEN];
    char device[32];
    char state[16];
    bool dot;                       /* delete on termination */
};

/* A volume; its attachments are atts[attach_at .. attach_at + nattach) and its tags
 * tags[tags_at .. tags_at + ntags) of the arrays they were decoded into (on the wire they
 * follow the record). */
struct wire_vol {
    char id[32];
    int64_t size_gib;
    char type[16];
    int iops, throughput;
    char state[16];
    bool encrypted, multi;
    unsigned nattach;          /* at most WIRE_MAX_ATTACH */
    size_t attach_at;
    char az[32];                    /* availabilityZone */
    char create_time[32];           /* createTime as EC2 wrote it */
    unsigned ntags;                 /* at most WIRE_MAX_TAGS */
    size_t tags_at;
};

/* The tag name of a group_by key "instance_tag:NAME" or "volume_tag:NAME" (*on_instance, when
 * not NULL, says which), or NULL for any other key. */
const char *wire_group_tag(const char *key, bool *on_instance);

/* The value of tag key in a record's tags, or NULL when it carries none. */
const char *wire_tag_get(const struct wire_tag *tags, unsigned ntags, const char *key);

/* A worker's EC2 call counts (DONE and ERROR frames) and, in DONE, its peak RSS. */
struct wire_stats {
    unsigned calls, describe_instances, describe_volumes, retries, throttled;
    bool has_quota;
    int retry_quota;
    long rss_kb;
    bool clock_offset_set;     /* the worker learned a clock offset from EC2's Date (skew.h) */
    int64_t clock_offset_ms;
};

/* An ERROR frame: the worker's status, and what EC2 said when it said anything. */
struct wire_error {
    ebsd_status status;
    long http_status;
    char code[64];
    char message[256];
    struct wire_stats stats;
};

/* ---- child side: each writes one frame to fd (blocking); EBSD_EIO when the pipe fails */

/* One INSTANCES frame with the page's instances, tags as pick says (NULL: none). */
EBSD_MUST_CHECK ebsd_status wire_put_instances(int fd, const struct ec2_instance_page *p,
                                               const struct wire_tag_pick *pick);
/* One VOLUMES frame with the page's volumes (every attachment, up to WIRE_MAX_ATTACH), tags
 * as pick says (NULL: none). */
EBSD_MUST_CHECK ebsd_status wire_put_volumes(int fd, const struct ec2_volume_page *p,
                                             const struct wire_tag_pick *pick);
/* Copies the tags pick keeps from src (n of them) into dst; returns how many. */
unsigned wire_pick_tags(const struct ec2_tag *src, size_t n, const struct wire_tag_pick *pick,
                        struct wire_tag *dst);
/* DONE with the client's counts (s may be NULL) and the worker's peak RSS in KiB. */
EBSD_MUST_CHECK ebsd_status wire_put_done(int fd, const struct ec2_stats *s, long rss_kb);
/* ERROR with st, EC2's answer in e (code and message may be empty), the counts (s may be
 * NULL) and the worker's peak memory (0: not said). An empty message is sent as
 * status_str(st). */
EBSD_MUST_CHECK ebsd_status wire_put_error(int fd, ebsd_status st, const struct ec2_error *e,
                                           const struct ec2_stats *s, long rss_kb);

/* ---- parent side */

/* How many instances an INSTANCES frame (data, len bytes) holds, or (size_t)-1 when it is
 * malformed (a record or its tags cut short, more than WIRE_MAX_TAGS tags); *ntags gets how
 * many tags they carry. Tags cost bytes only when a query asks for them. */
size_t wire_records(int type, const char *data, size_t len, size_t *ntags);
/* Counts the volumes, attachments and tags of a VOLUMES frame; false when it is malformed (a
 * record cut short, more than WIRE_MAX_ATTACH attachments or WIRE_MAX_TAGS tags). */
bool wire_count_volumes(const char *data, size_t len, size_t *nvols, size_t *natts,
                        size_t *ntags);
/* Decodes an INSTANCES frame into out and tags (room for wire_records' counts); returns how
 * many instances were kept (records with an empty id are dropped, with their tags); each
 * kept one's tags_at is tags_base + its first tag's index in tags, *ntags_kept the tags
 * kept. Strings come out terminated; nvol and gib are zeroed. */
size_t wire_take_instances(const char *data, size_t len, struct wire_inst *out,
                           struct wire_tag *tags, size_t tags_base, size_t *ntags_kept);
/* Decodes a VOLUMES frame that wire_count_volumes accepted into vols, atts and tags (room for
 * its counts); each kept volume's attach_at is atts_base + its first attachment's index in
 * atts, its tags_at likewise. Volumes with an empty id are dropped, with their attachments
 * and tags. Strings come out terminated, bools 0 or 1. Returns the volumes kept; *natts_kept
 * and *ntags_kept the attachments and tags kept. */
size_t wire_take_volumes(const char *data, size_t len, struct wire_vol *vols,
                         struct wire_attach *atts, size_t atts_base, size_t *natts_kept,
                         struct wire_tag *tags, size_t tags_base, size_t *ntags_kept);
/* Decodes a DONE or ERROR frame. EBSD_EPARSE when it is not the JSON object expected. */
EBSD_MUST_CHECK ebsd_status wire_decode_done(const char *data, size_t len,
                                             struct wire_stats *out);
EBSD_MUST_CHECK ebsd_status wire_decode_error(const char *data, size_t len,
                                              struct wire_error *out);

#endif
