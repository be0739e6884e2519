/* redkit-bench: options, the private servers, and the sections in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "plot.h"

static const struct {
    const char *name;
    unsigned bit;
    void (*run)(const bench_opts *);
    const char *what;
} sections[] = {
    {"cache", SEC_CACHE, bench_cache, "retrieve/store of 100 B vs a hiredis loop, redis-benchmark"},
    {"batch", SEC_BATCH, bench_batch, "retrieve_many/store_many of 100 keys vs hiredis"},
    {"threads", SEC_THREADS, bench_threads,
     "1, 8, 64 threads sharing one rk_cache (auto_pipeline on/off), GET 1 MiB"},
    {"lock", SEC_LOCK, bench_lock, "uncontended try_acquire + release"},
    {"contended", SEC_CONTENDED, bench_contended,
     "2, 8, 32, 64 processes vs serial ceiling and peers"},
    {"memolock", SEC_MEMOLOCK, bench_memolock, "64 callers of a cold id, 50 ms fetch"},
    {"cpu", SEC_CPU, bench_cpu, "instructions per retrieve under callgrind vs hiredis"},
    {"tls", SEC_TLS, bench_tls, "single op and batch over rediss:// vs redis://"},
    {"nearcache", SEC_NEARCACHE, bench_nearcache,
     "near-cache hit vs round trip, invalidation visibility, zipf load with and without"},
    {"cluster", SEC_CLUSTER, bench_cluster,
     "cluster vs one master; 1000-key batches vs hiredis per node (~30 s, only when named)"},
    {"sentinel", SEC_SENTINEL, bench_sentinel,
     "lock_replicas=1 vs 0, master SIGKILL, SENTINEL FAILOVER on a private deployment "
     "(~1 min, only when named)"},
    {"semaphore", SEC_SEMAPHORE, bench_semaphore,
     "8 processes on a limit of 3 vs redis-semaphore's Semaphore (only when named)"},
    {"quorum", SEC_QUORUM, bench_quorum,
     "uncontended lock over 5 independent masters (quorum) vs 1 (only when named)"},
};
#define NSECTIONS (sizeof sections / sizeof *sections)

static void usage(FILE *f)
{
    fprintf(f, "usage: redkit-bench [options] [SECTION...]\n"
               "\n"
               "Measures redkit against baselines run in the same session and prints one table.\n"
               "Without --url it starts a private redis-server (and a TLS one) on free loopback\n"
               "ports and stops them on exit.\n"
               "\n"
               "options:\n"
               "  --url URL        use this server (redis://, unix://) instead of a private one\n"
               "  --tls-url URL    rediss:// server for the tls section (with --url)\n"
               "  --tls-ca FILE    CA certificate for --tls-url\n"
               "  --cluster-url URL  redis://host:port,host:port,... for the cluster section\n"
               "                   instead of a private cluster (the source tree's\n"
               "                   tests/support/cluster.sh, ~4 s to start)\n"
               "  --json           print JSON instead of the table\n"
               "  --quick          short durations: a smoke run, not a measurement\n"
               "  --secs S         seconds per throughput measurement (default 1)\n"
               "  --rounds N       alternating rounds per comparison, median kept (default 3)\n"
               "  --lock-secs S    seconds per contended-lock run (default 5)\n"
               "  --memo-processes N  spread the 64 memolock callers over N processes (default 4)\n"
               "  --no-peers       skip the peer libraries in the contended section\n"
               "  --plot DIR       also draw PNG charts into DIR (needs gnuplot)\n"
               "  --peers DIR      peer lock scripts with node_modules (default\n"
               "                   $REDKIT_BENCH_PEERS or /work/shared/bench-peers)\n"
               "  -h, --help       this text\n"
               "\n"
               "sections (default: all but cluster and sentinel):\n");
    for (size_t i = 0; i < NSECTIONS; i++)
        fprintf(f, "  %-10s %s\n", sections[i].name, sections[i].what);
}

static double number(const char *opt, const char *v)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || d <= 0)
        die("%s needs a positive number (got '%s')", opt, v ? v : "nothing");
    return d;
}

static unsigned section_bit(const char *name)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (!strcmp(sections[i].name, name))
            return sections[i].bit;
    fprintf(stderr, "redkit-bench: unknown section '%s'\n\n", name);
    usage(stderr);
    exit(2);
}

static void parse_args(bench_opts *o, int argc, char **argv, const char **url, const char **tls_url,
                       const char **tls_ca)
{
    const char *peers = getenv("REDKIT_BENCH_PEERS");
    *o = (bench_opts){.secs = 1,
                      .rounds = 3,
                      .lock_secs = 5,
                      .memo_fetch_ms = 50,
                      .memo_processes = 4,
                      .cg_ops = 2000,
                      .peers_dir = peers ? peers : "/work/shared/bench-peers"};
    double secs = 0, lock_secs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--no-peers")) {
            o->no_peers = true;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--url") || !strcmp(a, "--tls-url") || !strcmp(a, "--tls-ca") ||
                   !strcmp(a, "--peers") || !strcmp(a, "--cluster-url") || !strcmp(a, "--plot")) {
            if (!v)
                die("%s needs a value", a);
            *(!strcmp(a, "--url")           ? url
              : !strcmp(a, "--tls-url")     ? tls_url
              : !strcmp(a, "--tls-ca")      ? tls_ca
              : !strcmp(a, "--cluster-url") ? &o->cluster_url
              : !strcmp(a, "--plot")        ? &o->plot_dir
                                            : &o->peers_dir) = v;
            i++;
        } else if (!strcmp(a, "--secs")) {
            secs = number(a, v), i++;
        } else if (!strcmp(a, "--lock-secs")) {
            lock_secs = number(a, v), i++;
        } else if (!strcmp(a, "--memo-processes")) {
            o->memo_processes = (int)number(a, v), i++;
            if (64 % o->memo_processes)
                die("--memo-processes must divide 64");
        } else if (!strcmp(a, "--rounds")) {
            o->rounds = (int)number(a, v), i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "redkit-bench: unknown option '%s'\n\n", a);
            usage(stderr);
            exit(2);
        } else {
            o->sections |= section_bit(a);
        }
    }
    if (o->quick) {
        o->secs = 0.2, o->lock_secs = 1, o->cg_ops = 300;
        o->rounds = o->rounds < 3 ? o->rounds : 1;
    }
    if (secs)
        o->secs = secs;
    if (lock_secs)
        o->lock_secs = lock_secs;
    if (!o->sections)
        o->sections = SEC_ALL;
}

static void use_servers(bench_opts *o, const char *url, const char *tls_url, const char *tls_ca)
{
    if (!url) {
        server_start(o, o->sections & SEC_TLS);
        return;
    }
    char dir[] = "/tmp/redkit-bench.XXXXXX";
    static char kept[sizeof dir];
    if (!mkdtemp(dir))
        die("cannot create a temp dir");
    memcpy(kept, dir, sizeof dir);
    track_path(kept);
    o->tmpdir = kept;
    if (bench_target_parse(&o->plain, url) != 0 || o->plain.tls)
        die("--url must be redis://[user:password@]host[:port][/db] or unix:///path[?db=N]");
    o->tls_missing = "no TLS server: pass --tls-url and --tls-ca";
    if (tls_url) {
        if (tls_ca)
            snprintf(o->tls.ca_file, sizeof o->tls.ca_file, "%s", tls_ca);
        if (bench_target_parse(&o->tls, tls_url) != 0 || !o->tls.tls)
            die("--tls-url must be rediss://host[:port]");
        o->tls_missing = NULL;
    }
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--cg-loop"))
        return bench_cg_child(argv[2], atoi(argv[3]), argv[4]);
    bench_opts o;
    const char *url = NULL, *tls_url = NULL, *tls_ca = NULL;
    parse_args(&o, argc, argv, &url, &tls_url, &tls_ca);
    if (o.plot_dir)
        plot_enable(o.plot_dir);
    install_cleanup();
    o.self = "/proc/self/exe";
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        o.self = self;
    }
    use_servers(&o, url, tls_url, tls_ca);
    progress("server %s, load average %.2f", o.plain.url, load_average());
    for (size_t i = 0; i < NSECTIONS; i++)
        if (o.sections & sections[i].bit)
            sections[i].run(&o);
    if (o.json)
        report_print_json(&o);
    else
        report_print_table(&o);
    return plot_write() ? 0 : 1;
}
