#include "tls_env.h"

#include <errno.h>
#include <unistd.h>

int rkt_tls_port(void) { return atoi(rkt_env("REDKIT_TLS_PORT")); }

const char *rkt_tls_certs(void) { return rkt_env("REDKIT_TLS_CERTS"); }

const char *rkt_tls_file(const char *file)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", rkt_tls_certs(), file);
    return b;
}

redisContext *rkt_tls_admin(void) { return rkt_raw_socket(rkt_env("REDKIT_TLS_SOCKET")); }

const char *rkt_tls_settings(int port, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "connection.uri=rediss://localhost:%d;options.tls_ca_file=%s;options.prefix=%s;%s",
             port ? port : rkt_tls_port(), rkt_tls_file("ca.crt"), rkt_prefix(),
             extra ? extra : "");
    return buf;
}

rk_config *rkt_tls_config(int port, const char *extra)
{
    return rkt_settings(rkt_tls_settings(port, extra));
}

void rkt_tls_roundtrip(rk_cache *c)
{
    rk_buf b = RK_BUF_INIT;
    ASSERT_OK(rk_cache_store(c, NULL, "tls-roundtrip", "ok", 2, 5000));
    ASSERT_OK(rk_cache_retrieve(c, NULL, "tls-roundtrip", &b));
    ASSERT_STR_EQ(b.data, "ok");
    rk_buf_free(&b);
    ASSERT_OK(rk_cache_remove(c, NULL, "tls-roundtrip"));
}

const char *rkt_capture_stderr(void (*fn)(void *), void *arg)
{
    static char text[8192];
    char path[] = "/tmp/redkit-stderr.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    if (fd < 0 || saved < 0)
        rkt_fail(__FILE__, __LINE__, "cannot capture stderr: %s", strerror(errno));
    unlink(path);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}
