/* ec2xml.c - streaming (expat) parser for EC2 DescribeInstances / DescribeVolumes answers and
 * the EC2 error envelope. Each element's meaning comes from its parent's meaning (a small
 * state machine over the element path), so the many nested <item>s of a response (groupSet,
 * blockDeviceMapping, tagSet, ...) never pass for instances. Limits: see ec2xml.h. */
#include "ec2xml.h"

#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ec2.h"
#include "mem.h"

enum doc_kind { DOC_INSTANCES, DOC_VOLUMES, DOC_ERROR };

/* Bytes of a tag's key or value read; the rest is skipped (they are cut to ec2_tag's sizes). */
#define TAG_TEXT_MAX 1024

/* What an element means, decided from its parent's meaning and its own name. */
enum kind {
    K_OTHER = 0, /* not ours: the whole subtree is skipped */
    K_DOC,       /* above the root */
    K_DI_ROOT,
    K_DV_ROOT,
    K_ERR_ROOT,
    K_NEXT,
    K_RESSET,
    K_RES,
    K_INSTSET,
    K_INST,
    K_I_ID,
    K_I_TYPE,
    K_I_STATE,
    K_I_STATE_NAME,
    K_I_PLACEMENT,
    K_I_AZ,
    K_VOLSET,
    K_VOL,
    K_V_ID,
    K_V_SIZE,
    K_V_TYPE,
    K_V_IOPS,
    K_V_TPUT,
    K_V_STATUS,
    K_V_ENC,
    K_V_MULTI,
    K_V_ATTSET,
    K_ATT,
    K_A_INST,
    K_A_DEV,
    K_A_STATUS,
    K_A_DOT,
    K_I_TAGSET,
    K_V_TAGSET,
    K_I_TAG,
    K_V_TAG,
    K_TAG_KEY,
    K_TAG_VALUE,
    K_V_AZ,
    K_V_CTIME,
    K_ERRORS,
    K_ERROR,
    K_E_CODE,
    K_E_MSG,
    K_E_REQID,
    K_COUNT
};

struct transition {
    enum kind parent;
    unsigned char len;       /* strlen(name): most names are told apart without reading them */
    const char *name;
    enum kind child;
};

#define T(parent, name, child) {parent, sizeof name - 1, name, child}

static const struct transition transitions[] = {
    T(K_DI_ROOT, "reservationSet", K_RESSET),
    T(K_DI_ROOT, "nextToken", K_NEXT),
    T(K_RESSET, "item", K_RES),
    T(K_RES, "instancesSet", K_INSTSET),
    T(K_INSTSET, "item", K_INST),
    T(K_INST, "instanceId", K_I_ID),
    T(K_INST, "instanceType", K_I_TYPE),
    T(K_INST, "instanceState", K_I_STATE),
    T(K_INST, "placement", K_I_PLACEMENT),
    T(K_I_STATE, "name", K_I_STATE_NAME),
    T(K_I_PLACEMENT, "availabilityZone", K_I_AZ),
    T(K_INST, "tagSet", K_I_TAGSET),
    T(K_I_TAGSET, "item", K_I_TAG),
    T(K_I_TAG, "key", K_TAG_KEY),
    T(K_I_TAG, "value", K_TAG_VALUE),
    T(K_VOL, "tagSet", K_V_TAGSET),
    T(K_V_TAGSET, "item", K_V_TAG),
    T(K_V_TAG, "key", K_TAG_KEY),
    T(K_V_TAG, "value", K_TAG_VALUE),
    T(K_VOL, "availabilityZone", K_V_AZ),
    T(K_VOL, "createTime", K_V_CTIME),
    T(K_DV_ROOT, "volumeSet", K_VOLSET),
    T(K_DV_ROOT, "nextToken", K_NEXT),
    T(K_VOLSET, "item", K_VOL),
    T(K_VOL, "volumeId", K_V_ID),
    T(K_VOL, "size", K_V_SIZE),
    T(K_VOL, "volumeType", K_V_TYPE),
    T(K_VOL, "iops", K_V_IOPS),
    T(K_VOL, "throughput", K_V_TPUT),
    T(K_VOL, "status", K_V_STATUS),
    T(K_VOL, "encrypted", K_V_ENC),
    T(K_VOL, "multiAttachEnabled", K_V_MULTI),
    T(K_VOL, "attachmentSet", K_V_ATTSET),
    T(K_V_ATTSET, "item", K_ATT),
    T(K_ATT, "instanceId", K_A_INST),
    T(K_ATT, "device", K_A_DEV),
    T(K_ATT, "status", K_A_STATUS),
    T(K_ATT, "deleteOnTermination", K_A_DOT),
    T(K_ERR_ROOT, "Errors", K_ERRORS),
    T(K_ERR_ROOT, "RequestID", K_E_REQID),
    T(K_ERR_ROOT, "RequestId", K_E_REQID),
    T(K_ERR_ROOT, "requestId", K_E_REQID),
    T(K_ERRORS, "Error", K_ERROR),
    T(K_ERROR, "Code", K_E_CODE),
    T(K_ERROR, "Message", K_E_MSG),
};
#undef T

#define NTRANSITIONS (sizeof transitions / sizeof transitions[0])

/* Each parent's transitions, by index into transitions[]: an element is matched against its
 * parent's few names only (an instance has about 40 children, of which 6 are ours). */
static struct {
    unsigned char n;
    unsigned char at[16];
} by_parent[K_COUNT];
static pthread_once_t by_parent_once = PTHREAD_ONCE_INIT;

static void index_transitions(void)
{
    for (size_t i = 0; i < NTRANSITIONS; i++) {
        enum kind p = transitions[i].parent;
        if (by_parent[p].n == sizeof by_parent[p].at) {
            fprintf(stderr, "ebsd: ec2xml: too many transitions from one parent\n");
            abort(); /* a fault in the table above, caught by every test that parses */
        }
        by_parent[p].at[by_parent[p].n++] = (unsigned char)i;
    }
}

static bool is_leaf(enum kind k)
{
    switch (k) {
    case K_NEXT:
    case K_I_ID:
    case K_I_TYPE:
    case K_I_STATE_NAME:
    case K_I_AZ:
    case K_V_ID:
    case K_V_SIZE:
    case K_V_TYPE:
    case K_V_IOPS:
    case K_V_TPUT:
    case K_V_STATUS:
    case K_V_ENC:
    case K_V_MULTI:
    case K_A_INST:
    case K_A_DEV:
    case K_A_STATUS:
    case K_A_DOT:
    case K_TAG_KEY:
    case K_TAG_VALUE:
    case K_V_AZ:
    case K_V_CTIME:
    case K_E_CODE:
    case K_E_MSG:
    case K_E_REQID:
        return true;
    default:
        return false;
    }
}

struct px {
    XML_Parser p;
    enum doc_kind want;
    ebsd_status st;          /* first failure; EBSD_OK while fine */
    char why[160];           /* what failed, for err->message */
    enum kind stack[EC2XML_MAX_DEPTH + 1];
    int depth;               /* elements open; stack[0] is K_DOC */
    enum kind root;
    struct buf text;         /* text of the open leaf (capped) */
    char *next_token;

    struct ec2_instance *inst;
    size_t ninst, capinst;
    struct ec2_instance cur_inst;

    struct ec2_volume *vol;
    size_t nvol, capvol;
    struct ec2_volume cur_vol;
    bool cur_vol_size_seen;
    size_t capatt;
    struct ec2_attachment cur_att;
    struct ec2_tag cur_tag;
    bool tags;               /* keep tag sets (else skipped unread) */
    size_t captag;           /* room in the tag array of the open instance or volume */

    struct ec2_error e;
    int nerrors;             /* <Error> elements closed (only the first is kept) */
    size_t fed;              /* bytes of the document so far */
};

static void fail(struct px *x, ebsd_status st, const char *why)
{
    if (x->st != EBSD_OK)
        return;
    x->st = st;
    snprintf(x->why, sizeof x->why, "%s (line %lu)", why,
             (unsigned long)XML_GetCurrentLineNumber(x->p));
    XML_StopParser(x->p, XML_FALSE);
}

/* The name past any namespace prefix; *len is its length. */
static const char *local_name(const char *name, size_t *len)
{
    const char *start = name, *p = name;
    for (; *p; p++)
        if (*p == ':')
            start = p + 1;
    *len = (size_t)(p - start);
    return start;
}

static enum kind child_kind(struct px *x, enum kind parent, const char *name, size_t len)
{
    if (parent == K_OTHER)
        return K_OTHER;
    if (parent == K_DOC) {
        if (strcmp(name, "Response") == 0)
            return K_ERR_ROOT;
        if (x->want == DOC_INSTANCES && strcmp(name, "DescribeInstancesResponse") == 0)
            return K_DI_ROOT;
        if (x->want == DOC_VOLUMES && strcmp(name, "DescribeVolumesResponse") == 0)
            return K_DV_ROOT;
        fail(x, EBSD_EPARSE, "unexpected root element");
        return K_OTHER;
    }
    for (unsigned j = 0; j < by_parent[parent].n; j++) {
        const struct transition *t = &transitions[by_parent[parent].at[j]];
        if (t->len == len && memcmp(t->name, name, len) == 0) {
            enum kind k = t->child;
            /* a query that needs no tag skips the tag sets like any subtree not ours */
            if (!x->tags && (k == K_I_TAGSET || k == K_V_TAGSET))
                return K_OTHER;
            return k;
        }
    }
    return K_OTHER;
}

/* Trims XML whitespace from both ends of the captured text; returns its start, sets *n. */
static const char *trimmed(struct px *x, size_t *n)
{
    const char *s = x->text.data ? x->text.data : "";
    size_t len = x->text.len;
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
                   s[len - 1] == '\r'))
        len--;
    *n = len;
    return s;
}

/* Exact copy of a value that must fit (ids, types, zones, devices): too long is an error,
 * since a cut id would silently count the wrong thing. */
static void set_exact(struct px *x, char *dst, size_t dstlen, const char *what)
{
    size_t n;
    const char *s = trimmed(x, &n);
    if (n >= dstlen) {
        char why[96];
        snprintf(why, sizeof why, "%s longer than %zu bytes", what, dstlen - 1);
        fail(x, EBSD_EPARSE, why);
        return;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* A state name we do not know and cannot hold becomes "unknown" rather than a cut string. */
static void set_state(struct px *x, char *dst, size_t dstlen)
{
    size_t n;
    const char *s = trimmed(x, &n);
    if (n >= dstlen) {
        snprintf(dst, dstlen, "unknown");
        return;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Diagnostic text (error code, message): cut at the field size on a UTF-8 boundary. */
static void set_cut(struct px *x, char *dst, size_t dstlen)
{
    size_t n;
    const char *s = trimmed(x, &n);
    if (n >= dstlen) {
        n = dstlen - 1;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void set_int64(struct px *x, int64_t *dst, int64_t max, bool empty_ok, const char *what)
{
    size_t n;
    const char *s = trimmed(x, &n);
    char why[96];
    int64_t v = 0;
    if (n == 0 && empty_ok) {
        *dst = 0;
        return;
    }
    if (n == 0 || n > 18)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto bad;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        goto bad;
    *dst = v;
    return;
bad:
    snprintf(why, sizeof why, "%s is not a number in range", what);
    fail(x, EBSD_EPARSE, why);
}

static void set_bool(struct px *x, bool *dst, const char *what)
{
    size_t n;
    const char *s = trimmed(x, &n);
    if (n == 0 || (n == 5 && memcmp(s, "false", 5) == 0)) {
        *dst = false;
    } else if (n == 4 && memcmp(s, "true", 4) == 0) {
        *dst = true;
    } else {
        char why[96];
        snprintf(why, sizeof why, "%s is not true or false", what);
        fail(x, EBSD_EPARSE, why);
    }
}

static void set_int(struct px *x, int *dst, const char *what)
{
    int64_t v = 0;
    set_int64(x, &v, INT_MAX, true, what);
    if (x->st == EBSD_OK)
        *dst = (int)v;
}

static void commit_leaf(struct px *x, enum kind k)
{
    int64_t size = 0;
    switch (k) {
    case K_NEXT: {
        size_t n;
        const char *s = trimmed(x, &n);
        free(x->next_token);
        x->next_token = n ? xstrndup(s, n) : NULL;
        break;
    }
    case K_I_ID:
        set_exact(x, x->cur_inst.id, sizeof x->cur_inst.id, "instanceId");
        break;
    case K_I_TYPE:
        set_exact(x, x->cur_inst.type, sizeof x->cur_inst.type, "instanceType");
        break;
    case K_I_STATE_NAME:
        set_state(x, x->cur_inst.state, sizeof x->cur_inst.state);
        break;
    case K_I_AZ:
        set_exact(x, x->cur_inst.az, sizeof x->cur_inst.az, "availabilityZone");
        break;
    case K_V_ID:
        set_exact(x, x->cur_vol.id, sizeof x->cur_vol.id, "volumeId");
        break;
    case K_V_SIZE:
        set_int64(x, &size, INT64_C(1) << 40, false, "size");
        if (x->st == EBSD_OK) {
            x->cur_vol.size_gib = size;
            x->cur_vol_size_seen = true;
        }
        break;
    case K_V_TYPE:
        set_exact(x, x->cur_vol.type, sizeof x->cur_vol.type, "volumeType");
        break;
    case K_V_IOPS:
        set_int(x, &x->cur_vol.iops, "iops");
        break;
    case K_V_TPUT:
        set_int(x, &x->cur_vol.throughput, "throughput");
        break;
    case K_V_STATUS:
        set_state(x, x->cur_vol.state, sizeof x->cur_vol.state);
        break;
    case K_V_ENC:
        set_bool(x, &x->cur_vol.encrypted, "encrypted");
        break;
    case K_V_MULTI:
        set_bool(x, &x->cur_vol.multi_attach, "multiAttachEnabled");
        break;
    case K_A_INST:
        set_exact(x, x->cur_att.instance_id, sizeof x->cur_att.instance_id, "instanceId");
        break;
    case K_A_DEV:
        set_exact(x, x->cur_att.device, sizeof x->cur_att.device, "device");
        break;
    case K_A_STATUS:
        set_state(x, x->cur_att.state, sizeof x->cur_att.state);
        break;
    case K_A_DOT:
        set_bool(x, &x->cur_att.delete_on_termination, "deleteOnTermination");
        break;
    case K_TAG_KEY:
        set_cut(x, x->cur_tag.key, sizeof x->cur_tag.key);
        break;
    case K_TAG_VALUE:
        set_cut(x, x->cur_tag.value, sizeof x->cur_tag.value);
        break;
    case K_V_AZ:
        set_exact(x, x->cur_vol.az, sizeof x->cur_vol.az, "availabilityZone");
        break;
    case K_V_CTIME:
        set_cut(x, x->cur_vol.create_time, sizeof x->cur_vol.create_time);
        break;
    case K_E_CODE:
        if (x->nerrors == 0)
            set_cut(x, x->e.code, sizeof x->e.code);
        break;
    case K_E_MSG:
        if (x->nerrors == 0)
            set_cut(x, x->e.message, sizeof x->e.message);
        break;
    case K_E_REQID:
        set_cut(x, x->e.request_id, sizeof x->e.request_id);
        break;
    default:
        break;
    }
}

static void begin_item(struct px *x, enum kind k)
{
    switch (k) {
    case K_INST:
        if (x->ninst >= EC2XML_MAX_ITEMS) {
            fail(x, EBSD_ETOOBIG, "too many instances");
            return;
        }
        free(x->cur_inst.tags);
        memset(&x->cur_inst, 0, sizeof x->cur_inst);
        x->captag = 0;
        break;
    case K_I_TAG:
    case K_V_TAG:
        memset(&x->cur_tag, 0, sizeof x->cur_tag);
        break;
    case K_VOL:
        if (x->nvol >= EC2XML_MAX_ITEMS) {
            fail(x, EBSD_ETOOBIG, "too many volumes");
            return;
        }
        free(x->cur_vol.attach);
        free(x->cur_vol.tags);
        memset(&x->cur_vol, 0, sizeof x->cur_vol);
        x->cur_vol_size_seen = false;
        x->capatt = 0;
        x->captag = 0;
        break;
    case K_ATT:
        if (x->cur_vol.nattach >= EC2XML_MAX_ATTACH) {
            fail(x, EBSD_ETOOBIG, "too many attachments on one volume");
            return;
        }
        memset(&x->cur_att, 0, sizeof x->cur_att);
        break;
    default:
        break;
    }
}

/* Keeps the tag just closed: a tag without a key is not one; past EC2_MAX_TAGS, ignored. */
static void add_tag(struct px *x, struct ec2_tag **tags, size_t *n)
{
    if (!x->cur_tag.key[0] || *n >= EC2_MAX_TAGS)
        return;
    if (*n == x->captag) {
        x->captag = x->captag ? x->captag * 2 : 4;
        *tags = xrealloc(*tags, x->captag * sizeof **tags);
    }
    (*tags)[(*n)++] = x->cur_tag;
}

static void end_item(struct px *x, enum kind k)
{
    switch (k) {
    case K_INST:
        if (!x->cur_inst.id[0]) {
            fail(x, EBSD_EPARSE, "instance without instanceId");
            return;
        }
        if (x->ninst == x->capinst) {
            x->capinst = x->capinst ? x->capinst * 2 : 64;
            x->inst = xrealloc(x->inst, x->capinst * sizeof *x->inst);
        }
        x->inst[x->ninst++] = x->cur_inst; /* the tag array moves with it */
        memset(&x->cur_inst, 0, sizeof x->cur_inst);
        break;
    case K_I_TAG:
        add_tag(x, &x->cur_inst.tags, &x->cur_inst.ntags);
        break;
    case K_V_TAG:
        add_tag(x, &x->cur_vol.tags, &x->cur_vol.ntags);
        break;
    case K_VOL:
        if (!x->cur_vol.id[0] || !x->cur_vol_size_seen) {
            fail(x, EBSD_EPARSE, "volume without volumeId or size");
            return;
        }
        if (x->nvol == x->capvol) {
            x->capvol = x->capvol ? x->capvol * 2 : 64;
            x->vol = xrealloc(x->vol, x->capvol * sizeof *x->vol);
        }
        x->vol[x->nvol++] = x->cur_vol; /* the attach array moves with it */
        memset(&x->cur_vol, 0, sizeof x->cur_vol);
        break;
    case K_ATT:
        if (!x->cur_att.instance_id[0]) {
            fail(x, EBSD_EPARSE, "attachment without instanceId");
            return;
        }
        if (x->cur_vol.nattach == x->capatt) {
            x->capatt = x->capatt ? x->capatt * 2 : 2;
            x->cur_vol.attach = xrealloc(x->cur_vol.attach, x->capatt * sizeof *x->cur_vol.attach);
        }
        x->cur_vol.attach[x->cur_vol.nattach++] = x->cur_att;
        break;
    case K_ERROR:
        x->nerrors++;
        break;
    default:
        break;
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct px *x = ud;
    (void)attrs;
    if (x->st != EBSD_OK)
        return;
    if (x->depth >= EC2XML_MAX_DEPTH) {
        fail(x, EBSD_ETOOBIG, "elements nested too deep");
        return;
    }
    enum kind parent = x->stack[x->depth];
    /* most of an instance's elements sit inside ones we skip: no name to look at there */
    enum kind k = K_OTHER;
    if (parent != K_OTHER) {
        size_t len;
        const char *local = local_name(name, &len);
        k = child_kind(x, parent, local, len);
    }
    if (x->st != EBSD_OK)
        return;
    if (x->depth == 0)
        x->root = k;
    x->stack[++x->depth] = k;
    if (is_leaf(k))
        buf_reset(&x->text);
    else
        begin_item(x, k);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct px *x = ud;
    (void)name;
    if (x->st != EBSD_OK || x->depth == 0)
        return;
    enum kind k = x->stack[x->depth--];
    if (is_leaf(k)) {
        commit_leaf(x, k);
        buf_reset(&x->text);
    } else {
        end_item(x, k);
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct px *x = ud;
    if (x->st != EBSD_OK || !is_leaf(x->stack[x->depth]))
        return;
    enum kind k = x->stack[x->depth];
    if (k == K_TAG_KEY || k == K_TAG_VALUE) {
        /* a tag is cut when kept (ec2.h): a long one (EC2 allows 256 characters, 1 KiB of
         * UTF-8) is read past, never a reason to fail the page */
        size_t room = x->text.len < TAG_TEXT_MAX ? TAG_TEXT_MAX - x->text.len : 0;
        if ((size_t)len > room)
            len = (int)room;
    }
    if (buf_append(&x->text, s, (size_t)len) != EBSD_OK)
        fail(x, EBSD_ETOOBIG, "element text too long");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail(ud, EBSD_EPARSE, "DOCTYPE refused");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    fail(ud, EBSD_EPARSE, "entity declaration refused");
}

static void px_free(struct px *x)
{
    for (size_t i = 0; i < x->nvol; i++) {
        free(x->vol[i].attach);
        free(x->vol[i].tags);
    }
    free(x->vol);
    free(x->cur_vol.attach);
    free(x->cur_vol.tags);
    for (size_t i = 0; i < x->ninst; i++)
        free(x->inst[i].tags);
    free(x->inst);
    free(x->cur_inst.tags);
    free(x->next_token);
    buf_free(&x->text);
    if (x->p)
        XML_ParserFree(x->p);
}

/* Sets x up for a document of the kind want; fed by px_feed. */
static void px_begin(struct px *x, enum doc_kind want, bool tags)
{
    pthread_once(&by_parent_once, index_transitions);
    memset(x, 0, sizeof *x);
    x->want = want;
    x->tags = tags;
    x->stack[0] = K_DOC;
    buf_init(&x->text, EC2XML_MAX_TEXT);
    x->p = XML_ParserCreate(NULL);
    if (!x->p) {
        fprintf(stderr, "ebsd: XML_ParserCreate failed\n");
        abort(); /* expat allocates with malloc: failure here is OOM, fatal by policy */
    }
    XML_SetUserData(x->p, x);
    XML_SetElementHandler(x->p, on_start, on_end);
    XML_SetCharacterDataHandler(x->p, on_text);
    XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
    XML_SetEntityDeclHandler(x->p, on_entity_decl);
    XML_SetParamEntityParsing(x->p, XML_PARAM_ENTITY_PARSING_NEVER);
}

/* The next len bytes of the document (final: the last ones); x->st tells the outcome so far
 * (root checks are the caller's). After a failure the rest is not looked at. */
static void px_feed(struct px *x, const char *xml, size_t len, bool final)
{
    if (x->st != EBSD_OK)
        return;
    if (len > EC2XML_MAX_BYTES - x->fed) {
        x->st = EBSD_ETOOBIG;
        snprintf(x->why, sizeof x->why, "document larger than %u bytes", EC2XML_MAX_BYTES);
        return;
    }
    x->fed += len;
    /* in slices of at most 64 KiB, whatever the caller's pieces */
    const size_t slice = 64 * 1024;
    size_t off = 0;
    do {
        size_t n = len - off < slice ? len - off : slice;
        int last = final && off + n == len;
        if (XML_Parse(x->p, xml + off, (int)n, last) != XML_STATUS_OK) {
            if (x->st == EBSD_OK) {
                x->st = EBSD_EPARSE;
                snprintf(x->why, sizeof x->why, "XML error at line %lu: %s",
                         (unsigned long)XML_GetCurrentLineNumber(x->p),
                         XML_ErrorString(XML_GetErrorCode(x->p)));
            }
            return;
        }
        off += n;
    } while (off < len);
}

/* Runs the parser over a whole document. */
static void px_run(struct px *x, enum doc_kind want, bool tags, const char *xml, size_t len)
{
    px_begin(x, want, tags);
    px_feed(x, xml, len, true);
}

static void parse_failed(const struct px *x, struct ec2_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    snprintf(err->message, sizeof err->message, "EC2 response: %s", x->why);
}

/* After a clean parse with an error-envelope root: EBSD_EUPSTREAM with *err, or EPARSE when
 * the envelope carries no code. */
static ebsd_status envelope_result(struct px *x, struct ec2_error *err)
{
    if (!x->e.code[0]) {
        x->st = EBSD_EPARSE;
        snprintf(x->why, sizeof x->why, "error envelope without a Code");
        parse_failed(x, err);
        return EBSD_EPARSE;
    }
    if (err)
        *err = x->e;
    return EBSD_EUPSTREAM;
}

/* The outcome of a Describe document fed whole to x: EBSD_OK when x holds its items;
 * otherwise the parse failure or EC2's error envelope, with *err set. */
static ebsd_status describe_result(struct px *x, struct ec2_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (x->st != EBSD_OK) {
        parse_failed(x, err);
        return x->st;
    }
    if (x->root == K_ERR_ROOT)
        return envelope_result(x, err);
    return EBSD_OK;
}

/* Moves x's items into out (a struct ec2_instance_page or ec2_volume_page). */
static void take_page(struct px *x, void *out)
{
    if (x->want == DOC_VOLUMES) {
        struct ec2_volume_page *p = out;
        p->items = x->vol;
        p->n = x->nvol;
        p->next_token = x->next_token;
        x->vol = NULL;
        x->nvol = 0;
    } else {
        struct ec2_instance_page *p = out;
        p->items = x->inst;
        p->n = x->ninst;
        p->next_token = x->next_token;
        x->inst = NULL;
        x->ninst = 0;
    }
    x->next_token = NULL;
}

static ebsd_status parse_page(enum doc_kind doc, const char *xml, size_t len, bool tags,
                              void *out, struct ec2_error *err)
{
    struct px x;
    px_run(&x, doc, tags, xml, len);
    ebsd_status st = describe_result(&x, err);
    if (st == EBSD_OK)
        take_page(&x, out);
    px_free(&x);
    return st;
}

ebsd_status ec2_parse_instances(const char *xml, size_t len, bool tags,
                                struct ec2_instance_page *out, struct ec2_error *err)
{
    return parse_page(DOC_INSTANCES, xml, len, tags, out, err);
}

ebsd_status ec2_parse_volumes(const char *xml, size_t len, bool tags,
                              struct ec2_volume_page *out, struct ec2_error *err)
{
    return parse_page(DOC_VOLUMES, xml, len, tags, out, err);
}

struct ec2xml_stream {
    struct px x;
};

struct ec2xml_stream *ec2xml_stream_new(bool volumes, bool tags)
{
    struct ec2xml_stream *s = xmalloc(sizeof *s);
    px_begin(&s->x, volumes ? DOC_VOLUMES : DOC_INSTANCES, tags);
    return s;
}

ebsd_status ec2xml_stream_feed(struct ec2xml_stream *s, const char *piece, size_t n)
{
    px_feed(&s->x, piece, n, false);
    return s->x.st;
}

ebsd_status ec2xml_stream_end(struct ec2xml_stream *s, void *out, struct ec2_error *err)
{
    px_feed(&s->x, "", 0, true);
    ebsd_status st = describe_result(&s->x, err);
    if (st == EBSD_OK)
        take_page(&s->x, out);
    return st;
}

void ec2xml_stream_free(struct ec2xml_stream *s)
{
    if (!s)
        return;
    px_free(&s->x);
    free(s);
}

ebsd_status ec2_parse_error(const char *xml, size_t len, struct ec2_error *err)
{
    ebsd_status st;
    struct px x;
    memset(err, 0, sizeof *err);
    px_run(&x, DOC_ERROR, false, xml, len);
    st = x.st;
    if (st != EBSD_OK) {
        parse_failed(&x, err);
        goto out;
    }
    st = envelope_result(&x, err) == EBSD_EUPSTREAM ? EBSD_OK : EBSD_EPARSE;
out:
    px_free(&x);
    return st;
}

void ec2_instance_page_free(struct ec2_instance_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].tags);
    free(p->items);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

void ec2_volume_page_free(struct ec2_volume_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].attach);
        free(p->items[i].tags);
    }
    free(p->items);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}
