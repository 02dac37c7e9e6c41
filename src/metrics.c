/* Daemon-wide counters and histograms, and the Prometheus exposition of
 * them together with every node's figures. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "metrics.h"

/* Upper bounds in seconds: opens and probes take milliseconds on a LAN and
 * up to the timeouts on a bad day; SSH connects include key exchange. */
static const double stream_open_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10 };
static const double ssh_connect_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
static const double probe_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

typedef struct Histogram {
        const double *bounds;
        size_t n_bounds;
        uint64_t *buckets; /* n_bounds + 1, the last is +Inf; not cumulative */
        uint64_t count;
        double sum;
} Histogram;

/* Status codes the front door answers, in exposition order. */
static const int frontdoor_codes[] = { 200, 400, 403, 405, 408, 431, 500, 502, 503, 504 };

struct Metrics {
        Histogram hist[_METRICS_HISTOGRAM_MAX];
        uint64_t frontdoor[ELEMENTSOF(frontdoor_codes) + 1]; /* last: any other code */
};

int metrics_new(Metrics **ret) {
        static const struct {
                const double *b;
                size_t n;
        } defs[_METRICS_HISTOGRAM_MAX] = {
                [METRICS_STREAM_OPEN] = { stream_open_bounds, ELEMENTSOF(stream_open_bounds) },
                [METRICS_SSH_CONNECT] = { ssh_connect_bounds, ELEMENTSOF(ssh_connect_bounds) },
                [METRICS_PROBE] = { probe_bounds, ELEMENTSOF(probe_bounds) },
        };
        Metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        for (int i = 0; i < _METRICS_HISTOGRAM_MAX; i++) {
                m->hist[i].bounds = defs[i].b;
                m->hist[i].n_bounds = defs[i].n;
                m->hist[i].buckets = calloc(defs[i].n + 1, sizeof(uint64_t));
                if (!m->hist[i].buckets) {
                        metrics_free(m);
                        return -ENOMEM;
                }
        }
        *ret = m;
        return 0;
}

Metrics *metrics_free(Metrics *m) {
        if (!m)
                return NULL;
        for (int i = 0; i < _METRICS_HISTOGRAM_MAX; i++)
                free(m->hist[i].buckets);
        free(m);
        return NULL;
}

void metrics_observe(Metrics *m, MetricsHistogram h, double seconds) {
        Histogram *hist;
        size_t i;

        if (!m || h >= _METRICS_HISTOGRAM_MAX)
                return;
        hist = &m->hist[h];
        for (i = 0; i < hist->n_bounds && seconds > hist->bounds[i]; i++)
                ;
        hist->buckets[i]++;
        hist->count++;
        hist->sum += seconds;
}

void metrics_count_frontdoor(Metrics *m, int code) {
        size_t i;

        if (!m)
                return;
        for (i = 0; i < ELEMENTSOF(frontdoor_codes) && frontdoor_codes[i] != code; i++)
                ;
        m->frontdoor[i]++;
}
