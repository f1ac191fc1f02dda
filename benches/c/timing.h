/* What the SpanDSP side-by-side programs time with: a monotonic clock in nanoseconds and a
 * comparison for qsort of doubles (they report medians). */
#ifndef CALLREC_BENCH_TIMING_H
#define CALLREC_BENCH_TIMING_H

#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
