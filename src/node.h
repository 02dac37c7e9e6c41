/* One node: its pool of SSH sessions, the state an operator sees, the
 * reconnect backoff, and the choice of session for a new stream. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "macro.h"
#include "session.h"

typedef struct Daemon Daemon;
typedef struct Node Node;

typedef enum NodeState {
        NODE_CONNECTING,
        NODE_HANDSHAKING,
        NODE_AUTHENTICATING,
        NODE_UP,
        NODE_DEGRADED,
        NODE_BACKOFF,
        NODE_HOSTKEY_UNKNOWN,
        NODE_HOSTKEY_MISMATCH,
        NODE_AUTH_FAILED,
        NODE_DRAINING,
        NODE_DISABLED,
        _NODE_STATE_MAX,
        _NODE_STATE_INVALID = -1,
} NodeState;

/* "connecting", "up", "hostkey-unknown", ... as DESIGN names them. */
const char *node_state_to_string(NodeState s);
NodeState node_state_from_string(const char *s);

/* How streams through a node ended up, for metrics. */
typedef enum StreamResult {
        STREAM_OK,          /* the channel opened */
        STREAM_REFUSED,     /* the node refused the target */
        STREAM_UNAVAILABLE, /* no ready session, all full, or the session died first */
        STREAM_ABANDONED,   /* the client left or timed out before the open finished */
        _STREAM_RESULT_MAX,
} StreamResult;

const char *stream_result_to_string(StreamResult r);

/* The last probe of a node. */
typedef struct ProbeInfo {
        bool valid;       /* a probe has completed */
        bool ok;
        usec_t latency;   /* how long it took */
        usec_t at;        /* CLOCK_REALTIME when it completed */
        const char *error; /* why it failed, NULL if ok */
} ProbeInfo;

/* Where a node's new streams go. */
typedef enum NodeRoute {
        ROUTE_SSH,
        ROUTE_KONNECTIVITY,
} NodeRoute;

const char *node_route_to_string(NodeRoute r);

/* What the admin API shows of a node: a snapshot, valid until the loop
 * turns (strings point into the node). */
typedef struct NodeInfo {
        const char *name;
        const char *address;
        uint16_t port;
        NodeState state;
        const char *route;      /* "ssh" (or "konnectivity", later) */
        unsigned sessions_up;
        unsigned sessions_total;
        unsigned streams;       /* open channels, all sessions */
        uint64_t streams_total; /* streams ever opened */
        uint64_t reconnects;    /* sessions lost after having been up */
        const char *last_error; /* NULL if none */
        const char *host_key;   /* "SHA256:..." last seen, NULL if never */
        usec_t state_since;     /* CLOCK_REALTIME */
        bool draining;          /* the operator drained it */
        ProbeInfo probe;
        uint64_t probe_failures;                   /* probes that failed, ever */
        uint64_t streams_by_result[_STREAM_RESULT_MAX];
        uint64_t bytes_up;      /* client -> node, streams that ended */
        uint64_t bytes_down;    /* node -> client, streams that ended */
        bool migrated;          /* listed in konnectivity.nodes */
        bool falling_back;      /* migrated, but new streams go over SSH (upstream path failing) */
        ProbeInfo upstream;     /* the path through konnectivity-server */
        uint64_t fallbacks;     /* streams sent over SSH because the upstream path failed */
        uint64_t upstream_failures; /* upstream path checks that failed, ever */
} NodeInfo;

/* A node that will connect when node_start() is called. 'cn' is copied. */
int node_new(Daemon *d, const ConfigNode *cn, Node **ret);
/* Closes every session (their streams end) and frees; accepts NULL. */
Node *node_free(Node *n);
void node_start(Node *n);
/* Reload: take the node's new configuration entry (same name). A new
 * address or port replaces the sessions (their streams end) and returns 1;
 * other changes (hostnames, pod CIDR) return 0. */
int node_update(Node *n, const ConfigNode *cn);
/* Reload: grow or shrink the pool (shrinking ends the streams of the
 * connections it closes). */
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
void node_get_info(const Node *n, NodeInfo *ret);

/* True once the node's first connection attempt has ended (up, refused or
 * failed): the start-up grace waits for this. */
bool node_settled(const Node *n);

/* True if a new stream could be opened now. */
bool node_is_ready(const Node *n);
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
                      SessionChannel **ret);

/* Open a channel for a health probe: on any ready session, draining or
 * not, outside max_streams_per_session and the stream counts. -EHOSTDOWN
 * when no session is ready. */
int node_open_probe_channel(Node *n, const char *host, uint16_t port, const ChannelCallbacks *cb,
                            void *userdata, SessionChannel **ret);

/* Operator actions. drain: no new streams, open ones finish (state
 * "draining"); undrain: back to normal; reconnect: close every session
 * (their streams end) and connect again now, without backoff. */
void node_drain(Node *n);
void node_undrain(Node *n);
void node_reconnect(Node *n);

/* A probe finished: 'error' is NULL when it passed. A failing probe turns
 * an up node "degraded" (still routed), a passing one turns it back. */
void node_probe_result(Node *n, bool ok, usec_t latency, const char *error);

/* Konnectivity. Whether the node is listed in konnectivity.nodes (set at
 * creation and on reload: a node leaving the list goes back to SSH only
 * once an SSH session is ready, so no request fails on the way). */
void node_set_migrated(Node *n, bool migrated);
bool node_migrated(const Node *n);
/* Where a new stream goes now. */
NodeRoute node_route(Node *n);
/* The upstream path check finished (error NULL when it passed). */
void node_upstream_result(Node *n, bool ok, usec_t latency, const char *error);
/* A stream of a migrated node went over SSH instead (fallback_to_ssh). */
void node_count_fallback(Node *n);

/* A stream's outcome and, when it ends, its bytes (from channel.c). */
void node_count_stream(Node *n, StreamResult r);
void node_count_bytes(Node *n, uint64_t up, uint64_t down);
