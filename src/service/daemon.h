/* daemon.h - the composition root of the service: wires the modules (telemetry, workers,
 * engine, credentials, volumes, the HTTP edge with the router as its dispatch callback),
 * owns the process's signals (signalfd), the drain on SIGTERM/SIGINT, the reload on SIGHUP
 * and the systemd notifications. */
#ifndef EBSD_DAEMON_H
#define EBSD_DAEMON_H
#include "auth.h"
#include "config.h"
#include "loop.h"
#include "status.h"

struct daemon;

/* Binds cfg->listen (server_new), sets up the signals and configures every module. On
 * success cfg and auth (NULL: auth off) are owned by the daemon; on failure the caller
 * keeps them. config_path may be NULL (SIGHUP then has nothing to re-read). */
EBSD_MUST_CHECK ebsd_status daemon_new(struct loop *l, struct config *cfg,
                                       const char *config_path, struct auth *auth,
                                       struct daemon **out);
/* Announces the server, tells systemd it is ready and runs the loop until drained. */
EBSD_MUST_CHECK ebsd_status daemon_run(struct daemon *d);
/* Stops the server and shuts every module down. */
void daemon_free(struct daemon *d);

#endif
