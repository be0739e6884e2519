/* OpenSSL under the transport. The socket stays blocking with the transport's SO_RCVTIMEO and
 * SO_SNDTIMEO, so an expired socket timeout surfaces here as WANT_READ/WANT_WRITE and becomes
 * RK_ETIMEDOUT for the transport to loop on until its deadline. The socket is switched to
 * non-blocking only for the handshake (whose waits are polls bounded by its deadline) and for
 * the short looks that must never wait: consuming session tickets, reading a pending alert,
 * sending close_notify. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "error_int.h"

/* ---- OpenSSL errors ---- */

/* The SSL-library reason of an error code (SSL_R_*), 0 for other libraries. */
static int ssl_reason(unsigned long code)
{
    return code && ERR_GET_LIB(code) == ERR_LIB_SSL ? ERR_GET_REASON(code) : 0;
}

/* The most recent OpenSSL reason ("certificate verify failed"). The queue is cleared so that it
 * cannot be mistaken later for the cause of an unrelated failure. */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long code = ERR_peek_last_error();
    const char *r = code ? ERR_reason_error_string(code) : NULL;
    if (r)
        snprintf(buf, cap, "%s", r);
    else
        snprintf(buf, cap, code ? "OpenSSL error %lu" : "unknown TLS error", code);
    ERR_clear_error();
    return buf;
}

/* ---- a socket BIO that cannot raise SIGPIPE ---- */

/* OpenSSL's socket BIO writes with write(2), so a server that went away would kill the process
 * with SIGPIPE. This one uses send(MSG_NOSIGNAL), as the plain transport does. */

static int bio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static bool retry_errno(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

static int bio_write(BIO *b, const char *buf, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && retry_errno())
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = recv(bio_fd(b), buf, (size_t)len, 0);
    if (n < 0 && retry_errno())
        BIO_set_retry_read(b);
    else if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF); /* lets OpenSSL tell EOF from an error */
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = bio_fd(b);
        return bio_fd(b);
    default:
        return 0;
    }
}

/* Lives as long as the process: BIOs of any connection may still refer to it. */
static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    int index = BIO_get_new_index();
    BIO_METHOD *m = index < 0 ? NULL
                              : BIO_meth_new(index | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                             "redkit socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- contexts: trust store, client certificate, verification ---- */

static int bad_config(const char *cause, const char *fmt, ...) RK__PRINTF(2, 3);

static int bad_config(const char *cause, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", cause, "%s", msg);
}

/* A clear "cannot read" before OpenSSL's less specific failure. */
static int check_access(const char *key, const char *path, bool dir)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return bad_config(strerror(errno), "%s: cannot read '%s'", key, path);
    if (dir != !!S_ISDIR(st.st_mode))
        return bad_config(NULL, dir ? "%s: '%s' is not a directory" : "%s: '%s' is a directory",
                          key, path);
    if (access(path, dir ? R_OK | X_OK : R_OK) != 0)
        return bad_config(strerror(errno), "%s: cannot read '%s'", key, path);
    return RK_OK;
}

static int bad_pem(const char *key, const char *path, const char *what)
{
    char why[160];
    return bad_config(ossl_reason(why, sizeof why), "%s: cannot load %s from '%s'", key, what,
                      path);
}

static int load_trust(SSL_CTX *ctx, const rk__tls_options *o)
{
    int rc = RK_OK;
    if (o->ca_file && (rc = check_access("options.tls_ca_file", o->ca_file, false)) == RK_OK &&
        !SSL_CTX_load_verify_file(ctx, o->ca_file))
        rc = bad_pem("options.tls_ca_file", o->ca_file, "CA certificates");
    if (rc == RK_OK && o->ca_dir &&
        (rc = check_access("options.tls_ca_dir", o->ca_dir, true)) == RK_OK &&
        !SSL_CTX_load_verify_dir(ctx, o->ca_dir))
        rc = bad_pem("options.tls_ca_dir", o->ca_dir, "CA certificates");
    if (rc == RK_OK && !o->ca_file && !o->ca_dir && !o->insecure &&
        !SSL_CTX_set_default_verify_paths(ctx)) {
        char why[160];
        rc =
            rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", ossl_reason(why, sizeof why),
                          "cannot load the system's CA certificates (set options.tls_ca_file)");
    }
    return rc;
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse them instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return 0;
}

static int key_mismatch(const char *key_opt, const char *key)
{
    ERR_clear_error();
    return bad_config(NULL, "%s: the private key in '%s' does not match options.tls_cert_file",
                      key_opt, key);
}

/* The client certificate; its key comes from options.tls_key_file, else from the same file. */
static int load_identity(SSL_CTX *ctx, const rk__tls_options *o)
{
    if (!o->cert_file)
        return o->key_file ? bad_config(NULL, "options.tls_key_file is set without "
                                              "options.tls_cert_file")
                           : RK_OK;
    const char *cert = o->cert_file, *key = o->key_file ? o->key_file : cert;
    const char *key_opt = o->key_file ? "options.tls_key_file" : "options.tls_cert_file";
    int rc = check_access("options.tls_cert_file", cert, false);
    if (rc == RK_OK && !SSL_CTX_use_certificate_chain_file(ctx, cert))
        rc = bad_pem("options.tls_cert_file", cert, "a client certificate");
    if (rc == RK_OK && (rc = check_access(key_opt, key, false)) == RK_OK &&
        !SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) {
        unsigned long code = ERR_peek_last_error();
        if (ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
            rc = key_mismatch(key_opt, key);
        else
            rc = bad_pem(key_opt, key, "an unencrypted PEM private key");
    }
    if (rc == RK_OK && !SSL_CTX_check_private_key(ctx))
        rc = key_mismatch(key_opt, key);
    return rc;
}

int rk__tls_ctx_new(void **out, const rk__tls_options *o)
{
    *out = NULL;
    pthread_once(&bio_once, bio_method_init);
    ERR_clear_error();
    SSL_CTX *ctx = bio_method ? SSL_CTX_new(TLS_client_method()) : NULL;
    if (!ctx) {
        char why[160];
        return rk__err_cause(RK_ENOMEM, ossl_reason(why, sizeof why),
                             "cannot create a TLS context");
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* The transport retries a timed-out write with what is left, from a moving pointer. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One recv() per reply instead of a header then a body; rk__tls_pending() sees what was
     * read ahead (SSL_has_pending), so poll() is never trusted with buffered bytes. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int rc = load_trust(ctx, o);
    if (rc == RK_OK)
        rc = load_identity(ctx, o);
    if (rc != RK_OK) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return RK_OK;
}

void rk__tls_ctx_free(void *ctx) { SSL_CTX_free(ctx); }

/* ---- sessions ---- */

static bool is_ip(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* SNI and the name the certificate must carry. SNI must not be an IP address (RFC 6066); an
 * IP is checked against the certificate's IP subjectAltNames instead. */
static int set_peer_name(SSL *s, const char *name, bool verify)
{
    bool ip = is_ip(name);
    int ok = ip || SSL_set_tlsext_host_name(s, name);
    if (ok && verify) {
        SSL_set_hostflags(s, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) : SSL_set1_host(s, name);
    }
    if (ok)
        return RK_OK;
    ERR_clear_error();
    return bad_config(NULL, "'%s' cannot be used as the TLS server name (options.tls_server_name)",
                      name);
}

static int new_session(SSL **out, void *ctx, const rk__tls_options *o, int fd, const char *name)
{
    void *own = ctx; /* a connection made outside a client builds a context of its own */
    int rc = own ? RK_OK : rk__tls_ctx_new(&own, o);
    if (rc != RK_OK)
        return rc;
    SSL *s = SSL_new(own);
    BIO *b = s ? BIO_new(bio_method) : NULL;
    if (!b) {
        SSL_free(s);
        rc = rk__err(RK_ENOMEM, "cannot allocate a TLS session");
    } else {
        BIO_set_data(b, (void *)(intptr_t)fd);
        BIO_set_init(b, 1);
        SSL_set_bio(s, b, b);
        if ((rc = set_peer_name(s, name, !o->insecure)) != RK_OK)
            SSL_free(s);
    }
    if (!ctx)
        rk__tls_ctx_free(own); /* the session holds its own reference */
    ERR_clear_error();
    *out = rc == RK_OK ? s : NULL;
    return rc;
}

static int verify_error(SSL *s, const char *peer, const char *name)
{
    long v = SSL_get_verify_result(s);
    char why[200];
    ERR_clear_error();
    snprintf(why, sizeof why, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        return rk__err_cause(RK_EIO, why,
                             "%s: TLS handshake failed: the server certificate is not valid for "
                             "'%s' (see options.tls_server_name)",
                             peer, name);
    return rk__err_cause(RK_EIO, why,
                         "%s: TLS handshake failed: the server certificate is not trusted (see "
                         "options.tls_ca_file, options.tls_ca_dir)",
                         peer);
}

/* What a fatal alert or protocol error means to the user: most alerts a server sends are about
 * the client certificate. */
static const char *reason_hint(int reason)
{
    switch (reason) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return ": the server requires a TLS client certificate (set options.tls_cert_file and "
               "options.tls_key_file)";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return ": the server rejected the TLS client certificate (options.tls_cert_file)";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
        return " (does the server speak TLS on this port?)";
    default:
        return "";
    }
}

static int handshake_error(SSL *s, int ret, int err, const char *peer, const char *name)
{
    int e = SSL_get_error(s, ret);
    unsigned long code = ERR_peek_last_error();
    int reason = ssl_reason(code);
    char why[160];
    /* Without verification OpenSSL still records a verify result; it is not the failure then. */
    bool verifying = SSL_get_verify_mode(s) != SSL_VERIFY_NONE;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
        (verifying && SSL_get_verify_result(s) != X509_V_OK))
        return verify_error(s, peer, name);
    if ((e == SSL_ERROR_SYSCALL && !code && !err) || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return rk__err(RK_EIO,
                       "%s: connection closed by the server during the TLS handshake (does it "
                       "speak TLS on this port?)",
                       peer);
    }
    if (e == SSL_ERROR_SYSCALL && !code)
        return rk__err_cause(RK_EIO, strerror(err),
                             "%s: connection failed during the TLS handshake", peer);
    return rk__err_cause(RK_EIO, ossl_reason(why, sizeof why), "%s: TLS handshake failed%s", peer,
                         reason_hint(reason));
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p = {fd, events, 0};
    uint64_t left;
    while ((left = rk__remaining_ms(deadline)) > 0) {
        int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0 || (n < 0 && errno != EINTR))
            return RK_OK; /* ready, or a socket error the next SSL call reports */
    }
    return RK_ETIMEDOUT;
}

/* Non-blocking, so that each wait is a poll() bounded by the deadline. */
static int handshake(SSL *s, int fd, const char *peer, const char *name, uint64_t deadline)
{
    int flags = fcntl(fd, F_GETFL), rc = RK_ETIMEDOUT;
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return rk__err_cause(RK_EIO, strerror(errno), "%s: cannot prepare the TLS handshake", peer);
    while (rk__remaining_ms(deadline) > 0) {
        ERR_clear_error();
        errno = 0;
        int ret = SSL_connect(s), err = errno, e = SSL_get_error(s, ret);
        if (ret == 1) {
            rc = RK_OK;
            break;
        }
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            rc = handshake_error(s, ret, err, peer, name);
            break;
        }
        if (wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) != RK_OK)
            break;
    }
    fcntl(fd, F_SETFL, flags);
    ERR_clear_error();
    if (rc == RK_ETIMEDOUT)
        return rk__err(RK_ETIMEDOUT,
                       "%s: TLS handshake not finished before the connect deadline (does the "
                       "server speak TLS on this port?)",
                       peer);
    return rc;
}

int rk__tls_connect(void **ssl, int fd, void *ctx, const rk__endpoint *ep, const char *peer,
                    uint64_t deadline)
{
    const rk__tls_options *o = &ep->tls_opts;
    const char *name = o->server_name ? o->server_name : ep->host ? ep->host : "";
    SSL *s;
    *ssl = NULL;
    int rc = new_session(&s, ctx, o, fd, name);
    if (rc == RK_OK && (rc = handshake(s, fd, peer, name, deadline)) != RK_OK)
        SSL_free(s);
    if (rc == RK_OK)
        *ssl = s;
    return rc;
}

static int io_error(SSL *s, int err, const char *peer, const char *what)
{
    int e = SSL_get_error(s, 0);
    unsigned long code = ERR_peek_last_error();
    int reason = ssl_reason(code);
    char why[160];
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return RK_ETIMEDOUT; /* the socket timeout: the transport checks its deadline */
    }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !code && !err) ||
        reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return rk__err(RK_EIO, "%s: connection closed by the server while %s", peer, what);
    }
    if (e == SSL_ERROR_SYSCALL && !code)
        return rk__err_cause(RK_EIO, strerror(err), "%s: connection failed while %s", peer, what);
    /* TLS 1.3 clients finish the handshake before the server checks their certificate, so a
     * refused client certificate shows up here, as an alert on the first read. */
    return rk__err_cause(RK_EIO, ossl_reason(why, sizeof why), "%s: TLS error while %s%s", peer,
                         what, reason_hint(reason));
}

size_t rk__tls_read(void *ssl, const char *peer, void *buf, size_t cap, int *rc)
{
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(ssl, buf, cap, &got) == 1)
        return got;
    *rc = io_error(ssl, errno, peer, "reading");
    return 0;
}

/* A server that refuses the client (TLS 1.3 checks client certificates after the client's
 * handshake is done) sends an alert and closes, so our next write can fail with EPIPE or
 * ECONNRESET while the alert still waits in the receive buffer. Its reason, or 0. */
static int alert_after_write(SSL *s)
{
    int fd = SSL_get_fd(s), flags = fd >= 0 ? fcntl(fd, F_GETFL) : -1, reason = 0;
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return 0;
    char buf[512];
    size_t n;
    ERR_clear_error();
    if (SSL_read_ex(s, buf, sizeof buf, &n) != 1 && SSL_get_error(s, 0) == SSL_ERROR_SSL)
        reason = ssl_reason(ERR_peek_last_error());
    fcntl(fd, F_SETFL, flags);
    if (!reason)
        ERR_clear_error();
    return reason;
}

size_t rk__tls_write(void *ssl, const char *peer, const void *buf, size_t len, int *rc)
{
    size_t done = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(ssl, buf, len, &done) == 1)
        return done;
    bool sys = SSL_get_error(ssl, 0) == SSL_ERROR_SYSCALL;
    *rc = io_error(ssl, errno, peer, "writing");
    int reason = sys ? alert_after_write(ssl) : 0;
    if (reason) {
        char why[160];
        *rc = rk__err_cause(RK_EIO, ossl_reason(why, sizeof why),
                            "%s: the server ended the TLS connection%s", peer, reason_hint(reason));
    }
    return 0;
}

bool rk__tls_pending(void *ssl) { return SSL_has_pending(ssl); }

bool rk__tls_readable(void *ssl, int fd)
{
    if (SSL_has_pending(ssl))
        return true;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return true;
    char byte;
    size_t n;
    ERR_clear_error();
    int e = SSL_peek_ex(ssl, &byte, 1, &n) == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, 0);
    ERR_clear_error();
    fcntl(fd, F_SETFL, flags);
    return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

void rk__tls_free(void *ssl)
{
    if (!ssl)
        return;
    /* A best-effort close_notify: never wait for the server or for room in the send buffer. */
    int fd = SSL_get_fd(ssl), flags = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (flags >= 0 && SSL_is_init_finished((SSL *)ssl) &&
        fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) {
        SSL_shutdown(ssl);
        fcntl(fd, F_SETFL, flags);
    }
    ERR_clear_error();
    SSL_free(ssl);
}

void rk__tls_abandon(void *ssl)
{
    /* No close_notify: after a fork the session is the parent's, which still uses it. */
    SSL_set_quiet_shutdown(ssl, 1);
    SSL_free(ssl);
}
