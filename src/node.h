/* One node: its pool of SSH sessions, the state an operator sees, the
 * reconnect backoff, and the choice of session for a new stream. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
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
} NodeInfo;

/* A node that will connect when node_start() is called. 'cn' is copied. */
int node_new(Daemon *d, const ConfigNode *cn, Node **ret);
/* Closes every session (their streams end) and frees; accepts NULL. */
Node *node_free(Node *n);
void node_start(Node *n);
/* Close every session politely (SSH disconnect) and stop reconnecting. */
void node_disconnect(Node *n, const char *why);

const char *node_name(const Node *n);
const ConfigNode *node_config(const Node *n);
NodeState node_state(const Node *n);
void node_get_info(const Node *n, NodeInfo *ret);

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

/* Called by sessions of this node when their state changes. */
void node_session_changed(Node *n, Session *s);
