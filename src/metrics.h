/* Counters and histograms the daemon keeps for Prometheus, and the text
 * exposition (format 0.0.4). Per-node figures live in the nodes and are
 * read through node_get_info() at scrape time; daemon-wide ones here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Daemon Daemon;
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

/* The daemon-wide budget of per-stream audit log lines (100 per 10 s):
 * true if one may be written now, and then *ret_suppressed (may be NULL)
 * holds how many were held back since the last one written. Held-back
 * lines are counted for sshtund_stream_log_suppressed_total. */
bool metrics_stream_log_allow(Metrics *m, unsigned *ret_suppressed);

/* The whole exposition (text format 0.0.4) for the daemon's current state,
 * malloc'd and NUL-terminated, its length in *ret_len (may be NULL); NULL on
 * allocation failure. */
char *metrics_render(Daemon *d, size_t *ret_len);
