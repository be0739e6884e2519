/* Compute a value once across every process asking for it: the README's memolock example.
 * usage: memolock [redis://host:port | unix:///path/redis.sock] */
#include <stdio.h>
#include <unistd.h>

#include <redkit.h>

/* Runs in exactly one caller; everyone else receives what it stores. */
static int expensive_query(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    const char *id = ud;
    char text[128];
    sleep(1); /* pretend to work */
    *ttl_ms = 30000;
    return rk_buf_set(value, text, (size_t)snprintf(text, sizeof text, "result for %s", id));
}

int main(int argc, char **argv)
{
    rk_config *cfg;
    rk_memolock *memo;
    rk_buf value = RK_BUF_INIT; /* get frees what `value` held: it must start empty */
    char id[] = "user:42";
    const char *uri = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";

    rk_config_from_tuples(&cfg, "connection.uri", uri, "options.resource_tag", "query", NULL);
    rk_memolock_new(&memo);
    rk_memolock_configure(memo, cfg);
    rk_config_free(cfg);
    if (rk_memolock_open(memo, NULL) != RK_OK) {
        fprintf(stderr, "open: %s\n", rk_last_error()->message);
        return 1;
    }

    /* Wait at most 5 s for whoever computes "user:42" (possibly us). */
    if (rk_memolock_get(memo, NULL, id, 5000, expensive_query, id, &value) == RK_OK)
        printf("%.*s\n", (int)value.len, value.data);
    else
        fprintf(stderr, "%s: %s\n", rk_last_error()->name, rk_last_error()->message);

    rk_buf_free(&value);
    rk_memolock_free(memo);
    return 0;
}
