/* The growing text buffer: doubling allocations, a NUL kept after the
 * text, and a sticky failure flag so that callers check once at the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define STRBUF_MIN_ALLOC 16384

bool strbuf_reserve(StrBuf *b, size_t n) {
        size_t want;
        char *p;

        if (b->failed)
                return false;
        if (n < b->alloc - b->len) /* room for the NUL too (alloc > len once allocated) */
                return true;
        if (n > SIZE_MAX / 2 - b->len - 1) {
                b->failed = true;
                return false;
        }
        want = MAX(MAX(b->alloc * 2, b->len + n + 1), (size_t) STRBUF_MIN_ALLOC);
        p = realloc(b->buf, want);
        if (!p) {
                b->failed = true;
                return false;
        }
        b->buf = p;
        b->alloc = want;
        return true;
}

void strbuf_u64(StrBuf *b, uint64_t v) {
        char d[20];
        size_t i = sizeof(d);

        do
                d[--i] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        strbuf_mem(b, d + i, sizeof(d) - i);
}

void strbuf_printf(StrBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!strbuf_reserve(b, 256))
                return;
        va_start(ap, fmt);
        n = vsnprintf(b->buf + b->len, b->alloc - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->buf[b->len] = 0;
                b->failed = true;
                return;
        }
        if ((size_t) n >= b->alloc - b->len) {
                b->buf[b->len] = 0;
                if (!strbuf_reserve(b, (size_t) n))
                        return;
                va_start(ap, fmt);
                (void) vsnprintf(b->buf + b->len, b->alloc - b->len, fmt, ap);
                va_end(ap);
        }
        b->len += (size_t) n;
}

char *strbuf_take(StrBuf *b, size_t *ret_len) {
        char *s;

        if (!b->failed && !b->buf)
                (void) strbuf_reserve(b, 0);
        if (b->failed) {
                strbuf_done(b);
                return NULL;
        }
        s = b->buf;
        s[b->len] = 0;
        if (ret_len)
                *ret_len = b->len;
        *b = (StrBuf) {};
        return s;
}

void strbuf_done(StrBuf *b) {
        free(b->buf);
        *b = (StrBuf) {};
}
