/* Charts of what the bench measured (redkit-bench --plot DIR): the sections add points to named
 * charts as they report, and at the end each chart becomes DIR/<chart>.png, drawn by gnuplot
 * (Debian's gnuplot-nox) from DIR/<chart>.dat and DIR/<chart>.gp, which are kept so that a
 * chart can be redrawn or its numbers read. */
#ifndef REDKIT_BENCH_PLOT_H
#define REDKIT_BENCH_PLOT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    CHART_LOCK_RATE,     /* acquisitions/s against processes, redkit and each peer */
    CHART_LOCK_P99,      /* p99 wait against processes */
    CHART_LOCK_WAIT_CDF, /* the distribution of redkit's waits at 8 and 64 processes */
    CHART_THREADS,       /* cache retrieves/s against threads on one handle */
    CHART_NEAR_CACHE,    /* near-cache hit latency against the round trip */
    CHARTS
} chart_id;

/* Collect only when --plot was given (points added before are dropped). */
void plot_enable(const char *dir);
bool plot_enabled(void);

/* One point of `series` (its name in the legend). */
void plot_point(chart_id chart, const char *series, double x, double y);

/* A distribution: `n` sorted samples as a cumulative fraction (at most 500 points kept). */
void plot_cdf(chart_id chart, const char *series, const double *sorted, size_t n);

/* Write every chart that has points and draw it; false (with a message) when gnuplot is
 * missing or fails. */
bool plot_write(void);

#endif
