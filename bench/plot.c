#include "plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

typedef struct chart_def {
    const char *name, *title, *xlabel, *ylabel;
    bool logx, logy, steps;
} chart_def;

static const chart_def defs[CHARTS] = {
    {"lock_rate", "Contended lock: acquisitions per second (hold 1 ms, think 1 ms)", "processes",
     "acquisitions/s", true, false, false},
    {"lock_p99", "Contended lock: p99 wait", "processes", "p99 wait (ms)", true, true, false},
    {"lock_wait_cdf", "redkit lock: distribution of waits", "wait (ms)", "fraction of waits", true,
     false, true},
    {"cache_threads", "Cache: retrieves per second, threads sharing one handle", "threads",
     "retrieves/s", true, false, false},
    {"near_cache", "Near cache: a hit against the round trip", "value size (bytes)", "latency (us)",
     true, true, false},
};

typedef struct point {
    chart_id chart;
    char series[48];
    double x, y;
} point;

static const char *out_dir;
static point *points;
static size_t npoints, cap;

void plot_enable(const char *dir) { out_dir = dir; }
bool plot_enabled(void) { return out_dir != NULL; }

void plot_point(chart_id chart, const char *series, double x, double y)
{
    if (!out_dir || chart >= CHARTS)
        return;
    if (npoints == cap) {
        cap = cap ? 2 * cap : 256;
        if (!(points = realloc(points, cap * sizeof *points)))
            die("out of memory");
    }
    point *p = &points[npoints++];
    p->chart = chart;
    snprintf(p->series, sizeof p->series, "%s", series);
    p->x = x, p->y = y;
}

void plot_cdf(chart_id chart, const char *series, const double *sorted, size_t n)
{
    size_t step = n > 500 ? n / 500 : 1;
    for (size_t i = 0; i < n; i += step)
        plot_point(chart, series, sorted[i], (double)(i + 1) / (double)n);
    if (n)
        plot_point(chart, series, sorted[n - 1], 1.0);
}

/* The series of a chart in the order they first appear; returns how many. */
static size_t series_of(chart_id c, const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < npoints; i++) {
        if (points[i].chart != c)
            continue;
        size_t k = 0;
        while (k < n && strcmp(names[k], points[i].series))
            k++;
        if (k == n && n < max)
            names[n++] = points[i].series;
    }
    return n;
}

/* One gnuplot data block per series (blocks apart by two blank lines, read with `index`). */
static void write_data(FILE *f, chart_id c, const char **names, size_t n)
{
    for (size_t s = 0; s < n; s++) {
        fprintf(f, "# %s\n", names[s]);
        for (size_t i = 0; i < npoints; i++)
            if (points[i].chart == c && !strcmp(points[i].series, names[s]))
                fprintf(f, "%.9g %.9g\n", points[i].x, points[i].y);
        fprintf(f, "\n\n");
    }
}

static void write_script(FILE *f, const chart_def *d, const char **names, size_t n)
{
    fprintf(f,
            "set terminal pngcairo size 900,540 noenhanced font ',11'\n"
            "set output '%s/%s.png'\n"
            "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\n"
            "set grid\nset key outside right top\n%s%s",
            out_dir, d->name, d->title, d->xlabel, d->ylabel, d->logx ? "set logscale x 2\n" : "",
            d->logy ? "set logscale y 10\n" : "");
    fprintf(f, "plot ");
    for (size_t s = 0; s < n; s++)
        fprintf(f, "%s'%s/%s.dat' index %zu with %s lw 2 title '%s'", s ? ", \\\n     " : "",
                out_dir, d->name, s, d->steps ? "steps" : "linespoints", names[s]);
    fprintf(f, "\n");
}

static bool draw(chart_id c)
{
    const chart_def *d = &defs[c];
    const char *names[16];
    size_t n = series_of(c, names, 16);
    if (!n)
        return true;
    char path[1024], cmd[1200];
    snprintf(path, sizeof path, "%s/%s.dat", out_dir, d->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return fprintf(stderr, "redkit-bench: cannot write %s\n", path), false;
    write_data(f, c, names, n);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.gp", out_dir, d->name);
    if (!(f = fopen(path, "w")))
        return fprintf(stderr, "redkit-bench: cannot write %s\n", path), false;
    write_script(f, d, names, n);
    fclose(f);
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", path);
    if (system(cmd) != 0)
        return fprintf(stderr, "redkit-bench: gnuplot failed on %s\n", path), false;
    return true;
}

bool plot_write(void)
{
    if (!out_dir)
        return true;
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redkit-bench: --plot needs gnuplot (apt-get install gnuplot-nox)\n");
        return false;
    }
    mkdir(out_dir, 0755);
    bool ok = true;
    for (int c = 0; c < CHARTS; c++)
        ok &= draw((chart_id)c);
    return ok;
}
