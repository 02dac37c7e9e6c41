/* Counters and histograms the daemon keeps for Prometheus, and the text
 * exposition (format 0.0.4). Per-node figures live in the nodes and are
 * read through node_get_info() at scrape time; daemon-wide ones here. */
#pragma once

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

int metrics_new(Metrics **ret);
Metrics *metrics_free(Metrics *m);

/* Record one observation in a histogram. */
void metrics_observe(Metrics *m, MetricsHistogram h, double seconds);
/* Count one front-door reply by status code (SOCKS replies count as the
 * HTTP status of the same outcome). */
void metrics_count_frontdoor(Metrics *m, int code);

/* The whole exposition for the daemon's current state, malloc'd; NULL on
 * allocation failure. */
char *metrics_render(Daemon *d, size_t *ret_len);
