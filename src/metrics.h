/* Counters and histograms the daemon keeps for Prometheus, and the text
 * exposition (format 0.0.4). Daemon-wide figures are kept here; per-node
 * figures live in the nodes and come to metrics_render() as a snapshot,
 * with the other gauges of the moment. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nodeinfo.h"

typedef struct Metrics Metrics;

typedef enum MetricsHistogram {
        METRICS_STREAM_OPEN,  /* channel open requested -> confirmed, seconds */
        METRICS_SSH_CONNECT,  /* TCP connect started -> session ready, seconds */
        METRICS_PROBE,        /* probe duration, seconds */
        _METRICS_HISTOGRAM_MAX,
} MetricsHistogram;

/* Empty counters and histograms. */
int metrics_new(Metrics **ret);
Metrics *metrics_free(Metrics *m);

/* Record one observation in a histogram. */
void metrics_observe(Metrics *m, MetricsHistogram h, double seconds);
/* Count one front-door reply by status code (SOCKS replies count as the
 * HTTP status of the same outcome). */
void metrics_count_frontdoor(Metrics *m, int code);

/* What the exposition shows besides the counters: the state of the moment. */
typedef struct MetricsView {
        const NodeInfo *nodes;           /* one snapshot of every node */
        size_t n_nodes;
        unsigned handshakes_in_flight;
        uint64_t stream_log_suppressed;  /* audit lines held back, ever */
} MetricsView;

/* The whole exposition (text format 0.0.4) of 'm' and 'v', malloc'd and
 * NUL-terminated, its length in *ret_len (may be NULL); NULL on allocation
 * failure. A pure function of what it is given. */
char *metrics_render(const Metrics *m, const MetricsView *v, size_t *ret_len);
