/* Results: rows (one figure each) and goals (a figure against its target), printed as one table
 * or as JSON once every section has run. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_METRICS 16

typedef struct row {
    char section[32], name[96], unit[24], text[320];
    double value;
    bool na;
    size_t nmetrics; /* > 0: a compound row: `text` in the table, the metrics in JSON */
    char keys[MAX_METRICS][32];
    double metrics[MAX_METRICS];
} row;

typedef struct goal {
    char name[96], cmp[4], note[160];
    double value, target;
    bool met;
} goal;

static row *rows;
static size_t nrows, caprows;
static goal *goals;
static size_t ngoals, capgoals;
static char notes[4096];

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 32;
    if (!(p = realloc(p, *cap * size)))
        die("out of memory");
    return p;
}

static row *add_row(const char *section, const char *name)
{
    rows = grow(rows, &caprows, nrows, sizeof *rows);
    row *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->section, sizeof r->section, "%s", section);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

void report_value(const char *section, const char *name, double value, const char *unit)
{
    row *r = add_row(section, name);
    r->value = value;
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    progress("%-10s %-44s %.6g %s", section, name, value, unit);
}

void report_na(const char *section, const char *name, const char *why)
{
    row *r = add_row(section, name);
    r->na = true;
    snprintf(r->text, sizeof r->text, "n/a (%s)", why);
    progress("%-10s %-44s %s", section, name, r->text);
}

void report_metrics(const char *section, const char *name, const char *const *keys,
                    const double *values, size_t n, const char *summary)
{
    row *r = add_row(section, name);
    r->nmetrics = n < MAX_METRICS ? n : MAX_METRICS;
    for (size_t i = 0; i < r->nmetrics; i++) {
        snprintf(r->keys[i], sizeof r->keys[i], "%s", keys[i]);
        r->metrics[i] = values[i];
    }
    snprintf(r->text, sizeof r->text, "%s", summary);
    progress("%-10s %-44s %s", section, name, summary);
}

void report_goal(const char *name, double value, const char *cmp, double target, const char *note)
{
    goals = grow(goals, &capgoals, ngoals, sizeof *goals);
    goal *g = &goals[ngoals++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->cmp, sizeof g->cmp, "%s", cmp);
    snprintf(g->note, sizeof g->note, "%s", note ? note : "");
    g->value = value;
    g->target = target;
    if (isnan(value) || isnan(target))
        g->met = false;
    else if (!strcmp(cmp, ">="))
        g->met = value >= target;
    else if (!strcmp(cmp, "<="))
        g->met = value <= target;
    else
        g->met = value == target;
}

void report_note(const char *fmt, ...)
{
    size_t used = strlen(notes);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes + used, sizeof notes - used, fmt, ap);
    va_end(ap);
    used = strlen(notes);
    if (used + 1 < sizeof notes)
        strcat(notes, "\n");
}

/* Thousands separators make ops/s columns readable. */
static void fmt_value(char *buf, size_t cap, double v, const char *unit)
{
    if (fabs(v) >= 1000 && fabs(v) < 1e15) {
        char digits[32], *out = buf;
        snprintf(digits, sizeof digits, "%.0f", fabs(v));
        size_t n = strlen(digits), k = 0;
        if (v < 0)
            *out++ = '-';
        for (size_t i = 0; i < n && k + 2 < cap; i++) {
            *out++ = digits[i];
            if ((n - i - 1) % 3 == 0 && i + 1 < n)
                *out++ = ',';
            k = (size_t)(out - buf);
        }
        *out = 0;
    } else if (v == floor(v) && fabs(v) < 1000) {
        snprintf(buf, cap, "%.0f", v);
    } else {
        snprintf(buf, cap, fabs(v) >= 100 ? "%.1f" : fabs(v) >= 10 ? "%.2f" : "%.3f", v);
    }
    if (*unit) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, " %s", unit);
    }
}

static void header(const bench_opts *o, FILE *f)
{
    char when[64];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
    fprintf(f, "redkit-bench %s, %s, %ld CPUs, load average %.2f%s, server %s%s\n",
            RK_VERSION_STRING, when, sysconf(_SC_NPROCESSORS_ONLN), load_average(),
            o->quick ? ", --quick" : "", o->own_server ? "private " : "", o->plain.url);
}

void report_print_table(const bench_opts *o)
{
    header(o, stdout);
    printf("\n| section | measurement | result |\n| --- | --- | --- |\n");
    for (size_t i = 0; i < nrows; i++) {
        char v[64];
        bool text = rows[i].na || rows[i].nmetrics;
        if (!text)
            fmt_value(v, sizeof v, rows[i].value, rows[i].unit);
        printf("| %s | %s | %s |\n", rows[i].section, rows[i].name, text ? rows[i].text : v);
    }
    if (ngoals) {
        printf("\n| goal | measured | target | met |\n| --- | --- | --- | --- |\n");
        for (size_t i = 0; i < ngoals; i++) {
            char v[64], t[64];
            fmt_value(v, sizeof v, goals[i].value, "");
            fmt_value(t, sizeof t, goals[i].target, "");
            printf("| %s | %s | %s %s | %s%s%s |\n", goals[i].name,
                   isnan(goals[i].value) ? "n/a" : v, goals[i].cmp, t,
                   goals[i].met ? "yes" : "**no**", *goals[i].note ? ": " : "", goals[i].note);
        }
    }
    if (*notes)
        printf("\n%s", notes);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.6g", v);
}

void report_print_json(const bench_opts *o)
{
    printf("{\"version\": ");
    json_str(RK_VERSION_STRING);
    printf(", \"cpus\": %ld, \"load_average\": %.2f, \"quick\": %s, \"server\": ",
           sysconf(_SC_NPROCESSORS_ONLN), load_average(), o->quick ? "true" : "false");
    json_str(o->plain.url);
    printf(",\n \"rows\": [");
    for (size_t i = 0; i < nrows; i++) {
        printf("%s\n  {\"section\": ", i ? "," : "");
        json_str(rows[i].section);
        printf(", \"name\": ");
        json_str(rows[i].name);
        if (rows[i].na) {
            printf(", \"value\": null, \"note\": ");
            json_str(rows[i].text);
        } else if (rows[i].nmetrics) {
            printf(", \"metrics\": {");
            for (size_t k = 0; k < rows[i].nmetrics; k++) {
                printf("%s", k ? ", " : "");
                json_str(rows[i].keys[k]);
                printf(": ");
                json_num(rows[i].metrics[k]);
            }
            printf("}, \"summary\": ");
            json_str(rows[i].text);
        } else {
            printf(", \"value\": ");
            json_num(rows[i].value);
            printf(", \"unit\": ");
            json_str(rows[i].unit);
        }
        putchar('}');
    }
    printf("],\n \"goals\": [");
    for (size_t i = 0; i < ngoals; i++) {
        printf("%s\n  {\"goal\": ", i ? "," : "");
        json_str(goals[i].name);
        printf(", \"value\": ");
        json_num(goals[i].value);
        printf(", \"cmp\": ");
        json_str(goals[i].cmp);
        printf(", \"target\": ");
        json_num(goals[i].target);
        printf(", \"met\": %s, \"note\": ", goals[i].met ? "true" : "false");
        json_str(goals[i].note);
        putchar('}');
    }
    printf("],\n \"notes\": ");
    json_str(notes);
    printf("}\n");
}
