/* The connector: resolve (resolve.c, off the loop) or take the fixed
 * address, then one non-blocking connect() per address until one succeeds;
 * the outcome is reported from the loop through a defer source. */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "address.h"
#include "connector.h"
#include "macro.h"
#include "resolve.h"

/* Resolved addresses tried in turn; more are not worth the wait. */
#define CONNECTOR_ADDRS_MAX 8

struct Connector {
        sd_event *event;
        IoPoll *poll;
        char *host;
        uint16_t port;
        void (*prepare)(int fd, int family, void *userdata);
        ConnectorDone done;
        void *userdata;

        ResolveQuery *query;
        struct sockaddr_storage addrs[CONNECTOR_ADDRS_MAX];
        socklen_t addr_lens[CONNECTOR_ADDRS_MAX];
        size_t n_addrs, next;

        int fd;
        IoWatch *io;
        sd_event_source *report; /* the outcome, from the loop */
        int error;
        ConnectorPhase phase;
        char message[256];
        char cause[128];
};

Connector *connector_free(Connector *c) {
        if (!c)
                return NULL;
        c->query = resolve_cancel(c->query);
        c->io = iopoll_watch_free(c->io);
        c->report = sd_event_source_disable_unref(c->report);
        c->fd = safe_close(c->fd);
        sd_event_unref(c->event);
        free(c->host);
        free(c);
        return NULL;
}

bool connector_resolving(const Connector *c) {
        return c->query != NULL;
}

static int on_report(sd_event_source *s, void *userdata) {
        Connector *c = userdata;
        ConnectorDone done = c->done;
        ConnectorPhase phase = c->phase;
        int fd = TAKE_FD(c->fd), error = fd >= 0 ? 0 : c->error;
        char message[sizeof(c->message)], cause[sizeof(c->cause)];

        /* gone before the call: the callee may drop its handle in any way */
        memcpy(message, c->message, sizeof(message));
        memcpy(cause, c->cause, sizeof(cause));
        userdata = c->userdata;
        connector_free(c);
        done(fd, error, phase, fd >= 0 ? NULL : message, fd >= 0 ? NULL : cause, userdata);
        return 0;
}

/* Report from the loop: the caller may be inside connector_new(). */
static void connector_finish(Connector *c) {
        c->io = iopoll_watch_free(c->io);
        if (sd_event_source_set_enabled(c->report, SD_EVENT_ONESHOT) < 0)
                on_report(c->report, c); /* cannot defer: now, then */
}

/* 'cause' NULL: the error's own text. */
_printf_(5, 6) static void connector_fail(Connector *c, int error, ConnectorPhase phase, const char *cause,
                                          const char *fmt, ...) {
        va_list ap;

        c->error = error < 0 ? error : -EIO;
        c->phase = phase;
        snprintf(c->cause, sizeof(c->cause), "%s", cause ?: strerror(-c->error));
        va_start(ap, fmt);
        vsnprintf(c->message, sizeof(c->message), fmt, ap);
        va_end(ap);
}

static int on_io(IoWatch *w, int fd, uint32_t revents, void *userdata);

/* Connect to the next address, or report the last failure. */
static void connector_next(Connector *c) {
        while (c->next < c->n_addrs) {
                size_t i = c->next++;
                const struct sockaddr *sa = (const struct sockaddr *) &c->addrs[i];
                char where[128];
                int r;

                c->io = iopoll_watch_free(c->io);
                c->fd = safe_close(c->fd);
                sockaddr_format(sa, c->addr_lens[i], where, sizeof(where));
                c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (c->fd < 0) {
                        connector_fail(c, -errno, CONNECTOR_CONNECT, NULL, "socket for %s: %m", where);
                        continue;
                }
                if (c->prepare)
                        c->prepare(c->fd, sa->sa_family, c->userdata);
                if (connect(c->fd, sa, c->addr_lens[i]) < 0 && errno != EINPROGRESS) {
                        connector_fail(c, -errno, CONNECTOR_CONNECT, NULL, "connect to %s: %m", where);
                        continue;
                }
                /* done or not, SO_ERROR tells once the socket is writable */
                r = iopoll_add(c->poll, c->fd, EPOLLOUT, on_io, c, &c->io);
                if (r < 0) {
                        connector_fail(c, r, CONNECTOR_CONNECT, NULL, "cannot watch the socket for %s: %s", where,
                                       strerror(-r));
                        break;
                }
                return;
        }
        c->fd = safe_close(c->fd);
        connector_finish(c);
}

static int on_io(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Connector *c = userdata;
        const struct sockaddr *sa = (const struct sockaddr *) &c->addrs[c->next - 1];
        socklen_t len = sizeof(int);
        char where[128];
        int err = 0;

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        if (err == 0) {
                connector_finish(c);
                return 0;
        }
        sockaddr_format(sa, c->addr_lens[c->next - 1], where, sizeof(where));
        connector_fail(c, -err, CONNECTOR_CONNECT, NULL, "connect to %s: %s", where, strerror(err));
        connector_next(c);
        return 0;
}

static void on_resolved(ResolveQuery *q, int error, const char *message, const struct addrinfo *ai,
                        void *userdata) {
        Connector *c = userdata;

        c->query = NULL;
        if (error < 0) {
                connector_fail(c, error, CONNECTOR_RESOLVE, message, "cannot resolve %s: %s", c->host,
                               message ? message : strerror(-error));
                connector_finish(c);
                return;
        }
        for (; ai && c->n_addrs < CONNECTOR_ADDRS_MAX; ai = ai->ai_next) {
                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    ai->ai_addrlen > sizeof(c->addrs[0]))
                        continue;
                memcpy(&c->addrs[c->n_addrs], ai->ai_addr, ai->ai_addrlen);
                c->addr_lens[c->n_addrs++] = ai->ai_addrlen;
        }
        if (c->n_addrs == 0) {
                connector_fail(c, -EADDRNOTAVAIL, CONNECTOR_RESOLVE, "no IPv4 or IPv6 address", "%s has no IPv4 or IPv6 address", c->host);
                connector_finish(c);
                return;
        }
        connector_next(c);
}

/* An IP literal needs no resolver. */
static bool connector_literal(Connector *c) {
        IpAddr ip;

        if (ipaddr_parse(c->host, &ip) < 0)
                return false;
        c->addr_lens[0] = ipaddr_to_sockaddr(&ip, c->port, &c->addrs[0]);
        c->n_addrs = 1;
        return true;
}

int connector_new(sd_event *e, IoPoll *poll, const ConnectorParams *p, Connector **ret) {
        Connector *c;
        int r;

        if (!p->done || (p->addr_len == 0 && !p->host) || p->addr_len > sizeof(struct sockaddr_storage))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        c->poll = poll;
        c->fd = -1;
        c->port = p->port;
        c->prepare = p->prepare;
        c->done = p->done;
        c->userdata = p->userdata;
        r = sd_event_add_defer(e, &c->report, on_report, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->report, SD_EVENT_OFF);
        if (r < 0) {
                connector_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->report, "connector-report");

        if (p->addr_len > 0) {
                memcpy(&c->addrs[0], p->addr, p->addr_len);
                c->addr_lens[0] = p->addr_len;
                c->n_addrs = 1;
        } else {
                c->host = strdup(p->host);
                if (!c->host) {
                        connector_free(c);
                        return -ENOMEM;
                }
                if (!connector_literal(c)) {
                        r = resolve_start(e, c->host, c->port, on_resolved, c, &c->query);
                        if (r < 0) {
                                connector_free(c);
                                return r;
                        }
                        *ret = c;
                        return 0;
                }
        }
        connector_next(c);
        *ret = c;
        return 0;
}
