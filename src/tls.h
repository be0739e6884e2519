/* TLS on top of a connected socket (OpenSSL). Used only by the transport. */
#ifndef RK_TLS_H
#define RK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

/* Handshake on the connected blocking socket `fd`, verifying the server as `ep->tls_opts`
 * says. On success `*ssl` is the session. Errors name the peer and never a secret. */
int rk__tls_connect(void **ssl, int fd, const rk__endpoint *ep, const char *peer,
                    uint64_t deadline);

/* As recv/send on the socket: > 0 bytes done; 0 with `*rc` set on failure (RK_EIO, or
 * RK_ETIMEDOUT when the socket timeout expired). */
size_t rk__tls_read(void *ssl, void *buf, size_t cap, int *rc);
size_t rk__tls_write(void *ssl, const void *buf, size_t len, int *rc);

/* Bytes already decrypted and buffered (poll() cannot see them). */
bool rk__tls_pending(void *ssl);

void rk__tls_free(void *ssl);

#endif
