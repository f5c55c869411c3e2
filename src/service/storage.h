/* storage.h - the storage itself as Prometheus gauges: the latest answer of each target
 * (account, region), kept when a fetch ends and rendered at scrape time, so a scrape never
 * starts a fetch. Label cardinality is bounded: at most STORAGE_MAX_TARGETS targets, and per
 * target at most STORAGE_MAX_VALUES volume types and instance states (further values, and
 * values that are not short lower-case words, are counted under "other"); never an id or a
 * tag value. */
#ifndef EBSD_STORAGE_H
#define EBSD_STORAGE_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "buf.h"
#include "status.h"
#include "target.h"
#include "wire.h"

#define STORAGE_MAX_TARGETS 64
#define STORAGE_MAX_VALUES 16

/* Keeps what a finished /volumes/total job found for t, fetched at wall ms fetched_at: the
 * counted volumes per type (as answer_groups counts them) and every instance per state;
 * atts: the volumes' attachments (wire_vol.attach_at).
 * Sorts inst and vols in place. */
void storage_note_total(const struct target *t, struct wire_inst *inst, size_t ninst,
                        struct wire_vol *vols, size_t nvols, const struct wire_attach *atts,
                        int64_t fetched_at);
/* Keeps what a finished /volumes/unattached job found for t. Sorts vols in place. */
void storage_note_unattached(const struct target *t, struct wire_vol *vols, size_t nvols,
                             int64_t fetched_at);
/* Appends the ebsd_storage_* and ebsd_instances families (text format 0.0.4) to out, ages
 * taken at wall ms now. EBSD_ETOOBIG when out's cap is reached. */
EBSD_MUST_CHECK ebsd_status storage_render(struct buf *out, int64_t now);
/* For the page at /: adds to obj (a target in page_input_from_json's shape) "by_type"
 * ({type: GiB}, attached storage of t's latest total) and "unattached_gib", each only when
 * it is known. Reads what was kept; never starts a fetch. */
void storage_page_fill(const struct target *t, cJSON *obj);
/* Forgets every target (tests, shutdown). */
void storage_reset(void);
/* Forgets the targets of account (a reload removed it, or changed its credentials): its
 * series leave the next scrape until a fetch of the account's new spec keeps them again. */
void storage_forget_account(const char *account);

#endif
