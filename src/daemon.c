/* The daemon object: owner of the loop, the configuration, the nodes, the
 * router, the front door and the admin sockets; start, signals, shutdown. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "acceptor.h"
#include "admin.h"
#include "daemon-internal.h"
#include "filewatch.h"
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

/* Streams ended since the last trim of the heap that make another worth it
 * (see on_status_timer). */
#define TRIM_AFTER_STREAMS 1024

/* Audit lines for finished streams: enough to see every stream of a quiet
 * cluster, few enough that a connection storm cannot flood the journal. */
#define AUDIT_BURST 100
#define AUDIT_INTERVAL_USEC (10 * USEC_PER_SEC)

/* --- what the nodes report ----------------------------------------------- */

static void on_node_changed(Node *n, void *userdata) {
        Daemon *d = userdata;

        migration_node_changed(d->migration, n);
}

void daemon_node_info(const Daemon *d, const Node *n, NodeInfo *ret) {
        node_get_info(n, ret);
        migration_fill_info(d->migration, n, ret);
}

/* --- the admin API's view of the daemon ---------------------------------------- */

static int admin_nodes(void *userdata, NodeInfo **ret, size_t *ret_n) {
        Daemon *d = userdata;
        NodeInfo *infos = NULL;

        if (d->n_nodes > 0) {
                infos = calloc(d->n_nodes, sizeof(NodeInfo));
                if (!infos)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < d->n_nodes; i++)
                daemon_node_info(d, d->nodes[i], &infos[i]);
        *ret = infos;
        *ret_n = d->n_nodes;
        return 0;
}

static int admin_node(void *userdata, const char *name, NodeInfo *ret) {
        Daemon *d = userdata;
        Node *n = daemon_find_node(d, name);

        if (!n)
                return -ENOENT;
        daemon_node_info(d, n, ret);
        return 0;
}

static void admin_status(void *userdata, AdminStatus *ret) {
        Daemon *d = userdata;

        *ret = (AdminStatus) {
                .streams = daemon_streams(d),
                .handshakes_in_flight = gate_holders(d->handshakes),
        };
}

static int admin_action(void *userdata, const char *name, AdminAction a, NodeInfo *ret) {
        static const char *const names[_ADMIN_ACTION_MAX] = {
                [ADMIN_ACTION_RECONNECT] = "reconnect",
                [ADMIN_ACTION_DRAIN] = "drain",
                [ADMIN_ACTION_UNDRAIN] = "undrain",
        };
        Daemon *d = userdata;
        Node *n = daemon_find_node(d, name);

        if (!n)
                return -ENOENT;
        switch (a) {
        case ADMIN_ACTION_RECONNECT:
                /* the operator may just have added its key: take the files as they are now */
                trust_refresh(d->trust);
                node_reconnect(n); /* logs itself */
                break;
        case ADMIN_ACTION_DRAIN:
        case ADMIN_ACTION_UNDRAIN:
                log_node(LOG_NOTICE, node_name(n), "%s requested over the admin API (%u streams open)", names[a],
                         node_streams(n));
                if (a == ADMIN_ACTION_DRAIN)
                        node_drain(n);
                else
                        node_undrain(n);
                break;
        default:
                return -EINVAL;
        }
        daemon_node_info(d, n, ret);
        return 0;
}

static int admin_reload(void *userdata, char **ret_error) {
        return daemon_reload(userdata, false, ret_error);
}

static char *admin_metrics(void *userdata, size_t *ret_len) {
        Daemon *d = userdata;
        _cleanup_free_ NodeInfo *infos = NULL;
        MetricsProcess process;
        size_t n = 0;

        /* one snapshot for every family, so they agree with each other */
        if (admin_nodes(d, &infos, &n) < 0)
                return NULL;
        return metrics_render(d->metrics,
                              &(MetricsView) {
                                      .nodes = infos,
                                      .n_nodes = n,
                                      .per_node = d->config->admin.metrics_per_node,
                                      .handshakes_in_flight = gate_holders(d->handshakes),
                                      .stream_log_suppressed = audit_suppressed(d->audit),
                                      .frontdoor_connections = d->proxy ? proxy_connections(d->proxy) : 0,
                                      .frontdoor_connections_max = d->config->proxy.max_clients,
                                      .reload_ok = d->reload_ok,
                                      .reload_ok_at = d->reload_ok_at,
                                      .loop_dispatch_max = (double) d->dispatch_max / USEC_PER_SEC,
                                      .process = metrics_process_read(d->started_at, &process) >= 0 ? &process
                                                                                                     : NULL,
                              },
                              ret_len);
}

static const Config *admin_config(void *userdata) {
        Daemon *d = userdata;
        return d->config;
}

/* A node refused for its key, or waiting to retry, connects now; one that
 * is up keeps its sessions. */
static void admin_host_key_trusted(void *userdata, const char *name) {
        Daemon *d = userdata;
        Node *n = daemon_find_node(d, name);

        if (!n)
                return;
        switch (node_state(n)) {
        case NODE_HOSTKEY_UNKNOWN:
        case NODE_HOSTKEY_MISMATCH:
        case NODE_BACKOFF:
                node_reconnect(n);
                break;
        default:
                break;
        }
}

static const AdminOps admin_ops = {
        .nodes = admin_nodes,
        .node = admin_node,
        .status = admin_status,
        .action = admin_action,
        .reload = admin_reload,
        .metrics = admin_metrics,
        .config = admin_config,
        .host_key_trusted = admin_host_key_trusted,
};

/* --- the object ------------------------------------------------------------------- */

int daemon_new(Config *config, Identity *identity, Daemon **ret) {
        Daemon *d;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->config = config;
        d->identity = identity;
        d->started_at = d->reload_ok_at = now_usec(CLOCK_REALTIME);
        d->reload_ok = true;
        rng_init(&d->rng);

        r = sd_event_new(&d->event);
        if (r < 0)
                goto fail;
        r = iopoll_new(d->event, &d->iopoll);
        if (r < 0)
                goto fail;
        r = metrics_new(&d->metrics);
        if (r < 0)
                goto fail;
        r = audit_new(AUDIT_BURST, AUDIT_INTERVAL_USEC, &d->audit);
        if (r < 0)
                goto fail;
        r = gate_new(config->ssh.max_handshakes, "ssh.max_handshakes", &d->handshakes);
        if (r < 0)
                goto fail;
        r = router_new(config->proxy.allow, config->proxy.n_allow, &d->router);
        if (r < 0)
                goto fail;
        r = trust_new(d->event, config->ssh.known_hosts, config->ssh.learned_hosts, &d->trust);
        if (r < 0)
                goto fail;
        r = daemon_load_probe_tls(d);
        if (r < 0)
                goto fail;
        r = migration_new(d->event, &d->rng, &d->migration);
        if (r < 0)
                goto fail;

        d->sessions = (SessionEnv) {
                .event = d->event,
                .iopoll = d->iopoll,
                .ssh = &config->ssh,
                .identity = identity,
                .trust = d->trust,
                .open_timeout = config->proxy.open_timeout,
                .handshakes = d->handshakes,
                .metrics = d->metrics,
        };
        d->local_failure_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        d->node_env = (NodeEnv) {
                .event = d->event,
                .local_failure_log = &d->local_failure_log,
                .sessions = &d->sessions,
                .session_ops = &session_ops,
                .rng = &d->rng,
                .metrics = d->metrics,
                .probe = &config->probe,
                .probe_tls = d->probe_tls,
                .changed = on_node_changed,
                .userdata = d,
        };
        d->relay_env = (RelayEnv) { .poll = d->iopoll, .audit = d->audit, .metrics = d->metrics };
        d->admin_env = (AdminEnv) {
                .event = d->event,
                .ops = &admin_ops,
                .userdata = d,
                .sessions = &d->sessions,
                .session_ops = &session_ops,
        };

        d->nodes = calloc(MAX(config->n_nodes, (size_t) 1), sizeof(Node *));
        if (!d->nodes) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < config->n_nodes; i++) {
                const ConfigNode *cn = &config->nodes[i];
                r = node_new(&d->node_env, cn, migration_pool_size(config, cn->name), &d->nodes[i]);
                if (r < 0)
                        goto fail;
                d->n_nodes++;
        }
        r = daemon_rebuild_router(d);
        if (r < 0)
                goto fail;
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
        d->readonly_admin = admin_free(d->readonly_admin);
        d->admin = admin_free(d->admin);
        d->migration = migration_free(d->migration);
        d->nodes_watch = filewatch_free(d->nodes_watch);
        daemon_free_retiring(d);
        for (size_t i = 0; i < d->n_nodes; i++)
                node_free(d->nodes[i]);
        free(d->nodes);
        /* after the proxy: streams through it end with it */
        d->upstream = upstream_free(d->upstream);
        router_free(d->router);
        d->trust = trust_free(d->trust);
        probe_tls_unref(d->probe_tls);
        d->sig_term = sd_event_source_disable_unref(d->sig_term);
        d->sig_int = sd_event_source_disable_unref(d->sig_int);
        d->sig_hup = sd_event_source_disable_unref(d->sig_hup);
        d->status_timer = sd_event_source_disable_unref(d->status_timer);
        d->startup_timer = sd_event_source_disable_unref(d->startup_timer);
        d->drain_timer = sd_event_source_disable_unref(d->drain_timer);
        d->iopoll = iopoll_free(d->iopoll);
        sd_event_unref(d->event);
        gate_free(d->handshakes);
        audit_free(d->audit);
        metrics_free(d->metrics);
        config_free(d->config);
        identity_free(d->identity);
        free(d);
        return NULL;
}

int daemon_load_probe_tls(Daemon *d) {
        const ConfigProbe *p = &d->config->probe;
        _cleanup_free_ char *error = NULL;
        ProbeTls *t = NULL;
        int r;

        if (p->type == PROBE_HTTPS) {
                r = probe_tls_new(p->ca_file, &t, &error);
                if (r < 0)
                        return log_error_errno(r, "probe.ca_file %s: %s", strna(p->ca_file),
                                               error ? error : strerror(-r));
        }
        /* probes made before keep theirs until they are remade */
        probe_tls_unref(d->probe_tls);
        d->probe_tls = t;
        d->node_env.probe_tls = t;
        return 0;
}

/* --- signals, start-up, status -------------------------------------------------- */

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

        /* A burst of streams leaves the heap holding their memory, freed
         * between long-lived blocks, where malloc cannot give it back by
         * itself (12,000 streams: 50 MB on top of 5,000 idle nodes' 300):
         * give back the free pages once the burst has passed. */
        if (d->streams_ended >= TRIM_AFTER_STREAMS) {
                usec_t t0 = now_usec(CLOCK_MONOTONIC);
                d->streams_ended = 0;
                (void) malloc_trim(0);
                log_debug("Gave free heap pages back to the system in %.1f ms",
                          (double) (now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_MSEC);
        }
        daemon_notify_status(d);
        (void) sd_event_source_set_time(s, usec + 5 * USEC_PER_SEC);
        return 0;
}

/* An admin socket at 'path', adopted when the service manager passed it
 * (by its name 'name' or by its path). */
static int daemon_admin_listen(Daemon *d, ListenFds *activated, char *path, const char *name, AdminParams params,
                               Admin **ret) {
        ListenAddress where = { .kind = LISTEN_UNIX, .path = path }, named = {};
        int r;

        params.activated_fd = listen_fds_take(activated, &where);
        if (params.activated_fd < 0)
                params.activated_fd = listen_fds_take_named(activated, name, &named);
        r = admin_new(&d->admin_env, named.path ? &named : &where, &params, ret);
        listen_address_done(&named);
        return r;
}

static int daemon_open_admin(Daemon *d, ListenFds *activated) {
        int r = daemon_admin_listen(d, activated, d->config->admin.socket, "admin",
                                    (AdminParams) { .access = ADMIN_ACCESS_FULL, .mode = 0600, .gid = (gid_t) -1 },
                                    &d->admin);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on admin socket %s: %m", d->config->admin.socket);
        return 0;
}

int daemon_open_readonly_admin(Daemon *d, ListenFds *activated, Admin **ret) {
        const ConfigAdmin *a = &d->config->admin;
        gid_t gid = (gid_t) -1;
        int r;

        *ret = NULL;
        if (!a->readonly_socket)
                return 0;
        if (a->readonly_socket_group && acceptor_group_lookup(a->readonly_socket_group, &gid) < 0)
                return log_error_errno(ENOENT, "admin.readonly_socket_group: no group \"%s\"",
                                       a->readonly_socket_group);
        r = daemon_admin_listen(d, activated, a->readonly_socket, "admin-readonly",
                                (AdminParams) { .access = ADMIN_ACCESS_READONLY, .mode = a->readonly_socket_mode,
                                                .gid = gid },
                                ret);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on admin.readonly_socket %s: %m", a->readonly_socket);
        log_info("Read-only admin socket %s", a->readonly_socket);
        return 0;
}

int daemon_start(Daemon *d) {
        ListenFds *activated = NULL;
        size_t unused;
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

        r = listen_fds_new(&activated);
        if (r < 0)
                log_warning_errno(r, "Cannot read the sockets passed by the service manager: %m");
        r = daemon_open_admin(d, activated);
        if (r >= 0)
                r = daemon_open_readonly_admin(d, activated, &d->readonly_admin);
        if (r >= 0)
                r = daemon_open_metrics_listener(d, &d->metrics_listener);
        if (r >= 0)
                r = proxy_new(d, activated, &d->proxy);
        activated = listen_fds_free(activated, &unused);
        if (unused > 0)
                log_warning("%zu socket(s) passed by the service manager match no listen address "
                            "and are not named \"proxy\", \"admin\" or \"admin-readonly\": closed", unused);
        if (r < 0)
                return r;
        r = forwards_new(d, &d->forwards);
        if (r < 0)
                return r;

        r = daemon_setup_konnectivity(d);
        if (r < 0)
                return r;
        /* the watch first: with descriptors short, the nodes' connects
         * would take the inotify descriptor too, and a watch is not retried */
        (void) daemon_watch_nodes_file(d);
        for (size_t i = 0; i < d->n_nodes; i++)
                node_start(d->nodes[i]);

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

/* admin.metrics_listen: the public routes on TCP, or NULL when unset. */
int daemon_open_metrics_listener(Daemon *d, Admin **ret) {
        const ConfigAdmin *a = &d->config->admin;
        _cleanup_free_ char *where = NULL;
        int r;

        *ret = NULL;
        if (!a->has_metrics_listen)
                return 0;
        r = admin_new(&d->admin_env, &a->metrics_listen,
                      &(AdminParams) { .access = ADMIN_ACCESS_PUBLIC, .gid = (gid_t) -1, .activated_fd = -1 }, ret);
        if (r < 0) {
                where = listen_address_to_string(&a->metrics_listen);
                return log_error_errno(r, "Cannot listen on admin.metrics_listen %s: %m", strna(where));
        }
        return 0;
}

/* sd_event_loop(), with each dispatch timed: a loop stalled by one handler
 * stalls every node and stream, and sshtund_loop_dispatch_max_seconds says
 * by how much at worst. */
static int daemon_loop(Daemon *d) {
        for (;;) {
                usec_t t0, dt;
                int r;

                r = sd_event_prepare(d->event);
                if (r == 0)
                        r = sd_event_wait(d->event, UINT64_MAX);
                if (r > 0) {
                        t0 = now_usec(CLOCK_MONOTONIC);
                        r = sd_event_dispatch(d->event);
                        dt = now_usec(CLOCK_MONOTONIC) - t0;
                        d->dispatch_max = MAX(d->dispatch_max, dt);
                        metrics_observe(d->metrics, METRICS_LOOP_DISPATCH, (double) dt / USEC_PER_SEC);
                }
                if (r < 0)
                        return r;
                if (sd_event_get_state(d->event) == SD_EVENT_FINISHED) {
                        int code = 0;
                        r = sd_event_get_exit_code(d->event, &code);
                        return r < 0 ? r : code;
                }
        }
}

int daemon_run(Daemon *d) {
        int r = daemon_loop(d);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        /* stop taking new requests before the nodes go */
        d->proxy = proxy_free(d->proxy);
        d->forwards = forwards_free(d->forwards);
        /* each session that lets go of its handshake slot would admit one
         * still waiting (a stop during the start-up storm): that one cannot
         * even arm its timer now, and says so, thousands of times */
        gate_set_limit(d->handshakes, 0);
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
        if (d->admin && !admin_adopted(d->admin))
                chown_socket(&admin, uid);
        if (d->readonly_admin && !admin_adopted(d->readonly_admin)) {
                ListenAddress ro = { .kind = LISTEN_UNIX, .path = c->admin.readonly_socket };
                chown_socket(&ro, uid);
        }
}

int daemon_setup_konnectivity(Daemon *d) {
        _cleanup_free_ char *error = NULL;
        Upstream *u = NULL;
        int r;

        if (d->config->konnectivity.upstream) {
                r = upstream_new(d->event, &d->config->konnectivity, &u, &error);
                if (r < 0)
                        return log_error_errno(r, "konnectivity: %s", error ? error : strerror(-r));
        }
        /* tunnels already open keep the old one alive until they end */
        upstream_free(d->upstream);
        d->upstream = u;
        if (u)
                log_info("Konnectivity upstream %s", upstream_address(u));
        daemon_update_routes(d);
        return 0;
}

void daemon_update_routes(Daemon *d) {
        migration_update(d->migration, d->config, d->upstream, d->nodes, d->n_nodes);
}

/* --- accessors ------------------------------------------------------------------- */

sd_event *daemon_event(const Daemon *d) {
        return d->event;
}

IoPoll *daemon_iopoll(const Daemon *d) {
        return d->iopoll;
}

const RelayEnv *daemon_relay_env(const Daemon *d) {
        return &d->relay_env;
}

const Config *daemon_config(const Daemon *d) {
        return d->config;
}

Router *daemon_router(const Daemon *d) {
        return d->router;
}

Metrics *daemon_metrics(const Daemon *d) {
        return d->metrics;
}

Migration *daemon_migration(const Daemon *d) {
        return d->migration;
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
        pick = rng_uniform(&d->rng, total);
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

void daemon_relay_done(void *userdata) {
        Daemon *d = userdata;

        d->streams_ended++;
        /* the front door may have been closed (shutdown) while streams ran */
        if (d->proxy)
                proxy_relay_done(d->proxy);
}
