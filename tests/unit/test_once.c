/* test_once.c - `ebsd --once` (once_run) against ec2sim (started here), its stdout captured:
 * the total's JSON equals the simulator's truth and exit status 0; an instance's total equals
 * the truth's for that instance; a region that is not configured and a malformed instance id
 * exit 2 with nothing printed; an unknown instance, a deadline passed and no credentials exit
 * 1, the first two with the error JSON (code, message, http_status). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "harness.h"
#include "mem.h"
#include "once.h"

static struct harness_sim sim;
static struct config cfg;
static cJSON *truth;

/* once_run with its stdout captured: the exit status, *out the printed document (caller
 * frees): stdout holds the document alone, the log goes to stderr; "" when nothing was
 * printed. */
static int run_once(const char *query, const char *instance_id, const char *region, char **out)
{
    char path[] = "/tmp/test_once_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = once_run(&cfg, query, instance_id, region);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(fd);
    char *all = harness_read_file(path, NULL);
    unlink(path);
    *out = all ? all : xstrdup("");
    return rc;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void sim_faults(const char *json)
{
    CHECK(harness_sim_faults(&sim, json));
}

static void test_total(void)
{
    char *out = NULL;
    CHECK_INT(run_once("volumes-total", NULL, NULL, &out), 0);
    cJSON *o = cJSON_Parse(out ? out : "");
    CHECK(o != NULL);
    CHECK_INT((long long)num(o, "total_gib"), (long long)num(truth, "total_gib"));
    CHECK_INT((long long)num(o, "instance_count"), (long long)num(truth, "instance_count"));
    CHECK_STR(str(o, "region"), "us-east-1");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
    CHECK_STR(str(src, "cache"), "miss");
    CHECK(num(src, "ec2_calls") >= 2);
    CHECK(num(src, "children") >= 1);
    time_t fetched = 0;
    CHECK(str(src, "fetched_at") && clock_parse_rfc3339(str(src, "fetched_at"), &fetched));
    CHECK(fetched >= time(NULL) - 10 && fetched <= time(NULL) + 1);
    cJSON_Delete(o);
    free(out);
}

static void test_instance(void)
{
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(truth, "instances");
    const cJSON *inst = per ? per->child : NULL;
    /* an instance with volumes, so the total says something */
    while (inst && inst->valuedouble <= 0)
        inst = inst->next;
    CHECK(inst != NULL);
    if (!inst)
        return;
    char *out = NULL;
    CHECK_INT(run_once("instance-volumes", inst->string, NULL, &out), 0);
    cJSON *o = cJSON_Parse(out ? out : "");
    CHECK(o != NULL);
    CHECK_STR(str(o, "instance_id"), inst->string);
    CHECK_INT((long long)num(o, "total_gib"), (long long)inst->valuedouble);
    cJSON_Delete(o);
    free(out);
}

static void test_bad_arguments(void)
{
    char *out = NULL;
    CHECK_INT(run_once("volumes-total", NULL, "mars-east-1", &out), 2);
    CHECK_STR(out, "");
    free(out);
    CHECK_INT(run_once("instance-volumes", "i-xyz", NULL, &out), 2);
    CHECK_STR(out, "");
    free(out);
}

static void test_unknown_instance(void)
{
    char *out = NULL;
    CHECK_INT(run_once("instance-volumes", "i-0123456789abcdef0", NULL, &out), 1);
    cJSON *o = cJSON_Parse(out ? out : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    CHECK_INT((long long)num(e, "http_status"), 404);
    CHECK(str(e, "code") && str(e, "code")[0]);
    CHECK(str(e, "message") && strstr(str(e, "message"), "i-0123456789abcdef0"));
    cJSON_Delete(o);
    free(out);
}

static void test_deadline(void)
{
    sim_faults("{\"latency\": {\"DescribeInstances\": 3000}}");
    uint32_t saved = cfg.volumes_total.timeout_ms;
    cfg.volumes_total.timeout_ms = 300;
    char *out = NULL;
    int64_t t0 = clock_now_ms();
    CHECK_INT(run_once("volumes-total", NULL, NULL, &out), 1);
    CHECK(clock_now_ms() - t0 < 2500); /* the route's deadline, not EC2's latency */
    cJSON *o = cJSON_Parse(out ? out : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    CHECK_INT((long long)num(e, "http_status"), 504);
    CHECK_STR(str(e, "message"), "Task timed out");
    cJSON_Delete(o);
    free(out);
    cfg.volumes_total.timeout_ms = saved;
    sim_faults("{}");
}

static void test_no_credentials(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    char *out = NULL;
    int64_t t0 = clock_now_ms();
    CHECK_INT(run_once("volumes-total", NULL, NULL, &out), 1);
    CHECK(clock_now_ms() - t0 < 6000); /* the start's bound on the credential chain */
    CHECK_STR(out, "");
    free(out);
}

static void test_setup(void)
{
    static const char *const args[] = {"--instances", "30", "--seed", "11", NULL};
    if (!harness_sim_start(&sim, args))
        exit(1);
    char *t = harness_sim_call(&sim, "GET", "/_sim/truth", NULL, NULL);
    truth = cJSON_Parse(t ? t : "");
    free(t);
    CHECK(truth != NULL);
    /* the chain finds these first; nothing else may answer (no files, no IMDS) */
    static char home[] = "/tmp/test_once_home_XXXXXX";
    CHECK(mkdtemp(home) != NULL);
    harness_aws_env(home, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    config_defaults(&cfg);
    free(cfg.ec2_endpoint);
    cfg.ec2_endpoint = xstrdup(sim.url);
    free(cfg.regions[0]);
    cfg.regions[0] = xstrdup("us-east-1");
}

static void test_teardown(void)
{
    harness_sim_stop(&sim);
    cJSON_Delete(truth);
    config_free(&cfg);
}

TEST_MAIN(T(test_setup), T(test_total), T(test_instance), T(test_bad_arguments),
          T(test_unknown_instance), T(test_deadline), T(test_no_credentials), T(test_teardown))
