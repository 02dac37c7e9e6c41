/* The admin API: routing a request to its answer, the listening sockets and
 * their connections (one request each, answered and closed). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "address.h"
#include "admin-internal.h"
#include "admin.h"
#include "buffer.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "node.h"

#define ADMIN_BACKLOG 64
#define ADMIN_CONNECTIONS_MAX 64
#define ADMIN_TIMER_ACCURACY_USEC (100 * USEC_PER_MSEC)
/* Request bodies and trailing junk we read and drop before closing. */
#define ADMIN_DISCARD_MAX (64 * 1024)
/* Largest reply body; sshtunctl refuses more than this. */
#define ADMIN_BODY_MAX (16 * 1024 * 1024)
#define ADMIN_HEAD_ROOM 1024
#define ADMIN_ACCEPT_BATCH 16
/* Out of file descriptors: stop accepting for a while instead of spinning. */
#define ADMIN_ACCEPT_PAUSE_USEC (250 * USEC_PER_MSEC)
#define ADMIN_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

DEFINE_TRIVIAL_CLEANUP_FUNC(Admin *, admin_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);

/* ---- request targets and replies ------------------------------------------- */

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decode s[0..n). -EINVAL for a broken escape or an encoded NUL. */
int admin_url_decode(const char *s, size_t n, char **ret) {
        char *out = malloc(n + 1), *p = out;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        *p++ = s[i];
                        continue;
                }
                if (n - i < 3 || unhex(s[i + 1]) < 0 || unhex(s[i + 2]) < 0) {
                        free(out);
                        return -EINVAL;
                }
                char c = (char) (unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                if (c == 0) {
                        free(out);
                        return -EINVAL;
                }
                *p++ = c;
                i += 2;
        }
        *p = 0;
        *ret = out;
        return 0;
}

static int reply_json(AdminReply *r, int status, json_t *v) {
        r->status = status;
        r->content_type = JSON_TYPE;
        return admin_json_to_body(v, &r->body);
}

int admin_reply_error(AdminReply *r, int status, const char *message) {
        r->status = status;
        r->content_type = JSON_TYPE;
        return admin_error_body(message, &r->body);
}

int admin_reply_not_allowed(AdminReply *r, const char *allow) {
        r->allow = allow;
        return admin_reply_error(r, 405, "method not allowed");
}

/* The path of a request target: origin-form ("/v1/status?x") or
 * absolute-form ("http://host/v1/status"), without the query. */
static void target_path(const char *target, const char **ret_path, size_t *ret_len) {
        const char *p = target;

        if (strncasecmp(p, "http://", 7) == 0) {
                p = strchr(p + 7, '/');
                if (!p)
                        p = "/";
        }
        *ret_path = p;
        *ret_len = strcspn(p, "?#");
}

static bool path_is(const char *path, size_t len, const char *want) {
        return len == strlen(want) && memcmp(path, want, len) == 0;
}

static int reply_no_such_node(AdminReply *reply, const char *name) {
        _cleanup_free_ char *message = NULL;

        if (asprintf(&message, "no such node: %s", name) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        return admin_reply_error(reply, 404, message);
}

/* ---- operator actions: POST /v1/nodes/NAME/{reconnect,drain,undrain} ------ */

static const struct {
        const char *name;
        void (*run)(Node *n);
} node_actions[] = {
        { "reconnect", node_reconnect },
        { "drain", node_drain },
        { "undrain", node_undrain },
};

/* "NAME/ACTION" after "/v1/nodes/": the action's index, and the raw name. */
static bool node_action_match(const char *rest, size_t len, size_t *ret_action, size_t *ret_name_len) {
        const char *slash = memchr(rest, '/', len);

        if (!slash || slash == rest)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(node_actions); i++)
                if (path_is(slash + 1, len - (size_t) (slash + 1 - rest), node_actions[i].name)) {
                        *ret_action = i;
                        *ret_name_len = (size_t) (slash - rest);
                        return true;
                }
        return false;
}

static int route_node_action(Daemon *d, const char *method, const char *raw_name, size_t raw_len,
                             size_t action, AdminReply *reply) {
        _cleanup_free_ char *name = NULL;
        Node *n;
        int r;

        if (!streq(method, "POST"))
                return admin_reply_not_allowed(reply, "POST");
        r = admin_url_decode(raw_name, raw_len, &name);
        if (r == -EINVAL)
                return admin_reply_error(reply, 400, "malformed node name in path");
        if (r < 0)
                return r;
        n = daemon_find_node(d, name);
        if (!n)
                return reply_no_such_node(reply, name);

        if (!streq(node_actions[action].name, "reconnect")) /* node.c logs its reconnects */
                log_node(LOG_NOTICE, node_name(n), "%s requested over the admin API (%u streams open)",
                         node_actions[action].name, node_streams(n));
        node_actions[action].run(n);
        return reply_json(reply, 200, admin_node_to_json(n));
}

/* ---- health and metrics: the routes metrics_listen serves too ---------------- */

#define TEXT_TYPE "text/plain; charset=utf-8"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

static int reply_text(AdminReply *r, int status, const char *content_type, char *body) {
        if (!body)
                return -ENOMEM;
        r->status = status;
        r->content_type = content_type;
        r->body = body;
        return 0;
}

static int admin_metrics(Daemon *d, AdminReply *reply) {
        return reply_text(reply, 200, METRICS_TYPE, metrics_render(d, NULL));
}

/* Ready when at least admin.ready_min_fraction of the nodes are up or
 * degraded (degraded nodes still carry streams). With no nodes there is
 * nothing to wait for: ready. */
static int admin_readyz(Daemon *d, AdminReply *reply) {
        double fraction = daemon_config(d)->admin.ready_min_fraction;
        size_t n = daemon_n_nodes(d), ok = 0;
        char *body = NULL;
        bool ready;

        for (size_t i = 0; i < n; i++) {
                NodeInfo info;
                node_get_info(daemon_node(d, i), &info);
                if (info.state == NODE_UP || info.state == NODE_DEGRADED)
                        ok++;
        }
        /* the slack keeps 0.28 of 25 nodes at 7, not at 7.000000000000001 */
        ready = n == 0 || (double) ok + 1e-9 >= fraction * (double) n;
        if (n == 0) {
                body = strdup("ready: no nodes configured\n");
        } else if (asprintf(&body, "%s: %zu/%zu nodes up or degraded, need %g%%\n", ready ? "ready" : "not ready",
                            ok, n, fraction * 100) < 0)
                body = NULL;
        return reply_text(reply, ready ? 200 : 503, TEXT_TYPE, body);
}

/* 1 if 'path' is one of these routes (the reply is set), 0 if not, or
 * -ENOMEM. */
static int route_public(Daemon *d, const char *method, const char *path, size_t len, AdminReply *reply) {
        int r;

        if (path_is(path, len, "/healthz"))
                r = streq(method, "GET") ? reply_text(reply, 200, TEXT_TYPE, strdup("ok\n"))
                                         : admin_reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/readyz"))
                r = streq(method, "GET") ? admin_readyz(d, reply) : admin_reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/metrics"))
                r = streq(method, "GET") ? admin_metrics(d, reply) : admin_reply_not_allowed(reply, "GET");
        else
                return 0;
        return r < 0 ? r : 1;
}

/* What metrics_listen answers: the routes above, 404 for the rest. */
static int admin_route_public_only(Daemon *d, const char *method, const char *target, AdminReply *reply) {
        const char *path;
        size_t len;
        int r;

        target_path(target, &path, &len);
        r = route_public(d, method, path, len, reply);
        if (r != 0)
                return r < 0 ? r : 0;
        return admin_reply_error(reply, 404, "not found");
}

/* ---- POST /v1/reload ---------------------------------------------------------- */

static int admin_reload(Daemon *d, AdminReply *reply) {
        _cleanup_free_ char *error = NULL;
        json_t *v;
        int r;

        r = daemon_reload(d, false, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* the request was fine, the file is not: the daemon could not do it */
                return admin_reply_error(reply, 500, error ? error : strerror(-r));
        v = json_pack("{s:b, s:I}", "reloaded", 1, "nodes_total", (json_int_t) daemon_n_nodes(d));
        if (!v)
                return -ENOMEM;
        return reply_json(reply, 200, v);
}

/* ---- the whole API ---------------------------------------------------------- */

static int admin_route(Daemon *d, const char *method, const char *target, AdminReply *reply) {
        static const char nodes_prefix[] = "/v1/nodes/";
        bool get = streq(method, "GET");
        const char *path;
        size_t len;
        int handled;

        target_path(target, &path, &len);

        handled = route_public(d, method, path, len, reply);
        if (handled != 0)
                return handled < 0 ? handled : 0;
        if (path_is(path, len, "/v1/status")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, admin_status_to_json(d));
        }
        if (path_is(path, len, "/v1/nodes")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, admin_nodes_to_json(d));
        }
        if (path_is(path, len, "/v1/migration")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, admin_migration_to_json(d));
        }
        if (path_is(path, len, SCAN_PATH))
                return admin_route_scan(d, method, target, reply);
        if (path_is(path, len, "/v1/reload")) {
                if (!streq(method, "POST"))
                        return admin_reply_not_allowed(reply, "POST");
                return admin_reload(d, reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0) {
                size_t action, name_len;

                if (node_action_match(path + strlen(nodes_prefix), len - strlen(nodes_prefix), &action,
                                      &name_len))
                        return route_node_action(d, method, path + strlen(nodes_prefix), name_len, action,
                                                 reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0 &&
            !memchr(path + strlen(nodes_prefix), '/', len - strlen(nodes_prefix))) {
                _cleanup_free_ char *name = NULL;
                const char *raw = path + strlen(nodes_prefix);
                Node *n;
                int r;

                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                r = admin_url_decode(raw, len - strlen(nodes_prefix), &name);
                if (r == -EINVAL)
                        return admin_reply_error(reply, 400, "malformed node name in path");
                if (r < 0)
                        return r;
                n = daemon_find_node(d, name);
                if (n)
                        return reply_json(reply, 200, admin_node_to_json(n));
                return reply_no_such_node(reply, name);
        }
        return admin_reply_error(reply, 404, "not found");
}

int admin_handle(Daemon *d, const char *method, const char *target, int *ret_status, char **ret_body,
                 const char **ret_content_type, const char **ret_allow) {
        AdminReply reply = {};
        int r;

        assert(d);
        assert(method);
        assert(target);

        r = admin_route(d, method, target, &reply);
        if (r < 0) {
                free(reply.body);
                return r;
        }
        *ret_status = reply.status;
        *ret_body = reply.body;
        *ret_content_type = reply.content_type;
        if (ret_allow)
                *ret_allow = reply.allow;
        return 0;
}

/* ---- connections ---------------------------------------------------------- */

AdminConn *admin_conn_free(AdminConn *c) {
        if (!c)
                return NULL;
        admin_scan_free(c->scan);
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->fd = safe_close(c->fd);
        buffer_done(&c->in);
        buffer_done(&c->out);
        if (c->admin) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        c->admin->conns = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                c->admin->n_conns--;
        }
        free(c);
        return NULL;
}

/* Write what is queued. 0: more to write later (or lingering now), < 0: error. */
static int conn_flush(AdminConn *c) {
        while (!buffer_empty(&c->out)) {
                ssize_t n = buffer_write_fd(&c->out, c->fd);
                if (n == -EAGAIN)
                        return sd_event_source_set_io_events(c->io, EPOLLOUT);
                if (n == -EINTR)
                        continue;
                if (n < 0)
                        return (int) n;
        }
        buffer_done(&c->out);

        /* Closing while the client's bytes sit unread in our queue would end
         * its read with ECONNRESET instead of EOF: shut our side, then drop
         * what still comes until the client closes. */
        if (shutdown(c->fd, SHUT_WR) < 0)
                return -errno;
        c->state = CONN_LINGERING;
        return sd_event_source_set_io_events(c->io, EPOLLIN);
}

int admin_conn_reply(AdminConn *c, int status, const char *body, const char *content_type,
                     const char *allow) {
        _cleanup_free_ char *head = NULL;
        char extra[128];
        size_t len;
        ssize_t n;

        snprintf(extra, sizeof(extra), "Connection: close\r\nCache-Control: no-store\r\n%s%s%s",
                 allow ? "Allow: " : "", allow ?: "", allow ? "\r\n" : "");
        head = http_response_format(status, http_status_reason(status), extra, content_type, body,
                                    body ? strlen(body) : 0, &len);
        if (!head)
                return -ENOMEM;

        buffer_done(&c->in);
        c->state = CONN_WRITING;
        n = buffer_append(&c->out, head, len);
        if (n < 0)
                return (int) n;
        if ((size_t) n < len)
                return -EMSGSIZE;
        return conn_flush(c);
}

int admin_conn_reply_error(AdminConn *c, int status, const char *message) {
        _cleanup_free_ char *body = NULL;

        if (admin_error_body(message, &body) < 0)
                return -ENOMEM;
        return admin_conn_reply(c, status, body, JSON_TYPE, NULL);
}

/* While a scan runs the client only waits. One that closes the connection
 * is gone (HUP); one that merely shut its sending side still wants the
 * answer. 0: keep waiting, < 0: close. */
static int conn_watch(AdminConn *c, uint32_t revents) {
        char scratch[4096];
        ssize_t n = read(c->fd, scratch, sizeof(scratch));

        if (n > 0) {
                c->discarded += (size_t) n;
                return c->discarded > ADMIN_DISCARD_MAX ? -EMSGSIZE : 0;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return revents & (EPOLLHUP | EPOLLERR) ? -ECONNRESET : 0;
        if (n < 0)
                return -errno;
        if (revents & (EPOLLHUP | EPOLLERR))
                return -ECONNRESET;
        return sd_event_source_set_io_events(c->io, 0); /* HUP and ERR still wake us */
}

static bool is_scan_request(const HttpRequest *req) {
        const char *path;
        size_t len;

        target_path(http_request_target(req), &path, &len);
        return streq(http_request_method(req), "POST") && path_is(path, len, SCAN_PATH);
}

/* metrics_listen: the public routes only, whatever else the API has. */
static int conn_handle_public(AdminConn *c, const HttpRequest *req) {
        AdminReply reply = {};
        _cleanup_free_ char *body = NULL;
        int r;

        r = admin_route_public_only(c->admin->daemon, http_request_method(req), http_request_target(req),
                                    &reply);
        body = reply.body;
        if (r < 0)
                return admin_conn_reply_error(c, 500, "out of memory");
        if (body && strlen(body) > ADMIN_BODY_MAX)
                return admin_conn_reply_error(c, 500, "reply too large");
        return admin_conn_reply(c, reply.status, body, reply.content_type, reply.allow);
}

static int conn_handle(AdminConn *c, const HttpRequest *req) {
        _cleanup_free_ char *body = NULL;
        const char *content_type = NULL, *allow = NULL;
        int status, r;

        if (c->admin->metrics_only)
                return conn_handle_public(c, req);

        if (is_scan_request(req))
                return admin_conn_scan(c, http_request_target(req));
        r = admin_handle(c->admin->daemon, http_request_method(req), http_request_target(req), &status,
                         &body, &content_type, &allow);
        if (r < 0)
                return admin_conn_reply_error(c, 500, "out of memory");
        if (body && strlen(body) > ADMIN_BODY_MAX)
                return admin_conn_reply_error(c, 500, "reply too large");
        return admin_conn_reply(c, status, body, content_type, allow);
}

static int conn_read_head(AdminConn *c) {
        _cleanup_(http_request_freep) HttpRequest *req = NULL;
        ssize_t n;
        int r;

        n = buffer_read_fd(&c->in, c->fd);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n == -ENOBUFS)
                return admin_conn_reply_error(c, 431, "request head too large");
        if (n < 0)
                return (int) n;
        if (n == 0)
                return -ECONNRESET; /* gone before a whole request: nobody to answer */

        r = http_request_parse((const char *) buffer_head(&c->in), buffer_len(&c->in), HTTP_HEAD_MAX,
                               &req);
        if (r == 0)
                return 0;
        if (r == -EMSGSIZE)
                return admin_conn_reply_error(c, 431, "request head too large");
        if (r == -EBADMSG)
                return admin_conn_reply_error(c, 400, "malformed request");
        if (r < 0)
                return r;
        return conn_handle(c, req);
}

/* 0: keep lingering; < 0: done, close. */
static int conn_discard(AdminConn *c) {
        char scratch[4096];
        ssize_t n = read(c->fd, scratch, sizeof(scratch));

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        c->discarded += (size_t) n;
        return c->discarded > ADMIN_DISCARD_MAX ? -EMSGSIZE : 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AdminConn *c = userdata;
        int r = 0;

        switch (c->state) {
        case CONN_READING:
                r = conn_read_head(c);
                break;
        case CONN_SCANNING:
                r = conn_watch(c, revents);
                break;
        case CONN_WRITING:
                r = conn_flush(c);
                break;
        case CONN_LINGERING:
                r = conn_discard(c);
                break;
        }
        if (r < 0)
                admin_conn_free(c);
        return 0;
}

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AdminConn *c = userdata;
        int r;

        if (c->state == CONN_SCANNING) {
                if (admin_conn_scan_timeout(c) < 0)
                        admin_conn_free(c);
                return 0;
        }
        if (c->state != CONN_READING) {
                admin_conn_free(c);
                return 0;
        }
        r = admin_conn_reply_error(c, 408, "request timeout");
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_GRACE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                admin_conn_free(c);
        return 0;
}

/* Takes 'fd' in every case. */
static int conn_new(Admin *a, int fd) {
        sd_event *e = daemon_event(a->daemon);
        AdminConn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        buffer_init(&c->in, HTTP_HEAD_MAX);
        buffer_init(&c->out, ADMIN_BODY_MAX + ADMIN_HEAD_ROOM);

        r = sd_event_add_io(e, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_source_set_description(c->io, "admin-connection");
        if (r >= 0)
                r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, ADMIN_TIMEOUT_USEC,
                                               ADMIN_TIMER_ACCURACY_USEC, on_conn_timer, c);
        if (r >= 0)
                r = sd_event_source_set_description(c->timer, "admin-connection-timeout");
        if (r < 0) {
                admin_conn_free(c);
                return r;
        }

        c->admin = a;
        c->next = a->conns;
        if (a->conns)
                a->conns->prev = c;
        a->conns = c;
        a->n_conns++;
        return 0;
}

static int on_accept_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        Admin *a = userdata;

        (void) sd_event_source_set_enabled(a->io, SD_EVENT_ON);
        return 0;
}

/* Stop accepting for a moment: the socket stays readable while we are out
 * of descriptors, and a level-triggered source would spin. */
static void admin_pause_accept(Admin *a) {
        int r;

        if (!a->resume) {
                r = sd_event_add_time_relative(daemon_event(a->daemon), &a->resume, CLOCK_MONOTONIC,
                                               ADMIN_ACCEPT_PAUSE_USEC, ADMIN_TIMER_ACCURACY_USEC,
                                               on_accept_resume, a);
                if (r >= 0)
                        (void) sd_event_source_set_description(a->resume, "admin-accept-resume");
        } else {
                r = sd_event_source_set_time_relative(a->resume, ADMIN_ACCEPT_PAUSE_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(a->resume, SD_EVENT_ONESHOT);
        }
        /* Without a timer to turn it back on, keep accepting (and spinning)
         * rather than go deaf for good. */
        if (r >= 0)
                (void) sd_event_source_set_enabled(a->io, SD_EVENT_OFF);
}

static const char *suppressed_note(unsigned n, char *buf, size_t size) {
        if (n == 0)
                return "";
        snprintf(buf, size, " (%u more since the last message)", n);
        return buf;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Admin *a = userdata;
        unsigned suppressed;
        char note[64];

        for (unsigned i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        r = -errno;
                        if (r == -EAGAIN || r == -EWOULDBLOCK)
                                return 0;
                        if (r == -EINTR || r == -ECONNABORTED)
                                continue;
                        if (ratelimit_below(&a->accept_log, &suppressed))
                                log_warning_errno(r, "Failed to accept an admin connection: %m%s",
                                                  suppressed_note(suppressed, note, sizeof(note)));
                        if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM)
                                admin_pause_accept(a);
                        return 0;
                }

                if (a->n_conns >= ADMIN_CONNECTIONS_MAX) {
                        safe_close(cfd);
                        if (ratelimit_below(&a->full_log, &suppressed))
                                log_warning("Admin socket %s: %u connections open, refusing more%s", a->path,
                                            a->n_conns, suppressed_note(suppressed, note, sizeof(note)));
                        continue;
                }

                r = conn_new(a, cfd);
                if (r < 0 && ratelimit_below(&a->accept_log, &suppressed))
                        log_warning_errno(r, "Failed to set up an admin connection: %m%s",
                                          suppressed_note(suppressed, note, sizeof(note)));
        }
        return 0;
}

/* ---- the listening socket ------------------------------------------------- */

static int mkdir_parent(const char *path) {
        _cleanup_free_ char *dir = NULL;
        const char *slash = strrchr(path, '/');

        if (!slash || slash == path)
                return 0;
        dir = strndup(path, (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* A socket file nobody listens on is left over from a daemon that died:
 * remove it. A live one means another sshtund owns the path. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa, socklen_t salen) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, salen) == 0)
                return -EADDRINUSE;
        switch (errno) {
        case EAGAIN:      /* listening, backlog full */
        case EINPROGRESS:
                return -EADDRINUSE;
        case ENOENT:      /* gone meanwhile */
                return 0;
        case ECONNREFUSED:
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        default:
                return -errno;
        }
}

int admin_new(Daemon *d, const char *path, Admin **ret) {
        _cleanup_(admin_freep) Admin *a = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        struct stat st;
        mode_t old_umask;
        size_t len;
        int r;

        assert(d);
        assert(path);
        assert(ret);

        len = strlen(path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->daemon = d;
        a->fd = -1;
        a->full_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->accept_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->path = strdup(path);
        if (!a->path)
                return -ENOMEM;

        r = mkdir_parent(path);
        if (r < 0)
                return r;
        r = remove_stale_socket(path, &sa, salen);
        if (r < 0)
                return r;

        a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0)
                return -errno;
        /* Created 0600 from the start: no window in which others may connect. */
        old_umask = umask(0177);
        r = bind(a->fd, (const struct sockaddr *) &sa, salen) < 0 ? -errno : 0;
        umask(old_umask);
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return -errno;
        a->bound = true;
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        if (chmod(path, 0600) < 0)
                return -errno;
        if (listen(a->fd, ADMIN_BACKLOG) < 0)
                return -errno;

        r = sd_event_add_io(daemon_event(d), &a->io, a->fd, EPOLLIN, on_accept, a);
        if (r < 0)
                return r;
        r = sd_event_source_set_description(a->io, "admin-listen");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

int admin_new_metrics(Daemon *d, const ListenAddress *address, Admin **ret) {
        _cleanup_(admin_freep) Admin *a = NULL;
        int r;

        assert(d);
        assert(address);
        assert(ret);

        /* unauthenticated: a TCP port for scrapers, never a socket file
         * someone could mistake for the admin socket */
        if (address->kind != LISTEN_TCP)
                return -EAFNOSUPPORT;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->daemon = d;
        a->fd = -1;
        a->metrics_only = true;
        a->full_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->accept_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->path = listen_address_to_string(address);
        if (!a->path)
                return -ENOMEM;

        r = listen_socket_open(address, 0, (gid_t) -1, ADMIN_BACKLOG);
        if (r < 0)
                return r;
        a->fd = r;

        r = sd_event_add_io(daemon_event(d), &a->io, a->fd, EPOLLIN, on_accept, a);
        if (r < 0)
                return r;
        r = sd_event_source_set_description(a->io, "metrics-listen");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

Admin *admin_free(Admin *a) {
        struct stat st;

        if (!a)
                return NULL;
        while (a->conns)
                admin_conn_free(a->conns);
        while (a->scans)
                admin_scan_free(a->scans);
        a->io = sd_event_source_disable_unref(a->io);
        a->resume = sd_event_source_disable_unref(a->resume);
        a->fd = safe_close(a->fd);
        /* Leave the path alone if another process has replaced it since. */
        if (a->bound && lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
                (void) unlink(a->path);
        free(a->path);
        free(a);
        return NULL;
}
