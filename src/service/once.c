/* once.c - the command line's --once: the engine driven on a private loop (see once.h). */
#include "once.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "answer.h"
#include "clock.h"
#include "credsvc.h"
#include "ec2.h"
#include "engine.h"
#include "log.h"
#include "loop.h"
#include "worker.h"

struct once_state {
    struct loop *loop;
    struct engine_query q;
    struct answer res;
    bool done;
};

static void once_done(void *arg, struct engine_outcome *out)
{
    struct once_state *os = arg;
    answer_from_outcome(&os->q, out, true, &os->res); /* --once prints the instances */
    os->done = true;
    loop_stop(os->loop);
}

static void once_sigchld(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    (void)arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        ;
    engine_on_sigchld();
}

static void print_json(cJSON *o)
{
    char *txt = cJSON_Print(o);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

int once_run(const struct config *cfg, const char *query, const char *instance_id,
             const char *region)
{
    (void)query;
    log_to_stderr(); /* stdout is the document's alone: `ebsd --once ... | jq` */
    int rc = 1;
    struct once_state os = {0};
    int sfd = -1;
    bool started = false;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (loop_new(&os.loop) != EBSD_OK)
        return 1;
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_add_fd(os.loop, sfd, EPOLLIN, once_sigchld, NULL) != EBSD_OK) {
        fprintf(stderr, "ebsd: signalfd: %s\n", strerror(errno));
        goto out;
    }
    const char *reg = region ? region : cfg->regions[0];
    if (!config_region_allowed(cfg, reg)) {
        fprintf(stderr, "ebsd: region '%s' is not configured\n", reg);
        rc = 2;
        goto out;
    }
    struct engine_query *q = &os.q;
    q->target = target_make(NULL, reg);
    const struct config_route *route = &cfg->volumes_total;
    if (instance_id) {
        if (!ec2_instance_id_valid(instance_id)) {
            fprintf(stderr, "ebsd: '%s' is not an instance id\n", instance_id);
            rc = 2;
            goto out;
        }
        q->kind = ENGINE_INSTANCE;
        snprintf(q->instance_id, sizeof q->instance_id, "%s", instance_id);
        route = &cfg->instance_volumes;
    } else {
        q->kind = ENGINE_TOTAL;
    }
    q->memory_mb = route->memory_mb;
    worker_configure(cfg, credsvc_current);
    worker_prepare(); /* before engine_init forks the zygote, which inherits it */
    /* one query and out: no spare workers (they serve the next request, and there is none) */
    struct config run = *cfg;
    run.spare_workers = 0;
    engine_init(os.loop, &run, credsvc_ready);
    credsvc_configure(cfg);
    credsvc_init(os.loop);
    started = true;
    if (!credsvc_ready(&q->target)) {
        fprintf(stderr, "ebsd: no usable AWS credentials (see the log above)\n");
        goto out;
    }
    int64_t t0 = clock_now_ms();
    engine_start(q, t0 + route->timeout_ms, once_done, &os);
    if (loop_run(os.loop) != EBSD_OK || !os.done)
        goto out;
    if (os.res.http_status == 200) {
        cJSON *o = os.res.data;
        cJSON *src = cJSON_AddObjectToObject(o, "source");
        char ts[40];
        cJSON_AddStringToObject(src, "fetched_at",
                                clock_format_rfc3339(os.res.fetched_at, ts, sizeof ts));
        cJSON_AddNumberToObject(src, "age_s", 0);
        cJSON_AddStringToObject(src, "cache", "miss");
        cJSON_AddNumberToObject(src, "ec2_calls", os.res.ec2_calls);
        cJSON_AddNumberToObject(src, "children", os.res.children);
        cJSON_AddNumberToObject(src, "duration_ms", (double)(clock_now_ms() - t0));
        print_json(o);
        rc = 0;
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "code", os.res.code);
        cJSON_AddStringToObject(e, "message", os.res.http_status == 504
                                                  ? "Task timed out" : os.res.message);
        cJSON_AddNumberToObject(e, "http_status", os.res.http_status);
        print_json(o);
    }
out:
    if (started) {
        engine_shutdown();
        credsvc_shutdown();
    }
    if (sfd >= 0) {
        loop_del_fd(os.loop, sfd);
        close(sfd);
    }
    loop_free(os.loop);
    return rc;
}
