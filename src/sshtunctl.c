/* sshtunctl: the operator's client of the admin API. One HTTP/1.1 request per
 * view or action over admin.sock, all under one deadline; replies shown as
 * tables, JSON, or one Nagios line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "macro.h"
#include "table.h"

#define EXIT_USAGE 64
#define EXIT_UNREACHABLE 3
#define DEFAULT_SOCKET "/run/sshtund/admin.sock"
#define CTL_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* The daemon ends a scan within 35 s (connect_timeout, at most 30 s, plus
 * 5 s for a handshake slot): wait longer than that. */
#define CTL_SCAN_TIMEOUT_USEC (45 * USEC_PER_SEC)
/* Names listed per kind in one `check` line; the rest are counted. */
#define CHECK_NAMES_MAX 10
#define CTL_HEAD_MAX (64 * 1024)
#define CTL_BODY_MAX (16 * 1024 * 1024)
/* Node names in the request path; the daemon's request head limit is 8 KiB. */
#define CTL_NAME_MAX 1024

typedef enum Output {
        OUTPUT_TABLE,
        OUTPUT_WIDE,
        OUTPUT_JSON,
} Output;

typedef struct Ctl {
        const char *socket;
        Output output;
        bool color;
        bool nagios;     /* check: any failure is one "SSHTUND UNKNOWN" line on stdout, exit 3 */
        usec_t timeout;  /* for the whole command ... */
        usec_t deadline; /* ... ending here (CLOCK_MONOTONIC) */
} Ctl;

typedef struct Reply {
        int status;
        char *data;       /* the whole reply as read */
        const char *body; /* into data */
        size_t body_len;
} Reply;

static void reply_done(Reply *r) {
        free(r->data);
        *r = (Reply) {};
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* Say why the command failed and return its exit status: on stderr, or for
 * `check` as the plugin's one line (UNKNOWN, exit 3). */
_printf_(3, 4) static int ctl_fail(const Ctl *ctl, int status, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (ctl->nagios) {
                fputs("SSHTUND UNKNOWN - ", stdout);
                vprintf(format, ap);
                putchar('\n');
                status = EXIT_UNREACHABLE;
        } else {
                fputs("sshtunctl: ", stderr);
                vfprintf(stderr, format, ap);
                fputc('\n', stderr);
        }
        va_end(ap);
        return status;
}

static int ctl_oom(const Ctl *ctl) {
        return ctl_fail(ctl, EXIT_FAILURE, "out of memory");
}

/* ---- HTTP over the Unix socket -------------------------------------------- */

static int remaining_msec(const Ctl *ctl) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= ctl->deadline)
                return 0;
        return (int) ((ctl->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* Wait for 'events' until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(const Ctl *ctl, int fd, short events) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = remaining_msec(ctl), r;

                if (ms == 0)
                        return -ETIMEDOUT;
                r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

static int connect_socket(const Ctl *ctl, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(ctl->socket);
        _cleanup_close_ int fd = -1;
        int ms = remaining_msec(ctl);
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, ctl->socket, len);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A Unix connect() blocks only while the backlog is full, for as long
         * as the send timeout allows. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_all(const Ctl *ctl, int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        int r = wait_fd(ctl, fd, POLLOUT);
                        if (r < 0)
                                return r;
                        continue;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Find the end of the head in data[0..len): the offset after CRLFCRLF, or 0. */
static size_t head_end(const char *data, size_t len) {
        for (size_t i = 3; i < len; i++)
                if (data[i - 3] == '\r' && data[i - 2] == '\n' && data[i - 1] == '\r' && data[i] == '\n')
                        return i + 1;
        return 0;
}

/* Parse "HTTP/1.x DDD ..." and the Content-Length of a complete head.
 * *ret_length is -1 when the reply has none. -EBADMSG when malformed. */
static int parse_head(const char *data, size_t head_len, int *ret_status, int64_t *ret_length) {
        const char *p = data, *end = data + head_len;
        int64_t length = -1;
        int status;

        if (head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
                return -EBADMSG;
        for (int i = 9; i < 12; i++)
                if (p[i] < '0' || p[i] > '9')
                        return -EBADMSG;
        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (status < 100)
                return -EBADMSG;

        p = memchr(p, '\n', (size_t) (end - p));
        if (!p)
                return -EBADMSG;
        for (p++; p < end && *p != '\r';) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                static const char cl[] = "content-length:";

                if (!eol)
                        return -EBADMSG;
                if ((size_t) (eol - p) > strlen(cl) && strncasecmp(p, cl, strlen(cl)) == 0) {
                        const char *v = p + strlen(cl);
                        int64_t n = 0;
                        bool digits = false;

                        while (*v == ' ' || *v == '\t')
                                v++;
                        for (; *v >= '0' && *v <= '9'; v++) {
                                if (n > (CTL_BODY_MAX + 1) / 10)
                                        n = CTL_BODY_MAX + 1; /* too large; keep it so */
                                else
                                        n = n * 10 + (*v - '0');
                                digits = true;
                        }
                        while (*v == ' ' || *v == '\t')
                                v++;
                        if (!digits || *v != '\r' || (length >= 0 && length != n))
                                return -EBADMSG;
                        length = n;
                }
                p = eol + 1;
        }
        *ret_status = status;
        *ret_length = length;
        return 0;
}

/* Percent-encode a node name for the request path. */
static char *path_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *out = malloc(strlen(s) * 3 + 1), *p = out;

        if (!out)
                return NULL;
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                    strchr("-._~", *c))
                        *p++ = (char) *c;
                else {
                        *p++ = '%';
                        *p++ = hex[*c >> 4];
                        *p++ = hex[*c & 15];
                }
        }
        *p = 0;
        return out;
}

static int fail_unreachable(const Ctl *ctl, int r) {
        if (r == -ETIMEDOUT)
                return ctl_fail(ctl, EXIT_UNREACHABLE, "%s: no reply from sshtund within %u s", ctl->socket,
                                (unsigned) (ctl->timeout / USEC_PER_SEC));
        return ctl_fail(ctl, EXIT_UNREACHABLE, "cannot connect to %s: %s (is sshtund running?)", ctl->socket,
                        strerror(-r));
}

/* 'method' 'target' (no request body). Returns 0 with *ret filled, or the
 * exit status after saying why. */
static int ctl_request(const Ctl *ctl, const char *method, const char *target, Reply *ret) {
        _cleanup_free_ char *request = NULL, *data = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0, alloc = 0, head = 0;
        int64_t length = -1;
        int status = 0, r;

        r = connect_socket(ctl, &fd);
        if (r < 0)
                return fail_unreachable(ctl, r);

        if (asprintf(&request,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sshtunctl/%s\r\n"
                     "Accept: application/json\r\n%sConnection: close\r\n\r\n",
                     method, target, PACKAGE_VERSION, streq(method, "GET") ? "" : "Content-Length: 0\r\n") < 0) {
                request = NULL;
                return ctl_oom(ctl);
        }
        r = send_all(ctl, fd, request, strlen(request));
        if (r == -ETIMEDOUT)
                return fail_unreachable(ctl, r);
        if (r < 0)
                return ctl_fail(ctl, EXIT_FAILURE, "failed to send the request to %s: %s", ctl->socket,
                                strerror(-r));

        for (;;) {
                ssize_t n;

                if (head > 0 && length >= 0 && len - head >= (size_t) length)
                        break; /* the whole body is here */
                if (len == alloc) {
                        size_t want = alloc ? alloc * 2 : 16384;
                        char *p;

                        want = MIN(want, (size_t) CTL_HEAD_MAX + CTL_BODY_MAX + 1);
                        if (want == alloc)
                                return ctl_fail(ctl, EXIT_FAILURE, "reply from %s is too large", ctl->socket);
                        p = realloc(data, want + 1);
                        if (!p)
                                return ctl_oom(ctl);
                        data = p;
                        alloc = want;
                }
                n = read(fd, data + len, alloc - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        r = wait_fd(ctl, fd, POLLIN);
                        if (r == -ETIMEDOUT)
                                return fail_unreachable(ctl, r);
                        if (r < 0)
                                return ctl_fail(ctl, EXIT_FAILURE, "%s: %s", ctl->socket, strerror(-r));
                        continue;
                }
                if (n < 0 && errno == ECONNRESET && head > 0 && length < 0)
                        break; /* the server's close counts as the end of the body */
                if (n < 0)
                        return ctl_fail(ctl, EXIT_FAILURE, "failed to read the reply from %s: %m", ctl->socket);
                if (n == 0)
                        break;
                len += (size_t) n;

                if (head == 0) {
                        head = head_end(data, len);
                        if (head == 0 && len > CTL_HEAD_MAX)
                                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: head too large",
                                                ctl->socket);
                        if (head > 0 && parse_head(data, head, &status, &length) < 0)
                                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s", ctl->socket);
                        if (length > CTL_BODY_MAX)
                                return ctl_fail(ctl, EXIT_FAILURE, "reply from %s is too large", ctl->socket);
                }
                if (head > 0 && len - head > CTL_BODY_MAX)
                        return ctl_fail(ctl, EXIT_FAILURE, "reply from %s is too large", ctl->socket);
        }

        if (head == 0)
                return ctl_fail(ctl, EXIT_FAILURE, "%s closed the connection without a reply", ctl->socket);
        if (length >= 0 && len - head < (size_t) length)
                return ctl_fail(ctl, EXIT_FAILURE, "truncated reply from %s", ctl->socket);
        data[len] = 0;
        *ret = (Reply) {
                .status = status,
                .body = data + head,
                .body_len = length >= 0 ? (size_t) length : len - head,
        };
        ret->data = TAKE_PTR(data);
        return 0;
}

/* Send the request and parse a 200 reply's JSON object into *ret. For an
 * error reply, says what the daemon said and returns 1. */
static int ctl_request_json(const Ctl *ctl, const char *method, const char *target, json_t **ret) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *v = NULL;
        json_error_t error;
        int r;

        r = ctl_request(ctl, method, target, &reply);
        if (r != 0)
                return r;

        v = json_loadb(reply.body, reply.body_len, 0, &error);
        if (reply.status != 200) {
                const char *message = json_string_value(json_object_get(v, "error"));
                _cleanup_free_ char *shown = table_escape(message);

                if (message && shown)
                        return ctl_fail(ctl, EXIT_FAILURE, "%s", shown);
                return ctl_fail(ctl, EXIT_FAILURE, "sshtund replied with HTTP status %d", reply.status);
        }
        if (!v)
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: %s", ctl->socket, error.text);
        if (!json_is_object(v))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: not a JSON object", ctl->socket);
        *ret = TAKE_PTR(v);
        return 0;
}

static int ctl_get_json(const Ctl *ctl, const char *target, json_t **ret) {
        return ctl_request_json(ctl, "GET", target, ret);
}

/* ---- rendering ------------------------------------------------------------ */

static const char *json_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static json_int_t json_int(const json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

static const char *plural(json_int_t n) {
        return n == 1 ? "" : "s";
}

static const char *age_since(const char *timestamp, char *buf, size_t size) {
        usec_t since, now = now_usec(CLOCK_REALTIME);

        if (table_parse_timestamp(timestamp, &since) < 0)
                return NULL;
        return table_format_age(((int64_t) now - (int64_t) since) / (int64_t) USEC_PER_SEC, buf, size);
}

/* The PROBE cell: "ok 3.2ms", "ok 12ms", "fail", or NULL ("-") before the
 * first probe. */
static const char *probe_cell(const json_t *probe, char *buf, size_t size) {
        const json_t *ok = json_object_get(probe, "ok");
        double ms = json_number_value(json_object_get(probe, "latency_ms"));

        if (!json_is_boolean(ok))
                return NULL;
        if (!json_is_true(ok))
                return "fail";
        if (!json_is_number(json_object_get(probe, "latency_ms")) || ms < 0)
                return "ok";
        snprintf(buf, size, ms < 10 ? "ok %.1fms" : "ok %.0fms", ms);
        return buf;
}

static int add_node_row(Table *t, const json_t *node, Output output) {
        _cleanup_free_ char *address = NULL, *probe_error = NULL;
        char sessions[64], streams[32], reconnects[32], probe[32], age[TABLE_AGE_MAX];
        const char *state = json_str(node, "state"), *last_error = json_str(node, "last_error");
        const json_t *p = json_object_get(node, "probe");

        address = table_format_address(json_str(node, "address"), (unsigned) json_int(node, "port"));
        if (!address)
                return -ENOMEM;
        snprintf(sessions, sizeof(sessions), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 json_int(node, "sessions_up"), json_int(node, "sessions_total"));
        snprintf(streams, sizeof(streams), "%" JSON_INTEGER_FORMAT, json_int(node, "streams"));
        snprintf(reconnects, sizeof(reconnects), "%" JSON_INTEGER_FORMAT, json_int(node, "reconnects"));
        /* SSH is fine but the kubelet is not: that is the error to show */
        if (!last_error && json_is_false(json_object_get(p, "ok")) && json_str(p, "error")) {
                if (asprintf(&probe_error, "probe: %s", json_str(p, "error")) < 0) {
                        probe_error = NULL;
                        return -ENOMEM;
                }
                last_error = probe_error;
        }

        if (table_add_cell(t, json_str(node, "name"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, address, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, state, table_state_color(state)) < 0 ||
            table_add_cell(t, json_str(node, "route"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, sessions, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, streams, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(p, probe, sizeof(probe)), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, age_since(json_str(node, "state_since"), age, sizeof(age)),
                           TABLE_COLOR_NONE) < 0)
                return -ENOMEM;
        if (output == OUTPUT_WIDE &&
            (table_add_cell(t, json_str(node, "host_key"), TABLE_COLOR_NONE) < 0 ||
             table_add_cell(t, reconnects, TABLE_COLOR_NONE) < 0))
                return -ENOMEM;
        return table_add_cell(t, last_error, TABLE_COLOR_NONE);
}

static int print_node_table(const Ctl *ctl, const json_t *nodes) {
        static const char *const headers[] = { "NODE",    "ADDRESS", "STATE", "ROUTE",     "SESSIONS",
                                               "STREAMS", "PROBE",   "SINCE", "LAST ERROR" };
        static const char *const headers_wide[] = { "NODE",  "ADDRESS", "STATE",    "ROUTE",
                                                    "SESSIONS", "STREAMS", "PROBE", "SINCE",
                                                    "HOST KEY", "RECONNECTS", "LAST ERROR" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;
        const json_t *node;
        size_t i;
        int r;

        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);
        if (json_array_size(nodes) == 0) {
                fprintf(stderr, "No nodes configured.\n");
                return 0;
        }

        if (ctl->output == OUTPUT_WIDE)
                r = table_new(headers_wide, ELEMENTSOF(headers_wide), &t);
        else
                r = table_new(headers, ELEMENTSOF(headers), &t);
        if (r < 0)
                return ctl_oom(ctl);
        json_array_foreach(nodes, i, node)
                if (add_node_row(t, node, ctl->output) < 0)
                        return ctl_oom(ctl);
        if (table_format(t, ctl->color, &text) < 0)
                return ctl_oom(ctl);
        fputs(text, stdout);
        return 0;
}

static int print_json(const Ctl *ctl, const json_t *v) {
        _cleanup_free_ char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));

        if (!s)
                return ctl_oom(ctl);
        printf("%s\n", s);
        return 0;
}

static int cmd_nodes(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);
        return print_node_table(ctl, json_object_get(v, "nodes"));
}

static int cmd_status(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *status = NULL, *nodes = NULL;
        json_int_t draining;
        int r;

        r = ctl_get_json(ctl, "/v1/status", &status);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, status);

        printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " nodes up, %" JSON_INTEGER_FORMAT
               " degraded, ",
               json_int(status, "nodes_up"), json_int(status, "nodes_total"),
               json_int(json_object_get(status, "states"), "degraded"));
        draining = json_int(json_object_get(status, "states"), "draining");
        if (draining > 0)
                printf("%" JSON_INTEGER_FORMAT " draining, ", draining);
        printf("%" JSON_INTEGER_FORMAT " streams\n", json_int(status, "streams"));

        r = ctl_get_json(ctl, "/v1/nodes", &nodes);
        if (r != 0)
                return r;
        if (json_array_size(json_object_get(nodes, "nodes")) > 0)
                putchar('\n');
        return print_node_table(ctl, json_object_get(nodes, "nodes"));
}

/* One field of 'node NAME': strings as they are, null as "-", the rest as JSON. */
static char *field_text(const json_t *v) {
        if (json_is_string(v))
                return table_escape(json_string_value(v));
        if (!v || json_is_null(v))
                return strdup("-");
        /* the daemon's 9 digits, not the binary noise of 17 */
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
}

/* "/v1/nodes/NAME" + suffix, the name escaped; NULL when out of memory. */
static char *node_path(const char *name, const char *suffix) {
        _cleanup_free_ char *escaped = path_escape(name);
        char *target;

        if (!escaped || asprintf(&target, "/v1/nodes/%s%s", escaped, suffix) < 0)
                return NULL;
        return target;
}

static int cmd_node(const Ctl *ctl, const char *name) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *target = NULL;
        const char *key;
        json_t *value;
        int r, width = 0;

        if (strlen(name) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: node name too long\n");
                return EXIT_USAGE;
        }
        target = node_path(name, "");
        if (!target)
                return ctl_oom(ctl);
        r = ctl_get_json(ctl, target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        json_object_foreach(v, key, value)
                width = MAX(width, (int) strlen(key) + 1);
        json_object_foreach(v, key, value) {
                _cleanup_free_ char *text = field_text(value);
                TableColor color = TABLE_COLOR_NONE;
                char age[TABLE_AGE_MAX];
                const char *ago = NULL;

                if (!text)
                        return ctl_oom(ctl);
                if (streq(key, "state") && ctl->color)
                        color = table_state_color(json_string_value(value));
                if (streq(key, "state_since"))
                        ago = age_since(json_string_value(value), age, sizeof(age));
                printf("%s:%*s %s%s%s%s%s%s\n", key, width - (int) strlen(key) - 1, "",
                       table_color_code(color), text, color != TABLE_COLOR_NONE ? TABLE_COLOR_RESET : "",
                       ago ? " (" : "", ago ?: "", ago ? " ago)" : "");
        }
        return 0;
}

/* ---- check: one line for Nagios and its kin ------------------------------- */

typedef enum CheckLevel {
        CHECK_OK,
        CHECK_WARNING,
        CHECK_CRITICAL,
} CheckLevel;

/* Up is fine; degraded and draining nodes still carry streams (or finish
 * them); every other state carries nothing. */
static CheckLevel check_level(const char *state) {
        if (streq_ptr(state, "up"))
                return CHECK_OK;
        if (streq_ptr(state, "degraded") || streq_ptr(state, "draining"))
                return CHECK_WARNING;
        return CHECK_CRITICAL;
}

/* Append "; LABEL: a, b (x), ... (N more)" for the nodes in 'level' (and,
 * when 'state' is set, in that state). */
static void check_list(FILE *f, const json_t *nodes, CheckLevel level, const char *state, const char *label,
                       bool with_state) {
        const json_t *node;
        size_t i, n = 0;

        json_array_foreach(nodes, i, node) {
                const char *st = json_str(node, "state");
                _cleanup_free_ char *name = NULL;

                if (check_level(st) != level || (state && !streq_ptr(st, state)))
                        continue;
                if (n++ >= CHECK_NAMES_MAX)
                        continue;
                name = table_escape(json_str(node, "name"));
                /* '|' starts the performance data */
                for (char *p = name; p && *p; p++)
                        if (*p == '|')
                                *p = '?';
                if (n == 1)
                        fprintf(f, "; %s: ", label);
                else
                        fputs(", ", f);
                fputs(name ?: "?", f);
                if (with_state)
                        fprintf(f, " (%s)", strna(st));
        }
        if (n > CHECK_NAMES_MAX)
                fprintf(f, " and %zu more", n - CHECK_NAMES_MAX);
}

static int cmd_check(const Ctl *ctl) {
        static const char *const level_names[] = { "OK", "WARNING", "CRITICAL" };
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *text = NULL;
        CheckLevel level = CHECK_OK;
        json_int_t streams = 0;
        const json_t *nodes, *node;
        size_t i, total, up = 0, size = 0;
        FILE *f;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        nodes = json_object_get(v, "nodes");
        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);

        total = json_array_size(nodes);
        json_array_foreach(nodes, i, node) {
                CheckLevel l = check_level(json_str(node, "state"));

                if (l == CHECK_OK)
                        up++;
                level = MAX(level, l);
                streams += json_int(node, "streams");
        }

        f = open_memstream(&text, &size);
        if (!f)
                return ctl_oom(ctl);
        if (total == 0) {
                /* a daemon with nothing to reach: worth a look, not a page */
                level = CHECK_WARNING;
                fputs("no nodes configured", f);
        } else {
                fprintf(f, "%zu/%zu nodes up", up, total);
                if (level == CHECK_OK)
                        fprintf(f, ", %" JSON_INTEGER_FORMAT " stream%s", streams, plural(streams));
                check_list(f, nodes, CHECK_CRITICAL, NULL, "down", true);
                check_list(f, nodes, CHECK_WARNING, "degraded", "degraded", false);
                check_list(f, nodes, CHECK_WARNING, "draining", "draining", false);
        }
        fprintf(f, " | nodes_up=%zu;;;0;%zu streams=%" JSON_INTEGER_FORMAT, up, total, streams);
        if (ferror(f) | fclose(f))
                return ctl_oom(ctl);

        printf("SSHTUND %s - %s\n", level_names[level], text);
        return (int) level;
}

/* ---- reconnect, drain, undrain ---------------------------------------------- */

static int cmd_node_action(const Ctl *ctl, const char *action, const char *name) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *target = NULL, *suffix = NULL, *shown = NULL;
        const char *state;
        json_int_t streams;
        int r;

        if (strlen(name) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: node name too long\n");
                return EXIT_USAGE;
        }
        if (asprintf(&suffix, "/%s", action) < 0) {
                suffix = NULL;
                return ctl_oom(ctl);
        }
        target = node_path(name, suffix);
        if (!target)
                return ctl_oom(ctl);
        r = ctl_request_json(ctl, "POST", target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        shown = table_escape(json_str(v, "name") ?: name);
        state = json_str(v, "state");
        streams = json_int(v, "streams");
        if (!shown)
                return ctl_oom(ctl);
        if (streq(action, "drain")) {
                if (streq_ptr(state, "draining"))
                        printf("%s: draining, %" JSON_INTEGER_FORMAT " stream%s left\n", shown, streams,
                               plural(streams));
                else /* not up now: it takes no streams once it is */
                        printf("%s: draining (now %s), %" JSON_INTEGER_FORMAT " stream%s left\n", shown,
                               strna(state), streams, plural(streams));
        } else if (streq(action, "undrain"))
                printf("%s: undrained, now %s\n", shown, strna(state));
        else
                printf("%s: reconnecting, now %s\n", shown, strna(state));
        return 0;
}

/* ---- migration -------------------------------------------------------------- */

static int add_migration_row(Table *t, const json_t *node, Output output) {
        char upstream[32], probe[32];
        const json_t *up = json_object_get(node, "upstream_probe");
        bool ready = json_is_true(json_object_get(node, "ready"));

        if (table_add_cell(t, json_str(node, "name"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, json_str(node, "route"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(up, upstream, sizeof(upstream)),
                           json_is_false(json_object_get(up, "ok")) ? TABLE_COLOR_RED : TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(json_object_get(node, "probe"), probe, sizeof(probe)), TABLE_COLOR_NONE) <
                    0 ||
            table_add_cell(t, ready ? "yes" : "no", ready ? TABLE_COLOR_GREEN : TABLE_COLOR_NONE) < 0)
                return -ENOMEM;
        if (output == OUTPUT_WIDE &&
            (table_add_cell(t, json_is_true(json_object_get(node, "migrated")) ? "yes" : "no", TABLE_COLOR_NONE) <
                     0 ||
             table_add_cell(t, json_str(up, "error"), TABLE_COLOR_NONE) < 0))
                return -ENOMEM;
        return 0;
}

/* Print text from the daemon line by line, each line as a table cell shows
 * it (control characters as '?'), so that it cannot drive the terminal. */
static int print_lines(const char *text) {
        while (text && *text) {
                size_t n = strcspn(text, "\n");
                _cleanup_free_ char *line = strndup(text, n), *shown = NULL;

                if (!line || !(shown = table_escape(line)))
                        return -ENOMEM;
                printf("%s\n", shown);
                text += n + (text[n] == '\n');
        }
        return 0;
}

/* The final switch: printed only when the daemon says every node is on
 * Konnectivity and its upstream path passes. */
static int print_final_switch(const Ctl *ctl, const json_t *fs) {
        _cleanup_free_ char *flags = table_escape(json_str(fs, "konnectivity_server_flags"));

        if (!flags)
                return ctl_oom(ctl);
        printf("\nEvery node is on Konnectivity and its upstream path passes: ready for the final switch.\n"
               "kube-apiserver's EgressSelectorConfiguration (--egress-selector-config-file):\n\n");
        if (print_lines(json_str(fs, "egress_selector_configuration")) < 0)
                return ctl_oom(ctl);
        printf("\nkonnectivity-server's flags to match:\n\n%s\n", flags);
        return 0;
}

static int cmd_migration(const Ctl *ctl) {
        static const char *const headers[] = { "NODE", "ROUTE", "UPSTREAM", "SSH PROBE", "READY" };
        static const char *const headers_wide[] = { "NODE",  "ROUTE",    "UPSTREAM",      "SSH PROBE",
                                                    "READY", "MIGRATED", "UPSTREAM ERROR" };
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;
        const json_t *nodes, *node, *fs;
        size_t i;
        int r;

        r = ctl_get_json(ctl, "/v1/migration", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        nodes = json_object_get(v, "nodes");
        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);
        if (json_array_size(nodes) > 0) {
                if (ctl->output == OUTPUT_WIDE)
                        r = table_new(headers_wide, ELEMENTSOF(headers_wide), &t);
                else
                        r = table_new(headers, ELEMENTSOF(headers), &t);
                if (r < 0)
                        return ctl_oom(ctl);
                json_array_foreach(nodes, i, node)
                        if (add_migration_row(t, node, ctl->output) < 0)
                                return ctl_oom(ctl);
                if (table_format(t, ctl->color, &text) < 0)
                        return ctl_oom(ctl);
                fputs(text, stdout);
                putchar('\n');
        }

        printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " nodes on konnectivity, %" JSON_INTEGER_FORMAT
               " ready%s\n",
               json_int(v, "nodes_on_konnectivity"), json_int(v, "nodes_total"), json_int(v, "nodes_ready"),
               json_is_string(json_object_get(v, "upstream")) ? "" : " (no konnectivity upstream configured)");
        fs = json_object_get(v, "final_switch");
        if (json_is_object(fs))
                return print_final_switch(ctl, fs);
        return 0;
}

/* ---- reload ---------------------------------------------------------------- */

static int cmd_reload(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        /* an invalid file comes back as an error reply: its message (FILE:LINE)
         * is printed and the exit status is 1 */
        r = ctl_request_json(ctl, "POST", "/v1/reload", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);
        printf("reloaded: %" JSON_INTEGER_FORMAT " node%s\n", json_int(v, "nodes_total"),
               plural(json_int(v, "nodes_total")));
        return 0;
}

/* ---- hostkeys scan ---------------------------------------------------------- */

/* What `ssh-keygen -l` prints in parentheses, and the usual file name part. */
static void key_names(const char *type, const char **ret_label, const char **ret_file) {
        static const struct {
                const char *prefix, *label, *file;
        } names[] = {
                { "ssh-ed25519", "ED25519", "ed25519" },
                { "ecdsa-sha2-", "ECDSA", "ecdsa" },
                { "ssh-rsa", "RSA", "rsa" },
                { "ssh-dss", "DSA", "dsa" },
                { "sk-ssh-ed25519@", "ED25519-SK", "ed25519_sk" },
                { "sk-ecdsa-sha2-", "ECDSA-SK", "ecdsa_sk" },
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strncmp(type, names[i].prefix, strlen(names[i].prefix)) == 0) {
                        *ret_label = names[i].label;
                        *ret_file = names[i].file;
                        return;
                }
        *ret_label = type;
        *ret_file = "*";
}

static int cmd_hostkeys_scan(Ctl *ctl, const char *what) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *escaped = NULL, *target = NULL, *line = NULL, *fingerprint = NULL,
                            *type = NULL, *file = NULL, *host = NULL;
        const char *label, *key_file, *check;
        json_int_t bits;
        int r;

        if (strlen(what) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: scan target too long\n");
                return EXIT_USAGE;
        }
        escaped = path_escape(what);
        if (!escaped || asprintf(&target, "/v1/hostkeys/scan?target=%s", escaped) < 0) {
                target = NULL;
                return ctl_oom(ctl);
        }
        /* the daemon waits for the node: allow for it */
        ctl->timeout = CTL_SCAN_TIMEOUT_USEC;
        ctl->deadline = now_usec(CLOCK_MONOTONIC) + ctl->timeout;
        r = ctl_request_json(ctl, "POST", target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        line = table_escape(json_str(v, "known_hosts_line"));
        fingerprint = table_escape(json_str(v, "fingerprint"));
        type = table_escape(json_str(v, "key_type"));
        file = table_escape(json_str(v, "known_hosts"));
        if (!line || !fingerprint || !type || !file)
                return ctl_oom(ctl);
        if (!json_str(v, "known_hosts_line") || !json_str(v, "fingerprint") || !json_str(v, "key_type"))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s", ctl->socket);
        host = strndup(line, strcspn(line, " "));
        if (!host)
                return ctl_oom(ctl);
        key_names(type, &label, &key_file);
        bits = json_int(v, "bits");
        check = json_str(v, "known_hosts_check");

        /* stdout holds only the line, ready for >> known_hosts once checked */
        printf("%s\n", line);
        if (fflush(stdout) != 0)
                return ctl_fail(ctl, EXIT_FAILURE, "failed to write the output: %m");
        if (bits > 0)
                fprintf(stderr, "%" JSON_INTEGER_FORMAT " ", bits);
        fprintf(stderr, "%s %s (%s)\n", fingerprint, host, label);
        fprintf(stderr,
                "Compare it, over a channel you trust (console, configuration management), with the\n"
                "node's own key:  ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub\n",
                key_file);
        if (streq_ptr(check, "ok"))
                fprintf(stderr, "This key is already in %s.\n", file);
        else if (streq_ptr(check, "mismatch"))
                fprintf(stderr,
                        "WARNING: %s holds a different key for %s. Find out why (reinstalled node, or\n"
                        "someone in the path?) before replacing it.\n",
                        file, host);
        else if (streq_ptr(check, "revoked"))
                fprintf(stderr, "WARNING: %s lists this key as @revoked.\n", file);
        else
                fprintf(stderr, "If the fingerprints are equal, append the line to %s.\n", file);
        return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void help(void) {
        printf("Usage: sshtunctl [-s SOCKET] [-o table|json|wide] COMMAND [ARG]\n"
               "\n"
               "Commands:\n"
               "  status                 summary and the node table\n"
               "  nodes                  the node table\n"
               "  node NAME              every field of one node\n"
               "  check                  one line and exit status for monitoring (0 OK, 1 WARNING,\n"
               "                         2 CRITICAL, 3 UNKNOWN)\n"
               "  reconnect NAME         close the node's sessions and connect again now\n"
               "  drain NAME             no new streams through the node; open ones finish\n"
               "  undrain NAME           take new streams again\n"
               "  reload                 apply the edited configuration (exit 1, and why, if it\n"
               "                         does not load)\n"
               "  migration              the move to Konnectivity: route, upstream check and\n"
               "                         readiness per node; the final switch once all are moved\n"
               "  hostkeys scan TARGET   fetch the host key of a node (NODE, HOST or HOST:PORT) and\n"
               "                         print its known_hosts line; writes nothing\n"
               "\n"
               "Options:\n"
               "  -s, --socket SOCKET   admin socket (default $SSHTUND_ADMIN_SOCKET, then %s)\n"
               "  -o, --output FORMAT   table (default), wide or json\n"
               "  -h, --help            show this help\n"
               "      --version         show the version\n",
               DEFAULT_SOCKET);
}

static int usage_error(const char *message, const char *arg) {
        fprintf(stderr, "sshtunctl: %s%s%s\nTry 'sshtunctl --help'.\n", message, arg ? ": " : "", arg ?: "");
        return EXIT_USAGE;
}

static bool want_color(void) {
        const char *term = getenv("TERM");

        return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !streq_ptr(term, "dumb");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        Ctl ctl = { .output = OUTPUT_TABLE };
        const char *command;
        char **args;
        int c, r, n_args;

        ctl.socket = getenv("SSHTUND_ADMIN_SOCKET");
        if (!ctl.socket || !*ctl.socket)
                ctl.socket = DEFAULT_SOCKET;

        while ((c = getopt_long(argc, argv, "s:o:h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        ctl.socket = optarg;
                        break;
                case 'o':
                        if (streq(optarg, "table"))
                                ctl.output = OUTPUT_TABLE;
                        else if (streq(optarg, "wide"))
                                ctl.output = OUTPUT_WIDE;
                        else if (streq(optarg, "json"))
                                ctl.output = OUTPUT_JSON;
                        else
                                return usage_error("unknown output format", optarg);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sshtunctl %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'sshtunctl --help'.\n");
                        return EXIT_USAGE;
                }

        if (optind >= argc)
                return usage_error("no command given", NULL);
        command = argv[optind];
        args = argv + optind + 1;
        n_args = argc - optind - 1;

        ctl.color = ctl.output != OUTPUT_JSON && want_color();
        ctl.timeout = CTL_TIMEOUT_USEC;
        ctl.deadline = now_usec(CLOCK_MONOTONIC) + ctl.timeout;

        if (streq(command, "status") || streq(command, "nodes")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = streq(command, "status") ? cmd_status(&ctl) : cmd_nodes(&ctl);
        } else if (streq(command, "node")) {
                if (n_args != 1)
                        return usage_error("expected one node name", command);
                r = cmd_node(&ctl, args[0]);
        } else if (streq(command, "check")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                ctl.nagios = true;
                r = cmd_check(&ctl);
        } else if (streq(command, "reconnect") || streq(command, "drain") || streq(command, "undrain")) {
                if (n_args != 1)
                        return usage_error("expected one node name", command);
                r = cmd_node_action(&ctl, command, args[0]);
        } else if (streq(command, "migration")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = cmd_migration(&ctl);
        } else if (streq(command, "reload")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = cmd_reload(&ctl);
        } else if (streq(command, "hostkeys")) {
                if (n_args < 1 || !streq(args[0], "scan"))
                        return usage_error("expected 'hostkeys scan NODE|HOST[:PORT]'", command);
                if (n_args != 2)
                        return usage_error("expected one node name, HOST or HOST:PORT", "hostkeys scan");
                r = cmd_hostkeys_scan(&ctl, args[1]);
        } else
                return usage_error("unknown command", command);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "sshtunctl: failed to write the output: %m\n");
                return ctl.nagios ? EXIT_UNREACHABLE : EXIT_FAILURE;
        }
        return r;
}
