/* Tests for router.c: lookups by every kind of key, conflicts and removal, a
 * large index, the allowlist in each rule form, and allow_rule_parse(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "router.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(Router *, router_free);

/* A writable string, as router_add_node()'s hostnames are typed. */
#define S(x) ((char[]) { x })
#define _cleanup_router_ _cleanup_(router_freep)

static Router *router_with_rules(const char *const *texts, size_t n) {
        AllowRule *rules = calloc(n ? n : 1, sizeof(*rules));
        Router *r = NULL;

        assert_non_null(rules);
        for (size_t i = 0; i < n; i++)
                if (allow_rule_parse(texts[i], &rules[i]) < 0)
                        fail_msg("rule \"%s\" did not parse", texts[i]);
        assert_int_equal(router_new(rules, n, &r), 0);
        /* The router keeps its own copies. */
        for (size_t i = 0; i < n; i++)
                allow_rule_done(&rules[i]);
        free(rules);
        return r;
}

static Cidr cidr(const char *s) {
        Cidr c;
        assert_int_equal(cidr_parse(s, &c), 0);
        return c;
}

static void test_lookup_keys(void **state) {
        _cleanup_router_ Router *r = router_with_rules(NULL, 0);
        char *h1[] = { S("Node-1.Example.COM"), S("node-1"), NULL };
        char *h2[] = { NULL };
        Cidr p1 = cidr("10.244.1.0/24"), p2 = cidr("fd00:10:244:2::/64");
        int n1, n2, n3;

        (void) state;
        assert_int_equal(router_add_node(r, "Worker-1", "10.0.0.7", h1, &p1, &n1), 0);
        assert_int_equal(router_add_node(r, "worker-2", "FD00:0:0::7", h2, &p2, &n2), 0);
        assert_int_equal(router_add_node(r, "worker-3", "Worker-3.Nodes.Internal", NULL, NULL, &n3), 0);

        /* names and hostnames, any case */
        assert_ptr_equal(router_lookup(r, "worker-1"), &n1);
        assert_ptr_equal(router_lookup(r, "WORKER-1"), &n1);
        assert_ptr_equal(router_lookup(r, "node-1.example.com"), &n1);
        assert_ptr_equal(router_lookup(r, "NODE-1.example.Com"), &n1);
        assert_ptr_equal(router_lookup(r, "node-1"), &n1);

        /* IPv4 and IPv6 in every spelling */
        assert_ptr_equal(router_lookup(r, "10.0.0.7"), &n1);
        assert_ptr_equal(router_lookup(r, "fd00::7"), &n2);
        assert_ptr_equal(router_lookup(r, "FD00::7"), &n2);
        assert_ptr_equal(router_lookup(r, "fd00:0:0::7"), &n2);
        assert_ptr_equal(router_lookup(r, "fd00:0000:0:0:0:0:0:0007"), &n2);
        assert_ptr_equal(router_lookup(r, "[fd00::7]"), &n2);
        assert_ptr_equal(router_lookup(r, "[fd00:0::7]"), &n2);

        /* a DNS name given as the address is a case-insensitive name */
        assert_ptr_equal(router_lookup(r, "worker-3.nodes.internal"), &n3);
        assert_ptr_equal(router_lookup(r, "WORKER-3.NODES.INTERNAL"), &n3);

        /* pod CIDRs */
        assert_ptr_equal(router_lookup(r, "10.244.1.17"), &n1);
        assert_ptr_equal(router_lookup(r, "fd00:10:244:2::abcd"), &n2);
        assert_ptr_equal(router_lookup(r, "[fd00:10:244:2::abcd]"), &n2);

        /* unknown */
        assert_null(router_lookup(r, "10.0.0.8"));
        assert_null(router_lookup(r, "10.244.2.1"));
        assert_null(router_lookup(r, "fd00::8"));
        assert_null(router_lookup(r, "worker-4"));
        assert_null(router_lookup(r, "worker-1."));
        assert_null(router_lookup(r, "worker"));
        assert_null(router_lookup(r, ""));
        assert_null(router_lookup(r, "[worker-1]"));
        assert_null(router_lookup(r, "[10.0.0.7]"));
        assert_null(router_lookup(r, "[fd00::7"));
        assert_null(router_lookup(r, NULL));
}

static void test_lookup_pod_cidr_longest_prefix(void **state) {
        _cleanup_router_ Router *r = router_with_rules(NULL, 0);
        Cidr wide = cidr("10.244.0.0/16"), narrow = cidr("10.244.5.0/24"), same = cidr("10.244.0.0/16");
        Cidr v6 = cidr("fd00::/8");
        int a, b, c, d;

        (void) state;
        assert_int_equal(router_add_node(r, "a", "10.0.0.1", NULL, &wide, &a), 0);
        assert_int_equal(router_add_node(r, "b", "10.0.0.2", NULL, &narrow, &b), 0);
        assert_int_equal(router_add_node(r, "c", "10.0.0.3", NULL, &same, &c), 0);
        assert_int_equal(router_add_node(r, "d", "10.0.0.4", NULL, &v6, &d), 0);

        assert_ptr_equal(router_lookup(r, "10.244.5.9"), &b);
        assert_ptr_equal(router_lookup(r, "10.244.6.9"), &a); /* equal blocks: the first node */
        assert_ptr_equal(router_lookup(r, "fd12::1"), &d);
        assert_null(router_lookup(r, "10.245.0.1"));
        /* an exact address beats any pod CIDR */
        assert_ptr_equal(router_lookup(r, "10.0.0.3"), &c);

        router_remove_node(r, &b);
        assert_ptr_equal(router_lookup(r, "10.244.5.9"), &a);
        router_remove_node(r, &a);
        assert_ptr_equal(router_lookup(r, "10.244.5.9"), &c);
}

static void test_first_wins_and_remove(void **state) {
        _cleanup_router_ Router *r = router_with_rules(NULL, 0);
        char *ha[] = { S("shared.example.com"), S("only-a"), NULL };
        char *hb[] = { S("SHARED.example.com"), S("10.0.0.1"), NULL };
        char *hc[] = { S("shared.example.com"), NULL };
        int a, b, c;

        (void) state;
        assert_int_equal(router_add_node(r, "a", "10.0.0.1", ha, NULL, &a), 0);
        assert_int_equal(router_add_node(r, "b", "10.0.0.1", hb, NULL, &b), 0);
        assert_int_equal(router_add_node(r, "A", "10.0.0.3", hc, NULL, &c), 0);
        assert_int_equal(router_add_node(r, "x", NULL, NULL, NULL, &a), -EEXIST);

        assert_ptr_equal(router_lookup(r, "shared.example.com"), &a);
        assert_ptr_equal(router_lookup(r, "10.0.0.1"), &a);
        assert_ptr_equal(router_lookup(r, "a"), &a);
        assert_ptr_equal(router_lookup(r, "b"), &b);
        assert_ptr_equal(router_lookup(r, "10.0.0.3"), &c);

        /* Every key of the node goes; keys others also claimed pass to the next in line. */
        router_remove_node(r, &a);
        assert_null(router_lookup(r, "only-a"));
        assert_ptr_equal(router_lookup(r, "shared.example.com"), &b);
        assert_ptr_equal(router_lookup(r, "10.0.0.1"), &b);
        assert_ptr_equal(router_lookup(r, "a"), &c);

        router_remove_node(r, &b);
        assert_ptr_equal(router_lookup(r, "shared.example.com"), &c);
        assert_null(router_lookup(r, "10.0.0.1"));
        assert_null(router_lookup(r, "b"));

        /* Unknown userdata is a no-op; removed userdata can come back. */
        router_remove_node(r, &b);
        assert_int_equal(router_add_node(r, "a", "10.0.0.1", NULL, NULL, &a), 0);
        assert_ptr_equal(router_lookup(r, "10.0.0.1"), &a);
        assert_ptr_equal(router_lookup(r, "a"), &c);

        router_remove_node(r, &c);
        router_remove_node(r, &a);
        assert_null(router_lookup(r, "a"));
        assert_null(router_lookup(r, "shared.example.com"));
}

#define MANY 5000

static void test_many_nodes(void **state) {
        _cleanup_router_ Router *r = router_with_rules(NULL, 0);
        int *nodes = calloc(MANY, sizeof(int));
        char name[64], addr[64], host[64], v6[64];

        (void) state;
        assert_non_null(nodes);
        for (int i = 0; i < MANY; i++) {
                char *hosts[] = { host, v6, NULL };
                snprintf(name, sizeof(name), "node-%d", i);
                snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 0xff, i & 0xff);
                snprintf(host, sizeof(host), "Node-%d.Cluster.Local", i);
                snprintf(v6, sizeof(v6), "fd00::%x", i);
                assert_int_equal(router_add_node(r, name, addr, hosts, NULL, &nodes[i]), 0);
        }
        for (int i = 0; i < MANY; i++) {
                snprintf(name, sizeof(name), "NODE-%d", i);
                snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 0xff, i & 0xff);
                snprintf(host, sizeof(host), "node-%d.cluster.local", i);
                snprintf(v6, sizeof(v6), "[fd00:0::%x]", i);
                assert_ptr_equal(router_lookup(r, name), &nodes[i]);
                assert_ptr_equal(router_lookup(r, addr), &nodes[i]);
                assert_ptr_equal(router_lookup(r, host), &nodes[i]);
                assert_ptr_equal(router_lookup(r, v6), &nodes[i]);
        }
        assert_null(router_lookup(r, "node-5000"));

        /* Remove every other node; the rest stay found. */
        for (int i = 0; i < MANY; i += 2)
                router_remove_node(r, &nodes[i]);
        for (int i = 0; i < MANY; i++) {
                snprintf(name, sizeof(name), "node-%d", i);
                if (i % 2)
                        assert_ptr_equal(router_lookup(r, name), &nodes[i]);
                else
                        assert_null(router_lookup(r, name));
        }
        free(nodes);
}

static void test_allowed_nodes(void **state) {
        static const char *const rules[] = { "nodes" };
        _cleanup_router_ Router *r = router_with_rules(rules, 1);
        char *h[] = { S("worker-1.example.com"), NULL };
        Cidr pod = cidr("10.244.1.0/24");
        int n1, n2;

        (void) state;
        assert_int_equal(router_add_node(r, "worker-1", "10.0.0.7", h, &pod, &n1), 0);
        assert_int_equal(router_add_node(r, "worker-2", "fd00::7", NULL, NULL, &n2), 0);

        assert_true(router_allowed(r, "worker-1", 10250));
        assert_true(router_allowed(r, "WORKER-1.example.com", 1));
        assert_true(router_allowed(r, "10.0.0.7", 65535));
        assert_true(router_allowed(r, "[fd00:0::7]", 10250));
        assert_true(router_allowed(r, "10.244.1.200", 8080));
        assert_false(router_allowed(r, "10.244.2.1", 8080));
        assert_false(router_allowed(r, "10.0.0.8", 10250));
        assert_false(router_allowed(r, "example.com", 443));
        assert_false(router_allowed(r, "", 443));

        router_remove_node(r, &n1);
        assert_false(router_allowed(r, "worker-1", 10250));
        assert_false(router_allowed(r, "10.244.1.200", 8080));
}

static void test_allowed_nodes_ports(void **state) {
        static const char *const rules[] = { "nodes:10250,10255", "nodes:1-1024" };
        _cleanup_router_ Router *r = router_with_rules(rules, ELEMENTSOF(rules));
        int n1;

        (void) state;
        assert_int_equal(router_add_node(r, "worker-1", "10.0.0.7", NULL, NULL, &n1), 0);
        assert_true(router_allowed(r, "worker-1", 10250));
        assert_true(router_allowed(r, "worker-1", 10255));
        assert_false(router_allowed(r, "worker-1", 10251));
        assert_false(router_allowed(r, "worker-1", 10248));
        assert_true(router_allowed(r, "10.0.0.7", 1));
        assert_true(router_allowed(r, "10.0.0.7", 22));
        assert_true(router_allowed(r, "10.0.0.7", 1024));
        assert_false(router_allowed(r, "10.0.0.7", 1025));
        assert_false(router_allowed(r, "10.0.0.8", 22));
}

static void test_allowed_cidr(void **state) {
        static const char *const rules[] = {
                "10.96.0.0/12:80,443,8000-9000",
                "192.168.0.0/16",
                "172.16.0.5",
                "fd00::/8",
                "[2001:db8::/32]:443",
                "[2001:db9::5]:22",
        };
        _cleanup_router_ Router *r = router_with_rules(rules, ELEMENTSOF(rules));
        char *h[] = { S("svc.example.com"), NULL };
        int n1;

        (void) state;
        /* a named node is not a CIDR match, and there is no "nodes" rule */
        assert_int_equal(router_add_node(r, "worker-1", "10.96.0.7", h, NULL, &n1), 0);
        assert_false(router_allowed(r, "worker-1", 443));
        assert_false(router_allowed(r, "svc.example.com", 443));

        assert_true(router_allowed(r, "10.96.0.1", 80));
        assert_true(router_allowed(r, "10.111.255.255", 443));
        assert_true(router_allowed(r, "10.100.0.1", 8000));
        assert_true(router_allowed(r, "10.100.0.1", 8500));
        assert_true(router_allowed(r, "10.100.0.1", 9000));
        assert_false(router_allowed(r, "10.100.0.1", 7999));
        assert_false(router_allowed(r, "10.100.0.1", 9001));
        assert_false(router_allowed(r, "10.100.0.1", 22));
        assert_false(router_allowed(r, "10.112.0.1", 80));

        assert_true(router_allowed(r, "192.168.255.1", 1));
        assert_true(router_allowed(r, "192.168.0.0", 65535));
        assert_false(router_allowed(r, "192.169.0.1", 80));

        assert_true(router_allowed(r, "172.16.0.5", 22));
        assert_false(router_allowed(r, "172.16.0.6", 22));

        assert_true(router_allowed(r, "fd12:3456::1", 80));
        assert_true(router_allowed(r, "[fdff::1]", 80));
        assert_false(router_allowed(r, "fe80::1", 80));

        assert_true(router_allowed(r, "2001:db8:1::1", 443));
        assert_true(router_allowed(r, "[2001:db8::1]", 443));
        assert_false(router_allowed(r, "2001:db8::1", 80));
        assert_true(router_allowed(r, "2001:db9::5", 22));
        assert_false(router_allowed(r, "2001:db9::6", 22));

        /* An IPv4-mapped address is not an IPv4 address here. */
        assert_false(router_allowed(r, "::ffff:192.168.0.1", 80));
        /* Names never match a CIDR rule, even ones that look numeric. */
        assert_false(router_allowed(r, "192.168.0.1.nip.io", 80));
        assert_false(router_allowed(r, "0xc0a80001", 80));
}

static void test_allowed_empty(void **state) {
        _cleanup_router_ Router *r = router_with_rules(NULL, 0);
        int n1;

        (void) state;
        assert_int_equal(router_add_node(r, "worker-1", "10.0.0.7", NULL, NULL, &n1), 0);
        assert_ptr_equal(router_lookup(r, "worker-1"), &n1);
        assert_false(router_allowed(r, "worker-1", 10250));
        assert_false(router_allowed(r, "10.0.0.7", 10250));
}

static void test_allowed_in_order(void **state) {
        /* A rule whose ports do not match falls through to the next. */
        static const char *const rules[] = { "10.0.0.0/8:443", "nodes:10250", "0.0.0.0/0:22" };
        _cleanup_router_ Router *r = router_with_rules(rules, ELEMENTSOF(rules));
        int n1;

        (void) state;
        assert_int_equal(router_add_node(r, "worker-1", "10.0.0.7", NULL, NULL, &n1), 0);
        assert_true(router_allowed(r, "10.0.0.7", 443));
        assert_true(router_allowed(r, "10.0.0.7", 10250));
        assert_true(router_allowed(r, "10.0.0.7", 22));
        assert_true(router_allowed(r, "8.8.8.8", 22));
        assert_false(router_allowed(r, "8.8.8.8", 443));
        assert_false(router_allowed(r, "10.0.0.7", 80));
        assert_false(router_allowed(r, "worker-1", 443));
        assert_true(router_allowed(r, "worker-1", 10250));
}

static void test_allow_rule_parse_good(void **state) {
        static const struct {
                const char *text;
                AllowKind kind;
                const char *cidr;
                size_t n_ports;
                PortRange first, last;
        } good[] = {
                { "nodes", ALLOW_NODES, NULL, 0, {}, {} },
                { "nodes:10250", ALLOW_NODES, NULL, 1, { 10250, 10250 }, { 10250, 10250 } },
                { "nodes:10250,10255", ALLOW_NODES, NULL, 2, { 10250, 10250 }, { 10255, 10255 } },
                { "nodes:1-1024", ALLOW_NODES, NULL, 1, { 1, 1024 }, { 1, 1024 } },
                { "10.0.0.0/8", ALLOW_CIDR, "10.0.0.0/8", 0, {}, {} },
                { "10.0.0.0/8:443", ALLOW_CIDR, "10.0.0.0/8", 1, { 443, 443 }, { 443, 443 } },
                { "10.96.0.0/12:80,443,8000-9000", ALLOW_CIDR, "10.96.0.0/12", 3, { 80, 80 }, { 8000, 9000 } },
                { "0.0.0.0/0", ALLOW_CIDR, "0.0.0.0/0", 0, {}, {} },
                { "fd00::/8", ALLOW_CIDR, "fd00::/8", 0, {}, {} },
                { "fd00:0::/8", ALLOW_CIDR, "fd00::/8", 0, {}, {} },
                { "[fd00::/8]:443", ALLOW_CIDR, "fd00::/8", 1, { 443, 443 }, { 443, 443 } },
                { "[fd00::/8]", ALLOW_CIDR, "fd00::/8", 0, {}, {} },
                { "10.0.0.5", ALLOW_CIDR, "10.0.0.5/32", 0, {}, {} },
                { "10.0.0.5:22", ALLOW_CIDR, "10.0.0.5/32", 1, { 22, 22 }, { 22, 22 } },
                { "fd00::5", ALLOW_CIDR, "fd00::5/128", 0, {}, {} },
                { "[fd00::5]:443", ALLOW_CIDR, "fd00::5/128", 1, { 443, 443 }, { 443, 443 } },
                { "::/0", ALLOW_CIDR, "::/0", 0, {}, {} },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                AllowRule rule, copy;
                char buf[64];

                if (allow_rule_parse(good[i].text, &rule) < 0)
                        fail_msg("\"%s\" should parse", good[i].text);
                assert_int_equal(rule.kind, good[i].kind);
                assert_string_equal(rule.text, good[i].text);
                if (good[i].cidr)
                        assert_string_equal(cidr_to_string(&rule.cidr, buf, sizeof(buf)), good[i].cidr);
                assert_int_equal(rule.n_ports, good[i].n_ports);
                if (good[i].n_ports > 0) {
                        assert_int_equal(rule.ports[0].lo, good[i].first.lo);
                        assert_int_equal(rule.ports[0].hi, good[i].first.hi);
                        assert_int_equal(rule.ports[rule.n_ports - 1].lo, good[i].last.lo);
                        assert_int_equal(rule.ports[rule.n_ports - 1].hi, good[i].last.hi);
                } else
                        assert_null(rule.ports);

                assert_int_equal(allow_rule_copy(&rule, &copy), 0);
                allow_rule_done(&rule);
                assert_null(rule.text);
                assert_null(rule.ports);
                assert_string_equal(copy.text, good[i].text);
                assert_int_equal(copy.n_ports, good[i].n_ports);
                if (good[i].n_ports > 0)
                        assert_int_equal(copy.ports[0].lo, good[i].first.lo);
                allow_rule_done(&copy);
                allow_rule_done(&copy); /* twice is harmless */
        }
        allow_rule_done(NULL);
}

static void test_allow_rule_parse_bad(void **state) {
        static const char *bad[] = {
                "",
                "node",
                "Nodes",
                "nodesx",
                "nodes:",
                "nodes:0",
                "nodes:80-70",
                "nodes:65536",
                "nodes:80,",
                "nodes:,80",
                "nodes:80 ",
                " nodes",
                "nodes:http",
                "10.0.0.1/8",
                "10.0.0.0/33",
                "10.0.0.0/",
                "10.0.0.0/8:",
                "10.0.0.0/8:0",
                "10.0.0.0/8:443:80",
                "10.0.0/8",
                "10.0.0.0/-8",
                "fd00::/8:443",
                "fd00::/129",
                "fd00::1/8",
                "[fd00::/8]443",
                "[fd00::/8]:",
                "[fd00::/8",
                "fd00::/8]",
                "[10.0.0.0/8]:443",
                "[]:443",
                "[nodes]:443",
                "example.com",
                "example.com:443",
                "*",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                AllowRule rule = { .text = NULL };
                int r = allow_rule_parse(bad[i], &rule);
                if (r != -EINVAL)
                        fail_msg("\"%s\": got %d, want -EINVAL", bad[i], r);
                assert_null(rule.text);
        }
        AllowRule rule;
        assert_int_equal(allow_rule_parse(NULL, &rule), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_keys),
                cmocka_unit_test(test_lookup_pod_cidr_longest_prefix),
                cmocka_unit_test(test_first_wins_and_remove),
                cmocka_unit_test(test_many_nodes),
                cmocka_unit_test(test_allowed_nodes),
                cmocka_unit_test(test_allowed_nodes_ports),
                cmocka_unit_test(test_allowed_cidr),
                cmocka_unit_test(test_allowed_empty),
                cmocka_unit_test(test_allowed_in_order),
                cmocka_unit_test(test_allow_rule_parse_good),
                cmocka_unit_test(test_allow_rule_parse_bad),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
