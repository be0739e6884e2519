/* Placeholder until TLS lands: every call reports that TLS is not available. */
#include "tls.h"

#include "error_int.h"

int rk__tls_connect(void **ssl, int fd, const rk__endpoint *ep, const char *peer, uint64_t deadline)
{
    (void)fd, (void)ep, (void)deadline;
    *ssl = NULL;
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                         "%s: TLS (rediss://) is not supported by this build", peer);
}

size_t rk__tls_read(void *ssl, void *buf, size_t cap, int *rc)
{
    (void)ssl, (void)buf, (void)cap;
    *rc = RK_EIO;
    return 0;
}

size_t rk__tls_write(void *ssl, const void *buf, size_t len, int *rc)
{
    (void)ssl, (void)buf, (void)len;
    *rc = RK_EIO;
    return 0;
}

bool rk__tls_pending(void *ssl)
{
    (void)ssl;
    return false;
}

void rk__tls_free(void *ssl) { (void)ssl; }
