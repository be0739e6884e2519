/* Shared by the libFuzzer targets and the replay driver. A target is one function,
 * LLVMFuzzerTestOneInput(), built twice: with clang's libFuzzer for fuzzing, and with the
 * replay driver (any compiler) so that ctest runs every corpus file through the same code. */
#ifndef RKT_FUZZ_H
#define RKT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash, so that libFuzzer records the input. */
#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string (cut at its first NUL, as a C caller would pass it).
 * Free with free(). */
char *fuzz_string(const uint8_t *data, size_t size);

#endif
