/* fuzz.h - the libFuzzer entry point every harness defines. Built two ways: with
 * -fsanitize=fuzzer (EBSD_FUZZ, clang) and with replay.c's main (every build, CTest). */
#ifndef EBSD_FUZZ_H
#define EBSD_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (embedded NULs end the string early). Caller frees. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A harness's own invariant broke: crash so the fuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond))                                                                        \
            abort();                                                                        \
    } while (0)
#endif
