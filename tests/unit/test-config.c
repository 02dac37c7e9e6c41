/* Tests for config.c: every key read into the struct, the defaults, and each
 * kind of mistake reported as "FILE:LINE: KEY: message" with the right line. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* by path: the build directory's autoconf config.h has the same name */
#include "../../src/conf.h"
#include "macro.h"

typedef struct Fixture {
        char dir[64];
        char conf[128]; /* DIR/sshtund.conf */
} Fixture;

/* Config texts below write "%1$s" for the temporary directory, which holds
 * an ed25519 key "id" and an RSA key "rsa". */
static void write_file(const char *path, const char *text, const char *dir) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        for (const char *p = text; *p;) {
                const char *m = strstr(p, "%1$s");
                size_t n = m ? (size_t) (m - p) : strlen(p);

                assert_int_equal(fwrite(p, 1, n, f), n);
                p += n;
                if (m) {
                        assert_true(fputs(dir, f) >= 0);
                        p += 4;
                }
        }
        assert_int_equal(fclose(f), 0);
}

static int load(const Fixture *fx, const char *format, Config **ret, char **ret_error) {
        write_file(fx->conf, format, fx->dir);
        return config_load(fx->conf, ret, ret_error);
}

/* 'expected' is the message after the file name: ":3: ssh.port: ...". */
static void assert_load_fails(const Fixture *fx, const char *format, const char *expected) {
        _cleanup_free_ char *error = NULL, *want = NULL;
        Config *c = NULL;
        int r;

        r = load(fx, format, &c, &error);
        if (r != -EINVAL)
                fail_msg("config\n%s\nloaded with %d (%s), expected the error\n%s", format, r,
                         strna(error), expected);
        assert_null(c);
        assert_non_null(error);
        assert_true(asprintf(&want, "%s%s", fx->conf, expected) > 0);
        assert_string_equal(error, want);
}

static Config *load_ok(const Fixture *fx, const char *format) {
        char *error = (char *) "untouched";
        Config *c = NULL;
        int r;

        r = load(fx, format, &c, &error);
        if (r < 0)
                fail_msg("config\n%s\nfailed: %s", format, error);
        assert_non_null(c);
        assert_string_equal(error, "untouched");
        return c;
}

static int setup(void **state) {
        Fixture *fx = calloc(1, sizeof(Fixture));
        char cmd[512];

        assert_non_null(fx);
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-config-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->conf, sizeof(fx->conf), "%s/sshtund.conf", fx->dir);
        snprintf(cmd, sizeof(cmd),
                 "ssh-keygen -q -t ed25519 -N '' -C test -f %s/id </dev/null >/dev/null && "
                 "ssh-keygen -q -t rsa -b 2048 -N '' -C test -f %s/rsa </dev/null >/dev/null",
                 fx->dir, fx->dir);
        assert_int_equal(system(cmd), 0);
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        Fixture *fx = *state;
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

static const char full[] =
        "# every key this version runs, none at its default; nodes before ssh.port\n"
        "nodes = (\n"
        "  { name = \"node-1\"; address = \"10.0.0.11\"; },\n"
        "  { name = \"node-2.example\"; address = \"Node-2.Example.com\"; port = 2222;\n"
        "    hostnames = [ \"node-2\", \"node-2.internal\" ]; pod_cidr = \"10.244.2.0/24\"; },\n"
        "  {\n"
        "    name = \"node-3\"; address = \"fd00::13\"; pod_cidr = \"fd00:244:3::/64\"; }\n"
        ");\n"
        "ssh = {\n"
        "  user = \"tunnel\";\n"
        "  identity = \"%1$s/id\";\n"
        "  known_hosts = \"%1$s/known_hosts\";\n"
        "  host_key_policy = \"accept-new\";\n"
        "  port = 2200;\n"
        "  connect_timeout = 7;\n" /* an integer where seconds are expected */
        "  keepalive_interval = 2.5;\n"
        "  keepalive_count = 4;\n"
        "  pool_size = 1;\n"
        "  max_streams_per_session = 100;\n"
        "  max_handshakes = 8;\n"
        "};\n"
        "proxy = {\n"
        "  listen = [ \"unix:%1$s/proxy.sock\", \"tcp:127.0.0.1:8131\", \"tcp:[::1]:8131\" ];\n"
        "  socket_mode = \"0600\";\n"
        "  socket_group = \"kube\";\n"
        "  open_timeout = 3.0;\n"
        "  header_timeout = 4.0;\n"
        "  allow = [ \"nodes:10250,10248\", \"10.96.0.0/12\" ];\n"
        "  fallback = \"none\";\n"
        "  max_clients = 100;\n"
        "};\n"
        "probe = { type = \"none\"; target = \"[::1]:10250\"; path = \"/livez\"; interval = 30;\n"
        "          timeout = 2.0; ca_file = \"%1$s/ca.pem\"; };\n"
        "admin = { socket = \"%1$s/admin.sock\"; metrics_listen = \"\"; ready_min_fraction = 0.5; };\n"
        "log = { level = \"debug\"; target = \"stderr\"; };\n"
        "user = \"\";\n"
        "nodes_file = \"\";\n"
        "forwards = ();\n";

static void test_full(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *want = NULL;
        char buf[INET6_ADDRSTRLEN];
        const ConfigNode *n;
        Config *c;

        c = load_ok(fx, full);
        assert_string_equal(c->path, fx->conf);
        assert_string_equal(c->files[0], fx->conf);
        assert_null(c->files[1]);
        assert_ptr_equal(c->nodes[0].file, c->files[0]);

        assert_string_equal(c->ssh.user, "tunnel");
        assert_true(asprintf(&want, "%s/id", fx->dir) > 0);
        assert_string_equal(c->ssh.identity, want);
        assert_int_equal(c->ssh.host_key_policy, HOST_KEY_POLICY_ACCEPT_NEW);
        assert_int_equal(c->ssh.port, 2200);
        assert_true(c->ssh.connect_timeout == 7.0);
        assert_true(c->ssh.keepalive_interval == 2.5);
        assert_int_equal(c->ssh.keepalive_count, 4);
        assert_int_equal(c->ssh.pool_size, 1);
        assert_int_equal(c->ssh.max_streams_per_session, 100);
        assert_int_equal(c->ssh.max_handshakes, 8);

        assert_int_equal(c->proxy.n_listen, 3);
        assert_int_equal(c->proxy.listen[0].kind, LISTEN_UNIX);
        assert_int_equal(c->proxy.listen[1].kind, LISTEN_TCP);
        assert_int_equal(c->proxy.listen[1].port, 8131);
        assert_int_equal(c->proxy.listen[2].ip.family, AF_INET6);
        assert_int_equal(c->proxy.socket_mode, 0600);
        assert_string_equal(c->proxy.socket_group, "kube");
        assert_true(c->proxy.open_timeout == 3.0);
        assert_true(c->proxy.header_timeout == 4.0);
        assert_int_equal(c->proxy.n_allow, 2);
        assert_int_equal(c->proxy.allow[0].kind, ALLOW_NODES);
        assert_int_equal(c->proxy.allow[0].n_ports, 2);
        assert_int_equal(c->proxy.allow[1].kind, ALLOW_CIDR);
        assert_string_equal(c->proxy.allow[1].text, "10.96.0.0/12");
        assert_int_equal(c->proxy.fallback, FALLBACK_NONE);
        assert_int_equal(c->proxy.max_clients, 100);

        assert_int_equal(c->probe.type, PROBE_NONE);
        assert_string_equal(c->probe.target_host, "::1");
        assert_int_equal(c->probe.target_port, 10250);
        assert_string_equal(c->probe.path, "/livez");
        assert_true(c->probe.interval == 30.0);
        assert_true(c->probe.timeout == 2.0);
        assert_non_null(strstr(c->probe.ca_file, "/ca.pem"));

        assert_non_null(strstr(c->admin.socket, "/admin.sock"));
        assert_false(c->admin.has_metrics_listen);
        assert_true(c->admin.ready_min_fraction == 0.5);
        assert_int_equal(c->log.level, LOG_DEBUG);
        assert_int_equal(c->log.target, LOG_TARGET_STDERR);
        assert_null(c->user);
        assert_null(c->nodes_file);
        assert_int_equal(c->n_forwards, 0);
        assert_null(c->konnectivity.upstream);

        assert_int_equal(c->n_nodes, 3);
        n = config_find_node(c, "node-1");
        assert_ptr_equal(n, &c->nodes[0]);
        assert_string_equal(n->address, "10.0.0.11");
        assert_int_equal(n->port, 2200); /* ssh.port, whatever the order in the file */
        assert_non_null(n->hostnames);
        assert_null(n->hostnames[0]);
        assert_false(n->has_pod_cidr);
        assert_string_equal(n->file, fx->conf);
        assert_int_equal(n->line, 3);

        n = config_find_node(c, "node-2.example");
        assert_non_null(n);
        assert_string_equal(n->address, "Node-2.Example.com");
        assert_int_equal(n->port, 2222);
        assert_string_equal(n->hostnames[0], "node-2");
        assert_string_equal(n->hostnames[1], "node-2.internal");
        assert_null(n->hostnames[2]);
        assert_true(n->has_pod_cidr);
        assert_string_equal(cidr_to_string(&n->pod_cidr, buf, sizeof(buf)), "10.244.2.0/24");
        assert_int_equal(n->line, 4);

        n = config_find_node(c, "node-3");
        assert_non_null(n);
        assert_string_equal(cidr_to_string(&n->pod_cidr, buf, sizeof(buf)), "fd00:244:3::/64");
        assert_int_equal(n->line, 6);
        assert_int_equal(n->port, 2200);
        assert_null(config_find_node(c, "node-4"));
        assert_null(config_find_node(c, "NODE-1"));

        config_free(c);
}

static void test_defaults(void **state) {
        const Fixture *fx = *state;
        Config *c;

        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n");
        assert_string_equal(c->ssh.user, "sshtund");
        /* from configure's directories, whatever they are in this build */
        assert_string_equal(c->ssh.known_hosts, SYSCONFDIR "/sshtund/known_hosts");
        assert_string_equal(c->ssh.learned_hosts, LOCALSTATEDIR "/lib/sshtund/known_hosts");
        assert_int_equal(c->ssh.host_key_policy, HOST_KEY_POLICY_STRICT);
        assert_int_equal(c->ssh.port, 22);
        assert_true(c->ssh.connect_timeout == 10.0);
        assert_true(c->ssh.keepalive_interval == 5.0);
        assert_int_equal(c->ssh.keepalive_count, 3);
        assert_int_equal(c->ssh.pool_size, 1);
        assert_int_equal(c->ssh.max_streams_per_session, 256);
        assert_int_equal(c->ssh.max_handshakes, 64);

        assert_int_equal(c->proxy.n_listen, 1);
        assert_int_equal(c->proxy.listen[0].kind, LISTEN_UNIX);
        assert_string_equal(c->proxy.listen[0].path, "/run/sshtund/proxy.sock");
        assert_int_equal(c->proxy.socket_mode, 0660);
        assert_null(c->proxy.socket_group);
        assert_true(c->proxy.open_timeout == 10.0);
        assert_true(c->proxy.header_timeout == 10.0);
        assert_int_equal(c->proxy.n_allow, 1);
        assert_int_equal(c->proxy.allow[0].kind, ALLOW_NODES);
        assert_int_equal(c->proxy.allow[0].n_ports, 0);
        assert_int_equal(c->proxy.fallback, FALLBACK_ANY);
        assert_int_equal(c->proxy.max_clients, 4096);

        /* no probe section: no probe; the rest as documented */
        assert_int_equal(c->probe.type, PROBE_NONE);
        assert_string_equal(c->probe.target_host, "127.0.0.1");
        assert_int_equal(c->probe.target_port, 10248);
        assert_string_equal(c->probe.path, "/healthz");
        assert_true(c->probe.interval == 10.0);
        assert_true(c->probe.timeout == 5.0);
        assert_null(c->probe.ca_file);

        assert_string_equal(c->admin.socket, "/run/sshtund/admin.sock");
        assert_false(c->admin.has_metrics_listen);
        assert_true(c->admin.ready_min_fraction == 0.5);
        assert_int_equal(c->log.level, LOG_INFO);
        assert_int_equal(c->log.target, LOG_TARGET_AUTO);
        assert_null(c->user);
        assert_int_equal(c->n_nodes, 0);
        assert_null(c->nodes_file);
        assert_int_equal(c->n_forwards, 0);
        assert_null(c->konnectivity.upstream);
        assert_non_null(c->konnectivity.nodes);
        assert_null(c->konnectivity.nodes[0]);
        assert_true(c->konnectivity.fallback_to_ssh);
        config_free(c);

        /* empty lists where one would write them: still valid */
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\nnodes = ();\nforwards = [];\n");
        assert_int_equal(c->n_nodes, 0);
        config_free(c);

        assert_null(config_free(NULL));
}

static void test_unreadable(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *path = NULL, *want = NULL;
        char *error = NULL;
        Config *c = NULL;

        assert_true(asprintf(&path, "%s/missing.conf", fx->dir) > 0);
        assert_int_equal(config_load(path, &c, &error), -ENOENT);
        assert_null(c);
        assert_true(asprintf(&want, "%s: No such file or directory", path) > 0);
        assert_string_equal(error, want);
        free(error);
        error = NULL;

        assert_int_equal(config_load(fx->dir, &c, &error), -EISDIR);
        assert_non_null(strstr(error, ": Is a directory"));
        free(error);

        /* ret_error may be NULL */
        assert_int_equal(config_load(path, &c, NULL), -ENOENT);
}

static void test_syntax(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "ssh = {\n  port = 22\n  user = ;\n};\n", ":3: syntax error");
        assert_load_fails(fx, "log = { level = \"info\"; };\nlog = { };\n", ":2: duplicate setting name");
}

static void test_unknown_key(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "# comment\nsssh = { };\n", ":2: sssh: unknown key");
        assert_load_fails(fx, "ssh = {\n  port = 22;\n  keepalive_intervall = 5.0;\n};\n",
                          ":3: ssh.keepalive_intervall: unknown key");
        assert_load_fails(fx, "log = { level = \"info\"; colour = true; };\n", ":1: log.colour: unknown key");
        assert_load_fails(fx,
                          "nodes = (\n"
                          "  { name = \"a\"; address = \"10.0.0.1\"; },\n"
                          "  { name = \"b\"; address = \"10.0.0.2\"; },\n"
                          "  { name = \"c\";\n"
                          "    adress = \"10.0.0.3\"; }\n"
                          ");\n",
                          ":5: nodes[2].adress: unknown key");
        assert_load_fails(fx, "forwards = ( { listen = \"tcp:127.0.0.1:1\"; port = 1; } );\n",
                          ":1: forwards[0].port: unknown key");
        assert_load_fails(fx, "konnectivity = {\n  upstreams = \"unix:/k.sock\"; };\n",
                          ":2: konnectivity.upstreams: unknown key");
}

static void test_wrong_type(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "ssh = {\n  port = \"22\";\n};\n", ":2: ssh.port: expected an integer");
        assert_load_fails(fx, "ssh = { keepalive_count = 3.0; };\n", ":1: ssh.keepalive_count: expected an integer");
        assert_load_fails(fx, "ssh = { connect_timeout = \"10\"; };\n", ":1: ssh.connect_timeout: expected a number");
        assert_load_fails(fx, "ssh = { user = 1000; };\n", ":1: ssh.user: expected a string");
        assert_load_fails(fx, "ssh = \"none\";\n", ":1: ssh: expected a group { ... }");
        assert_load_fails(fx, "proxy = { listen = \"unix:/a.sock\"; };\n",
                          ":1: proxy.listen: expected an array of strings [ \"...\", ... ]");
        assert_load_fails(fx, "proxy = {\n  allow = [ 10250 ];\n};\n", ":2: proxy.allow[0]: expected a string");
        assert_load_fails(fx, "proxy = { socket_mode = 0660; };\n",
                          ":1: proxy.socket_mode: expected an octal mode in a string, such as \"0660\"");
        assert_load_fails(fx, "konnectivity = { upstream = \"unix:/k.sock\"; fallback_to_ssh = 1; };\n",
                          ":1: konnectivity.fallback_to_ssh: expected a boolean (true or false)");
        assert_load_fails(fx, "nodes = { name = \"a\"; };\n", ":1: nodes: expected a list of groups ( { ... }, ... )");
        assert_load_fails(fx, "nodes = ( \"a\" );\n", ":1: nodes[0]: expected a group { ... }");
        assert_load_fails(fx, "nodes = ( { name = \"a\"; address = \"10.0.0.1\"; hostnames = \"a.b\"; } );\n",
                          ":1: nodes[0].hostnames: expected an array of strings [ \"...\", ... ]");
}

static void test_range(void **state) {
        static const struct {
                const char *text, *error;
        } cases[] = {
                { "ssh = { port = 0; };\n", ":1: ssh.port: 0 is out of range (1..65535)" },
                { "ssh = { port = 65536; };\n", ":1: ssh.port: 65536 is out of range (1..65535)" },
                { "ssh = { port = -22; };\n", ":1: ssh.port: -22 is out of range (1..65535)" },
                { "ssh = { port = 10000000000L; };\n", ":1: ssh.port: 10000000000 is out of range (1..65535)" },
                { "ssh = { connect_timeout = 0; };\n",
                  ":1: ssh.connect_timeout: 0 is out of range (more than 0, at most 3600 seconds)" },
                { "ssh = { keepalive_interval = -1.5; };\n",
                  ":1: ssh.keepalive_interval: -1.5 is out of range (more than 0, at most 3600 seconds)" },
                { "proxy = { open_timeout = 3601.0; };\n",
                  ":1: proxy.open_timeout: 3601 is out of range (more than 0, at most 3600 seconds)" },
                { "proxy = { header_timeout = 1e9; };\n",
                  ":1: proxy.header_timeout: 1e+09 is out of range (more than 0, at most 3600 seconds)" },
                { "probe = { interval = 0.0; };\n",
                  ":1: probe.interval: 0 is out of range (more than 0, at most 3600 seconds)" },
                { "ssh = { keepalive_count = 0; };\n", ":1: ssh.keepalive_count: 0 is out of range (1..100)" },
                { "ssh = { keepalive_count = 101; };\n", ":1: ssh.keepalive_count: 101 is out of range (1..100)" },
                { "ssh = { pool_size = 65; };\n", ":1: ssh.pool_size: 65 is out of range (1..64)" },
                { "ssh = { pool_size = 0; };\n", ":1: ssh.pool_size: 0 is out of range (1..64)" },
                { "ssh = { max_streams_per_session = 65536; };\n",
                  ":1: ssh.max_streams_per_session: 65536 is out of range (1..65535)" },
                { "ssh = { max_handshakes = 0; };\n", ":1: ssh.max_handshakes: 0 is out of range (1..100000)" },
                { "ssh = { max_handshakes = 100001; };\n",
                  ":1: ssh.max_handshakes: 100001 is out of range (1..100000)" },
                { "proxy = { max_clients = 0; };\n", ":1: proxy.max_clients: 0 is out of range (1..1000000)" },
                { "proxy = { max_clients = 1000001; };\n",
                  ":1: proxy.max_clients: 1000001 is out of range (1..1000000)" },
                { "admin = { ready_min_fraction = 1.5; };\n",
                  ":1: admin.ready_min_fraction: 1.5 is out of range (0..1)" },
                { "admin = { ready_min_fraction = -1; };\n",
                  ":1: admin.ready_min_fraction: -1 is out of range (0..1)" },
                { "proxy = { socket_mode = \"0999\"; };\n",
                  ":1: proxy.socket_mode: invalid mode \"0999\" (expected octal, such as \"0660\")" },
                { "proxy = { socket_mode = \"rw\"; };\n",
                  ":1: proxy.socket_mode: invalid mode \"rw\" (expected octal, such as \"0660\")" },
                { "proxy = { socket_mode = \"1777\"; };\n",
                  ":1: proxy.socket_mode: mode \"1777\" is out of range (0..0777)" },
                { "nodes = ( { name = \"a\"; address = \"10.0.0.1\"; port = 70000; } );\n",
                  ":1: nodes[0].port: 70000 is out of range (1..65535)" },
        };
        const Fixture *fx = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_load_fails(fx, cases[i].text, cases[i].error);
}

static void test_enums(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "proxy = {\n  fallback = \"all\";\n};\n",
                          ":2: proxy.fallback: invalid value \"all\" (expected \"any\" or \"none\")");
        assert_load_fails(fx, "ssh = { host_key_policy = \"no\"; };\n",
                          ":1: ssh.host_key_policy: invalid value \"no\" (expected \"strict\" or \"accept-new\")");
        assert_load_fails(fx, "probe = { type = \"icmp\"; };\n",
                          ":1: probe.type: invalid value \"icmp\" (expected \"none\", \"tcp\", \"http\" or \"https\")");
        assert_load_fails(fx, "log = { level = \"loud\"; };\n",
                          ":1: log.level: invalid level \"loud\" (expected \"error\", \"warning\", \"notice\", "
                          "\"info\" or \"debug\")");
        assert_load_fails(fx, "log = { target = \"file\"; };\n",
                          ":1: log.target: invalid target \"file\" (expected \"auto\", \"journal\", \"syslog\" or "
                          "\"stderr\")");
}

static void test_values(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "proxy = {\n  listen = [ \"unix:/a.sock\",\n    \"tcp:localhost:8131\" ];\n};\n",
                          ":3: proxy.listen[1]: invalid listen address \"tcp:localhost:8131\" "
                          "(expected \"unix:/PATH\" or \"tcp:IP:PORT\")");
        assert_load_fails(fx, "proxy = { listen = [ \"unix:relative.sock\" ]; };\n",
                          ":1: proxy.listen[0]: invalid listen address \"unix:relative.sock\" "
                          "(expected \"unix:/PATH\" or \"tcp:IP:PORT\")");
        assert_load_fails(fx, "proxy = { listen = [ \"tcp:[::1]:1\", \"tcp:[0::1]:1\" ]; };\n",
                          ":1: proxy.listen[1]: duplicate listen address \"tcp:[0::1]:1\"");
        assert_load_fails(fx, "proxy = { listen = [ ]; };\n", ":1: proxy.listen: must name at least one address");
        assert_load_fails(fx, "proxy = {\n  allow = [ \"nodes\", \"10.0.0.1/8\" ];\n};\n",
                          ":2: proxy.allow[1]: invalid allow rule \"10.0.0.1/8\" (expected \"nodes[:PORTS]\" or "
                          "\"CIDR[:PORTS]\", PORTS like \"10250,10248\" or \"1-1024\")");
        assert_load_fails(fx, "proxy = { allow = [ \"nodes:0\" ]; };\n",
                          ":1: proxy.allow[0]: invalid allow rule \"nodes:0\" (expected \"nodes[:PORTS]\" or "
                          "\"CIDR[:PORTS]\", PORTS like \"10250,10248\" or \"1-1024\")");
        assert_load_fails(fx, "proxy = { allow = [ ]; };\n",
                          ":1: proxy.allow: must name at least one rule (\"nodes\" admits the nodes only)");
        assert_load_fails(fx, "probe = { target = \"127.0.0.1\"; };\n",
                          ":1: probe.target: invalid target \"127.0.0.1\" (expected \"HOST:PORT\" or \"[IPV6]:PORT\")");
        assert_load_fails(fx, "probe = { path = \"healthz\"; };\n",
                          ":1: probe.path: \"healthz\" does not start with \"/\"");
        assert_load_fails(fx, "probe = { path = \"/a b\"; };\n",
                          ":1: probe.path: \"/a b\" holds a space or a control character");
        assert_load_fails(fx, "probe = { path = \"/a\\nb\"; };\n",
                          ":1: probe.path: \"/a?b\" holds a space or a control character");
        assert_load_fails(fx, "admin = { metrics_listen = \"tcp:127.0.0.1\"; };\n",
                          ":1: admin.metrics_listen: invalid listen address \"tcp:127.0.0.1\" "
                          "(expected \"unix:/PATH\" or \"tcp:IP:PORT\")");
        assert_load_fails(fx, "ssh = { user = \"\"; };\n", ":1: ssh.user: must not be empty");
        assert_load_fails(fx, "proxy = { socket_group = \"kube admins\"; };\n",
                          ":1: proxy.socket_group: invalid name \"kube admins\"");
        assert_load_fails(fx, "konnectivity = { upstream = \"http://k:8131\"; };\n",
                          ":1: konnectivity.upstream: invalid upstream \"http://k:8131\" (expected \"unix:/PATH\" or "
                          "\"tcp:HOST:PORT\")");
        assert_load_fails(fx, "konnectivity = { upstream = \"tcp:konnectivity\"; };\n",
                          ":1: konnectivity.upstream: invalid upstream \"tcp:konnectivity\" (expected "
                          "\"tcp:HOST:PORT\")");
        assert_load_fails(fx, "konnectivity = {\n  nodes = [ \"*\" ];\n};\n",
                          ":1: konnectivity.upstream: required key is missing");
        assert_load_fails(fx, "konnectivity = { upstream = \"unix:/k.sock\"; nodes = [ \"Node_7\" ]; };\n",
                          ":1: konnectivity.nodes[0]: invalid node name \"Node_7\"");
}

static void test_paths(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx, "ssh = { identity = \"id_ed25519\"; };\n",
                          ":1: ssh.identity: \"id_ed25519\" is not an absolute path");
        assert_load_fails(fx, "ssh = {\n  known_hosts = \"./known_hosts\";\n};\n",
                          ":2: ssh.known_hosts: \"./known_hosts\" is not an absolute path");
        assert_load_fails(fx, "admin = { socket = \"admin.sock\"; };\n",
                          ":1: admin.socket: \"admin.sock\" is not an absolute path");
        assert_load_fails(fx, "nodes_file = \"nodes.conf\";\n", ":1: nodes_file: \"nodes.conf\" is not an absolute path");
        assert_load_fails(fx, "probe = { ca_file = \"ca.pem\"; };\n",
                          ":1: probe.ca_file: \"ca.pem\" is not an absolute path");
        assert_load_fails(fx,
                          "admin = { socket = \"/run/sshtund/a-very-long-directory-name-that-goes-on-and-on/"
                          "and-on-and-on-and-on-and-on-and-on-and-on/admin.sock\"; };\n",
                          ":1: admin.socket: path longer than 107 bytes");
        assert_load_fails(fx,
                          "proxy = { listen = [ \"unix:/run/sshtund/proxy.sock\" ]; };\n"
                          "admin = { socket = \"/run/sshtund/proxy.sock\"; };\n",
                          ":2: admin.socket: already used by proxy.listen[0]");
        /* learned_hosts is sshtund's to write, known_hosts never */
        assert_load_fails(fx,
                          "ssh = {\n  known_hosts = \"/etc/sshtund/known_hosts\";\n"
                          "  learned_hosts = \"/etc/sshtund/known_hosts\";\n};\n",
                          ":3: ssh.learned_hosts: the same file as ssh.known_hosts, which sshtund never writes");
        assert_load_fails(fx, "ssh = { ciphers = \"aes128-ctr,,aes256-ctr\"; };\n",
                          ":1: ssh.ciphers: \"aes128-ctr,,aes256-ctr\": an empty name in the list");
        assert_load_fails(fx, "ssh = { macs = \"hmac-sha2-256 hmac-sha2-512\"; };\n",
                          ":1: ssh.macs: \"hmac-sha2-256 hmac-sha2-512\": algorithm names are lowercase letters, "
                          "digits and \"@.-_\", separated by commas");
        assert_load_fails(fx, "ssh = { ciphers = \"\"; };\n", ":1: ssh.ciphers: \"\": an empty name in the list");
        assert_load_fails(fx, "ssh = {\n  learned_hosts = \"\";\n  host_key_policy = \"accept-new\";\n};\n",
                          ":3: ssh.host_key_policy: \"accept-new\" records keys in ssh.learned_hosts, which is empty");
}

static void test_nodes(void **state) {
        static const struct {
                const char *text, *error;
        } cases[] = {
                { "nodes = ( { name = \"Node-1\"; address = \"10.0.0.1\"; } );\n",
                  ":1: nodes[0].name: invalid node name \"Node-1\" (expected a DNS-1123 subdomain: lowercase "
                  "letters, digits, '-' and '.')" },
                { "nodes = ( { name = \"node_1\"; address = \"10.0.0.1\"; } );\n",
                  ":1: nodes[0].name: invalid node name \"node_1\" (expected a DNS-1123 subdomain: lowercase "
                  "letters, digits, '-' and '.')" },
                { "nodes = ( { name = \"-node\"; address = \"10.0.0.1\"; } );\n",
                  ":1: nodes[0].name: invalid node name \"-node\" (expected a DNS-1123 subdomain: lowercase "
                  "letters, digits, '-' and '.')" },
                { "nodes = ( { name = \"node..1\"; address = \"10.0.0.1\"; } );\n",
                  ":1: nodes[0].name: invalid node name \"node..1\" (expected a DNS-1123 subdomain: lowercase "
                  "letters, digits, '-' and '.')" },
                { "nodes = ( { name = \"\"; address = \"10.0.0.1\"; } );\n",
                  ":1: nodes[0].name: invalid node name \"\" (expected a DNS-1123 subdomain: lowercase "
                  "letters, digits, '-' and '.')" },
                { "nodes = ( { name = \"a\";\n  address = \"10.0.0.256\"; } );\n",
                  ":2: nodes[0].address: invalid address \"10.0.0.256\" (expected an IP address or a DNS name)" },
                { "nodes = ( { name = \"a\"; address = \"node_1.example\"; } );\n",
                  ":1: nodes[0].address: invalid address \"node_1.example\" (expected an IP address or a DNS name)" },
                { "nodes = ( { name = \"a\"; address = \"[fd00::1]\"; } );\n",
                  ":1: nodes[0].address: invalid address \"[fd00::1]\" (expected an IP address or a DNS name)" },
                { "nodes = ( { name = \"a\"; address = \"10.0.0.1\"; hostnames = [ \"ok\", \"not ok\" ]; } );\n",
                  ":1: nodes[0].hostnames[1]: invalid hostname \"not ok\"" },
                { "nodes = ( { name = \"a\"; address = \"10.0.0.1\";\n  pod_cidr = \"10.244.1.1/24\"; } );\n",
                  ":2: nodes[0].pod_cidr: invalid CIDR \"10.244.1.1/24\" (expected ADDRESS/PREFIX with no host "
                  "bits set, such as \"10.244.1.0/24\")" },
                { "nodes = ( { name = \"a\"; address = \"10.0.0.1\"; pod_cidr = \"10.244.1.0/33\"; } );\n",
                  ":1: nodes[0].pod_cidr: invalid CIDR \"10.244.1.0/33\" (expected ADDRESS/PREFIX with no host "
                  "bits set, such as \"10.244.1.0/24\")" },
                { "nodes = (\n  { address = \"10.0.0.1\"; }\n);\n", ":2: nodes[0].name: required key is missing" },
                { "nodes = (\n  { name = \"a\"; address = \"10.0.0.1\"; },\n  { name = \"b\"; }\n);\n",
                  ":3: nodes[1].address: required key is missing" },
        };
        const Fixture *fx = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_load_fails(fx, cases[i].text, cases[i].error);
}

static void test_duplicates(void **state) {
        const Fixture *fx = *state;

        assert_load_fails(fx,
                          "nodes = (\n"
                          "  { name = \"node-0\"; address = \"10.0.0.10\"; },\n"
                          "  { name = \"node-1\";\n"
                          "    address = \"10.0.0.11\"; },\n"
                          "  { name = \"node-2\"; address = \"10.0.0.12\"; },\n"
                          "  {\n"
                          "    name = \"node-1\"; address = \"10.0.0.13\"; }\n"
                          ");\n",
                          ":7: nodes[3].name: duplicate node name \"node-1\" (first defined at line 3)");
        /* the same endpoint: the default port, and one IPv6 address written two ways */
        assert_load_fails(fx,
                          "nodes = (\n"
                          "  { name = \"a\"; address = \"10.0.0.1\"; },\n"
                          "  { name = \"b\"; address = \"10.0.0.1\"; port = 2222; },\n"
                          "  { name = \"c\";\n"
                          "    address = \"10.0.0.1\"; port = 22; }\n"
                          ");\n",
                          ":5: nodes[2].address: duplicate address and port 10.0.0.1:22, also used by node \"a\" "
                          "(first defined at line 2)");
        assert_load_fails(fx,
                          "nodes = (\n"
                          "  { name = \"a\"; address = \"fd00::1\"; },\n"
                          "  { name = \"b\"; address = \"fd00:0::1\"; }\n"
                          ");\n",
                          ":3: nodes[1].address: duplicate address and port [fd00:0::1]:22, also used by node \"a\" "
                          "(first defined at line 2)");
        assert_load_fails(fx,
                          "nodes = (\n"
                          "  { name = \"a\"; address = \"node.example\"; },\n"
                          "  { name = \"b\"; address = \"NODE.example\"; }\n"
                          ");\n",
                          ":3: nodes[1].address: duplicate address and port NODE.example:22, also used by node \"a\" "
                          "(first defined at line 2)");
}

static void test_include(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *inc = NULL, *want = NULL;
        char *error = NULL;
        Config *c;

        assert_true(asprintf(&inc, "%s/nodes.conf", fx->dir) > 0);
        write_file(inc,
                   "nodes = (\n"
                   "  { name = \"a\"; address = \"10.0.0.1\"; },\n"
                   "  { name = \"b\"; address = \"10.0.0.2\"; }\n"
                   ");\n",
                   fx->dir);
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n@include \"nodes.conf\"\n");
        assert_int_equal(c->n_nodes, 2);
        assert_string_equal(c->nodes[1].file, inc);
        assert_int_equal(c->nodes[1].line, 3);
        assert_string_equal(c->files[0], fx->conf);
        assert_string_equal(c->files[1], inc);
        assert_null(c->files[2]);
        config_free(c);

        /* a duplicate across files names the other file */
        assert_true(asprintf(&want, ":3: nodes[2].name: duplicate node name \"a\" (first defined at %s:1)", inc) > 0);
        write_file(inc, "  { name = \"a\"; address = \"10.0.0.1\"; },\n  { name = \"b\"; address = \"10.0.0.2\"; },\n",
                   fx->dir);
        assert_load_fails(fx, "nodes = (\n@include \"nodes.conf\"\n  { name = \"a\"; address = \"10.0.0.3\"; } );\n",
                          want);

        /* errors inside the included file name it */
        write_file(inc, "log = {\n  level = 3; };\n", fx->dir);
        assert_int_equal(load(fx, "@include \"nodes.conf\"\n", &c, &error), -EINVAL);
        free(want);
        assert_true(asprintf(&want, "%s:2: log.level: expected a string", inc) > 0);
        assert_string_equal(error, want);
        free(error);
}

static void test_forwards(void **state) {
        const Fixture *fx = *state;
        Config *c;

        assert_load_fails(fx,
                          "nodes = ( { name = \"node-1\"; address = \"10.0.0.1\"; } );\n"
                          "forwards = (\n"
                          "  { listen = \"tcp:127.0.0.1:10001\";\n"
                          "    node = \"node-2\"; target = \"127.0.0.1:10250\"; }\n"
                          ");\n",
                          ":4: forwards[0].node: no node named \"node-2\" in nodes");
        assert_load_fails(fx,
                          "forwards = ( { listen = \"tcp:127.0.0.1:10001\"; node = \"node-1\"; } );\n",
                          ":1: forwards[0].target: required key is missing");
        assert_load_fails(fx,
                          "forwards = ( { listen = \"tcp:127.0.0.1:10001\"; node = \"n\"; target = \"x\"; } );\n",
                          ":1: forwards[0].target: invalid target \"x\" (expected \"HOST:PORT\" or \"[IPV6]:PORT\")");
        assert_load_fails(fx,
                          "proxy = { listen = [ \"tcp:127.0.0.1:8131\" ]; };\n"
                          "nodes = ( { name = \"n\"; address = \"10.0.0.1\"; } );\n"
                          "forwards = ( { listen = \"tcp:127.0.0.1:8131\"; node = \"n\"; target = \"h:1\"; } );\n",
                          ":3: forwards[0].listen: already used by proxy.listen[0]");
        assert_load_fails(fx,
                          "konnectivity = { upstream = \"unix:/k.sock\"; nodes = [ \"node-9\" ]; };\n",
                          ":1: konnectivity.nodes[0]: no node named \"node-9\" in nodes");
        assert_load_fails(fx,
                          "nodes = ( { name = \"n\"; address = \"10.0.0.1\"; } );\n"
                          "forwards = ( { listen = \"unix:/run/f.sock\"; node = \"n\"; target = \"h:1\"; },\n"
                          "             { listen = \"unix:/run/f.sock\"; node = \"n\"; target = \"h:2\"; } );\n",
                          ":3: forwards[1].listen: already used by forwards[0] (line 2)");

        /* a valid file loads: this version runs forwards */
        c = load_ok(fx,
                    "ssh = { identity = \"%1$s/id\"; };\n"
                    "nodes = ( { name = \"node-1\"; address = \"10.0.0.1\"; } );\n"
                    "forwards = (\n"
                    "  { listen = \"tcp:127.0.0.1:10001\"; node = \"node-1\"; target = \"127.0.0.1:10250\"; },\n"
                    "  { listen = \"unix:%1$s/f.sock\"; node = \"node-1\"; target = \"[fd00::7]:22\"; }\n"
                    ");\n");
        assert_int_equal(c->n_forwards, 2);
        assert_int_equal(c->forwards[0].listen.kind, LISTEN_TCP);
        assert_int_equal(c->forwards[0].listen.port, 10001);
        assert_string_equal(c->forwards[0].node, "node-1");
        assert_string_equal(c->forwards[0].target_host, "127.0.0.1");
        assert_int_equal(c->forwards[0].target_port, 10250);
        assert_int_equal(c->forwards[0].line, 4);
        assert_int_equal(c->forwards[1].listen.kind, LISTEN_UNIX);
        assert_non_null(strstr(c->forwards[1].listen.path, "/f.sock"));
        assert_string_equal(c->forwards[1].target_host, "fd00::7");
        assert_int_equal(c->forwards[1].target_port, 22);
        assert_int_equal(c->forwards[1].line, 5);
        config_free(c);
}

static void test_konnectivity(void **state) {
        const Fixture *fx = *state;
        Config *c;

        c = load_ok(fx,
                    "ssh = { identity = \"%1$s/id\"; };\n"
                    "nodes = ( { name = \"n\"; address = \"10.0.0.1\"; } );\n"
                    "konnectivity = { upstream = \"tcp:konnectivity.example:8131\"; nodes = [ \"n\" ];\n"
                    "  fallback_to_ssh = false; ca_file = \"/etc/k/ca.crt\"; cert_file = \"/etc/k/c.crt\";\n"
                    "  key_file = \"/etc/k/c.key\"; server_name = \"konnectivity.example\"; probe_port = 10255; };\n");
        assert_string_equal(c->konnectivity.upstream, "tcp:konnectivity.example:8131");
        assert_string_equal(c->konnectivity.nodes[0], "n");
        assert_false(c->konnectivity.fallback_to_ssh);
        assert_string_equal(c->konnectivity.ca_file, "/etc/k/ca.crt");
        assert_string_equal(c->konnectivity.server_name, "konnectivity.example");
        assert_int_equal(c->konnectivity.probe_port, 10255);
        config_free(c);

        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                        "konnectivity = { upstream = \"unix:/run/k.sock\"; nodes = [ \"*\" ]; };\n");
        assert_true(c->konnectivity.fallback_to_ssh);
        assert_int_equal(c->konnectivity.probe_port, 10250);
        assert_null(c->konnectivity.ca_file);
        config_free(c);

        assert_load_fails(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                              "konnectivity = { upstream = \"unix:/run/k.sock\"; ca_file = \"/etc/k/ca.crt\"; };\n",
                          ":2: konnectivity.upstream: TLS settings need a tcp: upstream (a unix socket is local)");
        assert_load_fails(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                              "konnectivity = { upstream = \"tcp:k:8131\"; cert_file = \"/c\"; key_file = \"/k\"; };\n",
                          ":2: konnectivity.ca_file: TLS to the upstream needs ca_file to check its certificate");
        assert_load_fails(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                              "konnectivity = { upstream = \"tcp:k:8131\"; ca_file = \"/ca\"; cert_file = \"/c\"; };\n",
                          ":2: konnectivity.cert_file: cert_file and key_file go together");
}

static void test_probe(void **state) {
        const Fixture *fx = *state;
        Config *c;

        /* probes run now: every type loads */
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\nprobe = { type = \"http\"; };\n");
        assert_int_equal(c->probe.type, PROBE_HTTP);
        config_free(c);
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\nprobe = { type = \"tcp\"; target = \"127.0.0.1:10250\"; };\n");
        assert_int_equal(c->probe.type, PROBE_TCP);
        assert_int_equal(c->probe.target_port, 10250);
        config_free(c);
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                        "probe = { type = \"https\"; target = \"127.0.0.1:10250\"; ca_file = \"%1$s/ca.pem\"; };\n");
        assert_int_equal(c->probe.type, PROBE_HTTPS);
        assert_non_null(strstr(c->probe.ca_file, "/ca.pem"));
        config_free(c);

        /* a probe section asks for the kubelet's http probe unless it says otherwise */
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\nprobe = { path = \"/livez\"; interval = 2.5; };\n");
        assert_int_equal(c->probe.type, PROBE_HTTP);
        assert_string_equal(c->probe.path, "/livez");
        assert_true(c->probe.interval == 2.5);
        config_free(c);
}

static void test_admin_metrics(void **state) {
        const Fixture *fx = *state;
        Config *c;

        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                        "admin = { metrics_listen = \"tcp:127.0.0.1:9464\"; ready_min_fraction = 0.9; };\n");
        assert_true(c->admin.has_metrics_listen);
        assert_int_equal(c->admin.metrics_listen.kind, LISTEN_TCP);
        assert_int_equal(c->admin.metrics_listen.port, 9464);
        assert_true(c->admin.ready_min_fraction == 0.9);
        config_free(c);

        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                        "admin = { metrics_listen = \"tcp:[::1]:9464\"; ready_min_fraction = 0; };\n");
        assert_int_equal(c->admin.metrics_listen.ip.family, AF_INET6);
        assert_true(c->admin.ready_min_fraction == 0.0);
        config_free(c);

        /* unauthenticated: TCP for scrapers only, never a socket file */
        assert_load_fails(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                              "admin = {\n  metrics_listen = \"unix:/run/sshtund/metrics.sock\"; };\n",
                          ":3: admin.metrics_listen: \"unix:/run/sshtund/metrics.sock\" is not a TCP address "
                          "(expected \"tcp:IP:PORT\"; the admin socket serves /metrics locally)");
        assert_load_fails(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                              "proxy = { listen = [ \"tcp:127.0.0.1:8131\" ]; };\n"
                              "admin = { metrics_listen = \"tcp:127.0.0.1:8131\"; };\n",
                          ":3: admin.metrics_listen: already used by proxy.listen[0]");
}

static void test_nodes_file(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *nodes = NULL, *error = NULL, *want = NULL;
        Config *c;

        assert_true(asprintf(&nodes, "%s/nodes.conf", fx->dir) > 0);
        (void) unlink(nodes);

        /* not there yet (the sync job has not run): an empty list, noted */
        c = load_ok(fx, "ssh = { identity = \"%1$s/id\"; };\nnodes_file = \"%1$s/nodes.conf\";\n");
        assert_int_equal(c->n_nodes, 0);
        assert_true(c->nodes_file_missing);
        config_free(c);

        /* its nodes follow the main file's, with their own file and line */
        write_file(nodes,
                   "# written by sshtund-sync-nodes\n"
                   "nodes = (\n"
                   "  { name = \"n2\"; address = \"10.0.0.2\"; pod_cidr = \"10.244.2.0/24\"; },\n"
                   "  { name = \"n3\"; address = \"10.0.0.3\"; port = 2222; }\n"
                   ");\n",
                   fx->dir);
        c = load_ok(fx,
                    "ssh = { identity = \"%1$s/id\"; port = 2200; };\n"
                    "nodes = ( { name = \"n1\"; address = \"10.0.0.1\"; } );\n"
                    "nodes_file = \"%1$s/nodes.conf\";\n");
        assert_false(c->nodes_file_missing);
        assert_int_equal(c->n_nodes, 3);
        assert_string_equal(c->nodes[0].name, "n1");
        assert_string_equal(c->nodes[1].name, "n2");
        assert_string_equal(c->nodes[1].file, nodes);
        assert_int_equal(c->nodes[1].line, 3);
        assert_int_equal(c->nodes[1].port, 2200); /* ssh.port applies to both files */
        assert_true(c->nodes[1].has_pod_cidr);
        assert_int_equal(c->nodes[2].port, 2222);
        config_free(c);

        /* a name in both files: the error points at the second, names the first */
        write_file(nodes, "nodes = (\n  { name = \"n1\"; address = \"10.0.0.9\"; }\n);\n", fx->dir);
        write_file(fx->conf,
                   "ssh = { identity = \"%1$s/id\"; };\n"
                   "nodes = ( { name = \"n1\"; address = \"10.0.0.1\"; } );\n"
                   "nodes_file = \"%1$s/nodes.conf\";\n",
                   fx->dir);
        c = NULL;
        assert_int_equal(config_load(fx->conf, &c, &error), -EINVAL);
        assert_true(asprintf(&want, "%s:2: nodes[0].name: duplicate node name \"n1\" (first defined at %s:2)",
                             nodes, fx->conf) > 0);
        assert_string_equal(error, want);
        free(error);
        free(want);
        error = want = NULL;

        /* only "nodes" belongs there */
        write_file(nodes, "nodes = ();\nproxy = { fallback = \"none\"; };\n", fx->dir);
        write_file(fx->conf, "ssh = { identity = \"%1$s/id\"; };\nnodes_file = \"%1$s/nodes.conf\";\n",
                   fx->dir);
        assert_int_equal(config_load(fx->conf, &c, &error), -EINVAL);
        assert_true(asprintf(&want, "%s:2: proxy: unknown key in nodes_file (it holds only \"nodes\")", nodes) > 0);
        assert_string_equal(error, want);
        free(error);
        free(want);
        error = want = NULL;

        /* its syntax errors name it */
        write_file(nodes, "nodes = (\n  { name = ; }\n);\n", fx->dir);
        assert_int_equal(config_load(fx->conf, &c, &error), -EINVAL);
        assert_true(asprintf(&want, "%s:2: syntax error", nodes) > 0);
        assert_string_equal(error, want);
        (void) unlink(nodes);
}

/* A FIFO (or a device) as nodes_file is refused at once: libconfig would wait
 * on it for good, in a daemon that re-reads the file by itself. */
static void test_nodes_file_fifo(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *fifo = NULL, *error = NULL, *want = NULL;
        Config *c = NULL;

        assert_true(asprintf(&fifo, "%s/nodes.fifo", fx->dir) > 0);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        write_file(fx->conf, "ssh = { identity = \"%1$s/id\"; };\nnodes_file = \"%1$s/nodes.fifo\";\n", fx->dir);
        /* without the check this waits for a writer: fail instead of hanging */
        alarm(10);
        assert_int_equal(config_load(fx->conf, &c, &error), -EINVAL);
        alarm(0);
        assert_null(c);
        assert_true(asprintf(&want, "%s: not a regular file", fifo) > 0);
        assert_string_equal(error, want);
        (void) unlink(fifo);
}

static void test_identity(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *want = NULL;
        char *error = NULL;
        Config *c = NULL;

        /* identity.c words the reason; the line and key are ours */
        assert_int_equal(load(fx, "ssh = {\n  port = 22;\n  identity = \"%1$s/rsa\";\n};\n", &c, &error),
                         -EINVAL);
        assert_null(c);
        assert_true(asprintf(&want, "%s:3: ssh.identity: ", fx->conf) > 0);
        assert_memory_equal(error, want, strlen(want));
        assert_non_null(strstr(error, "RSA"));
        assert_non_null(strstr(error, "SHA-1"));
        assert_non_null(strstr(error, "OpenSSH 8.8"));
        assert_null(strchr(error, '\n'));
        free(error);
        error = NULL;
        free(want);
        want = NULL;

        assert_load_fails(fx, "ssh = { identity = \"%1$s/none\"; };\n",
                          ":1: ssh.identity: No such file or directory");

        /* defaulted: no line to point at */
        if (access(SYSCONFDIR "/sshtund/id_ed25519", F_OK) == 0)
                skip();
        assert_int_equal(load(fx, "log = { level = \"info\"; };\n", &c, &error), -EINVAL);
        assert_true(asprintf(&want, "%s: ssh.identity: " SYSCONFDIR "/sshtund/id_ed25519: ", fx->conf) > 0);
        assert_memory_equal(error, want, strlen(want));
        free(error);
}

/* config_print() into a string. */
static char *print(const Config *c) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        assert_int_equal(config_print(c, f), 0);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* Printed, loaded from what was printed, printed again: the same text. */
static char *assert_round_trip(const Fixture *fx, const char *format) {
        _cleanup_free_ char *again = NULL, *path = NULL;
        char *error = NULL, *first;
        Config *c = load_ok(fx, format), *d = NULL;

        first = print(c);
        config_free(c);
        assert_true(asprintf(&path, "%s/printed.conf", fx->dir) > 0);
        write_file(path, first, "");
        if (config_load(path, &d, &error) < 0)
                fail_msg("the printed configuration does not load: %s\n%s", error, first);
        again = print(d);
        config_free(d);
        assert_string_equal(again, first);
        return first;
}

static void test_print(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *text = NULL, *defaults = NULL;
        static const char *const lines[] = {
                "  host_key_policy = \"accept-new\";\n",
                "  connect_timeout = 7.0;\n",
                "  keepalive_interval = 2.5;\n",
                "  learned_hosts = \"%1$s/learned\";\n",
                "  backoff_max = 60.0;\n",
                "  listen = [ \"unix:%1$s/proxy.sock\", \"tcp:127.0.0.1:8131\", \"tcp:[::1]:8131\" ];\n",
                "  socket_mode = \"0600\";\n",
                "  allow = [ \"nodes:10250,10248\", \"10.96.0.0/12\" ];\n",
                "  fallback = \"none\";\n",
                "  target = \"[::1]:10250\";\n",
                "  metrics_listen = \"\";\n",
                "  level = \"debug\";\n",
                "user = \"\";\n",
                "  { name = \"node-1\"; address = \"10.0.0.11\"; port = 2200; hostnames = [ ]; pod_cidr = \"\"; },\n",
                "  { name = \"node-2.example\"; address = \"Node-2.Example.com\"; port = 2222; hostnames = "
                "[ \"node-2\", \"node-2.internal\" ]; pod_cidr = \"10.244.2.0/24\"; },\n",
                "  { name = \"node-3\"; address = \"fd00::13\"; port = 2200; hostnames = [ ]; "
                "pod_cidr = \"fd00:244:3::/64\"; }\n);\n",
                "forwards = ( );\n",
                "# konnectivity: no section, every node goes over SSH.\n",
        };
        _cleanup_free_ char *with_learned = NULL;

        /* the full file, with learned_hosts elsewhere (accept-new writes there) */
        assert_true(asprintf(&with_learned, "%s", full) > 0);
        with_learned = realloc(with_learned, strlen(full) + 64);
        strcpy(strstr(with_learned, "  host_key_policy"), "  learned_hosts = \"%1$s/learned\";\n");
        strcat(with_learned, strstr(full, "  host_key_policy"));
        text = assert_round_trip(fx, with_learned);
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                _cleanup_free_ char *want = NULL;
                char *dir = strstr(lines[i], "%1$s");

                if (dir)
                        assert_true(asprintf(&want, "%.*s%s%s", (int) (dir - lines[i]), lines[i], fx->dir,
                                             dir + 4) > 0);
                if (!strstr(text, want ?: lines[i]))
                        fail_msg("\"%s\" not in\n%s", want ?: lines[i], text);
        }

        defaults = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\"; };\n");
        assert_non_null(strstr(defaults, "  known_hosts = \"" SYSCONFDIR "/sshtund/known_hosts\";\n"));
        assert_non_null(strstr(defaults, "  learned_hosts = \"" LOCALSTATEDIR "/lib/sshtund/known_hosts\";\n"));
        assert_non_null(strstr(defaults, "  listen = [ \"unix:/run/sshtund/proxy.sock\" ];\n"));
        assert_non_null(strstr(defaults, "probe = {\n  type = \"none\";\n"));
        assert_non_null(strstr(defaults, "  readonly_socket = \"\";\n  readonly_socket_mode = \"0660\";\n"));
        assert_non_null(strstr(defaults, "  metrics_per_node = true;\n"));
        assert_non_null(strstr(defaults, "drain_timeout = 10.0;\nnodes = ( );\nnodes_file = \"\";\n"));
}

static void test_print_values(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *text = NULL, *want = NULL;

        /* escapes libconfig reads back; UTF-8 as it is */
        text = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\";\n"
                                     "  known_hosts = \"/a \\\"b\\\" \\\\ c\\n\\t\\r\\f\\x01\\x7f \xc3\xa9\"; };\n");
        assert_non_null(strstr(text, "  known_hosts = \"/a \\\"b\\\" \\\\ c\\n\\t\\r\\f\\x01\\x7f \xc3\xa9\";\n"));
        free(text);

        /* numbers that read back to the same double, as floats */
        text = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\"; connect_timeout = 0.1;\n"
                                     "  keepalive_interval = 1e-05; }; drain_timeout = 3600;\n"
                                     "admin = { ready_min_fraction = 0.3333333333333333; };\n");
        assert_non_null(strstr(text, "  connect_timeout = 0.1;\n"));
        assert_non_null(strstr(text, "  keepalive_interval = 1e-05;\n"));
        assert_non_null(strstr(text, "drain_timeout = 3600.0;\n"));
        assert_non_null(strstr(text, "  ready_min_fraction = 0.3333333333333333;\n"));
        free(text);

        /* konnectivity, with "" for an unset server_name */
        text = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                                     "nodes = ( { name = \"n1\"; address = \"10.0.0.1\"; } );\n"
                                     "konnectivity = { upstream = \"tcp:k.example:8132\"; nodes = [ \"*\" ];\n"
                                     "  ca_file = \"/etc/k/ca.crt\"; };\n");
        assert_non_null(strstr(text, "konnectivity = {\n  upstream = \"tcp:k.example:8132\";\n  nodes = [ \"*\" ];\n"
                                     "  fallback_to_ssh = true;\n  ca_file = \"/etc/k/ca.crt\";\n  cert_file = \"\";\n"
                                     "  key_file = \"\";\n  server_name = \"\";\n  probe_port = 10250;\n};\n"));
        free(text);

        /* a nodes_file's nodes: under it, as comments */
        assert_true(asprintf(&want, "%s/nodes.conf", fx->dir) > 0);
        write_file(want, "nodes = ( { name = \"n2\"; address = \"10.0.0.2\"; } );\n", "");
        text = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                                     "nodes = ( { name = \"n1\"; address = \"10.0.0.1\"; } );\n"
                                     "nodes_file = \"%1$s/nodes.conf\";\n");
        free(want);
        assert_true(asprintf(&want,
                             "nodes = (\n"
                             "  { name = \"n1\"; address = \"10.0.0.1\"; port = 22; hostnames = [ ]; pod_cidr = \"\"; }\n"
                             ");\n"
                             "nodes_file = \"%s/nodes.conf\";\n"
                             "# Its nodes, read again whenever it changes:\n"
                             "# nodes = (\n"
                             "#   { name = \"n2\"; address = \"10.0.0.2\"; port = 22; hostnames = [ ]; pod_cidr = \"\"; }\n"
                             "# );\n"
                             "forwards = ( );\n",
                             fx->dir) > 0);
        if (!strstr(text, want))
                fail_msg("\"%s\" not in\n%s", want, text);
        free(text);
        free(want);

        /* nodes a nodes_file takes from a file it includes are its own */
        assert_true(asprintf(&want, "%s/more-nodes.conf", fx->dir) > 0);
        write_file(want, "{ name = \"n3\"; address = \"10.0.0.3\"; }\n", "");
        free(want);
        assert_true(asprintf(&want, "%s/nodes.conf", fx->dir) > 0);
        write_file(want, "nodes = ( { name = \"n2\"; address = \"10.0.0.2\"; },\n@include \"%1$s/more-nodes.conf\"\n);\n",
                   fx->dir);
        text = assert_round_trip(fx, "ssh = { identity = \"%1$s/id\"; };\n"
                                     "nodes = ( { name = \"n1\"; address = \"10.0.0.1\"; } );\n"
                                     "nodes_file = \"%1$s/nodes.conf\";\n");
        assert_non_null(strstr(text, "\n#   { name = \"n3\"; address = \"10.0.0.3\";"));
        assert_null(strstr(text, "\n  { name = \"n3\""));
}

/* config_load_for_start(): the file's names checked on this host. */
static void assert_start_fails(const Fixture *fx, const char *format, const char *expected) {
        _cleanup_free_ char *error = NULL, *want = NULL;
        Config *c = NULL;
        int r;

        write_file(fx->conf, format, fx->dir);
        assert_int_equal(config_load(fx->conf, &c, NULL), 0); /* the file alone is fine */
        config_free(c);
        c = NULL;
        r = config_load_for_start(fx->conf, &c, &error);
        if (r != -EINVAL)
                fail_msg("config\n%s\nloaded for start with %d (%s), expected the error\n%s", format, r,
                         strna(error), expected);
        assert_null(c);
        assert_true(asprintf(&want, "%s%s", fx->conf, expected) > 0);
        for (char *d; (d = strstr(want, "%1$s"));) {
                char *w = NULL;
                assert_true(asprintf(&w, "%.*s%s%s", (int) (d - want), want, fx->dir, d + 4) > 0);
                free(want);
                want = w;
        }
        assert_string_equal(error, want);
}

#define START_BASE                                                                            \
        "ssh = { identity = \"%1$s/id\"; known_hosts = \"%1$s/known_hosts\";\n"                \
        "        learned_hosts = \"%1$s/learned_hosts\"; };\n"                                  \
        "proxy = { listen = [ \"unix:%1$s/proxy.sock\" ]; };\n"                                 \
        "admin = { socket = \"%1$s/admin.sock\"; };\n"

static void test_start_checks(void **state) {
        const Fixture *fx = *state;
        _cleanup_free_ char *path = NULL, *error = NULL;
        Config *c = NULL;

        assert_int_equal(chmod(fx->dir, 0755), 0);
        write_file(fx->conf, START_BASE, fx->dir);
        assert_int_equal(config_load_for_start(fx->conf, &c, &error), 0);
        config_free(c);

        assert_start_fails(fx, START_BASE "user = \"sshtund-no-such-user\";\n",
                           ":5: user: no such user \"sshtund-no-such-user\"");
        assert_start_fails(fx,
                           "ssh = { identity = \"%1$s/id\"; known_hosts = \"%1$s/known_hosts\"; "
                           "learned_hosts = \"\"; };\n"
                           "proxy = { listen = [ \"unix:%1$s/proxy.sock\" ];\n"
                           "  socket_group = \"sshtund-no-such-group\"; };\n"
                           "admin = { socket = \"%1$s/admin.sock\"; };\n",
                           ":3: proxy.socket_group: no such group \"sshtund-no-such-group\"");

        /* known_hosts as start reads it: missing is empty, a directory is not */
        assert_true(asprintf(&path, "%s/known_hosts", fx->dir) > 0);
        assert_int_equal(mkdir(path, 0755), 0);
        assert_start_fails(fx, START_BASE, ":1: ssh.known_hosts: %1$s/known_hosts: Is a directory");
        assert_int_equal(rmdir(path), 0);

        /* the identity: never writable by others; world-readable only
         * where no root or other account relies on it */
        free(path);
        assert_true(asprintf(&path, "%s/id", fx->dir) > 0);
        assert_int_equal(chmod(path, 0602), 0);
        assert_start_fails(fx, START_BASE,
                           ":1: ssh.identity: %1$s/id is writable by everyone (mode 0602): anyone who can "
                           "change it can replace the key (chmod go-w)");
        assert_int_equal(chmod(path, 0644), 0);
        if (geteuid() == 0)
                assert_start_fails(fx, START_BASE,
                                   ":1: ssh.identity: %1$s/id is readable by everyone (mode 0644), and sshtund "
                                   "runs as root: chmod 0600, or 0640 with the group of the user sshtund runs as");
        assert_int_equal(chmod(path, 0600), 0);

        /* TLS files */
        assert_start_fails(fx, START_BASE "probe = { type = \"https\"; ca_file = \"%1$s/id\"; };\n",
                           ":5: probe.ca_file: %1$s/id: no usable CA certificate (PEM lib)");
        assert_start_fails(fx, START_BASE "probe = { type = \"https\"; ca_file = \"%1$s/none\"; };\n",
                           ":5: probe.ca_file: %1$s/none: No such file or directory");

        /* the sockets' directories */
        free(path);
        assert_true(asprintf(&path, "%s/file", fx->dir) > 0);
        write_file(path, "", "");
        assert_start_fails(fx,
                           "ssh = { identity = \"%1$s/id\"; known_hosts = \"%1$s/known_hosts\"; "
                           "learned_hosts = \"\"; };\n"
                           "proxy = { listen = [ \"tcp:127.0.0.1:8131\", \"unix:%1$s/file/run/proxy.sock\" ]; };\n"
                           "admin = { socket = \"%1$s/admin.sock\"; };\n",
                           ":2: proxy.listen[1]: cannot create %1$s/file/run/proxy.sock: %1$s/file is not a directory");
        assert_start_fails(fx,
                           "ssh = { identity = \"%1$s/id\"; known_hosts = \"%1$s/known_hosts\"; "
                           "learned_hosts = \"\"; };\n"
                           "proxy = { listen = [ \"unix:%1$s/proxy.sock\" ]; };\n"
                           "admin = { socket = \"%1$s/file\"; };\n",
                           ":3: admin.socket: %1$s/file exists and is not a socket");
        /* left at its default: no line to point at */
        assert_start_fails(fx,
                           "ssh = { identity = \"%1$s/id\"; known_hosts = \"%1$s/file/known_hosts\"; "
                           "learned_hosts = \"\"; };\n"
                           "proxy = { listen = [ \"unix:%1$s/proxy.sock\" ]; };\n"
                           "admin = { socket = \"%1$s/admin.sock\"; };\n",
                           ":1: ssh.known_hosts: %1$s/file/known_hosts: Not a directory");
        assert_int_equal(unlink(path), 0);
}

static void test_same_endpoint(void **state) {
        ConfigNode a = { .name = (char *) "a", .address = (char *) "10.0.0.1", .port = 22 };
        ConfigNode b = { .name = (char *) "b", .address = (char *) "10.0.0.1", .port = 22 };

        (void) state;
        assert_true(config_node_same_endpoint(&a, &b));
        b.port = 2222;
        assert_false(config_node_same_endpoint(&a, &b));
        b.port = 22;
        b.address = (char *) "10.0.0.2";
        assert_false(config_node_same_endpoint(&a, &b));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_unreadable),
                cmocka_unit_test(test_syntax),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_wrong_type),
                cmocka_unit_test(test_range),
                cmocka_unit_test(test_enums),
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_nodes),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_include),
                cmocka_unit_test(test_forwards),
                cmocka_unit_test(test_konnectivity),
                cmocka_unit_test(test_probe),
                cmocka_unit_test(test_nodes_file),
                cmocka_unit_test(test_nodes_file_fifo),
                cmocka_unit_test(test_admin_metrics),
                cmocka_unit_test(test_identity),
                cmocka_unit_test(test_print),
                cmocka_unit_test(test_print_values),
                cmocka_unit_test(test_start_checks),
                cmocka_unit_test(test_same_endpoint),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
