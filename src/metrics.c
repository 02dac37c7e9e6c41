/* Daemon-wide counters and histograms, and the Prometheus exposition of
 * them together with every node's figures. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "nodeinfo.h"
#include "strbuf.h"

/* Upper bounds in seconds: opens and probes take milliseconds on a LAN and
 * up to the timeouts on a bad day; SSH connects include key exchange. */
static const double stream_open_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10 };
static const double ssh_connect_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
static const double probe_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
/* A dispatch of the loop takes microseconds; one over 10 ms delays every
 * stream and node (the target at 5,000 nodes). */
static const double loop_dispatch_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                               0.025,  0.05,    0.1,    0.25,  0.5,    1,     5 };
/* Streams: an API call takes milliseconds, `kubectl logs -f` or exec hours. */
static const double stream_duration_bounds[] = { 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400 };
static const char *const stream_end_names[_STREAM_END_MAX] = {
        [STREAM_END_DONE] = "done",
        [STREAM_END_CLIENT_RESET] = "client_reset",
        [STREAM_END_NODE_CLOSED] = "node_closed",
        [STREAM_END_ABORTED] = "aborted",
        [STREAM_END_ERROR] = "error",
};

typedef struct Histogram {
        const double *bounds;
        size_t n_bounds;
        uint64_t *buckets; /* n_bounds + 1, the last is +Inf; not cumulative */
        uint64_t count;
        double sum;
} Histogram;

/* Status codes the front door answers: always exposed, so that rate() has a
 * series to work on before the first one happens. Others show once seen. */
static const int frontdoor_codes[] = { 200, 400, 403, 405, 408, 431, 500, 502, 503, 504 };
#define FRONTDOOR_CODE_MIN 100
#define FRONTDOOR_CODE_MAX 599

struct Metrics {
        Histogram hist[_METRICS_HISTOGRAM_MAX];
        Histogram stream_duration[_STREAM_END_MAX];
        uint64_t frontdoor[FRONTDOOR_CODE_MAX - FRONTDOOR_CODE_MIN + 1]; /* by code */
};

int metrics_new(Metrics **ret) {
        static const struct {
                const double *b;
                size_t n;
        } defs[_METRICS_HISTOGRAM_MAX] = {
                [METRICS_STREAM_OPEN] = { stream_open_bounds, ELEMENTSOF(stream_open_bounds) },
                [METRICS_SSH_CONNECT] = { ssh_connect_bounds, ELEMENTSOF(ssh_connect_bounds) },
                [METRICS_PROBE] = { probe_bounds, ELEMENTSOF(probe_bounds) },
                [METRICS_LOOP_DISPATCH] = { loop_dispatch_bounds, ELEMENTSOF(loop_dispatch_bounds) },
        };
        Metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        for (int i = 0; i < _METRICS_HISTOGRAM_MAX + _STREAM_END_MAX; i++) {
                Histogram *h = i < _METRICS_HISTOGRAM_MAX ? &m->hist[i] : &m->stream_duration[i - _METRICS_HISTOGRAM_MAX];
                h->bounds = i < _METRICS_HISTOGRAM_MAX ? defs[i].b : stream_duration_bounds;
                h->n_bounds = i < _METRICS_HISTOGRAM_MAX ? defs[i].n : ELEMENTSOF(stream_duration_bounds);
                h->buckets = calloc(h->n_bounds + 1, sizeof(uint64_t));
                if (!h->buckets) {
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
        for (int i = 0; i < _STREAM_END_MAX; i++)
                free(m->stream_duration[i].buckets);
        free(m);
        return NULL;
}

static void histogram_observe(Histogram *hist, double v) {
        size_t i;

        if (isnan(v))
                return;
        for (i = 0; i < hist->n_bounds && v > hist->bounds[i]; i++)
                ;
        hist->buckets[i]++;
        hist->count++;
        hist->sum += v;
}

void metrics_observe(Metrics *m, MetricsHistogram h, double seconds) {
        if (m && h < _METRICS_HISTOGRAM_MAX)
                histogram_observe(&m->hist[h], seconds);
}

void metrics_observe_stream_end(Metrics *m, StreamEnd e, double seconds) {
        if (m && e < _STREAM_END_MAX)
                histogram_observe(&m->stream_duration[e], seconds);
}

/* Open descriptors, counted by poll(): with no events asked, every free
 * slot of the descriptor table answers POLLNVAL. About 30 ns a slot,
 * where listing /proc/self/fd instantiates a dentry per descriptor (600
 * ns each: 10 ms at 17,000 descriptors, a stall of the loop at every
 * scrape). Falls back to the listing when the table size is unknown. */
static int count_open_fds(const struct rlimit *rl, uint64_t *ret) {
        _cleanup_free_ struct pollfd *v = NULL;
        unsigned long table = 0;
        char line[256];
        uint64_t n = 0;
        FILE *f;

        f = fopen("/proc/self/status", "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "FDSize: %lu", &table) == 1)
                        break;
        fclose(f);
        /* poll() takes no more than RLIMIT_NOFILE entries */
        if (rl->rlim_cur != RLIM_INFINITY)
                table = MIN(table, (unsigned long) rl->rlim_cur);
        if (table == 0 || table > 16U * 1024 * 1024)
                return -ERANGE;
        v = calloc(table, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (unsigned long i = 0; i < table; i++)
                v[i].fd = (int) i;
        if (poll(v, (nfds_t) table, 0) < 0)
                return -errno;
        for (unsigned long i = 0; i < table; i++)
                if (!(v[i].revents & POLLNVAL))
                        n++;
        *ret = n;
        return 0;
}

int metrics_process_read(usec_t start_time, MetricsProcess *ret) {
        MetricsProcess p = { .start_time = (double) start_time / USEC_PER_SEC };
        struct rlimit rl = { .rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY };
        struct rusage ru;
        unsigned long size = 0, resident = 0;
        DIR *dir;
        FILE *f;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
                p.max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t) rl.rlim_cur;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
                p.cpu_seconds = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
                                (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
        f = fopen("/proc/self/statm", "re");
        if (f) {
                if (fscanf(f, "%lu %lu", &size, &resident) == 2)
                        p.resident_bytes = (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
                fclose(f);
        }
        if (count_open_fds(&rl, &p.open_fds) >= 0) {
                *ret = p;
                return 0;
        }
        dir = opendir("/proc/self/fd");
        if (!dir)
                return -errno;
        for (struct dirent *de; (de = readdir(dir));)
                if (de->d_name[0] != '.')
                        p.open_fds++;
        closedir(dir);
        p.open_fds--; /* the directory's own descriptor */
        *ret = p;
        return 0;
}

void metrics_count_frontdoor(Metrics *m, int code) {
        if (!m || code < FRONTDOOR_CODE_MIN || code > FRONTDOOR_CODE_MAX)
                return;
        m->frontdoor[code - FRONTDOOR_CODE_MIN]++;
}

/* ---- the exposition --------------------------------------------------------- */

static void put_family(StrBuf *f, const char *name, const char *type, const char *help) {
        strbuf_printf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format quotes it: backslash, double quote and
 * line feed escaped, everything else as is. */
static void put_label_value(StrBuf *f, const char *v) {
        size_t plain;

        v = v ?: "";
        strbuf_putc(f, '"');
        /* node names: all of it (a plain loop beats strcspn() on short names) */
        for (plain = 0; v[plain] && v[plain] != '\\' && v[plain] != '"' && v[plain] != '\n'; plain++)
                ;
        strbuf_mem(f, v, plain);
        for (const char *p = v + plain; *p; p++)
                switch (*p) {
                case '\\':
                        strbuf_puts(f, "\\\\");
                        break;
                case '"':
                        strbuf_puts(f, "\\\"");
                        break;
                case '\n':
                        strbuf_puts(f, "\\n");
                        break;
                default:
                        strbuf_putc(f, *p);
                }
        strbuf_putc(f, '"');
}

/* Shortest form that reads back as the same double; Go's spellings for the
 * values C prints otherwise. */
static void put_double(StrBuf *f, double v) {
        char buf[64];

        if (isnan(v)) {
                strbuf_puts(f, "NaN");
                return;
        }
        if (isinf(v)) {
                strbuf_puts(f, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v)
                snprintf(buf, sizeof(buf), "%.17g", v);
        strbuf_puts(f, buf);
}

/* name{node="..."[,key="value"]} value */
static void put_node_sample(StrBuf *f, const char *name, const char *node, const char *key, const char *value,
                            uint64_t v) {
        strbuf_puts(f, name);
        strbuf_puts(f, "{node=");
        put_label_value(f, node);
        if (key) {
                strbuf_putc(f, ',');
                strbuf_puts(f, key);
                strbuf_putc(f, '=');
                put_label_value(f, value);
        }
        strbuf_puts(f, "} ");
        strbuf_u64(f, v);
        strbuf_putc(f, '\n');
}

/* The samples of one histogram; with a 'result' (NULL: none), each carries
 * it as a label. */
static void put_histogram_samples(StrBuf *f, const char *name, const char *result, const Histogram *h) {
        char label[64] = "", labels[64] = "";
        uint64_t cumulative = 0;

        if (result) {
                snprintf(label, sizeof(label), "result=\"%s\",", result);
                snprintf(labels, sizeof(labels), "{result=\"%s\"}", result);
        }
        for (size_t i = 0; i < h->n_bounds; i++) {
                cumulative += h->buckets[i];
                strbuf_printf(f, "%s_bucket{%sle=\"", name, label);
                put_double(f, h->bounds[i]);
                strbuf_printf(f, "\"} %" PRIu64 "\n", cumulative);
        }
        strbuf_printf(f, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, label, h->count);
        strbuf_printf(f, "%s_sum%s ", name, labels);
        put_double(f, h->sum);
        strbuf_printf(f, "\n%s_count%s %" PRIu64 "\n", name, labels, h->count);
}

static void put_histogram(StrBuf *f, const char *name, const char *help, const Histogram *h) {
        put_family(f, name, "histogram", help);
        put_histogram_samples(f, name, NULL, h);
}

/* Per-node figures with no label but the node's name. */
typedef uint64_t (*NodeValue)(const NodeInfo *i);

static uint64_t node_value_up(const NodeInfo *i) {
        return i->sessions_up > 0;
}
static uint64_t node_value_sessions(const NodeInfo *i) {
        return i->sessions_up;
}
static uint64_t node_value_pool_size(const NodeInfo *i) {
        return i->sessions_total;
}
static uint64_t node_value_streams(const NodeInfo *i) {
        return i->streams;
}
static uint64_t node_value_opens_pending(const NodeInfo *i) {
        return i->opens_pending;
}
static uint64_t node_value_reconnects(const NodeInfo *i) {
        return i->reconnects;
}
static uint64_t node_value_probe_failures(const NodeInfo *i) {
        return i->probe_failures;
}

static uint64_t node_value_migrated(const NodeInfo *i) {
        return i->migrated;
}
static uint64_t node_value_fallbacks(const NodeInfo *i) {
        return i->fallbacks;
}
static uint64_t node_value_upstream_failures(const NodeInfo *i) {
        return i->upstream_failures;
}
static uint64_t node_value_upstream_ok(const NodeInfo *i) {
        return i->upstream.valid && i->upstream.ok;
}

static const struct {
        const char *name, *type, *help;
        NodeValue value;
} node_families[] = {
        { "sshtund_node_up", "gauge",
          "1 while at least one SSH session to the node is up (it is reachable), else 0.", node_value_up },
        { "sshtund_sessions", "gauge", "SSH sessions to the node that are up.", node_value_sessions },
        { "sshtund_pool_size", "gauge", "SSH sessions the node's pool keeps, up or not (ssh.pool_size).",
          node_value_pool_size },
        { "sshtund_streams_active", "gauge", "Streams open through the node now.", node_value_streams },
        { "sshtund_channel_opens_pending", "gauge",
          "Stream channel opens queued or in flight on the node's sessions (one at a time per session).",
          node_value_opens_pending },
        { "sshtund_reconnects_total", "counter", "SSH sessions to the node lost after having been up.",
          node_value_reconnects },
        { "sshtund_probe_failures_total", "counter", "Kubelet health probes through the node that failed.",
          node_value_probe_failures },
        { "sshtund_node_migrated", "gauge", "1 while the node is listed in konnectivity.nodes, else 0.",
          node_value_migrated },
        { "sshtund_upstream_probe_failures_total", "counter",
          "Checks of the node's path through konnectivity-server that failed.", node_value_upstream_failures },
        { "sshtund_upstream_probe_ok", "gauge",
          "1 when the last check of the node's path through konnectivity-server passed, 0 when it failed "
          "or none has run.",
          node_value_upstream_ok },
        { "sshtund_konnectivity_fallbacks_total", "counter",
          "Streams of the migrated node sent over SSH because its path through konnectivity-server failed "
          "(konnectivity.fallback_to_ssh).",
          node_value_fallbacks },
};

static void put_nodes(StrBuf *f, const NodeInfo *infos, size_t n) {
        static const char *const directions[] = { "up", "down" };

        for (size_t k = 0; k < ELEMENTSOF(node_families); k++) {
                put_family(f, node_families[k].name, node_families[k].type, node_families[k].help);
                for (size_t i = 0; i < n; i++)
                        put_node_sample(f, node_families[k].name, infos[i].name, NULL, NULL,
                                        node_families[k].value(&infos[i]));
        }

        put_family(f, "sshtund_node_state", "gauge",
                   "The node's state: 1 for the state it is in, 0 for every other.");
        for (size_t i = 0; i < n; i++)
                for (NodeState s = 0; s < _NODE_STATE_MAX; s++) {
                        const char *name = node_state_to_string(s);
                        if (name)
                                put_node_sample(f, "sshtund_node_state", infos[i].name, "state", name,
                                                infos[i].state == s);
                }

        put_family(f, "sshtund_node_route", "gauge",
                   "Where the node's new streams go: 1 for its route (ssh or konnectivity), 0 for the other.");
        for (size_t i = 0; i < n; i++)
                for (NodeRoute r = ROUTE_SSH; r <= ROUTE_KONNECTIVITY; r++)
                        put_node_sample(f, "sshtund_node_route", infos[i].name, "route", node_route_to_string(r),
                                        infos[i].route == r);

        put_family(f, "sshtund_streams_total", "counter",
                   "Stream opens through the node by outcome: ok, refused (by the node), unavailable "
                   "(no ready session), abandoned (the client left first).");
        for (size_t i = 0; i < n; i++)
                for (StreamResult r = 0; r < _STREAM_RESULT_MAX; r++) {
                        const char *name = stream_result_to_string(r);
                        if (name)
                                put_node_sample(f, "sshtund_streams_total", infos[i].name, "result", name,
                                                infos[i].streams_by_result[r]);
                }

        put_family(f, "sshtund_stream_bytes_total", "counter",
                   "Bytes carried by streams through the node that have ended: up is client to node, "
                   "down node to client.");
        for (size_t i = 0; i < n; i++)
                for (size_t d = 0; d < ELEMENTSOF(directions); d++)
                        put_node_sample(f, "sshtund_stream_bytes_total", infos[i].name, "direction",
                                        directions[d], d == 0 ? infos[i].bytes_up : infos[i].bytes_down);
}

/* How many nodes are in each state: the view that stays when per-node
 * series are off. Every state, zeros included, so that sums work. */
static void put_node_states(StrBuf *f, const NodeInfo *infos, size_t n) {
        uint64_t counts[_NODE_STATE_MAX] = {};

        for (size_t i = 0; i < n; i++)
                if (infos[i].state >= 0 && infos[i].state < _NODE_STATE_MAX)
                        counts[infos[i].state]++;
        put_family(f, "sshtund_nodes", "gauge", "Nodes in each state.");
        for (NodeState s = 0; s < _NODE_STATE_MAX; s++) {
                const char *name = node_state_to_string(s);
                if (!name)
                        continue;
                strbuf_puts(f, "sshtund_nodes{state=");
                put_label_value(f, name);
                strbuf_printf(f, "} %" PRIu64 "\n", counts[s]);
        }
}

static void put_gauge(StrBuf *f, const char *name, const char *help, double v) {
        put_family(f, name, "gauge", help);
        strbuf_printf(f, "%s ", name);
        put_double(f, v);
        strbuf_putc(f, '\n');
}

static void put_process(StrBuf *f, const MetricsProcess *p) {
        put_gauge(f, "process_open_fds", "Number of open file descriptors.", (double) p->open_fds);
        put_gauge(f, "process_max_fds", "Maximum number of open file descriptors.", (double) p->max_fds);
        put_gauge(f, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                  p->start_time);
        put_gauge(f, "process_resident_memory_bytes", "Resident memory size in bytes.", (double) p->resident_bytes);
        put_family(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        strbuf_puts(f, "process_cpu_seconds_total ");
        put_double(f, p->cpu_seconds);
        strbuf_putc(f, '\n');
}

static void put_stream_durations(StrBuf *f, const Metrics *m) {
        static const char name[] = "sshtund_stream_duration_seconds";

        put_family(f, name, "histogram",
                   "How long streams lasted, by how they ended: done, client_reset, node_closed, aborted, error.");
        for (StreamEnd e = 0; e < _STREAM_END_MAX; e++)
                put_histogram_samples(f, name, stream_end_names[e], &m->stream_duration[e]);
}

static void put_frontdoor(StrBuf *f, const Metrics *m) {
        put_family(f, "sshtund_frontdoor_requests_total", "counter",
                   "Front-door requests by the HTTP status of the reply (SOCKS5 replies as the status of "
                   "the same outcome).");
        for (int code = FRONTDOOR_CODE_MIN; code <= FRONTDOOR_CODE_MAX; code++) {
                uint64_t v = m->frontdoor[code - FRONTDOOR_CODE_MIN];
                bool listed = false;

                for (size_t i = 0; i < ELEMENTSOF(frontdoor_codes); i++)
                        listed = listed || frontdoor_codes[i] == code;
                if (listed || v > 0)
                        strbuf_printf(f, "sshtund_frontdoor_requests_total{code=\"%d\"} %" PRIu64 "\n", code, v);
        }
}

char *metrics_render(const Metrics *m, const MetricsView *v, size_t *ret_len) {
        /* about 1.5 KiB a node with the per-node families: at 5,000 nodes
         * 160,000 lines, which stdio took 50-150 ms to write (a stall of
         * the whole loop); appending to one buffer takes under 10 */
        StrBuf out = {}, *f = &out;

        if (!strbuf_reserve(f, 16384 + (v->per_node ? v->n_nodes * 1600 : 0)))
                return NULL;

        put_family(f, "sshtund_build_info", "gauge", "Always 1; the version of sshtund in its label.");
        strbuf_puts(f, "sshtund_build_info{version=");
        put_label_value(f, PACKAGE_VERSION);
        strbuf_puts(f, "} 1\n");

        put_node_states(f, v->nodes, v->n_nodes);
        if (v->per_node)
                put_nodes(f, v->nodes, v->n_nodes);

        put_family(f, "sshtund_handshakes_in_flight", "gauge",
                   "SSH handshakes under way, whole daemon (at most ssh.max_handshakes).");
        strbuf_printf(f, "sshtund_handshakes_in_flight %u\n", v->handshakes_in_flight);
        put_gauge(f, "sshtund_frontdoor_connections",
                  "Front-door connections open: requests being read or opened, and streams relaying.",
                  v->frontdoor_connections);
        put_gauge(f, "sshtund_frontdoor_connections_max",
                  "proxy.max_clients: past it new front-door connections wait in the listen backlog.",
                  v->frontdoor_connections_max);
        put_gauge(f, "sshtund_config_last_reload_successful",
                  "1 if the last reload (or the start) applied the configuration file, 0 if it was rejected.",
                  v->reload_ok);
        put_gauge(f, "sshtund_config_last_reload_success_timestamp_seconds",
                  "When the configuration was last applied, seconds since the epoch.",
                  (double) v->reload_ok_at / USEC_PER_SEC);
        put_gauge(f, "sshtund_loop_dispatch_max_seconds",
                  "The longest single dispatch of the event loop since start, in seconds.", v->loop_dispatch_max);
        if (v->process)
                put_process(f, v->process);

        if (m) {
                put_frontdoor(f, m);
                put_histogram(f, "sshtund_stream_open_seconds",
                              "Time from a stream's channel open request to the node's confirmation.",
                              &m->hist[METRICS_STREAM_OPEN]);
                put_histogram(f, "sshtund_ssh_connect_seconds",
                              "Time from the TCP connect to a ready SSH session (key exchange and "
                              "authentication included).",
                              &m->hist[METRICS_SSH_CONNECT]);
                put_histogram(f, "sshtund_probe_seconds", "Duration of kubelet health probes through a node.",
                              &m->hist[METRICS_PROBE]);
                put_histogram(f, "sshtund_loop_dispatch_seconds",
                              "How long each dispatch of the event loop took: everything else waits meanwhile.",
                              &m->hist[METRICS_LOOP_DISPATCH]);
                put_stream_durations(f, m);
        }
        put_family(f, "sshtund_stream_log_suppressed_total", "counter",
                   "Audit log lines for finished streams held back by the rate limit.");
        strbuf_printf(f, "sshtund_stream_log_suppressed_total %" PRIu64 "\n", v->stream_log_suppressed);

        return strbuf_take(f, ret_len);
}
