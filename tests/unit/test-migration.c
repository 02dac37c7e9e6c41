/* The Konnectivity route policy: the decision table (every combination of
 * its inputs against the table DESIGN and the man page state), the SSH pool
 * a migrated node keeps, and the per-node route state over real nodes with
 * sessions the test drives: a node leaving the list rolls back over
 * Konnectivity until its SSH is ready, and the snapshot says so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fake-session.h"
#include "log.h"
#include "migration.h"
#include "upstream.h"

/* The table as the documentation states it, written independently. */
static NodeRoute expected(const RouteInputs *in) {
        if (!in->upstream)
                return ROUTE_SSH;
        if (in->listed) {
                bool failing = in->check_valid && !in->check_ok;
                return failing && in->fallback_to_ssh && in->ssh_ready ? ROUTE_SSH : ROUTE_KONNECTIVITY;
        }
        /* not listed: back on SSH, but never before SSH can carry it */
        return in->rolling_back && !in->ssh_ready ? ROUTE_KONNECTIVITY : ROUTE_SSH;
}

static void test_decision_table(void **state) {
        unsigned konnectivity = 0;

        for (unsigned bits = 0; bits < 128; bits++) {
                RouteInputs in = {
                        .upstream = bits & 1,
                        .listed = bits & 2,
                        .rolling_back = bits & 4,
                        .check_valid = bits & 8,
                        .check_ok = bits & 16,
                        .fallback_to_ssh = bits & 32,
                        .ssh_ready = bits & 64,
                };
                NodeRoute r = migration_decide(&in);

                assert_int_equal(r, expected(&in));
                konnectivity += r == ROUTE_KONNECTIVITY;
        }
        /* the rows that matter, spelled out */
        assert_int_equal(migration_decide(&(RouteInputs) { .upstream = true, .listed = true }), ROUTE_KONNECTIVITY);
        /* a failing path, SSH may take over and can */
        assert_int_equal(migration_decide(&(RouteInputs) { .upstream = true, .listed = true, .check_valid = true,
                                                           .fallback_to_ssh = true, .ssh_ready = true }),
                         ROUTE_SSH);
        /* ... but not when no SSH session is ready: konnectivity still */
        assert_int_equal(migration_decide(&(RouteInputs) { .upstream = true, .listed = true, .check_valid = true,
                                                           .fallback_to_ssh = true }),
                         ROUTE_KONNECTIVITY);
        /* no check yet is no failure */
        assert_int_equal(migration_decide(&(RouteInputs) { .upstream = true, .listed = true, .fallback_to_ssh = true,
                                                           .ssh_ready = true }),
                         ROUTE_KONNECTIVITY);
        assert_int_equal(migration_decide(&(RouteInputs) { .upstream = true, .rolling_back = true }),
                         ROUTE_KONNECTIVITY);
        assert_int_equal(migration_decide(&(RouteInputs) { .listed = true }), ROUTE_SSH);
        assert_true(konnectivity > 0 && konnectivity < 128);
}

static void test_pool_size(void **state) {
        char *listed[] = { (char *) "node-1", NULL }, *all[] = { (char *) "*", NULL };
        Config c = { .ssh = { .pool_size = 3 } };

        c.konnectivity = (ConfigKonnectivity) { .upstream = (char *) "unix:/run/k.sock", .nodes = listed,
                                                .fallback_to_ssh = true };
        /* SSH kept warm while it may take over */
        assert_int_equal(migration_pool_size(&c, "node-1"), 3);
        c.konnectivity.fallback_to_ssh = false;
        assert_int_equal(migration_pool_size(&c, "node-1"), 0);
        assert_int_equal(migration_pool_size(&c, "node-2"), 3);
        c.konnectivity.nodes = all;
        assert_int_equal(migration_pool_size(&c, "node-2"), 0);
        /* no upstream: nobody is migrated */
        c.konnectivity.upstream = NULL;
        assert_int_equal(migration_pool_size(&c, "node-2"), 3);
        c.ssh.pool_size = 0;
        assert_int_equal(migration_pool_size(&c, "node-2"), 1);
}

/* ---- route state over nodes ---------------------------------------------------------- */

typedef struct Fixture {
        sd_event *event;
        Rng rng;
        Config cfg;
        ConfigProbe no_probe;
        char *listed[3];
        SessionEnv sessions;
        NodeEnv env;
        Migration *m;
        Upstream *u;
        Node *nodes[2];
} Fixture;

static void on_changed(Node *n, void *userdata) {
        Fixture *f = userdata;
        migration_node_changed(f->m, n);
}

static int setup(void **state) {
        const ConfigNode cn[2] = {
                { .name = (char *) "node-1", .address = (char *) "10.0.0.11", .port = 22,
                  .hostnames = (char *[]) { NULL } },
                { .name = (char *) "node-2", .address = (char *) "10.0.0.12", .port = 22,
                  .hostnames = (char *[]) { NULL } },
        };
        Fixture *f = calloc(1, sizeof(*f));
        char *error = NULL;

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        rng_init_seed(&f->rng, 7);
        f->listed[0] = (char *) "node-1";
        f->cfg = (Config) {
                .ssh = { .pool_size = 1, .max_streams_per_session = 8, .backoff_max = 60 },
                /* checks an hour apart: none runs during a test */
                .probe = { .type = PROBE_TCP, .interval = 3600, .timeout = 5 },
                .konnectivity = { .upstream = (char *) "unix:/nonexistent/k.sock", .nodes = f->listed,
                                  .fallback_to_ssh = true, .probe_port = 10250 },
        };
        f->sessions = (SessionEnv) { .event = f->event, .ssh = &f->cfg.ssh };
        f->env = (NodeEnv) {
                .event = f->event,
                .sessions = &f->sessions,
                .session_ops = &fake_session_ops,
                .rng = &f->rng,
                .probe = &f->no_probe,
                .changed = on_changed,
                .userdata = f,
        };
        assert_int_equal(migration_new(f->event, &f->rng, &f->m), 0);
        assert_int_equal(upstream_new(f->event, &f->cfg.konnectivity, &f->u, &error), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(node_new(&f->env, &cn[i], 1, &f->nodes[i]), 0);
                node_start(f->nodes[i]);
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        f->m = migration_free(f->m);
        for (int i = 0; i < 2; i++)
                node_free(f->nodes[i]);
        upstream_free(f->u);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

/* The session of node i (one each). */
static Session *S(unsigned i) {
        Session *s = fake_session_get(i);
        assert_non_null(s);
        return s;
}

static void test_routes(void **state) {
        Fixture *f = *state;
        NodeInfo info;

        /* before any configuration: SSH */
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_SSH);
        migration_update(f->m, &f->cfg, f->u, f->nodes, 2);
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_KONNECTIVITY);
        assert_int_equal(migration_route(f->m, f->nodes[1]), ROUTE_SSH);
        assert_true(migration_listed(f->m, f->nodes[0]));
        assert_false(migration_listed(f->m, f->nodes[1]));
        assert_ptr_equal(migration_upstream(f->m), f->u);

        node_get_info(f->nodes[0], &info);
        migration_fill_info(f->m, f->nodes[0], &info);
        assert_int_equal(info.route, ROUTE_KONNECTIVITY);
        assert_true(info.migrated);
        assert_false(info.falling_back);
        assert_false(info.upstream.valid);

        migration_count_fallback(f->m, f->nodes[0]);
        migration_fill_info(f->m, f->nodes[0], &info);
        assert_int_equal(info.fallbacks, 1);

        /* no upstream: every route is SSH, nobody counts as migrated */
        migration_update(f->m, &f->cfg, NULL, f->nodes, 2);
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_SSH);
        assert_false(migration_listed(f->m, f->nodes[0]));
}

static void test_rollback(void **state) {
        Fixture *f = *state;

        migration_update(f->m, &f->cfg, f->u, f->nodes, 2);
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_KONNECTIVITY);

        /* node-1 leaves the list while its SSH is not up: Konnectivity
         * keeps it until SSH can take over, so no request fails meanwhile */
        f->listed[0] = NULL;
        migration_update(f->m, &f->cfg, f->u, f->nodes, 2);
        assert_false(migration_listed(f->m, f->nodes[0]));
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_KONNECTIVITY);
        /* asking again changes nothing: the route has no side effect */
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_KONNECTIVITY);

        fake_session_set_state(S(0), SESSION_READY);
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_SSH);
        /* and once back on SSH it stays there, even if SSH drops again */
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "closed", USEC_PER_SEC);
        assert_int_equal(migration_route(f->m, f->nodes[0]), ROUTE_SSH);
}

static void test_node_list_changes(void **state) {
        Fixture *f = *state;
        NodeInfo info;

        /* node-2 listed too: state kept for it after it goes would show */
        f->listed[1] = (char *) "node-2";
        migration_update(f->m, &f->cfg, f->u, f->nodes, 2);
        assert_true(migration_listed(f->m, f->nodes[1]));
        migration_count_fallback(f->m, f->nodes[0]);
        /* node-2 goes; node-1's state carries over */
        migration_update(f->m, &f->cfg, f->u, f->nodes, 1);
        assert_int_equal(migration_route(f->m, f->nodes[1]), ROUTE_SSH);
        memset(&info, 0, sizeof(info));
        migration_fill_info(f->m, f->nodes[1], &info);
        assert_false(info.migrated);
        migration_fill_info(f->m, f->nodes[0], &info);
        assert_int_equal(info.fallbacks, 1);
        /* "*" lists everyone */
        f->listed[0] = (char *) "*";
        migration_update(f->m, &f->cfg, f->u, f->nodes, 2);
        assert_true(migration_listed(f->m, f->nodes[1]));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decision_table),
                cmocka_unit_test(test_pool_size),
                cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_list_changes, setup, teardown),
        };
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
