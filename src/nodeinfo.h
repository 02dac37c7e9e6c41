/* What is known of a node, as the operator sees it: its states, where its
 * streams go, how they ended, its last probe, and NodeInfo, the snapshot the
 * admin API and the metrics read. Plain data and names; no behaviour. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

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
 * turns (strings point into the node and its route state). */
typedef struct NodeInfo {
        const char *name;
        const char *address;
        uint16_t port;
        NodeState state;
        NodeRoute route;        /* where new streams go now */
        unsigned sessions_up;
        unsigned sessions_total;
        unsigned streams;       /* open channels, all sessions */
        unsigned opens_pending; /* stream opens queued or in flight, all sessions */
        uint64_t streams_total; /* streams ever opened */
        uint64_t reconnects;    /* sessions lost after having been up */
        const char *last_error; /* NULL if none */
        const char *reason;     /* the last failure in a few words (at most 40 bytes), NULL while up */
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

