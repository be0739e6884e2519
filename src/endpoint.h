/* Where and how to connect: the resolved form of the connection and credential configuration,
 * shared by the transport (address, TLS) and the connection (AUTH, SELECT). Plain data: the
 * TLS context built from it belongs to the client that connects. */
#ifndef RK_ENDPOINT_H
#define RK_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* options.tls_*. Zeroed means verified against the system's CAs, so that an endpoint built
 * without the options is never silently insecure. */
typedef struct rk__tls_options {
    char *ca_file, *ca_dir, *cert_file, *key_file, *server_name;
    bool insecure; /* options.tls_verify=false */
    /* The first options.tls_* set on an endpoint that is not TLS (static, not owned): the client
     * warns, since that option does nothing and the connection is plaintext. */
    const char *unused;
} rk__tls_options;

struct rk__conn_hook;

typedef struct rk__endpoint {
    char *host; /* TCP host name or address; NULL for a Unix socket */
    uint16_t port;
    char *path; /* Unix socket path, or NULL */
    bool tls;
    rk__tls_options tls_opts;
    char *username; /* NULL: AUTH <password> alone */
    char *password; /* NULL: no AUTH */
    unsigned db;
    bool readonly; /* send READONLY after connecting: a cluster replica serving reads */
    uint64_t connect_timeout_ms;
    /* A component's step after the handshake of every connection made here (conn.h); not
     * owned, copied by reference; NULL for none. */
    const struct rk__conn_hook *hook;
} rk__endpoint;

/* Deep copy into `*dst` (zeroed first). RK_OK or RK_ENOMEM. */
int rk__endpoint_copy(rk__endpoint *dst, const rk__endpoint *src);

/* Free the strings (wiping the password) and zero the struct. */
void rk__endpoint_clear(rk__endpoint *ep);

/* "host:port", "[v6]:port" or "unix:/path" into buf, for messages. Returns buf. */
const char *rk__endpoint_name(const rk__endpoint *ep, char *buf, size_t cap);

/* Parse redis://[user[:password]@]host[:port][/db], rediss://... (TLS) or
 * unix:///path/to/socket[?db=N] into `ep` (whose previous strings are freed; `db` is set only
 * when the URI names one). A URI listing several hosts is refused: see rk__uri_parse_list.
 * RK_EINVAL names `what` (the configuration key) and the problem, never the password. */
int rk__uri_parse(rk__endpoint *ep, const char *uri, const char *what);

#define RK__URI_MAX_HOSTS 64

/* Parse a URI that may list several hosts, redis://[user[:password]@]h1[:p1],h2[:p2][/db]
 * (rediss:// alike; IPv6 as [::1]:p; 6379 for a host without a port; unix:// names one socket),
 * into `*n` >= 1 new endpoints, in the order of the list. Each starts as a copy of `tmpl` (so
 * its db stays unless the URI names one) and shares the URI's user info, database and TLS.
 * An empty host in a list, a bad port or more than RK__URI_MAX_HOSTS hosts is RK_EINVAL, as in
 * rk__uri_parse. Free the array with rk__seeds_free. */
int rk__uri_parse_list(rk__endpoint **eps, size_t *n, const rk__endpoint *tmpl, const char *uri,
                       const char *what);

/* Clear each of the `n` endpoints and free the array (NULL-safe). */
void rk__seeds_free(rk__endpoint *eps, size_t n);

#endif
