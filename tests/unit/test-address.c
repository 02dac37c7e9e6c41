/* Tests for address.c: IP literals, CIDR blocks, host:port splitting, port
 * lists and listen specs, each accepted form and the typos it must refuse. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "address.h"
#include "macro.h"

static IpAddr ip(const char *s) {
        IpAddr a;
        if (ipaddr_parse(s, &a) < 0)
                fail_msg("\"%s\" should parse", s);
        return a;
}

static Cidr cidr(const char *s) {
        Cidr c;
        if (cidr_parse(s, &c) < 0)
                fail_msg("\"%s\" should parse", s);
        return c;
}

static bool contains(const Cidr *c, const char *addr) {
        IpAddr a = ip(addr);
        return cidr_contains(c, &a);
}

static void test_ipaddr_parse(void **state) {
        static const char *bad[] = {
                "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "010.0.0.1", " 1.2.3.4", "1.2.3.4 ",
                "1.2.3.4/32", "[::1]", "fe80::1%eth0", ":::1", "fd00::1::2", "example.com", "0x7f000001",
        };
        char buf[INET6_ADDRSTRLEN];
        IpAddr a, b;

        (void) state;
        assert_int_equal(ipaddr_parse("10.0.0.7", &a), 0);
        assert_int_equal(a.family, AF_INET);
        assert_memory_equal(a.bytes, ((uint8_t[]) { 10, 0, 0, 7 }), 4);
        assert_string_equal(ipaddr_to_string(&a, buf, sizeof(buf)), "10.0.0.7");

        assert_int_equal(ipaddr_parse("FD00:0:0::7", &a), 0);
        assert_int_equal(a.family, AF_INET6);
        assert_string_equal(ipaddr_to_string(&a, buf, sizeof(buf)), "fd00::7");
        assert_int_equal(ipaddr_parse("fd00::7", &b), 0);
        assert_true(ipaddr_equal(&a, &b));
        assert_int_equal(ipaddr_parse("fd00::8", &b), 0);
        assert_false(ipaddr_equal(&a, &b));

        /* Same bytes in the first four, different families. */
        a = ip("0.0.0.0");
        b = ip("::");
        assert_false(ipaddr_equal(&a, &b));

        assert_int_equal(ipaddr_parse("::ffff:10.0.0.1", &a), 0);
        assert_int_equal(a.family, AF_INET6);
        assert_int_equal(ipaddr_parse("::1", NULL), 0);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (ipaddr_parse(bad[i], &a) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);
        assert_int_equal(ipaddr_parse(NULL, &a), -EINVAL);
}

static void test_ipaddr_to_sockaddr(void **state) {
        struct sockaddr_storage ss;
        const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
        char text[INET6_ADDRSTRLEN];
        IpAddr a;

        memset(&ss, 0xa5, sizeof(ss)); /* no byte of an earlier use survives */
        assert_int_equal(ipaddr_parse("198.18.0.7", &a), 0);
        assert_int_equal(ipaddr_to_sockaddr(&a, 22, &ss), sizeof(struct sockaddr_in));
        assert_int_equal(in->sin_family, AF_INET);
        assert_int_equal(ntohs(in->sin_port), 22);
        assert_string_equal(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)), "198.18.0.7");
        for (size_t i = 0; i < sizeof(in->sin_zero); i++)
                assert_int_equal(in->sin_zero[i], 0);

        memset(&ss, 0xa5, sizeof(ss));
        assert_int_equal(ipaddr_parse("fd00::1:2", &a), 0);
        assert_int_equal(ipaddr_to_sockaddr(&a, 65535, &ss), sizeof(struct sockaddr_in6));
        assert_int_equal(in6->sin6_family, AF_INET6);
        assert_int_equal(ntohs(in6->sin6_port), 65535);
        assert_int_equal(in6->sin6_flowinfo, 0);
        assert_int_equal(in6->sin6_scope_id, 0);
        assert_string_equal(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)), "fd00::1:2");
}

static void test_ipaddr_parse_bracketed(void **state) {
        static const char *bad[] = {
                "[10.0.0.1]", "[fd00::1", "fd00::1]", "[]", "[fd00::1]x", "[[fd00::1]]", "[ fd00::1]",
                "[fd00::1]:80", "[example.com]", "[",
        };
        char buf[INET6_ADDRSTRLEN];
        IpAddr a;

        (void) state;
        assert_int_equal(ipaddr_parse_bracketed("[fd00:0::1]", &a), 0);
        assert_int_equal(a.family, AF_INET6);
        assert_string_equal(ipaddr_to_string(&a, buf, sizeof(buf)), "fd00::1");
        assert_int_equal(ipaddr_parse_bracketed("fd00::1", &a), 0);
        assert_int_equal(ipaddr_parse_bracketed("10.0.0.1", &a), 0);
        assert_int_equal(a.family, AF_INET);
        assert_int_equal(ipaddr_parse_bracketed("[1111:2222:3333:4444:5555:6666:255.255.255.255]", &a), 0);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (ipaddr_parse_bracketed(bad[i], &a) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);
        assert_int_equal(ipaddr_parse_bracketed(NULL, &a), -EINVAL);
}

static void test_cidr(void **state) {
        static const char *bad[] = {
                "10.0.0.1/8",   /* host bits set */
                "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8 ", "10.0.0.0/ 8",
                "10.0.0.0/8/8", "/8", "", "10.0.0.0/x", "10.0.0.0/99999999999",
                "fd00::1/8", "fd00::/129", "fd00::/7", "[fd00::]/8", "10.0.0.1/31", "::1/127",
        };
        char buf[64];
        Cidr c;

        (void) state;
        c = cidr("10.0.0.0/8");
        assert_int_equal(c.prefixlen, 8);
        assert_string_equal(cidr_to_string(&c, buf, sizeof(buf)), "10.0.0.0/8");
        assert_true(contains(&c, "10.255.255.255"));
        assert_false(contains(&c, "11.0.0.0"));
        assert_false(contains(&c, "::a00:1"));

        /* Bare addresses are single-host blocks. */
        c = cidr("10.0.0.5");
        assert_int_equal(c.prefixlen, 32);
        assert_true(contains(&c, "10.0.0.5"));
        assert_false(contains(&c, "10.0.0.4"));
        c = cidr("fd00::5");
        assert_int_equal(c.prefixlen, 128);
        assert_string_equal(cidr_to_string(&c, buf, sizeof(buf)), "fd00::5/128");

        /* /0 holds every address of its family only. */
        c = cidr("0.0.0.0/0");
        assert_true(contains(&c, "255.255.255.255"));
        assert_true(contains(&c, "0.0.0.0"));
        assert_false(contains(&c, "::"));
        c = cidr("::/0");
        assert_true(contains(&c, "ffff::1"));
        assert_false(contains(&c, "1.2.3.4"));

        /* Prefixes that end inside a byte. */
        c = cidr("10.0.0.0/31");
        assert_true(contains(&c, "10.0.0.0"));
        assert_true(contains(&c, "10.0.0.1"));
        assert_false(contains(&c, "10.0.0.2"));
        c = cidr("10.96.0.0/12");
        assert_true(contains(&c, "10.111.255.255"));
        assert_false(contains(&c, "10.112.0.0"));
        assert_false(contains(&c, "10.95.255.255"));
        c = cidr("fd00::/127");
        assert_true(contains(&c, "fd00::"));
        assert_true(contains(&c, "fd00::1"));
        assert_false(contains(&c, "fd00::2"));
        c = cidr("fc00::/7");
        assert_true(contains(&c, "fdff::1"));
        assert_true(contains(&c, "fc00::1"));
        assert_false(contains(&c, "fe00::1"));
        assert_string_equal(cidr_to_string(&c, buf, sizeof(buf)), "fc00::/7");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (cidr_parse(bad[i], &c) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);
        assert_int_equal(cidr_parse(NULL, &c), -EINVAL);
        assert_int_equal(cidr_parse("10.0.0.0/8", NULL), 0);
}

static void test_hostport_split(void **state) {
        static const char *bad[] = {
                "fd00::1:80",          /* unbracketed IPv6 */
                "::1:80",
                "example.com",         /* missing port */
                "example.com:",
                "10.0.0.1",
                "example.com:0",       /* port out of range */
                "example.com:65536",
                "example.com:-1",
                "example.com:+80",
                ":80",                 /* empty host */
                "[]:80",
                "[::1]",               /* brackets but no port */
                "[::1]:",
                "example.com:80x",     /* trailing junk */
                "example.com:80 ",
                "[::1]:80x",
                "[::1]x:80",
                "[::1]]:80",
                "[10.0.0.1]:80",       /* brackets are for IPv6 */
                "[example.com]:80",
                "[::1:80",
                "",
        };
        char *host = NULL;
        uint16_t port = 0;

        (void) state;
        assert_int_equal(hostport_split("10.0.0.7:10250", &host, &port), 0);
        assert_string_equal(host, "10.0.0.7");
        assert_int_equal(port, 10250);
        free(TAKE_PTR(host));

        assert_int_equal(hostport_split("Node-1.Example.com:1", &host, &port), 0);
        assert_string_equal(host, "Node-1.Example.com");
        assert_int_equal(port, 1);
        free(TAKE_PTR(host));

        assert_int_equal(hostport_split("[fd00::7]:65535", &host, &port), 0);
        assert_string_equal(host, "fd00::7");
        assert_int_equal(port, 65535);
        free(TAKE_PTR(host));

        port = 0;
        assert_int_equal(hostport_split("a:80", NULL, &port), 0);
        assert_int_equal(port, 80);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                host = NULL;
                port = 7;
                if (hostport_split(bad[i], &host, &port) != -EINVAL)
                        fail_msg("\"%s\" should not split", bad[i]);
                assert_null(host);
                assert_int_equal(port, 7);
        }
        assert_int_equal(hostport_split(NULL, &host, &port), -EINVAL);
}

static void test_port_parse(void **state) {
        static const char *bad[] = { "", "0", "65536", "99999999999", "-1", "+1", " 1", "1 ", "0x10", "1.0", "a" };
        uint16_t p;

        (void) state;
        assert_int_equal(port_parse("1", &p), 0);
        assert_int_equal(p, 1);
        assert_int_equal(port_parse("65535", &p), 0);
        assert_int_equal(p, 65535);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (port_parse(bad[i], &p) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);
        assert_int_equal(port_parse(NULL, &p), -EINVAL);
}

static void test_portlist(void **state) {
        static const char *bad[] = {
                "", "0", "65536", "80,", ",80", "80,,443", "70-60", "-80", "80-", "1-2-3", "80 ", " 80", "http",
                "0-10", "1-65536",
        };
        PortRange *r = NULL;
        size_t n = 0;

        (void) state;
        assert_int_equal(portlist_parse("10250", &r, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(r[0].lo, 10250);
        assert_int_equal(r[0].hi, 10250);
        assert_true(portlist_contains(r, n, 10250));
        assert_false(portlist_contains(r, n, 10251));
        free(TAKE_PTR(r));

        assert_int_equal(portlist_parse("80,443,8000-9000,1-1", &r, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(r[2].lo, 8000);
        assert_int_equal(r[2].hi, 9000);
        assert_true(portlist_contains(r, n, 1));
        assert_false(portlist_contains(r, n, 2));
        assert_true(portlist_contains(r, n, 80));
        assert_true(portlist_contains(r, n, 443));
        assert_true(portlist_contains(r, n, 8000));
        assert_true(portlist_contains(r, n, 8500));
        assert_true(portlist_contains(r, n, 9000));
        assert_false(portlist_contains(r, n, 7999));
        assert_false(portlist_contains(r, n, 9001));
        free(TAKE_PTR(r));

        assert_int_equal(portlist_parse("1-65535", &r, &n), 0);
        assert_true(portlist_contains(r, n, 65535));
        free(TAKE_PTR(r));

        assert_false(portlist_contains(NULL, 0, 80));

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                r = NULL;
                if (portlist_parse(bad[i], &r, &n) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);
                assert_null(r);
        }
        assert_int_equal(portlist_parse(NULL, &r, &n), -EINVAL);
}

static void round_trip(const char *text, const char *canonical) {
        ListenAddress a = {}, b = {}, c = {};
        _cleanup_free_ char *s = NULL;

        if (listen_address_parse(text, &a) < 0)
                fail_msg("\"%s\" should parse", text);
        s = listen_address_to_string(&a);
        assert_non_null(s);
        assert_string_equal(s, canonical);
        assert_int_equal(listen_address_parse(s, &b), 0);
        assert_true(listen_address_equal(&a, &b));
        assert_int_equal(listen_address_copy(&a, &c), 0);
        assert_true(listen_address_equal(&a, &c));
        if (a.path)
                assert_ptr_not_equal(a.path, c.path);
        listen_address_done(&a);
        listen_address_done(&b);
        listen_address_done(&c);
        assert_null(a.path);
}

static void test_listen_address(void **state) {
        char long_path[sizeof(((struct sockaddr_un *) NULL)->sun_path) + 8];
        static const char *bad[] = {
                "", "unix:", "unix:relative.sock", "/run/x.sock", "tcp:", "tcp:127.0.0.1", "tcp:localhost:80",
                "tcp:::1:80", "tcp:[::1]", "tcp:127.0.0.1:0", "udp:127.0.0.1:53", "TCP:127.0.0.1:80",
        };
        ListenAddress a = {}, b = {};

        (void) state;
        round_trip("unix:/run/sshtund/proxy.sock", "unix:/run/sshtund/proxy.sock");
        round_trip("tcp:127.0.0.1:8131", "tcp:127.0.0.1:8131");
        round_trip("tcp:[::1]:8131", "tcp:[::1]:8131");
        round_trip("tcp:[0:0::1]:8131", "tcp:[::1]:8131");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (listen_address_parse(bad[i], &a) != -EINVAL)
                        fail_msg("\"%s\" should not parse", bad[i]);

        /* The longest path that still fits sun_path with its NUL, and one more. */
        long_path[0] = 0;
        strcpy(long_path, "unix:/");
        memset(long_path + 6, 'x', sizeof(((struct sockaddr_un *) NULL)->sun_path) - 2);
        long_path[6 + sizeof(((struct sockaddr_un *) NULL)->sun_path) - 2] = 0;
        assert_int_equal(listen_address_parse(long_path, &a), 0);
        listen_address_done(&a);
        strcat(long_path, "x");
        assert_int_equal(listen_address_parse(long_path, &a), -EINVAL);

        /* Different kinds, ports, addresses and paths are different. */
        assert_int_equal(listen_address_parse("tcp:127.0.0.1:1", &a), 0);
        assert_int_equal(listen_address_parse("tcp:127.0.0.1:2", &b), 0);
        assert_false(listen_address_equal(&a, &b));
        assert_int_equal(listen_address_parse("tcp:127.0.0.2:1", &b), 0);
        assert_false(listen_address_equal(&a, &b));
        assert_int_equal(listen_address_parse("unix:/a", &b), 0);
        assert_false(listen_address_equal(&a, &b));
        listen_address_done(&a);
        assert_int_equal(listen_address_parse("unix:/b", &a), 0);
        assert_false(listen_address_equal(&a, &b));
        listen_address_done(&a);
        listen_address_done(&b);
        listen_address_done(NULL);
}

static void test_listen_address_to_sockaddr(void **state) {
        struct sockaddr_storage ss;
        ListenAddress a = {};
        int n;

        (void) state;
        assert_int_equal(listen_address_parse("unix:/run/x.sock", &a), 0);
        n = listen_address_to_sockaddr(&a, &ss);
        assert_int_equal(n, (int) (offsetof(struct sockaddr_un, sun_path) + strlen("/run/x.sock") + 1));
        assert_int_equal(ss.ss_family, AF_UNIX);
        assert_string_equal(((struct sockaddr_un *) &ss)->sun_path, "/run/x.sock");
        listen_address_done(&a);

        assert_int_equal(listen_address_parse("tcp:127.0.0.1:8131", &a), 0);
        n = listen_address_to_sockaddr(&a, &ss);
        assert_int_equal(n, (int) sizeof(struct sockaddr_in));
        struct sockaddr_in *in = (struct sockaddr_in *) &ss;
        assert_int_equal(in->sin_family, AF_INET);
        assert_int_equal(ntohs(in->sin_port), 8131);
        assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
        listen_address_done(&a);

        assert_int_equal(listen_address_parse("tcp:[::1]:443", &a), 0);
        n = listen_address_to_sockaddr(&a, &ss);
        assert_int_equal(n, (int) sizeof(struct sockaddr_in6));
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
        assert_int_equal(in6->sin6_family, AF_INET6);
        assert_int_equal(ntohs(in6->sin6_port), 443);
        assert_memory_equal(&in6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback));
        listen_address_done(&a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ipaddr_parse),
                cmocka_unit_test(test_ipaddr_to_sockaddr),
                cmocka_unit_test(test_ipaddr_parse_bracketed),
                cmocka_unit_test(test_cidr),
                cmocka_unit_test(test_hostport_split),
                cmocka_unit_test(test_port_parse),
                cmocka_unit_test(test_portlist),
                cmocka_unit_test(test_listen_address),
                cmocka_unit_test(test_listen_address_to_sockaddr),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
