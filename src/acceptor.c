/* Accepting on a listening socket without starving the loop or spinning:
 * bounded batches per wakeup, a one-second rest when descriptors run out,
 * and for the admin sockets one descriptor kept in reserve so an operator
 * can still ask what is wrong when the nodes have taken all the others. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "acceptor.h"
#include "listen.h"
#include "log.h"
#include "macro.h"

/* Connections taken per wakeup: enough to drain a burst, few enough that
 * the streams already running are served in between. */
#define ACCEPT_BATCH 64
#define ACCEPT_REST_USEC (1 * USEC_PER_SEC)

struct Acceptor {
        sd_event *event;
        ListenAddress address;
        int fd;
        sd_event_source *io;
        sd_event_source *rest_timer;
        bool adopted; /* from the service manager: not ours to unlink */
        dev_t dev;    /* our unix socket's inode: unlinked only while it is still ours */
        ino_t ino;
        bool held;    /* by the owner */
        bool resting; /* after a descriptor shortage, until rest_timer fires */
        bool reserve; /* keep reserve_fd while it is not lent to a connection */
        int reserve_fd;
        char *label;
        char *rest_description;
        AcceptorHandler handler;
        void *userdata;
        RateLimit error_log;
};

static void acceptor_update(Acceptor *a) {
        (void) sd_event_source_set_enabled(a->io, a->held || a->resting ? SD_EVENT_OFF : SD_EVENT_ON);
}

static int on_rest_over(sd_event_source *es, uint64_t usec, void *userdata) {
        Acceptor *a = userdata;

        a->resting = false;
        acceptor_update(a);
        return 0;
}

/* Leave the socket alone for a while: a level-triggered listener whose
 * backlog we cannot drain would wake the loop forever. The timer exists
 * from the start: out of descriptors, sd-event could not make a timerfd. */
static void acceptor_rest(Acceptor *a) {
        if (sd_event_source_set_time(a->rest_timer, now_usec(CLOCK_MONOTONIC) + ACCEPT_REST_USEC) < 0 ||
            sd_event_source_set_enabled(a->rest_timer, SD_EVENT_ONESHOT) < 0)
                /* no way back: keep accepting rather than go deaf */
                return;
        a->resting = true;
        acceptor_update(a);
}

/* Take the spare descriptor back if it is lent out. Single-threaded: called
 * right after a connection's close, it gets that very descriptor back
 * before anything else in the process can open one. */
void acceptor_replenish(Acceptor *a) {
        if (!a || !a->reserve || a->reserve_fd >= 0)
                return;
        a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

/* Out of descriptors: give the spare one up for one more connection. */
static int accept_on_reserve(Acceptor *a, int fd, struct sockaddr_storage *sa, socklen_t *len) {
        int cfd;

        if (a->reserve_fd < 0)
                return -1;
        a->reserve_fd = safe_close(a->reserve_fd);
        cfd = accept4(fd, (struct sockaddr *) sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                acceptor_replenish(a);
        return cfd;
}

static void describe_peer(int fd, const struct sockaddr_storage *sa, AcceptorPeer *ret) {
        char ip[INET6_ADDRSTRLEN] = "?";

        *ret = (AcceptorPeer) {};
        if (sa->ss_family == AF_INET || sa->ss_family == AF_INET6) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

                if (sa->ss_family == AF_INET) {
                        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
                        ret->orig_port = ntohs(in->sin_port);
                } else {
                        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                        ret->orig_port = ntohs(in6->sin6_port);
                }
                hostport_format(ip, ret->orig_port, ret->text, sizeof(ret->text));
                snprintf(ret->orig_host, sizeof(ret->orig_host), "%s", ip);
        } else {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                        snprintf(ret->text, sizeof(ret->text), "unix:pid=%d,uid=%u", (int) cred.pid,
                                 (unsigned) cred.uid);
                else
                        snprintf(ret->text, sizeof(ret->text), "unix");
                /* what ssh -L says for local clients */
                snprintf(ret->orig_host, sizeof(ret->orig_host), "127.0.0.1");
                ret->orig_port = 0;
        }
}

static int on_listener(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Acceptor *a = userdata;

        for (int i = 0; i < ACCEPT_BATCH && !a->held && !a->resting; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                AcceptorPeer peer;
                bool on_reserve = false;
                unsigned suppressed;
                int cfd;

                cfd = accept4(fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0 && (errno == EMFILE || errno == ENFILE)) {
                        int saved = errno;

                        len = sizeof(sa);
                        cfd = accept_on_reserve(a, fd, &sa, &len);
                        if (cfd < 0)
                                errno = saved;
                        on_reserve = cfd >= 0;
                }
                if (cfd < 0) {
                        switch (errno) {
                        case EAGAIN:
                                return 0;
                        case EINTR:
                        case ECONNABORTED:
                        /* the new connection's own network errors (accept(2)): the next
                         * one in the backlog is unaffected */
                        case EPROTO:
                        case ENOPROTOOPT:
                        case EHOSTDOWN:
                        case ENONET:
                        case EHOSTUNREACH:
                        case ENETUNREACH:
                        case ENETDOWN:
                        case ETIMEDOUT:
                                continue;
                        case EMFILE:
                        case ENFILE:
                        case ENOBUFS:
                        case ENOMEM:
                                if (ratelimit_below(&a->error_log, &suppressed))
                                        log_warning_errno(errno,
                                                          "%s: cannot accept connections: %m; pausing for 1 s "
                                                          "(raise LimitNOFILE)",
                                                          a->label);
                                acceptor_rest(a);
                                return 0;
                        default:
                                /* unexpected: rest too, so a persistent error cannot spin */
                                if (ratelimit_below(&a->error_log, &suppressed))
                                        log_warning_errno(errno, "%s: accept failed: %m; pausing for 1 s",
                                                          a->label);
                                acceptor_rest(a);
                                return 0;
                        }
                }

                if (a->address.kind == LISTEN_TCP) {
                        int one = 1;
                        (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                }
                describe_peer(cfd, &sa, &peer);
                a->handler(a, cfd, &peer, a->userdata);
                if (on_reserve)
                        /* the next accept() would fail and rest a second; a connection
                         * still waiting wakes us again, and finds the reserve back if
                         * this one is done by then */
                        return 0;
        }
        return 0;
}

int acceptor_new(sd_event *e, const ListenAddress *address, const AcceptorParams *p, Acceptor **ret) {
        Acceptor *a;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a) {
                if (p->adopt)
                        safe_close(p->fd);
                return -ENOMEM;
        }
        a->event = sd_event_ref(e);
        a->fd = p->adopt ? p->fd : -1;
        a->adopted = p->adopt;
        a->reserve = p->reserve;
        a->reserve_fd = -1;
        a->handler = p->handler;
        a->userdata = p->userdata;
        a->error_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        a->label = strdup(p->label);
        if (!a->label || asprintf(&a->rest_description, "%s-rest", p->description) < 0) {
                a->rest_description = NULL;
                r = -ENOMEM;
                goto fail;
        }
        r = listen_address_copy(address, &a->address);
        if (r < 0)
                goto fail;
        if (a->adopted) {
                int flags = fcntl(a->fd, F_GETFL);
                if (flags < 0 || fcntl(a->fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
                    fcntl(a->fd, F_SETFD, FD_CLOEXEC) < 0) {
                        r = -errno;
                        goto fail;
                }
        } else {
                struct stat st;

                r = listen_socket_open(&a->address, p->mode, p->gid, SOMAXCONN);
                if (r < 0)
                        goto fail;
                a->fd = r;
                if (a->address.kind == LISTEN_UNIX && lstat(a->address.path, &st) == 0) {
                        a->dev = st.st_dev;
                        a->ino = st.st_ino;
                }
        }
        if (a->reserve) {
                acceptor_replenish(a);
                if (a->reserve_fd < 0) {
                        r = -errno;
                        goto fail;
                }
        }
        r = sd_event_add_time(e, &a->rest_timer, CLOCK_MONOTONIC, USEC_INFINITY, 100 * USEC_PER_MSEC, on_rest_over,
                              a);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(a->rest_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(a->rest_timer, a->rest_description);
        r = sd_event_add_io(e, &a->io, a->fd, EPOLLIN, on_listener, a);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(a->io, p->description);
        *ret = a;
        return 0;
fail:
        acceptor_free(a);
        return r;
}

Acceptor *acceptor_free(Acceptor *a) {
        if (!a)
                return NULL;
        a->io = sd_event_source_disable_unref(a->io);
        a->rest_timer = sd_event_source_disable_unref(a->rest_timer);
        if (a->fd >= 0) {
                if (!a->adopted)
                        listen_socket_unlink(&a->address, a->dev, a->ino);
                a->fd = safe_close(a->fd);
        }
        a->reserve_fd = safe_close(a->reserve_fd);
        listen_address_done(&a->address);
        sd_event_unref(a->event);
        free(a->label);
        free(a->rest_description);
        free(a);
        return NULL;
}

void acceptor_hold(Acceptor *a, bool hold) {
        if (a->held == hold)
                return;
        a->held = hold;
        acceptor_update(a);
}

const ListenAddress *acceptor_address(const Acceptor *a) {
        return &a->address;
}

bool acceptor_adopted(const Acceptor *a) {
        return a->adopted;
}

int acceptor_group_lookup(const char *name, gid_t *ret) {
        struct group *g = getgrnam(name);

        if (!g)
                return -ENOENT;
        *ret = g->gr_gid;
        return 0;
}
