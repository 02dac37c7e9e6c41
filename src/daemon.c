/* The daemon object: owner of the loop, the configuration, the nodes, the
 * router, the front door and the admin socket; start, signals, shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "admin.h"
#include "daemon-internal.h"
#include "forward.h"
#include "iopoll.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "migration.h"
#include "node.h"
#include "proxy.h"
#include "router.h"
#include "upstream.h"

/* xorshift128+: jitter and fallback picks, not secrets */
static uint64_t rng_next(Daemon *d) {
        uint64_t s1 = d->rng[0];
        const uint64_t s0 = d->rng[1];
        d->rng[0] = s0;
        s1 ^= s1 << 23;
        d->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        return d->rng[1] + s0;
}

uint64_t daemon_random(Daemon *d, uint64_t n) {
        if (n <= 1)
                return 0;
        /* rejection sampling keeps it uniform */
        uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t v;
        do
                v = rng_next(d);
        while (v >= limit);
        return v % n;
}

int daemon_new(Config *config, Identity *identity, Daemon **ret) {
        Daemon *d;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->config = config;
        d->identity = identity;
        d->nodes_watch_fd = -1;
        d->handshake_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        if (getrandom(d->rng, sizeof(d->rng), 0) != sizeof(d->rng)) {
                d->rng[0] = (uint64_t) now_usec(CLOCK_REALTIME);
                d->rng[1] = (uint64_t) getpid() * 0x9E3779B97F4A7C15ULL;
        }
        if (!d->rng[0] && !d->rng[1])
                d->rng[1] = 1;

        r = sd_event_new(&d->event);
        if (r < 0)
                goto fail;
        r = iopoll_new(d->event, &d->iopoll);
        if (r < 0)
                goto fail;
        r = metrics_new(&d->metrics);
        if (r < 0)
                goto fail;
        r = router_new(config->proxy.allow, config->proxy.n_allow, &d->router);
        if (r < 0)
                goto fail;
        r = known_hosts_load(config->ssh.known_hosts, &d->known_hosts);
        if (r < 0) {
                log_error_errno(r, "Cannot read %s: %m", config->ssh.known_hosts);
                goto fail;
        }
        if (known_hosts_bad_lines(d->known_hosts) > 0)
                log_warning("%s: %zu lines could not be parsed and are ignored", config->ssh.known_hosts,
                            known_hosts_bad_lines(d->known_hosts));

        d->nodes = calloc(MAX(config->n_nodes, (size_t) 1), sizeof(Node *));
        if (!d->nodes) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < config->n_nodes; i++) {
                const ConfigNode *cn = &config->nodes[i];
                r = node_new(d, cn, &d->nodes[i]);
                if (r < 0)
                        goto fail;
                d->n_nodes++;
                r = router_add_node(d->router, cn->name, cn->address, cn->hostnames,
                                    cn->has_pod_cidr ? &cn->pod_cidr : NULL, d->nodes[i]);
                if (r < 0)
                        goto fail;
        }
        *ret = d;
        return 0;
fail:
        /* the caller keeps config and identity on failure */
        d->config = NULL;
        d->identity = NULL;
        daemon_free(d);
        return r;
}

Daemon *daemon_free(Daemon *d) {
        if (!d)
                return NULL;
        d->proxy = proxy_free(d->proxy);
        d->forwards = forwards_free(d->forwards);
        d->metrics_listener = admin_free(d->metrics_listener);
        d->admin = admin_free(d->admin);
        d->migration = migration_free(d->migration);
        daemon_unwatch_nodes_file(d);
        daemon_free_retiring(d);
        for (size_t i = 0; i < d->n_nodes; i++)
                node_free(d->nodes[i]);
        free(d->nodes);
        /* after the proxy: streams through it end with it */
        d->upstream = upstream_free(d->upstream);
        free(d->waiters);
        router_free(d->router);
        known_hosts_free(d->known_hosts);
        d->sig_term = sd_event_source_disable_unref(d->sig_term);
        d->sig_int = sd_event_source_disable_unref(d->sig_int);
        d->sig_hup = sd_event_source_disable_unref(d->sig_hup);
        d->status_timer = sd_event_source_disable_unref(d->status_timer);
        d->startup_timer = sd_event_source_disable_unref(d->startup_timer);
        d->drain_timer = sd_event_source_disable_unref(d->drain_timer);
        d->iopoll = iopoll_free(d->iopoll);
        sd_event_unref(d->event);
        metrics_free(d->metrics);
        config_free(d->config);
        identity_free(d->identity);
        free(d);
        return NULL;
}

static int on_drain_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        unsigned streams = daemon_streams(d);

        if (streams == 0) {
                log_info("All streams finished");
                sd_event_exit(d->event, 0);
                return 0;
        }
        if (usec >= d->drain_deadline) {
                log_notice("drain_timeout (%.1f s) reached: closing %u streams", d->config->drain_timeout, streams);
                sd_event_exit(d->event, 0);
                return 0;
        }
        (void) sd_event_source_set_time(s, usec + 100 * USEC_PER_MSEC);
        return 0;
}

/* SIGTERM: stop accepting, let the streams that run finish (up to
 * drain_timeout), then the loop ends and the sessions disconnect. A second
 * signal ends it at once. */
static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;
        unsigned streams;
        int r;

        if (d->stopping) {
                log_notice("Received %s again, stopping now", strsignal((int) si->ssi_signo));
                sd_event_exit(d->event, 0);
                return 0;
        }
        d->stopping = true;
        log_info("Received %s, stopping", strsignal((int) si->ssi_signo));
        (void) sd_notify(0, "STOPPING=1");

        d->startup_timer = sd_event_source_disable_unref(d->startup_timer);
        d->proxy = proxy_free(d->proxy);
        d->forwards = forwards_free(d->forwards);

        streams = daemon_streams(d);
        if (streams == 0) {
                sd_event_exit(d->event, 0);
                return 0;
        }
        log_info("Waiting up to %.1f s (drain_timeout) for %u streams to finish", d->config->drain_timeout,
                 streams);
        d->drain_deadline = now_usec(CLOCK_MONOTONIC) + sec_to_usec(d->config->drain_timeout);
        r = sd_event_add_time_relative(d->event, &d->drain_timer, CLOCK_MONOTONIC, 100 * USEC_PER_MSEC,
                                       10 * USEC_PER_MSEC, on_drain_timer, d);
        if (r < 0) {
                sd_event_exit(d->event, 0);
                return 0;
        }
        (void) sd_event_source_set_enabled(d->drain_timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(d->drain_timer, "shutdown-drain");
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;

        if (!d->stopping)
                (void) daemon_reload(d, false, NULL);
        return 0;
}

void daemon_set_log_override(Daemon *d, bool on) {
        d->log_override = on;
}

void daemon_notify_status(Daemon *d) {
        size_t up = 0;
        for (size_t i = 0; i < d->n_nodes; i++)
                if (node_state(d->nodes[i]) == NODE_UP || node_state(d->nodes[i]) == NODE_DEGRADED)
                        up++;
        (void) sd_notifyf(0, "STATUS=%zu/%zu nodes up, %u streams", up, d->n_nodes, daemon_streams(d));
}

/* The front door opens once every node has had its first try (or the grace
 * is over): dials that arrive at start - queued in the backlog across a
 * restart under socket activation - then find their nodes up instead of
 * getting 503. READY=1 goes out at the same moment. */
static void daemon_open_front_door(Daemon *d) {
        size_t up = 0;

        d->startup_timer = sd_event_source_disable_unref(d->startup_timer);
        if (d->proxy)
                proxy_hold(d->proxy, false);
        for (size_t i = 0; i < d->n_nodes; i++)
                if (node_is_ready(d->nodes[i]))
                        up++;
        log_info("Front door open: %zu/%zu nodes up", up, d->n_nodes);
        (void) sd_notify(0, "READY=1");
        daemon_notify_status(d);
}

static int on_startup_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        bool all = true;

        for (size_t i = 0; i < d->n_nodes && all; i++)
                all = node_settled(d->nodes[i]);
        if (all || usec >= d->startup_deadline) {
                daemon_open_front_door(d);
                return 0;
        }
        (void) sd_event_source_set_time(s, usec + 50 * USEC_PER_MSEC);
        return 0;
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        daemon_notify_status(d);
        (void) sd_event_source_set_time(s, usec + 5 * USEC_PER_SEC);
        return 0;
}

int daemon_start(Daemon *d) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_add_signal(d->event, &d->sig_term, SIGTERM, on_sigterm, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, &d->sig_int, SIGINT, on_sigterm, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, &d->sig_hup, SIGHUP, on_sighup, d);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals: %m");

        /* pings WATCHDOG=1 from the loop itself when WATCHDOG_USEC is set: a
         * wedged loop stops the pings and systemd restarts us */
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot set up the watchdog: %m");

        r = admin_new(d, d->config->admin.socket, &d->admin);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on admin socket %s: %m", d->config->admin.socket);
        if (d->config->admin.has_metrics_listen) {
                _cleanup_free_ char *where = listen_address_to_string(&d->config->admin.metrics_listen);
                r = admin_new_metrics(d, &d->config->admin.metrics_listen, &d->metrics_listener);
                if (r < 0)
                        return log_error_errno(r, "Cannot listen on admin.metrics_listen %s: %m", strna(where));
        }
        ListenFds *activated = NULL;
        size_t unused;
        r = listen_fds_new(&activated);
        if (r < 0)
                log_warning_errno(r, "Cannot read the sockets passed by the service manager: %m");
        r = proxy_new(d, activated, &d->proxy);
        activated = listen_fds_free(activated, &unused);
        if (unused > 0)
                log_warning("%zu socket(s) passed by the service manager match no proxy.listen address "
                            "and are not named \"proxy\": closed", unused);
        if (r < 0)
                return r;
        r = forwards_new(d, &d->forwards);
        if (r < 0)
                return r;

        r = daemon_setup_konnectivity(d);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_nodes; i++)
                node_start(d->nodes[i]);
        (void) daemon_watch_nodes_file(d);

        r = sd_event_add_time_relative(d->event, &d->status_timer, CLOCK_MONOTONIC, 5 * USEC_PER_SEC,
                                       USEC_PER_SEC, on_status_timer, d);
        if (r >= 0) {
                (void) sd_event_source_set_enabled(d->status_timer, SD_EVENT_ON);
                (void) sd_event_source_set_description(d->status_timer, "status");
        }

        log_info("sshtund %s started: %zu nodes, %zu forwards", PACKAGE_VERSION, d->n_nodes,
                 d->config->n_forwards);

        /* hold the front door for the nodes' first connection attempt */
        usec_t grace = MIN(sec_to_usec(d->config->ssh.connect_timeout) + USEC_PER_SEC, 30 * USEC_PER_SEC);
        d->startup_deadline = now_usec(CLOCK_MONOTONIC) + grace;
        proxy_hold(d->proxy, true);
        r = sd_event_add_time_relative(d->event, &d->startup_timer, CLOCK_MONOTONIC, 0, 10 * USEC_PER_MSEC,
                                       on_startup_timer, d);
        if (r < 0) {
                daemon_open_front_door(d);
                return 0;
        }
        (void) sd_event_source_set_enabled(d->startup_timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(d->startup_timer, "startup-grace");
        return 0;
}

int daemon_run(Daemon *d) {
        int r = sd_event_loop(d->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* stop taking new requests before the nodes go */
        d->proxy = proxy_free(d->proxy);
        d->forwards = forwards_free(d->forwards);
        for (size_t i = 0; i < d->n_nodes; i++)
                node_disconnect(d->nodes[i], "sshtund shutting down");
        for (size_t i = 0; i < d->n_retiring; i++)
                node_disconnect(d->retiring[i], "sshtund shutting down");
        return r;
}

static void chown_socket(const ListenAddress *a, uid_t uid) {
        if (a->kind == LISTEN_UNIX && lchown(a->path, uid, (gid_t) -1) < 0)
                log_warning_errno(errno, "Cannot give %s to uid %u: %m", a->path, (unsigned) uid);
}

void daemon_chown_sockets(Daemon *d, uid_t uid) {
        const Config *c = d->config;
        ListenAddress admin = { .kind = LISTEN_UNIX, .path = c->admin.socket };

        /* sockets the service manager passed are its own: leave them */
        for (size_t i = 0; d->proxy && i < c->proxy.n_listen; i++)
                if (!proxy_listener_adopted(d->proxy, &c->proxy.listen[i]))
                        chown_socket(&c->proxy.listen[i], uid);
        for (size_t i = 0; i < c->n_forwards; i++)
                chown_socket(&c->forwards[i].listen, uid);
        chown_socket(&admin, uid);
}

IoPoll *daemon_iopoll(const Daemon *d) {
        return d->iopoll;
}

sd_event *daemon_event(const Daemon *d) {
        return d->event;
}

const Config *daemon_config(const Daemon *d) {
        return d->config;
}

const Identity *daemon_identity(const Daemon *d) {
        return d->identity;
}

Router *daemon_router(const Daemon *d) {
        return d->router;
}

int daemon_setup_konnectivity(Daemon *d) {
        _cleanup_free_ char *error = NULL;
        Upstream *u = NULL;
        int r;

        d->migration = migration_free(d->migration);
        if (d->config->konnectivity.upstream) {
                r = upstream_new(d, &u, &error);
                if (r < 0)
                        return log_error_errno(r, "konnectivity: %s", error ? error : strerror(-r));
        }
        /* conns already open keep the old one alive until they end */
        upstream_free(d->upstream);
        d->upstream = u;
        if (u)
                log_info("Konnectivity upstream %s", upstream_address(u));
        return migration_new(d, &d->migration);
}

Upstream *daemon_upstream(const Daemon *d) {
        return d->upstream;
}

Metrics *daemon_metrics(const Daemon *d) {
        return d->metrics;
}

Proxy *daemon_proxy(const Daemon *d) {
        return d->proxy;
}

size_t daemon_n_nodes(const Daemon *d) {
        return d->n_nodes;
}

Node *daemon_node(const Daemon *d, size_t i) {
        return i < d->n_nodes ? d->nodes[i] : NULL;
}

Node *daemon_find_node(const Daemon *d, const char *name) {
        for (size_t i = 0; i < d->n_nodes; i++)
                if (streq(node_name(d->nodes[i]), name))
                        return d->nodes[i];
        return NULL;
}

Node *daemon_pick_any_node(Daemon *d) {
        uint64_t total = 0, pick;

        /* weighted by free capacity: busy nodes get proportionally less */
        for (size_t i = 0; i < d->n_nodes; i++)
                total += node_free_capacity(d->nodes[i]);
        if (total == 0)
                return NULL;
        pick = daemon_random(d, total);
        for (size_t i = 0; i < d->n_nodes; i++) {
                uint64_t w = node_free_capacity(d->nodes[i]);
                if (pick < w)
                        return d->nodes[i];
                pick -= w;
        }
        return NULL;
}

unsigned daemon_streams(const Daemon *d) {
        unsigned n = 0;
        for (size_t i = 0; i < d->n_nodes; i++)
                n += node_streams(d->nodes[i]);
        /* removed nodes still finishing theirs */
        for (size_t i = 0; i < d->n_retiring; i++)
                n += node_streams(d->retiring[i]);
        if (d->upstream)
                n += upstream_conns(d->upstream);
        return n;
}

const KnownHosts *daemon_known_hosts(Daemon *d) {
        if (known_hosts_is_stale(d->known_hosts)) {
                KnownHosts *kh;
                int r = known_hosts_load(d->config->ssh.known_hosts, &kh);
                if (r < 0)
                        log_warning_errno(r, "Cannot re-read %s, keeping the previous contents: %m",
                                          d->config->ssh.known_hosts);
                else {
                        known_hosts_free(d->known_hosts);
                        d->known_hosts = kh;
                        log_info("Re-read %s: %zu entries", d->config->ssh.known_hosts,
                                 known_hosts_entries(kh));
                }
        }
        return d->known_hosts;
}

bool daemon_handshake_acquire(Daemon *d, HandshakeResume resume, void *userdata) {
        if (d->handshakes < d->config->ssh.max_handshakes && d->n_waiters == 0) {
                d->handshakes++;
                return true;
        }
        if (d->waiters_head + d->n_waiters == d->waiters_alloc) {
                if (d->waiters_head > 0) {
                        memmove(d->waiters, d->waiters + d->waiters_head, d->n_waiters * sizeof(*d->waiters));
                        d->waiters_head = 0;
                } else {
                        size_t n = MAX(d->waiters_alloc * 2, (size_t) 16);
                        HandshakeWaiter *w = realloc(d->waiters, n * sizeof(*w));
                        if (!w) {
                                /* cannot queue: let it through rather than stall forever */
                                d->handshakes++;
                                return true;
                        }
                        d->waiters = w;
                        d->waiters_alloc = n;
                }
        }
        d->waiters[d->waiters_head + d->n_waiters++] = (HandshakeWaiter) { resume, userdata };
        unsigned suppressed;
        if (ratelimit_below(&d->handshake_log, &suppressed))
                log_info("ssh.max_handshakes (%u) in flight: further connects wait their turn", d->config->ssh.max_handshakes);
        return false;
}

void daemon_handshake_cancel(Daemon *d, void *userdata) {
        for (size_t i = 0; i < d->n_waiters; i++) {
                HandshakeWaiter *w = &d->waiters[d->waiters_head + i];
                if (w->userdata == userdata) {
                        memmove(w, w + 1, (d->n_waiters - i - 1) * sizeof(*w));
                        d->n_waiters--;
                        return;
                }
        }
}

void daemon_handshake_release(Daemon *d) {
        if (d->handshakes > 0)
                d->handshakes--;
        while (d->n_waiters > 0 && d->handshakes < d->config->ssh.max_handshakes) {
                HandshakeWaiter w = d->waiters[d->waiters_head];
                d->waiters_head++;
                d->n_waiters--;
                if (d->n_waiters == 0)
                        d->waiters_head = 0;
                d->handshakes++;
                w.resume(w.userdata);
        }
}

unsigned daemon_handshakes_in_flight(const Daemon *d) {
        return d->handshakes;
}
