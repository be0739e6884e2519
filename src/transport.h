/* Bytes to and from Redis over TCP, a Unix socket or TLS, with every wait bounded by a
 * monotonic deadline. The socket stays in blocking mode with SO_RCVTIMEO/SO_SNDTIMEO adjusted
 * only when a deadline needs it, so a request costs one write and one read system call. */
#ifndef RK_TRANSPORT_H
#define RK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

typedef struct rk__transport {
    int fd;
    void *ssl;       /* SSL * when TLS is on */
    uint64_t rcv_ms; /* current SO_RCVTIMEO */
    uint64_t snd_ms; /* current SO_SNDTIMEO */
    char peer[80];   /* endpoint name, for messages */
} rk__transport;

/* Connect (and handshake with `tls_ctx`, for TLS) before `deadline`. On failure the transport is
 * closed and the error names the endpoint: RK_EIO, RK_ETIMEDOUT, RK_EINVAL (unresolvable host). */
int rk__transport_connect(rk__transport *t, const rk__endpoint *ep, void *tls_ctx,
                          uint64_t deadline);

/* Read at least one byte: `*got` receives the count. RK_EIO on EOF or error, RK_ETIMEDOUT. */
int rk__transport_read(rk__transport *t, void *buf, size_t cap, size_t *got, uint64_t deadline);

/* Write all `len` bytes. RK_EIO or RK_ETIMEDOUT. */
int rk__transport_write(rk__transport *t, const void *buf, size_t len, uint64_t deadline);

/* Wait until the transport or `wake_fd` (ignored if < 0) is readable, or `until` passes.
 * Sets the flags of what is readable; neither set means the time passed. */
int rk__transport_poll(rk__transport *t, int wake_fd, uint64_t until, bool *readable, bool *woken);

/* Non-blocking check that an idle connection is still usable (no EOF, no unexpected data). */
bool rk__transport_alive(rk__transport *t);

void rk__transport_close(rk__transport *t);

/* Wake whoever is blocked reading or writing this transport in another thread (they fail with
 * RK_EIO): how close interrupts calls to a stalled server. The descriptor stays open. */
void rk__transport_shutdown(rk__transport *t);

/* Close without a TLS close_notify: a forked child dropping the parent's connection, which the
 * parent still uses. */
void rk__transport_abandon(rk__transport *t);
/* Only close the socket, touching no TLS state (which may be half-updated after a fork). */
void rk__transport_abandon_fd(rk__transport *t);

#endif
