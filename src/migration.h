/* The move to Konnectivity: for every node, a periodic check of the path
 * through konnectivity-server (a CONNECT to the node's address and kubelet
 * port), whose result says whether a migrated node's upstream works and
 * whether a node still on SSH is ready to move. */
#pragma once

#include <stdbool.h>

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Migration Migration;

/* Checks for every node of the daemon, every probe.interval (10 s when
 * probes are off), spread over the interval; nothing when no upstream is
 * configured (*ret = NULL, returns 0). */
int migration_new(Daemon *d, Migration **ret);
/* Stops every check in flight. Accepts NULL, returns NULL. */
Migration *migration_free(Migration *m);
/* The node list changed (reload): check new nodes, forget removed ones. */
void migration_nodes_changed(Migration *m);
