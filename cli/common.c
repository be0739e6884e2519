#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cli_note(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One write per line: concurrent redkit processes sharing a terminal do not interleave. */
    fprintf(stderr, "redkit: %s\n", line);
}

int cli_usage_error(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "redkit: %s\nTry 'redkit --help'.\n", line);
    return EX_USAGE;
}

/* ---- arguments ---- */

static const cli_opt *find_opt(const cli_opt *opts, const char *name, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && !strncmp(opts->name, name, len))
            return opts;
    return NULL;
}

/* One "--name[=value]" at argv[*i]; advances *i past a separate value. */
static int parse_option(int argc, char **argv, int *i, const cli_opt *opts, const cli_opt *globals)
{
    const char *name = argv[*i] + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt *o = find_opt(opts, name, len);
    if (!o)
        o = find_opt(globals, name, len);
    if (!o)
        return cli_usage_error("unknown option '--%.*s'", (int)len, name);
    if (!o->value) {
        if (eq)
            return cli_usage_error("option '--%s' takes no value", o->name);
        *o->flag = true;
        return 0;
    }
    if (eq) {
        *o->value = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return cli_usage_error("option '--%s' needs a value", o->name);
    *o->value = argv[++*i];
    return 0;
}

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

int cli_parse(int argc, char **argv, const cli_opt *opts, cli_global *g, int max_pos, bool want_cmd,
              cli_args *out)
{
    const cli_opt globals[] = {{"url", &g->url, NULL},
                               {"config", &g->config, NULL},
                               {"password-file", &g->password_file, NULL},
                               {NULL, NULL, NULL}};
    memset(out, 0, sizeof *out);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (is_help(a)) {
            out->help = true;
        } else if (!strcmp(a, "--")) {
            if (!want_cmd)
                return cli_usage_error("unexpected '--'");
            out->cmd = argv + i + 1;
            out->ncmd = argc - i - 1;
            return 0;
        } else if (!strncmp(a, "--", 2)) {
            int rc = parse_option(argc, argv, &i, opts, globals);
            if (rc)
                return rc;
        } else if (out->npos < max_pos) {
            out->pos[out->npos++] = a;
        } else if (want_cmd) {
            out->cmd = argv + i;
            out->ncmd = argc - i;
            return 0;
        } else {
            return cli_usage_error("unexpected argument '%s'", a);
        }
    }
    return 0;
}

/* ---- durations ---- */

static int unit_ms(const char **p, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if (!strncmp(*p, units[i].name, n) && !((*p)[n] >= 'a' && (*p)[n] <= 'z')) {
            *p += n;
            *mult = units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* One "<digits>[.<digits>]<unit>" term at *p, added to *total. */
static int duration_term(const char **p, bool bare_ok, uint64_t *total)
{
    double v = 0, scale = 1;
    bool digits = false, dot = false;
    uint64_t mult = 1000;
    for (; (**p >= '0' && **p <= '9') || (**p == '.' && !dot); (*p)++) {
        if (**p == '.') {
            dot = true;
        } else {
            digits = true;
            if (dot)
                v += (**p - '0') * (scale /= 10);
            else
                v = v * 10 + (**p - '0');
        }
    }
    if (!digits || (**p ? unit_ms(p, &mult) != 0 : !bare_ok))
        return -1;
    double ms = v * (double)mult;
    if (ms > 1e15)
        return -1;
    *total += (uint64_t)(ms + 0.5);
    return 0;
}

int cli_duration(const char *opt, const char *s, bool none_ok, uint64_t *ms)
{
    if (none_ok && !strcmp(s, "none")) {
        *ms = RK_TTL_NONE;
        return 0;
    }
    const char *p = s;
    uint64_t total = 0;
    bool first = true;
    while (*p && duration_term(&p, first, &total) == 0)
        first = false;
    if (*p || first)
        return cli_usage_error("--%s: '%s' is not a duration (e.g. 500ms, 30s, 5m, 1h%s)", opt, s,
                               none_ok ? ", none" : "");
    *ms = total;
    return 0;
}

const char *cli_fmt_ms(uint64_t ms, char *buf, size_t cap)
{
    if (ms == RK_TTL_NONE)
        snprintf(buf, cap, "no expiry");
    else if (ms < 1000)
        snprintf(buf, cap, "%" PRIu64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", ms / 1000, ms % 1000 / 100);
    else
        snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", ms / 60000, ms % 60000 / 1000);
    return buf;
}

/* ---- errors ---- */

static int timeout_code(const rk_error *e)
{
    /* A lock that stayed taken is a temporary condition; other deadlines mean a slow server. */
    return !strcmp(e->name, "LOCK_TIMEOUT") ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

int cli_exit_code(const rk_error *e, bool setup)
{
    switch (e->code) {
    case RK_ENOTFOUND:
        return CLI_EXIT_NO;
    case RK_EINVAL:
        return setup ? EX_CONFIG : EX_DATAERR;
    case RK_EREF:
        return EX_CONFIG;
    case RK_ENOCONN:
    case RK_EIO:
        return EX_UNAVAILABLE;
    case RK_ETIMEDOUT:
        return timeout_code(e);
    case RK_EAUTH:
        return EX_NOPERM;
    case RK_EREPLY:
        return !strcmp(e->name, "NOPERM") ? EX_NOPERM : EX_SOFTWARE;
    default:
        return EX_SOFTWARE;
    }
}

int cli_fail(bool setup)
{
    const rk_error *e = rk_last_error();
    fprintf(stderr, "redkit: %s (%s): %s\n", e->name, e->category, e->message);
    if (e->cause)
        fprintf(stderr, "  cause: %s\n", e->cause);
    return cli_exit_code(e, setup);
}

/* ---- configuration ---- */

static bool names_connection(const rk_config *cfg)
{
    const char *k, *v;
    for (size_t i = 0; rk_config_entry(cfg, i, &k, &v); i++)
        if (!strncasecmp(k, "connection.", 11) || !strncasecmp(k, "connections.", 12))
            return true;
    return false;
}

/* The first line of the file, without its line ending. */
static int read_password(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *data = NULL;
    size_t len = 0;
    if (fd < 0 || cli_read_all(fd, &data, &len) != 0) {
        cli_note("cannot read the password file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EX_NOINPUT;
    }
    close(fd);
    data[strcspn(data, "\r\n")] = '\0';
    *out = data;
    return 0;
}

static void free_secret(char *s)
{
    if (!s)
        return;
    for (volatile char *p = s; *p; p++)
        *p = 0;
    free(s);
}

static int set_url(const cli_global *g, rk_config *cfg)
{
    const char *url = g->url;
    if (!url && !names_connection(cfg)) {
        url = getenv("REDKIT_URL");
        if (!url || !*url)
            url = CLI_DEFAULT_URL;
    }
    if (url && !*url)
        return cli_usage_error("--url is empty");
    return url && rk_config_set(cfg, "connection.uri", url) ? cli_fail(true) : 0;
}

static int set_password(const cli_global *g, rk_config *cfg)
{
    char *pw = NULL;
    if (!g->password_file)
        return 0;
    int rc = read_password(g->password_file, &pw);
    if (rc == 0 && rk_config_set(cfg, "credential.password", pw) != RK_OK)
        rc = cli_fail(true);
    free_secret(pw);
    return rc;
}

static int set_extras(rk_config *cfg, va_list ap)
{
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;)
        if (rk_config_set(cfg, k, va_arg(ap, const char *)) != RK_OK)
            return cli_fail(true);
    return 0;
}

int cli_config(const cli_global *g, rk_config **out, ...)
{
    rk_config *cfg = NULL;
    int rc = g->config ? rk_config_from_string(&cfg, g->config) : rk_config_new(&cfg);
    if (rc != RK_OK)
        return cli_fail(true);
    if ((rc = set_url(g, cfg)) == 0 && (rc = set_password(g, cfg)) == 0) {
        va_list ap;
        va_start(ap, out);
        rc = set_extras(cfg, ap);
        va_end(ap);
    }
    if (rc) {
        rk_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int cli_open_cache(const cli_global *g, rk_cache **out)
{
    rk_config *cfg;
    int rc = cli_config(g, &cfg, NULL);
    *out = NULL;
    if (rc)
        return rc;
    if (rk_cache_new(out) != RK_OK || rk_cache_configure(*out, cfg) != RK_OK ||
        rk_cache_open(*out, NULL) != RK_OK)
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

/* ---- I/O ---- */

int cli_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_note("write failed: %s", strerror(errno));
            return EX_IOERR;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cli_read_all(int fd, char **data, size_t *len)
{
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return EX_OSERR;
        if (used + 1 >= cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
            continue;
        }
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0) {
                free(buf);
                return EX_IOERR;
            }
            break;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return 0;
}

/* ---- spinner ---- */

#define SPIN_DELAY_MS 300 /* short waits stay silent */
#define SPIN_TICK_MS 100

static bool utf8_locale(void)
{
    const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
    }
    return false;
}

void cli_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

void cli_deadline_in(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void spin_frame(const cli_spinner *s, unsigned n, bool utf8)
{
    static const char *const fancy[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
    static const char *const plain[] = {"|", "/", "-", "\\"};
    const char *frame = utf8 ? fancy[n % 10] : plain[n % 4];
    char took[32];
    fprintf(stderr, "\r\033[K%s %s (%s)", frame, s->label,
            cli_fmt_ms(cli_now_ms() - s->start_ms, took, sizeof took));
    fflush(stderr);
}

static void *spin_main(void *arg)
{
    cli_spinner *s = arg;
    bool utf8 = utf8_locale(), shown = false;
    struct timespec ts;
    pthread_mutex_lock(&s->mu);
    cli_deadline_in(&ts, SPIN_DELAY_MS);
    for (unsigned n = 0; !s->stop; n++) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0 || s->stop)
            continue;
        spin_frame(s, n, utf8);
        shown = true;
        cli_deadline_in(&ts, SPIN_TICK_MS);
    }
    pthread_mutex_unlock(&s->mu);
    if (shown)
        fputs("\r\033[K", stderr);
    return NULL;
}

void cli_spinner_start(cli_spinner *s, const char *fmt, ...)
{
    memset(s, 0, sizeof *s);
    if (!isatty(STDERR_FILENO))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->label, sizeof s->label, fmt, ap);
    va_end(ap);
    s->start_ms = cli_now_ms();
    cli_cond_init(&s->cv);
    pthread_mutex_init(&s->mu, NULL);
    s->running = pthread_create(&s->thread, NULL, spin_main, s) == 0;
    if (!s->running) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
}

void cli_spinner_stop(cli_spinner *s)
{
    if (!s->running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    s->running = false;
}
