/* What admin.c needs from the daemon, the nodes and the SSH sessions, faked
 * for the admin harness: no event loop, no sockets, no SSH. The sessions
 * are never reached by admin_handle(); they only satisfy the linker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "macro.h"
#include "metrics.h"
#include "node.h"
#include "session.h"
#include "stub-daemon.h"

struct Node {
        NodeInfo info;
        ConfigNode cfg;
};

struct Daemon {
        Node *nodes;
        size_t n_nodes;
        Config config;
        const char *reload_error;
};

/* 2026-11-29T15:45:10.123456Z */
#define SINCE ((usec_t) 1795967110 * USEC_PER_SEC + 123456)

/* Names a URL can only spell with escapes, texts that are not UTF-8, a
 * time too far out for RFC 3339, a counter past INT64_MAX. */
static const NodeInfo node_infos[] = {
        { .name = "node-1", .address = "10.0.0.11", .port = 22, .state = NODE_UP, .route = "ssh",
          .sessions_up = 2, .sessions_total = 2, .streams = 7, .streams_total = UINT64_MAX,
          .host_key = "SHA256:abc", .state_since = SINCE,
          .probe = { .valid = true, .ok = true, .latency = 1234, .at = SINCE } },
        { .name = "node-2", .address = "fd00::2", .port = 2222, .state = NODE_BACKOFF, .route = "ssh",
          .last_error = "connect: \xff\xfe refused\n\t\x01", .state_since = USEC_INFINITY - 1,
          .probe = { .valid = true, .ok = false, .error = "HTTP 500 \xc3\x28" } },
        { .name = "my node", .address = "10.0.0.13", .port = 22, .state = NODE_DEGRADED, .route = "ssh",
          .state_since = (usec_t) 253402300800 * USEC_PER_SEC },
        { .name = "n\xc3\xa9/x?y#z%", .address = "node-4.example", .port = 65535, .state = NODE_DRAINING,
          .route = "ssh", .draining = true, .state_since = 1 },
        { .name = "\xed\xa0\x80", .address = "10.0.0.15", .port = 1, .state = NODE_HOSTKEY_MISMATCH,
          .route = "ssh" },
        { .name = "node-6", .address = "10.0.0.16", .port = 22, .state = (NodeState) 99, .route = NULL },
};

static char *konnectivity_nodes[] = { (char *) "*", NULL };

Daemon *stub_daemon_new(const char *reload_error, bool konnectivity) {
        Daemon *d = calloc(1, sizeof(Daemon));

        if (!d)
                return NULL;
        d->nodes = calloc(ELEMENTSOF(node_infos), sizeof(Node));
        if (!d->nodes) {
                free(d);
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(node_infos); i++)
                d->nodes[i].info = node_infos[i];
        d->n_nodes = ELEMENTSOF(node_infos);
        d->config = (Config) {
                .ssh = { .port = 2200, .connect_timeout = 10,
                         .known_hosts = (char *) "/nonexistent/known_hosts" },
                .admin = { .ready_min_fraction = 0.5 },
        };
        d->reload_error = reload_error;
        d->config.konnectivity.nodes = konnectivity_nodes + 1;
        if (konnectivity) {
                /* names a YAML and a shell word must quote */
                d->config.konnectivity = (ConfigKonnectivity) {
                        .upstream = (char *) "tcp:konnectivity.kube-system:8132",
                        .nodes = konnectivity_nodes,
                        .ca_file = (char *) "/etc/kubernetes/pki/ca 'x'.crt",
                        .cert_file = (char *) "/etc/kubernetes/pki/\"client\".crt",
                        .key_file = (char *) "/etc/kubernetes/pki/client:\n.key",
                        .probe_port = 10250,
                };
                for (size_t i = 0; i < d->n_nodes; i++) {
                        d->nodes[i].info.route = "konnectivity";
                        d->nodes[i].info.migrated = true;
                        d->nodes[i].info.upstream = (ProbeInfo) { .valid = true, .ok = true, .latency = 2000,
                                                                  .at = SINCE };
                }
        }
        return d;
}

Daemon *stub_daemon_free(Daemon *d) {
        if (d)
                free(d->nodes);
        free(d);
        return NULL;
}

sd_event *daemon_event(const Daemon *d) {
        return NULL;
}

int daemon_reload(Daemon *d, bool nodes_only, char **ret_error) {
        if (!d->reload_error)
                return 0;
        if (ret_error) {
                *ret_error = strdup(d->reload_error);
                if (!*ret_error)
                        return -ENOMEM;
        }
        return -EINVAL;
}

const Config *daemon_config(const Daemon *d) {
        return &d->config;
}

const KnownHosts *daemon_known_hosts(Daemon *d) {
        return NULL;
}

char *metrics_render(Daemon *d, size_t *ret_len) {
        char *s = strdup("# HELP sshtund_up 1\nsshtund_up 1\n");

        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

size_t daemon_n_nodes(const Daemon *d) {
        return d->n_nodes;
}

Node *daemon_node(const Daemon *d, size_t i) {
        if (i >= d->n_nodes)
                abort();
        return &d->nodes[i];
}

Node *daemon_find_node(const Daemon *d, const char *name) {
        for (size_t i = 0; i < d->n_nodes; i++)
                if (streq(d->nodes[i].info.name, name))
                        return &d->nodes[i];
        return NULL;
}

unsigned daemon_streams(const Daemon *d) {
        return 12;
}

unsigned daemon_handshakes_in_flight(const Daemon *d) {
        return 3;
}

void node_get_info(const Node *n, NodeInfo *ret) {
        *ret = n->info;
}

const char *node_name(const Node *n) {
        return n->info.name;
}

unsigned node_streams(const Node *n) {
        return n->info.streams;
}

const ConfigNode *node_config(const Node *n) {
        Node *m = (Node *) n;

        m->cfg.name = (char *) n->info.name;
        m->cfg.address = (char *) n->info.address;
        m->cfg.port = n->info.port;
        return &m->cfg;
}

void node_drain(Node *n) {
        n->info.draining = true;
        if (n->info.state == NODE_UP)
                n->info.state = NODE_DRAINING;
}

void node_undrain(Node *n) {
        n->info.draining = false;
        if (n->info.state == NODE_DRAINING)
                n->info.state = NODE_UP;
}

void node_reconnect(Node *n) {
        n->info.state = NODE_CONNECTING;
}

/* ---- sessions: linked, never called -------------------------------------- */

int session_new(Daemon *d, Node *node, const SessionParams *p, Session **ret) {
        return -EOPNOTSUPP;
}

Session *session_free(Session *s) {
        return NULL;
}

void session_connect(Session *s) {
}

SessionState session_state(const Session *s) {
        return SESSION_FAILED;
}

SessionFailure session_failure(const Session *s) {
        return SESSION_FAILURE_NETWORK;
}

const char *session_last_error(const Session *s) {
        return NULL;
}

const char *session_host_key(const Session *s) {
        return NULL;
}

const void *session_host_key_blob(const Session *s, size_t *ret_len) {
        return NULL;
}
