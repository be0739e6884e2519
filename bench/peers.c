/* The peer libraries' lock scenario (/work/shared/bench-peers: redis-py Lock, node redlock,
 * redis-semaphore Mutex), run as child process groups and parsed from their one-line report. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

const char *peer_name(peer_kind k)
{
    static const char *names[] = {"redis-py Lock", "node redlock", "node redis-semaphore",
                                  "node redis-semaphore Semaphore"};
    return names[k];
}

static bool exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* Run argv with stdout into `out` and stderr into `log`; returns the exit status. */
static int run_capture(const char *const argv[], char *out, size_t cap, const char *log)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe failed: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0); /* the cleanup kills the peer's workers with it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fds[1], 1);
        if (err >= 0)
            dup2(err, 2);
        close(fds[0]);
        execvp(argv[0], (char *const *)argv); /* execvp does not write them */
        _exit(127);
    }
    setpgid(pid, pid);
    track_pid(pid);
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, cap - 1 - used)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && (used += (size_t)n) + 1 >= cap)
            break;
    out[used] = 0;
    close(fds[0]);
    return reap(pid);
}

static void first_line(const char *log, char *why, size_t cap, const char *fallback)
{
    char line[160] = "";
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "Error") || strstr(line, "error"))
            break;
    if (f)
        fclose(f);
    line[strcspn(line, "\n")] = 0;
    snprintf(why, cap, "%s%s%s", fallback, *line ? ": " : "", line);
}

void peer_run(const bench_opts *o, peer_kind k, int workers, double secs, int hold_ms, int think_ms,
              peer_result *out)
{
    const bench_target *t = &o->plain;
    const char *dir = o->peers_dir;
    memset(out, 0, sizeof *out);
    if (o->no_peers) {
        snprintf(out->why, sizeof out->why, "--no-peers");
        return;
    }
    if (t->path[0] || t->password[0] || t->db ||
        (strcmp(t->host, "127.0.0.1") && strcmp(t->host, "localhost"))) {
        snprintf(out->why, sizeof out->why, "peers need a local server without AUTH or db");
        return;
    }
    bool node = k != PEER_REDIS_PY;
    if (!exists(dir, node ? "lock_node.js" : "lock_py.py")) {
        snprintf(out->why, sizeof out->why, "no peer script in %s (--peers DIR)", dir);
        return;
    }
    if (node &&
        !exists(dir, k == PEER_REDLOCK ? "node_modules/redlock" : "node_modules/redis-semaphore")) {
        snprintf(out->why, sizeof out->why, "run npm install in %s, or pass --peers DIR", dir);
        return;
    }
    char script[1024], port[16], n[16], s[32], hold[16], think[16], log[600], buf[4096];
    snprintf(script, sizeof script, "%s/%s", dir, node ? "lock_node.js" : "lock_py.py");
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(n, sizeof n, "%d", workers);
    snprintf(s, sizeof s, "%g", secs);
    snprintf(hold, sizeof hold, "%d", hold_ms);
    snprintf(think, sizeof think, "%d", think_ms);
    snprintf(log, sizeof log, "%s/peer-%d-%d.log", o->tmpdir, (int)k, workers);
    track_path(log);
    const char *py[] = {"/usr/bin/python3", script, port, n, s, hold, think, NULL};
    const char *js[] = {
        "node",
        script,
        k == PEER_REDLOCK ? "redlock" : k == PEER_SEMAPHORE_N ? "semaphore-3" : "semaphore",
        port,
        n,
        s,
        hold,
        think,
        NULL};
    int rc = run_capture(node ? js : py, buf, sizeof buf, log);
    const char *p = strstr(buf, "acq/s=");
    if (rc != 0 || !p ||
        sscanf(p,
               "acq/s=%lf wait_ms p50=%lf p99=%lf max=%lf per_worker_min=%ld max=%ld "
               "violations=%ld",
               &out->acq_per_s, &out->p50_ms, &out->p99_ms, &out->max_ms, &out->min_count,
               &out->max_count, &out->violations) != 7) {
        first_line(log, out->why, sizeof out->why, "peer failed");
        return;
    }
    out->ok = true;
}
