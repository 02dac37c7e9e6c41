/* What daemon.c and reload.c share: the daemon object itself. Other
 * modules see a Daemon only through daemon.h. */
#pragma once

#include <systemd/sd-event.h>

#include "daemon.h"
#include "log.h"

typedef struct Admin Admin;
typedef struct Forwards Forwards;
typedef struct Migration Migration;

typedef struct HandshakeWaiter {
        HandshakeResume resume;
        void *userdata;
} HandshakeWaiter;

struct Daemon {
        sd_event *event;
        IoPoll *iopoll; /* the streams' client sockets */
        Config *config;
        Identity *identity;
        KnownHosts *known_hosts;
        Router *router;

        Node **nodes;
        size_t n_nodes;
        Node **retiring; /* removed by a reload: draining, then freed */
        size_t n_retiring;
        sd_event_source *retire_timer;

        Metrics *metrics;
        Upstream *upstream;
        Migration *migration;
        Proxy *proxy;
        Forwards *forwards;
        Admin *admin;
        Admin *metrics_listener; /* admin.metrics_listen, or NULL */

        unsigned handshakes;
        HandshakeWaiter *waiters; /* FIFO: [waiters_head, n_waiters) */
        size_t n_waiters, waiters_head, waiters_alloc;

        uint64_t rng[2];
        RateLimit handshake_log;
        sd_event_source *sig_term, *sig_int, *sig_hup;
        sd_event_source *status_timer;
        sd_event_source *startup_timer; /* the grace before the front door opens */
        sd_event_source *drain_timer;   /* SIGTERM: streams finishing */
        usec_t drain_deadline;
        bool stopping;
        bool log_override; /* -d: the configuration's log settings do not apply */
        int nodes_watch_fd;               /* inotify on nodes_file's directory, or -1 */
        int nodes_watch_wd;
        sd_event_source *nodes_watch;
        sd_event_source *nodes_debounce;  /* changes come in bursts (write, rename) */
        usec_t startup_deadline;
};


/* (Re)create the upstream and its path checks from the configuration. */
int daemon_setup_konnectivity(Daemon *d);

/* Rebuild the router from the allowlist and the current nodes. */
int daemon_rebuild_router(Daemon *d);
/* Start (or move) the inotify watch on nodes_file's directory. */
int daemon_watch_nodes_file(Daemon *d);
void daemon_unwatch_nodes_file(Daemon *d);
/* Free retiring nodes (shutdown). */
void daemon_free_retiring(Daemon *d);
void daemon_notify_status(Daemon *d);
