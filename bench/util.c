/* Timing, statistics, child processes and cleanup shared by the sections. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

void sleep_ns(uint64_t ns)
{
    struct timespec ts;
    to_timespec(ns, &ts);
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

void sleep_until_ns(uint64_t t)
{
    struct timespec ts;
    to_timespec(t, &ts);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sort_doubles(double *v, size_t n) { qsort(v, n, sizeof *v, cmp_double); }

double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n);
    return sorted[i < n ? i : n - 1];
}

double median(double *v, size_t n)
{
    sort_doubles(v, n);
    if (n == 0)
        return 0;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("redkit-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

_Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("redkit-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("cannot map %zu shared bytes: %s", size, strerror(errno));
    return p;
}

/* ---- cleanup: what a Ctrl-C or a failure must not leave behind ---- */

#define MAX_TRACKED 256

#define MAX_COMMANDS 4
#define MAX_ARGS 8

static volatile pid_t tracked[MAX_TRACKED];
static char *paths[MAX_TRACKED];
static volatile int npaths;
static char *commands[MAX_COMMANDS][MAX_ARGS + 1]; /* argv, NULL-terminated; [0] NULL: free */
static pid_t main_pid;

void track_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] == 0) {
            tracked[i] = pid;
            return;
        }
}

void untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] == pid)
            tracked[i] = 0;
}

void track_path(const char *path)
{
    if (npaths < MAX_TRACKED && (paths[npaths] = strdup(path)))
        npaths++;
}

int track_command(const char *const argv[])
{
    for (int i = 0; i < MAX_COMMANDS; i++) {
        if (commands[i][0])
            continue;
        for (int k = 0; k < MAX_ARGS && argv[k]; k++)
            if (!(commands[i][k] = strdup(argv[k])))
                die("out of memory");
        return i;
    }
    die("more than %d cleanup commands", MAX_COMMANDS);
}

void untrack_command(int id)
{
    for (int k = 0; k < MAX_ARGS; k++) {
        char *arg = commands[id][k];
        commands[id][k] = NULL;
        free(arg);
    }
}

/* fork, execv and waitpid are async-signal-safe; the command's output goes with ours. */
static void run_commands(void)
{
    for (int i = 0; i < MAX_COMMANDS; i++) {
        if (!commands[i][0])
            continue;
        pid_t pid = fork();
        if (pid == 0) {
            execv(commands[i][0], commands[i]);
            _exit(127);
        }
        while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        commands[i][0] = NULL; /* once; the strings are left to the exit */
    }
}

/* Async-signal-safe: fork, execv, kill, waitpid, unlink and rmdir only. */
static void cleanup_now(void)
{
    if (getpid() != main_pid)
        return;
    run_commands();
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] > 0) {
            kill(-tracked[i], SIGTERM); /* peers lead a process group of workers */
            kill(tracked[i], SIGTERM);
        }
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] > 0) {
            waitpid(tracked[i], NULL, 0);
            tracked[i] = 0;
        }
    for (int i = npaths - 1; i >= 0; i--)
        if (unlink(paths[i]) != 0)
            rmdir(paths[i]);
    npaths = 0;
}

static void on_signal(int sig)
{
    cleanup_now();
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_cleanup(void)
{
    main_pid = getpid();
    atexit(cleanup_now);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

pid_t spawn(int (*fn)(void *arg, int index), void *arg, int index)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed: %s", strerror(errno));
    if (pid == 0) {
        /* A killed bench must not leave contenders running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        _exit(fn(arg, index));
    }
    track_pid(pid);
    return pid;
}

int reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    untrack_pid(pid);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
