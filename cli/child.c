#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* Signals that end a wait when no command runs (SIGUSR1/2 are only passed on). */
static bool interrupts(int sig) { return sig != SIGUSR1 && sig != SIGUSR2; }

/* The terminal sends SIGINT/SIGQUIT to the whole foreground process group: the command has
 * it already, and a second copy would look like a second Ctrl-C. */
static bool from_terminal(const siginfo_t *si) { return si->si_code == SI_KERNEL; }

/* Forward or record one signal. @return true when the caller should interrupt the wait. */
static bool handle(cli_child *c, int sig, const siginfo_t *si)
{
    if (sigismember(&c->ignored, sig))
        return false;
    if (c->pid > 0) {
        if (!from_terminal(si))
            kill(c->pid, sig);
        return false;
    }
    if (!interrupts(sig) || c->interrupted)
        return false;
    c->interrupted = sig;
    return true;
}

static void *signal_main(void *arg)
{
    cli_child *c = arg;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&c->handled, &si);
        if (sig < 0)
            continue;
        pthread_mutex_lock(&c->mu);
        bool stop = c->stopping, interrupt = !stop && handle(c, sig, &si);
        pthread_mutex_unlock(&c->mu);
        if (stop)
            return NULL;
        if (interrupt && c->on_interrupt)
            c->on_interrupt(c->ud);
    }
}

int cli_child_init(cli_child *c, void (*on_interrupt)(void *ud), void *ud)
{
    memset(c, 0, sizeof *c);
    c->on_interrupt = on_interrupt;
    c->ud = ud;
    sigemptyset(&c->handled);
    sigemptyset(&c->ignored);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        struct sigaction sa;
        sigaddset(&c->handled, forwarded[i]);
        /* A signal our parent told us to ignore (a background job's SIGINT) stays ignored, for
         * us and, through the inherited disposition, for the command. */
        if (sigaction(forwarded[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            sigaddset(&c->ignored, forwarded[i]);
    }
    pthread_mutex_init(&c->mu, NULL);
    if (pthread_sigmask(SIG_BLOCK, &c->handled, &c->old_mask) != 0 ||
        pthread_create(&c->thread, NULL, signal_main, c) != 0) {
        cli_note("cannot start the signal thread: %s", strerror(errno));
        pthread_mutex_destroy(&c->mu);
        return EX_OSERR;
    }
    return 0;
}

void cli_child_destroy(cli_child *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    /* A handled signal wakes the thread even when ignored; it sees `stopping` and leaves. The
     * mask stays as it is: a signal arriving from now on is discarded when the process exits. */
    pthread_kill(c->thread, SIGUSR2);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
}

/* Variables that carry the connection's secrets: CMD gets the lock or the memo, not the
 * credentials behind them. */
static const char *const secret_vars[] = {"REDKIT_URL", "REDIS_URL", "REDKIT_PASSWORD"};

static bool is_secret(const char *entry)
{
    for (size_t i = 0; i < sizeof secret_vars / sizeof secret_vars[0]; i++) {
        size_t n = strlen(secret_vars[i]);
        if (!strncmp(entry, secret_vars[i], n) && entry[n] == '=')
            return true;
    }
    return false;
}

/* environ without the secret variables (a copy of the pointers: other threads may read it). */
static char **child_environ(void)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 1) * sizeof *env);
    for (size_t i = 0; env && i < n; i++)
        if (!is_secret(environ[i]))
            env[k++] = environ[i];
    if (env)
        env[k] = NULL;
    return env;
}

static int spawn_status(const char *cmd, int err)
{
    cli_note("cannot run %s: %s", cmd, strerror(err));
    return err == ENOENT ? CLI_EX_NOCMD : CLI_EX_NOEXEC;
}

int cli_child_spawn(cli_child *c, char *const argv[], int out_fd)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &c->old_mask);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_init(&fa);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    char **env = child_environ();
    pthread_mutex_lock(&c->mu);
    int interrupted = c->interrupted, err = env ? 0 : ENOMEM;
    pid_t pid = 0;
    if (!interrupted && !err && (err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, env)) == 0)
        c->pid = pid;
    pthread_mutex_unlock(&c->mu);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (interrupted)
        return 128 + interrupted;
    return err ? spawn_status(argv[0], err) : 0;
}

int cli_child_wait(cli_child *c)
{
    siginfo_t si;
    int status = 0;
    /* Wait without reaping first: until the pid is cleared under the lock, the signal thread may
     * still kill() it, and a reaped pid could already belong to another process. */
    while (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&c->mu);
    pid_t pid = c->pid;
    c->pid = 0;
    pthread_mutex_unlock(&c->mu);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void cli_child_kill(cli_child *c, int sig)
{
    pthread_mutex_lock(&c->mu);
    if (c->pid > 0)
        kill(c->pid, sig);
    pthread_mutex_unlock(&c->mu);
}

int cli_child_interrupted(cli_child *c)
{
    pthread_mutex_lock(&c->mu);
    int sig = c->interrupted;
    pthread_mutex_unlock(&c->mu);
    return sig;
}
