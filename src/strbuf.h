/* A growing text buffer for replies built from thousands of pieces
 * (/metrics, /v1/nodes at 5,000 nodes): appends without stdio's per-call
 * locking and formatting, NUL-terminated throughout, one error flag. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"

typedef struct StrBuf {
        char *buf;
        size_t len, alloc;
        bool failed; /* an allocation failed: the text is incomplete */
} StrBuf;

/* Room for 'n' more bytes (and the NUL) without another allocation; false
 * once an allocation has failed. */
bool strbuf_reserve(StrBuf *b, size_t n);

/* Append 'n' bytes of 'p'. Inline: /metrics makes 1.5 million of these
 * calls at 5,000 nodes. */
static inline void strbuf_mem(StrBuf *b, const void *p, size_t n) {
        if (n >= b->alloc - b->len && !strbuf_reserve(b, n))
                return;
        memcpy(b->buf + b->len, p, n);
        b->len += n;
        b->buf[b->len] = 0;
}

/* Append a NUL-terminated string. */
static inline void strbuf_puts(StrBuf *b, const char *s) {
        strbuf_mem(b, s, strlen(s));
}

/* Append one character. */
static inline void strbuf_putc(StrBuf *b, char c) {
        strbuf_mem(b, &c, 1);
}
/* Append v in decimal. */
void strbuf_u64(StrBuf *b, uint64_t v);
/* Append printf-style. */
void strbuf_printf(StrBuf *b, const char *fmt, ...) _printf_(2, 3);
/* The text (malloc'd, NUL-terminated; its length in *ret_len if not NULL),
 * the buffer left empty; NULL if an allocation failed (all freed). */
char *strbuf_take(StrBuf *b, size_t *ret_len);
/* Free what the buffer holds. */
void strbuf_done(StrBuf *b);
