/* Share a cache with pip-services services: their RedisCache stores every value as JSON text
 * (JSON.stringify in Node), so a string is stored with its quotes. No JSON library is needed
 * for strings and numbers: json_quote and json_unquote below are enough.
 * usage: cache_json [redis://host:port | unix:///path/redis.sock] */
#include <stdio.h>
#include <string.h>

#include <redkit.h>

/* `s` as a JSON string: quotes around it, and `"`, `\` and control characters escaped, so that
 * a Node service's JSON.parse gives back exactly `s`. `out` needs 6 * strlen(s) + 3 bytes. */
static size_t json_quote(char *out, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[n++] = '\\', out[n++] = (char)c;
        else if (c < 0x20)
            n += (size_t)sprintf(out + n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    out[n++] = '"';
    out[n] = '\0';
    return n;
}

/* The text of a JSON string value, in place; -1 if `v` is not a string (a number, an object)
 * or uses an escape this short reader does not decode (\u: use a JSON library for those). */
static int json_unquote(rk_buf *v)
{
    if (v->len < 2 || v->data[0] != '"' || v->data[v->len - 1] != '"')
        return -1;
    size_t n = 0;
    for (size_t i = 1; i < v->len - 1; i++) {
        char c = v->data[i];
        if (c == '\\') {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *at = ++i < v->len - 1 ? strchr(from, v->data[i]) : NULL;
            if (!at || !*at)
                return -1;
            c = to[at - from];
        }
        v->data[n++] = c;
    }
    v->data[n] = '\0';
    v->len = n;
    return 0;
}

int main(int argc, char **argv)
{
    rk_config *cfg;
    rk_cache *cache;
    rk_buf value = RK_BUF_INIT;
    const char *uri = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";

    /* No options.prefix: pip-services keys have none, and both sides must name the same key. */
    rk_config_from_tuples(&cfg, "connection.uri", uri, NULL);
    rk_cache_new(&cache);
    rk_cache_configure(cache, cfg);
    rk_config_free(cfg);
    if (rk_cache_open(cache, NULL) != RK_OK) {
        fprintf(stderr, "open: %s\n", rk_last_error()->message);
        return 1;
    }

    /* What Node's cache.store(ctx, "greeting", "say \"hi\"", ttl) would store. */
    char json[64];
    size_t len = json_quote(json, "say \"hi\"");
    rk_cache_store(cache, NULL, "greeting", json, len, 30000); /* "say \"hi\"" */
    rk_cache_store(cache, NULL, "answer", "42", 2, 30000);     /* a number is its digits */

    if (rk_cache_retrieve(cache, NULL, "greeting", &value) == RK_OK) {
        printf("stored: %s\n", value.data); /* the JSON text, as Node's JSON.parse reads it */
        if (json_unquote(&value) == 0)
            printf("text: %s\n", value.data);
    }
    if (rk_cache_retrieve(cache, NULL, "answer", &value) == RK_OK)
        printf("answer: %s\n", value.data); /* not a string: parse it as a number */

    rk_buf_free(&value);
    rk_cache_remove(cache, NULL, "greeting");
    rk_cache_remove(cache, NULL, "answer");
    rk_cache_free(cache);
    return 0;
}
