/* Tests for the admin API (routes, JSON shapes, operator actions, host key
 * scans, the socket server). The admin API sees the daemon through AdminOps
 * and sessions through SessionOps: both are fakes of the test's own below. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "admin.h"
#include "admin-internal.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "macro.h"
#include "nodeinfo.h"
#include "session.h"
#include "table.h"
#include "trust.h"

/* ---- a daemon of the test's own, behind AdminOps ------------------------------ */

typedef struct FakeNode {
        NodeInfo info;
        unsigned drains, undrains, reconnects;
} FakeNode;

typedef struct FakeDaemon {
        sd_event *event;
        FakeNode *nodes;
        size_t n_nodes;
        unsigned streams;
        unsigned handshakes;
        Config config;
        unsigned reloads;
        const char *reload_error; /* the next reload fails with this */
} FakeDaemon;

/* ssh.port 2200: scans of a bare host use it */
#define TEST_CONFIG                                                                            \
        {                                                                                      \
                .ssh = { .port = 2200,                                                         \
                         .connect_timeout = 10,                                                \
                         .known_hosts = (char *) "/etc/sshtund/known_hosts" },                 \
                .admin = { .ready_min_fraction = 0.5 },                                        \
        }

static FakeNode *fake_find(FakeDaemon *d, const char *name) {
        for (size_t i = 0; i < d->n_nodes; i++)
                if (streq(d->nodes[i].info.name, name))
                        return &d->nodes[i];
        return NULL;
}

static int fake_nodes(void *userdata, NodeInfo **ret, size_t *ret_n) {
        FakeDaemon *d = userdata;
        NodeInfo *infos = d->n_nodes ? calloc(d->n_nodes, sizeof(NodeInfo)) : NULL;

        assert_true(infos || d->n_nodes == 0);
        for (size_t i = 0; i < d->n_nodes; i++)
                infos[i] = d->nodes[i].info;
        *ret = infos;
        *ret_n = d->n_nodes;
        return 0;
}

static int fake_node(void *userdata, const char *name, NodeInfo *ret) {
        FakeNode *n = fake_find(userdata, name);

        if (!n)
                return -ENOENT;
        *ret = n->info;
        return 0;
}

static void fake_status(void *userdata, AdminStatus *ret) {
        FakeDaemon *d = userdata;
        *ret = (AdminStatus) { .streams = d->streams, .handshakes_in_flight = d->handshakes };
}

/* The state the real node computes, enough for the replies. */
static int fake_action(void *userdata, const char *name, AdminAction a, NodeInfo *ret) {
        FakeNode *n = fake_find(userdata, name);

        if (!n)
                return -ENOENT;
        switch (a) {
        case ADMIN_ACTION_DRAIN:
                n->drains++;
                n->info.draining = true;
                if (n->info.state == NODE_UP)
                        n->info.state = NODE_DRAINING;
                break;
        case ADMIN_ACTION_UNDRAIN:
                n->undrains++;
                n->info.draining = false;
                if (n->info.state == NODE_DRAINING)
                        n->info.state = NODE_UP;
                break;
        case ADMIN_ACTION_RECONNECT:
                n->reconnects++;
                n->info.state = NODE_CONNECTING;
                break;
        default:
                fail();
        }
        *ret = n->info;
        return 0;
}

static int fake_reload(void *userdata, char **ret_error) {
        FakeDaemon *d = userdata;

        d->reloads++;
        if (d->reload_error) {
                *ret_error = strdup(d->reload_error);
                return -EINVAL;
        }
        return 0;
}

static char *fake_metrics(void *userdata, size_t *ret_len) {
        char *s = strdup("# metrics\n");

        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

static const Config *fake_config(void *userdata) {
        FakeDaemon *d = userdata;
        return &d->config;
}

static char trusted_name[64]; /* the node host_key_trusted was last told of */

static void fake_host_key_trusted(void *userdata, const char *name) {
        snprintf(trusted_name, sizeof trusted_name, "%s", name);
}

static const AdminOps fake_ops = {
        .nodes = fake_nodes,
        .node = fake_node,
        .status = fake_status,
        .action = fake_action,
        .reload = fake_reload,
        .metrics = fake_metrics,
        .config = fake_config,
        .host_key_trusted = fake_host_key_trusted,
};

/* ---- a fake SSH session for scans, behind SessionOps ------------------------------ */

struct Session {
        char *node_name;
        char *address;
        uint16_t port;
        bool scan_only;
        char *key_types; /* scan_only: the host key algorithms asked for */
        const SessionHooks *hooks;
        void *userdata;
        SessionState state;
        SessionFailure failure;
        char *last_error;
        uint8_t *blob;
        size_t blob_len;
};

static struct {
        Session *last;     /* the latest session made */
        Session *scan[2];  /* the latest scan's sessions: ed25519, ECDSA */
        unsigned live;     /* made and not freed */
        bool in_callback;  /* inside a session's 'changed' callback */
        bool sync_refuse;  /* connecting fails at once, inside the call */
} fake;

static int fake_session_create(const SessionEnv *env, const SessionParams *p, Session **ret) {
        Session *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        s->node_name = strdup(p->node_name);
        s->address = strdup(p->address);
        s->port = p->port;
        s->scan_only = p->scan_only;
        s->key_types = p->scan_key_types ? strdup(p->scan_key_types) : NULL;
        s->hooks = p->hooks;
        s->userdata = p->userdata;
        fake.last = s;
        if (s->key_types)
                fake.scan[strncmp(s->key_types, "ssh-ed25519", 11) == 0 ? 0 : 1] = s;
        fake.live++;
        *ret = s;
        return 0;
}

static Session *fake_session_destroy(Session *s) {
        if (!s)
                return NULL;
        /* the session is still running its callback: freeing it now would
         * pull it from under itself */
        assert_false(fake.in_callback);
        if (fake.last == s)
                fake.last = NULL;
        for (size_t i = 0; i < ELEMENTSOF(fake.scan); i++)
                if (fake.scan[i] == s)
                        fake.scan[i] = NULL;
        fake.live--;
        free(s->key_types);
        free(s->node_name);
        free(s->address);
        free(s->last_error);
        free(s->blob);
        free(s);
        return NULL;
}

/* End the scan as session.c does: state FAILED, the callback told. */
static void fake_finish(Session *s, SessionFailure f, const char *error, const void *blob, size_t len) {
        s->state = SESSION_FAILED;
        s->failure = f;
        s->last_error = strdup(error);
        if (blob) {
                s->blob = malloc(len);
                memcpy(s->blob, blob, len);
                s->blob_len = len;
        }
        fake.in_callback = true;
        s->hooks->changed(s, s->userdata);
        fake.in_callback = false;
}

/* End the latest scan: its ed25519 session as told, the ECDSA one with
 * no key of that type (when the first found one), or as told. */
static void fake_scan_finish(SessionFailure f, const char *error, const void *blob, size_t len) {
        Session *ecdsa = fake.scan[1];

        assert_non_null(fake.scan[0]);
        assert_non_null(ecdsa);
        fake_finish(fake.scan[0], f, error, blob, len);
        if (f == SESSION_FAILURE_SCANNED)
                fake_finish(ecdsa, SESSION_FAILURE_PROTOCOL, "key exchange failed: no common host key algorithm",
                            NULL, 0);
        else
                fake_finish(ecdsa, f, error, NULL, 0);
}

static void fake_session_connect(Session *s) {
        s->state = SESSION_CONNECTING;
        s->hooks->changed(s, s->userdata);
        if (fake.sync_refuse)
                fake_finish(s, SESSION_FAILURE_NETWORK, "connect to 10.0.0.11:22: Connection refused", NULL, 0);
}

static SessionState fake_session_state(const Session *s) {
        return s->state;
}

static SessionFailure fake_session_failure(const Session *s) {
        return s->failure;
}

static const char *fake_session_last_error(const Session *s) {
        return s->last_error;
}

static const char *fake_session_host_key(const Session *s) {
        return NULL;
}

static const void *fake_session_host_key_blob(const Session *s, size_t *ret_len) {
        if (ret_len)
                *ret_len = s->blob_len;
        return s->blob;
}

static const SessionOps fake_session_ops = {
        .create = fake_session_create,
        .destroy = fake_session_destroy,
        .connect = fake_session_connect,
        .state = fake_session_state,
        .failure = fake_session_failure,
        .last_error = fake_session_last_error,
        .host_key = fake_session_host_key,
        .host_key_blob = fake_session_host_key_blob,
};

/* An empty known_hosts file and a learned_hosts file beside it (set up
 * in main()): every scanned key is unknown until a test trusts it. */
static char test_dir[64], test_known_hosts[128], test_learned_hosts[128];
static SessionEnv fake_session_env = {};

/* Both files empty again. */
static void trust_reset(void) {
        FILE *f;

        f = fopen(test_known_hosts, "we");
        assert_non_null(f);
        fclose(f);
        (void) unlink(test_learned_hosts);
        assert_int_equal(trust_set_files(fake_session_env.trust, test_known_hosts, test_learned_hosts), 0);
}

/* What the daemon gives its admin listeners, over the fake. */
static AdminEnv env_of(FakeDaemon *d) {
        return (AdminEnv) {
                .event = d->event,
                .ops = &fake_ops,
                .userdata = d,
                .sessions = &fake_session_env,
                .session_ops = &fake_session_ops,
        };
}

/* ---- fixtures --------------------------------------------------------------- */

/* 2026-11-29T15:45:10.123456Z */
#define SINCE ((usec_t) 1795967110 * USEC_PER_SEC + 123456)

static FakeNode test_nodes[] = {
        { { .name = "node-1", .address = "10.0.0.11", .port = 22, .state = NODE_UP, .route = ROUTE_SSH,
            .sessions_up = 2, .sessions_total = 2, .streams = 7, .streams_total = 5000000000ULL,
            .reconnects = 1, .host_key = "SHA256:abc", .state_since = SINCE } },
        { { .name = "node-2", .address = "fd00::2", .port = 2222, .state = NODE_BACKOFF, .route = ROUTE_SSH,
            .sessions_total = 1, .last_error = "connection refused", .state_since = SINCE } },
        { { .name = "my node", .address = "10.0.0.13", .port = 22, .state = NODE_UP, .route = ROUTE_SSH,
            .sessions_up = 1, .sessions_total = 1, .streams = 5, .state_since = SINCE } },
        { { .name = "node-4", .address = "10.0.0.14", .port = 22, .state = NODE_DEGRADED, .route = ROUTE_SSH,
            .sessions_up = 1, .sessions_total = 1, .state_since = SINCE } },
        { { .name = "node-5", .address = "10.0.0.15", .port = 22, .state = NODE_CONNECTING, .route = ROUTE_SSH,
            .state_since = 0 } },
};

static FakeDaemon test_daemon = {
        .nodes = test_nodes,
        .n_nodes = ELEMENTSOF(test_nodes),
        .streams = 12,
        .handshakes = 3,
        .config = TEST_CONFIG,
};

typedef struct Handled {
        int status;
        char *body;
        const char *content_type;
        const char *allow;
} Handled;

static void handled_done(Handled *h) {
        free(h->body);
}

static Handled handle(FakeDaemon *d, const char *method, const char *target) {
        AdminEnv env = env_of(d);
        Handled h = {};

        assert_int_equal(admin_handle(&env, ADMIN_ACCESS_FULL, method, target, &h.status, &h.body, &h.content_type,
                                      &h.allow),
                         0);
        assert_non_null(h.body);
        assert_non_null(h.content_type);
        return h;
}

/* admin_handle's body as JSON (it must parse). */
static json_t *handle_json_method(FakeDaemon *d, const char *method, const char *target, int want_status) {
        _cleanup_(handled_done) Handled h = handle(d, method, target);
        json_error_t error;
        json_t *v;

        assert_int_equal(h.status, want_status);
        assert_string_equal(h.content_type, "application/json");
        v = json_loads(h.body, 0, &error);
        if (!v)
                fail_msg("%s: %s", error.text, h.body);
        return v;
}

static json_t *handle_json(FakeDaemon *d, const char *target, int want_status) {
        return handle_json_method(d, "GET", target, want_status);
}

static void assert_keys(const json_t *o, const char *const *keys, size_t n) {
        size_t i = 0;
        const char *key;
        json_t *value;

        assert_true(json_is_object(o));
        assert_int_equal(json_object_size(o), n);
        json_object_foreach((json_t *) o, key, value)
                assert_string_equal(key, keys[i++]);
}

/* ---- admin_handle ----------------------------------------------------------- */

static void test_status_counts(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/status", 200);
        static const char *const keys[] = { "version", "nodes_total", "nodes_up", "streams", "states",
                                            "handshakes_in_flight" };
        static const char *const state_keys[] = { "up", "connecting", "degraded", "backoff" };
        json_t *states = json_object_get(v, "states");

        assert_keys(v, keys, ELEMENTSOF(keys));
        assert_string_equal(json_string_value(json_object_get(v, "version")), PACKAGE_VERSION);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_total")), 5);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_up")), 2);
        assert_int_equal(json_integer_value(json_object_get(v, "streams")), 12);
        assert_int_equal(json_integer_value(json_object_get(v, "handshakes_in_flight")), 3);
        /* "up" first, then the states in use, degraded counted apart from up */
        assert_keys(states, state_keys, ELEMENTSOF(state_keys));
        assert_int_equal(json_integer_value(json_object_get(states, "up")), 2);
        assert_int_equal(json_integer_value(json_object_get(states, "connecting")), 1);
        assert_int_equal(json_integer_value(json_object_get(states, "degraded")), 1);
        assert_int_equal(json_integer_value(json_object_get(states, "backoff")), 1);
}

static void test_status_no_nodes(void **state) {
        FakeDaemon empty = {};
        _cleanup_(json_decrefp) json_t *v = handle_json(&empty, "/v1/status", 200);
        static const char *const state_keys[] = { "up" };

        assert_int_equal(json_integer_value(json_object_get(v, "nodes_total")), 0);
        assert_keys(json_object_get(v, "states"), state_keys, 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "states"), "up")), 0);
}

static void test_status_compact(void **state) {
        _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/v1/status");

        assert_int_equal(h.status, 200);
        assert_null(strchr(h.body, '\n'));
        assert_null(strstr(h.body, ": "));
        assert_true(strncmp(h.body, "{\"version\":\"" PACKAGE_VERSION "\",\"nodes_total\":5,", 30) == 0);
}

static const char *const node_keys[] = { "name",          "address",    "port",       "state",
                                         "draining",      "route",      "sessions_up", "sessions_total",
                                         "streams",       "streams_total", "reconnects", "last_error",
                                         "reason",        "host_key",   "probe",      "state_since", "migrated",
                                         "falling_back",  "fallbacks",  "upstream_probe" };

static void test_nodes_list(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/nodes", 200);
        static const char *const keys[] = { "nodes" };
        json_t *list = json_object_get(v, "nodes"), *n;

        assert_keys(v, keys, 1);
        assert_int_equal(json_array_size(list), ELEMENTSOF(test_nodes));
        for (size_t i = 0; i < ELEMENTSOF(test_nodes); i++) {
                n = json_array_get(list, i);
                assert_keys(n, node_keys, ELEMENTSOF(node_keys));
                assert_string_equal(json_string_value(json_object_get(n, "name")), test_nodes[i].info.name);
        }

        n = json_array_get(list, 0);
        assert_string_equal(json_string_value(json_object_get(n, "address")), "10.0.0.11");
        assert_int_equal(json_integer_value(json_object_get(n, "port")), 22);
        assert_string_equal(json_string_value(json_object_get(n, "state")), "up");
        assert_string_equal(json_string_value(json_object_get(n, "route")), "ssh");
        assert_int_equal(json_integer_value(json_object_get(n, "sessions_up")), 2);
        assert_int_equal(json_integer_value(json_object_get(n, "sessions_total")), 2);
        assert_int_equal(json_integer_value(json_object_get(n, "streams")), 7);
        assert_int_equal(json_integer_value(json_object_get(n, "streams_total")), 5000000000LL);
        assert_int_equal(json_integer_value(json_object_get(n, "reconnects")), 1);
        assert_true(json_is_null(json_object_get(n, "last_error")));
        assert_string_equal(json_string_value(json_object_get(n, "host_key")), "SHA256:abc");
        assert_true(json_is_null(json_object_get(n, "probe")));
        assert_true(json_is_false(json_object_get(n, "draining")));
        assert_string_equal(json_string_value(json_object_get(n, "state_since")), "2026-11-29T15:45:10.123Z");

        n = json_array_get(list, 1);
        assert_string_equal(json_string_value(json_object_get(n, "state")), "backoff");
        assert_int_equal(json_integer_value(json_object_get(n, "port")), 2222);
        assert_string_equal(json_string_value(json_object_get(n, "last_error")), "connection refused");
        assert_true(json_is_null(json_object_get(n, "host_key")));

        /* never set: null rather than 1970 */
        assert_true(json_is_null(json_object_get(json_array_get(list, 4), "state_since")));
}

/* /v1/nodes is written without jansson: byte for byte what json_dumps()
 * makes of admin_node_to_json() for each node, odd text and figures
 * included (escapes, invalid UTF-8, counters past 2^63, reals). */
static void test_nodes_list_as_jansson_writes_it(void **state) {
        static FakeNode odd[] = {
                { { .name = "q\"uote\\back", .address = "10.0.0.21", .port = 22, .state = NODE_UP,
                    .route = ROUTE_KONNECTIVITY, .sessions_up = 1, .sessions_total = 3, .streams = 4294967295U,
                    .streams_total = UINT64_MAX, .reconnects = (uint64_t) INT64_MAX + 1,
                    .last_error = "tab\there\nnew\rline \x01\x1f\x7f \b\f /slash",
                    .reason = "bad \xff\xfe utf-8 \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80",
                    .host_key = "SHA256:x", .draining = true, .migrated = true, .falling_back = true,
                    .fallbacks = 3, .state_since = SINCE,
                    .probe = { .valid = true, .ok = false, .latency = 1500, .at = SINCE, .error = "HTTP \"500\"" },
                    .upstream = { .valid = true, .ok = true, .latency = 2000, .at = SINCE + 1 } } },
                { { .name = "r", .address = "fd00::1", .port = 65535, .state = NODE_HOSTKEY_MISMATCH,
                    .probe = { .valid = true, .ok = true, .latency = 1, .at = 0 },
                    .upstream = { .valid = true, .ok = true, .latency = 123456789012345ULL, .at = USEC_INFINITY } } },
                { { .name = "s", .address = "h", .state = NODE_BACKOFF,
                    .probe = { .valid = true, .ok = true, .latency = 100000000 } } },
                { { .name = "", .address = "", .state = NODE_DISABLED } },
        };
        FakeDaemon d = { .nodes = odd, .n_nodes = ELEMENTSOF(odd), .config = TEST_CONFIG };
        _cleanup_(handled_done) Handled h = handle(&d, "GET", "/v1/nodes");
        _cleanup_free_ char *want = strdup("{\"nodes\":[");

        assert_non_null(want);
        for (size_t i = 0; i < ELEMENTSOF(odd); i++) {
                json_t *o = admin_node_to_json(&odd[i].info);
                _cleanup_free_ char *one = NULL, *joined = NULL;

                assert_non_null(o);
                one = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(9));
                json_decref(o);
                assert_non_null(one);
                assert_true(asprintf(&joined, "%s%s%s", want, i ? "," : "", one) > 0);
                free(want);
                want = TAKE_PTR(joined);
        }
        assert_int_equal(h.status, 200);
        assert_string_equal(h.content_type, "application/json");
        want = realloc(want, strlen(want) + 3);
        assert_non_null(want);
        strcat(want, "]}");
        assert_string_equal(h.body, want);

        /* and no nodes at all */
        FakeDaemon empty = { .config = TEST_CONFIG };
        _cleanup_(handled_done) Handled e = handle(&empty, "GET", "/v1/nodes");
        assert_string_equal(e.body, "{\"nodes\":[]}");
}

static void test_node_by_name(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/nodes/node-2", 200);

        assert_keys(v, node_keys, ELEMENTSOF(node_keys));
        assert_string_equal(json_string_value(json_object_get(v, "name")), "node-2");
        assert_string_equal(json_string_value(json_object_get(v, "address")), "fd00::2");
}

static void test_node_url_decoded(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/nodes/my%20node", 200);
        _cleanup_(json_decrefp) json_t *w = handle_json(&test_daemon, "/v1/nodes/node%2d1?x=%zz", 200);

        assert_string_equal(json_string_value(json_object_get(v, "name")), "my node");
        assert_string_equal(json_string_value(json_object_get(w, "name")), "node-1");
}

static void test_node_bad_escapes(void **state) {
        static const char *const targets[] = { "/v1/nodes/node%00", "/v1/nodes/node%2", "/v1/nodes/%G1",
                                                "/v1/nodes/%" };

        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, targets[i], 400);
                assert_non_null(json_string_value(json_object_get(v, "error")));
        }
}

static void test_node_not_found(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/nodes/no%20such", 404);
        _cleanup_(json_decrefp) json_t *w = handle_json(&test_daemon, "/v1/nodes/%C3%28", 404);
        static const char *const keys[] = { "error" };

        assert_keys(v, keys, 1);
        assert_string_equal(json_string_value(json_object_get(v, "error")), "no such node: no such");
        /* a name that is not UTF-8 still gives valid JSON */
        assert_string_equal(json_string_value(json_object_get(w, "error")), "no such node: ?(");
}

static void test_unknown_paths(void **state) {
        static const char *const targets[] = { "/", "/v1", "/v1/statusx", "/v1/nodes/", "/v1/nodes/node-1/x",
                                               "/v2/status", "*", "/healthz/" };

        for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, targets[i], 404);
                assert_non_null(json_string_value(json_object_get(v, "error")));
        }
}

static void test_query_ignored(void **state) {
        _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/status?verbose=1", 200);
        _cleanup_(json_decrefp) json_t *w = handle_json(&test_daemon, "http://localhost/v1/nodes?x", 200);

        assert_int_equal(json_integer_value(json_object_get(v, "nodes_total")), 5);
        assert_int_equal(json_array_size(json_object_get(w, "nodes")), 5);
}

static void test_method_not_allowed(void **state) {
        static const char *const targets[] = { "/v1/status", "/v1/nodes", "/v1/nodes/node-1", "/healthz" };
        static const char *const methods[] = { "POST", "PUT", "DELETE", "HEAD", "get" };

        for (size_t i = 0; i < ELEMENTSOF(targets); i++)
                for (size_t j = 0; j < ELEMENTSOF(methods); j++) {
                        _cleanup_(handled_done) Handled h = handle(&test_daemon, methods[j], targets[i]);
                        assert_int_equal(h.status, 405);
                        assert_non_null(h.allow);
                        assert_string_equal(h.allow, "GET");
                        assert_non_null(strstr(h.body, "\"error\""));
                }

        /* a 404 has no Allow */
        _cleanup_(handled_done) Handled h = handle(&test_daemon, "POST", "/nope");
        assert_int_equal(h.status, 404);
        assert_null(h.allow);
}

static void test_healthz(void **state) {
        _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/healthz");

        assert_int_equal(h.status, 200);
        assert_string_equal(h.body, "ok\n");
        assert_true(strncmp(h.content_type, "text/plain", 10) == 0);
        assert_null(h.allow);
}

static void test_reload(void **state) {
        {
                _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/v1/reload");
                assert_int_equal(h.status, 405);
                assert_string_equal(h.allow, "POST");
        }
        unsigned before = test_daemon.reloads;
        {
                _cleanup_(handled_done) Handled h = handle(&test_daemon, "POST", "/v1/reload");
                assert_int_equal(h.status, 200);
                assert_non_null(strstr(h.body, "\"reloaded\":true"));
        }
        assert_int_equal(test_daemon.reloads, before + 1);
        test_daemon.reload_error = "/etc/sshtund/sshtund.conf:7: proxy.fallback: must be \"any\" or \"none\"";
        {
                _cleanup_(handled_done) Handled h = handle(&test_daemon, "POST", "/v1/reload");
                assert_int_equal(h.status, 500);
                assert_non_null(strstr(h.body, "sshtund.conf:7: proxy.fallback"));
        }
        test_daemon.reload_error = NULL;
}

/* The read-only socket: every GET answers as on the full socket; anything
 * else is 403 with a JSON reason and reaches no operation. */
static void test_readonly_access(void **state) {
        static const char *const reads[] = { "/v1/status", "/v1/nodes", "/v1/nodes/node-1", "/v1/migration",
                                             "/metrics", "/healthz", "/readyz", "/v1/hostkeys" };
        static const struct {
                const char *method, *target;
        } writes[] = {
                { "POST", "/v1/reload" },
                { "POST", "/v1/nodes/node-1/drain" },
                { "POST", "/v1/nodes/node-1/undrain" },
                { "POST", "/v1/nodes/node-1/reconnect" },
                { "POST", "/v1/hostkeys/scan?target=node-1" },
                { "POST", "/v1/hostkeys/trust?node=node-1&fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
                { "POST", "/v1/hostkeys/forget?node=node-1" },
                { "PUT", "/v1/status" },
                { "DELETE", "/v1/nodes/node-1" },
        };
        AdminEnv env = env_of(&test_daemon);
        FakeNode *n = fake_find(&test_daemon, "node-1");
        unsigned reloads = test_daemon.reloads, drains = n->drains, reconnects = n->reconnects;

        for (size_t i = 0; i < ELEMENTSOF(reads); i++) {
                Handled full = {}, ro = {};

                assert_int_equal(admin_handle(&env, ADMIN_ACCESS_FULL, "GET", reads[i], &full.status, &full.body,
                                              &full.content_type, &full.allow),
                                 0);
                assert_int_equal(admin_handle(&env, ADMIN_ACCESS_READONLY, "GET", reads[i], &ro.status, &ro.body,
                                              &ro.content_type, &ro.allow),
                                 0);
                assert_int_equal(ro.status, full.status);
                assert_true(ro.status == 200 || (streq(reads[i], "/readyz") && ro.status == 503));
                assert_string_equal(ro.content_type, full.content_type);
                handled_done(&full);
                handled_done(&ro);
        }
        for (size_t i = 0; i < ELEMENTSOF(writes); i++) {
                _cleanup_(handled_done) Handled h = {};
                _cleanup_(json_decrefp) json_t *v = NULL;

                assert_int_equal(admin_handle(&env, ADMIN_ACCESS_READONLY, writes[i].method, writes[i].target,
                                              &h.status, &h.body, &h.content_type, &h.allow),
                                 0);
                assert_int_equal(h.status, 403);
                assert_string_equal(h.content_type, "application/json");
                v = json_loads(h.body, 0, NULL);
                assert_non_null(v);
                assert_non_null(strstr(json_string_value(json_object_get(v, "error")), "read-only"));
        }
        assert_int_equal(test_daemon.reloads, reloads);
        assert_int_equal(n->drains, drains);
        assert_int_equal(n->reconnects, reconnects);
}

static void test_state_since_format(void **state) {
        static const struct {
                usec_t t;
                const char *want;
        } cases[] = {
                { 1, "1970-01-01T00:00:00.000Z" },
                { SINCE, "2026-11-29T15:45:10.123Z" },
                { (usec_t) 951782400 * USEC_PER_SEC + 999999, "2000-02-29T00:00:00.999Z" },
                { (usec_t) 253402300799 * USEC_PER_SEC, "9999-12-31T23:59:59.000Z" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FakeNode n = { { .name = "n", .address = "a", .state = NODE_UP, .state_since = cases[i].t } };
                FakeDaemon d = { .nodes = &n, .n_nodes = 1 };
                _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/nodes/n", 200);
                usec_t back;

                assert_string_equal(json_string_value(json_object_get(v, "state_since")), cases[i].want);
                /* sshtunctl reads back what admin writes, to the millisecond */
                assert_int_equal(table_parse_timestamp(cases[i].want, &back), 0);
                assert_int_equal(back, cases[i].t / USEC_PER_MSEC * USEC_PER_MSEC);
        }

        /* beyond what RFC 3339 can write: null, not a five-digit year */
        FakeNode n = { { .name = "n", .state_since = (usec_t) 253402300800 * USEC_PER_SEC } };
        FakeDaemon d = { .nodes = &n, .n_nodes = 1 };
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/nodes/n", 200);
        assert_true(json_is_null(json_object_get(v, "state_since")));
}

static void test_invalid_utf8_text(void **state) {
        FakeNode n = { { .name = "n", .address = "a", .state = NODE_BACKOFF,
                     .last_error = "bad \xff banner \xc3\xa9 \xed\xa0\x80!" } };
        FakeDaemon d = { .nodes = &n, .n_nodes = 1 };
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/nodes/n", 200);

        /* bytes that are not UTF-8 become '?', valid sequences stay */
        assert_string_equal(json_string_value(json_object_get(v, "last_error")), "bad ? banner \xc3\xa9 ?" "?" "?!");
}

static void test_probe_object(void **state) {
        FakeNode n[] = {
                { { .name = "ok", .address = "a", .state = NODE_UP,
                    .probe = { .valid = true, .ok = true, .latency = 3251, .at = SINCE } } },
                { { .name = "bad", .address = "b", .state = NODE_DEGRADED,
                    .probe = { .valid = true, .ok = false, .latency = 5000000, .at = SINCE,
                               .error = "GET /healthz: 500" } } },
        };
        FakeDaemon d = { .nodes = n, .n_nodes = 2 };
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/nodes/ok", 200);
        _cleanup_(json_decrefp) json_t *w = handle_json(&d, "/v1/nodes/bad", 200);
        _cleanup_(handled_done) Handled h = handle(&d, "GET", "/v1/nodes/ok");
        static const char *const keys[] = { "ok", "latency_ms", "at", "error" };
        json_t *p = json_object_get(v, "probe"), *q = json_object_get(w, "probe");

        assert_keys(p, keys, ELEMENTSOF(keys));
        assert_true(json_is_true(json_object_get(p, "ok")));
        assert_true(json_real_value(json_object_get(p, "latency_ms")) == 3.251);
        assert_string_equal(json_string_value(json_object_get(p, "at")), "2026-11-29T15:45:10.123Z");
        assert_true(json_is_null(json_object_get(p, "error")));
        /* milliseconds to the microsecond, without binary noise */
        assert_non_null(strstr(h.body, "\"latency_ms\":3.251,"));

        assert_keys(q, keys, ELEMENTSOF(keys));
        assert_true(json_is_false(json_object_get(q, "ok")));
        assert_true(json_real_value(json_object_get(q, "latency_ms")) == 5000.0);
        assert_string_equal(json_string_value(json_object_get(q, "error")), "GET /healthz: 500");
}

static void test_node_konnectivity_fields(void **state) {
        FakeNode n[] = {
                { { .name = "moved", .address = "a", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true,
                    .upstream = { .valid = true, .ok = true, .latency = 1500, .at = SINCE } } },
                { { .name = "falling", .address = "b", .state = NODE_UP, .route = ROUTE_SSH, .migrated = true,
                    .falling_back = true, .fallbacks = 6000000000ULL,
                    .upstream = { .valid = true, .ok = false, .latency = 2000, .at = SINCE,
                                  .error = "HTTP 500 Internal Server Error: currently no tunnels available" } } },
                { { .name = "plain", .address = "c", .state = NODE_UP, .route = ROUTE_SSH } },
        };
        FakeDaemon d = { .nodes = n, .n_nodes = ELEMENTSOF(n) };
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/nodes/moved", 200);
        _cleanup_(json_decrefp) json_t *w = handle_json(&d, "/v1/nodes/falling", 200);
        _cleanup_(json_decrefp) json_t *x = handle_json(&d, "/v1/nodes/plain", 200);
        static const char *const probe_keys[] = { "ok", "latency_ms", "at", "error" };
        json_t *p = json_object_get(v, "upstream_probe"), *q = json_object_get(w, "upstream_probe");

        assert_string_equal(json_string_value(json_object_get(v, "route")), "konnectivity");
        assert_true(json_is_true(json_object_get(v, "migrated")));
        assert_true(json_is_false(json_object_get(v, "falling_back")));
        assert_int_equal(json_integer_value(json_object_get(v, "fallbacks")), 0);
        /* the same shape as "probe" */
        assert_keys(p, probe_keys, ELEMENTSOF(probe_keys));
        assert_true(json_is_true(json_object_get(p, "ok")));
        assert_true(json_real_value(json_object_get(p, "latency_ms")) == 1.5);
        assert_string_equal(json_string_value(json_object_get(p, "at")), "2026-11-29T15:45:10.123Z");

        assert_string_equal(json_string_value(json_object_get(w, "route")), "ssh");
        assert_true(json_is_true(json_object_get(w, "migrated")));
        assert_true(json_is_true(json_object_get(w, "falling_back")));
        assert_int_equal(json_integer_value(json_object_get(w, "fallbacks")), 6000000000LL);
        assert_true(json_is_false(json_object_get(q, "ok")));
        assert_string_equal(json_string_value(json_object_get(q, "error")),
                            "HTTP 500 Internal Server Error: currently no tunnels available");

        assert_true(json_is_false(json_object_get(x, "migrated")));
        assert_true(json_is_null(json_object_get(x, "upstream_probe")));
}

/* ---- GET /v1/migration ------------------------------------------------------ */

static const char *const migration_keys[] = { "upstream",    "fallback_to_ssh", "nodes_total", "nodes_on_konnectivity",
                                              "nodes_ready", "nodes",           "final_switch" };
static const char *const migration_node_keys[] = { "name", "route", "migrated", "upstream_probe", "probe", "ready" };

#define UP_OK { .valid = true, .ok = true, .latency = 3000, .at = SINCE }
#define UP_FAIL { .valid = true, .ok = false, .latency = 1000, .at = SINCE, .error = "HTTP 500" }

static FakeDaemon migration_daemon(FakeNode *nodes, size_t n, const char *upstream) {
        FakeDaemon d = { .nodes = nodes, .n_nodes = n, .config = TEST_CONFIG };

        d.config.konnectivity.upstream = (char *) upstream;
        d.config.konnectivity.fallback_to_ssh = true;
        return d;
}

static void test_migration_none(void **state) {
        FakeNode n[] = {
                { { .name = "n1", .state = NODE_UP, .route = ROUTE_SSH, .upstream = UP_OK,
                    .probe = { .valid = true, .ok = true, .latency = 1000, .at = SINCE } } },
                { { .name = "n2", .state = NODE_UP, .route = ROUTE_SSH, .upstream = UP_FAIL } },
                { { .name = "n3", .state = NODE_CONNECTING, .route = ROUTE_SSH } },
        };
        FakeDaemon d = migration_daemon(n, ELEMENTSOF(n), "unix:/run/k/konnectivity-server.socket");
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/migration", 200);
        json_t *list = json_object_get(v, "nodes"), *e;

        assert_keys(v, migration_keys, ELEMENTSOF(migration_keys));
        assert_string_equal(json_string_value(json_object_get(v, "upstream")), "unix:/run/k/konnectivity-server.socket");
        assert_true(json_is_true(json_object_get(v, "fallback_to_ssh")));
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_total")), 3);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_on_konnectivity")), 0);
        /* n1's path works: it may move; n2's fails, n3 was never checked */
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_ready")), 1);
        assert_true(json_is_null(json_object_get(v, "final_switch")));

        assert_int_equal(json_array_size(list), 3);
        e = json_array_get(list, 0);
        assert_keys(e, migration_node_keys, ELEMENTSOF(migration_node_keys));
        assert_string_equal(json_string_value(json_object_get(e, "name")), "n1");
        assert_string_equal(json_string_value(json_object_get(e, "route")), "ssh");
        assert_true(json_is_false(json_object_get(e, "migrated")));
        assert_true(json_is_true(json_object_get(json_object_get(e, "upstream_probe"), "ok")));
        assert_true(json_is_true(json_object_get(json_object_get(e, "probe"), "ok")));
        assert_true(json_is_true(json_object_get(e, "ready")));
        e = json_array_get(list, 1);
        assert_true(json_is_false(json_object_get(json_object_get(e, "upstream_probe"), "ok")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "upstream_probe"), "error")),
                            "HTTP 500");
        assert_true(json_is_null(json_object_get(e, "probe")));
        assert_true(json_is_false(json_object_get(e, "ready")));
        e = json_array_get(list, 2);
        assert_true(json_is_null(json_object_get(e, "upstream_probe")));
        assert_true(json_is_false(json_object_get(e, "ready")));

        _cleanup_(handled_done) Handled h = handle(&d, "POST", "/v1/migration");
        assert_int_equal(h.status, 405);
        assert_string_equal(h.allow, "GET");
}

static void test_migration_partial(void **state) {
        FakeNode n[] = {
                { { .name = "n1", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true, .upstream = UP_OK } },
                /* migrated, but its path fails: back on SSH, not counted as moved */
                { { .name = "n2", .state = NODE_UP, .route = ROUTE_SSH, .migrated = true, .falling_back = true,
                    .upstream = UP_FAIL } },
                { { .name = "n3", .state = NODE_UP, .route = ROUTE_SSH, .upstream = UP_OK } },
        };
        FakeDaemon d = migration_daemon(n, ELEMENTSOF(n), "unix:/run/k.sock");
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/migration", 200);

        assert_int_equal(json_integer_value(json_object_get(v, "nodes_on_konnectivity")), 1);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_ready")), 1);
        assert_true(json_is_null(json_object_get(v, "final_switch")));

        /* every node migrated, but one path fails: still no final switch */
        n[2].info.migrated = true;
        n[2].info.route = ROUTE_KONNECTIVITY;
        _cleanup_(json_decrefp) json_t *w = handle_json(&d, "/v1/migration", 200);
        assert_int_equal(json_integer_value(json_object_get(w, "nodes_on_konnectivity")), 2);
        assert_int_equal(json_integer_value(json_object_get(w, "nodes_ready")), 0);
        assert_true(json_is_null(json_object_get(w, "final_switch")));

        /* routed upstream while rolling back, but no longer listed: no final switch */
        n[1].info = (NodeInfo) { .name = "n2", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .upstream = UP_OK };
        _cleanup_(json_decrefp) json_t *x = handle_json(&d, "/v1/migration", 200);
        assert_int_equal(json_integer_value(json_object_get(x, "nodes_on_konnectivity")), 3);
        assert_true(json_is_null(json_object_get(x, "final_switch")));
}

static const char *final_text(const json_t *v, const char *key) {
        const json_t *fs = json_object_get(v, "final_switch");
        static const char *const keys[] = { "egress_selector_configuration", "konnectivity_server_flags" };

        assert_keys(fs, keys, ELEMENTSOF(keys));
        assert_non_null(json_string_value(json_object_get(fs, key)));
        return json_string_value(json_object_get(fs, key));
}

static void test_migration_final_unix(void **state) {
        FakeNode n[] = {
                { { .name = "n1", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true, .upstream = UP_OK } },
                { { .name = "n2", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true, .upstream = UP_OK } },
        };
        FakeDaemon d = migration_daemon(n, ELEMENTSOF(n),
                                    "unix:/etc/kubernetes/konnectivity-server/konnectivity-server.socket");
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/migration", 200);

        assert_int_equal(json_integer_value(json_object_get(v, "nodes_on_konnectivity")), 2);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_ready")), 0);
        assert_string_equal(final_text(v, "egress_selector_configuration"),
                            "apiVersion: apiserver.k8s.io/v1beta1\n"
                            "kind: EgressSelectorConfiguration\n"
                            "egressSelections:\n"
                            "- name: cluster\n"
                            "  connection:\n"
                            "    proxyProtocol: HTTPConnect\n"
                            "    transport:\n"
                            "      uds:\n"
                            "        udsName: /etc/kubernetes/konnectivity-server/konnectivity-server.socket\n");
        assert_string_equal(final_text(v, "konnectivity_server_flags"),
                            "--mode=http-connect "
                            "--uds-name=/etc/kubernetes/konnectivity-server/konnectivity-server.socket "
                            "--server-port=0 --proxy-strategies=destHost");

        /* a path YAML and the shell would misread is quoted for each */
        FakeDaemon odd = migration_daemon(n, ELEMENTSOF(n), "unix:/run/k s/it's #1:");
        _cleanup_(json_decrefp) json_t *w = handle_json(&odd, "/v1/migration", 200);
        assert_non_null(strstr(final_text(w, "egress_selector_configuration"),
                               "        udsName: \"/run/k s/it's #1:\"\n"));
        assert_non_null(strstr(final_text(w, "konnectivity_server_flags"),
                               " --uds-name='/run/k s/it'\\''s #1:' "));

        /* no nodes: nothing has moved, nothing to switch */
        FakeDaemon none = migration_daemon(NULL, 0, "unix:/run/k.sock");
        _cleanup_(json_decrefp) json_t *x = handle_json(&none, "/v1/migration", 200);
        assert_true(json_is_null(json_object_get(x, "final_switch")));
}

static void test_migration_final_tcp(void **state) {
        FakeNode n[] = {
                { { .name = "n1", .state = NODE_UP, .route = ROUTE_KONNECTIVITY, .migrated = true, .upstream = UP_OK } },
        };
        FakeDaemon d = migration_daemon(n, ELEMENTSOF(n), "tcp:konnectivity.example:8131");
        FakeDaemon plain = migration_daemon(n, ELEMENTSOF(n), "tcp:[fd00::5]:8131");

        d.config.konnectivity.ca_file = (char *) "/etc/kubernetes/pki/konnectivity-ca.crt";
        d.config.konnectivity.cert_file = (char *) "/etc/kubernetes/pki/apiserver-konnectivity.crt";
        d.config.konnectivity.key_file = (char *) "/etc/kubernetes/pki/apiserver-konnectivity.key";
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/migration", 200);
        assert_string_equal(final_text(v, "egress_selector_configuration"),
                            "apiVersion: apiserver.k8s.io/v1beta1\n"
                            "kind: EgressSelectorConfiguration\n"
                            "egressSelections:\n"
                            "- name: cluster\n"
                            "  connection:\n"
                            "    proxyProtocol: HTTPConnect\n"
                            "    transport:\n"
                            "      tcp:\n"
                            "        url: https://konnectivity.example:8131\n"
                            "        tlsConfig:\n"
                            "          caBundle: /etc/kubernetes/pki/konnectivity-ca.crt\n"
                            "          clientCert: /etc/kubernetes/pki/apiserver-konnectivity.crt\n"
                            "          clientKey: /etc/kubernetes/pki/apiserver-konnectivity.key\n");
        assert_string_equal(final_text(v, "konnectivity_server_flags"),
                            "--mode=http-connect --server-port=8131 --proxy-strategies=destHost");

        /* no TLS: http, no tlsConfig (kube-apiserver refuses one with http) */
        _cleanup_(json_decrefp) json_t *w = handle_json(&plain, "/v1/migration", 200);
        assert_non_null(strstr(final_text(w, "egress_selector_configuration"),
                               "      tcp:\n        url: \"http://[fd00::5]:8131\"\n"));
        assert_null(strstr(final_text(w, "egress_selector_configuration"), "tlsConfig"));
}

static void test_migration_not_configured(void **state) {
        FakeNode n[] = { { { .name = "n1", .state = NODE_UP, .route = ROUTE_SSH } } };
        FakeDaemon d = { .nodes = n, .n_nodes = 1, .config = TEST_CONFIG };
        _cleanup_(json_decrefp) json_t *v = handle_json(&d, "/v1/migration", 200);

        assert_true(json_is_null(json_object_get(v, "upstream")));
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_on_konnectivity")), 0);
        assert_int_equal(json_integer_value(json_object_get(v, "nodes_ready")), 0);
        assert_true(json_is_null(json_object_get(v, "final_switch")));
}

static void test_node_actions(void **state) {
        FakeNode n[] = {
                { { .name = "node-1", .address = "10.0.0.11", .port = 22, .state = NODE_UP, .streams = 3 } },
                { { .name = "my node", .address = "10.0.0.12", .port = 22, .state = NODE_BACKOFF } },
        };
        FakeDaemon d = { .nodes = n, .n_nodes = 2 };

        {
                _cleanup_(handled_done) Handled h = handle(&d, "POST", "/v1/nodes/node-1/drain");
                _cleanup_(json_decrefp) json_t *v = json_loads(h.body, 0, NULL);
                assert_int_equal(h.status, 200);
                /* the node object after the action */
                assert_keys(v, node_keys, ELEMENTSOF(node_keys));
                assert_string_equal(json_string_value(json_object_get(v, "state")), "draining");
                assert_true(json_is_true(json_object_get(v, "draining")));
                assert_int_equal(json_integer_value(json_object_get(v, "streams")), 3);
                assert_int_equal(n[0].drains, 1);
        }
        {
                _cleanup_(handled_done) Handled h = handle(&d, "POST", "/v1/nodes/node-1/undrain");
                _cleanup_(json_decrefp) json_t *v = json_loads(h.body, 0, NULL);
                assert_int_equal(h.status, 200);
                assert_string_equal(json_string_value(json_object_get(v, "state")), "up");
                assert_true(json_is_false(json_object_get(v, "draining")));
                assert_int_equal(n[0].undrains, 1);
        }
        {
                _cleanup_(handled_done) Handled h = handle(&d, "POST", "/v1/nodes/my%20node/reconnect?x=1");
                _cleanup_(json_decrefp) json_t *v = json_loads(h.body, 0, NULL);
                assert_int_equal(h.status, 200);
                assert_string_equal(json_string_value(json_object_get(v, "name")), "my node");
                assert_string_equal(json_string_value(json_object_get(v, "state")), "connecting");
                assert_int_equal(n[1].reconnects, 1);
        }
        {
                /* a node that is not up is marked, and says so */
                _cleanup_(handled_done) Handled h = handle(&d, "POST", "/v1/nodes/my%20node/drain");
                _cleanup_(json_decrefp) json_t *v = json_loads(h.body, 0, NULL);
                assert_int_equal(h.status, 200);
                assert_string_equal(json_string_value(json_object_get(v, "state")), "connecting");
                assert_true(json_is_true(json_object_get(v, "draining")));
        }
}

static void test_node_action_errors(void **state) {
        FakeNode n[] = { { { .name = "node-1", .address = "10.0.0.11", .port = 22, .state = NODE_UP } } };
        FakeDaemon d = { .nodes = n, .n_nodes = 1 };
        static const char *const actions[] = { "reconnect", "drain", "undrain" };
        static const char *const methods[] = { "GET", "PUT", "DELETE", "post" };

        for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
                char target[64];

                snprintf(target, sizeof(target), "/v1/nodes/node-1/%s", actions[i]);
                for (size_t j = 0; j < ELEMENTSOF(methods); j++) {
                        _cleanup_(handled_done) Handled h = handle(&d, methods[j], target);
                        assert_int_equal(h.status, 405);
                        assert_string_equal(h.allow, "POST");
                }
                snprintf(target, sizeof(target), "/v1/nodes/no-such/%s", actions[i]);
                _cleanup_(json_decrefp) json_t *v = handle_json_method(&d, "POST", target, 404);
                assert_string_equal(json_string_value(json_object_get(v, "error")), "no such node: no-such");
        }
        static const char *const not_found[] = { "/v1/nodes//drain", "/v1/nodes/node-1/drained",
                                                 "/v1/nodes/node-1/drain/x", "/v1/nodes/node-1/" };
        for (size_t i = 0; i < ELEMENTSOF(not_found); i++) {
                _cleanup_(json_decrefp) json_t *v = handle_json_method(&d, "POST", not_found[i], 404);
                assert_string_equal(json_string_value(json_object_get(v, "error")), "not found");
        }
        _cleanup_(json_decrefp) json_t *v = handle_json_method(&d, "POST", "/v1/nodes/node%2/drain", 400);
        assert_int_equal(n[0].drains + n[0].undrains + n[0].reconnects, 0);
}

static void test_scan_request_checks(void **state) {
        static const char *const bad[] = {
                "/v1/hostkeys/scan",
                "/v1/hostkeys/scan?target=",
                "/v1/hostkeys/scan?other=node-1",
                "/v1/hostkeys/scan?target=%zz",
                "/v1/hostkeys/scan?target=a%20b",
                "/v1/hostkeys/scan?target=-oProxyCommand",
                "/v1/hostkeys/scan?target=host:0",
                "/v1/hostkeys/scan?target=host:65536",
                "/v1/hostkeys/scan?target=%5B::1",
                "/v1/hostkeys/scan?target=%5B%5D",
                "/v1/hostkeys/scan?target=fd00::1::2",
                "/v1/hostkeys/scan?target=a;b",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_decrefp) json_t *v = handle_json_method(&test_daemon, "POST", bad[i], 400);
                assert_non_null(json_string_value(json_object_get(v, "error")));
        }
        _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/v1/hostkeys/scan?target=node-1");
        assert_int_equal(h.status, 405);
        assert_string_equal(h.allow, "POST");
        /* a good request needs the socket server to wait on; nothing starts here */
        _cleanup_(handled_done) Handled g = handle(&test_daemon, "POST", "/v1/hostkeys/scan?target=node-1");
        assert_int_equal(g.status, 500);
        assert_null(fake.last);
}

/* ---- health and metrics routes -------------------------------------------------- */

/* /readyz of test_daemon (3 of 5 nodes up or degraded) under 'fraction'. */
static void assert_readyz(FakeDaemon *d, double fraction, int want_status, const char *want_body) {
        FakeDaemon copy = *d;
        Handled h;

        copy.config.admin.ready_min_fraction = fraction;
        h = handle(&copy, "GET", "/readyz");
        assert_int_equal(h.status, want_status);
        assert_string_equal(h.body, want_body);
        assert_string_equal(h.content_type, "text/plain; charset=utf-8");
        handled_done(&h);
}

static void test_readyz(void **state) {
        FakeDaemon empty = { .config = TEST_CONFIG };
        FakeNode many[25] = {};
        FakeDaemon d25 = { .nodes = many, .n_nodes = ELEMENTSOF(many), .config = TEST_CONFIG };

        assert_readyz(&test_daemon, 0.5, 200, "ready: 3/5 nodes up or degraded, need 50%\n");
        assert_readyz(&test_daemon, 0.6, 200, "ready: 3/5 nodes up or degraded, need 60%\n");
        /* exactly the fraction is enough, though 0.28 * 25 is 7.000000000000001 in binary */
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i].info = (NodeInfo) { .name = "n", .state = i < 7 ? NODE_UP : NODE_BACKOFF };
        assert_readyz(&d25, 0.28, 200, "ready: 7/25 nodes up or degraded, need 28%\n");
        many[0].info.state = NODE_AUTH_FAILED;
        assert_readyz(&d25, 0.28, 503, "not ready: 6/25 nodes up or degraded, need 28%\n");
        assert_readyz(&test_daemon, 0.7, 503, "not ready: 3/5 nodes up or degraded, need 70%\n");
        assert_readyz(&test_daemon, 1, 503, "not ready: 3/5 nodes up or degraded, need 100%\n");
        assert_readyz(&test_daemon, 0, 200, "ready: 3/5 nodes up or degraded, need 0%\n");
        /* nothing to wait for */
        assert_readyz(&empty, 0.5, 200, "ready: no nodes configured\n");
        assert_readyz(&empty, 1, 200, "ready: no nodes configured\n");

        _cleanup_(handled_done) Handled q = handle(&test_daemon, "GET", "/readyz?verbose=1");
        assert_int_equal(q.status, 200);
        _cleanup_(handled_done) Handled p = handle(&test_daemon, "POST", "/readyz");
        assert_int_equal(p.status, 405);
        assert_string_equal(p.allow, "GET");
}

static void test_metrics_route(void **state) {
        _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/metrics");
        _cleanup_(handled_done) Handled p = handle(&test_daemon, "POST", "/metrics");

        assert_int_equal(h.status, 200);
        assert_string_equal(h.body, "# metrics\n"); /* metrics_render(), stubbed above */
        assert_string_equal(h.content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert_int_equal(p.status, 405);
        assert_string_equal(p.allow, "GET");
}

/* ---- the socket server ------------------------------------------------------ */

DEFINE_TRIVIAL_CLEANUP_FUNC(Admin *, admin_free);

/* The admin socket as the daemon opens it. */
static int admin_new_at(FakeDaemon *d, const char *path, Admin **ret) {
        AdminEnv env = env_of(d);
        ListenAddress where = { .kind = LISTEN_UNIX, .path = (char *) path };

        return admin_new(&env, &where,
                         &(AdminParams) { .access = ADMIN_ACCESS_FULL, .mode = 0600, .gid = (gid_t) -1,
                                          .activated_fd = -1 },
                         ret);
}

/* admin.metrics_listen as the daemon opens it. */
static int admin_new_public(FakeDaemon *d, const ListenAddress *where, Admin **ret) {
        AdminEnv env = env_of(d);

        return admin_new(&env, where,
                         &(AdminParams) { .access = ADMIN_ACCESS_PUBLIC, .gid = (gid_t) -1, .activated_fd = -1 },
                         ret);
}

typedef struct ServerFixture {
        char dir[64];
        char path[100];
        FakeDaemon daemon;
} ServerFixture;

static int server_setup(void **state) {
        ServerFixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-admin-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/run/admin.sock", f->dir);
        f->daemon = test_daemon;
        assert_int_equal(sd_event_new(&f->daemon.event), 0);
        *state = f;
        return 0;
}

static int server_teardown(void **state) {
        ServerFixture *f = *state;
        char sub[160];

        (void) unlink(f->path);
        snprintf(sub, sizeof(sub), "%s/run", f->dir);
        (void) rmdir(sub);
        assert_int_equal(rmdir(f->dir), 0);
        sd_event_unref(f->daemon.event);
        free(f);
        return 0;
}

static int client_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        assert_true(fd >= 0);
        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return fd;
}

/* Run the loop until the server closes the client's connection; returns the
 * bytes received (malloc'd). */
static char *client_collect(sd_event *e, int fd) {
        size_t len = 0, alloc = 65536;
        char *buf = malloc(alloc + 1);

        assert_non_null(buf);
        for (int i = 0; i < 1000; i++) {
                ssize_t n;

                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
                for (;;) {
                        n = read(fd, buf + len, alloc - len);
                        if (n <= 0)
                                break;
                        len += (size_t) n;
                        assert_true(len < alloc);
                }
                if (n == 0) {
                        buf[len] = 0;
                        return buf;
                }
                assert_int_equal(errno, EAGAIN);
        }
        fail_msg("the server did not close the connection");
        return NULL;
}

static char *exchange(ServerFixture *f, const char *request, size_t len) {
        _cleanup_close_ int fd = client_connect(f->path);

        assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t) len);
        return client_collect(f->daemon.event, fd);
}

static void test_server_roundtrip(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *reply = NULL;
        static const char request[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
        struct stat st;
        const char *body;

        /* the missing parent directory is created */
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        assert_int_equal(lstat(f->path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);

        reply = exchange(f, request, strlen(request));
        assert_true(strncmp(reply, "HTTP/1.1 200 OK\r\n", 17) == 0);
        assert_non_null(strstr(reply, "\r\nConnection: close\r\n"));
        assert_non_null(strstr(reply, "\r\nContent-Type: application/json\r\n"));
        body = strstr(reply, "\r\n\r\n");
        assert_non_null(body);
        body += 4;
        assert_non_null(strstr(reply, "\r\nContent-Length: "));
        assert_int_equal(strtoul(strstr(reply, "Content-Length: ") + 16, NULL, 10), strlen(body));
        assert_true(strncmp(body, "{\"version\":", 11) == 0);
}

static void test_server_405_allow(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *reply = NULL;
        /* a body the server never reads: the reply still arrives whole */
        static const char request[] = "POST /v1/status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        reply = exchange(f, request, strlen(request));
        assert_true(strncmp(reply, "HTTP/1.1 405 ", 13) == 0);
        assert_non_null(strstr(reply, "\r\nAllow: GET\r\n"));
}

static void test_server_malformed(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *reply = NULL;
        static const char request[] = "GET /v1/status HTTP/1.1\nHost: x\n\n";

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        reply = exchange(f, request, strlen(request));
        assert_true(strncmp(reply, "HTTP/1.1 400 ", 13) == 0);
        assert_non_null(strstr(reply, "{\"error\":"));
}

static void test_server_head_too_large(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *reply = NULL, *request = NULL;
        size_t len = 20000;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        request = malloc(len);
        assert_non_null(request);
        memcpy(request, "GET /v1/status HTTP/1.1\r\nX: ", 28);
        memset(request + 28, 'a', len - 28);
        reply = exchange(f, request, len);
        assert_true(strncmp(reply, "HTTP/1.1 431 ", 13) == 0);
}

static void test_server_stale_socket(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char sub[160];
        int fd;

        /* a socket file left behind by a dead daemon */
        snprintf(sub, sizeof(sub), "%s/run", f->dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(fd);

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        _cleanup_free_ char *reply = exchange(f, "GET /healthz HTTP/1.0\r\n\r\n", 25);
        assert_non_null(strstr(reply, "\r\n\r\nok\n"));
}

static void test_server_in_use(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        Admin *b = NULL;
        struct stat st1, st2;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        assert_int_equal(lstat(f->path, &st1), 0);
        assert_int_equal(admin_new_at(&f->daemon, f->path, &b), -EADDRINUSE);
        assert_null(b);
        /* the live socket was left alone */
        assert_int_equal(lstat(f->path, &st2), 0);
        assert_int_equal(st1.st_ino, st2.st_ino);
}

static void test_server_not_a_socket(void **state) {
        ServerFixture *f = *state;
        Admin *a = NULL;
        char sub[160];
        int fd;

        snprintf(sub, sizeof(sub), "%s/run", f->dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        fd = open(f->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), -EEXIST);
        assert_null(a);
}

static void test_server_free_unlinks(void **state) {
        ServerFixture *f = *state;
        Admin *a = NULL;
        struct stat st;
        int fd;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        /* an open connection is closed along with the server */
        fd = client_connect(f->path);
        assert_true(sd_event_run(f->daemon.event, 10 * USEC_PER_MSEC) >= 0);
        a = admin_free(a);
        assert_null(a);
        assert_int_equal(lstat(f->path, &st), -1);
        assert_int_equal(errno, ENOENT);
        _cleanup_free_ char *rest = client_collect(f->daemon.event, fd);
        assert_string_equal(rest, "");
        close(fd);
}

static void test_server_connection_limit(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        int fds[64], extra;
        char c;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = client_connect(f->path);
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f->daemon.event, 1 * USEC_PER_MSEC) >= 0);

        /* the 65th is accepted and closed at once */
        extra = client_connect(f->path);
        _cleanup_free_ char *rest = client_collect(f->daemon.event, extra);
        assert_string_equal(rest, "");
        close(extra);

        /* the first 64 are still open (idle, not yet timed out) */
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                assert_int_equal(read(fds[i], &c, 1), -1);
                assert_int_equal(errno, EAGAIN);
        }
        /* and once one goes, a new one is served */
        close(fds[0]);
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f->daemon.event, 1 * USEC_PER_MSEC) >= 0);
        _cleanup_free_ char *reply = exchange(f, "GET /healthz HTTP/1.1\r\n\r\n", 25);
        assert_true(strncmp(reply, "HTTP/1.1 200 ", 13) == 0);
        for (size_t i = 1; i < ELEMENTSOF(fds); i++)
                close(fds[i]);
}

/* A loopback TCP port nobody listens on right now. */
static uint16_t free_tcp_port(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        return ntohs(sa.sin_port);
}

static char *tcp_exchange(ServerFixture *f, uint16_t port, const char *request) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        /* loopback: the kernel completes the handshake from the backlog */
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t) strlen(request));
        return client_collect(f->daemon.event, fd);
}

static void test_metrics_listener(void **state) {
        static const char *const refused[] = {
                "GET /v1/status HTTP/1.1\r\n\r\n",
                "GET /v1/nodes HTTP/1.1\r\n\r\n",
                "GET /v1/nodes/node-1 HTTP/1.1\r\n\r\n",
                "POST /v1/nodes/node-1/drain HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                "POST /v1/hostkeys/scan?node=node-1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                "GET / HTTP/1.1\r\n\r\n",
        };
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *spec = NULL;
        ListenAddress la = {}, unix_la = {};
        uint16_t port = free_tcp_port();

        /* TCP only */
        assert_int_equal(listen_address_parse("unix:/run/sshtund/metrics.sock", &unix_la), 0);
        assert_int_equal(admin_new_public(&f->daemon, &unix_la, &a), -EAFNOSUPPORT);
        assert_null(a);
        listen_address_done(&unix_la);

        assert_true(asprintf(&spec, "tcp:127.0.0.1:%u", port) > 0);
        assert_int_equal(listen_address_parse(spec, &la), 0);
        assert_int_equal(admin_new_public(&f->daemon, &la, &a), 0);
        listen_address_done(&la);

        _cleanup_free_ char *m = tcp_exchange(f, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(strncmp(m, "HTTP/1.1 200 ", 13) == 0);
        assert_non_null(strstr(m, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert_non_null(strstr(m, "\r\n\r\n# metrics\n"));
        _cleanup_free_ char *h = tcp_exchange(f, port, "GET /healthz HTTP/1.1\r\n\r\n");
        assert_true(strncmp(h, "HTTP/1.1 200 ", 13) == 0);
        _cleanup_free_ char *r = tcp_exchange(f, port, "GET /readyz HTTP/1.1\r\n\r\n");
        assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
        assert_non_null(strstr(r, "\r\n\r\nready: 3/5 nodes up or degraded, need 50%\n"));

        /* the rest of the API is not there, and does nothing */
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_free_ char *reply = tcp_exchange(f, port, refused[i]);
                if (strncmp(reply, "HTTP/1.1 404 ", 13) != 0)
                        fail_msg("%s: %s", refused[i], reply);
        }
        assert_int_equal(f->daemon.nodes[0].drains, 0);
        assert_int_equal(f->daemon.nodes[0].info.state, NODE_UP);
}

/* ---- host key scans over the socket ------------------------------------------ */

/* An ed25519 public key blob: string "ssh-ed25519", string of 32 bytes. */
static size_t ed25519_blob(uint8_t buf[51]) {
        static const char type[] = "ssh-ed25519";

        memcpy(buf, "\0\0\0\x0b", 4);
        memcpy(buf + 4, type, 11);
        memcpy(buf + 15, "\0\0\0\x20", 4);
        for (int i = 0; i < 32; i++)
                buf[19 + i] = (uint8_t) (i * 7 + 1);
        return 51;
}

static int scan_setup(void **state) {
        fake = (typeof(fake)) {};
        return server_setup(state);
}

static int scan_teardown(void **state) {
        assert_int_equal(fake.live, 0);
        return server_teardown(state);
}

static int scan_send(ServerFixture *f, const char *target) {
        char request[512];
        int fd = client_connect(f->path);

        snprintf(request, sizeof(request), "POST /v1/hostkeys/scan?target=%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\n\r\n", target);
        assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t) strlen(request));
        return fd;
}

static void run_loop(ServerFixture *f, int rounds) {
        for (int i = 0; i < rounds; i++)
                assert_true(sd_event_run(f->daemon.event, 1 * USEC_PER_MSEC) >= 0);
}

/* The reply's status, and its body as JSON. */
static json_t *reply_json(const char *reply, int want_status) {
        const char *body = strstr(reply, "\r\n\r\n");
        char want[32];
        json_t *v;

        snprintf(want, sizeof(want), "HTTP/1.1 %d ", want_status);
        if (strncmp(reply, want, strlen(want)) != 0)
                fail_msg("want %d, got: %s", want_status, reply);
        assert_non_null(body);
        v = json_loads(body + 4, 0, NULL);
        assert_non_null(v);
        return v;
}

static void test_scan_node(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *reply = NULL, *line = NULL;
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_close_ int fd = -1;
        uint8_t blob[51];
        size_t len = ed25519_blob(blob);
        char fp[HOSTKEY_FINGERPRINT_MAX], c;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        fd = scan_send(f, "node-1");
        run_loop(f, 20);

        /* scan-only sessions to the node's address and port, owned by no
         * node, one for each key type */
        assert_int_equal(fake.live, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_non_null(fake.scan[i]);
                assert_true(fake.scan[i]->scan_only);
                assert_null(fake.scan[i]->hooks->stream_opened);
                assert_string_equal(fake.scan[i]->address, "10.0.0.11");
                assert_int_equal(fake.scan[i]->port, 22);
        }
        assert_string_equal(fake.scan[0]->key_types, "ssh-ed25519");
        assert_non_null(strstr(fake.scan[1]->key_types, "ecdsa-sha2-nistp256"));
        /* the client waits: no reply, no timeout, while the session runs */
        assert_int_equal(read(fd, &c, 1), -1);
        assert_int_equal(errno, EAGAIN);

        fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
        reply = client_collect(f->daemon.event, fd);
        v = reply_json(reply, 200);
        line = known_hosts_line("10.0.0.11", 22, blob, len);
        assert_int_equal(json_array_size(json_object_get(v, "keys")), 1);
        assert_string_equal(json_string_value(json_object_get(v, "target")), "node-1");
        assert_string_equal(json_string_value(json_object_get(v, "node")), "node-1");
        assert_string_equal(json_string_value(json_object_get(v, "host")), "10.0.0.11");
        assert_int_equal(json_integer_value(json_object_get(v, "port")), 22);
        assert_string_equal(json_string_value(json_object_get(v, "key_type")), "ssh-ed25519");
        assert_int_equal(json_integer_value(json_object_get(v, "bits")), 256);
        assert_string_equal(json_string_value(json_object_get(v, "fingerprint")),
                            hostkey_fingerprint(blob, len, fp, sizeof(fp)));
        assert_string_equal(json_string_value(json_object_get(v, "known_hosts_line")), line);
        assert_true(strncmp(line, "10.0.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 47) == 0);
        assert_string_equal(json_string_value(json_object_get(v, "known_hosts")), test_known_hosts);
        assert_string_equal(json_string_value(json_object_get(v, "known_hosts_check")), "unknown");
        /* freed by the loop, after its callback returned */
        assert_int_equal(fake.live, 0);
}

static void test_scan_host_port(void **state) {
        static const struct {
                const char *query;
                const char *host;
                uint16_t port;
                const char *line_start;
        } cases[] = {
                { "10.1.2.3%3A2222", "10.1.2.3", 2222, "[10.1.2.3]:2222 ssh-ed25519 " },
                { "%5Bfd00%3A%3A9%5D%3A22", "fd00::9", 22, "fd00::9 ssh-ed25519 " },
                { "%5Bfd00%3A%3A9%5D", "fd00::9", 2200, "[fd00::9]:2200 ssh-ed25519 " },
                { "fd00::9", "fd00::9", 2200, "[fd00::9]:2200 ssh-ed25519 " },
                { "Node-7.example", "Node-7.example", 2200, "[node-7.example]:2200 ssh-ed25519 " },
        };
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        uint8_t blob[51];
        size_t len = ed25519_blob(blob);

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_close_ int fd = scan_send(f, cases[i].query);
                _cleanup_free_ char *reply = NULL;
                _cleanup_(json_decrefp) json_t *v = NULL;

                run_loop(f, 20);
                assert_non_null(fake.last);
                assert_string_equal(fake.last->address, cases[i].host);
                assert_int_equal(fake.last->port, cases[i].port);
                fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
                reply = client_collect(f->daemon.event, fd);
                v = reply_json(reply, 200);
                assert_true(json_is_null(json_object_get(v, "node")));
                assert_int_equal(json_integer_value(json_object_get(v, "port")), cases[i].port);
                const char *line = json_string_value(json_object_get(v, "known_hosts_line"));
                assert_non_null(line);
                if (strncmp(line, cases[i].line_start, strlen(cases[i].line_start)) != 0)
                        fail_msg("%s: line %s", cases[i].query, line);
        }
}

static void test_scan_failure(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        {
                /* ended later */
                _cleanup_close_ int fd = scan_send(f, "node-1");
                _cleanup_free_ char *reply = NULL;
                _cleanup_(json_decrefp) json_t *v = NULL;

                run_loop(f, 20);
                fake_scan_finish(SESSION_FAILURE_TIMEOUT, "no SSH session within connect_timeout", NULL, 0);
                reply = client_collect(f->daemon.event, fd);
                v = reply_json(reply, 502);
                assert_string_equal(json_string_value(json_object_get(v, "error")),
                                    "no SSH session within connect_timeout");
        }
        {
                /* ended inside session_connect(): the reply still comes from the loop */
                _cleanup_close_ int fd = -1;
                _cleanup_free_ char *reply = NULL;
                _cleanup_(json_decrefp) json_t *v = NULL;

                fake.sync_refuse = true;
                fd = scan_send(f, "node-1");
                reply = client_collect(f->daemon.event, fd);
                v = reply_json(reply, 502);
                assert_string_equal(json_string_value(json_object_get(v, "error")),
                                    "connect to 10.0.0.11:22: Connection refused");
                fake.sync_refuse = false;
        }
        {
                /* scanned, but no key to show */
                _cleanup_close_ int fd = scan_send(f, "node-1");
                _cleanup_free_ char *reply = NULL;
                static const uint8_t junk[] = { 0, 0, 0, 99, 'x' };

                run_loop(f, 20);
                fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", junk, sizeof(junk));
                reply = client_collect(f->daemon.event, fd);
                _cleanup_(json_decrefp) json_t *v = reply_json(reply, 502);
        }
}

static void test_scan_client_leaves(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        int fd;

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        fd = scan_send(f, "node-1");
        run_loop(f, 20);
        assert_int_equal(fake.live, 2);
        close(fd);
        run_loop(f, 20);
        /* nobody waits for it any more: the session is gone */
        assert_int_equal(fake.live, 0);
        assert_null(fake.last);

        /* one that only shut its sending side still gets the answer */
        uint8_t blob[51];
        size_t len = ed25519_blob(blob);
        _cleanup_close_ int fd2 = scan_send(f, "node-1");
        assert_int_equal(shutdown(fd2, SHUT_WR), 0);
        run_loop(f, 20);
        assert_int_equal(fake.live, 2);
        fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
        _cleanup_free_ char *reply = client_collect(f->daemon.event, fd2);
        _cleanup_(json_decrefp) json_t *v = reply_json(reply, 200);

        /* and a scan still running when the server goes is freed with it */
        _cleanup_close_ int fd3 = scan_send(f, "node-1");
        run_loop(f, 20);
        assert_int_equal(fake.live, 2);
        a = admin_free(a);
        assert_int_equal(fake.live, 0);
}

static void test_scan_limit(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        Session *sessions[8][2];
        int fds[8];

        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fds[i] = scan_send(f, "node-1");
                run_loop(f, 10);
                sessions[i][0] = fake.scan[0];
                sessions[i][1] = fake.scan[1];
        }
        assert_int_equal(fake.live, 16);

        _cleanup_close_ int extra = scan_send(f, "node-1");
        _cleanup_free_ char *reply = client_collect(f->daemon.event, extra);
        _cleanup_(json_decrefp) json_t *v = reply_json(reply, 503);
        assert_int_equal(fake.live, 16);

        for (size_t i = 0; i < ELEMENTSOF(fds); i++) {
                fake_finish(sessions[i][0], SESSION_FAILURE_NETWORK, "refused", NULL, 0);
                fake_finish(sessions[i][1], SESSION_FAILURE_NETWORK, "refused", NULL, 0);
                _cleanup_free_ char *r = client_collect(f->daemon.event, fds[i]);
                _cleanup_(json_decrefp) json_t *w = reply_json(r, 502);
                close(fds[i]);
        }
}

static void test_scan_timeout(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_close_ int fd = -1;
        usec_t start = now_usec(CLOCK_MONOTONIC), took;

        /* the session never ends: the admin's backstop (connect_timeout + 5 s) answers */
        f->daemon.config.ssh.connect_timeout = 0.001;
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        fd = scan_send(f, "node-1");
        for (int i = 0; i < 1000 && fake.live == 0; i++)
                run_loop(f, 1);
        assert_int_equal(fake.live, 2);
        for (int i = 0; i < 80 && fake.live == 2; i++)
                assert_true(sd_event_run(f->daemon.event, 100 * USEC_PER_MSEC) >= 0);
        took = now_usec(CLOCK_MONOTONIC) - start;
        assert_int_equal(fake.live, 0);
        assert_true(took >= 4 * USEC_PER_SEC);
        _cleanup_free_ char *reply = client_collect(f->daemon.event, fd);
        _cleanup_(json_decrefp) json_t *v = reply_json(reply, 504);
}

/* ---- hostkeys trust and list ------------------------------------------------ */

static int trust_send(ServerFixture *f, const char *query) {
        char request[768];
        int fd = client_connect(f->path);

        snprintf(request, sizeof(request), "POST /v1/hostkeys/trust?%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\n\r\n", query);
        assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t) strlen(request));
        return fd;
}

static void read_text(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n = 0;

        buf[0] = 0;
        if (!f)
                return;
        n = fread(buf, 1, size - 1, f);
        buf[n] = 0;
        fclose(f);
}

static void test_trust_request_checks(void **state) {
        static const struct {
                const char *target;
                int status;
                const char *error;
        } cases[] = {
                { "/v1/hostkeys/trust", 400, "missing node" },
                { "/v1/hostkeys/trust?node=node-1", 400, "missing fingerprint" },
                { "/v1/hostkeys/trust?node=node-1&fingerprint=abc", 400, "malformed fingerprint" },
                { "/v1/hostkeys/trust?node=node-1&fingerprint=SHA256:short", 400, "malformed fingerprint" },
                { "/v1/hostkeys/trust?node=node-1&fingerprint=MD5:aa:bb", 400, "malformed fingerprint" },
                { "/v1/hostkeys/trust?node=node-1&fingerprint=%zz", 400, "malformed fingerprint" },
                { "/v1/hostkeys/trust?node=nobody&fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 404,
                  "no node nobody" },
                { "/v1/hostkeys/trust?node=node-1&fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 500,
                  "admin socket only" },
                /* absolute-form: still a trust, not a scan without its target */
                { "http://localhost/v1/hostkeys/trust?node=node-1&fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                  500, "admin socket only" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_decrefp) json_t *v = handle_json_method(&test_daemon, "POST", cases[i].target,
                                                                        cases[i].status);
                const char *error = json_string_value(json_object_get(v, "error"));

                if (!error || !strstr(error, cases[i].error))
                        fail_msg("%s: %s", cases[i].target, error);
        }
        {
                _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET", "/v1/hostkeys/trust?node=node-1");
                assert_int_equal(h.status, 405);
                assert_string_equal(h.allow, "POST");
        }
}

/* A key whose fingerprint the operator names goes to learned_hosts (never
 * known_hosts); another is refused and nothing is written. */
static void test_trust_node(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        uint8_t blob[51];
        size_t len = ed25519_blob(blob);
        char fp[HOSTKEY_FINGERPRINT_MAX], query[256], text[1024];
        _cleanup_free_ char *line = known_hosts_line("10.0.0.11", 22, blob, len);

        trust_reset();
        trusted_name[0] = 0;
        hostkey_fingerprint(blob, len, fp, sizeof fp);
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);

        /* the wrong fingerprint: 409, the keys seen in the reply, nothing written */
        {
                _cleanup_close_ int fd = trust_send(f, "node=node-1&fingerprint="
                                                       "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
                _cleanup_free_ char *reply = NULL;
                _cleanup_(json_decrefp) json_t *v = NULL;

                run_loop(f, 20);
                assert_int_equal(fake.live, 2);
                fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
                reply = client_collect(f->daemon.event, fd);
                v = reply_json(reply, 409);
                assert_non_null(strstr(json_string_value(json_object_get(v, "error")), fp));
                assert_string_equal(json_string_value(json_object_get(
                                            json_array_get(json_object_get(v, "presented"), 0), "fingerprint")),
                                    fp);
                assert_int_equal(access(test_learned_hosts, F_OK), -1);
                assert_string_equal(trusted_name, "");
        }
        /* the right one (among others): written, the node told */
        snprintf(query, sizeof query,
                 "node=node-1&fingerprint=SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB&fingerprint=%s", fp);
        for (int round = 0; round < 2; round++) {
                _cleanup_close_ int fd = trust_send(f, query);
                _cleanup_free_ char *reply = NULL;
                _cleanup_(json_decrefp) json_t *v = NULL;

                run_loop(f, 20);
                fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
                reply = client_collect(f->daemon.event, fd);
                v = reply_json(reply, 200);
                /* the second time there is nothing to write */
                assert_int_equal(json_is_true(json_object_get(v, "changed")), round == 0);
                assert_string_equal(json_string_value(json_object_get(v, "learned_hosts")), test_learned_hosts);
                assert_string_equal(json_string_value(json_object_get(
                                            json_array_get(json_object_get(v, "trusted"), 0), "fingerprint")),
                                    fp);
                assert_string_equal(trusted_name, "node-1");
                read_text(test_learned_hosts, text, sizeof text);
                assert_int_equal(strncmp(text, line, strlen(line)), 0);
                assert_string_equal(text + strlen(line), "\n");
        }
        read_text(test_known_hosts, text, sizeof text);
        assert_string_equal(text, "");
        assert_int_equal(fake.live, 0);

        /* GET /v1/hostkeys?node=node-1 lists it, from the learned file, line 1 */
        {
                _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/hostkeys?node=node-1", 200);
                json_t *node = json_array_get(json_object_get(v, "nodes"), 0);
                json_t *key = json_array_get(json_object_get(node, "keys"), 0);

                assert_int_equal(json_array_size(json_object_get(v, "nodes")), 1);
                assert_string_equal(json_string_value(json_object_get(node, "node")), "node-1");
                assert_string_equal(json_string_value(json_object_get(key, "fingerprint")), fp);
                assert_string_equal(json_string_value(json_object_get(key, "file")), test_learned_hosts);
                assert_int_equal(json_integer_value(json_object_get(key, "line")), 1);
                assert_false(json_is_true(json_object_get(key, "revoked")));
        }
        {
                _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/hostkeys", 200);
                assert_int_equal(json_array_size(json_object_get(v, "nodes")), test_daemon.n_nodes);
                assert_string_equal(json_string_value(json_object_get(v, "known_hosts")), test_known_hosts);
        }
        {
                _cleanup_(json_decrefp) json_t *v = handle_json(&test_daemon, "/v1/hostkeys?node=nobody", 404);
        }
        trust_reset();
}

/* hostkeys forget: node-1's plain lines leave learned_hosts, its @revoked
 * line and other nodes' lines stay, known_hosts is not touched, the node
 * reconnects; bad requests change nothing. */
static void test_forget_node(void **state) {
        uint8_t blob[51], other[51];
        size_t len = ed25519_blob(blob);
        _cleanup_free_ char *mine = NULL, *theirs = NULL, *revoked = NULL, *known = NULL;
        FakeNode *n = fake_find(&test_daemon, "node-1");
        unsigned reconnects;
        char text[2048], want[2048];
        FILE *f;

        memcpy(other, blob, sizeof other);
        other[50] ^= 0xff;
        mine = known_hosts_line("10.0.0.11", 22, blob, len);
        theirs = known_hosts_line("10.0.0.14", 22, blob, len);
        revoked = known_hosts_line("10.0.0.11", 22, other, len);
        known = known_hosts_line("10.0.0.11", 22, other, len);
        assert_non_null(mine);
        assert_non_null(theirs);
        assert_non_null(revoked);
        trust_reset();
        f = fopen(test_learned_hosts, "we");
        assert_non_null(f);
        fprintf(f, "%s\n%s\n@revoked %s\n# a comment\n%s\n", mine, theirs, revoked, mine);
        fclose(f);
        trust_refresh(fake_session_env.trust);

        /* bad requests: nothing changes */
        {
                static const struct {
                        const char *method, *target;
                        int status;
                        const char *error;
                } cases[] = {
                        { "POST", "/v1/hostkeys/forget", 400, "missing node" },
                        { "POST", "/v1/hostkeys/forget?node=", 400, "missing node" },
                        { "POST", "/v1/hostkeys/forget?node=%zz", 400, "malformed node" },
                        { "POST", "/v1/hostkeys/forget?node=nobody", 404, "no node nobody" },
                };
                reconnects = n->reconnects;
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        _cleanup_(json_decrefp) json_t *v = handle_json_method(&test_daemon, cases[i].method,
                                                                                cases[i].target, cases[i].status);
                        const char *error = json_string_value(json_object_get(v, "error"));

                        if (!error || !strstr(error, cases[i].error))
                                fail_msg("%s: %s", cases[i].target, error);
                }
                {
                        _cleanup_(handled_done) Handled h = handle(&test_daemon, "GET",
                                                                   "/v1/hostkeys/forget?node=node-1");
                        assert_int_equal(h.status, 405);
                        assert_string_equal(h.allow, "POST");
                }
                assert_int_equal(n->reconnects, reconnects);
                read_text(test_learned_hosts, text, sizeof text);
                snprintf(want, sizeof want, "%s\n%s\n@revoked %s\n# a comment\n%s\n", mine, theirs, revoked, mine);
                assert_string_equal(text, want);
        }

        for (int round = 0; round < 2; round++) {
                _cleanup_(json_decrefp) json_t *v = NULL;
                json_t *keys;

                reconnects = n->reconnects;
                v = handle_json_method(&test_daemon, "POST", "/v1/hostkeys/forget?node=node-1", 200);
                /* the second time there is nothing left to remove */
                assert_int_equal(json_is_true(json_object_get(v, "changed")), round == 0);
                assert_string_equal(json_string_value(json_object_get(v, "learned_hosts")), test_learned_hosts);
                assert_int_equal(n->reconnects, reconnects + 1);
                /* what still speaks about the node: its @revoked line */
                keys = json_object_get(v, "keys");
                assert_int_equal(json_array_size(keys), 1);
                assert_true(json_is_true(json_object_get(json_array_get(keys, 0), "revoked")));
                read_text(test_learned_hosts, text, sizeof text);
                snprintf(want, sizeof want, "%s\n@revoked %s\n# a comment\n", theirs, revoked);
                assert_string_equal(text, want);
                read_text(test_known_hosts, text, sizeof text);
                assert_string_equal(text, "");
        }
        /* the key is unknown now (and still known for the other node) */
        assert_int_equal(trust_check(fake_session_env.trust, "10.0.0.11", 22, blob, len, NULL, NULL),
                         HOSTKEY_UNKNOWN);
        assert_int_equal(trust_check(fake_session_env.trust, "10.0.0.14", 22, blob, len, NULL, NULL), HOSTKEY_OK);

        /* a key in known_hosts stays and is reported */
        f = fopen(test_known_hosts, "we");
        assert_non_null(f);
        fprintf(f, "%s\n", known);
        fclose(f);
        {
                _cleanup_(json_decrefp) json_t *v = handle_json_method(&test_daemon, "POST",
                                                                        "/v1/hostkeys/forget?node=node-1", 200);
                json_t *keys = json_object_get(v, "keys");
                bool from_known = false;
                size_t i;
                json_t *k;

                json_array_foreach(keys, i, k)
                        if (streq_ptr(json_string_value(json_object_get(k, "file")), test_known_hosts))
                                from_known = true;
                assert_true(from_known);
                read_text(test_known_hosts, text, sizeof text);
                snprintf(want, sizeof want, "%s\n", known);
                assert_string_equal(text, want);
        }
        trust_reset();
}

/* known_hosts, the operator's file, holds another key of the type: trust
 * does not overrule it. */
static void test_trust_known_hosts_wins(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        uint8_t blob[51], other[51];
        size_t len = ed25519_blob(blob);
        char fp[HOSTKEY_FINGERPRINT_MAX], query[256];
        _cleanup_free_ char *line = NULL;
        FILE *kh;

        memcpy(other, blob, sizeof other);
        other[50] ^= 0xff;
        line = known_hosts_line("10.0.0.11", 22, other, len);
        trust_reset();
        kh = fopen(test_known_hosts, "we");
        assert_non_null(kh);
        fprintf(kh, "%s\n", line);
        fclose(kh);
        assert_int_equal(trust_set_files(fake_session_env.trust, test_known_hosts, test_learned_hosts), 0);

        hostkey_fingerprint(blob, len, fp, sizeof fp);
        snprintf(query, sizeof query, "node=node-1&fingerprint=%s", fp);
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        _cleanup_close_ int fd = trust_send(f, query);
        run_loop(f, 20);
        fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
        _cleanup_free_ char *reply = client_collect(f->daemon.event, fd);
        _cleanup_(json_decrefp) json_t *v = reply_json(reply, 409);
        assert_non_null(strstr(json_string_value(json_object_get(v, "error")), test_known_hosts));
        assert_int_equal(access(test_learned_hosts, F_OK), -1);
        trust_reset();
}

/* learned_hosts cannot be written (a line it cannot read back): 500 with
 * the file and line, nothing changed. */
static void test_trust_corrupt_learned(void **state) {
        ServerFixture *f = *state;
        _cleanup_(admin_freep) Admin *a = NULL;
        uint8_t blob[51];
        size_t len = ed25519_blob(blob);
        char fp[HOSTKEY_FINGERPRINT_MAX], query[256], text[256], want[160];
        FILE *lh;

        trust_reset();
        lh = fopen(test_learned_hosts, "we");
        assert_non_null(lh);
        fputs("garbage line\n", lh);
        fclose(lh);
        hostkey_fingerprint(blob, len, fp, sizeof fp);
        snprintf(query, sizeof query, "node=node-1&fingerprint=%s", fp);
        assert_int_equal(admin_new_at(&f->daemon, f->path, &a), 0);
        _cleanup_close_ int fd = trust_send(f, query);
        run_loop(f, 20);
        fake_scan_finish(SESSION_FAILURE_SCANNED, "host key scanned", blob, len);
        _cleanup_free_ char *reply = client_collect(f->daemon.event, fd);
        _cleanup_(json_decrefp) json_t *v = reply_json(reply, 500);
        snprintf(want, sizeof want, "%s:1:", test_learned_hosts);
        assert_non_null(strstr(json_string_value(json_object_get(v, "error")), want));
        read_text(test_learned_hosts, text, sizeof text);
        assert_string_equal(text, "garbage line\n");
        trust_reset();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status_counts),
                cmocka_unit_test(test_status_no_nodes),
                cmocka_unit_test(test_status_compact),
                cmocka_unit_test(test_nodes_list),
                cmocka_unit_test(test_nodes_list_as_jansson_writes_it),
                cmocka_unit_test(test_node_by_name),
                cmocka_unit_test(test_node_url_decoded),
                cmocka_unit_test(test_node_bad_escapes),
                cmocka_unit_test(test_node_not_found),
                cmocka_unit_test(test_unknown_paths),
                cmocka_unit_test(test_query_ignored),
                cmocka_unit_test(test_method_not_allowed),
                cmocka_unit_test(test_healthz),
                cmocka_unit_test(test_state_since_format),
                cmocka_unit_test(test_invalid_utf8_text),
                cmocka_unit_test(test_probe_object),
                cmocka_unit_test(test_node_konnectivity_fields),
                cmocka_unit_test(test_migration_none),
                cmocka_unit_test(test_migration_partial),
                cmocka_unit_test(test_migration_final_unix),
                cmocka_unit_test(test_migration_final_tcp),
                cmocka_unit_test(test_migration_not_configured),
                cmocka_unit_test(test_node_actions),
                cmocka_unit_test(test_node_action_errors),
                cmocka_unit_test(test_scan_request_checks),
                cmocka_unit_test(test_readyz),
                cmocka_unit_test(test_metrics_route),
                cmocka_unit_test_setup_teardown(test_server_roundtrip, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_405_allow, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_malformed, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_head_too_large, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_stale_socket, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_in_use, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_not_a_socket, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_free_unlinks, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_server_connection_limit, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_metrics_listener, server_setup, server_teardown),
                cmocka_unit_test_setup_teardown(test_scan_node, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_scan_host_port, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_scan_failure, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_scan_client_leaves, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_scan_limit, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_scan_timeout, scan_setup, scan_teardown),
                cmocka_unit_test(test_reload),
                cmocka_unit_test(test_readonly_access),
                cmocka_unit_test(test_trust_request_checks),
                cmocka_unit_test_setup_teardown(test_trust_node, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_trust_known_hosts_wins, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_forget_node, scan_setup, scan_teardown),
                cmocka_unit_test_setup_teardown(test_trust_corrupt_learned, scan_setup, scan_teardown),
        };

        sd_event *e = NULL;
        int r;

        strcpy(test_dir, "/tmp/test-admin-XXXXXX");
        assert_non_null(mkdtemp(test_dir));
        snprintf(test_known_hosts, sizeof test_known_hosts, "%s/known_hosts", test_dir);
        snprintf(test_learned_hosts, sizeof test_learned_hosts, "%s/learned_hosts", test_dir);
        fclose(fopen(test_known_hosts, "we"));
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(trust_new(e, test_known_hosts, test_learned_hosts, &fake_session_env.trust), 0);

        r = cmocka_run_group_tests(tests, NULL, NULL);

        trust_free(fake_session_env.trust);
        sd_event_unref(e);
        (void) unlink(test_known_hosts);
        (void) unlink(test_learned_hosts);
        (void) rmdir(test_dir);
        return r;
}
