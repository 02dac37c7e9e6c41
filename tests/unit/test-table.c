/* sshtunctl's tables: layout with and without the header line, and the
 * LAST ERROR column's short reasons, derived from the daemon's own error
 * texts and never over TABLE_REASON_MAX characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

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
} cases[] = {
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
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[TABLE_REASON_SIZE];
                const char *r = table_format_reason(cases[i].state, cases[i].error, buf, sizeof(buf));

                if (!cases[i].reason) {
                        assert_null(r);
                        continue;
                }
                assert_non_null(r);
                assert_string_equal(r, cases[i].reason);
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout_and_no_header),
                cmocka_unit_test(test_no_header_widths_from_rows),
                cmocka_unit_test(test_ellipsize),
                cmocka_unit_test(test_reasons),
                cmocka_unit_test(test_reason_is_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
