/* The strict HTTP/1.1 request-head parser (RFC 9112 section 3 and 5, with no
 * leniency: no bare LF, no obs-fold, no empty lines first) and response heads. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "http.h"
#include "macro.h"

#define HTTP_METHOD_MAX 16

typedef struct HttpHeader {
        const char *name;
        const char *value;
} HttpHeader;

struct HttpRequest {
        const char *method;
        const char *target;
        int version_minor;
        size_t n_headers;
        HttpHeader *headers;
        /* the header array, then a copy of the head with NULs punched in */
        char data[];
};

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c) {
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                return true;
        return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* RFC 9110 5.5: field-vchar, SP and HTAB. */
static bool is_field_char(unsigned char c) {
        return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

typedef enum ScanState {
        SCAN_METHOD,
        SCAN_TARGET,
        SCAN_VERSION,
        SCAN_REQUEST_LINE_LF,
        SCAN_LINE_START,
        SCAN_NAME,
        SCAN_VALUE,
        SCAN_HEADER_LF,
        SCAN_END_LF,
} ScanState;

/* One pass over buf[0..len): > 0 is the head length, 0 means nothing wrong so
 * far but no end yet, -EBADMSG as soon as a byte cannot belong to a valid
 * head, -EMSGSIZE at the header that is one too many. */
static ssize_t http_head_scan(const char *buf, size_t len, size_t *ret_n_headers) {
        static const char version[] = "HTTP/1.";
        ScanState state = SCAN_METHOD;
        size_t n = 0, n_headers = 0; /* n: bytes in the current token */

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) buf[i];

                switch (state) {
                case SCAN_METHOD:
                        if (c == ' ' && n > 0) {
                                state = SCAN_TARGET;
                                n = 0;
                        } else if (is_tchar(c) && n < HTTP_METHOD_MAX)
                                n++;
                        else
                                return -EBADMSG;
                        break;
                case SCAN_TARGET:
                        if (c == ' ' && n > 0) {
                                state = SCAN_VERSION;
                                n = 0;
                        } else if (c >= 0x21 && c <= 0x7e)
                                n++;
                        else
                                return -EBADMSG;
                        break;
                case SCAN_VERSION:
                        if (n < strlen(version)) {
                                if (c != (unsigned char) version[n])
                                        return -EBADMSG;
                                n++;
                        } else if (n == strlen(version)) {
                                if (c != '0' && c != '1')
                                        return -EBADMSG;
                                n++;
                        } else if (c == '\r')
                                state = SCAN_REQUEST_LINE_LF;
                        else
                                return -EBADMSG;
                        break;
                case SCAN_REQUEST_LINE_LF:
                case SCAN_HEADER_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        state = SCAN_LINE_START;
                        break;
                case SCAN_LINE_START:
                        if (c == '\r') {
                                state = SCAN_END_LF;
                                break;
                        }
                        /* A leading SP/HTAB is obs-fold; anything but a tchar is junk. */
                        if (!is_tchar(c))
                                return -EBADMSG;
                        if (n_headers >= HTTP_HEADERS_MAX)
                                return -EMSGSIZE;
                        n_headers++;
                        state = SCAN_NAME;
                        break;
                case SCAN_NAME:
                        if (c == ':')
                                state = SCAN_VALUE;
                        else if (!is_tchar(c))
                                return -EBADMSG;
                        break;
                case SCAN_VALUE:
                        if (c == '\r')
                                state = SCAN_HEADER_LF;
                        else if (!is_field_char(c))
                                return -EBADMSG;
                        break;
                case SCAN_END_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        *ret_n_headers = n_headers;
                        return (ssize_t) i + 1;
                }
        }
        return 0;
}

static bool is_ows(char c) {
        return c == ' ' || c == '\t';
}

/* Split a validated head, copied into 'p', in place. */
static void http_request_split(HttpRequest *req, char *p) {
        char *e;

        req->method = p;
        e = strchr(p, ' ');
        *e = 0;
        req->target = p = e + 1;
        e = strchr(p, ' ');
        *e = 0;
        p = e + 1;
        req->version_minor = p[strlen("HTTP/1.")] - '0';
        p = strchr(p, '\r') + 2;

        for (size_t i = 0; i < req->n_headers; i++) {
                char *v, *end;

                req->headers[i].name = p;
                e = strchr(p, ':');
                *e = 0;
                v = e + 1;
                end = strchr(v, '\r');
                p = end + 2;
                while (v < end && is_ows(*v))
                        v++;
                while (end > v && is_ows(end[-1]))
                        end--;
                *end = 0;
                req->headers[i].value = v;
        }
}

int http_request_parse(const char *buf, size_t len, size_t limit, HttpRequest **ret) {
        size_t n_headers = 0, off;
        HttpRequest *req;
        ssize_t head;

        assert(buf || len == 0);
        assert(ret);

        /* Only the first 'limit' bytes can hold a head that fits. */
        head = http_head_scan(buf, MIN(len, limit), &n_headers);
        if (head < 0)
                return (int) head;
        if (head == 0)
                return len >= limit ? -EMSGSIZE : 0;
        if (head > INT_MAX)
                return -EMSGSIZE;

        off = n_headers * sizeof(HttpHeader);
        req = malloc(sizeof(*req) + off + (size_t) head + 1);
        if (!req)
                return -ENOMEM;
        req->n_headers = n_headers;
        req->headers = (HttpHeader *) req->data;
        memcpy(req->data + off, buf, (size_t) head);
        req->data[off + (size_t) head] = 0;
        http_request_split(req, req->data + off);

        *ret = req;
        return (int) head;
}

HttpRequest *http_request_free(HttpRequest *r) {
        free(r);
        return NULL;
}

const char *http_request_method(const HttpRequest *r) {
        assert(r);
        return r->method;
}

const char *http_request_target(const HttpRequest *r) {
        assert(r);
        return r->target;
}

int http_request_version_minor(const HttpRequest *r) {
        assert(r);
        return r->version_minor;
}

const char *http_request_header(const HttpRequest *r, const char *name) {
        assert(r);
        assert(name);

        for (size_t i = 0; i < r->n_headers; i++)
                if (strcasecmp(r->headers[i].name, name) == 0)
                        return r->headers[i].value;
        return NULL;
}

size_t http_request_n_headers(const HttpRequest *r) {
        assert(r);
        return r->n_headers;
}

const char *http_status_reason(int code) {
        static const struct {
                int code;
                const char *reason;
        } table[] = {
                { 100, "Continue" },
                { 101, "Switching Protocols" },
                { 200, "OK" },
                { 201, "Created" },
                { 202, "Accepted" },
                { 204, "No Content" },
                { 301, "Moved Permanently" },
                { 302, "Found" },
                { 304, "Not Modified" },
                { 400, "Bad Request" },
                { 401, "Unauthorized" },
                { 403, "Forbidden" },
                { 404, "Not Found" },
                { 405, "Method Not Allowed" },
                { 408, "Request Timeout" },
                { 409, "Conflict" },
                { 411, "Length Required" },
                { 413, "Content Too Large" },
                { 414, "URI Too Long" },
                { 415, "Unsupported Media Type" },
                { 429, "Too Many Requests" },
                { 431, "Request Header Fields Too Large" },
                { 500, "Internal Server Error" },
                { 501, "Not Implemented" },
                { 502, "Bad Gateway" },
                { 503, "Service Unavailable" },
                { 504, "Gateway Timeout" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].code == code)
                        return table[i].reason;
        return "Unknown";
}

char *http_response_format(int code, const char *reason, const char *extra_headers,
                           const char *content_type, const char *body, size_t body_len,
                           size_t *ret_len) {
        char *head = NULL, *out;
        int n;

        assert(body || body_len == 0);

        if (!reason)
                reason = http_status_reason(code);
        if (!extra_headers)
                extra_headers = "";

        if (!body)
                n = asprintf(&head, "HTTP/1.1 %03d %s\r\n%s\r\n", code, reason, extra_headers);
        else if (content_type)
                n = asprintf(&head, "HTTP/1.1 %03d %s\r\n%sContent-Length: %zu\r\nContent-Type: %s\r\n\r\n",
                             code, reason, extra_headers, body_len, content_type);
        else
                n = asprintf(&head, "HTTP/1.1 %03d %s\r\n%sContent-Length: %zu\r\n\r\n", code, reason,
                             extra_headers, body_len);
        if (n < 0)
                return NULL;
        if (body_len == 0) {
                if (ret_len)
                        *ret_len = (size_t) n;
                return head;
        }

        /* Bodies may hold NULs: copy by length, and keep a terminator for callers that log. */
        if ((size_t) n > SIZE_MAX - body_len - 1) {
                free(head);
                return NULL;
        }
        out = realloc(head, (size_t) n + body_len + 1);
        if (!out) {
                free(head);
                return NULL;
        }
        memcpy(out + n, body, body_len);
        out[(size_t) n + body_len] = 0;
        if (ret_len)
                *ret_len = (size_t) n + body_len;
        return out;
}

/* --- response heads (the client side: the kubelet probe) ------------------ */

/* The LF ending the line that starts at p, or NULL while it is incomplete. */
static const char *http_line_end(const char *p, const char *end) {
        return p < end ? memchr(p, '\n', (size_t) (end - p)) : NULL;
}

/* The line [p, lf) without its CR, if it has one. */
static const char *http_line_trim_cr(const char *p, const char *lf) {
        return lf > p && lf[-1] == '\r' ? lf - 1 : lf;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static int http_status_line_parse(const char *p, const char *e, HttpResponseHead *h) {
        static const char version[] = "HTTP/1.";
        size_t vl = strlen(version), n = 0;

        /* "HTTP/1.x SP 3DIGIT [SP reason]": RFC 9112 4 wants the SP even with
         * an empty reason; some servers leave it out */
        if ((size_t) (e - p) < vl + 1 + 1 + 3 || memcmp(p, version, vl) != 0)
                return -EBADMSG;
        if (p[vl] != '0' && p[vl] != '1')
                return -EBADMSG;
        h->version_minor = p[vl] - '0';
        p += vl + 1;
        if (*p++ != ' ')
                return -EBADMSG;
        if (!is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2]) || p[0] < '1' || p[0] > '5')
                return -EBADMSG;
        h->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        p += 3;
        if (p < e && *p++ != ' ')
                return -EBADMSG;
        for (; p < e; p++) {
                unsigned char c = (unsigned char) *p;
                /* reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
                if (c != '\t' && (c < 0x20 || c == 0x7f))
                        return -EBADMSG;
                if (n + 1 < sizeof(h->reason))
                        h->reason[n++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        h->reason[n] = 0;
        return 0;
}

/* A Content-Length value (digits, optional whitespace around): the
 * number, or -EBADMSG. Values beyond HTTP_CONTENT_LENGTH_MAX read as that
 * plus one, enough for a caller to refuse them. */
static int64_t http_content_length_parse(const char *p, const char *e) {
        int64_t n = 0;
        bool digits = false;

        while (p < e && (*p == ' ' || *p == '\t'))
                p++;
        for (; p < e && is_digit(*p); p++) {
                n = n > HTTP_CONTENT_LENGTH_MAX / 10 ? HTTP_CONTENT_LENGTH_MAX + 1 : n * 10 + (*p - '0');
                n = MIN(n, HTTP_CONTENT_LENGTH_MAX + 1);
                digits = true;
        }
        while (p < e && (*p == ' ' || *p == '\t'))
                p++;
        return digits && p == e ? n : -EBADMSG;
}

static int http_header_line_check(const char *p, const char *e, int64_t *content_length) {
        static const char cl[] = "content-length:";
        const char *colon = NULL;

        if ((size_t) (e - p) >= strlen(cl) && strncasecmp(p, cl, strlen(cl)) == 0) {
                int64_t n = http_content_length_parse(p + strlen(cl), e);
                /* a second, different length: a response smuggling another */
                if (n < 0 || (*content_length >= 0 && *content_length != n))
                        return -EBADMSG;
                *content_length = n;
        }

        /* obs-fold continues the previous field: tolerated, its content checked */
        if (*p != ' ' && *p != '\t') {
                colon = memchr(p, ':', (size_t) (e - p));
                if (!colon || colon == p)
                        return -EBADMSG;
                for (const char *q = p; q < colon; q++)
                        if (!is_tchar((unsigned char) *q))
                                return -EBADMSG;
                p = colon + 1;
        }
        for (; p < e; p++)
                if (!is_field_char((unsigned char) *p))
                        return -EBADMSG;
        return 0;
}

int http_response_parse(const char *buf, size_t len, size_t limit, HttpResponseHead *ret) {
        const char *p, *end, *lf;
        HttpResponseHead h = { .content_length = -1 };
        int r;

        assert(buf || len == 0);
        assert(ret);

        if (len == 0)
                buf = ""; /* no arithmetic on NULL */
        p = buf;
        end = buf + MIN(len, limit);

        /* the status line */
        lf = http_line_end(p, end);
        if (!lf) {
                /* judge what there is already: junk fails now, not at the limit */
                if (end > p && memcmp(p, "HTTP/1.", MIN((size_t) (end - p), strlen("HTTP/1."))) != 0)
                        return -EBADMSG;
                return len >= limit ? -EMSGSIZE : 0;
        }
        r = http_status_line_parse(p, http_line_trim_cr(p, lf), &h);
        if (r < 0)
                return r;
        p = lf + 1;

        /* header lines up to the empty one */
        for (;;) {
                const char *e;

                lf = http_line_end(p, end);
                if (!lf)
                        return len >= limit ? -EMSGSIZE : 0;
                e = http_line_trim_cr(p, lf);
                if (e == p)
                        break;
                r = http_header_line_check(p, e, &h.content_length);
                if (r < 0)
                        return r;
                p = lf + 1;
        }
        if (lf + 1 - buf > INT_MAX)
                return -EMSGSIZE;
        *ret = h;
        return (int) (lf + 1 - buf);
}
