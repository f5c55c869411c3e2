/* fleet.h - the simulated region: instances, reservations and EBS volumes, generated from a
 * seed or loaded from a JSON/YAML file, plus the "truth" (what ebsd must report) computed
 * directly from this model. A fleet is immutable once built, so request threads share it
 * without locks. */
#ifndef EC2SIM_FLEET_H
#define EC2SIM_FLEET_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

#define FLEET_MAX_INSTANCES 100000
#define FLEET_ID_LEN 24 /* "vol-" + 17 hex + NUL fits with room */
/* EC2's limit: an io1/io2 Multi-Attach volume attaches to up to 16 Nitro instances. */
#define FLEET_MAX_ATTACH 16

enum inst_state {
    INST_PENDING = 0,
    INST_RUNNING,
    INST_SHUTTING_DOWN,
    INST_TERMINATED,
    INST_STOPPING,
    INST_STOPPED,
    INST_NSTATES
};

/* EC2 names and codes of instance states ("running", 16). */
const char *fleet_state_name(enum inst_state s);
int fleet_state_code(enum inst_state s);
/* Parses a state name; -1 if unknown. */
int fleet_state_parse(const char *name);

struct fleet_tag {
    char *key;
    char *value;
};

/* One attachment of a volume to an instance. state: attaching|attached|detaching|detached. */
struct fleet_attachment {
    size_t instance;    /* index into fleet.instances */
    char device[32];
    char state[12];
    int64_t attach_time; /* wall ms */
    bool delete_on_termination;
};

struct fleet_volume {
    char id[FLEET_ID_LEN];
    int size_gib;
    char type[12];       /* gp2 gp3 io1 io2 st1 sc1 standard */
    int iops;            /* 0 = not reported */
    int throughput;      /* MiB/s, 0 = not reported (gp3 only) */
    bool encrypted;
    bool multi_attach;
    char snapshot_id[FLEET_ID_LEN]; /* "" for none */
    char az[24];
    char status[12];     /* creating available in-use deleting deleted error */
    int64_t create_time;
    size_t natt;
    struct fleet_attachment *att; /* natt entries, owned (NULL when none) */
    struct fleet_tag *tags;       /* ntags entries, owned */
    size_t ntags;
};

/* A volume as seen from one instance (its block device mapping). */
struct fleet_bdm {
    size_t volume; /* index into fleet.volumes */
    size_t att;    /* index into that volume's att[] */
};

struct fleet_instance {
    char id[FLEET_ID_LEN];
    size_t reservation; /* index into fleet.reservations */
    enum inst_state state;
    char type[24];
    char az[24];
    char image_id[FLEET_ID_LEN];
    char private_ip[16];
    int64_t launch_time;
    struct fleet_tag *tags;
    size_t ntags;
    struct fleet_bdm *bdm;
    size_t nbdm;
};

struct fleet_reservation {
    char id[FLEET_ID_LEN];
    char owner_id[16];
};

struct fleet {
    char region[24];
    struct fleet_instance *instances; /* grouped: a reservation's instances are adjacent */
    size_t ninstances;
    struct fleet_reservation *reservations;
    size_t nreservations;
    struct fleet_volume *volumes;
    size_t nvolumes;
    /* Sorted indexes for id lookup. */
    size_t *inst_by_id;
    size_t *vol_by_id;
    /* Each record's <item> as the simulated EC2 writes it, rendered by ec2api.c on first use
     * and kept, since the record never changes: a page is then copies of its records, and
     * the simulator spends on a 10,000-instance listing a fraction of the CPU it took to
     * write each page anew (CPU of the machine that times ebsd's answer). One slot per
     * record, set once (compare and swap); freed with the fleet. */
    _Atomic(struct fleet_xml *) *inst_xml;
    _Atomic(struct fleet_xml *) *vol_xml;
    size_t ninst_xml, nvol_xml; /* the slots' counts */
};

struct fleet_xml {
    size_t len;
    char data[];
};

/* What the generator builds. fleet_params_default gives today's fleets: a default fleet
 * does not change when a new knob is added (tests compare totals across versions). */
struct fleet_params {
    size_t instances;     /* 0..FLEET_MAX_INSTANCES */
    uint64_t seed;
    int multi_attach_max; /* 2..FLEET_MAX_ATTACH attachments per multi-attach volume (2) */
    char region[24];      /* "us-east-1": its AZs (us-east-1a..f), else REGION + a, b, c */
    char account[16];     /* owner id of the reservations ("123456789012") */
    unsigned tag_values;  /* 0: instances tagged team platform/data (30 %); N: team-0000 ..
                             team-(N-1) on 75 % of instances (cardinality tests) */
};

/* Fills p with the defaults (100 instances, seed 1, multi-attach to 2 instances, region
 * us-east-1, account 123456789012). */
void fleet_params_default(struct fleet_params *p);

/* Generates a deterministic fleet from p (same p, same fleet, ids included). EBSD_EINVAL
 * when a parameter is out of range. Caller frees with fleet_free. */
EBSD_MUST_CHECK ebsd_status fleet_generate_with(const struct fleet_params *p, struct fleet **out);

/* fleet_generate_with the defaults but n instances and seed. */
EBSD_MUST_CHECK ebsd_status fleet_generate(size_t n, uint64_t seed, struct fleet **out);

/* Loads a fleet file (JSON, or YAML when the name ends in .yaml/.yml); see docs/ec2sim.md.
 * On failure *err gets a static-or-owned message in errbuf. Caller frees with fleet_free. */
EBSD_MUST_CHECK ebsd_status fleet_load_file(const char *path, struct fleet **out, char *errbuf,
                                            size_t errlen);
/* Builds a fleet from an already parsed JSON document (the file format). */
EBSD_MUST_CHECK ebsd_status fleet_from_json(const cJSON *doc, struct fleet **out, char *errbuf,
                                            size_t errlen);

void fleet_free(struct fleet *f);

/* Builds the id indexes and every instance's block device mapping from the volumes'
 * attachments; called once by the generator and the loader when the model is final. */
void fleet_index(struct fleet *f);

/* Index lookups; SIZE_MAX when absent. */
size_t fleet_find_instance(const struct fleet *f, const char *id);
size_t fleet_find_volume(const struct fleet *f, const char *id);

/* True when an attachment in this state is counted by ebsd (attaching, attached, detaching). */
bool fleet_attachment_counts(const char *state);

/* The true answers as a JSON object:
 * {"total_gib","instance_count","volume_count","instances":{id:gib},"instance_volumes":{id:n},
 *  "unattached_volumes","unattached_gib","volumes_total","unattached":{"total_gib",
 *  "volume_count","by_volume_type":{type:{"total_gib","volume_count"}},
 *  "by_availability_zone":{..},"largest":[..10],"oldest":[..10]},
 *  "instance_states":{state:n}}; unattached = no counted attachment. Caller deletes. */
cJSON *fleet_truth(const struct fleet *f);

/* Finds the value of tag key among tags; NULL when absent. */
const char *fleet_tag_get(const struct fleet_tag *tags, size_t ntags, const char *key);

/* The grouping keys /_sim/truth and ebsd's group_by take: volume_type, availability_zone,
 * instance_state, instance_type, instance_tag:NAME, volume_tag:NAME. */
bool fleet_group_key_valid(const char *key);

/* The storage grouped by keys (1..4 valid keys): a JSON array of
 * {"key": {KEY: value or null}, "total_gib", "volume_count", "instance_count"}, sorted by
 * total_gib (largest first), then by key. Each counted volume belongs to one group: volume
 * keys take its own values, instance keys those of the instance of its first counted
 * attachment; instance_count counts the distinct instances with a counted attachment to a
 * volume of the group. The groups' totals add up to the fleet's. Caller deletes. */
cJSON *fleet_truth_groups(const struct fleet *f, const char *const *keys, size_t nkeys);

/* The fleet in the fleet-file JSON format (round-trips through fleet_from_json). Caller deletes. */
cJSON *fleet_to_json(const struct fleet *f);

/* Checks the model's invariants (ids well formed and unique, attachments point at existing
 * instances, none at terminated ones, at most FLEET_MAX_ATTACH attachments to distinct
 * instances and more than one only when multi_attach, which needs io1 or io2).
 * Returns NULL when fine, else a static message. */
const char *fleet_check(const struct fleet *f);

/* Id syntax: prefix + 8 or 17 lowercase hex digits. */
bool fleet_id_valid(const char *id, const char *prefix);

#endif
