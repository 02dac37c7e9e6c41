/* Tests for http.c: the request heads kube-apiserver and curl send, feeding
 * byte by byte, every malformed and oversized case, and response bytes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);
#define _cleanup_request_ _cleanup_(http_request_freep)

static const char KUBE_HEAD[] = "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
static const char CURL_HEAD[] = "CONNECT node-1.example.com:10250 HTTP/1.1\r\n"
                                "Host: node-1.example.com:10250\r\n"
                                "User-Agent: curl/7.88.1\r\n"
                                "Proxy-Connection: Keep-Alive\r\n"
                                "\r\n";

static int parse_str(const char *s) {
        _cleanup_request_ HttpRequest *req = NULL;
        return http_request_parse(s, strlen(s), HTTP_HEAD_MAX, &req);
}

static void test_kube_apiserver_head(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;

        (void) state;
        assert_int_equal(http_request_parse(KUBE_HEAD, strlen(KUBE_HEAD), HTTP_HEAD_MAX, &req),
                         (int) strlen(KUBE_HEAD));
        assert_non_null(req);
        assert_string_equal(http_request_method(req), "CONNECT");
        assert_string_equal(http_request_target(req), "10.0.0.7:10250");
        assert_int_equal(http_request_version_minor(req), 1);
        assert_int_equal(http_request_n_headers(req), 1);
        assert_string_equal(http_request_header(req, "Host"), "127.0.0.1");
        assert_null(http_request_header(req, "User-Agent"));
}

static void test_curl_head(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;

        (void) state;
        assert_int_equal(http_request_parse(CURL_HEAD, strlen(CURL_HEAD), HTTP_HEAD_MAX, &req),
                         (int) strlen(CURL_HEAD));
        assert_string_equal(http_request_method(req), "CONNECT");
        assert_string_equal(http_request_target(req), "node-1.example.com:10250");
        assert_int_equal(http_request_n_headers(req), 3);
        assert_string_equal(http_request_header(req, "host"), "node-1.example.com:10250");
        assert_string_equal(http_request_header(req, "user-agent"), "curl/7.88.1");
        assert_string_equal(http_request_header(req, "PROXY-CONNECTION"), "Keep-Alive");
}

static void test_incremental(void **state) {
        const char *heads[] = { KUBE_HEAD, CURL_HEAD };

        (void) state;
        for (size_t h = 0; h < ELEMENTSOF(heads); h++) {
                size_t n = strlen(heads[h]);
                /* A buffer exactly as long as what has arrived, so reading past it trips ASan. */
                for (size_t len = 0; len < n; len++) {
                        HttpRequest *req = NULL;
                        char *b = malloc(len ? len : 1);
                        assert_non_null(b);
                        memcpy(b, heads[h], len);
                        assert_int_equal(http_request_parse(b, len, HTTP_HEAD_MAX, &req), 0);
                        assert_null(req);
                        free(b);
                }
                _cleanup_request_ HttpRequest *req = NULL;
                assert_int_equal(http_request_parse(heads[h], n, HTTP_HEAD_MAX, &req), (int) n);
                assert_string_equal(http_request_method(req), "CONNECT");
        }
}

static void test_trailing_bytes_not_consumed(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;
        const char tail[] = "\x16\x03\x01\n\r\0junk";
        char buf[256];
        size_t n = strlen(KUBE_HEAD);

        (void) state;
        /* What follows is tunnel data and may be anything, even what would be malformed. */
        memcpy(buf, KUBE_HEAD, n);
        memcpy(buf + n, tail, sizeof(tail));
        assert_int_equal(http_request_parse(buf, n + sizeof(tail), HTTP_HEAD_MAX, &req), (int) n);
        assert_string_equal(http_request_header(req, "Host"), "127.0.0.1");

        /* A body after an admin POST. */
        http_request_free(TAKE_PTR(req));
        const char post[] = "POST /v1/reload HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        assert_int_equal(http_request_parse(post, strlen(post), HTTP_HEAD_MAX, &req), (int) strlen(post) - 2);
        assert_string_equal(http_request_header(req, "content-length"), "2");
}

static void test_origin_form_and_http10(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;
        const char get[] = "GET /v1/status HTTP/1.1\r\n\r\n";
        const char old[] = "GET /v1/status?x=1 HTTP/1.0\r\nHost: a\r\n\r\n";

        (void) state;
        assert_int_equal(http_request_parse(get, strlen(get), HTTP_HEAD_MAX, &req), (int) strlen(get));
        assert_string_equal(http_request_method(req), "GET");
        assert_string_equal(http_request_target(req), "/v1/status");
        assert_int_equal(http_request_version_minor(req), 1);
        assert_int_equal(http_request_n_headers(req), 0);
        http_request_free(TAKE_PTR(req));

        assert_int_equal(http_request_parse(old, strlen(old), HTTP_HEAD_MAX, &req), (int) strlen(old));
        assert_string_equal(http_request_target(req), "/v1/status?x=1");
        assert_int_equal(http_request_version_minor(req), 0);
}

static void test_header_lookup(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;
        const char head[] = "GET / HTTP/1.1\r\n"
                            "X-Spaces: \t  padded value \t \r\n"
                            "X-Empty:\r\n"
                            "X-Blank:   \r\n"
                            "x-dup: first\r\n"
                            "X-Dup: second\r\n"
                            "X-Obs-Text: caf\xc3\xa9\r\n"
                            "\r\n";

        (void) state;
        assert_int_equal(http_request_parse(head, strlen(head), HTTP_HEAD_MAX, &req), (int) strlen(head));
        assert_int_equal(http_request_n_headers(req), 6);
        assert_string_equal(http_request_header(req, "x-spaces"), "padded value");
        assert_string_equal(http_request_header(req, "X-EMPTY"), "");
        assert_string_equal(http_request_header(req, "x-blank"), "");
        assert_string_equal(http_request_header(req, "X-DUP"), "first");
        assert_string_equal(http_request_header(req, "x-obs-text"), "caf\xc3\xa9");
        assert_null(http_request_header(req, "X-Spaces:"));
        assert_null(http_request_header(req, "X-Space"));
}

static void test_malformed(void **state) {
        static const char *bad[] = {
                "\r\n",                                          /* empty request */
                "\r\n\r\n",                                      /* empty lines first */
                "\n",                                            /* bare LF */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\nHost: a\n\n",  /* bare LFs */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\r\n\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\rHost: a\r\n\r\n", /* bare CR */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\rb\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\r\n\rX",
                "CONNECT 10.0.0.7:10250 HTTP/2.0\r\n\r\n",       /* versions */
                "CONNECT 10.0.0.7:10250 HTTP/1.2\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.10\r\n\r\n",
                "CONNECT 10.0.0.7:10250 http/1.1\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1 \r\n\r\n",
                "CONNECT 10.0.0.7:10250\r\n\r\n",                /* HTTP/0.9 style */
                "CONNECT  10.0.0.7:10250 HTTP/1.1\r\n\r\n",      /* two SPs */
                "CONNECT 10.0.0.7:10250  HTTP/1.1\r\n\r\n",
                " CONNECT 10.0.0.7:10250 HTTP/1.1\r\n\r\n",      /* empty method */
                "CONNECT\t10.0.0.7:10250 HTTP/1.1\r\n\r\n",
                "CON(NECT 10.0.0.7:10250 HTTP/1.1\r\n\r\n",      /* non-tchar in method */
                "ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n\r\n",          /* 17-char method */
                "GET /a\x7f HTTP/1.1\r\n\r\n",                   /* target: DEL */
                "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",                /* target: non-ASCII */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost : a\r\n\r\n", /* space before colon */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost\t: a\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost a\r\n\r\n",   /* no colon */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\n: a\r\n\r\n",      /* empty name */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHo\"st: a\r\n\r\n", /* non-tchar in name */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", /* obs-fold */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n",
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", /* CTL in value */
                "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                HttpRequest *req = NULL;
                int r = http_request_parse(bad[i], strlen(bad[i]), HTTP_HEAD_MAX, &req);
                if (r != -EBADMSG)
                        fail_msg("case %zu: got %d for \"%s\"", i, r, bad[i]);
                assert_null(req);
        }
}

static void test_nul_rejected(void **state) {
        const char line[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
        const char target[] = "GET /\0 HTTP/1.1\r\n\r\n";
        HttpRequest *req = NULL;

        (void) state;
        assert_int_equal(http_request_parse(line, sizeof(line) - 1, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_int_equal(http_request_parse(target, sizeof(target) - 1, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_null(req);
}

static void test_malformed_detected_early(void **state) {
        HttpRequest *req = NULL;

        (void) state;
        /* No need to wait for the rest of the head once a byte is wrong. */
        assert_int_equal(http_request_parse("\x16\x03", 2, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_int_equal(http_request_parse("G(", 2, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_int_equal(http_request_parse("GET / HTTP/2", 12, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_int_equal(http_request_parse("GET / HTTP/1.1\n", 15, HTTP_HEAD_MAX, &req), -EBADMSG);
        assert_int_equal(http_request_parse("GET / HTTP/1.1\r\n ", 17, HTTP_HEAD_MAX, &req), -EBADMSG);
        /* ... while a valid prefix is just incomplete. */
        assert_int_equal(http_request_parse("GET / HTTP/1", 12, HTTP_HEAD_MAX, &req), 0);
        assert_int_equal(http_request_parse("GET / HTTP/1.1\r", 15, HTTP_HEAD_MAX, &req), 0);
        assert_int_equal(http_request_parse("GET / HTTP/1.1\r\nX: y\r\n\r", 23, HTTP_HEAD_MAX, &req), 0);
        assert_int_equal(http_request_parse("", 0, HTTP_HEAD_MAX, &req), 0);
        assert_null(req);
}

static void test_method_lengths(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;
        const char ok[] = "ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n";

        (void) state;
        assert_int_equal(http_request_parse(ok, strlen(ok), HTTP_HEAD_MAX, &req), (int) strlen(ok));
        assert_string_equal(http_request_method(req), "ABCDEFGHIJKLMNOP");
        /* Method case is kept: "connect" is some other method, the caller decides. */
        assert_int_equal(parse_str("connect a:1 HTTP/1.1\r\n\r\n"), (int) strlen("connect a:1 HTTP/1.1\r\n\r\n"));
}

static char *make_head_with_header(size_t value_len, bool complete) {
        const char *prefix = "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nX-Big: ";
        size_t p = strlen(prefix);
        char *b = malloc(p + value_len + 5);

        assert_non_null(b);
        memcpy(b, prefix, p);
        memset(b + p, 'a', value_len);
        strcpy(b + p + value_len, complete ? "\r\n\r\n" : "");
        return b;
}

static void test_over_limit(void **state) {
        HttpRequest *req = NULL;
        char *b;

        (void) state;
        /* Complete, but 9000 bytes of header. */
        b = make_head_with_header(9000, true);
        assert_int_equal(http_request_parse(b, strlen(b), HTTP_HEAD_MAX, &req), -EMSGSIZE);
        free(b);

        /* Incomplete and already past the limit: no point reading more. */
        b = make_head_with_header(9000, false);
        assert_int_equal(http_request_parse(b, strlen(b), HTTP_HEAD_MAX, &req), -EMSGSIZE);
        assert_int_equal(http_request_parse(b, 8192, HTTP_HEAD_MAX, &req), -EMSGSIZE);
        assert_int_equal(http_request_parse(b, 8191, HTTP_HEAD_MAX, &req), 0);
        free(b);
        assert_null(req);

        /* A head of exactly 'limit' bytes fits; one more byte does not. */
        size_t kube = strlen(KUBE_HEAD);
        assert_int_equal(http_request_parse(KUBE_HEAD, kube, kube, &req), (int) kube);
        req = http_request_free(req);
        assert_int_equal(http_request_parse(KUBE_HEAD, kube, kube - 1, &req), -EMSGSIZE);
        assert_null(req);

        /* A long target counts as well. */
        char *t = malloc(9100);
        assert_non_null(t);
        memcpy(t, "GET /", 5);
        memset(t + 5, 'x', 9000);
        strcpy(t + 9005, " HTTP/1.1\r\n\r\n");
        assert_int_equal(http_request_parse(t, strlen(t), HTTP_HEAD_MAX, &req), -EMSGSIZE);
        assert_int_equal(http_request_parse(t, strlen(t), 16384, &req), (int) strlen(t));
        assert_int_equal(strlen(http_request_target(req)), 9001);
        req = http_request_free(req);
        free(t);
}

static char *make_head_with_headers(size_t n) {
        size_t size = 64 + n * 16;
        char *b = malloc(size), *p = b;

        assert_non_null(b);
        p += sprintf(p, "GET / HTTP/1.1\r\n");
        for (size_t i = 0; i < n; i++)
                p += sprintf(p, "X-H%zu: %zu\r\n", i, i);
        strcpy(p, "\r\n");
        return b;
}

static void test_too_many_headers(void **state) {
        _cleanup_request_ HttpRequest *req = NULL;
        char *b;

        (void) state;
        b = make_head_with_headers(HTTP_HEADERS_MAX);
        assert_int_equal(http_request_parse(b, strlen(b), HTTP_HEAD_MAX, &req), (int) strlen(b));
        assert_int_equal(http_request_n_headers(req), HTTP_HEADERS_MAX);
        assert_string_equal(http_request_header(req, "x-h63"), "63");
        free(b);

        HttpRequest *r2 = NULL;
        b = make_head_with_headers(HTTP_HEADERS_MAX + 1);
        assert_int_equal(http_request_parse(b, strlen(b), HTTP_HEAD_MAX, &r2), -EMSGSIZE);
        /* ... also before the head is complete. */
        assert_int_equal(http_request_parse(b, strlen(b) - 4, HTTP_HEAD_MAX, &r2), -EMSGSIZE);
        assert_null(r2);
        free(b);
}

static void test_status_reason(void **state) {
        (void) state;
        assert_string_equal(http_status_reason(200), "OK");
        assert_string_equal(http_status_reason(400), "Bad Request");
        assert_string_equal(http_status_reason(403), "Forbidden");
        assert_string_equal(http_status_reason(404), "Not Found");
        assert_string_equal(http_status_reason(405), "Method Not Allowed");
        assert_string_equal(http_status_reason(408), "Request Timeout");
        assert_string_equal(http_status_reason(413), "Content Too Large");
        assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
        assert_string_equal(http_status_reason(500), "Internal Server Error");
        assert_string_equal(http_status_reason(502), "Bad Gateway");
        assert_string_equal(http_status_reason(503), "Service Unavailable");
        assert_string_equal(http_status_reason(504), "Gateway Timeout");
        assert_string_equal(http_status_reason(299), "Unknown");
        assert_string_equal(http_status_reason(-1), "Unknown");
}

static void assert_response(char *got, size_t got_len, const char *want) {
        assert_non_null(got);
        assert_int_equal(got_len, strlen(want));
        assert_memory_equal(got, want, got_len);
        free(got);
}

static void test_response_format(void **state) {
        size_t n = 0;
        char *s;

        (void) state;
        s = http_response_format(200, "Connection Established", NULL, NULL, NULL, 0, &n);
        assert_response(s, n, "HTTP/1.1 200 Connection Established\r\n\r\n");

        s = http_response_format(403, NULL, NULL, "text/plain", "denied\n", 7, &n);
        assert_response(s, n, "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nContent-Type: text/plain\r\n\r\ndenied\n");

        s = http_response_format(502, NULL, "Connection: close\r\n", NULL, "refused", 7, &n);
        assert_response(s, n, "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 7\r\n\r\nrefused");

        /* No body: no Content-Length, and no Content-Type even if one is named. */
        s = http_response_format(504, NULL, "Connection: close\r\n", "text/plain", NULL, 0, &n);
        assert_response(s, n, "HTTP/1.1 504 Gateway Timeout\r\nConnection: close\r\n\r\n");

        /* An empty body still says so. */
        s = http_response_format(200, NULL, NULL, "application/json", "", 0, &n);
        assert_response(s, n, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: application/json\r\n\r\n");

        /* Bodies are bytes, NULs included. */
        s = http_response_format(200, NULL, NULL, NULL, "a\0b", 3, &n);
        assert_non_null(s);
        assert_int_equal(n, strlen("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n") + 3);
        assert_memory_equal(s + n - 3, "a\0b", 3);
        free(s);

        s = http_response_format(299, NULL, NULL, NULL, NULL, 0, NULL);
        assert_non_null(s);
        assert_string_equal(s, "HTTP/1.1 299 Unknown\r\n\r\n");
        free(s);
}

static void test_response_content_length(void **state) {
        static const struct {
                const char *head;
                int r;            /* 1: complete (the whole text), or the error */
                int64_t length;
        } cases[] = {
                { "HTTP/1.1 200 OK\r\n\r\n", 1, -1 },
                { "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 1, 42 },
                { "HTTP/1.1 200 OK\r\ncontent-length:\t7 \r\n\r\n", 1, 7 },
                /* the same length twice is one length */
                { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 1, 5 },
                /* two that differ, a sign, a list, no digits: not a response to trust */
                { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -EBADMSG, 0 },
                { "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -EBADMSG, 0 },
                { "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", -EBADMSG, 0 },
                { "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", -EBADMSG, 0 },
                /* far too large: kept above the limit, never wrapped */
                { "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", 1,
                  HTTP_CONTENT_LENGTH_MAX + 1 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                HttpResponseHead h = { .content_length = 12345 };
                int r = http_response_parse(cases[i].head, strlen(cases[i].head), 4096, &h);

                assert_int_equal(r, cases[i].r > 0 ? (int) strlen(cases[i].head) : cases[i].r);
                if (r > 0)
                        assert_int_equal(h.content_length, cases[i].length);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kube_apiserver_head),
                cmocka_unit_test(test_curl_head),
                cmocka_unit_test(test_incremental),
                cmocka_unit_test(test_trailing_bytes_not_consumed),
                cmocka_unit_test(test_origin_form_and_http10),
                cmocka_unit_test(test_header_lookup),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_nul_rejected),
                cmocka_unit_test(test_malformed_detected_early),
                cmocka_unit_test(test_method_lengths),
                cmocka_unit_test(test_over_limit),
                cmocka_unit_test(test_too_many_headers),
                cmocka_unit_test(test_status_reason),
                cmocka_unit_test(test_response_format),
                cmocka_unit_test(test_response_content_length),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
