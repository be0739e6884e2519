#include "harness.h"

#include <stdarg.h>

static const char *current = "?";

void rkt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

int rkt_run(const rkt_case *cases, size_t n, int argc, char **argv)
{
    size_t ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++) {
        if (!wanted(cases[i].name, argc, argv))
            continue;
        current = cases[i].name;
        printf("RUN  %s\n", current);
        cases[i].fn();
        printf("OK   %s\n", current);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 1;
    }
    printf("%zu passed\n", ran);
    return 0;
}
