/* redkit lock run|try|release */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli_lock_usage[] =
    "redkit lock run KEY [-t|--ttl 30s] [-w|--wait 10s|forever] [-q|--quiet]\n"
    "                [-E|--conflict-exit 75] [--kill-on-loss] [-n|--limit N] [--] CMD [ARGS...]\n"
    "    Acquire KEY, waiting up to --wait for it (0s: one attempt; forever: no limit), run\n"
    "    CMD, renew the lease every ttl/3 while CMD runs, release it and exit with CMD's\n"
    "    status. If the lock stays taken, exit 75 (or --conflict-exit N), silently with\n"
    "    --quiet. A lost lease is reported on stderr and redkit exits 76 whatever CMD's\n"
    "    status; --kill-on-loss also sends CMD SIGTERM. SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/\n"
    "    SIGUSR2 are passed on to CMD; one that arrives during the wait ends it (exit 128+N).\n"
    "    The lock and the place in its queue are given back on every way out.\n"
    "    --limit N: a semaphore instead of a lock: at most N copies of CMD run at once across\n"
    "    hosts (N >= 1). Its permits live apart from the lock: 'lock run K' and 'lock run K\n"
    "    --limit 1' do not exclude each other. Callers should pass the same N for one KEY.\n"
    "    In a crontab: redkit lock run -q -w 0 nightly -- ./backup.sh\n"
    "redkit lock try KEY [-t|--ttl 30s] [-q|--quiet]\n"
    "    One attempt. Acquired: print the lock's token and exit 0; the lock stays held until\n"
    "    its TTL ends or 'lock release'. Taken: exit 1 (silently with --quiet).\n"
    "redkit lock status KEY [--token] [--json]\n"
    "    Held: print \"held, 29500ms left\" (--token: the holder's token instead) and exit 0.\n"
    "    Free: print \"free\" (nothing with --token) and exit 1. --json prints one object:\n"
    "    {\"key\":\"k\",\"held\":true,\"ttl_ms\":29500,\"token\":\"...\"} or\n"
    "    {\"key\":\"k\",\"held\":false}.\n"
    "redkit lock release KEY (--token TOKEN | --force)\n"
    "    --token: release the lock if it still holds TOKEN (from 'lock try'), handing it to\n"
    "    the next waiter, else exit 1.\n"
    "    --force: delete the lock whoever holds it (to clear a stale lock by hand).\n";

#define TOKEN_LEN 32 /* the lock's value: 32 lowercase hex characters */
#define DEFAULT_TTL_MS 30000
#define DEFAULT_WAIT_MS 10000

typedef struct lock_opts {
    const char *ttl, *wait, *token, *conflict_exit, *limit;
    bool kill_on_loss, force, quiet;
    bool forever; /* --wait forever */
    int conflict_code;
    uint64_t ttl_ms, wait_ms;
    uint32_t limit_n; /* --limit: 0 when not given */
} lock_opts;

typedef struct lock_run {
    rk_lock *lock;
    const char *key;
    const lock_opts *o;
    cli_child child;
    atomic_bool lost; /* set by the watchdog's thread */
} lock_run;

/* `op_timeout_ms` > 0 bounds each Redis call unless the user's configuration does. */
static int open_lock(const cli_global *g, uint64_t op_timeout_ms, rk_lock **out)
{
    rk_config *cfg;
    *out = NULL;
    int rc = cli_lease_config(g, op_timeout_ms, &cfg);
    if (rc)
        return rc;
    if (rk_lock_new(out) != RK_OK || rk_lock_configure(*out, cfg) != RK_OK ||
        rk_lock_open(*out, NULL) != RK_OK)
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

static bool is_token(const char *s, size_t len)
{
    if (len != TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ---- lock run: the lease, renewed by the library's watchdog ---- */

/* Called once, from the watchdog's thread, when a renewal found the lease gone or none got
 * through for a whole TTL. */
static void lease_lost(void *ud, const char *key)
{
    lock_run *r = ud;
    cli_lease_lost(&r->child, &r->lost, r->o->kill_on_loss, "the lock on", key,
                   rk_last_error()->message);
}

/* ---- lock run ---- */

static void release(lock_run *r)
{
    if (rk_lock_release(r->lock, NULL, r->key) != RK_OK) {
        cli_fail(false);
        cli_note("the lock on %s will expire by itself", r->key);
    }
}

static int interrupted(lock_run *r, int sig, bool acquired)
{
    if (acquired)
        release(r);
    cli_note("interrupted by SIG%s while waiting for the lock on %s", sigabbrev_np(sig), r->key);
    return 128 + sig;
}

/* One slice of the wait for the lock (cli_lease_wait). */
static int acquire_slice(void *ud, uint64_t slice_ms)
{
    lock_run *r = ud;
    return rk_lock_acquire(r->lock, NULL, r->key, r->o->ttl_ms, slice_ms);
}

/* The lock stayed taken: --conflict-exit's status, and with --quiet not a word (as flock -n
 * in a crontab, where every line on stderr becomes a mail). */
static int conflict(lock_run *r)
{
    char took[32];
    if (!r->o->quiet) {
        cli_fail(false);
        cli_note("the lock on %s is held by another owner; gave up after %s", r->key,
                 cli_fmt_ms(r->o->wait_ms, took, sizeof took));
    }
    return r->o->conflict_code;
}

static void spinner_start(lock_run *r, cli_spinner *sp)
{
    char took[32];
    if (r->o->forever)
        cli_spinner_start(sp, "waiting for the lock on %s", r->key);
    else
        cli_spinner_start(sp, "waiting up to %s for the lock on %s",
                          cli_fmt_ms(r->o->wait_ms, took, sizeof took), r->key);
}

static int acquire(lock_run *r)
{
    cli_spinner sp;
    bool waits = r->o->wait_ms > 0 || r->o->forever;
    int sig = cli_child_interrupted(&r->child);
    if (sig)
        return interrupted(r, sig, false);
    if (waits)
        spinner_start(r, &sp);
    int rc = cli_lease_wait(&r->child, r->o->wait_ms, r->o->forever, acquire_slice, r);
    if (waits)
        cli_spinner_stop(&sp);
    if ((sig = cli_child_interrupted(&r->child)) != 0)
        return interrupted(r, sig, rc == RK_OK);
    if (rc == RK_OK)
        return 0;
    if (cli_exit_code(rk_last_error(), false) == EX_TEMPFAIL)
        return conflict(r);
    return cli_fail(false);
}

/* The watch's first renewal failed, so CMD does not run. */
static int not_watched(lock_run *r, int rc)
{
    rc = cli_lease_not_watched(rc, "the lock on", r->key, r->o->quiet, r->o->conflict_code);
    release(r);
    return rc;
}

/* With options.lock_fencing, CMD gets its grant's number to hand to what the lock protects. */
static void export_fencing_token(lock_run *r)
{
    uint64_t fence;
    char text[24];
    if (rk_lock_fencing_token(r->lock, r->key, &fence) != RK_OK)
        return; /* fencing is off */
    snprintf(text, sizeof text, "%" PRIu64, fence);
    setenv("REDKIT_FENCING_TOKEN", text, 1);
}

static int run_held(lock_run *r, char **cmd)
{
    int rc = rk_lock_set_lost_handler(r->lock, lease_lost, r);
    if (rc != RK_OK || (rc = rk_lock_watch(r->lock, r->key)) != RK_OK)
        return not_watched(r, rc);
    export_fencing_token(r);
    int status = cli_child_spawn(&r->child, cmd, -1);
    if (status == 0)
        status = cli_child_wait(&r->child);
    release(r); /* ends the renewals first: `lost` is final now */
    return cli_lease_status(status, atomic_load(&r->lost), "the lock on", r->key);
}

static int lock_run_cmd(cli_global *g, const char *key, const lock_opts *o, char **cmd)
{
    lock_run r = {.key = key, .o = o};
    atomic_init(&r.lost, false);
    /* The library's watchdog must notice a lost lease while it still matters. */
    uint64_t op_timeout = cli_lease_op_timeout_ms(o->ttl_ms);
    /* Signals are blocked before any thread starts, the library's included. */
    int rc = cli_child_init(&r.child, NULL, NULL);
    if (rc)
        return rc;
    if ((rc = open_lock(g, op_timeout, &r.lock)) == 0 && (rc = acquire(&r)) == 0)
        rc = run_held(&r, cmd);
    rk_lock_free(r.lock); /* first: its watchdog may be telling the child to stop */
    cli_child_destroy(&r.child);
    return rc;
}

/* ---- lock try / release ---- */

static int lock_try(const cli_global *g, const char *key, const lock_opts *o)
{
    rk_lock *l;
    bool acquired = false;
    int rc = open_lock(g, 0, &l);
    if (rc == 0 && rk_lock_try_acquire(l, NULL, key, o->ttl_ms, &acquired) != RK_OK)
        rc = cli_fail(false);
    if (rc == 0 && !acquired) {
        if (!o->quiet)
            cli_note("the lock on %s is held by another owner", key);
        rc = CLI_EXIT_NO;
    }
    char token[RK_LOCK_TOKEN_SIZE];
    if (rc == 0 && rk_lock_token(l, key, token) != RK_OK)
        rc = cli_fail(false);
    if (rc == 0)
        printf("%s\n", token);
    rk_lock_free(l); /* keeps the lock: it lives on until its TTL or 'lock release' */
    return rc;
}

static int release_token(const cli_global *g, const char *key, const char *token)
{
    rk_lock *l;
    int rc = open_lock(g, 0, &l);
    if (rc == 0 && (rc = rk_lock_release_token(l, NULL, key, token)) == RK_ENOTOWNER) {
        cli_note("the lock on %s is not held by that token (it expired, was released or has "
                 "another owner)",
                 key);
        rc = CLI_EXIT_NO;
    } else if (rc != 0) {
        rc = cli_fail(false);
    }
    rk_lock_free(l);
    return rc;
}

static int lock_release(const cli_global *g, const char *key, const lock_opts *o)
{
    rk_cache *c;
    if (!o->force == !o->token)
        return cli_usage_error("lock release needs --token TOKEN or --force");
    if (o->token && !is_token(o->token, strlen(o->token)))
        return cli_usage_error("--token: expected the 32 hex characters printed by 'lock try'");
    if (o->token)
        return release_token(g, key, o->token);
    int rc = cli_open_cache(g, &c);
    if (rc == 0 && rk_cache_remove(c, NULL, key) != RK_OK)
        rc = cli_fail(false);
    rk_cache_free(c);
    return rc;
}

/* ---- lock status ---- */

typedef struct status_opts {
    bool token, json;
} status_opts;

static void print_held(const char *key, uint64_t left, const char *token, const status_opts *s)
{
    if (s->json) {
        fputs("{\"key\":", stdout);
        cli_json_str(stdout, key);
        if (left == RK_TTL_NONE)
            fputs(",\"held\":true,\"ttl_ms\":null,\"token\":", stdout);
        else
            printf(",\"held\":true,\"ttl_ms\":%" PRIu64 ",\"token\":", left);
        cli_json_str(stdout, token);
        fputs("}\n", stdout);
    } else if (s->token) {
        printf("%s\n", token);
    } else if (left == RK_TTL_NONE) {
        printf("held, no expiry\n");
    } else {
        printf("held, %" PRIu64 "ms left\n", left);
    }
}

static int print_free(const char *key, const status_opts *s)
{
    if (s->json) {
        fputs("{\"key\":", stdout);
        cli_json_str(stdout, key);
        fputs(",\"held\":false}\n", stdout);
    } else if (!s->token) {
        printf("free\n");
    }
    return CLI_EXIT_NO;
}

/* A lock's key holds its holder's token, and its TTL is what is left of the lease: a cache on
 * the same prefix reads both (TTL first: a lock released in between reads as free). */
static int read_status(rk_cache *c, const char *key, const status_opts *s)
{
    rk_buf value = RK_BUF_INIT;
    uint64_t left = 0;
    int rc = rk_cache_ttl(c, NULL, key, &left);
    if (rc == RK_OK)
        rc = rk_cache_retrieve(c, NULL, key, &value);
    if (rc == RK_OK) {
        char token[256];
        snprintf(token, sizeof token, "%.*s", (int)(value.len < 255 ? value.len : 255),
                 value.data ? value.data : "");
        print_held(key, left, token, s);
    }
    rk_buf_free(&value);
    if (rc == RK_ENOTFOUND)
        return print_free(key, s);
    return rc == RK_OK ? 0 : cli_fail(false);
}

static int lock_status(const cli_global *g, const char *key, const status_opts *s)
{
    rk_cache *c;
    int rc = cli_open_cache(g, &c);
    if (rc == 0)
        rc = read_status(c, key, s);
    rk_cache_free(c);
    return rc != EX_IOERR && fflush(stdout) != 0 ? EX_IOERR : rc;
}

static int cmd_status(cli_global *g, int argc, char **argv)
{
    status_opts s = {false, false};
    const cli_opt opts[] = {
        {"token", NULL, &s.token, 0}, {"json", NULL, &s.json, 0}, {NULL, NULL, NULL, 0}};
    cli_args a;
    int rc = cli_parse(argc, argv, opts, g, 1, false, &a);
    if (rc || a.help) {
        if (a.help)
            fputs(cli_lock_usage, stdout);
        return rc;
    }
    if (a.npos < 1)
        return cli_usage_error("lock status: missing KEY");
    return lock_status(g, a.pos[0], &s);
}

/* ---- dispatch ---- */

/* --conflict-exit N: 0..255, as an exit status can carry. */
static int conflict_code(lock_opts *o)
{
    char *end;
    long n = o->conflict_exit ? strtol(o->conflict_exit, &end, 10) : EX_TEMPFAIL;
    if (o->conflict_exit && (!*o->conflict_exit || *end || n < 0 || n > 255))
        return cli_usage_error("--conflict-exit: '%s' is not an exit status (0 to 255)",
                               o->conflict_exit);
    o->conflict_code = (int)n;
    return 0;
}

/* --limit N: 1 and more (a semaphore of 0 permits would never run CMD). */
static int limit(lock_opts *o)
{
    char *end;
    unsigned long n = o->limit ? strtoul(o->limit, &end, 10) : 0;
    if (o->limit && (!*o->limit || *o->limit == '-' || *end || n < 1 || n > UINT32_MAX))
        return cli_usage_error("--limit: '%s' is not a number of permits (1 or more)", o->limit);
    o->limit_n = (uint32_t)n;
    return 0;
}

static int check_opts(const char *sub, const cli_args *a, lock_opts *o)
{
    bool run = !strcmp(sub, "run"), is_try = !strcmp(sub, "try");
    if (a->npos < 1)
        return cli_usage_error("lock %s: missing KEY", sub);
    if (run && a->ncmd == 0)
        return cli_usage_error("lock run: missing the command to run (lock run KEY -- CMD ...)");
    if ((o->wait || o->kill_on_loss || o->conflict_exit || o->limit) && !run)
        return cli_usage_error("lock %s: --wait, --kill-on-loss, --conflict-exit and --limit "
                               "apply to 'lock run' only",
                               sub);
    if (o->quiet && !run && !is_try)
        return cli_usage_error("lock %s: --quiet applies to 'lock run' and 'lock try' only", sub);
    if ((o->token || o->force) && (run || is_try))
        return cli_usage_error("lock %s: --token and --force apply to 'lock release' only", sub);
    if (o->ttl && !run && !is_try)
        return cli_usage_error("lock release: --ttl does not apply");
    o->ttl_ms = DEFAULT_TTL_MS;
    o->wait_ms = DEFAULT_WAIT_MS;
    o->forever = o->wait && !strcmp(o->wait, "forever");
    if ((o->ttl && cli_duration("ttl", o->ttl, false, &o->ttl_ms)) ||
        (o->wait && !o->forever && cli_duration("wait", o->wait, false, &o->wait_ms)) ||
        conflict_code(o) != 0 || limit(o) != 0)
        return EX_USAGE;
    return o->ttl_ms ? 0 : cli_usage_error("--ttl must be longer than 0ms");
}

int cmd_lock(cli_global *g, int argc, char **argv)
{
    lock_opts o = {0};
    const cli_opt opts[] = {{"ttl", &o.ttl, NULL, 't'},
                            {"wait", &o.wait, NULL, 'w'},
                            {"token", &o.token, NULL, 0},
                            {"force", NULL, &o.force, 0},
                            {"kill-on-loss", NULL, &o.kill_on_loss, 0},
                            {"quiet", NULL, &o.quiet, 'q'},
                            {"conflict-exit", &o.conflict_exit, NULL, 'E'},
                            {"limit", &o.limit, NULL, 'n'},
                            {NULL, NULL, NULL, 0}};
    const char *sub = argc > 1 ? argv[1] : "";
    bool run = !strcmp(sub, "run");
    cli_args a;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(cli_lock_usage, stdout);
        return 0;
    }
    if (!strcmp(sub, "status"))
        return cmd_status(g, argc - 1, argv + 1);
    if (!run && strcmp(sub, "try") && strcmp(sub, "release"))
        return cli_usage_error(*sub ? "unknown lock command '%s'" : "lock: missing command%s",
                               *sub ? sub : " (run, try, status or release)");
    int rc = cli_parse(argc - 1, argv + 1, opts, g, 1, run, &a);
    if (rc || a.help) {
        if (a.help)
            fputs(cli_lock_usage, stdout);
        return rc;
    }
    if ((rc = check_opts(sub, &a, &o)) != 0)
        return rc;
    if (run && o.limit_n) {
        cli_sem_opts so = {o.limit_n, o.ttl_ms,       o.wait_ms,      o.forever,
                           o.quiet,   o.kill_on_loss, o.conflict_code};
        return cli_sem_run(g, a.pos[0], &so, a.cmd);
    }
    if (run)
        return lock_run_cmd(g, a.pos[0], &o, a.cmd);
    return !strcmp(sub, "try") ? lock_try(g, a.pos[0], &o) : lock_release(g, a.pos[0], &o);
}
