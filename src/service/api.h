/* api.h - ebsd's routes: validate the request, then answer at once (health, readiness,
 * spec, metrics, errors) or start async work and suspend (the volume endpoints). */
#ifndef EBSD_API_H
#define EBSD_API_H
#include "server.h"

/* Routes r (the server's dispatch callback). On return either a response is set on r (request_respond/request_error) or r
 * has been suspended with async work that will respond and resume it. */
void api_dispatch(struct request *r);

#endif
