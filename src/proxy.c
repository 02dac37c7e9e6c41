/* The front door. Each accepted client goes through: read the request head
 * (bounded by size and header_timeout), check it, route it, open the node's
 * channel (bounded by open_timeout), then answer exactly once: 200 and a
 * relay, or an error status and close. */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "address.h"
#include "buffer.h"
#include "daemon.h"
#include "http.h"
#include "list.h"
#include "listen.h"
#include "log.h"
#include "node.h"
#include "proxy.h"
#include "relay.h"
#include "router.h"

#define REPLY_FLUSH_USEC (5 * USEC_PER_SEC)
#define ACCEPT_RETRY_USEC (1 * USEC_PER_SEC)
/* Client bytes accepted after the head before the tunnel opens (a TLS
 * ClientHello fits); more waits in the kernel. */
#define EARLY_DATA_MAX (16 * 1024)

static const char reply_200[] = "HTTP/1.1 200 Connection Established\r\n\r\n";

typedef struct ProxyListener ProxyListener;
typedef struct ProxyClient ProxyClient;

typedef enum ClientState {
        CLIENT_READING,
        CLIENT_OPENING,
        CLIENT_REPLYING,
} ClientState;

struct ProxyListener {
        Proxy *proxy;
        ListenAddress address;
        int fd;
        sd_event_source *io;
};

struct ProxyClient {
        Proxy *proxy;
        LIST_FIELDS(ProxyClient, clients);
        ClientState state;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        char peer[64];       /* for logs */
        char orig_host[48];  /* originator for direct-tcpip */
        uint16_t orig_port;

        Buffer in;
        size_t head_len;
        Buffer out;

        SessionChannel *ch;
        char *node;
        char *target; /* "host:port" as written */
        usec_t accepted;
};

struct Proxy {
        Daemon *daemon;
        ProxyListener *listeners;
        size_t n_listeners;
        ProxyClient *clients;
        unsigned n_clients;    /* requests not yet answered */
        unsigned n_streams;    /* relays started here and still running */
        bool full;             /* at proxy.max_clients: listeners paused */
        sd_event_source *accept_retry;
        RateLimit reject_log;
        RateLimit accept_log;
};

static void proxy_set_listening(Proxy *p, bool on) {
        for (size_t i = 0; i < p->n_listeners; i++)
                (void) sd_event_source_set_enabled(p->listeners[i].io, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

/* proxy.max_clients bounds the front door's connections, waiting or
 * relaying: at the limit the listeners pause and the kernel backlog holds
 * new dials until one ends. */
static void proxy_check_capacity(Proxy *p) {
        unsigned max = daemon_config(p->daemon)->proxy.max_clients;
        unsigned used = p->n_clients + p->n_streams;

        if (!p->full && used >= max) {
                unsigned suppressed;
                p->full = true;
                proxy_set_listening(p, false);
                if (ratelimit_below(&p->accept_log, &suppressed))
                        log_warning("proxy.max_clients (%u) reached: new front-door connections wait in the "
                                    "listen backlog until one ends",
                                    max);
        } else if (p->full && used < max) {
                p->full = false;
                if (!p->accept_retry || sd_event_source_get_enabled(p->accept_retry, NULL) == 0)
                        proxy_set_listening(p, true);
        }
}

static void proxy_relay_done(void *userdata) {
        Proxy *p = daemon_proxy(userdata);

        /* the front door may have been closed (shutdown) while streams ran */
        if (!p)
                return;
        if (p->n_streams > 0)
                p->n_streams--;
        proxy_check_capacity(p);
}

static void client_free(ProxyClient *c) {
        Proxy *p = c->proxy;

        LIST_REMOVE(clients, p->clients, c);
        p->n_clients--;
        proxy_check_capacity(p);
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->fd = safe_close(c->fd);
        if (c->ch) {
                SessionChannel *ch = TAKE_PTR(c->ch);
                session_channel_abort(ch);
        }
        buffer_done(&c->in);
        buffer_done(&c->out);
        free(c->node);
        free(c->target);
        free(c);
}

static int on_client_timer(sd_event_source *es, uint64_t usec, void *userdata);

static int client_arm_timer(ProxyClient *c, usec_t after) {
        usec_t when = now_usec(CLOCK_MONOTONIC) + after;
        int r;

        if (c->timer) {
                r = sd_event_source_set_time(c->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(daemon_event(c->proxy->daemon), &c->timer, CLOCK_MONOTONIC, when,
                              10 * USEC_PER_MSEC, on_client_timer, c);
        if (r >= 0)
                (void) sd_event_source_set_description(c->timer, "proxy-client-timer");
        return r;
}

/* Answer with an error status, then close once it is written. */
static void client_reply_error(ProxyClient *c, int code, const char *fmt, ...) _printf_(3, 4);
static void client_reply_error(ProxyClient *c, int code, const char *fmt, ...) {
        Proxy *p = c->proxy;
        char body[512];
        _cleanup_free_ char *reply = NULL;
        size_t len;
        va_list ap;
        unsigned suppressed;

        va_start(ap, fmt);
        vsnprintf(body, sizeof(body) - 1, fmt, ap);
        va_end(ap);

        if (ratelimit_below(&p->reject_log, &suppressed)) {
                if (suppressed)
                        log_info("%u front-door replies not logged (rate limit)", suppressed);
                log_full(code >= 500 ? LOG_INFO : LOG_DEBUG, "%s: %s%s%d %s", c->peer, c->target ? c->target : "",
                         c->target ? ": " : "", code, body);
        }
        strcat(body, "\n");

        if (c->ch) {
                SessionChannel *ch = TAKE_PTR(c->ch);
                session_channel_abort(ch);
        }
        reply = http_response_format(code, NULL,
                                     code == 405 ? "Allow: CONNECT\r\nConnection: close\r\n"
                                                 : "Connection: close\r\n",
                                     "text/plain; charset=utf-8", body, strlen(body), &len);
        if (!reply || buffer_append(&c->out, reply, len) != (ssize_t) len) {
                client_free(c);
                return;
        }
        c->state = CLIENT_REPLYING;
        (void) shutdown(c->fd, SHUT_RD);
        (void) buffer_write_fd(&c->out, c->fd);
        if (buffer_empty(&c->out)) {
                client_free(c);
                return;
        }
        (void) sd_event_source_set_io_events(c->io, EPOLLOUT);
        if (client_arm_timer(c, REPLY_FLUSH_USEC) < 0)
                client_free(c);
}

static int on_client_io(sd_event_source *es, int fd, uint32_t revents, void *userdata);

static void on_open_done(SessionChannel *ch, int error, const char *reason, void *userdata) {
        ProxyClient *c = userdata;
        Proxy *p = c->proxy;
        Relay *relay;
        RelayParams rp;
        int r;

        if (error < 0) {
                c->ch = NULL; /* gone */
                if (error == -ECONNREFUSED)
                        client_reply_error(c, 502, "node %s could not open %s: %s", c->node, c->target,
                                           reason ? reason : "refused");
                else
                        client_reply_error(c, 503, "node %s: session lost before the channel opened (%s)",
                                           c->node, reason ? reason : "aborted");
                return;
        }

        rp = (RelayParams) {
                .node = c->node,
                .target = c->target,
                .client = c->peer,
                .head = reply_200,
                .head_len = sizeof(reply_200) - 1,
                .early = buffer_head(&c->in) + c->head_len,
                .early_len = buffer_len(&c->in) - c->head_len,
                .on_done = proxy_relay_done,
                .userdata = p->daemon,
        };
        c->io = sd_event_source_disable_unref(c->io);
        r = relay_new(p->daemon, c->fd, ch, &rp, &relay);
        if (r < 0) {
                /* still ours: fd and channel */
                if (sd_event_add_io(daemon_event(p->daemon), &c->io, c->fd, EPOLLOUT, on_client_io, c) < 0) {
                        client_free(c);
                        return;
                }
                client_reply_error(c, 503, "cannot start the stream: %s", strerror(-r));
                return;
        }
        /* the relay owns the socket and the channel now */
        c->fd = -1;
        c->ch = NULL;
        if (relay)
                p->n_streams++;
        client_free(c);
}

static void on_open_unexpected(SessionChannel *ch, void *userdata) {
}

static void on_open_failed(SessionChannel *ch, int error, const char *reason, void *userdata) {
}

static const ChannelCallbacks open_callbacks = {
        .opened = on_open_done,
        .readable = on_open_unexpected,
        .writable = on_open_unexpected,
        .failed = on_open_failed,
};

static void client_route(ProxyClient *c, const char *host, uint16_t port) {
        Proxy *p = c->proxy;
        Daemon *d = p->daemon;
        const Config *cfg = daemon_config(d);
        Node *node;
        int r;

        if (!router_allowed(daemon_router(d), host, port)) {
                client_reply_error(c, 403, "%s is not in proxy.allow", c->target);
                return;
        }
        node = router_lookup(daemon_router(d), host);
        if (!node) {
                if (cfg->proxy.fallback == FALLBACK_NONE) {
                        client_reply_error(c, 503, "no node owns %s and proxy.fallback is \"none\"", host);
                        return;
                }
                node = daemon_pick_any_node(d);
                if (!node) {
                        client_reply_error(c, 503, "no node owns %s and no node is ready for it", host);
                        return;
                }
        }
        c->node = strdup(node_name(node));
        if (!c->node) {
                client_free(c);
                return;
        }

        r = node_open_channel(node, host, port, c->orig_host, c->orig_port, &open_callbacks, c, &c->ch);
        if (r == -EBUSY) {
                client_reply_error(c, 503, "node %s: every session is at ssh.max_streams_per_session (%u)",
                                   c->node, cfg->ssh.max_streams_per_session);
                return;
        }
        if (r < 0) {
                NodeInfo info;
                node_get_info(node, &info);
                client_reply_error(c, 503, "node %s is %s%s%s", c->node, node_state_to_string(info.state),
                                   info.last_error ? ": " : "", info.last_error ? info.last_error : "");
                return;
        }
        c->state = CLIENT_OPENING;
        /* no more reading until the tunnel exists; HUP and ERR still wake us */
        (void) sd_event_source_set_io_events(c->io, 0);
        if (client_arm_timer(c, sec_to_usec(cfg->proxy.open_timeout)) < 0)
                client_reply_error(c, 503, "cannot arm the open timer");
}

/* The head is complete: check it and route it. */
static void client_handle_head(ProxyClient *c, HttpRequest *req) {
        _cleanup_free_ char *host = NULL;
        uint16_t port;
        const char *target = http_request_target(req);

        if (!streq(http_request_method(req), "CONNECT")) {
                client_reply_error(c, 405, "only CONNECT is served here");
                return;
        }
        c->target = strdup(target);
        if (!c->target) {
                client_free(c);
                return;
        }
        if (hostport_split(target, &host, &port) < 0) {
                client_reply_error(c, 400, "CONNECT target must be host:port or [v6]:port");
                return;
        }
        client_route(c, host, port);
}

static void client_read(ProxyClient *c) {
        const Config *cfg = daemon_config(c->proxy->daemon);
        HttpRequest *req = NULL;
        ssize_t n;
        int r;

        n = buffer_read_fd(&c->in, c->fd);
        if (n == -EAGAIN || n == -EINTR)
                return;
        if (n == -ENOBUFS) {
                client_reply_error(c, 431, "request head larger than %d bytes", HTTP_HEAD_MAX);
                return;
        }
        if (n <= 0) {
                /* gone before finishing its request: nobody to answer */
                client_free(c);
                return;
        }

        r = http_request_parse((const char *) buffer_head(&c->in), buffer_len(&c->in), HTTP_HEAD_MAX, &req);
        if (r == 0)
                return;
        if (r == -EMSGSIZE) {
                client_reply_error(c, 431, "request head larger than %d bytes or too many headers",
                                   HTTP_HEAD_MAX);
                return;
        }
        if (r == -EBADMSG) {
                client_reply_error(c, 400, "malformed request");
                return;
        }
        if (r < 0) {
                client_reply_error(c, 503, "cannot parse request: %s", strerror(-r));
                return;
        }
        c->head_len = (size_t) r;
        (void) cfg;
        client_handle_head(c, req);
        http_request_free(req);
}

static int on_client_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        ProxyClient *c = userdata;

        switch (c->state) {
        case CLIENT_READING:
                client_read(c);
                break;
        case CLIENT_OPENING:
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        /* the client hung up while its channel opens: the
                         * session finishes the open and closes it */
                        client_free(c);
                }
                break;
        case CLIENT_REPLYING: {
                ssize_t n = buffer_write_fd(&c->out, c->fd);
                if ((n < 0 && n != -EAGAIN) || buffer_empty(&c->out))
                        client_free(c);
                break;
        }
        }
        return 0;
}

static int on_client_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        ProxyClient *c = userdata;
        const Config *cfg = daemon_config(c->proxy->daemon);

        switch (c->state) {
        case CLIENT_READING:
                client_reply_error(c, 408, "no complete request head within proxy.header_timeout (%.1f s)",
                                   cfg->proxy.header_timeout);
                break;
        case CLIENT_OPENING:
                client_reply_error(c, 504, "node %s did not open %s within proxy.open_timeout (%.1f s)", c->node,
                                   c->target, cfg->proxy.open_timeout);
                break;
        case CLIENT_REPLYING:
                client_free(c);
                break;
        }
        return 0;
}

static void describe_peer(ProxyClient *c, const struct sockaddr_storage *sa, const ProxyListener *l) {
        char ip[INET6_ADDRSTRLEN] = "?";

        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
                c->orig_port = ntohs(in->sin_port);
                snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, c->orig_port);
                snprintf(c->orig_host, sizeof(c->orig_host), "%s", ip);
        } else if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                c->orig_port = ntohs(in6->sin6_port);
                snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, c->orig_port);
                snprintf(c->orig_host, sizeof(c->orig_host), "%s", ip);
        } else {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                        snprintf(c->peer, sizeof(c->peer), "unix:pid=%d,uid=%u", (int) cred.pid,
                                 (unsigned) cred.uid);
                else
                        snprintf(c->peer, sizeof(c->peer), "unix");
                /* what ssh -L says for local clients */
                snprintf(c->orig_host, sizeof(c->orig_host), "127.0.0.1");
                c->orig_port = 0;
        }
        (void) l;
}

static void proxy_pause_accepting(Proxy *p, bool pause);

static int on_accept_retry(sd_event_source *es, uint64_t usec, void *userdata) {
        proxy_pause_accepting(userdata, false);
        return 0;
}

static void proxy_pause_accepting(Proxy *p, bool pause) {
        proxy_set_listening(p, !pause && !p->full);
        if (!pause)
                return;
        /* out of descriptors: try again later instead of spinning on a
         * level-triggered listener we cannot drain */
        usec_t when = now_usec(CLOCK_MONOTONIC) + ACCEPT_RETRY_USEC;
        if (p->accept_retry) {
                (void) sd_event_source_set_time(p->accept_retry, when);
                (void) sd_event_source_set_enabled(p->accept_retry, SD_EVENT_ONESHOT);
        } else if (sd_event_add_time(daemon_event(p->daemon), &p->accept_retry, CLOCK_MONOTONIC, when,
                                     100 * USEC_PER_MSEC, on_accept_retry, p) >= 0)
                (void) sd_event_source_set_description(p->accept_retry, "proxy-accept-retry");
}

static int on_listener(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        ProxyListener *l = userdata;
        Proxy *p = l->proxy;
        const Config *cfg = daemon_config(p->daemon);

        /* a bounded batch per wakeup keeps other sources served */
        for (int i = 0; i < 64 && !p->full; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                ProxyClient *c;
                int cfd, r;

                cfd = accept4(fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                unsigned suppressed;
                                if (ratelimit_below(&p->accept_log, &suppressed))
                                        log_warning_errno(errno,
                                                          "Cannot accept front-door connections: %m; pausing "
                                                          "for 1 s (raise LimitNOFILE)");
                                proxy_pause_accepting(p, true);
                                return 0;
                        }
                        log_warning_errno(errno, "accept: %m");
                        return 0;
                }

                c = calloc(1, sizeof(*c));
                if (!c) {
                        safe_close(cfd);
                        return 0;
                }
                c->proxy = p;
                c->fd = cfd;
                c->accepted = now_usec(CLOCK_MONOTONIC);
                buffer_init(&c->in, HTTP_HEAD_MAX + EARLY_DATA_MAX);
                buffer_init(&c->out, 4096);
                LIST_PREPEND(clients, p->clients, c);
                p->n_clients++;
                describe_peer(c, &sa, l);
                proxy_check_capacity(p);

                if (l->address.kind == LISTEN_TCP) {
                        int one = 1;
                        (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                }
                r = sd_event_add_io(daemon_event(p->daemon), &c->io, cfd, EPOLLIN, on_client_io, c);
                if (r >= 0)
                        r = client_arm_timer(c, sec_to_usec(cfg->proxy.header_timeout));
                if (r < 0) {
                        client_free(c);
                        continue;
                }
                (void) sd_event_source_set_description(c->io, "proxy-client");
        }
        return 0;
}

int proxy_new(Daemon *d, Proxy **ret) {
        const ConfigProxy *cfg = &daemon_config(d)->proxy;
        gid_t gid = (gid_t) -1;
        Proxy *p;
        int r;

        if (cfg->socket_group) {
                struct group *g = getgrnam(cfg->socket_group);
                if (!g)
                        return log_error_errno(ENOENT, "proxy.socket_group: no group \"%s\"", cfg->socket_group);
                gid = g->gr_gid;
        }

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->daemon = d;
        p->reject_log = (RateLimit) { .interval = 10 * USEC_PER_SEC, .burst = 50 };
        p->accept_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        p->listeners = calloc(cfg->n_listen, sizeof(ProxyListener));
        if (!p->listeners && cfg->n_listen) {
                free(p);
                return -ENOMEM;
        }

        for (size_t i = 0; i < cfg->n_listen; i++) {
                ProxyListener *l = &p->listeners[i];
                _cleanup_free_ char *name = listen_address_to_string(&cfg->listen[i]);

                l->proxy = p;
                l->fd = -1;
                p->n_listeners++;
                r = listen_address_copy(&cfg->listen[i], &l->address);
                if (r < 0)
                        goto fail;
                r = listen_socket_open(&l->address, cfg->socket_mode, gid, SOMAXCONN);
                if (r < 0) {
                        log_error_errno(r, "Cannot listen on %s: %m", strna(name));
                        goto fail;
                }
                l->fd = r;
                r = sd_event_add_io(daemon_event(d), &l->io, l->fd, EPOLLIN, on_listener, l);
                if (r < 0)
                        goto fail;
                (void) sd_event_source_set_description(l->io, "proxy-listener");
                log_info("Front door listening on %s", strna(name));
        }
        *ret = p;
        return 0;
fail:
        proxy_free(p);
        return r;
}

Proxy *proxy_free(Proxy *p) {
        if (!p)
                return NULL;
        while (p->clients)
                client_free(p->clients);
        for (size_t i = 0; i < p->n_listeners; i++) {
                ProxyListener *l = &p->listeners[i];
                l->io = sd_event_source_disable_unref(l->io);
                if (l->fd >= 0) {
                        listen_socket_unlink(&l->address);
                        l->fd = safe_close(l->fd);
                }
                listen_address_done(&l->address);
        }
        p->accept_retry = sd_event_source_disable_unref(p->accept_retry);
        free(p->listeners);
        free(p);
        return NULL;
}

unsigned proxy_pending(const Proxy *p) {
        return p->n_clients;
}
