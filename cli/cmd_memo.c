/* redkit memo run */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char cli_memo_usage[] =
    "redkit memo run KEY [-t|--ttl 60s] [-w|--wait 30s] [--tag redkit-memo] [--] CMD [ARGS...]\n"
    "    Print CMD's stdout, running CMD at most once across all concurrent callers on any\n"
    "    host: one caller runs it (renewing its lease while it runs) and stores its output for\n"
    "    --ttl ('none': no expiry); the others wait up to --wait and print the same bytes;\n"
    "    later callers print the stored output. A failing CMD is not stored: its output and\n"
    "    exit status are passed through. Exit 75 if no output arrived within --wait.\n";

#define DEFAULT_LEASE_MS 5000 /* the library's options.lock_timeout */

typedef struct memo_opts {
    const char *ttl, *wait, *tag;
    uint64_t ttl_ms, wait_ms;
} memo_opts;

typedef struct memo_run {
    _Atomic(rk_memolock *) m; /* read by the signal thread */
    const char *key;
    char **cmd;
    uint64_t ttl_ms, lease_ms;
    cli_child child;
    cli_spinner spin;
    bool ran;          /* this process ran CMD */
    bool lease_warned; /* the lease was lost while CMD ran */
    int status;        /* CMD's exit status */
    char *out;         /* CMD's stdout */
    size_t len, cap;
} memo_run;

/* ---- running CMD with its stdout captured ---- */

static int append(memo_run *r, int fd)
{
    if (r->cap - r->len < 4096) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        char *bigger = realloc(r->out, cap);
        if (!bigger)
            return EX_OSERR;
        r->out = bigger;
        r->cap = cap;
    }
    ssize_t n = read(fd, r->out + r->len, r->cap - r->len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : EX_IOERR;
    r->len += (size_t)n;
    return n == 0 ? -1 : 0; /* -1: end of output */
}

static void renew_lease(memo_run *r, rk_memolock_renewer *renew)
{
    if (rk_memolock_renew(renew, r->lease_ms) == RK_OK || r->lease_warned)
        return;
    r->lease_warned = true;
    cli_note("lost the memo lease on %s: %s; another caller may run the command too", r->key,
             rk_last_error()->message);
}

/* Read CMD's stdout to its end, renewing the lease every lease/3 meanwhile. */
static int capture(memo_run *r, int fd, rk_memolock_renewer *renew)
{
    uint64_t every = r->lease_ms / 3 ? r->lease_ms / 3 : 1, next = cli_now_ms() + every;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = cli_now_ms(), left = next > now ? next - now : 0;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno != EINTR)
            return EX_OSERR;
        if (n == 0) {
            renew_lease(r, renew);
            next = cli_now_ms() + every;
        }
        int rc = n > 0 ? append(r, fd) : 0;
        if (rc)
            return rc < 0 ? 0 : rc;
    }
}

static int run_captured(memo_run *r, rk_memolock_renewer *renew)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cli_note("cannot create a pipe: %s", strerror(errno));
        return EX_OSERR;
    }
    int status = cli_child_spawn(&r->child, r->cmd, fds[1]);
    close(fds[1]);
    if (status == 0) {
        int rc = capture(r, fds[0], renew);
        if (rc) {
            cli_note("cannot read the command's output");
            cli_child_kill(&r->child, SIGTERM);
        }
        status = cli_child_wait(&r->child);
        if (rc && status == 0)
            status = rc;
    }
    close(fds[0]);
    return status;
}

/* The memolock's fetch: we won, so CMD runs here. */
static int fetch(void *ud, rk_memolock_renewer *renew, rk_buf *value, uint64_t *ttl_ms)
{
    memo_run *r = ud;
    cli_spinner_stop(&r->spin); /* CMD's own stderr has the terminal now */
    r->ran = true;
    r->status = run_captured(r, renew);
    if (r->status != 0)
        return 1; /* not stored: the next caller runs CMD again */
    *ttl_ms = r->ttl_ms;
    return rk_buf_set(value, r->out ? r->out : "", r->len) == RK_OK ? 0 : 1;
}

/* ---- the call ---- */

/* From the signal thread: closing the memolock ends a wait at once. */
static void interrupt_wait(void *ud)
{
    memo_run *r = ud;
    rk_memolock *m = atomic_load(&r->m);
    if (m)
        rk_memolock_close(m, NULL);
}

/* We ran CMD: its output and status are the answer, whether or not it could be stored. */
static int finish_ran(memo_run *r, int rc)
{
    int out = cli_write_all(STDOUT_FILENO, r->out ? r->out : "", r->len);
    if (r->status != 0)
        return r->status;
    if (rc != RK_OK) {
        cli_fail(false);
        cli_note("the output of %s was printed but not stored", r->key);
    }
    return out;
}

static int finish_waited(memo_run *r, int rc, const rk_buf *value, uint64_t wait_ms)
{
    char took[32];
    int sig = cli_child_interrupted(&r->child);
    if (rc == RK_OK)
        return cli_write_all(STDOUT_FILENO, value->data, value->len);
    if (sig) {
        cli_note("interrupted by SIG%s while waiting for %s", sigabbrev_np(sig), r->key);
        return 128 + sig;
    }
    int code = cli_fail(false);
    if (rc != RK_ETIMEDOUT)
        return code;
    cli_note("no output for %s within %s", r->key, cli_fmt_ms(wait_ms, took, sizeof took));
    return EX_TEMPFAIL;
}

static int memo_get(memo_run *r, uint64_t wait_ms)
{
    rk_buf value = RK_BUF_INIT;
    int rc = RK_ENOTOPEN;
    if (!cli_child_interrupted(&r->child)) {
        char took[32];
        cli_spinner_start(&r->spin, "waiting up to %s for the output of %s",
                          cli_fmt_ms(wait_ms, took, sizeof took), r->key);
        rc = rk_memolock_get_renewable(atomic_load(&r->m), NULL, r->key, wait_ms, fetch, r, &value);
        cli_spinner_stop(&r->spin);
    }
    int code = r->ran ? finish_ran(r, rc) : finish_waited(r, rc, &value, wait_ms);
    rk_buf_free(&value);
    return code;
}

static uint64_t lease_of(const rk_config *cfg)
{
    const char *v = rk_config_get(cfg, "options.lock_timeout");
    char *end;
    unsigned long long ms = v ? strtoull(v, &end, 10) : 0;
    return ms && !*end ? (uint64_t)ms : DEFAULT_LEASE_MS;
}

static int open_memolock(const cli_global *g, const memo_opts *o, memo_run *r)
{
    rk_config *cfg;
    rk_memolock *m = NULL;
    int rc = cli_config(g, &cfg, "options.resource_tag", o->tag, NULL);
    if (rc)
        return rc;
    r->lease_ms = lease_of(cfg);
    if (rk_memolock_new(&m) != RK_OK || rk_memolock_configure(m, cfg) != RK_OK ||
        rk_memolock_open(m, NULL) != RK_OK)
        rc = cli_fail(true);
    rk_config_free(cfg);
    atomic_store(&r->m, m); /* a signal from now on closes it */
    return rc;
}

static int memo_run_cmd(cli_global *g, const char *key, const memo_opts *o, char **cmd)
{
    memo_run r = {.key = key, .cmd = cmd, .ttl_ms = o->ttl_ms};
    atomic_init(&r.m, NULL);
    /* Signals are blocked before any thread starts, the library's included. */
    int rc = cli_child_init(&r.child, interrupt_wait, &r);
    if (rc)
        return rc;
    if ((rc = open_memolock(g, o, &r)) == 0)
        rc = memo_get(&r, o->wait_ms);
    cli_child_destroy(&r.child);
    rk_memolock_free(atomic_load(&r.m));
    free(r.out);
    return rc;
}

static int check_opts(const cli_args *a, memo_opts *o)
{
    if (a->npos < 1)
        return cli_usage_error("memo run: missing KEY");
    if (a->ncmd == 0)
        return cli_usage_error("memo run: missing the command to run (memo run KEY -- CMD ...)");
    if (o->tag && !*o->tag)
        return cli_usage_error("--tag is empty");
    o->ttl_ms = 60000;
    o->wait_ms = 30000;
    if ((o->ttl && cli_duration("ttl", o->ttl, true, &o->ttl_ms)) ||
        (o->wait && cli_duration("wait", o->wait, false, &o->wait_ms)))
        return EX_USAGE;
    if (!o->tag)
        o->tag = "redkit-memo";
    return o->ttl_ms ? 0 : cli_usage_error("--ttl must be longer than 0ms");
}

int cmd_memo(cli_global *g, int argc, char **argv)
{
    memo_opts o = {0};
    const cli_opt opts[] = {{"ttl", &o.ttl, NULL, 't'},
                            {"wait", &o.wait, NULL, 'w'},
                            {"tag", &o.tag, NULL, 0},
                            {NULL, NULL, NULL, 0}};
    const char *sub = argc > 1 ? argv[1] : "";
    cli_args a;
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fputs(cli_memo_usage, stdout);
        return 0;
    }
    if (strcmp(sub, "run"))
        return cli_usage_error(*sub ? "unknown memo command '%s'" : "memo: missing command%s",
                               *sub ? sub : " (run)");
    int rc = cli_parse(argc - 1, argv + 1, opts, g, 1, true, &a);
    if (rc || a.help) {
        if (a.help)
            fputs(cli_memo_usage, stdout);
        return rc;
    }
    if ((rc = check_opts(&a, &o)) != 0)
        return rc;
    return memo_run_cmd(g, a.pos[0], &o, a.cmd);
}
