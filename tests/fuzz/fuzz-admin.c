/* Fuzzing the admin API's request handler (admin_handle) against a fake
 * daemon behind AdminOps: the input is a request head, parsed as the admin
 * socket parses it, or failing that a raw "METHOD TARGET" line. Every reply
 * must be a known status with a body; JSON bodies must parse; the response
 * the socket would send must read back with the same status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "nodeinfo.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);

/* ---- a daemon for the harness: a few nodes with awkward names and texts,
 * and a reload that can fail. Made fresh for every input, so operator
 * actions leave nothing behind. -------------------------------------------- */

/* 2026-11-29T15:45:10.123456Z */
#define SINCE ((usec_t) 1795967110 * USEC_PER_SEC + 123456)

/* Names a URL can only spell with escapes, texts that are not UTF-8, a
 * time too far out for RFC 3339, a counter past INT64_MAX. */
static const NodeInfo node_infos[] = {
        { .name = "node-1", .address = "10.0.0.11", .port = 22, .state = NODE_UP, .route = ROUTE_SSH,
          .sessions_up = 2, .sessions_total = 2, .streams = 7, .streams_total = UINT64_MAX,
          .host_key = "SHA256:abc", .state_since = SINCE,
          .probe = { .valid = true, .ok = true, .latency = 1234, .at = SINCE } },
        { .name = "node-2", .address = "fd00::2", .port = 2222, .state = NODE_BACKOFF, .route = ROUTE_SSH,
          .last_error = "connect: \xff\xfe refused\n\t\x01", .state_since = USEC_INFINITY - 1,
          .probe = { .valid = true, .ok = false, .error = "HTTP 500 \xc3\x28" } },
        { .name = "my node", .address = "10.0.0.13", .port = 22, .state = NODE_DEGRADED, .route = ROUTE_SSH,
          .state_since = (usec_t) 253402300800 * USEC_PER_SEC },
        { .name = "n\xc3\xa9/x?y#z%", .address = "node-4.example", .port = 65535, .state = NODE_DRAINING,
          .route = ROUTE_SSH, .draining = true, .state_since = 1 },
        { .name = "\xed\xa0\x80", .address = "10.0.0.15", .port = 1, .state = NODE_HOSTKEY_MISMATCH,
          .route = ROUTE_SSH },
        { .name = "node-6", .address = "10.0.0.16", .port = 22, .state = (NodeState) 99, .route = (NodeRoute) 7 },
};

static char *konnectivity_nodes[] = { (char *) "*", NULL };

typedef struct FakeDaemon {
        NodeInfo nodes[ELEMENTSOF(node_infos)];
        Config config;
        const char *reload_error;
} FakeDaemon;

static int fake_nodes(void *userdata, NodeInfo **ret, size_t *ret_n) {
        FakeDaemon *d = userdata;

        *ret = malloc(sizeof(d->nodes));
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, d->nodes, sizeof(d->nodes));
        *ret_n = ELEMENTSOF(d->nodes);
        return 0;
}

static NodeInfo *fake_find(FakeDaemon *d, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(d->nodes); i++)
                if (streq(d->nodes[i].name, name))
                        return &d->nodes[i];
        return NULL;
}

static int fake_node(void *userdata, const char *name, NodeInfo *ret) {
        NodeInfo *n = fake_find(userdata, name);

        if (!n)
                return -ENOENT;
        *ret = *n;
        return 0;
}

static void fake_status(void *userdata, AdminStatus *ret) {
        *ret = (AdminStatus) { .streams = 12, .handshakes_in_flight = 3 };
}

static int fake_action(void *userdata, const char *name, AdminAction a, NodeInfo *ret) {
        NodeInfo *n = fake_find(userdata, name);

        if (!n)
                return -ENOENT;
        if (a == ADMIN_ACTION_DRAIN) {
                n->draining = true;
                if (n->state == NODE_UP)
                        n->state = NODE_DRAINING;
        } else if (a == ADMIN_ACTION_UNDRAIN) {
                n->draining = false;
                if (n->state == NODE_DRAINING)
                        n->state = NODE_UP;
        } else
                n->state = NODE_CONNECTING;
        *ret = *n;
        return 0;
}

static int fake_reload(void *userdata, char **ret_error) {
        FakeDaemon *d = userdata;

        if (!d->reload_error)
                return 0;
        *ret_error = strdup(d->reload_error);
        return *ret_error ? -EINVAL : -ENOMEM;
}

static char *fake_metrics(void *userdata, size_t *ret_len) {
        char *s = strdup("# HELP sshtund_up 1\nsshtund_up 1\n");

        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

static const Config *fake_config(void *userdata) {
        FakeDaemon *d = userdata;
        return &d->config;
}

static const AdminOps fake_ops = {
        .nodes = fake_nodes,
        .node = fake_node,
        .status = fake_status,
        .action = fake_action,
        .reload = fake_reload,
        .metrics = fake_metrics,
        .config = fake_config,
};

/* With 'konnectivity', an upstream is configured and every node has been
 * moved to it, so that the migration view offers the final switch. */
static void fake_init(FakeDaemon *d, const char *reload_error, bool konnectivity) {
        *d = (FakeDaemon) {
                .config = {
                        .ssh = { .port = 2200, .connect_timeout = 10,
                                 .known_hosts = (char *) "/nonexistent/known_hosts" },
                        .admin = { .ready_min_fraction = 0.5 },
                },
                .reload_error = reload_error,
        };
        memcpy(d->nodes, node_infos, sizeof(node_infos));
        d->config.konnectivity.nodes = konnectivity_nodes + 1;
        if (!konnectivity)
                return;
        /* names a YAML and a shell word must quote */
        d->config.konnectivity = (ConfigKonnectivity) {
                .upstream = (char *) "tcp:konnectivity.kube-system:8132",
                .nodes = konnectivity_nodes,
                .ca_file = (char *) "/etc/kubernetes/pki/ca 'x'.crt",
                .cert_file = (char *) "/etc/kubernetes/pki/\"client\".crt",
                .key_file = (char *) "/etc/kubernetes/pki/client:\n.key",
                .probe_port = 10250,
        };
        for (size_t i = 0; i < ELEMENTSOF(d->nodes); i++) {
                d->nodes[i].route = ROUTE_KONNECTIVITY;
                d->nodes[i].migrated = true;
                d->nodes[i].upstream = (ProbeInfo) { .valid = true, .ok = true, .latency = 2000, .at = SINCE };
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* operator actions log at notice: keep the output to findings */
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return 0;
}

static void check_reply(int status, const char *body, const char *content_type, const char *allow) {
        _cleanup_free_ char *out = NULL, *extra = NULL;
        HttpResponseHead head;
        size_t n = 0;

        fuzz_check(status == 200 || status == 400 || status == 404 || status == 405 || status == 500 ||
                   status == 503);
        fuzz_check(body && content_type);
        fuzz_check((status == 405) == !!allow);

        if (streq(content_type, "application/json")) {
                json_error_t error;
                json_t *v = json_loads(body, 0, &error);

                if (!v)
                        fprintf(stderr, "not JSON (%s): %s\n", error.text, body);
                fuzz_check(v);
                fuzz_check(json_is_object(v));
                if (status >= 400)
                        fuzz_check(json_is_string(json_object_get(v, "error")));
                json_decref(v);
        }

        if (allow && asprintf(&extra, "Allow: %s\r\n", allow) < 0)
                return;
        out = http_response_format(status, NULL, extra, content_type, body, strlen(body), &n);
        if (!out)
                return;
        fuzz_check(http_response_parse(out, n, n, &head) > 0);
        fuzz_check(head.status == status);
}

static void handle(const uint8_t *data, size_t size, const char *method, const char *target) {
        _cleanup_free_ char *body = NULL;
        const char *content_type = NULL, *allow = NULL;
        int status = 0, r;
        uint64_t h = fuzz_hash(data, size);
        FakeDaemon d;
        AdminEnv env = { .ops = &fake_ops, .userdata = &d };

        /* now and then a reload that fails with a message that is not
         * UTF-8, and a daemon whose nodes all went to konnectivity; and
         * the public routes of metrics_listen */
        fake_init(&d, h % 2 ? "/etc/sshtund/sshtund.conf:3: ssh.port: \xff\xfe bad\x01" : NULL, (h >> 1) % 2);
        r = admin_handle(&env, (h >> 2) % 4 == 0 ? ADMIN_ACCESS_PUBLIC : ADMIN_ACCESS_FULL, method, target, &status,
                         &body, &content_type, &allow);
        fuzz_check(r == 0 || r == -ENOMEM);
        if (r == 0)
                check_reply(status, body, content_type, allow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(http_request_freep) HttpRequest *req = NULL;
        _cleanup_free_ char *text = NULL;
        char *sp;

        if (http_request_parse((const char *) data, size, HTTP_HEAD_MAX, &req) > 0) {
                handle(data, size, http_request_method(req), http_request_target(req));
                return 0;
        }

        /* admin_handle() on its own takes any strings: up to the first NUL,
         * the method before the first space, the target after it */
        text = strndup((const char *) data, size);
        if (!text)
                return 0;
        sp = strchr(text, ' ');
        if (!sp)
                return 0;
        *sp = 0;
        sp[strcspn(sp + 1, "\r\n") + 1] = 0;
        handle(data, size, text, sp + 1);
        return 0;
}
