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
        METRICS_LOOP_DISPATCH, /* one dispatch of the event loop, seconds */
        _METRICS_HISTOGRAM_MAX,
} MetricsHistogram;

/* How a stream ended (the label of sshtund_stream_duration_seconds). */
typedef enum StreamEnd {
        STREAM_END_DONE,         /* both directions finished */
        STREAM_END_CLIENT_RESET, /* the client reset or vanished */
        STREAM_END_NODE_CLOSED,  /* the far end failed (session lost, channel error) */
        STREAM_END_ABORTED,      /* sshtund cut it (shutdown, node removed) */
        STREAM_END_ERROR,        /* any other error on the client socket */
        _STREAM_END_MAX,
} StreamEnd;

/* Empty counters and histograms. */
int metrics_new(Metrics **ret);
Metrics *metrics_free(Metrics *m);

/* Record one observation in a histogram. */
void metrics_observe(Metrics *m, MetricsHistogram h, double seconds);
/* A stream ended after 'seconds'. */
void metrics_observe_stream_end(Metrics *m, StreamEnd e, double seconds);
/* Count one front-door reply by status code (SOCKS replies count as the
 * HTTP status of the same outcome). */
void metrics_count_frontdoor(Metrics *m, int code);

/* The process as the official Prometheus clients describe it. */
typedef struct MetricsProcess {
        uint64_t open_fds, max_fds;
        double start_time;       /* seconds since the epoch */
        uint64_t resident_bytes;
        double cpu_seconds;      /* user + system */
} MetricsProcess;

/* Read the process figures from /proc and getrlimit(); 0 or -errno. */
int metrics_process_read(usec_t start_time, MetricsProcess *ret);

/* What the exposition shows besides the counters: the state of the moment. */
typedef struct MetricsView {
        const NodeInfo *nodes;           /* one snapshot of every node */
        size_t n_nodes;
        bool per_node;                   /* the per-node families (admin.metrics_per_node) */
        unsigned handshakes_in_flight;
        uint64_t stream_log_suppressed;  /* audit lines held back, ever */
        unsigned frontdoor_connections;  /* requests being read or opened, and streams relaying */
        unsigned frontdoor_connections_max;
        bool reload_ok;                  /* the last reload (or the start) succeeded */
        usec_t reload_ok_at;             /* CLOCK_REALTIME of the last success */
        double loop_dispatch_max;        /* seconds: the longest dispatch of the event loop */
        const MetricsProcess *process;   /* may be NULL */
} MetricsView;

/* The whole exposition (text format 0.0.4) of 'm' and 'v', malloc'd and
 * NUL-terminated, its length in *ret_len (may be NULL); NULL on allocation
 * failure. A pure function of what it is given. */
char *metrics_render(const Metrics *m, const MetricsView *v, size_t *ret_len);
