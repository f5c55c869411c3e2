/* redis_iam_tool.c - prints the ElastiCache IAM auth token redis_iam_token makes, for the
 * cross-check against botocore's presigner (tests/integration/test_redis_iam.py).
 * Usage: redis_iam_tool USER CACHE REGION UNIX_TIME ACCESS_KEY_ID SECRET TOKEN|- 0|1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisiam.h"

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: redis_iam_tool USER CACHE REGION TIME AKID SECRET TOKEN|- "
                        "SERVERLESS\n");
        return 2;
    }
    const struct redis_iam_params p = {.user = argv[1], .cache = argv[2],
                                       .serverless = strcmp(argv[8], "1") == 0,
                                       .region = argv[3]};
    const struct sigv4_credentials c = {.access_key_id = argv[5],
                                        .secret_access_key = argv[6],
                                        .session_token = strcmp(argv[7], "-") ? argv[7] : NULL};
    char *token = NULL;
    ebsd_status st = redis_iam_token(&p, &c, (time_t)strtoll(argv[4], NULL, 10), &token);
    if (st != EBSD_OK) {
        fprintf(stderr, "redis_iam_tool: %s\n", status_str(st));
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}
