/* Shared helpers of the redkit command-line tool. The tool uses redkit's public API only. */
#ifndef REDKIT_CLI_H
#define REDKIT_CLI_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sysexits.h>
#include <time.h>

#include <redkit.h>

#define CLI_DEFAULT_URL "redis://127.0.0.1:6379"
#define CLI_EXIT_NO 1  /* a negative answer: cache miss, lock not acquired */
#define CLI_EX_LOST 76 /* lock run: the lease was lost while CMD ran (CMD's status is not ours) */
#define CLI_EX_NOEXEC 126     /* the command exists but could not run, as in shells */
#define CLI_EX_NOCMD 127      /* the command was not found, as in shells */
#define CLI_PASSWORD_MAX 4096 /* bytes of a --password-file line */

/* Options accepted before or after the command name. */
typedef struct cli_global {
    const char *url;
    const char *config;
    const char *password_file;
} cli_global;

/* One option of a command, parsed with getopt_long() conventions: `--name VALUE`,
 * `--name=VALUE` (and `-c VALUE`, `-cVALUE` when `short_name` is set) when `value` is set, else
 * a flag (`--name`, `-c`). */
typedef struct cli_opt {
    const char *name;
    const char **value;
    bool *flag;
    char short_name;
} cli_opt;

typedef struct cli_args {
    char **pos; /* up to the command's `max_pos`; valid until the next cli_parse() */
    int npos;
    char **cmd; /* the command to run (after "--" or the last positional), NULL-terminated */
    int ncmd;
    bool help;
} cli_args;

/* Parse a command's arguments (argv[0] is the command name). `opts` ends with a zeroed entry.
 * Options may come before or after positionals; "--" ends them. With `max_pos` positionals seen,
 * the next non-option argument starts the command to run when `want_cmd`, else it is an error.
 * A password in --url is scrubbed from argv (g->url then points to a copy).
 * @return 0 or EX_USAGE (after printing why). */
int cli_parse(int argc, char **argv, const cli_opt *opts, cli_global *g, int max_pos, bool want_cmd,
              cli_args *out);

/* "250ms", "30s", "5m", "1h", "1d", "1m30s", "1.5s"; a bare number is seconds. `none_ok` also
 * accepts "none" (RK_TTL_NONE). @return 0 or EX_USAGE (after printing why). */
int cli_duration(const char *opt, const char *s, bool none_ok, uint64_t *ms);

/* "1.2s", "350ms", "2m05s" for messages. */
const char *cli_fmt_ms(uint64_t ms, char *buf, size_t cap);

/* The configuration for every component: --config, then --url (or REDKIT_URL, or the default
 * URL when --config names no connection), then --password-file. Extra "key", "value" pairs
 * (NULL-terminated) are set last. @return 0 or an exit code (after printing why). */
int cli_config(const cli_global *g, rk_config **out, ...);

/* A cache configured by cli_config() and opened; freed by the caller even on failure.
 * @return 0 or an exit code (after printing why). */
int cli_open_cache(const cli_global *g, rk_cache **out);

/* Print "redkit: usage message" and a hint. @return EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "redkit: message" on stderr. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the calling thread's rk_last_error() as "redkit: NAME (Category): message" plus its
 * cause, and return the exit code for it. `setup` marks configure/open, where RK_EINVAL means
 * a bad configuration (EX_CONFIG) rather than bad data (EX_DATAERR). */
int cli_fail(bool setup);

/* The exit code for an error, as cli_fail() chooses it. */
int cli_exit_code(const rk_error *e, bool setup);

/* Write all bytes to a file descriptor. @return 0, or EX_IOERR after printing why. */
int cli_write_all(int fd, const void *data, size_t len);

/* Write `s` as a JSON string (quoted and escaped; bytes >= 0x80 pass through as UTF-8). */
void cli_json_str(FILE *f, const char *s);

/* Read a whole file descriptor into a malloc'ed buffer. @return 0 or EX_IOERR. */
int cli_read_all(int fd, char **data, size_t *len);

uint64_t cli_now_ms(void);

/* A condition variable timed on CLOCK_MONOTONIC, and a deadline `ms` from now on that clock. */
void cli_cond_init(pthread_cond_t *cv);
void cli_deadline_in(struct timespec *ts, uint64_t ms);

/* A one-line progress indicator on stderr, shown only when stderr is a terminal and only once
 * the wait has lasted a moment. stop() is idempotent and clears the line. */
typedef struct cli_spinner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;
    bool stop;
    uint64_t start_ms;
    char label[200];
} cli_spinner;

void cli_spinner_start(cli_spinner *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_spinner_stop(cli_spinner *s);

/* A child command under a signal-forwarding thread. Init before any other thread exists (the
 * library's included): it blocks the forwarded signals so only its own thread receives them.
 * While a command runs, signals sent to redkit are passed to it; before (or between) commands
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT are recorded and `on_interrupt` is called from the signal thread,
 * so the caller can cut a wait short. */
typedef struct cli_child {
    pthread_mutex_t mu;
    pid_t pid;       /* the running command, 0 when none */
    int interrupted; /* the signal that interrupted us, 0 if none */
    void (*on_interrupt)(void *ud);
    void *ud;
    sigset_t handled;  /* the signals the thread waits for */
    sigset_t ignored;  /* ... of which these were ignored when we started */
    sigset_t old_mask; /* restored in the command */
    pthread_t thread;
    bool stopping;
} cli_child;

int cli_child_init(cli_child *c, void (*on_interrupt)(void *ud), void *ud);
void cli_child_destroy(cli_child *c);

/* Start argv[0] (searched in PATH) with stdout on `out_fd` (-1: inherited). @return 0, or the
 * shell-style status to exit with (127 not found, 126 cannot run, 128+sig when interrupted)
 * after printing why. */
int cli_child_spawn(cli_child *c, char *const argv[], int out_fd);

/* Wait for the running command. @return its exit status, or 128+signal if a signal killed it. */
int cli_child_wait(cli_child *c);

/* Send `sig` to the running command, if any. */
void cli_child_kill(cli_child *c, int sig);

/* The signal that interrupted us, or 0. */
int cli_child_interrupted(cli_child *c);

/* lock run KEY --limit N (cmd_sem.c): at most N copies of CMD at once, on a semaphore. */
typedef struct cli_sem_opts {
    uint32_t limit;
    uint64_t ttl_ms, wait_ms;
    bool forever, quiet, kill_on_loss;
    int conflict_code;
} cli_sem_opts;

int cli_sem_run(cli_global *g, const char *key, const cli_sem_opts *o, char **cmd);

/* Shared by 'lock run' and its --limit form (lease.c). The bound on one Redis call for a lease
 * of `ttl_ms`. */
uint64_t cli_lease_op_timeout_ms(uint64_t ttl_ms);
/* cli_config(), with options.timeout = `op_timeout_ms` unless the configuration sets it (0:
 * leave it). @return 0 or an exit code (after printing why; `*out` is then NULL). */
int cli_lease_config(const cli_global *g, uint64_t op_timeout_ms, rk_config **out);
/* Wait up to `wait_ms` (or forever) for a lease, calling `attempt` with slices of the wait
 * until it answers other than RK_ETIMEDOUT, the time is up or a signal came. @return its code. */
int cli_lease_wait(cli_child *child, uint64_t wait_ms, bool forever,
                   int (*attempt)(void *ud, uint64_t slice_ms), void *ud);
/* The lease was lost while CMD ran: say why, and with --kill-on-loss (`kill`) stop CMD. */
void cli_lease_lost(cli_child *child, atomic_bool *lost, bool kill, const char *lease,
                    const char *key, const char *why);
/* The watch of `lease` `key` failed with `rc` (its first renewal), so CMD does not run: the exit
 * status. A lease lost already is one taken by another owner, like one waited for in vain
 * (`conflict_code`, silent with `quiet`); any other failure is reported. The caller releases. */
int cli_lease_not_watched(int rc, const char *lease, const char *key, bool quiet,
                          int conflict_code);
/* The run's exit status: CMD's, or CLI_EX_LOST with a note when `lease` ("the lock on") `key`
 * was lost while CMD ran. */
int cli_lease_status(int status, bool lost, const char *lease, const char *key);

/* Command groups: argv[0] is the group name. Each returns the process exit code. */
int cmd_cache(cli_global *g, int argc, char **argv);
int cmd_lock(cli_global *g, int argc, char **argv);
int cmd_memo(cli_global *g, int argc, char **argv);
int cmd_demo(cli_global *g, int argc, char **argv);

extern const char cli_cache_usage[];
extern const char cli_lock_usage[];
extern const char cli_memo_usage[];
extern const char cli_demo_usage[];

#endif
