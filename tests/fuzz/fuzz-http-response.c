/* Fuzzing the response-head parser the kubelet probe uses
 * (http_response_parse): split reads agree with one read, and a head the
 * daemon formats itself always parses back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "macro.h"

static bool head_equal(const HttpResponseHead *a, const HttpResponseHead *b) {
        return a->version_minor == b->version_minor && a->status == b->status && streq(a->reason, b->reason) &&
               a->content_length == b->content_length;
}

/* http_response_format() output, with a reason and a body from the input. */
static void check_round_trip(const uint8_t *data, size_t size, uint64_t h) {
        static const int codes[] = { 100, 200, 204, 400, 403, 404, 405, 431, 500, 502, 503, 504, 599 };
        _cleanup_free_ char *reason = NULL, *out = NULL;
        int code = codes[h % ELEMENTSOF(codes)], r;
        HttpResponseHead head;
        size_t n = 0, len = MIN(size, (size_t) 80);

        /* a reason phrase as a server may send it: no CR, LF or NUL */
        reason = strndup((const char *) data, len);
        if (!reason)
                return;
        for (char *c = reason; *c; c++)
                if (*c == '\r' || *c == '\n')
                        *c = ' ';
        out = http_response_format(code, *reason ? reason : NULL, "X-Test: 1\r\n",
                                   (h >> 8) % 2 ? "application/json" : NULL, (const char *) data, size, &n);
        fuzz_check(out);
        r = http_response_parse(out, n, n, &head);
        /* control bytes in the reason are the one thing that fails */
        for (const char *c = reason; *c; c++)
                if ((unsigned char) *c < 0x20 && *c != '\t')
                        return;
        if (strchr(reason, 0x7f))
                return;
        fuzz_check(r > 0);
        fuzz_check(head.status == code && head.version_minor == 1);
        fuzz_check(head.content_length == (int64_t) size);
        fuzz_check(memcmp(out + r, data, size) == 0 && (size_t) r + size == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        uint64_t h = fuzz_hash(data, size);
        size_t split = size > 0 ? (size_t) (h % (size + 1)) : 0, limit = 16384;
        HttpResponseHead whole = {}, part = {};
        int r, k;

        if ((h >> 32) % 8 == 0)
                limit = (size_t) ((h >> 40) % (size + 2)) + 1;

        r = http_response_parse(buf, size, limit, &whole);
        fuzz_check(r == 0 || r > 0 || r == -EBADMSG || r == -EMSGSIZE);
        k = http_response_parse(buf, split, limit, &part);
        if (k > 0) {
                fuzz_check(r == k);
                fuzz_check(head_equal(&part, &whole));
        } else if (k < 0)
                fuzz_check(r == k);

        if (r > 0) {
                fuzz_check((size_t) r <= size && (size_t) r <= limit);
                fuzz_check(buf[r - 1] == '\n');
                fuzz_check(whole.status >= 100 && whole.status <= 599);
                fuzz_check(whole.version_minor == 0 || whole.version_minor == 1);
                fuzz_check(whole.content_length >= -1 && whole.content_length <= HTTP_CONTENT_LENGTH_MAX + 1);
                fuzz_check(strlen(whole.reason) < sizeof(whole.reason));
                for (const char *c = whole.reason; *c; c++)
                        fuzz_check((*c >= 0x20 && *c < 0x7f) || *c == '\t');
        }

        check_round_trip(data, size, h);
        return 0;
}
