/* Tests for socks.c: greetings with and without method 0, requests for each
 * address type fed whole and byte by byte, every malformed case, and the
 * exact reply bytes and REP mapping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "socks.h"

/* What curl and Go's dialer send: one method, no authentication. */
static const uint8_t GREETING_NOAUTH[] = { 0x05, 0x01, 0x00 };
/* CONNECT 10.0.0.7:10250 */
static const uint8_t REQ_IPV4[] = { 0x05, 0x01, 0x00, 0x01, 10, 0, 0, 7, 0x28, 0x0a };
/* CONNECT [fd00::7]:443 */
static const uint8_t REQ_IPV6[] = { 0x05, 0x01, 0x00, 0x04, 0xfd, 0x00, 0, 0, 0, 0, 0, 0,
                                    0,    0,    0,    0,    0,    0,    0, 7, 0x01, 0xbb };
/* CONNECT node-1:10250 */
static const uint8_t REQ_DOMAIN[] = { 0x05, 0x01, 0x00, 0x03, 6, 'n', 'o', 'd', 'e', '-', '1', 0x28, 0x0a };

static void test_greeting_no_auth(void **state) {
        uint8_t method = 0x42;

        (void) state;
        assert_int_equal(socks_greeting_parse(GREETING_NOAUTH, sizeof(GREETING_NOAUTH), &method), 3);
        assert_int_equal(method, SOCKS_METHOD_NO_AUTH);
}

static void test_greeting_no_auth_among_others(void **state) {
        /* GSSAPI, username/password, then no authentication */
        static const uint8_t g[] = { 0x05, 0x03, 0x01, 0x02, 0x00 };
        uint8_t method = 0x42;

        (void) state;
        assert_int_equal(socks_greeting_parse(g, sizeof(g), &method), 5);
        assert_int_equal(method, SOCKS_METHOD_NO_AUTH);
}

static void test_greeting_without_method_0(void **state) {
        /* username/password only: nothing we can accept */
        static const uint8_t g[] = { 0x05, 0x01, 0x02 };
        static const uint8_t g2[] = { 0x05, 0x02, 0x01, 0x02 };
        uint8_t method = 0x42;

        (void) state;
        assert_int_equal(socks_greeting_parse(g, sizeof(g), &method), 3);
        assert_int_equal(method, SOCKS_METHOD_NONE_ACCEPTABLE);
        method = 0x42;
        assert_int_equal(socks_greeting_parse(g2, sizeof(g2), &method), 4);
        assert_int_equal(method, SOCKS_METHOD_NONE_ACCEPTABLE);
}

static void test_greeting_255_methods(void **state) {
        uint8_t g[2 + 255];
        uint8_t method = 0x42;

        (void) state;
        g[0] = 0x05;
        g[1] = 255;
        for (size_t i = 0; i < 255; i++)
                g[2 + i] = (uint8_t) (i + 1); /* 0x01..0xff: no 0x00 */
        assert_int_equal(socks_greeting_parse(g, sizeof(g), &method), (int) SOCKS_GREETING_MAX);
        assert_int_equal(method, SOCKS_METHOD_NONE_ACCEPTABLE);
        g[2 + 254] = 0x00; /* the last one offered */
        assert_int_equal(socks_greeting_parse(g, sizeof(g), &method), (int) SOCKS_GREETING_MAX);
        assert_int_equal(method, SOCKS_METHOD_NO_AUTH);
}

static void test_greeting_byte_by_byte(void **state) {
        static const uint8_t g[] = { 0x05, 0x02, 0x02, 0x00 };
        uint8_t method = 0x42;

        (void) state;
        for (size_t i = 0; i < sizeof(g); i++) {
                assert_int_equal(socks_greeting_parse(g, i, &method), 0);
                assert_int_equal(method, 0x42); /* untouched until complete */
        }
        assert_int_equal(socks_greeting_parse(g, sizeof(g), &method), 4);
        assert_int_equal(method, SOCKS_METHOD_NO_AUTH);
}

static void test_greeting_request_pipelined(void **state) {
        /* greeting and request in one write: the greeting's length stops
         * before the request */
        uint8_t buf[sizeof(GREETING_NOAUTH) + sizeof(REQ_IPV4)];
        uint8_t method;

        (void) state;
        memcpy(buf, GREETING_NOAUTH, sizeof(GREETING_NOAUTH));
        memcpy(buf + sizeof(GREETING_NOAUTH), REQ_IPV4, sizeof(REQ_IPV4));
        assert_int_equal(socks_greeting_parse(buf, sizeof(buf), &method), (int) sizeof(GREETING_NOAUTH));
}

static void test_greeting_malformed(void **state) {
        static const uint8_t v4[] = { 0x04, 0x01, 0x00, 0x50 };
        static const uint8_t http[] = "CONNECT";
        static const uint8_t zero[] = { 0x05, 0x00 };
        uint8_t method = 0x42;

        (void) state;
        /* wrong version: known from the first byte */
        assert_int_equal(socks_greeting_parse(v4, 1, &method), -EBADMSG);
        assert_int_equal(socks_greeting_parse(v4, sizeof(v4), &method), -EBADMSG);
        assert_int_equal(socks_greeting_parse(http, sizeof(http) - 1, &method), -EBADMSG);
        /* no methods at all */
        assert_int_equal(socks_greeting_parse(zero, sizeof(zero), &method), -EBADMSG);
        assert_int_equal(method, 0x42);
}

static void test_request_ipv4(void **state) {
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(REQ_IPV4, sizeof(REQ_IPV4), &req), (int) sizeof(REQ_IPV4));
        assert_int_equal(req.atyp, SOCKS_ATYP_IPV4);
        assert_string_equal(req.host, "10.0.0.7");
        assert_int_equal(req.port, 10250);
}

static void test_request_ipv6(void **state) {
        /* the full form of ::ffff:192.0.2.1 and ::1 */
        static const uint8_t mapped[] = { 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1, 0, 80 };
        static const uint8_t loop[] = { 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff };
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(REQ_IPV6, sizeof(REQ_IPV6), &req), (int) sizeof(REQ_IPV6));
        assert_int_equal(req.atyp, SOCKS_ATYP_IPV6);
        /* canonical text (RFC 5952), no brackets */
        assert_string_equal(req.host, "fd00::7");
        assert_int_equal(req.port, 443);

        assert_int_equal(socks_request_parse(mapped, sizeof(mapped), &req), 22);
        assert_string_equal(req.host, "::ffff:192.0.2.1");
        assert_int_equal(req.port, 80);
        assert_int_equal(socks_request_parse(loop, sizeof(loop), &req), 22);
        assert_string_equal(req.host, "::1");
        assert_int_equal(req.port, 65535);
}

static void test_request_domain(void **state) {
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(REQ_DOMAIN, sizeof(REQ_DOMAIN), &req), (int) sizeof(REQ_DOMAIN));
        assert_int_equal(req.atyp, SOCKS_ATYP_DOMAIN);
        assert_string_equal(req.host, "node-1");
        assert_int_equal(req.port, 10250);
}

static void test_request_domain_255(void **state) {
        uint8_t buf[SOCKS_REQUEST_MAX];
        SocksRequest req;

        (void) state;
        memcpy(buf, (const uint8_t[]) { 5, 1, 0, 3, 255 }, 5);
        memset(buf + 5, 'a', 255);
        buf[5 + 255] = 0x01;
        buf[5 + 256] = 0xbb;
        assert_int_equal(socks_request_parse(buf, sizeof(buf), &req), (int) SOCKS_REQUEST_MAX);
        assert_int_equal(strlen(req.host), 255);
        assert_int_equal(req.host[0], 'a');
        assert_int_equal(req.port, 443);
}

static void feed_byte_by_byte(const uint8_t *req_bytes, size_t len, const char *host, uint16_t port) {
        SocksRequest req;

        for (size_t i = 0; i < len; i++) {
                memset(&req, 0x5a, sizeof(req));
                assert_int_equal(socks_request_parse(req_bytes, i, &req), 0);
                assert_int_equal(req.port, 0x5a5a); /* untouched until complete */
        }
        assert_int_equal(socks_request_parse(req_bytes, len, &req), (int) len);
        assert_string_equal(req.host, host);
        assert_int_equal(req.port, port);
}

static void test_request_byte_by_byte(void **state) {
        (void) state;
        feed_byte_by_byte(REQ_IPV4, sizeof(REQ_IPV4), "10.0.0.7", 10250);
        feed_byte_by_byte(REQ_IPV6, sizeof(REQ_IPV6), "fd00::7", 443);
        feed_byte_by_byte(REQ_DOMAIN, sizeof(REQ_DOMAIN), "node-1", 10250);
}

static void test_request_early_data_stays(void **state) {
        /* a TLS ClientHello right behind the request is the tunnel's */
        uint8_t buf[sizeof(REQ_DOMAIN) + 5];
        SocksRequest req;

        (void) state;
        memcpy(buf, REQ_DOMAIN, sizeof(REQ_DOMAIN));
        memcpy(buf + sizeof(REQ_DOMAIN), (const uint8_t[]) { 0x16, 0x03, 0x01, 0x02, 0x00 }, 5);
        assert_int_equal(socks_request_parse(buf, sizeof(buf), &req), (int) sizeof(REQ_DOMAIN));
        assert_string_equal(req.host, "node-1");
        assert_int_equal(buf[sizeof(REQ_DOMAIN)], 0x16);
}

static void test_request_bad_version(void **state) {
        static const uint8_t r[] = { 0x04, 0x01, 0x00, 0x01, 10, 0, 0, 7, 0, 80 };
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(r, 1, &req), -EBADMSG);
        assert_int_equal(socks_request_parse(r, sizeof(r), &req), -EBADMSG);
}

static void test_request_bad_rsv(void **state) {
        static const uint8_t r[] = { 0x05, 0x01, 0x01, 0x01, 10, 0, 0, 7, 0, 80 };
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(r, 2, &req), 0);
        assert_int_equal(socks_request_parse(r, 3, &req), -EBADMSG);
        assert_int_equal(socks_request_parse(r, sizeof(r), &req), -EBADMSG);
}

static void test_request_bad_atyp(void **state) {
        SocksRequest req;

        (void) state;
        for (unsigned atyp = 0; atyp < 256; atyp++) {
                uint8_t r[] = { 0x05, 0x01, 0x00, (uint8_t) atyp, 10, 'a', 'b', 'c', 0, 80 };
                int k = socks_request_parse(r, sizeof(r), &req);
                if (atyp == SOCKS_ATYP_IPV4) {
                        assert_int_equal(k, 10);
                        assert_string_equal(req.host, "10.97.98.99");
                } else if (atyp == SOCKS_ATYP_DOMAIN)
                        /* a 10-byte name, then the NUL in it */
                        assert_int_equal(k, -EBADMSG);
                else if (atyp == SOCKS_ATYP_IPV6)
                        /* a longer address: not complete yet */
                        assert_int_equal(k, 0);
                else {
                        assert_int_equal(k, -EAFNOSUPPORT);
                        /* known as soon as ATYP arrives */
                        assert_int_equal(socks_request_parse(r, 4, &req), -EAFNOSUPPORT);
                }
        }
}

static void test_request_commands(void **state) {
        SocksRequest req;

        (void) state;
        /* BIND (2), UDP ASSOCIATE (3) and unassigned commands */
        for (unsigned cmd = 0; cmd < 256; cmd++) {
                uint8_t r[] = { 0x05, (uint8_t) cmd, 0x00, 0x01, 10, 0, 0, 7, 0, 80 };
                int k = socks_request_parse(r, sizeof(r), &req);
                if (cmd == SOCKS_CMD_CONNECT)
                        assert_int_equal(k, 10);
                else {
                        assert_int_equal(k, -EOPNOTSUPP);
                        assert_int_equal(socks_request_parse(r, 2, &req), -EOPNOTSUPP);
                }
        }
}

static void test_request_empty_domain(void **state) {
        static const uint8_t r[] = { 0x05, 0x01, 0x00, 0x03, 0, 0x00, 0x50 };
        SocksRequest req;

        (void) state;
        assert_int_equal(socks_request_parse(r, 4, &req), 0);
        assert_int_equal(socks_request_parse(r, 5, &req), -EBADMSG);
        assert_int_equal(socks_request_parse(r, sizeof(r), &req), -EBADMSG);
}

static void test_request_domain_control_characters(void **state) {
        static const uint8_t bad[] = { 0x00, '\n', '\r', ' ', 0x7f, 0x1b };
        SocksRequest req;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t r[] = { 0x05, 0x01, 0x00, 0x03, 5, 'n', 'o', 'd', 'e', 'x', 0x00, 0x50 };
                r[8] = bad[i];
                /* refused as soon as the byte arrives */
                assert_int_equal(socks_request_parse(r, 9, &req), -EBADMSG);
                assert_int_equal(socks_request_parse(r, sizeof(r), &req), -EBADMSG);
        }
}

static void test_method_reply(void **state) {
        uint8_t m[SOCKS_METHOD_REPLY_LEN];

        (void) state;
        socks_method_reply_format(SOCKS_METHOD_NO_AUTH, m);
        assert_memory_equal(m, ((const uint8_t[]) { 0x05, 0x00 }), 2);
        socks_method_reply_format(SOCKS_METHOD_NONE_ACCEPTABLE, m);
        assert_memory_equal(m, ((const uint8_t[]) { 0x05, 0xff }), 2);
}

static void test_reply_bytes(void **state) {
        uint8_t r[SOCKS_REPLY_LEN];

        (void) state;
        memset(r, 0xee, sizeof(r));
        socks_reply_format(SOCKS_REP_SUCCEEDED, r);
        assert_memory_equal(r, ((const uint8_t[]) { 0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }), 10);
        socks_reply_format(SOCKS_REP_CONNECTION_REFUSED, r);
        assert_memory_equal(r, ((const uint8_t[]) { 0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }), 10);
}

static void test_reply_for_outcome(void **state) {
        (void) state;
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_OK), 0x00);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_MALFORMED), 0x01);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_BAD_ADDRESS_TYPE), 0x08);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_NOT_CONNECT), 0x07);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_HEAD_TOO_LARGE), 0x01);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_HEAD_TIMEOUT), -1);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_DENIED), 0x02);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_PROHIBITED), 0x02);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_REFUSED), 0x05);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_UNAVAILABLE), 0x01);
        assert_int_equal(socks_reply_for_outcome(PROXY_OUTCOME_OPEN_TIMEOUT), 0x04);
}

static void test_reply_to_string(void **state) {
        (void) state;
        assert_string_equal(socks_reply_to_string(0x00), "succeeded");
        assert_string_equal(socks_reply_to_string(0x02), "connection not allowed by ruleset");
        assert_string_equal(socks_reply_to_string(0x05), "connection refused");
        assert_string_equal(socks_reply_to_string(0x08), "address type not supported");
        assert_string_equal(socks_reply_to_string(0x09), "unassigned");
        assert_string_equal(socks_reply_to_string(0xff), "unassigned");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_greeting_no_auth),
                cmocka_unit_test(test_greeting_no_auth_among_others),
                cmocka_unit_test(test_greeting_without_method_0),
                cmocka_unit_test(test_greeting_255_methods),
                cmocka_unit_test(test_greeting_byte_by_byte),
                cmocka_unit_test(test_greeting_request_pipelined),
                cmocka_unit_test(test_greeting_malformed),
                cmocka_unit_test(test_request_ipv4),
                cmocka_unit_test(test_request_ipv6),
                cmocka_unit_test(test_request_domain),
                cmocka_unit_test(test_request_domain_255),
                cmocka_unit_test(test_request_byte_by_byte),
                cmocka_unit_test(test_request_early_data_stays),
                cmocka_unit_test(test_request_bad_version),
                cmocka_unit_test(test_request_bad_rsv),
                cmocka_unit_test(test_request_bad_atyp),
                cmocka_unit_test(test_request_commands),
                cmocka_unit_test(test_request_empty_domain),
                cmocka_unit_test(test_request_domain_control_characters),
                cmocka_unit_test(test_method_reply),
                cmocka_unit_test(test_reply_bytes),
                cmocka_unit_test(test_reply_for_outcome),
                cmocka_unit_test(test_reply_to_string),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
