/* redkit: the distributed cache, lock and memoizing lock from the shell. */
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(cli_global *g, int argc, char **argv);
    const char *usage;
    const char *summary;
} command;

static const command commands[] = {
    {"cache", cmd_cache, cli_cache_usage, "store, read, expire and delete values"},
    {"lock", cmd_lock, cli_lock_usage, "run a command under a distributed lock (a cluster flock)"},
    {"memo", cmd_memo, cli_memo_usage, "run a command once across callers and share its output"},
    {"demo", cmd_demo, cli_demo_usage, "walk through the cache, the lock and the memolock"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_usage[] =
    "Connection (before or after the command):\n"
    "  --url URL             redis://[user[:password]@]host[:port][/db], rediss://... (TLS),\n"
    "                        unix:///path/redis.sock[?db=N]; several hosts as\n"
    "                        redis://h1:p1,h2:p2 (cluster seeds, or one server's endpoints\n"
    "                        tried in order); default $REDKIT_URL, else $REDIS_URL, else\n"
    "                        " CLI_DEFAULT_URL ". A password in --url is visible in ps:\n"
    "                        redkit warns and overwrites it in its argv\n"
    "  --config \"k=v;...\"    pip-services keys, e.g. \"connection.host=h;credential.password=p;\n"
    "                        options.prefix=app:\" (a --url wins over connection.* keys)\n"
    "  --password-file FILE  AUTH with the first line of FILE ('-': stdin; at most 4096 bytes),\n"
    "                        which keeps it out of ps and history\n"
    "  $REDKIT_PASSWORD      AUTH with this password unless --password-file or --config\n"
    "                        credential.password gives one\n"
    "lock run and memo run remove REDKIT_URL, REDIS_URL and REDKIT_PASSWORD from CMD's\n"
    "environment.\n"
    "\n"
    "Durations: 500ms, 30s, 5m, 1h, 1d, 1m30s, 1.5s (a bare number is seconds).\n"
    "Options follow getopt_long: before or after the arguments, --name=VALUE, short forms\n"
    "bundled (-qw0); '--' ends them, so a KEY or VALUE may start with '-'.\n"
    "Progress indicators are shown on a terminal only, and not when TERM=dumb.\n";

static const char exit_usage[] =
    "Exit status:\n"
    "  0    success\n"
    "  1    cache miss (get, ttl); lock taken (lock try), free (lock status) or not ours\n"
    "       (lock release --token)\n"
    "  64   bad arguments (EX_USAGE)\n"
    "  65   bad data, e.g. an empty key (EX_DATAERR)\n"
    "  66   the password file cannot be read, or its first line is too long (EX_NOINPUT)\n"
    "  69   Redis unreachable: refused, timed out, lost (EX_UNAVAILABLE)\n"
    "  70   internal or unexpected error, Redis error reply (EX_SOFTWARE)\n"
    "  74   writing the output or reading stdin failed (EX_IOERR)\n"
    "  75   lock or memo wait timed out, or the lock was lost before CMD ran (EX_TEMPFAIL);\n"
    "       lock run --conflict-exit N chooses another status\n"
    "  76   lock run: the lock was lost while CMD ran (whatever CMD's status)\n"
    "  77   wrong password or ACL denied (EX_NOPERM)\n"
    "  78   bad configuration or URL (EX_CONFIG)\n"
    "  lock run and memo run exit with CMD's status (128+N if signal N killed it; 126/127 if\n"
    "  it could not be started; 128+N if signal N interrupted the wait).\n"
    "Errors are printed as \"redkit: NAME (Category): message\".\n";

static void print_usage(FILE *f)
{
    fputs("usage: redkit [--url URL] [--config \"k=v;...\"] [--password-file FILE] COMMAND ...\n"
          "\nCommands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fputc('\n', f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "%s\n", commands[i].usage);
    fprintf(f, "%s\n%s", global_usage, exit_usage);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    cli_global g = {NULL, NULL, NULL};
    bool version = false;
    const cli_opt opts[] = {{"version", NULL, &version, 0}, {NULL, NULL, NULL, 0}};
    cli_args args;
    /* Global options up to the command name, which starts the "command to run". */
    int rc = cli_parse(argc, argv, opts, &g, 0, true, &args);
    if (rc)
        return rc;
    if (args.help || version) {
        if (version)
            printf("redkit %s\n", RK_VERSION_STRING);
        else
            print_usage(stdout);
        return 0;
    }
    if (args.ncmd == 0) {
        print_usage(stderr);
        return EX_USAGE;
    }
    const command *cmd = find_command(args.cmd[0]);
    if (!cmd)
        return cli_usage_error("unknown command '%s'", args.cmd[0]);
    return cmd->run(&g, args.ncmd, args.cmd);
}
