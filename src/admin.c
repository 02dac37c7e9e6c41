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

#include "acceptor.h"
#include "address.h"
#include "admin-internal.h"
#include "admin.h"
#include "buffer.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "macro.h"

#define ADMIN_CONNECTIONS_MAX 64
#define ADMIN_TIMER_ACCURACY_USEC (100 * USEC_PER_MSEC)
/* Request bodies and trailing junk we read and drop before closing. */
#define ADMIN_DISCARD_MAX (64 * 1024)
/* Largest reply body; sshtunctl refuses more than this. */
#define ADMIN_BODY_MAX (16 * 1024 * 1024)
#define ADMIN_HEAD_ROOM 1024
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

static const char *const node_actions[_ADMIN_ACTION_MAX] = {
        [ADMIN_ACTION_RECONNECT] = "reconnect",
        [ADMIN_ACTION_DRAIN] = "drain",
        [ADMIN_ACTION_UNDRAIN] = "undrain",
};

/* "NAME/ACTION" after "/v1/nodes/": the action, and the raw name. */
static bool node_action_match(const char *rest, size_t len, AdminAction *ret_action, size_t *ret_name_len) {
        const char *slash = memchr(rest, '/', len);

        if (!slash || slash == rest)
                return false;
        for (AdminAction i = 0; i < _ADMIN_ACTION_MAX; i++)
                if (path_is(slash + 1, len - (size_t) (slash + 1 - rest), node_actions[i])) {
                        *ret_action = i;
                        *ret_name_len = (size_t) (slash - rest);
                        return true;
                }
        return false;
}

static int route_node_action(const AdminEnv *env, const char *method, const char *raw_name, size_t raw_len,
                             AdminAction action, AdminReply *reply) {
        _cleanup_free_ char *name = NULL;
        NodeInfo info;
        int r;

        if (!streq(method, "POST"))
                return admin_reply_not_allowed(reply, "POST");
        r = admin_url_decode(raw_name, raw_len, &name);
        if (r == -EINVAL)
                return admin_reply_error(reply, 400, "malformed node name in path");
        if (r < 0)
                return r;
        r = env->ops->action(env->userdata, name, action, &info);
        if (r == -ENOENT)
                return reply_no_such_node(reply, name);
        if (r < 0)
                return admin_reply_error(reply, 500, strerror(-r));
        return reply_json(reply, 200, admin_node_to_json(&info));
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

static int admin_metrics(const AdminEnv *env, AdminReply *reply) {
        return reply_text(reply, 200, METRICS_TYPE, env->ops->metrics(env->userdata, NULL));
}

/* Ready when at least admin.ready_min_fraction of the nodes are up or
 * degraded (degraded nodes still carry streams). With no nodes there is
 * nothing to wait for: ready. */
static int admin_readyz(const AdminEnv *env, AdminReply *reply) {
        double fraction = env->ops->config(env->userdata)->admin.ready_min_fraction;
        _cleanup_free_ NodeInfo *infos = NULL;
        size_t n = 0, ok = 0;
        char *body = NULL;
        bool ready;
        int r;

        r = env->ops->nodes(env->userdata, &infos, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (infos[i].state == NODE_UP || infos[i].state == NODE_DEGRADED)
                        ok++;
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
static int route_public(const AdminEnv *env, const char *method, const char *path, size_t len, AdminReply *reply) {
        int r;

        if (path_is(path, len, "/healthz"))
                r = streq(method, "GET") ? reply_text(reply, 200, TEXT_TYPE, strdup("ok\n"))
                                         : admin_reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/readyz"))
                r = streq(method, "GET") ? admin_readyz(env, reply) : admin_reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/metrics"))
                r = streq(method, "GET") ? admin_metrics(env, reply) : admin_reply_not_allowed(reply, "GET");
        else
                return 0;
        return r < 0 ? r : 1;
}

/* What metrics_listen answers: the routes above, 404 for the rest. */
static int admin_route_public_only(const AdminEnv *env, const char *method, const char *target,
                                   AdminReply *reply) {
        const char *path;
        size_t len;
        int r;

        target_path(target, &path, &len);
        r = route_public(env, method, path, len, reply);
        if (r != 0)
                return r < 0 ? r : 0;
        return admin_reply_error(reply, 404, "not found");
}

/* ---- POST /v1/reload ---------------------------------------------------------- */

static int admin_reload(const AdminEnv *env, AdminReply *reply) {
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ NodeInfo *list = NULL;
        size_t n = 0;
        json_t *v;
        int r;

        r = env->ops->reload(env->userdata, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* the request was fine, the file is not: the daemon could not do it */
                return admin_reply_error(reply, 500, error ? error : strerror(-r));
        r = env->ops->nodes(env->userdata, &list, &n);
        if (r < 0)
                return r;
        v = json_pack("{s:b, s:I}", "reloaded", 1, "nodes_total", (json_int_t) n);
        if (!v)
                return -ENOMEM;
        return reply_json(reply, 200, v);
}

/* ---- the whole API ---------------------------------------------------------- */

static int admin_route(const AdminEnv *env, const char *method, const char *target, AdminReply *reply) {
        static const char nodes_prefix[] = "/v1/nodes/";
        bool get = streq(method, "GET");
        const char *path;
        size_t len;
        int handled;

        target_path(target, &path, &len);

        handled = route_public(env, method, path, len, reply);
        if (handled != 0)
                return handled < 0 ? handled : 0;
        if (path_is(path, len, "/v1/status")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, admin_status_to_json(env));
        }
        if (path_is(path, len, "/v1/nodes")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_text(reply, 200, JSON_TYPE, admin_nodes_body(env));
        }
        if (path_is(path, len, "/v1/migration")) {
                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, admin_migration_to_json(env));
        }
        if (path_is(path, len, SCAN_PATH) || path_is(path, len, TRUST_PATH))
                return admin_route_scan(env, method, target, path_is(path, len, TRUST_PATH), reply);
        if (path_is(path, len, HOSTKEYS_PATH))
                return admin_route_hostkeys(env, method, target, reply);
        if (path_is(path, len, FORGET_PATH))
                return admin_route_forget(env, method, target, reply);
        if (path_is(path, len, "/v1/reload")) {
                if (!streq(method, "POST"))
                        return admin_reply_not_allowed(reply, "POST");
                return admin_reload(env, reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0) {
                AdminAction action;
                size_t name_len;

                if (node_action_match(path + strlen(nodes_prefix), len - strlen(nodes_prefix), &action,
                                      &name_len))
                        return route_node_action(env, method, path + strlen(nodes_prefix), name_len, action,
                                                 reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0 &&
            !memchr(path + strlen(nodes_prefix), '/', len - strlen(nodes_prefix))) {
                _cleanup_free_ char *name = NULL;
                const char *raw = path + strlen(nodes_prefix);
                NodeInfo info;
                int r;

                if (!get)
                        return admin_reply_not_allowed(reply, "GET");
                r = admin_url_decode(raw, len - strlen(nodes_prefix), &name);
                if (r == -EINVAL)
                        return admin_reply_error(reply, 400, "malformed node name in path");
                if (r < 0)
                        return r;
                r = env->ops->node(env->userdata, name, &info);
                if (r >= 0)
                        return reply_json(reply, 200, admin_node_to_json(&info));
                return reply_no_such_node(reply, name);
        }
        return admin_reply_error(reply, 404, "not found");
}

int admin_handle(const AdminEnv *env, AdminAccess access, const char *method, const char *target,
                 int *ret_status, char **ret_body, const char **ret_content_type, const char **ret_allow) {
        AdminReply reply = {};
        int r;

        assert(env);
        assert(method);
        assert(target);

        if (access == ADMIN_ACCESS_PUBLIC)
                r = admin_route_public_only(env, method, target, &reply);
        else if (access == ADMIN_ACCESS_READONLY && !streq(method, "GET"))
                /* a monitoring user's socket: it may look, not touch */
                r = admin_reply_error(&reply, 403,
                                      "this is the read-only admin socket (admin.readonly_socket): it answers GET "
                                      "only; reloads, node actions and host key scans go to admin.socket");
        else
                r = admin_route(env, method, target, &reply);
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
        if (c->admin)
                acceptor_replenish(c->admin->acceptor);
        buffer_done(&c->in);
        buffer_done(&c->out);
        if (c->admin) {
                LIST_REMOVE(conns, c->admin->conns, c);
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

/* POST /v1/hostkeys/scan or /v1/hostkeys/trust (*ret_trust tells which). */
static bool is_scan_request(const HttpRequest *req, bool *ret_trust) {
        const char *path;
        size_t len;

        target_path(http_request_target(req), &path, &len);
        *ret_trust = path_is(path, len, TRUST_PATH);
        return streq(http_request_method(req), "POST") && (*ret_trust || path_is(path, len, SCAN_PATH));
}

static int conn_handle(AdminConn *c, const HttpRequest *req) {
        const Admin *a = c->admin;
        _cleanup_free_ char *body = NULL;
        const char *content_type = NULL, *allow = NULL;
        bool trust;
        int status, r;

        if (a->access == ADMIN_ACCESS_FULL && is_scan_request(req, &trust))
                return admin_conn_scan(c, http_request_target(req), trust);
        r = admin_handle(&a->env, a->access, http_request_method(req), http_request_target(req), &status,
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
        sd_event *e = a->env.event;
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
        LIST_PREPEND(conns, a->conns, c);
        a->n_conns++;
        return 0;
}

static void on_accept(Acceptor *acceptor, int fd, const AcceptorPeer *peer, void *userdata) {
        Admin *a = userdata;
        unsigned suppressed;
        int r;

        if (a->n_conns >= ADMIN_CONNECTIONS_MAX) {
                safe_close(fd);
                acceptor_replenish(acceptor);
                if (ratelimit_below(&a->full_log, &suppressed))
                        log_warning("%s: %u connections open, refusing more (%u more since the last message)",
                                    a->label, a->n_conns, suppressed);
                return;
        }
        r = conn_new(a, fd);
        if (r < 0 && ratelimit_below(&a->full_log, &suppressed))
                log_warning_errno(r, "%s: cannot set up a connection: %m", a->label);
        acceptor_replenish(acceptor); /* if this connection was refused or failed */
}

/* ---- the listening socket ------------------------------------------------- */

int admin_new(const AdminEnv *env, const ListenAddress *address, const AdminParams *p, Admin **ret) {
        _cleanup_(admin_freep) Admin *a = NULL;
        _cleanup_free_ char *where = NULL;
        _cleanup_close_ int activated_fd = p->activated_fd; /* ours until the acceptor takes it */
        int r;

        assert(env);
        assert(address);
        assert(ret);

        /* unauthenticated: a TCP port for scrapers, never a socket file
         * someone could mistake for the admin socket */
        if (p->access == ADMIN_ACCESS_PUBLIC && address->kind != LISTEN_TCP)
                return -EAFNOSUPPORT;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->env = *env;
        a->access = p->access;
        a->full_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        where = listen_address_to_string(address);
        if (!where || asprintf(&a->label, "%s %s", p->access == ADMIN_ACCESS_PUBLIC ? "admin.metrics_listen"
                                                                                   : "admin socket",
                               where) < 0) {
                a->label = NULL;
                return -ENOMEM;
        }
        r = acceptor_new(env->event, address,
                         &(AcceptorParams) {
                                 .mode = p->mode,
                                 .gid = p->gid,
                                 .label = a->label,
                                 .description = p->access == ADMIN_ACCESS_PUBLIC     ? "metrics-listen"
                                                : p->access == ADMIN_ACCESS_READONLY ? "admin-readonly-listen"
                                                                                     : "admin-listen",
                                 .handler = on_accept,
                                 .userdata = a,
                                 .adopt = p->activated_fd >= 0,
                                 .fd = TAKE_FD(activated_fd),
                                 /* the operator's way in when descriptors run out; not for
                                  * the unauthenticated scrape port */
                                 .reserve = p->access != ADMIN_ACCESS_PUBLIC,
                         },
                         &a->acceptor);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

Admin *admin_free(Admin *a) {
        if (!a)
                return NULL;
        while (a->conns)
                admin_conn_free(a->conns);
        while (a->scans)
                admin_scan_free(a->scans);
        a->acceptor = acceptor_free(a->acceptor);
        free(a->label);
        free(a);
        return NULL;
}

void admin_stop_listening(Admin *a) {
        a->acceptor = acceptor_free(a->acceptor);
}

bool admin_adopted(const Admin *a) {
        return acceptor_adopted(a->acceptor);
}
