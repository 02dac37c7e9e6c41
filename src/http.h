/* Strict HTTP/1.1 request-head parser, shared by the front door (CONNECT) and
 * the admin API (GET/POST), and the few response helpers both need. Parses
 * from a caller's buffer; never does I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The front door's limit on a request head, request line included. */
#define HTTP_HEAD_MAX 8192
/* Headers beyond this count make the head malformed (431). */
#define HTTP_HEADERS_MAX 64

typedef struct HttpRequest HttpRequest;

/* Parse the request head at the start of buf[0..len).
 *
 * Returns:
 *   > 0         the head is complete; the value is its length in bytes,
 *               final CRLFCRLF included (bytes after it belong to the tunnel
 *               or the body); *ret holds the parsed request.
 *   0           incomplete so far, and nothing seen is invalid: read more.
 *   -EMSGSIZE   the head is longer than 'limit' bytes, or has more than
 *               HTTP_HEADERS_MAX headers (answer 431).
 *   -EBADMSG    malformed: bad request line, bad version, bare LF, control
 *               characters, obsolete line folding, header without colon,
 *               bad header name (answer 400).
 *   -ENOMEM
 * Only HTTP/1.0 and HTTP/1.1 are accepted. *ret is written only when the
 * return value is > 0. */
int http_request_parse(const char *buf, size_t len, size_t limit, HttpRequest **ret);

HttpRequest *http_request_free(HttpRequest *r);

/* The method as sent ("CONNECT", "GET", ...), the request target as sent,
 * and the minor version (0 or 1). */
const char *http_request_method(const HttpRequest *r);
const char *http_request_target(const HttpRequest *r);
int http_request_version_minor(const HttpRequest *r);

/* The value of the first header named 'name' (case-insensitive), with
 * surrounding whitespace removed, or NULL. */
const char *http_request_header(const HttpRequest *r, const char *name);
size_t http_request_n_headers(const HttpRequest *r);

/* The reason phrase for a status code ("Connection Established" for 200 on
 * a CONNECT is the caller's choice); "Unknown" for codes not in the table. */
const char *http_status_reason(int code);

/* Format a complete response head plus optional body into a malloc'd buffer:
 * "HTTP/1.1 CODE REASON\r\n" + extra_headers (each ending in \r\n, may be
 * NULL) + Content-Length and Content-Type (when body != NULL) + "\r\n" +
 * body. *ret_len receives the length. NULL on allocation failure. */
char *http_response_format(int code, const char *reason, const char *extra_headers,
                           const char *content_type, const char *body, size_t body_len,
                           size_t *ret_len);

/* One HTTP/1.x response head, as a client needs it. */
/* Larger Content-Length values read as HTTP_CONTENT_LENGTH_MAX + 1. */
#define HTTP_CONTENT_LENGTH_MAX (INT64_C(1) << 40)

typedef struct HttpResponseHead {
        int version_minor; /* 0 or 1 */
        int64_t content_length; /* -1 when the head has none */
        int status;        /* 100..599 */
        char reason[64];   /* the reason phrase, truncated, bytes outside printable ASCII as '?';
                            * "" when the server sent none */
} HttpResponseHead;

/* Parse the response head at the start of buf[0..len). Lenient where RFC
 * 9112 lets a recipient be (bare LF line ends, obs-fold, an empty reason),
 * strict about what makes it a response at all.
 *
 * Returns:
 *   > 0         complete; the value is its length in bytes, the empty line
 *               included (the body, if any, follows); *ret holds the head.
 *   0           incomplete so far, and nothing seen is invalid: read more.
 *   -EMSGSIZE   no end of head within 'limit' bytes.
 *   -EBADMSG    not an HTTP/1.x response: bad status line, a control
 *               character, a header line without a colon, a malformed
 *               Content-Length or two that differ.
 * *ret is written only when the return value is > 0. */
int http_response_parse(const char *buf, size_t len, size_t limit, HttpResponseHead *ret);
