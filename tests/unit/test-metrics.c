/* Tests for the Prometheus exposition: every family with HELP and TYPE, the
 * exact per-node series, label escaping, histograms, front-door codes and
 * the audit lines held back. metrics_render() is a pure function of the
 * counters and a snapshot it is given: the tests give it one. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"
#include "macro.h"
#include "metrics.h"
#include "nodeinfo.h"

/* ---- fixtures --------------------------------------------------------------- */

static NodeInfo test_nodes[] = {
        { .name = "node-1", .state = NODE_UP, .sessions_up = 2, .sessions_total = 2, .streams = 7,
          .reconnects = 3, .probe_failures = 4, .streams_by_result = { 5000000000ULL, 2, 1, 9 },
          .bytes_up = 1234, .bytes_down = 18446744073709551615ULL },
        { .name = "node-2", .state = NODE_BACKOFF, .sessions_total = 1 },
        { .name = "node-3", .state = NODE_DEGRADED, .sessions_up = 1, .sessions_total = 1, .streams = 1 },
};

typedef struct Fixture {
        Metrics *metrics;
        MetricsView view;
        char *text;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->view = (MetricsView) { .nodes = test_nodes, .n_nodes = ELEMENTSOF(test_nodes), .per_node = true,
                                  .handshakes_in_flight = 3 };
        assert_int_equal(metrics_new(&f->metrics), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        metrics_free(f->metrics);
        free(f->text);
        free(f);
        return 0;
}

/* Render into f->text (replacing the last one); checks the length. */
static const char *render(Fixture *f) {
        size_t len = 0;

        free(f->text);
        f->text = metrics_render(f->metrics, &f->view, &len);
        assert_non_null(f->text);
        assert_int_equal(strlen(f->text), len);
        return f->text;
}

/* 'line' is one whole line of 'text'. */
static void assert_line(const char *text, const char *line) {
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void assert_no_line_starting(const char *text, const char *prefix) {
        for (const char *p = text; (p = strstr(p, prefix)); p++)
                if (p == text || p[-1] == '\n')
                        fail_msg("unexpected line starting \"%s\"", prefix);
}

/* The name of the sample on 'line' (up to '{' or ' '), into buf. */
static void sample_name(const char *line, char *buf, size_t size) {
        size_t n = strcspn(line, "{ ");

        assert_true(n > 0 && n < size);
        memcpy(buf, line, n);
        buf[n] = 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

/* Text-format structure: every family has HELP then TYPE, once; its samples
 * follow at once (one group per family), named after it (histograms:
 * _bucket, _sum, _count); counters end in _total; each line ends in '\n'.
 * Returns the number of families. */
static size_t check_structure(const char *text) {
        char family[128] = "", type[32] = "", seen[4096] = " ";
        size_t families = 0;

        assert_true(*text && text[strlen(text) - 1] == '\n');
        for (const char *line = text; *line;) {
                const char *end = strchr(line, '\n');
                _cleanup_free_ char *l = strndup(line, (size_t) (end - line));

                assert_non_null(l);
                if (strncmp(l, "# HELP ", 7) == 0) {
                        char key[140];
                        sample_name(l + 7, family, sizeof(family));
                        snprintf(key, sizeof(key), " %s ", family);
                        if (strstr(seen, key))
                                fail_msg("family %s appears twice", family);
                        assert_true(strlen(seen) + strlen(family) + 2 < sizeof(seen));
                        strcat(seen, family);
                        strcat(seen, " ");
                        assert_true(strlen(l) > 8 + strlen(family)); /* some help text */
                        type[0] = 0;
                        families++;
                } else if (strncmp(l, "# TYPE ", 7) == 0) {
                        char name[128];
                        sample_name(l + 7, name, sizeof(name));
                        assert_string_equal(name, family); /* right after its HELP */
                        assert_int_equal(type[0], 0);
                        snprintf(type, sizeof(type), "%s", l + 8 + strlen(name));
                        assert_true(streq(type, "counter") || streq(type, "gauge") ||
                                    streq(type, "histogram"));
                        if (streq(type, "counter"))
                                assert_true(has_suffix(family, "_total"));
                        else
                                assert_false(has_suffix(family, "_total"));
                } else {
                        char name[160], want[160];
                        assert_true(l[0] != '#');
                        assert_true(type[0] != 0);
                        sample_name(l, name, sizeof(name));
                        if (streq(type, "histogram")) {
                                bool ok = false;
                                static const char *const parts[] = { "_bucket", "_sum", "_count" };
                                for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                                        snprintf(want, sizeof(want), "%s%s", family, parts[i]);
                                        ok = ok || streq(name, want);
                                }
                                if (!ok)
                                        fail_msg("%s in histogram %s", name, family);
                        } else
                                assert_string_equal(name, family);
                        /* a value after the last space */
                        assert_non_null(strrchr(l, ' '));
                        assert_true(strrchr(l, ' ')[1] != 0);
                }
                line = end + 1;
        }
        return families;
}

/* "# TYPE name type" is there. */
static void assert_family(const char *text, const char *name, const char *type) {
        char line[256];

        snprintf(line, sizeof(line), "# TYPE %s %s", name, type);
        assert_line(text, line);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_families(void **state) {
        static const struct {
                const char *name, *type;
        } required[] = {
                { "sshtund_build_info", "gauge" },
                { "sshtund_node_up", "gauge" },
                { "sshtund_node_state", "gauge" },
                { "sshtund_sessions", "gauge" },
                { "sshtund_streams_active", "gauge" },
                { "sshtund_streams_total", "counter" },
                { "sshtund_stream_bytes_total", "counter" },
                { "sshtund_stream_open_seconds", "histogram" },
                { "sshtund_ssh_connect_seconds", "histogram" },
                { "sshtund_reconnects_total", "counter" },
                { "sshtund_probe_seconds", "histogram" },
                { "sshtund_probe_failures_total", "counter" },
                { "sshtund_handshakes_in_flight", "gauge" },
                { "sshtund_frontdoor_requests_total", "counter" },
                { "sshtund_node_route", "gauge" },
                { "sshtund_node_migrated", "gauge" },
                { "sshtund_upstream_probe_ok", "gauge" },
                { "sshtund_konnectivity_fallbacks_total", "counter" },
                { "sshtund_nodes", "gauge" },
                { "sshtund_channel_opens_pending", "gauge" },
                { "sshtund_frontdoor_connections", "gauge" },
                { "sshtund_frontdoor_connections_max", "gauge" },
                { "sshtund_stream_duration_seconds", "histogram" },
                { "sshtund_config_last_reload_successful", "gauge" },
                { "sshtund_config_last_reload_success_timestamp_seconds", "gauge" },
                { "sshtund_loop_dispatch_max_seconds", "gauge" },
                { "sshtund_loop_dispatch_seconds", "histogram" },
        };
        Fixture *f = *state;
        const char *text = render(f);

        assert_true(check_structure(text) >= ELEMENTSOF(required));
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                assert_family(text, required[i].name, required[i].type);
        assert_line(text, "sshtund_build_info{version=\"" PACKAGE_VERSION "\"} 1");
        assert_line(text, "sshtund_handshakes_in_flight 3");
}

static void test_node_series(void **state) {
        Fixture *f = *state;
        const char *text = render(f);

        assert_line(text, "sshtund_node_up{node=\"node-1\"} 1");
        assert_line(text, "sshtund_node_up{node=\"node-2\"} 0");
        /* degraded still has its SSH session */
        assert_line(text, "sshtund_node_up{node=\"node-3\"} 1");
        assert_line(text, "sshtund_sessions{node=\"node-1\"} 2");
        assert_line(text, "sshtund_sessions{node=\"node-2\"} 0");
        assert_line(text, "sshtund_streams_active{node=\"node-1\"} 7");
        assert_line(text, "sshtund_streams_active{node=\"node-3\"} 1");
        assert_line(text, "sshtund_reconnects_total{node=\"node-1\"} 3");
        assert_line(text, "sshtund_probe_failures_total{node=\"node-1\"} 4");
        assert_line(text, "sshtund_probe_failures_total{node=\"node-2\"} 0");

        /* counters past 32 bits and at the top of 64 */
        assert_line(text, "sshtund_streams_total{node=\"node-1\",result=\"ok\"} 5000000000");
        assert_line(text, "sshtund_streams_total{node=\"node-1\",result=\"refused\"} 2");
        assert_line(text, "sshtund_streams_total{node=\"node-1\",result=\"unavailable\"} 1");
        assert_line(text, "sshtund_streams_total{node=\"node-1\",result=\"abandoned\"} 9");
        assert_line(text, "sshtund_streams_total{node=\"node-2\",result=\"ok\"} 0");
        assert_line(text, "sshtund_stream_bytes_total{node=\"node-1\",direction=\"up\"} 1234");
        assert_line(text, "sshtund_stream_bytes_total{node=\"node-1\",direction=\"down\"} 18446744073709551615");
        assert_line(text, "sshtund_stream_bytes_total{node=\"node-2\",direction=\"down\"} 0");
}

static void test_node_state_one_hot(void **state) {
        Fixture *f = *state;
        const char *text = render(f);
        char line[128];

        /* one series per state name and node, 1 for the current state only */
        for (size_t i = 0; i < ELEMENTSOF(test_nodes); i++)
                for (NodeState s = 0; s < _NODE_STATE_MAX; s++) {
                        snprintf(line, sizeof(line), "sshtund_node_state{node=\"%s\",state=\"%s\"} %d",
                                 test_nodes[i].name, node_state_to_string(s),
                                 test_nodes[i].state == s);
                        assert_line(text, line);
                }
        assert_line(text, "sshtund_node_state{node=\"node-2\",state=\"backoff\"} 1");
        assert_line(text, "sshtund_node_state{node=\"node-2\",state=\"up\"} 0");
}

static void test_label_escaping(void **state) {
        Fixture *f = *state;
        NodeInfo odd[] = { { .name = "a\"b\\c\nd", .state = NODE_UP, .sessions_up = 1 } };
        const char *text;

        f->view.nodes = odd;
        f->view.n_nodes = 1;
        text = render(f);
        check_structure(text);
        assert_line(text, "sshtund_node_up{node=\"a\\\"b\\\\c\\nd\"} 1");
        assert_line(text, "sshtund_node_state{node=\"a\\\"b\\\\c\\nd\",state=\"up\"} 1");
}

/* The move to Konnectivity: the route one-hot, the migration flag, the
 * upstream check's last verdict, and the fallbacks to SSH. */
static void test_konnectivity_series(void **state) {
        Fixture *f = *state;
        NodeInfo nodes[] = {
                { .name = "on-k", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true,
                  .upstream = { .valid = true, .ok = true, .latency = 2000 } },
                { .name = "falling", .state = NODE_UP, .route = ROUTE_SSH, .migrated = true, .falling_back = true,
                  .upstream = { .valid = true, .ok = false, .error = "HTTP 500" }, .fallbacks = 17 },
                { .name = "on-ssh", .state = NODE_UP, .route = ROUTE_SSH },
        };
        const char *text;

        f->view.nodes = nodes;
        f->view.n_nodes = ELEMENTSOF(nodes);
        text = render(f);
        check_structure(text);
        assert_family(text, "sshtund_node_route", "gauge");
        assert_family(text, "sshtund_node_migrated", "gauge");
        assert_family(text, "sshtund_upstream_probe_ok", "gauge");
        assert_family(text, "sshtund_konnectivity_fallbacks_total", "counter");

        assert_line(text, "sshtund_node_route{node=\"on-k\",route=\"konnectivity\"} 1");
        assert_line(text, "sshtund_node_route{node=\"on-k\",route=\"ssh\"} 0");
        assert_line(text, "sshtund_node_route{node=\"falling\",route=\"ssh\"} 1");
        assert_line(text, "sshtund_node_route{node=\"falling\",route=\"konnectivity\"} 0");
        assert_line(text, "sshtund_node_route{node=\"on-ssh\",route=\"ssh\"} 1");
        assert_line(text, "sshtund_node_migrated{node=\"on-k\"} 1");
        assert_line(text, "sshtund_node_migrated{node=\"falling\"} 1");
        assert_line(text, "sshtund_node_migrated{node=\"on-ssh\"} 0");
        assert_line(text, "sshtund_upstream_probe_ok{node=\"on-k\"} 1");
        assert_line(text, "sshtund_upstream_probe_ok{node=\"falling\"} 0");
        /* no check yet: not ok */
        assert_line(text, "sshtund_upstream_probe_ok{node=\"on-ssh\"} 0");
        assert_line(text, "sshtund_konnectivity_fallbacks_total{node=\"falling\"} 17");
        assert_line(text, "sshtund_konnectivity_fallbacks_total{node=\"on-k\"} 0");
}

static void test_no_nodes(void **state) {
        Fixture *f = *state;
        const char *text;

        f->view.n_nodes = 0;
        text = render(f);
        /* the families stay, without samples */
        check_structure(text);
        assert_family(text, "sshtund_node_up", "gauge");
        assert_family(text, "sshtund_streams_total", "counter");
        assert_no_line_starting(text, "sshtund_node_up{");
        assert_no_line_starting(text, "sshtund_node_state{");
}

static void test_histogram(void **state) {
        Fixture *f = *state;
        Metrics *m = f->metrics;
        const char *text;

        metrics_observe(m, METRICS_STREAM_OPEN, 0.0005); /* on a bound: le is inclusive */
        metrics_observe(m, METRICS_STREAM_OPEN, 0.003);
        metrics_observe(m, METRICS_STREAM_OPEN, 0.25);
        metrics_observe(m, METRICS_STREAM_OPEN, 99);   /* above the last bound */
        metrics_observe(m, METRICS_STREAM_OPEN, NAN);  /* ignored */
        metrics_observe(m, _METRICS_HISTOGRAM_MAX, 1); /* ignored */
        metrics_observe(m, METRICS_SSH_CONNECT, 0.1);
        text = render(f);
        check_structure(text);

        /* cumulative */
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.0005\"} 1");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.001\"} 1");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.0025\"} 1");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.005\"} 2");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.1\"} 2");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"0.25\"} 3");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"10\"} 3");
        assert_line(text, "sshtund_stream_open_seconds_bucket{le=\"+Inf\"} 4");
        assert_line(text, "sshtund_stream_open_seconds_sum 99.2535");
        assert_line(text, "sshtund_stream_open_seconds_count 4");

        assert_line(text, "sshtund_ssh_connect_seconds_bucket{le=\"0.05\"} 0");
        assert_line(text, "sshtund_ssh_connect_seconds_bucket{le=\"0.1\"} 1");
        assert_line(text, "sshtund_ssh_connect_seconds_bucket{le=\"30\"} 1");
        assert_line(text, "sshtund_ssh_connect_seconds_bucket{le=\"+Inf\"} 1");
        assert_line(text, "sshtund_ssh_connect_seconds_count 1");

        /* nothing observed: zeros, not missing */
        assert_line(text, "sshtund_probe_seconds_bucket{le=\"0.001\"} 0");
        assert_line(text, "sshtund_probe_seconds_bucket{le=\"+Inf\"} 0");
        assert_line(text, "sshtund_probe_seconds_sum 0");
        assert_line(text, "sshtund_probe_seconds_count 0");
}

static void test_frontdoor_codes(void **state) {
        Fixture *f = *state;
        Metrics *m = f->metrics;
        const char *text;

        text = render(f);
        /* the codes the front door answers exist before the first request */
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"200\"} 0");
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"403\"} 0");
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"504\"} 0");
        assert_no_line_starting(text, "sshtund_frontdoor_requests_total{code=\"418\"}");

        metrics_count_frontdoor(m, 403);
        metrics_count_frontdoor(m, 403);
        metrics_count_frontdoor(m, 200);
        metrics_count_frontdoor(m, 418); /* not a front-door answer today: shown once seen */
        metrics_count_frontdoor(m, 42);  /* no HTTP status: dropped */
        metrics_count_frontdoor(m, 600);
        text = render(f);
        check_structure(text);
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"403\"} 2");
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"200\"} 1");
        assert_line(text, "sshtund_frontdoor_requests_total{code=\"418\"} 1");
        assert_no_line_starting(text, "sshtund_frontdoor_requests_total{code=\"42\"}");
        assert_no_line_starting(text, "sshtund_frontdoor_requests_total{code=\"600\"}");
}

/* The figures of the moment come from the view as given. */
static void test_daemon_gauges(void **state) {
        Fixture *f = *state;
        MetricsProcess proc = {};
        const char *text;

        f->view.frontdoor_connections = 17;
        f->view.frontdoor_connections_max = 4096;
        f->view.reload_ok = false;
        f->view.reload_ok_at = 1796606433500000ULL;
        f->view.loop_dispatch_max = 0.0125;
        metrics_observe(f->metrics, METRICS_LOOP_DISPATCH, 0.00002);
        metrics_observe(f->metrics, METRICS_LOOP_DISPATCH, 0.012);
        text = render(f);
        /* what the bench reads a phase's longest dispatch from */
        assert_line(text, "sshtund_loop_dispatch_seconds_bucket{le=\"0.0001\"} 1");
        assert_line(text, "sshtund_loop_dispatch_seconds_bucket{le=\"0.01\"} 1");
        assert_line(text, "sshtund_loop_dispatch_seconds_bucket{le=\"0.025\"} 2");
        assert_line(text, "sshtund_loop_dispatch_seconds_count 2");
        assert_line(text, "sshtund_frontdoor_connections 17");
        assert_line(text, "sshtund_frontdoor_connections_max 4096");
        assert_line(text, "sshtund_config_last_reload_successful 0");
        assert_line(text, "sshtund_config_last_reload_success_timestamp_seconds 1796606433.5");
        assert_line(text, "sshtund_loop_dispatch_max_seconds 0.0125");
        /* no process figures given: none shown */
        assert_no_line_starting(text, "process_");

        assert_int_equal(metrics_process_read(1796606433000000ULL, &proc), 0);
        assert_true(proc.open_fds >= 3 && proc.open_fds <= proc.max_fds);
        assert_true(proc.resident_bytes > 0);
        f->view.process = &proc;
        text = render(f);
        assert_line(text, "process_start_time_seconds 1796606433");
        assert_family(text, "process_cpu_seconds_total", "counter");
        assert_family(text, "process_open_fds", "gauge");
        assert_family(text, "process_max_fds", "gauge");
        assert_family(text, "process_resident_memory_bytes", "gauge");
        check_structure(text);
}

/* How many nodes per state; and with per-node series off, only that. */
static void test_node_counts(void **state) {
        Fixture *f = *state;
        const char *text = render(f);

        assert_line(text, "sshtund_nodes{state=\"up\"} 1");
        assert_line(text, "sshtund_nodes{state=\"backoff\"} 1");
        assert_line(text, "sshtund_nodes{state=\"degraded\"} 1");
        assert_line(text, "sshtund_nodes{state=\"hostkey-mismatch\"} 0");
        assert_line(text, "sshtund_channel_opens_pending{node=\"node-1\"} 0");

        f->view.per_node = false;
        text = render(f);
        check_structure(text);
        assert_line(text, "sshtund_nodes{state=\"up\"} 1");
        assert_no_line_starting(text, "sshtund_node_up");
        assert_no_line_starting(text, "sshtund_streams_total");
        assert_no_line_starting(text, "sshtund_channel_opens_pending");
        assert_line(text, "sshtund_handshakes_in_flight 3");
}

/* The audit lines held back (audit.c counts them) are exposed as given. */
static void test_stream_log_suppressed(void **state) {
        Fixture *f = *state;

        assert_line(render(f), "sshtund_stream_log_suppressed_total 0");
        f->view.stream_log_suppressed = 18446744073709551615ULL;
        assert_line(render(f), "sshtund_stream_log_suppressed_total 18446744073709551615");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_families, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_series, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_state_one_hot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
                cmocka_unit_test_setup_teardown(test_konnectivity_series, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_nodes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
                cmocka_unit_test_setup_teardown(test_frontdoor_codes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_log_suppressed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_daemon_gauges, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_counts, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
