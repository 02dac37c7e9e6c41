/* One node: its pool of SSH sessions, the state an operator sees, the
 * reconnect backoff, its kubelet probe, and the choice of session for a new
 * stream. Where its streams go (SSH or Konnectivity) is migration.c's. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "nodeinfo.h"
#include "probe.h"
#include "rng.h"
#include "session.h"

typedef struct Node Node;

/* What every node of the daemon shares, owned by the daemon; the pointers
 * marked live are pointed at the new objects by a reload. */
typedef struct NodeEnv {
        sd_event *event;
        const SessionEnv *sessions;     /* for the pool's sessions; its ssh section is read live */
        const SessionOps *session_ops;  /* &session_ops, or a test's */
        Rng *rng;                       /* backoff jitter, probe phases */
        Metrics *metrics;               /* may be NULL */
        const ConfigProbe *probe;       /* live */
        ProbeTls *probe_tls;            /* live: the https probes' shared context */
        /* Failures of this host, not of a node (out of descriptors): told
         * through this daemon-wide limit, once for all nodes. */
        RateLimit *local_failure_log;
        /* A node's state changed (its owner re-routes and reports). May be NULL. */
        void (*changed)(Node *n, void *userdata);
        void *userdata;
} NodeEnv;

/* A node that will connect when node_start() is called, with 'pool_size'
 * sessions (0: none; then node_set_health() says how it is). 'cn' is
 * copied; 'env' must outlive the node. */
int node_new(const NodeEnv *env, const ConfigNode *cn, unsigned pool_size, Node **ret);
/* Closes every session (their streams end) and frees; accepts NULL. */
Node *node_free(Node *n);
void node_start(Node *n);
/* Reload: take the node's new configuration entry (same name). A new
 * address or port replaces the sessions (their streams end) and returns 1;
 * other changes (hostnames, pod CIDR) return 0. */
int node_update(Node *n, const ConfigNode *cn);
/* Grow or shrink the pool (shrinking ends the streams of the connections
 * it closes). */
int node_set_pool_size(Node *n, unsigned size);

/* Reload: the node left the configuration. It drains (no new streams) and
 * the daemon frees it when its streams are done or at 'deadline'. */
void node_retire(Node *n, usec_t deadline);
usec_t node_retire_deadline(const Node *n);
/* True once node_start() was called. */
bool node_started(const Node *n);
/* Reload: the probe settings changed: a new prober with them. */
int node_reset_probe(Node *n);

/* Close every session politely (SSH disconnect) and stop reconnecting. */
void node_disconnect(Node *n, const char *why);

const char *node_name(const Node *n);
const ConfigNode *node_config(const Node *n);
NodeState node_state(const Node *n);
/* What the admin API and the metrics show (the route fields are left for
 * migration.c: SSH, not migrated). */
void node_get_info(const Node *n, NodeInfo *ret);

/* True once the node's first connection attempt has ended (up, refused or
 * failed): the start-up grace waits for this. */
bool node_settled(const Node *n);

/* True if a new stream could be opened now. */
bool node_is_ready(const Node *n);
/* True if at least one session is ready, whatever the operator or the
 * probe say (a route may rely on SSH then). */
bool node_has_ready_session(const Node *n);
/* Streams open on this node. */
unsigned node_streams(const Node *n);
/* Streams this node could still take now: the free slots of its ready
 * sessions (0 when not ready). */
unsigned node_free_capacity(const Node *n);

/* Open a direct-tcpip channel to host:port on the least-loaded ready session.
 * Returns 0 and the pending channel (its callbacks report the outcome), or
 * -EHOSTDOWN when no session is ready, -EBUSY when every ready session is
 * at max_streams_per_session. */
int node_open_channel(Node *n, const char *host, uint16_t port, const char *orig_host,
                      uint16_t orig_port, const ChannelCallbacks *cb, void *userdata,
                      Channel **ret);

/* Operator actions. drain: no new streams, open ones finish (state
 * "draining"); undrain: back to normal; reconnect: close every session
 * (their streams end) and connect again now, without backoff. */
void node_drain(Node *n);
void node_undrain(Node *n);
void node_reconnect(Node *n);

/* How a node without sessions (pool size 0: migrated to Konnectivity with
 * no SSH kept warm) is doing, as its owner sees the path it uses. */
typedef enum NodeHealth {
        NODE_HEALTH_UNKNOWN, /* no verdict yet: "connecting" */
        NODE_HEALTH_OK,      /* "up" */
        NODE_HEALTH_FAILING, /* "degraded" */
} NodeHealth;

void node_set_health(Node *n, NodeHealth h);

/* A stream that never reached a session (no route, a far end elsewhere):
 * its outcome in the node's counters. */
void node_count_stream(Node *n, StreamResult r);
