/* redkit cache set|get|del|ttl */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char cli_cache_usage[] =
    "redkit cache set KEY [VALUE|-] [-t|--ttl DURATION|none]\n"
    "    Store VALUE, or stdin (binary-safe) when VALUE is '-' or absent. --ttl defaults to\n"
    "    options.default_ttl (60s); 'none' stores without expiry. Put '--' before a KEY or\n"
    "    VALUE that starts with '-': redkit cache set -- -k -v\n"
    "redkit cache get KEY\n"
    "    Write the value's raw bytes to stdout; exit 1 (printing nothing) on a miss.\n"
    "redkit cache del KEY [KEY...]\n"
    "    Delete the KEYs (in one round trip); succeeds whether or not they existed.\n"
    "redkit cache ttl KEY [--json]\n"
    "    Print the time KEY has left in milliseconds (\"29500ms\"), or \"none\" if it does not\n"
    "    expire: both are valid --ttl values. --json: {\"key\":\"k\",\"ttl_ms\":29500} (null: no\n"
    "    expiry). Exit 1 (printing nothing) on a miss.\n";

typedef struct cache_call {
    rk_cache *cache;
    const cli_args *args;
    uint64_t ttl_ms;
    bool json;
} cache_call;

static int do_set(cache_call *c)
{
    const char *key = c->args->pos[0], *value = c->args->npos > 1 ? c->args->pos[1] : "-";
    char *data = NULL;
    size_t len = strlen(value);
    if (!strcmp(value, "-") && isatty(STDIN_FILENO))
        cli_note("reading the value of %s from the terminal; end it with Ctrl-D", key);
    if (!strcmp(value, "-") && cli_read_all(STDIN_FILENO, &data, &len) != 0) {
        cli_note("cannot read the value from stdin");
        return EX_IOERR;
    }
    int rc = rk_cache_store(c->cache, NULL, key, data ? data : value, len, c->ttl_ms);
    free(data);
    return rc == RK_OK ? 0 : cli_fail(false);
}

static int do_get(cache_call *c)
{
    rk_buf value = RK_BUF_INIT;
    int rc = rk_cache_retrieve(c->cache, NULL, c->args->pos[0], &value);
    if (rc == RK_ENOTFOUND)
        return CLI_EXIT_NO; /* an answer, not an error: quiet, like grep */
    if (rc != RK_OK)
        return cli_fail(false);
    rc = cli_write_all(STDOUT_FILENO, value.data, value.len);
    rk_buf_free(&value);
    return rc;
}

static int do_ttl(cache_call *c)
{
    uint64_t left;
    int rc = rk_cache_ttl(c->cache, NULL, c->args->pos[0], &left);
    if (rc == RK_ENOTFOUND)
        return CLI_EXIT_NO;
    if (rc != RK_OK)
        return cli_fail(false);
    if (c->json) {
        fputs("{\"key\":", stdout);
        cli_json_str(stdout, c->args->pos[0]);
        if (left == RK_TTL_NONE)
            printf(",\"ttl_ms\":null}\n");
        else
            printf(",\"ttl_ms\":%llu}\n", (unsigned long long)left);
        return fflush(stdout) == 0 ? 0 : EX_IOERR;
    }
    char line[32];
    int n = left == RK_TTL_NONE ? snprintf(line, sizeof line, "none\n")
                                : snprintf(line, sizeof line, "%llums\n", (unsigned long long)left);
    return cli_write_all(STDOUT_FILENO, line, (size_t)n);
}

static int do_del(cache_call *c)
{
    const char *const *keys = (const char *const *)c->args->pos;
    return rk_cache_remove_many(c->cache, NULL, keys, (size_t)c->args->npos) == RK_OK
               ? 0
               : cli_fail(false);
}

typedef struct cache_sub {
    const char *name;
    int (*run)(cache_call *c);
    int max_pos;
} cache_sub;

static const cache_sub subs[] = {
    {"set", do_set, 2}, {"get", do_get, 1}, {"del", do_del, INT_MAX}, {"ttl", do_ttl, 1}};

static const cache_sub *find_sub(const char *name)
{
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(subs[i].name, name))
            return &subs[i];
    return NULL;
}

/* Check the arguments of `sub`; fills the call's TTL. */
static int check_args(const cache_sub *sub, const cli_args *a, const char *ttl, cache_call *call)
{
    if (a->npos < 1)
        return cli_usage_error("cache %s: missing KEY", sub->name);
    if (call->json && sub->run != do_ttl)
        return cli_usage_error("cache %s: --json applies to 'cache ttl' only", sub->name);
    if (ttl && sub->run != do_set)
        return cli_usage_error("cache %s: --ttl applies to 'cache set' only", sub->name);
    call->ttl_ms = 0; /* options.default_ttl */
    if (ttl && cli_duration("ttl", ttl, true, &call->ttl_ms) != 0)
        return EX_USAGE;
    if (ttl && call->ttl_ms == 0)
        return cli_usage_error("--ttl must be longer than 0ms");
    return 0;
}

int cmd_cache(cli_global *g, int argc, char **argv)
{
    const char *ttl = NULL;
    cache_call call = {NULL, NULL, 0, false};
    const cli_opt opts[] = {
        {"ttl", &ttl, NULL, 't'}, {"json", NULL, &call.json, 0}, {NULL, NULL, NULL, 0}};
    const cache_sub *sub = argc > 1 ? find_sub(argv[1]) : NULL;
    cli_args a;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(cli_cache_usage, stdout);
        return 0;
    }
    if (!sub)
        return cli_usage_error(argc > 1 ? "unknown cache command '%s'" : "cache: missing command%s",
                               argc > 1 ? argv[1] : " (set, get, del or ttl)");
    int rc = cli_parse(argc - 1, argv + 1, opts, g, sub->max_pos, false, &a);
    if (rc || a.help) {
        if (a.help)
            fputs(cli_cache_usage, stdout);
        return rc;
    }
    call.args = &a;
    if ((rc = check_args(sub, &a, ttl, &call)) != 0)
        return rc;
    if ((rc = cli_open_cache(g, &call.cache)) == 0)
        rc = sub->run(&call);
    rk_cache_free(call.cache);
    return rc;
}
