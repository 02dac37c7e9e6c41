/* The move to Konnectivity, node by node: which nodes are listed in
 * konnectivity.nodes, the periodic check of each node's path through
 * konnectivity-server, and from both, where each node's new streams go.
 * The route decision itself is one pure function, migration_decide(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "node.h"
#include "nodeinfo.h"
#include "rng.h"
#include "upstream.h"

typedef struct Migration Migration;

/* What the route of one node depends on. */
typedef struct RouteInputs {
        bool upstream;        /* konnectivity.upstream is configured */
        bool listed;          /* konnectivity.nodes names the node (or "*") */
        bool rolling_back;    /* it left the list, and no SSH session has been ready since */
        bool check_valid;     /* a check of its path through konnectivity-server has finished */
        bool check_ok;        /* ... and passed */
        bool fallback_to_ssh; /* konnectivity.fallback_to_ssh */
        bool ssh_ready;       /* a session of its SSH pool is ready */
} RouteInputs;

/* The decision table:
 *   no upstream                               -> ssh
 *   not listed, rolling back, no SSH ready    -> konnectivity (nothing fails on the way back)
 *   not listed otherwise                      -> ssh
 *   listed, path failing, fallback, SSH ready -> ssh (falling back)
 *   listed otherwise                          -> konnectivity */
NodeRoute migration_decide(const RouteInputs *in);

/* SSH sessions a node keeps: none for a listed node that may not fall
 * back (the SSH pool would never carry a stream), else ssh.pool_size. */
unsigned migration_pool_size(const Config *cfg, const char *name);

/* Empty: no nodes, no upstream; every route is ssh until migration_update(). */
int migration_new(sd_event *e, Rng *rng, Migration **ret);
/* Stops every check in flight. Accepts NULL, returns NULL. */
Migration *migration_free(Migration *m);

/* The configuration, the upstream (NULL when none) and the node list, at
 * start and after every reload or nodes_file change. Per-node state of
 * nodes kept carries over; a node leaving the list rolls back (keeps
 * Konnectivity until SSH is ready); route changes are logged; checks run
 * every probe.interval (10 s when probes are off), spread over it, and
 * start over when the upstream changed. 'cfg' must stay valid until the
 * next call. */
void migration_update(Migration *m, const Config *cfg, Upstream *u, Node *const *nodes, size_t n_nodes);

/* Where node n's new streams go now. No side effect. */
NodeRoute migration_route(const Migration *m, const Node *n);
/* True if konnectivity.nodes lists n (and an upstream is configured). */
bool migration_listed(const Migration *m, const Node *n);
/* The upstream new streams of a Konnectivity route go through, or NULL. */
Upstream *migration_upstream(const Migration *m);

/* Node n's state changed: a rollback ends once its SSH is ready, and a
 * change of route is logged. */
void migration_node_changed(Migration *m, Node *n);
/* A stream of listed node n went over SSH instead of Konnectivity. */
void migration_count_fallback(Migration *m, const Node *n);

/* The route fields of n's snapshot: route, migrated, falling_back,
 * upstream (the last check), fallbacks, upstream_failures. */
void migration_fill_info(const Migration *m, const Node *n, NodeInfo *info);
