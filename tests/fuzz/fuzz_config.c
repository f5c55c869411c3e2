/* fuzz_config.c - the YAML config (config_load_buffer, src/core/config.c with libcyaml). */
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    struct config_error err;
    if (config_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, &err) == EBSD_OK) {
        FUZZ_ASSERT(cfg.nregions >= 1 && cfg.nregions <= CONFIG_MAX_REGIONS);
        FUZZ_ASSERT(cfg.listen != NULL);
        config_free(&cfg);
    } else {
        FUZZ_ASSERT(memchr(err.message, '\0', sizeof err.message) != NULL);
    }
    return 0;
}
