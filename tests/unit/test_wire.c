/* test_wire.c - the worker-to-parent records: encode in a "child" (a pipe), decode as the
 * parent does; malformed frames are refused or made safe. */
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "wire.h"

/* A pipe whose read end is non-blocking, as the parent's is. */
static int open_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

/* Reads the next frame written to the pipe's read end fd (its type, or -1). */
static int read_frame(int fd, char **data, size_t *len)
{
    struct frame_reader rd;
    frame_reader_init(&rd, WIRE_FRAME_MAX);
    bool eof = false;
    uint8_t type = 0;
    const char *d;
    int out = -1;
    for (int i = 0; i < 100 && out < 0; i++) {
        if (frame_reader_feed(&rd, fd, &eof) != EBSD_OK)
            break;
        if (frame_reader_next(&rd, &type, &d, len) == EBSD_OK) {
            *data = malloc(*len ? *len : 1);
            memcpy(*data, d, *len);
            out = type;
        }
        if (eof)
            break;
    }
    frame_reader_free(&rd);
    return out;
}

static void test_volumes_round_trip_keeps_16_attachments(void)
{
    struct ec2_attachment att[20];
    memset(att, 0, sizeof att);
    for (int i = 0; i < 20; i++) {
        snprintf(att[i].instance_id, sizeof att[i].instance_id, "i-%017x", i + 1);
        snprintf(att[i].device, sizeof att[i].device, "/dev/sd%c", 'f' + i);
        snprintf(att[i].state, sizeof att[i].state, "%s", i % 3 ? "attached" : "attaching");
        att[i].delete_on_termination = i % 2;
    }
    struct ec2_volume v[2];
    memset(v, 0, sizeof v);
    snprintf(v[0].id, sizeof v[0].id, "vol-multi");
    v[0].size_gib = 100;
    snprintf(v[0].type, sizeof v[0].type, "io2");
    v[0].iops = 3000;
    snprintf(v[0].state, sizeof v[0].state, "in-use");
    v[0].multi_attach = true;
    v[0].nattach = 20; /* more than EC2 allows: only the first 16 travel */
    v[0].attach = att;
    snprintf(v[1].id, sizeof v[1].id, "vol-single");
    v[1].size_gib = 8;
    v[1].encrypted = true;
    v[1].nattach = 1;
    v[1].attach = att;
    struct ec2_volume_page p = {v, 2, NULL};
    int fds[2];
    CHECK(open_pipe(fds) == 0);
    CHECK(wire_put_volumes(fds[1], &p, NULL) == EBSD_OK);
    close(fds[1]);
    char *data = NULL;
    size_t len = 0;
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_VOLUMES);
    close(fds[0]);
    size_t nv = 0, na = 0, nt = 0, kept_atts = 0, kept_tags = 0;
    CHECK(wire_count_volumes(data, len, &nv, &na, &nt));
    CHECK_INT(nv, 2);
    CHECK_INT(na, 17);
    CHECK_INT(nt, 0);
    /* only what is sent is copied: no room kept for 16 attachments of a single one */
    CHECK_INT(len, 2 * sizeof(struct wire_vol) + 17 * sizeof(struct wire_attach));
    struct wire_vol out[2];
    struct wire_attach atts[17];
    CHECK_INT(wire_take_volumes(data, len, out, atts, 100, &kept_atts, NULL, 0, &kept_tags), 2);
    CHECK_INT(kept_tags, 0);
    CHECK_INT(kept_atts, 17);
    CHECK_INT(out[0].attach_at, 100);
    CHECK_INT(out[1].attach_at, 116);
    CHECK_STR(out[0].id, "vol-multi");
    CHECK_INT(out[0].size_gib, 100);
    CHECK_STR(out[0].type, "io2");
    CHECK_INT(out[0].iops, 3000);
    CHECK(out[0].multi);
    CHECK_INT(out[0].nattach, 16);
    for (int i = 0; i < 16; i++) {
        CHECK_STR(atts[i].instance_id, att[i].instance_id);
        CHECK_STR(atts[i].device, att[i].device);
        CHECK_STR(atts[i].state, att[i].state);
        CHECK_INT(atts[i].dot, i % 2);
    }
    CHECK_STR(atts[16].instance_id, att[0].instance_id);
    CHECK_STR(out[1].id, "vol-single");
    CHECK(out[1].encrypted && !out[1].multi);
    CHECK_INT(out[1].nattach, 1);
    free(data);
}

static void test_instances_round_trip(void)
{
    struct ec2_instance in[3];
    memset(in, 0, sizeof in);
    snprintf(in[0].id, sizeof in[0].id, "i-0000000000000000a");
    snprintf(in[0].state, sizeof in[0].state, "running");
    snprintf(in[1].id, sizeof in[1].id, "i-0000000000000000b");
    snprintf(in[1].state, sizeof in[1].state, "stopped");
    /* in[2] has no id: the parent drops it */
    struct ec2_instance_page p = {in, 3, NULL};
    int fds[2];
    CHECK(open_pipe(fds) == 0);
    CHECK(wire_put_instances(fds[1], &p, NULL) == EBSD_OK);
    close(fds[1]);
    char *data = NULL;
    size_t len = 0;
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_INSTANCES);
    close(fds[0]);
    size_t nt = 99, kept_tags = 99;
    CHECK_INT(wire_records(WIRE_INSTANCES, data, len, &nt), 3);
    CHECK_INT(nt, 0);
    struct wire_inst out[3];
    CHECK_INT(wire_take_instances(data, len, out, NULL, 0, &kept_tags), 2);
    CHECK_INT(kept_tags, 0);
    CHECK_STR(out[0].id, "i-0000000000000000a");
    CHECK_STR(out[1].state, "stopped");
    CHECK_INT(out[0].nvol, 0);
    free(data);
}

static void test_done_and_error_round_trip(void)
{
    struct ec2_stats s = {.calls = 7, .describe_instances = 2, .describe_volumes = 5,
                          .retries = 1, .throttled = 1, .retry_quota = 495};
    int fds[2];
    CHECK(open_pipe(fds) == 0);
    CHECK(wire_put_done(fds[1], &s, 9000) == EBSD_OK);
    char *data = NULL;
    size_t len = 0;
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_DONE);
    struct wire_stats ws;
    CHECK(wire_decode_done(data, len, &ws) == EBSD_OK);
    CHECK_INT(ws.calls, 7);
    CHECK_INT(ws.describe_volumes, 5);
    CHECK(ws.has_quota);
    CHECK_INT(ws.retry_quota, 495);
    CHECK_INT(ws.rss_kb, 9000);
    free(data);

    struct ec2_error e = {.http_status = 503};
    snprintf(e.code, sizeof e.code, "RequestLimitExceeded");
    CHECK(wire_put_error(fds[1], EBSD_ETHROTTLED, &e, &s, 4321) == EBSD_OK);
    close(fds[1]);
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_ERROR);
    close(fds[0]);
    struct wire_error we;
    CHECK(wire_decode_error(data, len, &we) == EBSD_OK);
    CHECK_INT(we.status, EBSD_ETHROTTLED);
    CHECK_INT(we.http_status, 503);
    CHECK_STR(we.code, "RequestLimitExceeded");
    CHECK_STR(we.message, status_str(EBSD_ETHROTTLED)); /* an empty message becomes this */
    CHECK_INT(we.stats.calls, 7);
    CHECK_INT(we.stats.rss_kb, 4321); /* the REPORT may be written before the reap */
    free(data);
}

static void test_malformed_frames(void)
{
    size_t nt, kept_tags;
    CHECK(wire_records(WIRE_INSTANCES, "abc", 3, &nt) == (size_t)-1);
    CHECK(wire_records(WIRE_DONE, "", 0, &nt) == (size_t)-1);
    CHECK_INT(wire_records(WIRE_INSTANCES, "", 0, &nt), 0);
    size_t nv, na, kept_atts;
    CHECK(wire_count_volumes("", 0, &nv, &na, &nt) && nv == 0 && na == 0 && nt == 0);
    /* every byte 0xff: nattach over 16 is refused */
    unsigned char raw[sizeof(struct wire_vol) + 2 * sizeof(struct wire_attach)];
    memset(raw, 0xff, sizeof raw);
    CHECK(!wire_count_volumes((const char *)raw, sizeof raw, &nv, &na, &nt));
    /* two attachments announced, one sent: cut short */
    unsigned two = 2, none = 0;
    memcpy(raw + offsetof(struct wire_vol, nattach), &two, sizeof two);
    CHECK(!wire_count_volumes((const char *)raw, sizeof raw, &nv, &na, &nt)); /* 0xffffffff tags */
    memcpy(raw + offsetof(struct wire_vol, ntags), &none, sizeof none);
    CHECK(!wire_count_volumes((const char *)raw, sizeof raw - 1, &nv, &na, &nt));
    CHECK(!wire_count_volumes((const char *)raw, sizeof(struct wire_vol) - 1, &nv, &na, &nt));
    /* whole: strings get terminated, bools become 0/1 */
    CHECK(wire_count_volumes((const char *)raw, sizeof raw, &nv, &na, &nt) && nv == 1 && na == 2);
    struct wire_vol v;
    struct wire_attach a[2];
    CHECK_INT(wire_take_volumes((const char *)raw, sizeof raw, &v, a, 0, &kept_atts, NULL, 0,
                                &kept_tags), 1);
    CHECK_INT(kept_tags, 0);
    CHECK(strlen(v.id) < sizeof v.id);
    CHECK_INT(v.nattach, 2);
    CHECK_INT(kept_atts, 2);
    unsigned char b;
    memcpy(&b, &v.encrypted, 1);
    CHECK_INT(b, 1);
    memcpy(&b, &a[1].dot, 1);
    CHECK_INT(b, 1);
    CHECK(strlen(a[1].state) < sizeof a[1].state);
    struct wire_stats s;
    CHECK(wire_decode_done("[1]", 3, &s) == EBSD_EPARSE);
    CHECK(wire_decode_done("{\"calls\":", 9, &s) == EBSD_EPARSE);
    struct wire_error e;
    CHECK(wire_decode_error("{\"status\":999,\"code\":7}", 23, &e) == EBSD_OK);
    CHECK_INT(e.status, EBSD_EIO); /* an unknown status is an I/O failure, never garbage */
    CHECK_STR(e.code, "");
    const char *frac = "{\"status\":0.7}"; /* truncates to 0: an error frame saying OK */
    CHECK(wire_decode_error(frac, strlen(frac), &e) == EBSD_OK);
    CHECK_INT(e.status, EBSD_EIO);
}

/* Tags are untrusted: the picked keys come first, at most WIRE_MAX_TAGS are kept, a key
 * too long for a record is never kept and a long value is cut on a UTF-8 boundary. */
static void test_tag_pick_is_bounded(void)
{
    struct ec2_tag src[8];
    memset(src, 0, sizeof src);
    for (int i = 0; i < 8; i++) {
        snprintf(src[i].key, sizeof src[i].key, "k%d", i);
        snprintf(src[i].value, sizeof src[i].value, "v%d", i);
    }
    memset(src[0].key, 'x', 100);           /* a 100-byte key: too long for a record */
    snprintf(src[6].key, sizeof src[6].key, "team");
    memset(src[6].value, 'a', 200);
    memcpy(src[6].value + 126, "\xc3\xa9", 2); /* an é across the cut */
    struct wire_tag out[WIRE_MAX_TAGS];
    struct wire_tag_pick none = {{NULL}, 0, false};
    CHECK_INT(wire_pick_tags(src, 8, &none, out), 0);
    CHECK_INT(wire_pick_tags(src, 8, NULL, out), 0);
    struct wire_tag_pick team = {{"team", "k3"}, 2, false};
    CHECK_INT(wire_pick_tags(src, 8, &team, out), 2);
    CHECK_STR(out[0].key, "team");
    CHECK_INT(strlen(out[0].value), 126);   /* cut before the é, never inside it */
    CHECK_STR(out[1].key, "k3");
    CHECK_STR(wire_tag_get(out, 2, "k3"), "v3");
    CHECK(wire_tag_get(out, 2, "k4") == NULL);
    struct wire_tag_pick all = {{"team", NULL}, 1, true};
    CHECK_INT(wire_pick_tags(src, 8, &all, out), WIRE_MAX_TAGS);
    CHECK_STR(out[0].key, "team");
    CHECK_STR(out[1].key, "k1");            /* k0's key does not fit: skipped */
    CHECK_STR(out[3].key, "k3");
}

/* Tags travel after their record (a volume's after its attachments) and only as many as
 * were picked: a frame without tags is as small as before them. */
static void test_tags_round_trip(void)
{
    struct ec2_tag it[2] = {{"team", "data & analytics <ml>"}, {"env", "prod"}};
    struct ec2_instance in[2];
    memset(in, 0, sizeof in);
    snprintf(in[0].id, sizeof in[0].id, "i-0000000000000000a");
    snprintf(in[0].type, sizeof in[0].type, "m5.large");
    in[0].tags = it;
    in[0].ntags = 2;
    snprintf(in[1].id, sizeof in[1].id, "i-0000000000000000b");
    struct ec2_instance_page p = {in, 2, NULL};
    struct wire_tag_pick team = {{"team", NULL}, 1, false};
    int fds[2], fds2[2];
    CHECK(open_pipe(fds) == 0);
    CHECK(open_pipe(fds2) == 0);
    CHECK(wire_put_instances(fds[1], &p, &team) == EBSD_OK);
    CHECK(wire_put_instances(fds2[1], &p, NULL) == EBSD_OK);
    close(fds[1]);
    close(fds2[1]);
    char *data = NULL, *bare = NULL;
    size_t len = 0, bare_len = 0;
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_INSTANCES);
    CHECK_INT(read_frame(fds2[0], &bare, &bare_len), WIRE_INSTANCES);
    close(fds[0]);
    close(fds2[0]);
    CHECK_INT(bare_len, 2 * sizeof(struct wire_inst));
    CHECK_INT(len - bare_len, sizeof(struct wire_tag));
    size_t ntg = 0, kept_tags = 0;
    CHECK_INT(wire_records(WIRE_INSTANCES, data, len, &ntg), 2);
    CHECK_INT(ntg, 1);
    CHECK(wire_records(WIRE_INSTANCES, data, len - 1, &ntg) == (size_t)-1);
    struct wire_inst out[2];
    struct wire_tag itags[1];
    CHECK_INT(wire_take_instances(data, len, out, itags, 7, &kept_tags), 2);
    CHECK_INT(kept_tags, 1);
    CHECK_STR(out[0].type, "m5.large");
    CHECK_INT(out[0].ntags, 1);
    CHECK_INT(out[0].tags_at, 7); /* tags_base + its first tag's index */
    CHECK_STR(wire_tag_get(itags + out[0].tags_at - 7, out[0].ntags, "team"),
              "data & analytics <ml>");
    CHECK_INT(out[1].ntags, 0);
    free(data);
    free(bare);

    struct ec2_attachment at = {"i-0000000000000000a", "/dev/sdf", "attached", true};
    struct ec2_volume v;
    memset(&v, 0, sizeof v);
    snprintf(v.id, sizeof v.id, "vol-1");
    snprintf(v.az, sizeof v.az, "us-east-1a");
    snprintf(v.create_time, sizeof v.create_time, "2024-01-01T00:00:00.000Z");
    v.attach = &at;
    v.nattach = 1;
    v.tags = it;
    v.ntags = 2;
    struct ec2_volume_page vp = {&v, 1, NULL};
    struct wire_tag_pick all = {{NULL, NULL}, 0, true};
    CHECK(open_pipe(fds) == 0);
    CHECK(wire_put_volumes(fds[1], &vp, &all) == EBSD_OK);
    close(fds[1]);
    CHECK_INT(read_frame(fds[0], &data, &len), WIRE_VOLUMES);
    close(fds[0]);
    /* room was made for WIRE_MAX_TAGS tags; the frame holds the 2 the volume has */
    CHECK_INT(len, sizeof(struct wire_vol) + sizeof(struct wire_attach) +
                       2 * sizeof(struct wire_tag));
    size_t nv, na, kept;
    CHECK(wire_count_volumes(data, len, &nv, &na, &ntg));
    CHECK_INT(nv, 1);
    CHECK_INT(ntg, 2);
    CHECK(!wire_count_volumes(data, len - 1, &nv, &na, &ntg));
    struct wire_vol ov;
    struct wire_attach oa;
    struct wire_tag vtags[2];
    CHECK_INT(wire_take_volumes(data, len, &ov, &oa, 0, &kept, vtags, 0, &kept_tags), 1);
    CHECK_INT(kept_tags, 2);
    CHECK_STR(ov.az, "us-east-1a");
    CHECK_STR(ov.create_time, "2024-01-01T00:00:00.000Z");
    CHECK_INT(ov.ntags, 2);
    CHECK_STR(wire_tag_get(vtags + ov.tags_at, ov.ntags, "env"), "prod");
    CHECK_STR(oa.instance_id, "i-0000000000000000a");
    free(data);
}

TEST_MAIN(T(test_tags_round_trip), T(test_volumes_round_trip_keeps_16_attachments), T(test_instances_round_trip),
          T(test_tag_pick_is_bounded),
          T(test_done_and_error_round_trip), T(test_malformed_frames))
