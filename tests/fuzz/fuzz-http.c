/* Fuzzing the front door's CONNECT request-head parser (http_request_parse):
 * a head read in two pieces parses as it does in one, and what parses reads
 * back as the bytes said. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "http.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);

static bool request_equal(const HttpRequest *a, const HttpRequest *b) {
        return streq(http_request_method(a), http_request_method(b)) &&
               streq(http_request_target(a), http_request_target(b)) &&
               http_request_version_minor(a) == http_request_version_minor(b) &&
               http_request_n_headers(a) == http_request_n_headers(b);
}

/* The request line is the head's first bytes, exactly. */
static void check_request_line(const char *buf, size_t head, const HttpRequest *req) {
        const char *method = http_request_method(req), *target = http_request_target(req);
        size_t m = strlen(method), t = strlen(target);
        char version[sizeof("HTTP/1.x\r\n")];

        fuzz_check(m > 0 && t > 0);
        fuzz_check(m + 1 + t + 1 + strlen("HTTP/1.x\r\n") + 2 <= head);
        fuzz_check(memcmp(buf, method, m) == 0 && buf[m] == ' ');
        fuzz_check(memcmp(buf + m + 1, target, t) == 0 && buf[m + 1 + t] == ' ');
        snprintf(version, sizeof(version), "HTTP/1.%d\r\n", http_request_version_minor(req));
        fuzz_check(memcmp(buf + m + 1 + t + 1, version, strlen(version)) == 0);
        fuzz_check(memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
        fuzz_check(http_request_n_headers(req) <= HTTP_HEADERS_MAX);
}

/* The first header as written can be looked up by its name in any case,
 * and its value has no surrounding blanks. */
static void check_first_header(const char *buf, size_t head, const HttpRequest *req) {
        const char *line = (const char *) memmem(buf, head, "\r\n", 2) + 2, *colon, *value;
        char name[256];
        size_t n;

        if (http_request_n_headers(req) == 0) {
                fuzz_check(line == buf + head - 2);
                return;
        }
        colon = memchr(line, ':', (size_t) (buf + head - line));
        fuzz_check(colon);
        n = (size_t) (colon - line);
        if (n == 0 || n >= sizeof(name))
                return;
        memcpy(name, line, n);
        name[n] = 0;
        for (size_t i = 0; i < n; i += 2)
                name[i] = (char) (name[i] ^ ((name[i] >= 'a' && name[i] <= 'z') ? 0x20 : 0));
        value = http_request_header(req, name);
        fuzz_check(value);
        fuzz_check(!*value || (value[0] != ' ' && value[0] != '\t' && value[strlen(value) - 1] != ' ' &&
                               value[strlen(value) - 1] != '\t'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(http_request_freep) HttpRequest *whole = NULL, *part = NULL;
        const char *buf = (const char *) data;
        uint64_t h = fuzz_hash(data, size);
        size_t split = size > 0 ? (size_t) (h % (size + 1)) : 0, limit = HTTP_HEAD_MAX;
        int r, k;

        /* Now and then a tight limit, so that -EMSGSIZE is reached at the
         * limit and not only at the header count. */
        if ((h >> 32) % 8 == 0)
                limit = (size_t) ((h >> 40) % (size + 2)) + 1;

        r = http_request_parse(buf, size, limit, &whole);
        fuzz_check(r == 0 || r > 0 || r == -EBADMSG || r == -EMSGSIZE);
        fuzz_check((r > 0) == !!whole);

        /* As the front door reads it: a first piece, then all of it. */
        k = http_request_parse(buf, split, limit, &part);
        fuzz_check((k > 0) == !!part);
        if (k > 0) {
                /* complete already: more bytes change nothing */
                fuzz_check(r == k);
                fuzz_check(request_equal(part, whole));
        } else if (k < 0)
                /* wrong already: more bytes cannot make it right */
                fuzz_check(r == k);

        if (r > 0) {
                fuzz_check((size_t) r <= size && (size_t) r <= limit);
                check_request_line(buf, (size_t) r, whole);
                check_first_header(buf, (size_t) r, whole);
                (void) http_request_header(whole, "Host");
                (void) http_request_header(whole, "Proxy-Authorization");
        }
        return 0;
}
