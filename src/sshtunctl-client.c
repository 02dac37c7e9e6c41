/* sshtunctl's client of admin.sock: one HTTP/1.1 request under the command's
 * deadline, its reply read within bounds and its JSON parsed; failures told. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "http.h"
#include "macro.h"
#include "sshtunctl-internal.h"
#include "table.h"

#define CTL_HEAD_MAX (64 * 1024)
#define CTL_BODY_MAX (16 * 1024 * 1024)

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

/* Say why the command failed and return its exit status: on stderr (or in
 * the --watch frame), or for `check` as the plugin's one line (UNKNOWN,
 * exit 3). */
_printf_(3, 4) int ctl_fail(const Ctl *ctl, int status, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (ctl->nagios) {
                fputs("SSHTUND UNKNOWN - ", ctl->out);
                vfprintf(ctl->out, format, ap);
                fputc('\n', ctl->out);
                status = EXIT_UNREACHABLE;
        } else {
                fputs("sshtunctl: ", ctl->err);
                vfprintf(ctl->err, format, ap);
                fputc('\n', ctl->err);
        }
        va_end(ap);
        return status;
}

int ctl_oom(const Ctl *ctl) {
        return ctl_fail(ctl, EXIT_FAILURE, "out of memory");
}

static json_t *json_decref_null(json_t *v) {
        json_decref(v);
        return NULL;
}

/* ---- HTTP over the Unix socket -------------------------------------------- */

static int remaining_msec(const Ctl *ctl) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= ctl->deadline)
                return 0;
        return (int) ((ctl->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* Wait for 'events' until the deadline: 0, -ETIMEDOUT, -ECANCELED (--watch
 * was interrupted) or -errno. */
static int wait_fd(const Ctl *ctl, int fd, short events) {
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = fd, .events = events },
                        { .fd = ctl->cancel_fd, .events = POLLIN },
                };
                int ms = remaining_msec(ctl), r;

                if (ms == 0)
                        return -ETIMEDOUT;
                r = poll(p, ctl->cancel_fd >= 0 ? 2 : 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (ctl->cancel_fd >= 0 && p[1].revents)
                        return -ECANCELED;
                if (r > 0)
                        return 0;
        }
}

static int connect_path(const Ctl *ctl, const char *path, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        _cleanup_close_ int fd = -1;
        int ms = remaining_msec(ctl);
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

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

/* The admin socket; a user who may not use the default one (root's) gets
 * the read-only socket next to it, if there is one. */
static int connect_socket(const Ctl *ctl, int *ret_fd) {
        int r = connect_path(ctl, ctl->socket, ret_fd);

        if (r == -EACCES && ctl->readonly_socket && connect_path(ctl, ctl->readonly_socket, ret_fd) >= 0)
                return 0;
        return r;
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

/* Percent-encode a node name for the request path. */
char *path_escape(const char *s) {
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
        if (r == -ECANCELED) /* --watch ends: nothing to say */
                return EXIT_FAILURE;
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
        if (r == -ETIMEDOUT || r == -ECANCELED)
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
                        if (r == -ETIMEDOUT || r == -ECANCELED)
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
                        HttpResponseHead h;

                        r = http_response_parse(data, len, CTL_HEAD_MAX, &h);
                        if (r == -EMSGSIZE)
                                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: head too large",
                                                ctl->socket);
                        if (r < 0)
                                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s", ctl->socket);
                        if (r > 0) {
                                head = (size_t) r;
                                status = h.status;
                                length = h.content_length;
                        }
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

int ctl_request_status(const Ctl *ctl, const char *method, const char *target, int *ret_status, json_t **ret) {
        _cleanup_(reply_done) Reply reply = {};
        json_t *v;
        int r;

        r = ctl_request(ctl, method, target, &reply);
        if (r != 0)
                return r;
        v = json_loadb(reply.body, reply.body_len, 0, NULL);
        if (v && !json_is_object(v))
                v = json_decref_null(v);
        *ret_status = reply.status;
        *ret = v;
        return 0;
}

/* Send the request and parse a 200 reply's JSON object into *ret. For an
 * error reply, says what the daemon said and returns 1. */
int ctl_request_json(const Ctl *ctl, const char *method, const char *target, json_t **ret) {
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

int ctl_get_json(const Ctl *ctl, const char *target, json_t **ret) {
        return ctl_request_json(ctl, "GET", target, ret);
}

/* "/v1/nodes/NAME" + suffix, the name escaped; NULL when out of memory. */
char *node_path(const char *name, const char *suffix) {
        _cleanup_free_ char *escaped = path_escape(name);
        char *target;

        if (!escaped || asprintf(&target, "/v1/nodes/%s%s", escaped, suffix) < 0)
                return NULL;
        return target;
}
