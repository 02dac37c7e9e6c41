/* sshtunctl's tables: layout with and without the header line, colours,
 * what a cell may not print; the LAST ERROR column's short reasons, derived
 * from the daemon's own error texts and never over TABLE_REASON_MAX
 * characters; and the column formatters (ages, addresses, timestamps). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* 2026-11-29T15:45:10.123456Z */
#define SINCE ((usec_t) 1795967110 * USEC_PER_SEC + 123456)

static size_t chars(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

static char *format(Table *t) {
        char *text = NULL;

        assert_int_equal(table_format(t, false, &text), 0);
        return text;
}

static void test_layout_and_no_header(void **state) {
        static const char *const headers[] = { "NODE", "STATE", "LAST ERROR" };
        Table *t = NULL;
        char *text;

        assert_int_equal(table_new(headers, 3, &t), 0);
        assert_int_equal(table_add_cell(t, "n1", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "up", TABLE_COLOR_GREEN), 0);
        assert_int_equal(table_add_cell(t, NULL, TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "node-22", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "backoff", TABLE_COLOR_YELLOW), 0);
        assert_int_equal(table_add_cell(t, "connection\033refused", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_n_rows(t), 2);

        text = format(t);
        assert_string_equal(text, "NODE      STATE     LAST ERROR\n"
                                  "n1        up        -\n"
                                  "node-22   backoff   connection?refused\n");
        free(text);

        /* --no-headers: the rows alone, as wide as they need */
        table_set_header(t, false);
        text = format(t);
        assert_string_equal(text, "n1        up        -\n"
                                  "node-22   backoff   connection?refused\n");
        free(text);
        table_set_header(t, true);
        text = format(t);
        assert_true(strncmp(text, "NODE ", 5) == 0);
        free(text);
        table_free(t);

        /* no rows and no header: nothing at all */
        assert_int_equal(table_new(headers, 3, &t), 0);
        table_set_header(t, false);
        text = format(t);
        assert_string_equal(text, "");
        free(text);
        table_free(t);
}

static void test_no_header_widths_from_rows(void **state) {
        static const char *const headers[] = { "SESSIONS", "X" };
        Table *t = NULL;
        char *text;

        assert_int_equal(table_new(headers, 2, &t), 0);
        table_set_header(t, false);
        assert_int_equal(table_add_cell(t, "1/1", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "y", TABLE_COLOR_NONE), 0);
        text = format(t);
        assert_string_equal(text, "1/1   y\n");
        free(text);
        table_free(t);
}

static void test_ellipsize(void **state) {
        char buf[TABLE_REASON_SIZE];

        assert_null(table_ellipsize(NULL, 40, buf, sizeof(buf)));
        assert_string_equal(table_ellipsize("short", 40, buf, sizeof(buf)), "short");
        assert_string_equal(table_ellipsize("exactly ten", 11, buf, sizeof(buf)), "exactly ten");
        assert_string_equal(table_ellipsize("one two three", 10, buf, sizeof(buf)), "one two...");
        /* no dangling separator before the dots */
        assert_string_equal(table_ellipsize("abcdef: ghijkl", 10, buf, sizeof(buf)), "abcdef...");
        /* whole characters only: "é" is two bytes, one character */
        assert_string_equal(table_ellipsize("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5, buf,
                                            sizeof(buf)),
                            "\xc3\xa9\xc3\xa9...");
        assert_string_equal(table_ellipsize("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5, buf, sizeof(buf)),
                            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
        /* a small buffer cuts at a character boundary too */
        char small[8];
        assert_string_equal(table_ellipsize("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 40, small,
                                            sizeof(small)),
                            "\xc3\xa9\xc3\xa9...");
        assert_string_equal(table_ellipsize("a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 40, small, sizeof(small)),
                            "a\xc3\xa9...");
}

/* Texts as the daemon writes them (session.c, probe.c), and what the
 * table shows for them. */
static const struct {
        const char *state, *error, *reason;
} reason_cases[] = {
        { "hostkey-unknown",
          "host key ssh-ed25519 SHA256:PewRRgfsj1PAUQ8VnjXObqM6UZenmzk6FwMt7WR5NZ8 is not in "
          "/etc/sshtund/known_hosts (get its line with `sshtunctl hostkeys scan n2`, compare the fingerprint "
          "with ssh-keygen -lf on the node, then add the line)",
          "host key unknown" },
        { "hostkey-unknown", NULL, "host key unknown" },
        { "hostkey-unknown",
          "cannot record host key ssh-ed25519 SHA256:x in /etc/sshtund/known_hosts: Permission denied",
          "cannot record host key" },
        { "hostkey-mismatch",
          "HOST KEY MISMATCH: the node presented ssh-ed25519 SHA256:x, which is not the key "
          "/etc/sshtund/known_hosts holds for it",
          "host key mismatch" },
        { "hostkey-mismatch", "host key ssh-ed25519 SHA256:x is revoked in /etc/sshtund/known_hosts",
          "host key revoked" },
        { "auth-failed", "public key authentication as \"sshtund\" refused (key ssh-ed25519 SHA256:x)",
          "auth refused" },
        { "backoff", "connect to 127.0.0.1:22: Connection refused", "connection refused" },
        { "backoff", "connect to [fd00::7]:22: No route to host", "no route to host" },
        { "backoff", "connect to 10.0.0.7:22: Network is unreachable", "network unreachable" },
        { "backoff", "connect to 10.0.0.7:22: Connection timed out", "timed out" },
        { "backoff", "no SSH session within connect_timeout (10.0 s) while handshaking",
          "timed out while handshaking" },
        { "backoff", "no SSH session within connect_timeout (2.5 s) while connecting",
          "timed out while connecting" },
        { "backoff", "no answer from the node to 3 liveness checks in 15.0 s", "no answer to liveness checks" },
        { "backoff", "cannot resolve n1.example: Name or service not known", "DNS: name not found" },
        { "backoff", "cannot resolve n1.example: Temporary failure in name resolution",
          "DNS: temporary failure" },
        { "backoff", "cannot resolve n1.example: Servname not supported for ai_socktype",
          "DNS: servname not supported for ai_so..." },
        { "backoff", "n1.example has no IPv4 or IPv6 address", "DNS: no IPv4 or IPv6 address" },
        { "backoff", "connection closed during key exchange (Unable to exchange encryption keys)",
          "closed during key exchange" },
        { "backoff", "key exchange failed: Unable to exchange encryption keys", "key exchange failed" },
        { "backoff", "connection closed during authentication (Failed getting banner)",
          "closed during authentication" },
        { "backoff", "connection closed by the node", "closed by the node" },
        { "backoff", "connection lost: Connection reset by peer", "connection reset" },
        { "backoff", "send to the node: Broken pipe", "broken pipe" },
        { "backoff", "SSH error -7: Unable to send FIN", "unable to send FIN" },
        /* probes, as the node table writes them for a degraded node */
        { "degraded", "probe: HTTP 500 Internal Server Error", "probe: HTTP 500 Internal Server Error" },
        { "degraded", "probe: HTTP 500 Internal Server Error: currently no tunnels available: dial 10.0.0.7",
          "probe: HTTP 500 Internal Server Error" },
        { "degraded", "HTTP 401 Unauthorized", "HTTP 401 Unauthorized" },
        { "degraded", "probe: cannot connect to 127.0.0.1:10248 from the node: connect failed",
          "probe: connect failed" },
        { "degraded", "probe: timeout after 5 s", "probe: timed out" },
        { "degraded", "probe: certificate verify failed: unable to get local issuer certificate",
          "probe: certificate verify failed" },
        { "degraded", "probe: response head too large (over 8192 bytes)", "probe: response head too large" },
        /* nothing to say */
        { "up", NULL, NULL },
        { "backoff", "", NULL },
        { NULL, NULL, NULL },
};

static void test_reasons(void **state) {
        for (size_t i = 0; i < sizeof(reason_cases) / sizeof(reason_cases[0]); i++) {
                char buf[TABLE_REASON_SIZE];
                const char *r = table_format_reason(reason_cases[i].state, reason_cases[i].error, buf, sizeof(buf));

                if (!reason_cases[i].reason) {
                        assert_null(r);
                        continue;
                }
                assert_non_null(r);
                assert_string_equal(r, reason_cases[i].reason);
                assert_true(chars(r) <= TABLE_REASON_MAX);
        }
}

static void test_reason_is_bounded(void **state) {
        char error[512], buf[TABLE_REASON_SIZE];
        const char *r;

        /* 200 characters and no phrase known: cut, with the dots */
        memset(error, 'x', 200);
        error[200] = 0;
        r = table_format_reason("backoff", error, buf, sizeof(buf));
        assert_int_equal(chars(r), TABLE_REASON_MAX);
        assert_true(strcmp(r + strlen(r) - 3, "...") == 0);

        /* multi-byte characters count as one each */
        for (size_t i = 0; i + 3 < sizeof(error); i += 3)
                memcpy(error + i, "\xe2\x82\xac", 3), error[i + 3] = 0;
        r = table_format_reason("backoff", error, buf, sizeof(buf));
        assert_int_equal(chars(r), TABLE_REASON_MAX);

        /* a long probe error keeps its prefix */
        snprintf(error, sizeof(error), "probe: %0200d", 7);
        r = table_format_reason("degraded", error, buf, sizeof(buf));
        assert_true(strncmp(r, "probe: ", 7) == 0);
        assert_true(chars(r) <= TABLE_REASON_MAX);

        /* "(hint" without its closing parenthesis, and a colon at the end */
        r = table_format_reason("backoff", "something odd (see", buf, sizeof(buf));
        assert_string_equal(r, "something odd (see");
        r = table_format_reason("backoff", "trailing: ", buf, sizeof(buf));
        assert_non_null(r);
        assert_true(chars(r) <= TABLE_REASON_MAX);
}

static void test_table_layout(void **state) {
        static const char *const headers[] = { "NODE", "STATE", "LAST ERROR" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;

        assert_int_equal(table_new(headers, 3, &t), 0);
        assert_int_equal(table_add_cell(t, "node-1", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "up", TABLE_COLOR_GREEN), 0);
        assert_int_equal(table_add_cell(t, NULL, TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "a-much-longer-name", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "hostkey-mismatch", TABLE_COLOR_RED), 0);
        assert_int_equal(table_add_cell(t, "host key changed", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_n_rows(t), 2);

        assert_int_equal(table_format(t, false, &text), 0);
        assert_string_equal(text, "NODE                 STATE              LAST ERROR\n"
                                  "node-1               up                 -\n"
                                  "a-much-longer-name   hostkey-mismatch   host key changed\n");
}

static void test_table_color(void **state) {
        static const char *const headers[] = { "STATE", "X" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;

        assert_int_equal(table_new(headers, 2, &t), 0);
        assert_int_equal(table_add_cell(t, "up", TABLE_COLOR_GREEN), 0);
        assert_int_equal(table_add_cell(t, "1", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "backoff", TABLE_COLOR_YELLOW), 0);
        assert_int_equal(table_add_cell(t, "2", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_format(t, true, &text), 0);
        /* escapes do not count as width */
        assert_string_equal(text, "STATE     X\n"
                                  "\033[32mup\033[0m        1\n"
                                  "\033[33mbackoff\033[0m   2\n");
}

static void test_table_sanitises(void **state) {
        static const char *const headers[] = { "A", "B" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL, *escaped = NULL;

        assert_int_equal(table_new(headers, 2, &t), 0);
        /* a terminal escape, a C1 CSI, a newline; "é" and "ü" are one column each */
        assert_int_equal(table_add_cell(t, "x\033[2Jy\xc2\x9bz\n", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "1", TABLE_COLOR_NONE), 0);
        assert_int_equal(table_add_cell(t, "\xc3\xa9\xc3\xbc", TABLE_COLOR_NONE), 0);
        /* a partial row is completed */
        assert_int_equal(table_format(t, false, &text), 0);
        assert_string_equal(text, "A            B\n"
                                  "x?[2Jy??z?   1\n"
                                  "\xc3\xa9\xc3\xbc           -\n");
        escaped = table_escape("a\tb");
        assert_string_equal(escaped, "a?b");
}

static void test_table_age(void **state) {
        static const struct {
                int64_t s;
                const char *want;
        } cases[] = {
                { -5, "<invalid>" },
                { -1, "0s" },
                { 0, "0s" },
                { 45, "45s" },
                { 119, "119s" },
                { 150, "2m30s" },
                { 180, "3m" },
                { 12 * 60 + 5, "12m" },
                { 3 * 3600, "3h" },
                { 3 * 3600 + 20 * 60, "3h20m" },
                { 20 * 3600, "20h" },
                { 2 * 86400, "2d" },
                { 2 * 86400 + 5 * 3600, "2d5h" },
                { 30 * 86400, "30d" },
                { 800 * 86400, "2y70d" },
                { 3650 * 86400, "10y" },
        };
        char buf[TABLE_AGE_MAX];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_string_equal(table_format_age(cases[i].s, buf, sizeof(buf)), cases[i].want);
}

static void test_table_address(void **state) {
        static const struct {
                const char *address;
                unsigned port;
                const char *want;
        } cases[] = {
                { "10.0.0.1", 22, "10.0.0.1" },
                { "10.0.0.1", 2222, "10.0.0.1:2222" },
                { "node.example", 2200, "node.example:2200" },
                { "fd00::1", 22, "fd00::1" },
                { "fd00::1", 2222, "[fd00::1]:2222" },
                { NULL, 2222, "-" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = table_format_address(cases[i].address, cases[i].port);
                assert_string_equal(s, cases[i].want);
        }
}

static void test_table_timestamp(void **state) {
        usec_t t;

        assert_int_equal(table_parse_timestamp("2026-11-29T15:45:10.123Z", &t), 0);
        assert_int_equal(t, SINCE / USEC_PER_MSEC * USEC_PER_MSEC);
        assert_int_equal(table_parse_timestamp("2026-11-29T15:45:10Z", &t), 0);
        assert_int_equal(t, (usec_t) 1795967110 * USEC_PER_SEC);
        assert_int_equal(table_parse_timestamp("2026-11-29T17:45:10.1234567+02:00", &t), 0);
        assert_int_equal(t, (usec_t) 1795967110 * USEC_PER_SEC + 123456);
        assert_int_equal(table_parse_timestamp("2024-02-29T00:00:00Z", &t), 0);

        static const char *const bad[] = {
                "", "2026-11-29", "2026-11-29T15:45:10", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
                "2026-11-29T24:00:00Z", "2026-11-29T15:45:10.Z", "2026-11-29T15:45:10Zjunk",
                "1969-12-31T23:59:59Z", "2026-11-29T15:45:10+0200", "26-11-29T15:45:10Z",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(table_parse_timestamp(bad[i], &t), -EINVAL);
        assert_int_equal(table_parse_timestamp(NULL, &t), -EINVAL);
}

static void test_table_state_color(void **state) {
        assert_int_equal(table_state_color("up"), TABLE_COLOR_GREEN);
        static const char *const yellow[] = { "degraded", "draining", "connecting", "handshaking",
                                              "authenticating", "backoff" };
        for (size_t i = 0; i < ELEMENTSOF(yellow); i++)
                assert_int_equal(table_state_color(yellow[i]), TABLE_COLOR_YELLOW);
        assert_int_equal(table_state_color("hostkey-unknown"), TABLE_COLOR_RED);
        assert_int_equal(table_state_color("hostkey-mismatch"), TABLE_COLOR_RED);
        assert_int_equal(table_state_color("auth-failed"), TABLE_COLOR_RED);
        assert_int_equal(table_state_color("disabled"), TABLE_COLOR_NONE);
        assert_int_equal(table_state_color(NULL), TABLE_COLOR_NONE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout_and_no_header),
                cmocka_unit_test(test_no_header_widths_from_rows),
                cmocka_unit_test(test_ellipsize),
                cmocka_unit_test(test_reasons),
                cmocka_unit_test(test_reason_is_bounded),
                cmocka_unit_test(test_table_layout),
                cmocka_unit_test(test_table_color),
                cmocka_unit_test(test_table_sanitises),
                cmocka_unit_test(test_table_age),
                cmocka_unit_test(test_table_address),
                cmocka_unit_test(test_table_timestamp),
                cmocka_unit_test(test_table_state_color),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
