/* The names of node states, routes and stream results as DESIGN spells them. */
#include "macro.h"
#include "nodeinfo.h"

static const char *const node_state_names[_NODE_STATE_MAX] = {
        [NODE_CONNECTING] = "connecting",
        [NODE_HANDSHAKING] = "handshaking",
        [NODE_AUTHENTICATING] = "authenticating",
        [NODE_UP] = "up",
        [NODE_DEGRADED] = "degraded",
        [NODE_BACKOFF] = "backoff",
        [NODE_HOSTKEY_UNKNOWN] = "hostkey-unknown",
        [NODE_HOSTKEY_MISMATCH] = "hostkey-mismatch",
        [NODE_AUTH_FAILED] = "auth-failed",
        [NODE_DRAINING] = "draining",
        [NODE_DISABLED] = "disabled",
};

const char *node_state_to_string(NodeState s) {
        return s >= 0 && s < _NODE_STATE_MAX ? node_state_names[s] : NULL;
}

static const char *const stream_result_names[_STREAM_RESULT_MAX] = {
        [STREAM_OK] = "ok",
        [STREAM_REFUSED] = "refused",
        [STREAM_UNAVAILABLE] = "unavailable",
        [STREAM_ABANDONED] = "abandoned",
};

const char *node_route_to_string(NodeRoute r) {
        return r == ROUTE_KONNECTIVITY ? "konnectivity" : "ssh";
}

const char *stream_result_to_string(StreamResult r) {
        return r < _STREAM_RESULT_MAX ? stream_result_names[r] : NULL;
}
