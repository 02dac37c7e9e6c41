/* Tests for the pure parts of the kubelet probe: the response-head parser
 * (http.c), the verdict on what the kubelet answered, and the request. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "macro.h"
#include "probe.h"

/* What Go's net/http (the kubelet) sends for /healthz. */
static const char KUBELET_OK[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "X-Content-Type-Options: nosniff\r\n"
                                 "Date: Sun, 29 Nov 2026 15:45:10 GMT\r\n"
                                 "Content-Length: 2\r\n"
                                 "Connection: close\r\n"
                                 "\r\n"
                                 "ok";

static const char KUBELET_500[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 47\r\n"
                                  "\r\n"
                                  "[-]syncloop failed: reason withheld\nhealthz check failed\n";

static ProbeVerdict verdict(const char *s, size_t len, bool eof, char *error) {
        return probe_http_verdict(s, len, eof, error, 256);
}

static void test_response_parse(void **state) {
        HttpResponseHead h;
        size_t head = strlen(KUBELET_OK) - 2;

        (void) state;
        assert_int_equal(http_response_parse(KUBELET_OK, strlen(KUBELET_OK), 16384, &h), (int) head);
        assert_int_equal(h.version_minor, 1);
        assert_int_equal(h.status, 200);
        assert_string_equal(h.reason, "OK");

        assert_true(http_response_parse(KUBELET_500, strlen(KUBELET_500), 16384, &h) > 0);
        assert_int_equal(h.status, 500);
        assert_string_equal(h.reason, "Internal Server Error");

        /* every proper prefix is "read more", never an error */
        for (size_t i = 0; i < head; i++) {
                h.status = -1;
                assert_int_equal(http_response_parse(KUBELET_OK, i, 16384, &h), 0);
                assert_int_equal(h.status, -1); /* untouched */
        }
        assert_int_equal(http_response_parse(NULL, 0, 16384, &h), 0);
}

static void test_response_parse_lenient(void **state) {
        HttpResponseHead h;

        (void) state;
        /* bare LF, HTTP/1.0, no reason at all, obs-fold, obs-text in the reason */
        assert_int_equal(http_response_parse("HTTP/1.0 204\n\n", 14, 1024, &h), 14);
        assert_int_equal(h.version_minor, 0);
        assert_int_equal(h.status, 204);
        assert_string_equal(h.reason, "");
        assert_int_equal(http_response_parse("HTTP/1.1 200 \r\n\r\n", 17, 1024, &h), 17);
        assert_string_equal(h.reason, "");
        assert_true(http_response_parse("HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n\r\n", 41, 1024, &h) > 0);
        assert_true(http_response_parse("HTTP/1.1 503 Service \xc3\xa9tat\r\n\r\n", 30, 1024, &h) > 0);
        assert_int_equal(h.status, 503);
        assert_string_equal(h.reason, "Service ??tat");
}

static void test_response_parse_bad(void **state) {
        static const char *const bad[] = {
                "HTTP/2 200 OK\r\n\r\n",
                "HTTP/1.1 200OK\r\n\r\n",
                "HTTP/1.1 20 OK\r\n\r\n",
                "HTTP/1.1 2000 OK\r\n\r\n",
                "HTTP/1.1 600 Odd\r\n\r\n",
                "HTTP/1.1 099 Odd\r\n\r\n",
                "http/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
                "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                "HTTP/1.1 200 O\x01K\r\n\r\n",
                "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        };
        HttpResponseHead h;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(http_response_parse(bad[i], strlen(bad[i]), 1024, &h), -EBADMSG);
        /* junk is junk before its first line ends: no waiting for the limit */
        assert_int_equal(http_response_parse("SSH-2.0-OpenSSH_9.2", 19, 1024, &h), -EBADMSG);
        assert_int_equal(http_response_parse("\x16\x03\x01", 3, 1024, &h), -EBADMSG);
        assert_int_equal(http_response_parse("HTTP/1", 6, 1024, &h), 0);
        /* a NUL inside a header */
        assert_int_equal(http_response_parse("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27, 1024, &h), -EBADMSG);
}

static void test_response_parse_limit(void **state) {
        _cleanup_free_ char *big = malloc(20000);
        HttpResponseHead h;
        size_t n;

        (void) state;
        assert_non_null(big);
        n = (size_t) sprintf(big, "HTTP/1.1 200 OK\r\n");
        while (n < 19000)
                n += (size_t) sprintf(big + n, "X-Filler: %s\r\n", "0123456789abcdef0123456789abcdef");
        n += (size_t) sprintf(big + n, "\r\n");
        assert_int_equal(http_response_parse(big, n, 16384, &h), -EMSGSIZE);
        assert_int_equal(http_response_parse(big, 16384, 16384, &h), -EMSGSIZE);
        assert_int_equal(http_response_parse(big, 16383, 16384, &h), 0);
        assert_int_equal(http_response_parse(big, n, n, &h), (int) n);
        /* a status line longer than the limit */
        memset(big, 'x', 20000);
        memcpy(big, "HTTP/1.1 200 ", 13);
        assert_int_equal(http_response_parse(big, 20000, 16384, &h), -EMSGSIZE);
}

static void test_verdict(void **state) {
        char error[256];
        size_t len = strlen(KUBELET_OK);

        (void) state;
        assert_int_equal(verdict(KUBELET_OK, len, false, error), PROBE_VERDICT_PASS);
        assert_int_equal(verdict(KUBELET_OK, len, true, error), PROBE_VERDICT_PASS);
        /* a head in pieces */
        for (size_t i = 0; i < len - 2; i++)
                assert_int_equal(verdict(KUBELET_OK, i, false, error), PROBE_VERDICT_PENDING);

        assert_int_equal(verdict(KUBELET_500, strlen(KUBELET_500), false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 500 Internal Server Error");
        assert_int_equal(verdict("HTTP/1.1 404 Not Found\r\n\r\n", 26, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 404 Not Found");
        assert_int_equal(verdict("HTTP/1.1 301\r\nLocation: /x\r\n\r\n", 30, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 301");
        /* kubeadm's kubelets answer 401 on 10250 to anonymous callers */
        assert_int_equal(verdict("HTTP/1.1 401 Unauthorized\r\n\r\n", 29, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 401 Unauthorized");
        /* any 2xx */
        assert_int_equal(verdict("HTTP/1.0 204 No Content\r\n\r\n", 27, false, error), PROBE_VERDICT_PASS);
        assert_int_equal(verdict("HTTP/1.1 299 Odd\r\n\r\n", 20, false, error), PROBE_VERDICT_PASS);
}

static void test_verdict_interim(void **state) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n"
                                   "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                   "HTTP/1.1 200 OK\r\n\r\n";
        static const char cont_then_500[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\n\r\n";
        char error[256];

        (void) state;
        assert_int_equal(verdict(cont, strlen(cont), false, error), PROBE_VERDICT_PASS);
        /* the interim head alone is no answer */
        assert_int_equal(verdict(cont, 25, false, error), PROBE_VERDICT_PENDING);
        assert_int_equal(verdict(cont, 25, true, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "connection closed before a response");
        assert_int_equal(verdict(cont_then_500, strlen(cont_then_500), false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 500 Oops");
        /* 101 is final: the server wants another protocol */
        assert_int_equal(verdict("HTTP/1.1 101 Switching Protocols\r\n\r\n", 36, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 101 Switching Protocols");
}

static void test_verdict_eof(void **state) {
        char error[256];

        (void) state;
        assert_int_equal(verdict(NULL, 0, false, error), PROBE_VERDICT_PENDING);
        assert_int_equal(verdict(NULL, 0, true, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "connection closed before a response");
        assert_int_equal(verdict("HTTP/1.1 200 OK\r\nContent-", 26, true, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "connection closed in the middle of the response head");
        assert_int_equal(verdict("HTTP/1.1 20", 11, true, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "connection closed in the middle of the response head");
}

static void test_verdict_bad(void **state) {
        _cleanup_free_ char *big = malloc(PROBE_HEAD_MAX + 100);
        char error[256];
        size_t n;

        (void) state;
        /* TLS spoken to a plain HTTP probe, or an SSH banner */
        assert_int_equal(verdict("\x15\x03\x03\x00\x02\x02\x46", 7, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "not an HTTP/1.x response");
        assert_int_equal(verdict("SSH-2.0-OpenSSH_9.2\r\n", 21, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "not an HTTP/1.x response");

        /* 16 KiB of headers and no end: bounded */
        assert_non_null(big);
        n = (size_t) sprintf(big, "HTTP/1.1 200 OK\r\n");
        while (n < PROBE_HEAD_MAX + 50)
                n += (size_t) sprintf(big + n, "X: y\r\n");
        assert_int_equal(verdict(big, PROBE_HEAD_MAX - 1, false, error), PROBE_VERDICT_PENDING);
        assert_int_equal(verdict(big, PROBE_HEAD_MAX, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "response head too large (over 16384 bytes)");
        assert_int_equal(verdict(big, n, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "response head too large (over 16384 bytes)");

        /* the limit covers interim heads too */
        n = 0;
        while (n < PROBE_HEAD_MAX + 50)
                n += (size_t) sprintf(big + n, "HTTP/1.1 100 Continue\r\n\r\n");
        assert_int_equal(verdict(big, n, false, error), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "response head too large (over 16384 bytes)");

        /* a reason is cut to fit the caller's buffer */
        assert_int_equal(probe_http_verdict(KUBELET_500, strlen(KUBELET_500), false, error, 9), PROBE_VERDICT_FAIL);
        assert_string_equal(error, "HTTP 500");
}

static void test_request(void **state) {
        _cleanup_free_ char *r4 = probe_http_request("127.0.0.1", 10248, "/healthz");
        _cleanup_free_ char *r6 = probe_http_request("::1", 10250, "/livez?verbose");
        _cleanup_free_ char *rn = probe_http_request("node-1.example", 443, "/");

        (void) state;
        assert_string_equal(r4, "GET /healthz HTTP/1.1\r\n"
                                "Host: 127.0.0.1:10248\r\n"
                                "User-Agent: sshtund/" PACKAGE_VERSION "\r\n"
                                "Connection: close\r\n"
                                "\r\n");
        assert_non_null(strstr(r6, "GET /livez?verbose HTTP/1.1\r\nHost: [::1]:10250\r\n"));
        assert_non_null(strstr(rn, "Host: node-1.example:443\r\n"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_response_parse),
                cmocka_unit_test(test_response_parse_lenient),
                cmocka_unit_test(test_response_parse_bad),
                cmocka_unit_test(test_response_parse_limit),
                cmocka_unit_test(test_verdict),
                cmocka_unit_test(test_verdict_interim),
                cmocka_unit_test(test_verdict_eof),
                cmocka_unit_test(test_verdict_bad),
                cmocka_unit_test(test_request),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
