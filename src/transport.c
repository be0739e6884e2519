#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "error_int.h"
#include "tls.h"

/* Socket timeouts are capped; longer waits simply loop. */
#define MAX_SOCK_TIMEOUT_MS 3600000u
/* A socket timeout this short is raised again for a longer wait, which would otherwise wake up
 * this often for nothing. */
#define SPIN_MS 100u

static int set_sock_timeout(int fd, int opt, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};
    return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* Make the socket timeout end no later than `deadline`, with as few system calls as possible.
 * A call's deadline shrinks with each of its commands, so a timeout that must come down gets
 * half the time left, and the call's next commands fit under it; a wait that outlasts it just
 * reads again. A short timeout goes back up only when it would make a long wait spin. */
static int fit_timeout(rk__transport *t, int opt, uint64_t *cur, uint64_t deadline)
{
    uint64_t left = rk__remaining_ms(deadline);
    if (left == 0)
        return RK_ETIMEDOUT;
    if (left > MAX_SOCK_TIMEOUT_MS)
        left = MAX_SOCK_TIMEOUT_MS;
    if (*cur > left || (*cur < SPIN_MS && *cur * 2 < left)) {
        uint64_t ms = *cur > left && left > 2 * SPIN_MS ? left / 2 : left;
        if (set_sock_timeout(t->fd, opt, ms) != 0)
            return rk__err_cause(RK_EIO, strerror(errno), "%s: cannot set socket timeout", t->peer);
        *cur = ms;
    }
    return RK_OK;
}

static void tune_tcp(int fd)
{
    int one = 1, idle = 15, intvl = 5, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* Non-blocking connect bounded by the deadline; returns the socket back in blocking mode. */
static int connect_addr(int *out, int family, const struct sockaddr *sa, socklen_t len,
                        uint64_t deadline, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return *err = errno, RK_EIO;
    int rc = connect(fd, sa, len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        uint64_t left;
        while ((left = rk__remaining_ms(deadline)) > 0 &&
               (rc = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left)) < 0 && errno == EINTR)
            ;
        if (rc <= 0) {
            close(fd);
            return *err = ETIMEDOUT, RK_ETIMEDOUT;
        }
        socklen_t elen = sizeof *err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &elen);
        rc = *err ? -1 : 0;
    } else if (rc != 0) {
        *err = errno;
    }
    if (rc != 0) {
        close(fd);
        return RK_EIO;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *out = fd;
    return RK_OK;
}

static int connect_unix(rk__transport *t, const char *path, uint64_t deadline)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return rk__err(RK_EINVAL, "unix socket path is longer than %zu bytes",
                       sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int err = 0,
        rc = connect_addr(&t->fd, AF_UNIX, (struct sockaddr *)&sa, sizeof sa, deadline, &err);
    if (rc != RK_OK)
        return rk__err_cause(rc, strerror(err), "cannot connect to %s", t->peer);
    return RK_OK;
}

static int connect_tcp(rk__transport *t, const char *host, uint16_t port, uint64_t deadline)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int grc = getaddrinfo(host, service, &hints, &res);
    if (grc != 0)
        return rk__err_cause(grc == EAI_AGAIN ? RK_EIO : RK_EINVAL, gai_strerror(grc),
                             "cannot resolve host '%s'", host);
    int rc = RK_EIO, err = 0;
    for (struct addrinfo *ai = res; ai && rc != RK_OK && rc != RK_ETIMEDOUT; ai = ai->ai_next)
        rc = connect_addr(&t->fd, ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, &err);
    freeaddrinfo(res);
    if (rc != RK_OK)
        return rk__err_cause(rc, strerror(err), "cannot connect to %s", t->peer);
    tune_tcp(t->fd);
    return RK_OK;
}

int rk__transport_connect(rk__transport *t, const rk__endpoint *ep, void *tls_ctx,
                          uint64_t deadline)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    rk__endpoint_name(ep, t->peer, sizeof t->peer);
    if (ep->tls && ep->path)
        return rk__err_named(RK_EINVAL, "BAD_CONFIG", "Misconfiguration", NULL,
                             "TLS over a Unix socket (%s) is not supported", t->peer);
    int rc = ep->path ? connect_unix(t, ep->path, deadline)
                      : connect_tcp(t, ep->host, ep->port, deadline);
    if (rc == RK_OK && ep->tls)
        rc = rk__tls_connect(&t->ssl, t->fd, tls_ctx, ep, t->peer, deadline);
    if (rc != RK_OK)
        rk__transport_close(t);
    return rc;
}

static int io_error(rk__transport *t, int rc, const char *what, int err)
{
    if (rc == RK_ETIMEDOUT)
        return rk__err(RK_ETIMEDOUT, "%s: no answer from the server while %s", t->peer, what);
    if (err == 0)
        return rk__err(RK_EIO, "%s: connection closed by the server while %s", t->peer, what);
    return rk__err_cause(RK_EIO, strerror(err), "%s: connection failed while %s", t->peer, what);
}

int rk__transport_read(rk__transport *t, void *buf, size_t cap, size_t *got, uint64_t deadline)
{
    for (;;) {
        int rc = fit_timeout(t, SO_RCVTIMEO, &t->rcv_ms, deadline);
        if (rc != RK_OK)
            return rc == RK_ETIMEDOUT ? io_error(t, rc, "reading", 0) : rc;
        if (t->ssl) {
            *got = rk__tls_read(t->ssl, t->peer, buf, cap, &rc);
            if (*got)
                return RK_OK;
            if (rc != RK_ETIMEDOUT)
                return rc;
            continue;
        }
        ssize_t n = recv(t->fd, buf, cap, 0);
        if (n > 0) {
            *got = (size_t)n;
            return RK_OK;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        return io_error(t, RK_EIO, "reading", n == 0 ? 0 : errno);
    }
}

int rk__transport_write(rk__transport *t, const void *buf, size_t len, uint64_t deadline)
{
    const char *p = buf;
    while (len > 0) {
        int rc = fit_timeout(t, SO_SNDTIMEO, &t->snd_ms, deadline);
        if (rc != RK_OK)
            return rc == RK_ETIMEDOUT ? io_error(t, rc, "writing", 0) : rc;
        size_t n;
        if (t->ssl) {
            n = rk__tls_write(t->ssl, t->peer, p, len, &rc);
            if (!n && rc != RK_ETIMEDOUT)
                return rc;
        } else {
            ssize_t w = send(t->fd, p, len, MSG_NOSIGNAL);
            if (w < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                return io_error(t, RK_EIO, "writing", errno);
            n = w > 0 ? (size_t)w : 0;
        }
        p += n;
        len -= n;
    }
    return RK_OK;
}

int rk__transport_poll(rk__transport *t, int wake_fd, uint64_t until, bool *readable, bool *woken)
{
    *readable = *woken = false;
    if (t->ssl && rk__tls_pending(t->ssl))
        return *readable = true, RK_OK;
    do {
        struct pollfd p[2] = {{t->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        uint64_t left = rk__remaining_ms(until);
        int n = poll(p, wake_fd >= 0 ? 2 : 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n < 0 && errno != EINTR)
            return rk__err_cause(RK_EIO, strerror(errno), "%s: poll failed", t->peer);
        *readable = n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
        *woken = n > 0 && wake_fd >= 0 && (p[1].revents & POLLIN);
        /* TLS session tickets wake poll() with nothing for the caller to read: keep waiting. */
        if (*readable && t->ssl)
            *readable = rk__tls_readable(t->ssl, t->fd);
    } while (t->ssl && !*readable && !*woken && rk__remaining_ms(until) > 0);
    return RK_OK;
}

bool rk__transport_alive(rk__transport *t)
{
    if (t->fd < 0)
        return false;
    struct pollfd p = {t->fd, POLLIN, 0};
    /* An idle connection has nothing to read; readable means EOF, an error or stray bytes,
     * unless TLS protocol records (session tickets) were all that arrived. */
    if (poll(&p, 1, 0) == 0)
        return !t->ssl || !rk__tls_pending(t->ssl);
    return t->ssl && !rk__tls_readable(t->ssl, t->fd);
}

void rk__transport_close(rk__transport *t)
{
    if (t->ssl)
        rk__tls_free(t->ssl);
    t->ssl = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

void rk__transport_shutdown(rk__transport *t)
{
    if (t->fd >= 0)
        shutdown(t->fd, SHUT_RDWR);
}

void rk__transport_abandon_fd(rk__transport *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

void rk__transport_abandon(rk__transport *t)
{
    if (t->ssl)
        rk__tls_abandon(t->ssl);
    t->ssl = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}
