/* What 'lock run' (cmd_lock.c) and 'lock run --limit' (cmd_sem.c) share: the per-call timeout,
 * the sliced wait, a watch that could not start, and the exit status of a run whose lease was
 * lost. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

/* rk_*_acquire() can only be cut short by closing the handle, and a closed handle could not
 * release a lease handed to it at that very moment. So the wait runs in slices of this length
 * (each leaves the queue cleanly), and a signal ends it between two slices. */
#define WAIT_SLICE_MS 200
/* A lost lease must be noticed while it still matters: one Redis call may take at most a
 * third of the TTL, but not less than this. */
#define MIN_OP_TIMEOUT_MS 250

uint64_t cli_lease_op_timeout_ms(uint64_t ttl_ms)
{
    return ttl_ms / 3 > MIN_OP_TIMEOUT_MS ? ttl_ms / 3 : MIN_OP_TIMEOUT_MS;
}

int cli_lease_config(const cli_global *g, uint64_t op_timeout_ms, rk_config **out)
{
    char ms[24];
    int rc = cli_config(g, out, NULL);
    if (rc)
        return rc;
    snprintf(ms, sizeof ms, "%" PRIu64, op_timeout_ms);
    if (op_timeout_ms && !rk_config_get(*out, "options.timeout") &&
        rk_config_set(*out, "options.timeout", ms) != RK_OK) {
        rc = cli_fail(true);
        rk_config_free(*out);
        *out = NULL;
    }
    return rc;
}

int cli_lease_wait(cli_child *child, uint64_t wait_ms, bool forever,
                   int (*attempt)(void *ud, uint64_t slice_ms), void *ud)
{
    uint64_t deadline = cli_now_ms() + wait_ms;
    for (;;) {
        uint64_t now = cli_now_ms(), left = deadline > now ? deadline - now : 0;
        if (forever)
            left = UINT64_MAX;
        uint64_t slice = left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS;
        int rc = attempt(ud, slice);
        if (rc != RK_ETIMEDOUT || slice == left || cli_child_interrupted(child))
            return rc;
    }
}

void cli_lease_lost(cli_child *child, atomic_bool *lost, bool kill, const char *lease,
                    const char *key, const char *why)
{
    atomic_store(lost, true);
    cli_note("lost %s %s: %s", lease, key, why);
    if (kill) {
        cli_note("terminating the command (--kill-on-loss)");
        cli_child_kill(child, SIGTERM);
    }
}

int cli_lease_not_watched(int rc, const char *lease, const char *key, bool quiet, int conflict_code)
{
    if (rc != RK_ENOTOWNER) {
        rc = cli_fail(false);
        cli_note("cannot renew %s %s: not running the command", lease, key);
        return rc;
    }
    if (!quiet)
        cli_note("lost %s %s before running the command: %s", lease, key, rk_last_error()->message);
    return conflict_code;
}

/* CMD ran partly unprotected: a cron job's success must not hide that. */
int cli_lease_status(int status, bool lost, const char *lease, const char *key)
{
    if (!lost)
        return status;
    cli_note("exiting %d instead of the command's status %d: %s %s was lost while it ran",
             CLI_EX_LOST, status, lease, key);
    return CLI_EX_LOST;
}
