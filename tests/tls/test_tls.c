/* TLS (rediss://) against real TLS-only redis-servers: the cache, the lock and the memolock
 * (Pub/Sub included) over TLS, the ways to turn TLS on, certificate and host name verification,
 * mutual TLS, the explicit insecure mode, bad options, deadlines and reconnects. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_env.h"

static void expect_open_fails(const char *settings, int code)
{
    rk_cache *c;
    ASSERT_RC(rkt_try_open_cache(rkt_settings(settings), &c), code);
    ASSERT_FALSE(rk_cache_is_open(c));
    rk_cache_free(c);
}

static void fixture_peer(char *buf, size_t cap, const char *host)
{
    snprintf(buf, cap, "%s:%d", host, rkt_tls_port());
}

/* ---- the components over TLS ---- */

static void cache_over_tls(void)
{
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(rkt_tls_config(0, NULL), &c));
    rkt_tls_roundtrip(c);
    /* 1 MiB each way: many TLS records, partial writes and reads. */
    size_t big = 1u << 20;
    char *value = malloc(big);
    for (size_t i = 0; i < big; i++)
        value[i] = (char)(i * 31 + 7);
    rk_cache_entry entries[2] = {{"big1", value, big, 5000}, {"big2", value, big, 5000}};
    ASSERT_OK(rk_cache_store_many(c, NULL, entries, 2));
    const char *keys[2] = {"big1", "big2"};
    rk_buf out[2] = {RK_BUF_INIT, RK_BUF_INIT};
    ASSERT_OK(rk_cache_retrieve_many(c, NULL, keys, 2, out));
    for (int i = 0; i < 2; i++) {
        ASSERT_TRUE(out[i].data != NULL);
        ASSERT_EQ(out[i].len, big);
        ASSERT_MEM_EQ(out[i].data, value, big);
        rk_buf_free(&out[i]);
    }
    ASSERT_OK(rk_cache_remove_many(c, NULL, keys, 2));
    free(value);
    rk_cache_free(c);
}

/* The near cache over TLS: its invalidation connection is TLS too, and hears another
 * client's write (made on the plain Unix socket). */
static void near_cache_over_tls(void)
{
    rk_cache *c = rkt_open_cache(rkt_tls_config(0, "options.near_cache_size=10"));
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "near", "v1", 2, 60000));
    for (uint64_t until = rkt_now_ms() + 5000;;) { /* until the listener is up: a hit */
        ASSERT_OK(rk_cache_retrieve(c, NULL, "near", &b));
        if (rkt_near_stats(c).hits)
            break;
        ASSERT_LT(rkt_now_ms(), until);
        usleep(1000);
    }
    char full[128];
    snprintf(full, sizeof full, "%snear", rkt_prefix());
    redisContext *admin = rkt_tls_admin();
    freeReplyObject(rkt_cmd(admin, "SET", full, "v2", NULL));
    redisFree(admin);
    for (uint64_t until = rkt_now_ms() + 2000;;) {
        ASSERT_OK(rk_cache_retrieve(c, NULL, "near", &b));
        if (b.len == 2 && !memcmp(b.data, "v2", 2))
            break;
        ASSERT_LT(rkt_now_ms(), until);
        usleep(200);
    }
    rk_buf_free(&b);
    rk_cache_free(c);
}

static void *acquire_waiting(void *arg)
{
    ASSERT_OK(rk_lock_acquire(arg, NULL, "tls-lock", 10000, 20000));
    return NULL;
}

/* A waiter polls only every minute here, so getting the lock in time proves that the release
 * notification reached it over TLS. */
static void lock_over_tls(void)
{
    rk_lock *a = rkt_open_lock(rkt_tls_config(0, NULL));
    rk_lock *b = rkt_open_lock(rkt_tls_config(0, "options.retry_timeout=60000"));
    bool got;
    ASSERT_OK(rk_lock_try_acquire(a, NULL, "tls-lock", 10000, &got));
    ASSERT_TRUE(got);
    pthread_t t;
    pthread_create(&t, NULL, acquire_waiting, b);
    char queue[256];
    snprintf(queue, sizeof queue, "redkit:lock-queue:{%stls-lock}", rkt_prefix());
    redisContext *admin = rkt_tls_admin();
    long long queued = 0;
    for (uint64_t t0 = rkt_now_ms(); queued < 1 && rkt_now_ms() - t0 < 10000;) {
        redisReply *r = rkt_cmd(admin, "LLEN", queue, NULL);
        queued = r->integer;
        freeReplyObject(r);
    }
    ASSERT_EQ(queued, 1);
    ASSERT_OK(rk_lock_release(a, NULL, "tls-lock"));
    pthread_join(t, NULL);
    ASSERT_OK(rk_lock_try_acquire(a, NULL, "tls-lock", 10000, &got));
    ASSERT_FALSE(got); /* b holds it */
    ASSERT_OK(rk_lock_release(b, NULL, "tls-lock"));
    redisFree(admin);
    rk_lock_free(a);
    rk_lock_free(b);
}

enum { MEMO_HANDLES = 3 };
static atomic_int fetches;
static char memo_channel[256];

/* The winner's fetch: it returns only once every other handle waits on the notification
 * channel, so they must receive the value by Pub/Sub over TLS. */
static int fetch_when_all_wait(void *ud, rk_buf *value, uint64_t *ttl_ms)
{
    (void)ud;
    atomic_fetch_add(&fetches, 1);
    redisContext *admin = rkt_tls_admin();
    long long subscribers = 0;
    for (uint64_t t0 = rkt_now_ms(); subscribers < MEMO_HANDLES - 1 && rkt_now_ms() - t0 < 10000;) {
        redisReply *r = rkt_cmd(admin, "PUBSUB", "NUMSUB", memo_channel, NULL);
        subscribers = r->element[1]->integer;
        freeReplyObject(r);
    }
    redisFree(admin);
    *ttl_ms = 10000;
    return rk_buf_set(value, "computed once", 13);
}

static void *memo_get(void *arg)
{
    rk_buf out = RK_BUF_INIT;
    ASSERT_OK(rk_memolock_get(arg, NULL, "tls-id", 20000, fetch_when_all_wait, NULL, &out));
    ASSERT_STR_EQ(out.data, "computed once");
    rk_buf_free(&out);
    return NULL;
}

static void memolock_over_tls(void)
{
    rk_memolock *m[MEMO_HANDLES];
    pthread_t t[MEMO_HANDLES];
    snprintf(memo_channel, sizeof memo_channel, "%stlsmemo/notif:tls-id", rkt_prefix());
    for (int i = 0; i < MEMO_HANDLES; i++)
        m[i] = rkt_open_memolock(rkt_tls_config(0, "options.resource_tag=tlsmemo;"
                                                   "options.retry_timeout=60000;"
                                                   "options.lock_timeout=20000"));
    for (int i = 0; i < MEMO_HANDLES; i++)
        pthread_create(&t[i], NULL, memo_get, m[i]);
    for (int i = 0; i < MEMO_HANDLES; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&fetches), 1);
    char key[256];
    snprintf(key, sizeof key, "%stlsmemo:tls-id", rkt_prefix());
    redisContext *admin = rkt_tls_admin();
    freeReplyObject(rkt_cmd(admin, "DEL", key, NULL));
    redisFree(admin);
    for (int i = 0; i < MEMO_HANDLES; i++)
        rk_memolock_free(m[i]);
}

/* ---- turning TLS on, and what is verified ---- */

static void ways_to_turn_tls_on(void)
{
    char s[2048];
    rk_cache *c;
    const char *ca = rkt_tls_file("ca.crt");
    int port = rkt_tls_port();
    snprintf(s, sizeof s,
             "connection.protocol=rediss;connection.host=localhost;connection.port=%d;"
             "options.tls_ca_file=%s",
             port, ca);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    snprintf(s, sizeof s,
             "connection.uri=redis://localhost:%d;options.tls=true;options.tls_ca_file=%s", port,
             ca);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    /* a hashed CA directory instead of a file */
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.tls_ca_dir=%s", port,
             rkt_tls_file("cadir"));
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    /* an IP address is checked against the certificate's IP subjectAltName */
    snprintf(s, sizeof s, "connection.uri=rediss://127.0.0.1:%d;options.tls_ca_file=%s", port, ca);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    /* the name to check can differ from the address connected to */
    snprintf(s, sizeof s,
             "connection.host=127.0.0.1;connection.port=%d;connection.protocol=rediss;"
             "options.tls_ca_file=%s;options.tls_server_name=localhost",
             port, ca);
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
}

static void unknown_ca_is_rejected(void)
{
    char s[2048], peer[64];
    fixture_peer(peer, sizeof peer, "localhost");
    snprintf(s, sizeof s,
             "connection.uri=rediss://localhost:%d;options.tls_ca_file=%s;"
             "options.timeout=5000",
             rkt_tls_port(), rkt_tls_file("other-ca.crt"));
    expect_open_fails(s, RK_EIO);
    const rk_error *e = rk_last_error();
    ASSERT_STR_EQ(e->name, "CONNECTION_FAILED");
    ASSERT_CONTAINS(e->message, "cache open: ");
    ASSERT_CONTAINS(e->message, peer);
    ASSERT_CONTAINS(e->message, "server certificate is not trusted");
    ASSERT_CONTAINS(e->message, "options.tls_ca_file");
    ASSERT_CONTAINS(e->cause, "certificate verify failed");
    /* without any CA option the system's trust store is used: a private CA is not in it */
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.timeout=5000",
             rkt_tls_port());
    expect_open_fails(s, RK_EIO);
    ASSERT_CONTAINS(rk_last_error()->message, "server certificate is not trusted");
}

static void wrong_server_name_is_rejected(void)
{
    char s[2048], peer[64];
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, "options.tls_server_name=redis.example.com"));
    expect_open_fails(s, RK_EIO);
    fixture_peer(peer, sizeof peer, "localhost");
    ASSERT_CONTAINS(rk_last_error()->message, peer);
    ASSERT_CONTAINS(rk_last_error()->message, "not valid for 'redis.example.com'");
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_server_name");
    ASSERT_CONTAINS(rk_last_error()->cause, "mismatch");
    /* an IP address as the name: checked against the IP subjectAltNames, which lack it */
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, "options.tls_server_name=127.0.0.2"));
    expect_open_fails(s, RK_EIO);
    ASSERT_CONTAINS(rk_last_error()->message, "not valid for '127.0.0.2'");
}

static void open_insecure(void *arg)
{
    rk_cache **c = arg;
    char s[2048];
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.tls_verify=false",
             rkt_tls_port());
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), c));
}

/* tls_verify=false skips the checks (the untrusted certificate is accepted) and says so on
 * stderr, once per open. */
static void insecure_is_explicit_and_logged(void)
{
    rk_cache *c;
    const char *err = rkt_capture_stderr(open_insecure, &c);
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    char peer[64];
    fixture_peer(peer, sizeof peer, "localhost");
    ASSERT_CONTAINS(err, "redkit: warning: options.tls_verify=false");
    ASSERT_CONTAINS(err, peer);
    ASSERT_CONTAINS(err, "insecure");
    const char *first = strstr(err, "redkit: warning");
    ASSERT_TRUE(strstr(first + 1, "redkit: warning") == NULL); /* once per open */
}

static void bad_tls_options(void)
{
    char s[2048];
    rk_cache *c;
    rk_config *cfg;
    ASSERT_OK(rk_cache_new(&c));
    ASSERT_OK(rk_config_from_string(&cfg, rkt_tls_settings(0, "options.tls_verify=maybe")));
    ASSERT_RC(rk_cache_configure(c, cfg), RK_EINVAL); /* at configure, not at open */
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_verify");
    ASSERT_CONTAINS(rk_last_error()->message, "'maybe'");
    rk_config_free(cfg);
    ASSERT_OK(rk_config_from_string(&cfg, "connection.host=h;options.tls=sometimes"));
    ASSERT_RC(rk_cache_configure(c, cfg), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls:");
    rk_config_free(cfg);
    ASSERT_OK(rk_config_from_string(&cfg, "connection.host=h;options.tls_ca_fiel=/x"));
    ASSERT_RC(rk_cache_configure(c, cfg), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "unknown TLS option options.tls_ca_fiel");
    rk_config_free(cfg);
    ASSERT_OK(rk_config_from_string(&cfg, "connection.host=h;options.tls_server_name="));
    ASSERT_RC(rk_cache_configure(c, cfg), RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_server_name is empty");
    rk_config_free(cfg);
    rk_cache_free(c);

    /* files are checked at open, before any connection */
    int port = rkt_tls_port();
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.tls_ca_file=/no/such.crt",
             port);
    expect_open_fails(s, RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_ca_file: cannot read '/no/such.crt'");
    ASSERT_STR_EQ(rk_last_error()->cause, "No such file or directory");
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.tls_ca_file=%s", port,
             rkt_tls_file("server.key"));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_ca_file: cannot load CA certificates");
    snprintf(s, sizeof s, "connection.uri=rediss://localhost:%d;options.tls_ca_dir=%s", port,
             rkt_tls_file("ca.crt"));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "is not a directory");
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, "options.tls_key_file=/tmp/k.pem"));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message,
                    "options.tls_key_file is set without options.tls_cert_file");
    char extra[1200];
    snprintf(extra, sizeof extra, "options.tls_cert_file=%s;options.tls_key_file=%s",
             rkt_tls_file("client.crt"), rkt_tls_file("server.key"));
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, extra));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "does not match options.tls_cert_file");
    snprintf(extra, sizeof extra, "options.tls_cert_file=%s", rkt_tls_file("client.key"));
    snprintf(s, sizeof s, "%s", rkt_tls_settings(0, extra));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_CONTAINS(rk_last_error()->message, "options.tls_cert_file: cannot load a client");
}

static void tls_over_unix_socket_is_rejected(void)
{
    char s[1024];
    snprintf(s, sizeof s, "connection.uri=unix://%s;options.tls=true", getenv("REDKIT_TLS_SOCKET"));
    expect_open_fails(s, RK_EINVAL);
    ASSERT_ERROR(RK_EINVAL, "BAD_CONFIG", "Misconfiguration");
    ASSERT_CONTAINS(rk_last_error()->message, "cannot be used with the Unix socket unix:/");
    /* the same socket without TLS works: the refusal was about the combination */
    snprintf(s, sizeof s, "connection.uri=unix://%s;options.prefix=%s", getenv("REDKIT_TLS_SOCKET"),
             rkt_prefix());
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(rkt_settings(s), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
}

/* Plain Redis on a TLS port and TLS on a plain port both fail quickly with a hint. */
static void protocol_mismatch(void)
{
    char s[1024];
    snprintf(s, sizeof s,
             "connection.uri=redis://localhost:%d;options.timeout=3000;"
             "options.retries=0",
             rkt_tls_port());
    uint64_t t0 = rkt_now_ms();
    expect_open_fails(s, RK_EIO);
    ASSERT_LT(rkt_now_ms() - t0, 3000);
    rkt_server plain;
    rkt_server_start(&plain, NULL);
    /* Redis waits for a newline that the ClientHello may or may not contain: an error reply,
     * or silence until the connect deadline. */
    snprintf(s, sizeof s,
             "connection.uri=rediss://localhost:%d;options.connect_timeout=500;"
             "options.timeout=3000;options.retries=0",
             plain.port);
    rk_cache *c;
    int rc = rkt_try_open_cache(rkt_settings(s), &c);
    rk_cache_free(c);
    ASSERT_TRUE(rc == RK_EIO || rc == RK_ETIMEDOUT);
    ASSERT_CONTAINS(rk_last_error()->message, "TLS handshake");
    ASSERT_CONTAINS(rk_last_error()->message, "speak TLS on this port?");
    rkt_server_stop(&plain);
}

/* A server that accepts TCP but never answers the handshake: the connect deadline holds. */
static void handshake_deadline(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char s[1024];
    snprintf(s, sizeof s,
             "connection.uri=rediss://localhost:%d;options.tls_ca_file=%s;"
             "options.connect_timeout=300;options.timeout=5000",
             ntohs(sa.sin_port), rkt_tls_file("ca.crt"));
    uint64_t t0 = rkt_now_ms();
    expect_open_fails(s, RK_ETIMEDOUT);
    ASSERT_LT(rkt_now_ms() - t0, 4000);
    ASSERT_CONTAINS(rk_last_error()->message, "TLS handshake not finished");
    close(fd);
}

/* A paused server: the operation deadline holds over TLS too, and the next call works. */
static void operation_timeout(void)
{
    rkt_server srv;
    rkt_server_start_tls(&srv, rkt_tls_certs(), NULL);
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(rkt_tls_config(srv.port, "options.timeout=300"), &c));
    rkt_tls_roundtrip(c);
    redisContext *admin = rkt_server_admin(&srv);
    freeReplyObject(rkt_cmd(admin, "CLIENT", "PAUSE", "1500", "ALL", NULL));
    rk_buf b = RK_BUF_INIT;
    uint64_t t0 = rkt_now_ms();
    ASSERT_RC(rk_cache_retrieve(c, NULL, "k", &b), RK_ETIMEDOUT);
    ASSERT_ERROR(RK_ETIMEDOUT, "TIMEOUT", "NoResponse");
    ASSERT_LT(rkt_now_ms() - t0, 1400);
    freeReplyObject(rkt_cmd(admin, "CLIENT", "UNPAUSE", NULL));
    redisFree(admin);
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

static void mutual_tls(void)
{
    rkt_server srv;
    rkt_server_start_tls(&srv, rkt_tls_certs(), "--tls-auth-clients yes");
    char extra[1200], peer[64];
    rk_cache *c;
    snprintf(extra, sizeof extra, "options.tls_cert_file=%s;options.tls_key_file=%s",
             rkt_tls_file("client.crt"), rkt_tls_file("client.key"));
    ASSERT_OK(rkt_try_open_cache(rkt_tls_config(srv.port, extra), &c));
    rkt_tls_roundtrip(c);
    rk_cache_free(c);
    /* without a certificate */
    snprintf(peer, sizeof peer, "localhost:%d", srv.port);
    expect_open_fails(rkt_tls_settings(srv.port, "options.timeout=5000"), RK_EIO);
    ASSERT_STR_EQ(rk_last_error()->name, "CONNECTION_FAILED");
    ASSERT_CONTAINS(rk_last_error()->message, peer);
    ASSERT_CONTAINS(rk_last_error()->message, "client certificate");
    /* with a certificate from a CA the server does not trust */
    snprintf(extra, sizeof extra,
             "options.tls_cert_file=%s;options.tls_key_file=%s;options.timeout=5000",
             rkt_tls_file("other-client.crt"), rkt_tls_file("other-client.key"));
    expect_open_fails(rkt_tls_settings(srv.port, extra), RK_EIO);
    ASSERT_CONTAINS(rk_last_error()->message, peer);
    ASSERT_CONTAINS(rk_last_error()->message, "client certificate");
    rkt_server_stop(&srv);
}

enum { WORKERS = 4, MANY_WORKERS = 32, ROUNDS = 25 };

static void *worker(void *arg)
{
    char key[32];
    rk_buf b = RK_BUF_INIT;
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(key, sizeof key, "w%p:%d", (void *)&b, i);
        ASSERT_OK(rk_cache_store(arg, NULL, key, key, strlen(key), 5000));
        ASSERT_OK(rk_cache_retrieve(arg, NULL, key, &b));
        ASSERT_STR_EQ(b.data, key);
    }
    rk_buf_free(&b);
    return NULL;
}

static void run_n_workers(rk_cache *c, int n)
{
    pthread_t t[MANY_WORKERS];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, c);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

static void run_workers(rk_cache *c) { run_n_workers(c, WORKERS); }

/* Auto-pipelining over TLS: the shared connection's reads and writes stay in one thread at a
 * time (one SSL object), and every caller still gets its own reply. */
static void many_threads_share_tls(void)
{
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(rkt_tls_config(rkt_tls_port(), NULL), &c));
    run_n_workers(c, MANY_WORKERS);
    rk_cache_free(c);
}

/* Pooled TLS connections die with the server and are replaced by new handshakes. */
static void reconnect_after_restart(void)
{
    rkt_server srv;
    rkt_server_start_tls(&srv, rkt_tls_certs(), NULL);
    rk_cache *c;
    ASSERT_OK(rkt_try_open_cache(rkt_tls_config(srv.port, "options.max_connections=3"), &c));
    run_workers(c);
    rkt_server_restart(&srv);
    rkt_tls_roundtrip(c);
    run_workers(c);
    rkt_server_restart(&srv);
    run_workers(c);
    rk_cache_free(c);
    rkt_server_stop(&srv);
}

RKT_MAIN(RKT_CASE(cache_over_tls), RKT_CASE(lock_over_tls), RKT_CASE(memolock_over_tls),
         RKT_CASE(ways_to_turn_tls_on), RKT_CASE(unknown_ca_is_rejected),
         RKT_CASE(wrong_server_name_is_rejected), RKT_CASE(insecure_is_explicit_and_logged),
         RKT_CASE(bad_tls_options), RKT_CASE(tls_over_unix_socket_is_rejected),
         RKT_CASE(protocol_mismatch), RKT_CASE(handshake_deadline), RKT_CASE(operation_timeout),
         RKT_CASE(mutual_tls), RKT_CASE(reconnect_after_restart), RKT_CASE(many_threads_share_tls),
         RKT_CASE(near_cache_over_tls))
