/* redkit-bench: every figure of docs/PERFORMANCE.md measured in one run against one server.
 * Sections are independent; each reports rows (figures) and goals (ratios against a baseline
 * measured in the same run) through report.c. */
#ifndef REDKIT_BENCH_H
#define REDKIT_BENCH_H

#include <hiredis/hiredis.h>
#include <redkit.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- where to connect ---- */

typedef struct bench_target {
    char url[512];  /* redis://... or unix://... handed to redkit */
    char host[256]; /* TCP host for hiredis, redis-benchmark and peers; "" for a Unix socket */
    int port;
    char path[256]; /* Unix socket path, or "" */
    char password[128];
    int db;
    bool tls;          /* rediss:// (hiredis 0.14 has no TLS: baselines are redkit over TCP) */
    char ca_file[512]; /* options.tls_ca_file for rediss:// */
} bench_target;

/* Parse the URL forms redkit accepts (enough of them for the bench's baselines). */
int bench_target_parse(bench_target *t, const char *url);

/* A hiredis connection to the target (AUTH and SELECT done), or NULL with a message printed. */
redisContext *bench_hiredis(const bench_target *t);

/* A redkit configuration for the target plus NULL-terminated extra key/value pairs. */
rk_config *bench_config(const bench_target *t, ...);

/* A cache opened on the target with `cfg` (freed here); dies on failure. */
rk_cache *bench_open_cache(const bench_target *t, rk_config *cfg);

/* INCR or DECR (`verb`) a counter key: the contention benches' guard against two holders too
 * many. Its new value, or -1000 when the command failed. */
long bench_counter(redisContext *c, const char *verb, const char *key);

/* ---- run settings ---- */

enum {
    SEC_CACHE = 1 << 0,
    SEC_BATCH = 1 << 1,
    SEC_THREADS = 1 << 2,
    SEC_LOCK = 1 << 3,
    SEC_CONTENDED = 1 << 4,
    SEC_MEMOLOCK = 1 << 5,
    SEC_CPU = 1 << 6,
    SEC_TLS = 1 << 7,
    SEC_CLUSTER = 1 << 8,
    SEC_SENTINEL = 1 << 9,
    SEC_SEMAPHORE = 1 << 10, /* only when named, as cluster and sentinel */
    SEC_QUORUM = 1 << 11,    /* only when named: starts 4 more servers */
    SEC_NEARCACHE = 1 << 12,
    /* The default run; SEC_CLUSTER and SEC_SENTINEL start their own servers and take 30 s to
     * a minute, so they are asked for. */
    SEC_ALL = ((1 << 8) - 1) | SEC_NEARCACHE
};

typedef struct bench_opts {
    bench_target plain;
    bench_target tls;        /* tls.url[0] == 0: no TLS server */
    const char *tls_missing; /* why TLS rows are n/a */
    double secs;             /* one throughput measurement */
    int rounds;              /* alternating redkit/baseline rounds; the median is kept */
    double lock_secs;        /* one contended-lock run */
    double memo_fetch_ms;
    int memo_processes;
    int cg_ops; /* operations measured under callgrind */
    const char *peers_dir;
    const char *self; /* this executable, re-run under valgrind */
    const char *tmpdir;
    const char *cluster_url; /* --cluster-url, or NULL: a private cluster */
    const char *plot_dir;    /* --plot DIR, or NULL */
    bool quick, json, own_server, no_peers;
    unsigned sections;
} bench_opts;

/* ---- sections ---- */

void bench_cache(const bench_opts *o);
void bench_batch(const bench_opts *o);
void bench_threads(const bench_opts *o);
void bench_lock(const bench_opts *o);
void bench_contended(const bench_opts *o);
void bench_memolock(const bench_opts *o);
void bench_cpu(const bench_opts *o);
void bench_tls(const bench_opts *o);
void bench_cluster(const bench_opts *o);
void bench_sentinel(const bench_opts *o);
void bench_semaphore(const bench_opts *o);
void bench_quorum(const bench_opts *o);
void bench_nearcache(const bench_opts *o);

/* ---- measuring (cache.c) ---- */

/* One operation on `ctx`; false on failure. */
typedef bool (*op_fn)(void *ctx);

/* Alternate A and B for o->rounds rounds of o->secs; report both medians (rate x `scale`, in
 * `unit`) and the median of the per-round ratios A/B, which it returns. */
double compare(const bench_opts *o, const char *section, const char *what, op_fn a, void *actx,
               const char *aname, op_fn b, void *bctx, const char *bname, double scale,
               const char *unit);

/* The loop callgrind measures: `redkit-bench --cg-loop redkit|hiredis N URL`. */
int bench_cg_child(const char *kind, int n, const char *url);

/* ---- peers (peers.c) ---- */

typedef struct peer_result {
    bool ok;
    char why[160]; /* when !ok */
    double acq_per_s, p50_ms, p99_ms, max_ms;
    long min_count, max_count, violations;
} peer_result;

/* The contended section runs the first PEER_COUNT; the semaphore section, redis-semaphore's
 * counting Semaphore (limit 3). */
typedef enum {
    PEER_REDIS_PY,
    PEER_REDLOCK,
    PEER_SEMAPHORE,
    PEER_COUNT,
    PEER_SEMAPHORE_N = PEER_COUNT
} peer_kind;

const char *peer_name(peer_kind k);
void peer_run(const bench_opts *o, peer_kind k, int workers, double secs, int hold_ms, int think_ms,
              peer_result *out);

/* ---- results (report.c) ---- */

void report_value(const char *section, const char *name, double value, const char *unit);
void report_na(const char *section, const char *name, const char *why);
/* A compound row: `summary` in the table, the named metrics in JSON. */
void report_metrics(const char *section, const char *name, const char *const *keys,
                    const double *values, size_t n, const char *summary);
/* A goal: `value` compared with `target` (">=" or "<=", or "==" for counts). */
void report_goal(const char *goal, double value, const char *cmp, double target, const char *note);
void report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_print_table(const bench_opts *o);
void report_print_json(const bench_opts *o);

/* ---- helpers (util.c) ---- */

uint64_t now_ns(void);
void sleep_ns(uint64_t ns);
void sleep_until_ns(uint64_t t);
double median(double *v, size_t n);
/* Percentile (0..1) of a sorted array. */
double percentile(const double *sorted, size_t n, double p);
void sort_doubles(double *v, size_t n);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Abort the bench with a message (setup failures: no server, no memory). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A shared anonymous mapping visible to forked children. */
void *shared_alloc(size_t size);
/* fork() a child that runs fn(arg, index) and exits with its return value; tracked for cleanup. */
pid_t spawn(int (*fn)(void *arg, int index), void *arg, int index);
/* Wait for a tracked child; returns its exit status (or 128+signal). */
int reap(pid_t pid);
/* Children and servers killed by the cleanup on exit or signal. */
void track_pid(pid_t pid);
void untrack_pid(pid_t pid);
void install_cleanup(void);
/* Files and directories removed at cleanup (in reverse order). */
void track_path(const char *path);
/* A command (an executable's path and its arguments, at most 8) run at cleanup before the
 * children are killed: it stops what is not our child, such as a cluster a script started.
 * Returns an id for untrack_command. */
int track_command(const char *const argv[]);
void untrack_command(int id);

/* ---- servers (server.c) ---- */

/* Start a private redis-server on a free loopback port; `tls` adds a TLS one with fresh
 * certificates. Fills the targets; `tls_missing` is set when TLS could not start. */
void server_start(bench_opts *o, bool want_tls);
/* One more plain redis-server on a free loopback port (log in o->tmpdir), killed at cleanup;
 * `index` names its files. */
pid_t server_spawn(const bench_opts *o, int index, bench_target *t);
/* How loaded the machine is right now (1-minute load average). */
double load_average(void);

#endif
