/* Kubelet health probes through a node's own tunnel: a TCP open, an HTTP
 * GET, or a TLS GET with optional certificate verification, every
 * probe.interval, spread over the interval across nodes. */
#pragma once

#include <stdbool.h>

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Probe Probe;

/* A prober for 'node' following the daemon's probe configuration. It runs
 * only while the node can carry streams (probe_set_active). Results go to
 * node_probe_result(). With probe.type = "none" no Probe is created
 * (*ret = NULL, returns 0). */
int probe_new(Daemon *d, Node *node, Probe **ret);
/* Stops the timer and any probe in flight. Accepts NULL, returns NULL. */
Probe *probe_free(Probe *p);
/* The node became able (or unable) to carry streams: start probing at a
 * random point of the interval, or stop. */
void probe_set_active(Probe *p, bool active);
