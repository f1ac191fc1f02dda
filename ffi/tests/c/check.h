/* The checks the C API tests count: CHECK(cond) counts a pass or prints the failed condition
 * with its line; EXPECT(call, want) checks a call's result. Each test prints
 * "N passed, M failed" from `passed` and `failed` and exits non-zero on any failure. */
#ifndef CALLREC_TEST_CHECK_H
#define CALLREC_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define EXPECT(call, want) CHECK((call) == (want))

#endif
