/* The front door's listeners: unix and tcp, adopted from the service
 * manager or bound, paused at proxy.max_clients, changed by a reload. Each
 * accepted connection becomes a request (request.c). */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "acceptor.h"
#include "address.h"
#include "daemon.h"
#include "listen.h"
#include "log.h"
#include "proxy-internal.h"

static void proxy_set_listening(Proxy *p, bool on) {
        on = on && !p->held;
        for (size_t i = 0; i < p->n_listeners; i++)
                acceptor_hold(p->listeners[i], !on);
}

/* proxy.max_clients bounds the front door's connections, waiting or
 * relaying: at the limit the listeners pause and the kernel backlog holds
 * new dials until one ends. */
void proxy_check_capacity(Proxy *p) {
        unsigned max = daemon_config(p->daemon)->proxy.max_clients;
        unsigned used = p->n_requests + p->n_streams;

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
                proxy_set_listening(p, true);
        }
}

void proxy_relay_done(Proxy *p) {
        if (p->n_streams > 0)
                p->n_streams--;
        proxy_check_capacity(p);
}

static void on_accept(Acceptor *a, int fd, const AcceptorPeer *peer, void *userdata) {
        request_new(userdata, fd, peer);
}

/* One front-door listener: adopted when the service manager passed it. */
static int proxy_add_listener(Proxy *p, const ListenAddress *address, int fd, gid_t gid) {
        const ConfigProxy *cfg = &daemon_config(p->daemon)->proxy;
        _cleanup_free_ char *name = listen_address_to_string(address);
        Acceptor **l;
        int r;

        l = realloc(p->listeners, (p->n_listeners + 1) * sizeof(Acceptor *));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        p->listeners = l;
        r = acceptor_new(daemon_event(p->daemon), address,
                         &(AcceptorParams) {
                                 .mode = cfg->socket_mode,
                                 .gid = gid,
                                 .label = "front door",
                                 .description = "proxy-listener",
                                 .handler = on_accept,
                                 .userdata = p,
                                 .adopt = fd >= 0,
                                 .fd = fd,
                         },
                         &p->listeners[p->n_listeners]);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on %s: %m", strna(name));
        p->n_listeners++;
        log_info("Front door listening on %s%s", strna(name), fd >= 0 ? " (socket activation)" : "");
        return 0;
}

int proxy_new(Daemon *d, ListenFds *activated, Proxy **ret) {
        const ConfigProxy *cfg = &daemon_config(d)->proxy;
        gid_t gid = (gid_t) -1;
        Proxy *p;
        int r;

        if (cfg->socket_group) {
                r = acceptor_group_lookup(cfg->socket_group, &gid);
                if (r < 0)
                        return log_error_errno(r, "proxy.socket_group: no group \"%s\"", cfg->socket_group);
        }

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->daemon = d;
        p->reject_log = (RateLimit) { .interval = 10 * USEC_PER_SEC, .burst = 50 };
        p->accept_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        for (size_t i = 0; i < cfg->n_listen; i++) {
                r = proxy_add_listener(p, &cfg->listen[i], listen_fds_take(activated, &cfg->listen[i]), gid);
                if (r < 0)
                        goto fail;
        }
        for (;;) {
                ListenAddress extra;
                int fd = listen_fds_take_named(activated, "proxy", &extra);
                if (fd < 0)
                        break;
                r = proxy_add_listener(p, &extra, fd, gid);
                listen_address_done(&extra);
                if (r < 0)
                        goto fail;
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
        while (p->requests)
                request_free(p->requests);
        for (size_t i = 0; i < p->n_listeners; i++)
                acceptor_free(p->listeners[i]);
        free(p->listeners);
        free(p);
        return NULL;
}

int proxy_reload(Proxy *p, const ConfigProxy *old) {
        const ConfigProxy *cfg = &daemon_config(p->daemon)->proxy;
        gid_t gid = (gid_t) -1;
        size_t n_old = p->n_listeners;
        Acceptor **keep;
        size_t n_keep = 0;
        int r = 0;

        if (cfg->socket_group && acceptor_group_lookup(cfg->socket_group, &gid) < 0)
                return log_error_errno(ENOENT, "proxy.socket_group: no group \"%s\"", cfg->socket_group);

        /* the new listeners come up before any old one goes */
        for (size_t i = 0; i < cfg->n_listen; i++) {
                bool have = false;
                for (size_t j = 0; j < n_old && !have; j++)
                        have = listen_address_equal(acceptor_address(p->listeners[j]), &cfg->listen[i]);
                if (have)
                        continue;
                r = proxy_add_listener(p, &cfg->listen[i], -1, gid);
                if (r < 0)
                        goto rollback;
        }

        /* then the ones the file no longer names close; adopted sockets stay
         * (the service manager owns them), and kept unix sockets take the
         * new mode and group */
        keep = calloc(MAX(p->n_listeners, (size_t) 1), sizeof(Acceptor *));
        if (!keep)
                return -ENOMEM;
        for (size_t j = 0; j < p->n_listeners; j++) {
                Acceptor *a = p->listeners[j];
                const ListenAddress *la = acceptor_address(a);
                bool wanted = acceptor_adopted(a);

                for (size_t i = 0; i < cfg->n_listen && !wanted; i++)
                        wanted = listen_address_equal(la, &cfg->listen[i]);
                if (!wanted) {
                        _cleanup_free_ char *name = listen_address_to_string(la);
                        log_info("Front door no longer listening on %s", strna(name));
                        acceptor_free(a);
                        continue;
                }
                if (la->kind == LISTEN_UNIX && !acceptor_adopted(a) && j < n_old &&
                    (cfg->socket_mode != old->socket_mode || !streq_ptr(cfg->socket_group, old->socket_group))) {
                        if (gid != (gid_t) -1 && chown(la->path, (uid_t) -1, gid) < 0)
                                log_warning_errno(errno, "Cannot give %s to group %s: %m", la->path,
                                                  cfg->socket_group);
                        if (chmod(la->path, cfg->socket_mode) < 0)
                                log_warning_errno(errno, "Cannot chmod %s: %m", la->path);
                }
                keep[n_keep++] = a;
        }
        free(p->listeners);
        p->listeners = keep;
        p->n_listeners = n_keep;
        proxy_check_capacity(p);
        return 0;

rollback:
        /* a new address cannot be bound: nothing changes */
        while (p->n_listeners > n_old)
                acceptor_free(p->listeners[--p->n_listeners]);
        return r;
}

unsigned proxy_connections(const Proxy *p) {
        return p->n_requests + p->n_streams;
}

void proxy_hold(Proxy *p, bool hold) {
        p->held = hold;
        proxy_set_listening(p, !p->full);
}

bool proxy_listener_adopted(const Proxy *p, const ListenAddress *a) {
        for (size_t i = 0; i < p->n_listeners; i++)
                if (listen_address_equal(acceptor_address(p->listeners[i]), a))
                        return acceptor_adopted(p->listeners[i]);
        return false;
}
