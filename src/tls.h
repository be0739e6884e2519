/* TLS on top of a connected socket (OpenSSL). One SSL_CTX per resolved endpoint (trust store and
 * client certificate are loaded once per open, not per connection), one SSL session per
 * connection. Used by the transport (sessions) and the endpoint (contexts). */
#ifndef RK_TLS_H
#define RK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

/* Build an SSL_CTX from the options: trust store (system default when neither CA option is
 * set), client certificate and key, verification. RK_EINVAL names the option and the path at
 * fault; RK_ENOMEM. The client owns it (one per open) and frees it with rk__tls_ctx_free. */
int rk__tls_ctx_new(void **out, const rk__tls_options *o);
void rk__tls_ctx_free(void *ctx); /* NULL-safe */

/* Handshake on the connected blocking socket `fd` before `deadline`, verifying the server as
 * `ep->tls_opts` says. On success `*ssl` is the session. RK_EIO (the OpenSSL reason as the
 * cause) or RK_ETIMEDOUT; messages name the peer and never a secret. */
int rk__tls_connect(void **ssl, int fd, void *ctx, const rk__endpoint *ep, const char *peer,
                    uint64_t deadline);

/* As recv/send on the socket: > 0 bytes done; 0 with `*rc` set on failure (RK_EIO naming
 * `peer`, or RK_ETIMEDOUT, without setting the error, when the socket timeout expired). */
size_t rk__tls_read(void *ssl, const char *peer, void *buf, size_t cap, int *rc);
size_t rk__tls_write(void *ssl, const char *peer, const void *buf, size_t len, int *rc);

/* Bytes already decrypted and buffered (poll() cannot see them). */
bool rk__tls_pending(void *ssl);

/* Once poll() saw `fd` readable: whether a read would return without blocking (data, EOF or an
 * error). False when only TLS protocol records had arrived (TLS 1.3 session tickets), which
 * this consumes. */
bool rk__tls_readable(void *ssl, int fd);

void rk__tls_free(void *ssl);

/* Free without sending close_notify (a forked child dropping its parent's session). */
void rk__tls_abandon(void *ssl);

#endif
