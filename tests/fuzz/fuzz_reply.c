/* Fuzz target: arbitrary RESP bytes through the reply path redkit reads with: hiredis' parser
 * building replies with redkit's allocator (rk__reader_new), the error mapping of
 * rk__conn_buffered, rk__reply_expect / rk__reply_error, rk__reply_take_str and the MGET
 * array mapping of the cache.
 *
 * Input: byte 0 picks how the rest is split into reads (1..15 bytes per feed, or all at once),
 * byte 1 picks an allocation to fail (0: none), the rest is what the "server" sent. */
#include <string.h>

#include "cache_int.h"
#include "conn.h"
#include "error_int.h"
#include "fuzz.h"

/* ---- an allocator that fails the Nth allocation, and anything huge ---- */

#define HUGE_ALLOC ((size_t)64 << 20)

static size_t allocs, fail_at;

static void *fuzz_malloc(void *ud, size_t size)
{
    (void)ud;
    if (++allocs == fail_at || size > HUGE_ALLOC)
        return NULL;
    return malloc(size);
}

static void *fuzz_realloc(void *ud, void *p, size_t size)
{
    (void)ud;
    if (++allocs == fail_at || size > HUGE_ALLOC)
        return NULL;
    return realloc(p, size);
}

static void fuzz_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

/* ---- checks on one parsed reply ---- */

static const int types[] = {REDIS_REPLY_STRING, REDIS_REPLY_ARRAY,  REDIS_REPLY_INTEGER,
                            REDIS_REPLY_NIL,    REDIS_REPLY_STATUS, REDIS_REPLY_ERROR};

static void check_shape(const redisReply *r, int depth)
{
    FUZZ_CHECK(r != NULL && depth < 16);
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        FUZZ_CHECK(r->str != NULL && r->str[r->len] == '\0');
        break;
    case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i < r->elements; i++)
            check_shape(r->element[i], depth + 1);
        break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        FUZZ_CHECK(r->str == NULL && r->elements == 0);
        break;
    default:
        FUZZ_CHECK(!"unknown reply type");
    }
}

static void check_expect(const redisReply *r)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int rc = rk__reply_expect(r, types[i], "FUZZCMD");
        if (r->type == types[i]) {
            FUZZ_CHECK(rc == RK_OK);
            continue;
        }
        FUZZ_CHECK(rk_last_error()->code == rc && strstr(rk_last_error()->message, "FUZZCMD"));
        if (r->type == REDIS_REPLY_ERROR) {
            FUZZ_CHECK(rc == RK_EAUTH || rc == RK_EREPLY);
            FUZZ_CHECK(rk_last_error()->cause && *rk_last_error()->name);
        } else {
            FUZZ_CHECK(rc == RK_EREPLY && strstr(rk_last_error()->message, "unexpected reply"));
        }
    }
}

/* The cache's MGET mapping: on success outs[i] holds element i's bytes (NULL for a miss); on
 * failure every outs[i] stays empty. */
static void check_mget(redisReply *r, size_t n)
{
    rk_buf *outs = calloc(n + 1, sizeof *outs);
    FUZZ_CHECK(outs != NULL);
    size_t lens[64];
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && i < 64; i++)
        lens[i] = r->element[i]->len;
    int rc = rk__cache_take_values(r, n, outs);
    for (size_t i = 0; i < n; i++) {
        if (rc != RK_OK) {
            FUZZ_CHECK(outs[i].data == NULL && outs[i].len == 0);
            continue;
        }
        const redisReply *e = r->element[i];
        FUZZ_CHECK((outs[i].data != NULL) == (e->type == REDIS_REPLY_STRING));
        if (outs[i].data) {
            FUZZ_CHECK(outs[i].data[outs[i].len] == '\0');
            FUZZ_CHECK(i >= 64 || outs[i].len == lens[i]);
        }
        rk_buf_free(&outs[i]);
    }
    if (rc != RK_OK)
        FUZZ_CHECK(rc == RK_EREPLY || rc == RK_EAUTH);
    else
        FUZZ_CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == n);
    free(outs);
}

static void check_reply(redisReply *r)
{
    check_shape(r, 0);
    check_expect(r);
    if (r->type == REDIS_REPLY_ARRAY) {
        check_mget(r, r->elements + 1); /* a count mismatch must not fill anything */
        check_mget(r, r->elements);
    } else {
        check_mget(r, 1);
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
        size_t want = r->len, len;
        rk_buf b = {rk__reply_take_str(r, &len), 0};
        FUZZ_CHECK(len == want && b.data[len] == '\0');
        rk_buf_free(&b);
        return;
    }
    rk__reply_free(r);
}

/* ---- feeding ---- */

/* Feed `len` bytes `chunk` at a time; returns false once the connection broke. */
static bool feed(rk__conn *c, const uint8_t *p, size_t len, size_t chunk)
{
    while (len > 0) {
        size_t n = chunk && chunk < len ? chunk : len;
        if (redisReaderFeed(c->reader, (const char *)p, n) != REDIS_OK)
            return false;
        p += n, len -= n;
        redisReply *r;
        int rc;
        while ((rc = rk__conn_buffered(c, &r)) == RK_OK && r)
            check_reply(r);
        if (rc != RK_OK) {
            FUZZ_CHECK(rc == RK_EIO || rc == RK_ENOMEM);
            FUZZ_CHECK(c->broken && strstr(rk_last_error()->message, c->tr.peer));
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool installed;
    static rk__conn conn;
    if (!installed) {
        rk_allocator a = {fuzz_malloc, fuzz_realloc, fuzz_free, NULL};
        FUZZ_CHECK(rk_set_allocator(&a) == RK_OK);
        snprintf(conn.tr.peer, sizeof conn.tr.peer, "fuzz-server:6379");
        conn.tr.fd = -1;
        installed = true;
    }
    if (size < 2)
        return 0;
    allocs = 0;
    fail_at = data[1];
    conn.broken = false;
    conn.reader = rk__reader_new();
    FUZZ_CHECK(conn.reader != NULL);
    feed(&conn, data + 2, size - 2, data[0] % 16);
    redisReaderFree(conn.reader);
    conn.reader = NULL;
    fail_at = 0;
    return 0;
}
