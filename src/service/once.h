/* once.h - `ebsd --once`: one query run to completion without the server, its answer printed
 * as the endpoint's JSON. */
#ifndef EBSD_ONCE_H
#define EBSD_ONCE_H
#include "config.h"

/* Runs query ("volumes-total", or "instance-volumes" with instance_id) for region (NULL: the
 * first configured) on a private loop and prints the JSON to stdout (the log goes to stderr
 * from here on). Returns the process
 * exit status: 0 on a 200, 2 for a bad region or instance id, 1 otherwise. */
int once_run(const struct config *cfg, const char *query, const char *instance_id,
             const char *region);

#endif
