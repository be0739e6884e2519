/* Store, read back and remove a value: the README's cache example.
 * usage: cache [redis://host:port | unix:///path/redis.sock] */
#include <stdio.h>
#include <string.h>

#include <redkit.h>

static int fail(const char *what)
{
    const rk_error *e = rk_last_error();
    fprintf(stderr, "%s: %s (%s/%s)\n", what, e->message, e->name, e->category);
    return 1;
}

int main(int argc, char **argv)
{
    rk_config *cfg;
    rk_cache *cache;
    rk_buf value = RK_BUF_INIT; /* retrieve frees what `value` held: it must start empty */
    const char *uri = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";

    if (rk_config_from_tuples(&cfg, "connection.uri", uri, "options.prefix", "example:", NULL) ||
        rk_cache_new(&cache) || rk_cache_configure(cache, cfg))
        return fail("configure");
    rk_config_free(cfg);
    if (rk_cache_open(cache, NULL))
        return fail("open");

    if (rk_cache_store(cache, NULL, "greeting", "hello", 5, 30000))
        return fail("store");
    if (rk_cache_retrieve(cache, NULL, "greeting", &value))
        return fail("retrieve");
    printf("greeting = %.*s\n", (int)value.len, value.data);
    rk_buf_free(&value);

    uint64_t left;
    if (rk_cache_ttl(cache, NULL, "greeting", &left) == RK_OK)
        printf("greeting expires in %llu ms\n", (unsigned long long)left);

    rk_cache_remove(cache, NULL, "greeting");
    if (rk_cache_retrieve(cache, NULL, "greeting", &value) == RK_ENOTFOUND)
        printf("greeting removed\n");

    rk_cache_free(cache);
    return 0;
}
