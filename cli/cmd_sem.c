/* redkit lock run KEY --limit N: at most N copies of CMD at once, on a semaphore. The same
 * contract as the lock's run (cmd_lock.c): wait in slices a signal can cut short, have the
 * library's watchdog renew the lease while CMD runs, give the permit back on every way out, 76
 * when the lease was lost. */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "cli.h"

typedef struct sem_run {
    rk_semaphore *sem;
    const char *key;
    const cli_sem_opts *o;
    cli_child child;
    atomic_bool lost; /* set by the watchdog's thread */
} sem_run;

static int open_sem(const cli_global *g, uint64_t op_timeout_ms, rk_semaphore **out)
{
    rk_config *cfg;
    *out = NULL;
    int rc = cli_lease_config(g, op_timeout_ms, &cfg);
    if (rc)
        return rc;
    if (rk_semaphore_new(out) != RK_OK || rk_semaphore_configure(*out, cfg) != RK_OK ||
        rk_semaphore_open(*out, NULL) != RK_OK)
        rc = cli_fail(true);
    rk_config_free(cfg);
    return rc;
}

static void release(sem_run *r)
{
    if (rk_semaphore_release(r->sem, NULL, r->key) != RK_OK) {
        cli_fail(false);
        cli_note("the permit of %s will expire by itself", r->key);
    }
}

static int interrupted(sem_run *r, int sig, bool acquired)
{
    if (acquired)
        release(r);
    cli_note("interrupted by SIG%s while waiting for a permit of %s", sigabbrev_np(sig), r->key);
    return 128 + sig;
}

/* One slice of the wait for a permit (cli_lease_wait). */
static int acquire_slice(void *ud, uint64_t slice_ms)
{
    sem_run *r = ud;
    return rk_semaphore_acquire(r->sem, NULL, r->key, r->o->limit, r->o->ttl_ms, slice_ms);
}

static int acquire(sem_run *r)
{
    cli_spinner sp;
    char took[32];
    bool waits = r->o->wait_ms > 0 || r->o->forever;
    int sig = cli_child_interrupted(&r->child);
    if (sig)
        return interrupted(r, sig, false);
    if (waits)
        cli_spinner_start(&sp, "waiting for one of the %" PRIu32 " permits of %s", r->o->limit,
                          r->key);
    int rc = cli_lease_wait(&r->child, r->o->wait_ms, r->o->forever, acquire_slice, r);
    if (waits)
        cli_spinner_stop(&sp);
    if ((sig = cli_child_interrupted(&r->child)) != 0)
        return interrupted(r, sig, rc == RK_OK);
    if (rc == RK_OK)
        return 0;
    if (cli_exit_code(rk_last_error(), false) != EX_TEMPFAIL)
        return cli_fail(false);
    if (!r->o->quiet) {
        cli_fail(false);
        cli_note("all %" PRIu32 " permits of %s are held; gave up after %s", r->o->limit, r->key,
                 cli_fmt_ms(r->o->wait_ms, took, sizeof took));
    }
    return r->o->conflict_code;
}

/* Called once, from the watchdog's thread, when a renewal found the permit gone or none got
 * through for a whole TTL. */
static void lease_lost(void *ud, const char *key)
{
    sem_run *r = ud;
    cli_lease_lost(&r->child, &r->lost, r->o->kill_on_loss, "the permit of", key,
                   rk_last_error()->message);
}

static int run_held(sem_run *r, char **cmd)
{
    int rc = rk_semaphore_set_lost_handler(r->sem, lease_lost, r);
    if (rc != RK_OK || (rc = rk_semaphore_watch(r->sem, r->key)) != RK_OK) {
        rc = cli_lease_not_watched(rc, "the permit of", r->key, r->o->quiet, r->o->conflict_code);
        release(r);
        return rc;
    }
    int status = cli_child_spawn(&r->child, cmd, -1);
    if (status == 0)
        status = cli_child_wait(&r->child);
    release(r); /* ends the renewals first: `lost` is final now */
    return cli_lease_status(status, atomic_load(&r->lost), "the permit of", r->key);
}

int cli_sem_run(cli_global *g, const char *key, const cli_sem_opts *o, char **cmd)
{
    sem_run r = {.key = key, .o = o};
    atomic_init(&r.lost, false);
    uint64_t op_timeout = cli_lease_op_timeout_ms(o->ttl_ms); /* as for the lock */
    /* Signals are blocked before any thread starts, the library's included. */
    int rc = cli_child_init(&r.child, NULL, NULL);
    if (rc)
        return rc;
    if ((rc = open_sem(g, op_timeout, &r.sem)) == 0 && (rc = acquire(&r)) == 0)
        rc = run_held(&r, cmd);
    rk_semaphore_free(r.sem); /* first: its watchdog may be telling the child to stop */
    cli_child_destroy(&r.child);
    return rc;
}
