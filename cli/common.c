#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#define MAX_OPTS 24     /* a command's options and the global ones */
#define LONG_ONLY 0x100 /* getopt values of options without a short form: LONG_ONLY + index */

/* getopt_long()'s view of a command's options. */
typedef struct parser {
    const cli_opt *opts[MAX_OPTS];
    struct option longs[MAX_OPTS + 2]; /* + --help and the terminator */
    char shorts[3 * MAX_OPTS + 8];
    int n;
} parser;

static void add_opts(parser *p, const cli_opt *o)
{
    for (; o && o->name && p->n < MAX_OPTS; o++, p->n++) {
        p->opts[p->n] = o;
        p->longs[p->n] = (struct option){o->name, o->value ? required_argument : no_argument, NULL,
                                         o->short_name ? o->short_name : LONG_ONLY + p->n};
        if (o->short_name) {
            size_t len = strlen(p->shorts);
            p->shorts[len++] = o->short_name;
            if (o->value)
                p->shorts[len++] = ':';
            p->shorts[len] = '\0';
        }
    }
}

static const cli_opt *opt_of(const parser *p, int val)
{
    if (val >= LONG_ONLY && val < LONG_ONLY + p->n)
        return p->opts[val - LONG_ONLY];
    for (int i = 0; i < p->n; i++)
        if (val && p->opts[i]->short_name == val)
            return p->opts[i];
    return NULL;
}

/* getopt_long's '?' or ':' for `arg` (opterr is off: the messages are ours). */
static int option_error(const parser *p, int c, const char *arg)
{
    bool is_long = !strncmp(arg, "--", 2);
    const cli_opt *o = opt_of(p, optopt);
    if (c == ':')
        return cli_usage_error("option '%s' needs a value", arg);
    if (o && is_long)
        return cli_usage_error("option '--%s' takes no value", o->name);
    if (optopt && !is_long)
        return cli_usage_error("unknown option '-%c'", optopt);
    return cli_usage_error("unknown or ambiguous option '%s'", arg);
}

/* Positionals live until exit, so that a command may keep them; one parse replaces the last. */
static char **pos_store;

/* Take argv[i] as a positional. @return 1 when it starts the command to run, 0, or EX_USAGE. */
static int positional(int argc, char **argv, int i, int max_pos, bool want_cmd, cli_args *out)
{
    if (out->npos < max_pos) {
        out->pos[out->npos++] = argv[i];
        return 0;
    }
    if (!want_cmd)
        return cli_usage_error("unexpected argument '%s'", argv[i]);
    out->cmd = argv + i;
    out->ncmd = argc - i;
    return 1;
}

/* One option getopt_long returned. */
static int take_option(const parser *p, int c, char **argv, cli_args *out)
{
    const cli_opt *o = c == 'h' ? NULL : opt_of(p, c);
    if (c == 'h')
        out->help = true;
    else if (!o)
        return option_error(p, c, argv[optind - 1]);
    else if (o->value)
        *o->value = optarg;
    else
        *o->flag = true;
    return 0;
}

static int parse_args(int argc, char **argv, const parser *p, int max_pos, bool want_cmd,
                      cli_args *out)
{
    int c, rc;
    optind = 0; /* a fresh scan: main parses the global options first */
    opterr = 0;
    /* "-": non-options come back in order (1), so options may follow positionals while a
     * command's own arguments stay untouched; ":": a missing value is told apart. "--" ends the
     * options: what follows is positional, so keys and values may start with '-'. */
    while ((c = getopt_long(argc, argv, p->shorts, p->longs, NULL)) != -1) {
        if (c == 1)
            rc = positional(argc, argv, optind - 1, max_pos, want_cmd, out);
        else
            rc = take_option(p, c, argv, out);
        if (rc)
            return rc == 1 ? 0 : rc;
    }
    for (int i = optind; i < argc; i++)
        if ((rc = positional(argc, argv, i, max_pos, want_cmd, out)) != 0)
            return rc == 1 ? 0 : rc;
    return 0;
}

/* ---- a password in --url or --config ---- */

static char *url_copy, *config_copy; /* --url and --config, once scrubbed from argv */

/* The password in a URL's userinfo ("scheme://user:PASSWORD@host..."), or NULL. */
static char *url_password(char *url, size_t *len)
{
    char *p = strstr(url, "://");
    if (!p)
        return NULL;
    p += 3;
    char *at = memrchr(p, '@', strcspn(p, "/?#"));
    char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (!colon || colon + 1 == at)
        return NULL;
    *len = (size_t)(at - colon - 1);
    return colon + 1;
}

static void warn_visible(const char *option)
{
    fprintf(stderr,
            "redkit: warning: a password in %s can be seen by other users (ps, /proc); use "
            "--password-file or REDKIT_PASSWORD\n",
            option);
}

/* Anyone can read /proc/PID/cmdline: warn, as redis-cli does, and overwrite the password in
 * argv (which is what /proc shows) with 'x' once the URL is copied. */
static void protect_url(cli_global *g)
{
    size_t len;
    char *url = (char *)g->url, *pw = url_password(url, &len);
    if (!pw)
        return;
    warn_visible("--url");
    char *copy = strdup(url);
    if (!copy)
        return;
    free(url_copy);
    g->url = url_copy = copy;
    memset(pw, 'x', len);
}

/* Whether the last part of a --config key (after its last '.') names a password: "pass",
 * "password", "sentinel_password", ... */
static bool names_password(const char *key, size_t klen)
{
    const char *dot = memrchr(key, '.', klen), *last = dot ? dot + 1 : key;
    size_t n = klen - (size_t)(last - key);
    return (n == 4 && !strncasecmp(last, "pass", 4)) ||
           (n >= 8 && !strncasecmp(last + n - 8, "password", 8));
}

/* Overwrite the secret of one "key=value" item of --config (NUL-terminated here): a password
 * key's value (credential.password, connections.<name>.pass, options.sentinel_password...), or
 * the password in a URI (connection.uri, connections.<name>.uri). */
static bool scrub_item(char *item)
{
    char *eq = strchr(item, '=');
    if (!eq)
        return false;
    char *key = item + strspn(item, " \t");
    size_t klen = strcspn(key, " \t="), len = 0;
    char *secret = NULL;
    if (names_password(key, klen))
        secret = eq + 1, len = strlen(secret);
    else if (klen >= 3 && !strncasecmp(key + klen - 3, "uri", 3))
        secret = url_password(eq + 1, &len);
    if (!secret || !len)
        return false;
    memset(secret, 'x', len);
    return true;
}

/* The same for --config, whose items are separated by ';'. */
static void protect_config(cli_global *g)
{
    char *copy = strdup(g->config), *item = (char *)g->config;
    if (!copy)
        return;
    bool scrubbed = false;
    for (char *end; item; item = end ? end + 1 : NULL) {
        if ((end = strchr(item, ';')))
            *end = '\0';
        scrubbed |= scrub_item(item);
        if (end)
            *end = ';';
    }
    free(config_copy);
    g->config = config_copy = copy;
    if (scrubbed)
        warn_visible("--config");
}

int cli_parse(int argc, char **argv, const cli_opt *opts, cli_global *g, int max_pos, bool want_cmd,
              cli_args *out)
{
    const cli_opt globals[] = {{"url", &g->url, NULL, 0},
                               {"config", &g->config, NULL, 0},
                               {"password-file", &g->password_file, NULL, 0},
                               {NULL, NULL, NULL, 0}};
    parser p = {.shorts = "-:h", .longs = {{0}}};
    add_opts(&p, opts);
    add_opts(&p, globals);
    p.longs[p.n] = (struct option){"help", no_argument, NULL, 'h'};
    memset(out, 0, sizeof *out);
    free(pos_store);
    pos_store = calloc((size_t)argc + 1, sizeof *pos_store);
    if (!pos_store)
        return EX_OSERR;
    out->pos = pos_store;
    const char *url = g->url, *config = g->config;
    int rc = parse_args(argc, argv, &p, max_pos, want_cmd, out);
    if (g->url && g->url != url)
        protect_url(g);
    if (g->config && g->config != config)
        protect_config(g);
    return rc;
}

/* ---- durations ---- */

static int unit_ms(const char **p, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
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
        return cli_usage_error("--%s: '%s' is not a duration (e.g. 500ms, 30s, 5m, 1h, 1d%s)", opt,
                               s, none_ok ? ", none" : "");
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
    return !strcmp(e->name, "LOCK_TIMEOUT") || !strcmp(e->name, "SEMAPHORE_TIMEOUT")
               ? EX_TEMPFAIL
               : EX_UNAVAILABLE;
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

/* The first line of `fd` into buf (NUL-terminated, without its line ending). Read byte by byte:
 * stdin's remainder stays for the command (cache set reads its value there), and a file without
 * line ends (/dev/zero) costs at most `cap` bytes. @return 0, -1 (errno set) or 1: too long. */
static int read_first_line(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0 || c == '\n')
            break;
        if (len + 1 >= cap)
            return 1;
        buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    return 0;
}

/* The first line of the file ('-': stdin), at most CLI_PASSWORD_MAX bytes. */
static int read_password(const char *path, char *buf, size_t cap)
{
    bool std_in = !strcmp(path, "-");
    const char *name = std_in ? "(stdin)" : path;
    int fd = std_in ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -1 : read_first_line(fd, buf, cap);
    int err = errno;
    if (fd >= 0 && !std_in)
        close(fd);
    if (rc < 0)
        cli_note("cannot read the password file %s: %s", name, strerror(err));
    else if (rc > 0)
        cli_note("the password file %s: the first line is longer than %zu bytes", name, cap - 1);
    return rc ? EX_NOINPUT : 0;
}

static void wipe(char *s, size_t n)
{
    for (volatile char *p = s; n--; p++)
        *p = 0;
}

static int set_url(const cli_global *g, rk_config *cfg)
{
    const char *url = g->url;
    if (!url && !names_connection(cfg)) {
        url = getenv("REDKIT_URL");
        if (!url || !*url)
            url = getenv("REDIS_URL"); /* the name other Redis tools read */
        if (!url || !*url)
            url = CLI_DEFAULT_URL;
    }
    if (url && !*url)
        return cli_usage_error("--url is empty");
    return url && rk_config_set(cfg, "connection.uri", url) ? cli_fail(true) : 0;
}

/* --password-file, else $REDKIT_PASSWORD unless --config sets credential.password. */
static int set_password(const cli_global *g, rk_config *cfg)
{
    char pw[CLI_PASSWORD_MAX + 1];
    const char *env = getenv("REDKIT_PASSWORD");
    int rc = 0;
    if (g->password_file) {
        rc = read_password(g->password_file, pw, sizeof pw);
    } else if (env && *env && !rk_config_get(cfg, "credential.password")) {
        snprintf(pw, sizeof pw, "%s", env);
    } else {
        return 0;
    }
    if (rc == 0 && rk_config_set(cfg, "credential.password", pw) != RK_OK)
        rc = cli_fail(true);
    wipe(pw, sizeof pw);
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

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

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
    const char *term = getenv("TERM");
    memset(s, 0, sizeof *s);
    /* A dumb terminal (an editor's shell buffer, a serial console) cannot redraw a line. */
    if (!isatty(STDERR_FILENO) || (term && !strcmp(term, "dumb")))
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
