/* What daemon.c and reload.c share: the daemon object itself. Other
 * modules see a Daemon only through daemon.h. */
#pragma once

#include <systemd/sd-event.h>

#include "admin.h"
#include "daemon.h"
#include "filewatch.h"
#include "gate.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "log.h"
#include "probe.h"
#include "rng.h"
#include "session.h"
#include "trust.h"
#include "upstream.h"

typedef struct Forwards Forwards;
typedef struct Proxy Proxy;

struct Daemon {
        sd_event *event;
        IoPoll *iopoll; /* the streams' and the front door's client sockets */
        Config *config;
        Identity *identity;
        Trust *trust; /* ssh.known_hosts and ssh.learned_hosts */
        Router *router;
        Rng rng;
        Gate *handshakes; /* ssh.max_handshakes */
        Metrics *metrics;
        AuditLog *audit;
        ProbeTls *probe_tls; /* https probes: one context for every node */

        /* what the nodes and their sessions are given; reload updates them */
        SessionEnv sessions;
        NodeEnv node_env;
        RelayEnv relay_env;
        AdminEnv admin_env;

        Node **nodes;
        size_t n_nodes;
        Node **retiring; /* removed by a reload: draining, then freed */
        size_t n_retiring, n_retiring_allocated;
        sd_event_source *retire_timer;

        Upstream *upstream;
        Migration *migration;
        Proxy *proxy;
        Forwards *forwards;
        Admin *admin;
        Admin *readonly_admin;   /* admin.readonly_socket, or NULL */
        Admin *metrics_listener; /* admin.metrics_listen, or NULL */

        sd_event_source *sig_term, *sig_int, *sig_hup;
        sd_event_source *status_timer;
        unsigned streams_ended; /* since the heap was last trimmed */
        RateLimit local_failure_log; /* nodes failing for want of descriptors */
        sd_event_source *startup_timer; /* the grace before the front door opens */
        sd_event_source *drain_timer;   /* SIGTERM: streams finishing */
        usec_t drain_deadline;
        bool stopping;
        bool log_override; /* -d: the configuration's log settings do not apply */
        FileWatch *nodes_watch; /* nodes_file */
        usec_t startup_deadline;

        usec_t started_at;    /* CLOCK_REALTIME, process_start_time_seconds */
        bool reload_ok;       /* the last reload (or the start) applied the file */
        usec_t reload_ok_at;  /* CLOCK_REALTIME of the last success */
        usec_t dispatch_max;  /* the longest dispatch of the loop so far */
};

/* (Re)create the upstream from the configuration and hand it, the
 * configuration and the nodes to the migration. */
int daemon_setup_konnectivity(Daemon *d);
/* The node list changed: routes and checks follow. */
void daemon_update_routes(Daemon *d);

/* Rebuild the router from the allowlist and the current nodes. */
int daemon_rebuild_router(Daemon *d);
/* Start (or move) the watch on nodes_file. */
int daemon_watch_nodes_file(Daemon *d);
/* Load the https probes' TLS context for the current probe section. */
int daemon_load_probe_tls(Daemon *d);
/* admin.readonly_socket's server (adopted from 'activated' when passed),
 * or NULL when it is unset. */
typedef struct ListenFds ListenFds;
int daemon_open_readonly_admin(Daemon *d, ListenFds *activated, Admin **ret);
/* admin.metrics_listen's server, or NULL when it is unset. */
int daemon_open_metrics_listener(Daemon *d, Admin **ret);
/* Free retiring nodes (shutdown). */
void daemon_free_retiring(Daemon *d);
void daemon_notify_status(Daemon *d);
/* A node's snapshot with its route fields. */
void daemon_node_info(const Daemon *d, const Node *n, NodeInfo *ret);
/* Streams open across all nodes and the upstream. */
unsigned daemon_streams(const Daemon *d);
