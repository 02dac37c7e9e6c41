/* Static forwards: a listener per `forwards` entry; each connection opens a
 * channel on the entry's node (bounded by proxy.open_timeout) and becomes a
 * relay, or is closed: a raw TCP stream has no way to say why. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "acceptor.h"
#include "address.h"
#include "channel.h"
#include "daemon.h"
#include "forward.h"
#include "list.h"
#include "log.h"
#include "node.h"
#include "relay.h"

/* Channel opens in flight per forward. Past it the listener pauses and new
 * connections wait in the kernel's backlog, as at the front door. */
#define FORWARD_PENDING_MAX 1024U

typedef struct Forward Forward;
typedef struct ForwardClient ForwardClient;

/* A connection whose channel is opening. */
struct ForwardClient {
        Forward *forward;
        LIST_FIELDS(ForwardClient, clients);
        int fd;
        sd_event_source *io;    /* no events asked: HUP and ERR only */
        sd_event_source *timer; /* proxy.open_timeout */
        Channel *ch;
        AcceptorPeer peer;
};

struct Forward {
        Forwards *owner;
        char *name;   /* "forwards[0] (tcp:127.0.0.1:10001)", for logs */
        char *node;   /* node name, looked up per connection */
        char *host;   /* target as the node resolves it */
        uint16_t port;
        char *target; /* "host:port", for logs */
        Acceptor *acceptor;
        ForwardClient *clients;
        unsigned n_clients;
        bool full;
        RateLimit fail_log;
        RateLimit full_log;
};

struct Forwards {
        Daemon *daemon;
        Forward **forwards; /* each apart: clients and the acceptor point at them */
        size_t n_forwards;
};

static void forward_check_capacity(Forward *f) {
        if (!f->full && f->n_clients >= FORWARD_PENDING_MAX) {
                unsigned suppressed;
                f->full = true;
                acceptor_hold(f->acceptor, true);
                if (ratelimit_below(&f->full_log, &suppressed))
                        log_warning("%s: %u connections wait for node %s to open a channel; new ones wait in "
                                    "the listen backlog",
                                    f->name, FORWARD_PENDING_MAX, f->node);
        } else if (f->full && f->n_clients < FORWARD_PENDING_MAX) {
                f->full = false;
                acceptor_hold(f->acceptor, false);
        }
}

static void client_free(ForwardClient *c) {
        Forward *f = c->forward;

        LIST_REMOVE(clients, f->clients, c);
        f->n_clients--;
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->fd = safe_close(c->fd);
        if (c->ch) {
                Channel *ch = TAKE_PTR(c->ch);
                channel_abort(ch);
        }
        free(c);
        forward_check_capacity(f);
}

/* The connection cannot be served: say why in the log (the client only
 * sees the close) and drop it. */
static void client_fail(ForwardClient *c, const char *fmt, ...) _printf_(2, 3);
static void client_fail(ForwardClient *c, const char *fmt, ...) {
        Forward *f = c->forward;
        unsigned suppressed;

        if (ratelimit_below(&f->fail_log, &suppressed)) {
                char why[256];
                va_list ap;

                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                if (suppressed)
                        log_node(LOG_INFO, f->node, "%s: %u failed connections not logged (rate limit)", f->name,
                                 suppressed);
                log_node(LOG_INFO, f->node, "%s: %s -> %s: %s; connection closed", f->name, c->peer.text,
                         f->target, why);
        }
        client_free(c);
}

static void on_open_done(Channel *ch, int error, const char *reason, void *userdata) {
        ForwardClient *c = userdata;
        Forward *f = c->forward;
        Daemon *d = f->owner->daemon;
        Relay *relay;
        RelayParams rp;
        int r;

        if (error < 0) {
                c->ch = NULL; /* gone */
                if (error == -ECONNREFUSED)
                        client_fail(c, "the node could not open the target: %s", strna(reason));
                else
                        client_fail(c, "session lost before the channel opened: %s", strna(reason));
                return;
        }

        rp = (RelayParams) {
                .node = f->node,
                .target = f->target,
                .client = c->peer.text,
                /* no dialer waits for a reply here: a target that talks
                 * first (a banner) is heard at once, as with ssh -L */
                .node_may_speak_first = true,
        };
        /* one io source per fd: the relay adds its own */
        c->io = sd_event_source_disable_unref(c->io);
        r = relay_new(daemon_relay_env(d), c->fd, relay_channel_far_end(ch), &rp, &relay);
        if (r < 0) {
                /* fd and channel are still ours: client_fail() drops both */
                client_fail(c, "cannot start the stream: %s", strerror(-r));
                return;
        }
        c->fd = -1;
        c->ch = NULL;
        client_free(c);
}

static const ChannelCallbacks open_callbacks = {
        .opened = on_open_done,
};

static int on_client_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        ForwardClient *c = userdata;

        /* Gone both ways (a unix peer closed, a TCP reset): nobody is left
         * to relay for. A TCP FIN alone may be a half-close after a request
         * and is not reported here; the relay carries it once the channel
         * opens, as ssh -L does. */
        if (revents & (EPOLLHUP | EPOLLERR)) {
                log_node(LOG_DEBUG, c->forward->node, "%s: %s left before the channel opened",
                         c->forward->name, c->peer.text);
                client_free(c);
        }
        return 0;
}

static int on_client_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        ForwardClient *c = userdata;
        const Config *cfg = daemon_config(c->forward->owner->daemon);

        client_fail(c, "channel not open within proxy.open_timeout (%.1f s)", cfg->proxy.open_timeout);
        return 0;
}

static void on_accept(Acceptor *a, int fd, const AcceptorPeer *peer, void *userdata) {
        Forward *f = userdata;
        Daemon *d = f->owner->daemon;
        const Config *cfg = daemon_config(d);
        ForwardClient *c;
        Node *node;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return;
        }
        c->forward = f;
        c->fd = fd;
        c->peer = *peer;
        LIST_PREPEND(clients, f->clients, c);
        f->n_clients++;
        forward_check_capacity(f);

        /* the node is fixed: no router, no allowlist, no fallback */
        node = daemon_find_node(d, f->node);
        if (!node) {
                client_fail(c, "no node named \"%s\"", f->node);
                return;
        }
        r = node_open_channel(node, f->host, f->port, c->peer.orig_host, c->peer.orig_port, &open_callbacks, c,
                              &c->ch);
        if (r == -EBUSY) {
                client_fail(c, "every session of the node is at ssh.max_streams_per_session (%u)",
                            cfg->ssh.max_streams_per_session);
                return;
        }
        if (r < 0) {
                NodeInfo info;
                node_get_info(node, &info);
                client_fail(c, "node not ready: %s%s%s", node_state_to_string(info.state),
                            info.last_error ? ": " : "", info.last_error ? info.last_error : "");
                return;
        }

        r = sd_event_add_io(daemon_event(d), &c->io, c->fd, 0, on_client_io, c);
        if (r < 0) {
                client_fail(c, "cannot watch the connection: %s", strerror(-r));
                return;
        }
        (void) sd_event_source_set_description(c->io, "forward-client");
        r = sd_event_add_time_relative(daemon_event(d), &c->timer, CLOCK_MONOTONIC,
                                       sec_to_usec(cfg->proxy.open_timeout), 10 * USEC_PER_MSEC, on_client_timer,
                                       c);
        if (r < 0) {
                client_fail(c, "cannot arm the open timer: %s", strerror(-r));
                return;
        }
        (void) sd_event_source_set_description(c->timer, "forward-open-timer");
}

static int forward_init(Forwards *fs, Forward *f, size_t i, const ConfigForward *cf, gid_t gid) {
        const ConfigProxy *proxy = &daemon_config(fs->daemon)->proxy;
        _cleanup_free_ char *listen = NULL;
        int r;

        f->owner = fs;
        f->fail_log = (RateLimit) { .interval = 10 * USEC_PER_SEC, .burst = 20 };
        f->full_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        listen = listen_address_to_string(&cf->listen);
        f->node = strdup(cf->node);
        f->host = strdup(cf->target_host);
        f->port = cf->target_port;
        f->target = hostport_join(cf->target_host, cf->target_port);
        if (!listen || !f->node || !f->host || !f->target ||
            asprintf(&f->name, "forwards[%zu] (%s)", i, listen) < 0) {
                f->name = NULL;
                return log_error_errno(ENOMEM, "forwards[%zu]: out of memory", i);
        }

        r = acceptor_new(daemon_event(fs->daemon), &cf->listen,
                         &(AcceptorParams) {
                                 .mode = proxy->socket_mode,
                                 .gid = gid,
                                 .label = f->name,
                                 .description = "forward-listener",
                                 .handler = on_accept,
                                 .userdata = f,
                         },
                         &f->acceptor);
        if (r < 0)
                return log_error_errno(r, "forwards[%zu]: cannot listen on %s (line %d): %m", i, listen,
                                       cf->line);
        log_info("%s: forwarding to %s through node %s", f->name, f->target, f->node);
        return 0;
}

static void forward_free(Forward *f) {
        if (!f)
                return;
        while (f->clients)
                client_free(f->clients);
        f->acceptor = acceptor_free(f->acceptor);
        free(f->name);
        free(f->node);
        free(f->host);
        free(f->target);
        free(f);
}

static int forward_new(Forwards *fs, size_t i, const ConfigForward *cf, gid_t gid, Forward **ret) {
        Forward *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return log_error_errno(ENOMEM, "forwards[%zu]: out of memory", i);
        r = forward_init(fs, f, i, cf, gid);
        if (r < 0) {
                forward_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

/* Point a kept listener at its entry's (possibly new) node and target. */
static int forward_retarget(Forward *f, size_t i, const ConfigForward *cf) {
        _cleanup_free_ char *listen = listen_address_to_string(&cf->listen);
        char *node = strdup(cf->node), *host = strdup(cf->target_host);
        char *target = hostport_join(cf->target_host, cf->target_port), *name = NULL;

        if (!listen || !node || !host || !target || asprintf(&name, "forwards[%zu] (%s)", i, listen) < 0) {
                free(node);
                free(host);
                free(target);
                return -ENOMEM;
        }
        if (!streq(f->node, node) || !streq(f->target, target))
                log_info("%s: now forwarding to %s through node %s", name, target, node);
        free(f->node);
        free(f->host);
        free(f->target);
        free(f->name);
        f->node = node;
        f->host = host;
        f->target = target;
        f->name = name;
        f->port = cf->target_port;
        return 0;
}

static int forwards_gid(const Config *cfg, gid_t *ret) {
        *ret = (gid_t) -1;
        /* same socket policy as the front door: one group to manage */
        if (cfg->n_forwards > 0 && cfg->proxy.socket_group) {
                int r = acceptor_group_lookup(cfg->proxy.socket_group, ret);
                if (r < 0)
                        return log_error_errno(r, "proxy.socket_group: no group \"%s\"", cfg->proxy.socket_group);
        }
        return 0;
}

int forwards_reload(Forwards *fs) {
        const Config *cfg = daemon_config(fs->daemon);
        _cleanup_free_ bool *kept = NULL, *reused = NULL;
        Forward **next;
        gid_t gid;
        int r;

        r = forwards_gid(cfg, &gid);
        if (r < 0)
                return r;
        next = calloc(MAX(cfg->n_forwards, (size_t) 1), sizeof(Forward *));
        kept = calloc(MAX(fs->n_forwards, (size_t) 1), sizeof(bool));
        reused = calloc(MAX(cfg->n_forwards, (size_t) 1), sizeof(bool));
        if (!next || !kept || !reused) {
                free(next);
                return log_error_errno(ENOMEM, "forwards: out of memory");
        }

        /* a listen address that stays keeps its socket, its waiting
         * connections and its streams; new addresses are bound first */
        for (size_t i = 0; i < cfg->n_forwards; i++) {
                const ConfigForward *cf = &cfg->forwards[i];
                for (size_t j = 0; j < fs->n_forwards && !next[i]; j++)
                        if (!kept[j] && listen_address_equal(acceptor_address(fs->forwards[j]->acceptor), &cf->listen)) {
                                kept[j] = reused[i] = true;
                                next[i] = fs->forwards[j];
                        }
                if (next[i])
                        continue;
                r = forward_new(fs, i, cf, gid, &next[i]);
                if (r < 0)
                        goto rollback;
        }
        for (size_t i = 0; i < cfg->n_forwards; i++) {
                if (reused[i]) {
                        r = forward_retarget(next[i], i, &cfg->forwards[i]);
                        if (r < 0)
                                log_warning_errno(r, "forwards[%zu]: cannot update: %m", i);
                }
        }
        for (size_t j = 0; j < fs->n_forwards; j++)
                if (!kept[j]) {
                        log_info("%s: removed", fs->forwards[j]->name);
                        forward_free(fs->forwards[j]);
                }
        free(fs->forwards);
        fs->forwards = next;
        fs->n_forwards = cfg->n_forwards;
        return 0;

rollback:
        for (size_t i = 0; i < cfg->n_forwards; i++)
                if (!reused[i])
                        forward_free(next[i]);
        free(next);
        return r;
}

int forwards_new(Daemon *d, Forwards **ret) {
        const Config *cfg = daemon_config(d);
        gid_t gid;
        Forwards *fs;
        int r;

        r = forwards_gid(cfg, &gid);
        if (r < 0)
                return r;

        fs = calloc(1, sizeof(*fs));
        if (!fs)
                return log_error_errno(ENOMEM, "forwards: out of memory");
        fs->daemon = d;
        fs->forwards = calloc(MAX(cfg->n_forwards, (size_t) 1), sizeof(Forward *));
        if (!fs->forwards) {
                free(fs);
                return log_error_errno(ENOMEM, "forwards: out of memory");
        }
        for (size_t i = 0; i < cfg->n_forwards; i++) {
                r = forward_new(fs, i, &cfg->forwards[i], gid, &fs->forwards[i]);
                if (r < 0) {
                        forwards_free(fs);
                        return r;
                }
                fs->n_forwards++;
        }
        *ret = fs;
        return 0;
}

Forwards *forwards_free(Forwards *fs) {
        if (!fs)
                return NULL;
        for (size_t i = 0; i < fs->n_forwards; i++)
                forward_free(fs->forwards[i]);
        free(fs->forwards);
        free(fs);
        return NULL;
}
