/* One front-door request. Each accepted client goes through: read its
 * request (an HTTP CONNECT head, or a SOCKS5 greeting and request: the first
 * byte tells; bounded by size and header_timeout), check it, route it (an SSH
 * channel of its node, or the Konnectivity upstream), open the tunnel
 * (bounded by open_timeout), then answer exactly once: success and a relay,
 * or an error (HTTP status or SOCKS5 REP) and close. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "acceptor.h"
#include "address.h"
#include "buffer.h"
#include "channel.h"
#include "daemon.h"
#include "http.h"
#include "iopoll.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "proxy-internal.h"
#include "relay.h"
#include "router.h"
#include "socks.h"
#include "migration.h"
#include "tunnel.h"

#define REPLY_FLUSH_USEC (5 * USEC_PER_SEC)
/* Client bytes accepted after the head before the tunnel opens (a TLS
 * ClientHello fits); more waits in the kernel. */
#define EARLY_DATA_MAX (16 * 1024)

static const char reply_200[] = "HTTP/1.1 200 Connection Established\r\n\r\n";

typedef struct Request Request;

typedef enum ClientState {
        CLIENT_READING,
        CLIENT_OPENING,
        CLIENT_REPLYING,
} ClientState;

typedef enum ClientProtocol {
        PROTOCOL_UNKNOWN, /* no byte yet */
        PROTOCOL_HTTP,
        PROTOCOL_SOCKS,
} ClientProtocol;

/* The CONNECT path's status for each outcome; socks.h has the table. */
static const int outcome_status[_PROXY_OUTCOME_MAX] = {
        [PROXY_OUTCOME_OK] = 200,
        [PROXY_OUTCOME_MALFORMED] = 400,
        [PROXY_OUTCOME_BAD_ADDRESS_TYPE] = 400,
        [PROXY_OUTCOME_NOT_CONNECT] = 405,
        [PROXY_OUTCOME_HEAD_TOO_LARGE] = 431,
        [PROXY_OUTCOME_HEAD_TIMEOUT] = 408,
        [PROXY_OUTCOME_DENIED] = 403,
        [PROXY_OUTCOME_PROHIBITED] = 502,
        [PROXY_OUTCOME_REFUSED] = 502,
        [PROXY_OUTCOME_UNAVAILABLE] = 503,
        [PROXY_OUTCOME_OPEN_TIMEOUT] = 504,
};

struct Request {
        Proxy *proxy;
        LIST_FIELDS(Request, requests);
        ClientState state;
        ClientProtocol protocol;
        int fd;
        IoWatch *io; /* in the daemon's IoPoll, like the relays' sockets */
        sd_event_source *timer;
        char peer[64];       /* for logs */
        char orig_host[48];  /* originator for direct-tcpip */
        uint16_t orig_port;

        Buffer in;
        size_t greeting_len; /* SOCKS5: the greeting, once a method was chosen */
        size_t head_len;     /* the whole request; early tunnel bytes follow */
        Buffer out;          /* SOCKS5 method reply not yet written, or the error reply */

        Channel *ch;
        Tunnel *up; /* the CONNECT through the Konnectivity upstream, while it opens */
        char *node;
        char *target; /* "host:port" as written */
        char *host;   /* target host and port, kept for a fallback to SSH */
        uint16_t port;
        usec_t accepted;
};

static void client_free(Request *c) {
        Proxy *p = c->proxy;

        LIST_REMOVE(requests, p->requests, c);
        p->n_requests--;
        proxy_check_capacity(p);
        c->io = iopoll_watch_free(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->fd = safe_close(c->fd);
        if (c->ch) {
                Channel *ch = TAKE_PTR(c->ch);
                channel_abort(ch);
        }
        if (c->up)
                tunnel_abort(TAKE_PTR(c->up));
        free(c->host);
        buffer_done(&c->in);
        buffer_done(&c->out);
        free(c->node);
        free(c->target);
        free(c);
}

static int on_client_timer(sd_event_source *es, uint64_t usec, void *userdata);

static int client_arm_timer(Request *c, usec_t after) {
        usec_t when = now_usec(CLOCK_MONOTONIC) + after;
        int r;

        if (c->timer) {
                r = sd_event_source_set_time(c->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(daemon_event(c->proxy->daemon), &c->timer, CLOCK_MONOTONIC, when,
                              10 * USEC_PER_MSEC, on_client_timer, c);
        if (r >= 0)
                (void) sd_event_source_set_description(c->timer, "proxy-client-timer");
        return r;
}

/* Queue 'len' bytes for the client and write what the socket takes now;
 * the rest goes out when it is writable. */
static int client_send(Request *c, const void *data, size_t len) {
        ssize_t n;

        if (buffer_append(&c->out, data, len) != (ssize_t) len)
                return -ENOMEM;
        n = buffer_write_fd(&c->out, c->fd);
        if (n < 0 && n != -EAGAIN)
                return (int) n;
        if (!buffer_empty(&c->out))
                (void) iopoll_watch_set_events(c->io, EPOLLIN | EPOLLOUT);
        return 0;
}

/* The error reply in the client's protocol, appended to c->out (after a
 * SOCKS5 method reply still there). Nothing for a SOCKS5 client that never
 * got a method, nor for one the table says is just closed. */
static int client_queue_error(Request *c, ProxyOutcome outcome, int code, const char *reason,
                              const char *body) {
        _cleanup_free_ char *reply = NULL, *text = NULL;
        size_t len;

        if (c->protocol == PROTOCOL_SOCKS) {
                int rep = socks_reply_for_outcome(outcome);
                uint8_t msg[SOCKS_REPLY_LEN];

                if (rep < 0 || c->greeting_len == 0)
                        return 0;
                socks_reply_format((uint8_t) rep, msg);
                return buffer_append(&c->out, msg, sizeof(msg)) == (ssize_t) sizeof(msg) ? 0 : -ENOMEM;
        }

        if (asprintf(&text, "%s\n", body) < 0) {
                text = NULL;
                return -ENOMEM;
        }
        reply = http_response_format(code, reason,
                                     code == 405 ? "Allow: CONNECT\r\nConnection: close\r\n"
                                                 : "Connection: close\r\n",
                                     "text/plain; charset=utf-8", text, strlen(text), &len);
        if (!reply || buffer_append(&c->out, reply, len) != (ssize_t) len)
                return -ENOMEM;
        return 0;
}

/* Answer with an error - the HTTP status 'code' (with 'reason', or the
 * standard phrase when NULL) or the SOCKS5 REP of 'outcome' - then close
 * once it is written. */
static void client_answer(Request *c, ProxyOutcome outcome, int code, const char *reason, const char *body) {
        Proxy *p = c->proxy;
        char what[64];
        unsigned suppressed;

        metrics_count_frontdoor(daemon_metrics(p->daemon), code);
        if (ratelimit_below(&p->reject_log, &suppressed)) {
                int rep = socks_reply_for_outcome(outcome);

                if (c->protocol != PROTOCOL_SOCKS)
                        snprintf(what, sizeof(what), "%d", code);
                else if (c->greeting_len == 0 && !buffer_empty(&c->out))
                        snprintf(what, sizeof(what), "SOCKS5 no acceptable methods (0xff):");
                else if (rep < 0 || c->greeting_len == 0)
                        snprintf(what, sizeof(what), "SOCKS5 closed without a reply:");
                else
                        snprintf(what, sizeof(what), "SOCKS5 %s (0x%02x):", socks_reply_to_string(rep), rep);
                if (suppressed)
                        log_info("%u front-door replies not logged (rate limit)", suppressed);
                log_full(code >= 500 ? LOG_INFO : LOG_DEBUG, "%s: %s%s%s %s", c->peer, c->target ? c->target : "",
                         c->target ? ": " : "", what, body);
        }

        if (c->ch) {
                Channel *ch = TAKE_PTR(c->ch);
                channel_abort(ch);
        }
        if (c->up)
                tunnel_abort(TAKE_PTR(c->up));
        if (client_queue_error(c, outcome, code, reason, body) < 0) {
                client_free(c);
                return;
        }
        c->state = CLIENT_REPLYING;
        (void) shutdown(c->fd, SHUT_RD);
        (void) buffer_write_fd(&c->out, c->fd);
        if (buffer_empty(&c->out)) {
                client_free(c);
                return;
        }
        (void) iopoll_watch_set_events(c->io, EPOLLOUT);
        if (client_arm_timer(c, REPLY_FLUSH_USEC) < 0)
                client_free(c);
}

static void client_fail(Request *c, ProxyOutcome outcome, const char *fmt, ...) _printf_(3, 4);
static void client_fail(Request *c, ProxyOutcome outcome, const char *fmt, ...) {
        char body[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(body, sizeof(body), fmt, ap);
        va_end(ap);
        client_answer(c, outcome, outcome_status[outcome], NULL, body);
}

static int on_client_io(IoWatch *w, int fd, uint32_t revents, void *userdata);

/* The tunnel is open (an SSH channel or the upstream's): answer 200 (or
 * SOCKS5 success) and hand the socket and the far end to a relay. */
static void client_start_relay(Request *c, FarEnd far) {
        Proxy *p = c->proxy;
        /* a SOCKS5 method reply the socket did not take yet goes first */
        uint8_t head[SOCKS_METHOD_REPLY_LEN + sizeof(reply_200)];
        size_t head_len = MIN(buffer_len(&c->out), (size_t) SOCKS_METHOD_REPLY_LEN);
        Relay *relay;
        RelayParams rp;
        int r;

        metrics_count_frontdoor(daemon_metrics(p->daemon), 200);
        if (head_len)
                memcpy(head, buffer_head(&c->out), head_len);
        if (c->protocol == PROTOCOL_SOCKS) {
                socks_reply_format(SOCKS_REP_SUCCEEDED, head + head_len);
                head_len += SOCKS_REPLY_LEN;
        } else {
                memcpy(head + head_len, reply_200, sizeof(reply_200) - 1);
                head_len += sizeof(reply_200) - 1;
        }
        rp = (RelayParams) {
                .node = c->node,
                .target = c->target,
                .client = c->peer,
                .head = head,
                .head_len = head_len,
                .early = buffer_head(&c->in) + c->head_len,
                .early_len = buffer_len(&c->in) - c->head_len,
                /* kube-apiserver's CONNECT dialer fails on bytes before it
                 * speaks; SOCKS5 clients of talk-first servers (SMTP, FTP,
                 * databases) wait for them */
                .node_may_speak_first = c->protocol == PROTOCOL_SOCKS,
                .on_done = daemon_relay_done,
                .userdata = p->daemon,
        };
        c->io = iopoll_watch_free(c->io);
        /* counted first: a relay that fails at once ends inside relay_new()
         * and its on_done already uncounts it */
        p->n_streams++;
        r = relay_new(daemon_relay_env(p->daemon), c->fd, far, &rp, &relay);
        if (r < 0) {
                /* still ours: fd and far end; on_done did not run */
                p->n_streams--;
                far.ops->abort(far.end);
                if (iopoll_add(daemon_iopoll(p->daemon), c->fd, EPOLLOUT, on_client_io, c, &c->io) < 0) {
                        client_free(c);
                        return;
                }
                client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "cannot start the stream: %s", strerror(-r));
                return;
        }
        /* the relay owns the socket and the far end now */
        c->fd = -1;
        client_free(c);
}

static void on_open_done(Channel *ch, int error, const char *reason, void *userdata) {
        Request *c = userdata;

        if (error < 0) {
                c->ch = NULL; /* gone */
                if (error == -ECONNREFUSED)
                        client_fail(c,
                                    reason && strstr(reason, "prohibited") ? PROXY_OUTCOME_PROHIBITED
                                                                           : PROXY_OUTCOME_REFUSED,
                                    "node %s could not open %s: %s", c->node, c->target,
                                    reason ? reason : "refused");
                else
                        client_fail(c, PROXY_OUTCOME_UNAVAILABLE,
                                    "node %s: session lost before the channel opened (%s)", c->node,
                                    reason ? reason : "aborted");
                return;
        }
        c->ch = NULL; /* the relay's now */
        client_start_relay(c, relay_channel_far_end(ch));
}

static const ChannelCallbacks open_callbacks = {
        .opened = on_open_done,
};

/* The request is complete, whatever its protocol: check it and route it. */
/* Open the stream through one of the node's SSH sessions. */
static void client_open_ssh(Request *c, Node *node) {
        const Config *cfg = daemon_config(c->proxy->daemon);
        int r;

        r = node_open_channel(node, c->host, c->port, c->orig_host, c->orig_port, &open_callbacks, c, &c->ch);
        if (r == -EBUSY) {
                client_fail(c, PROXY_OUTCOME_UNAVAILABLE,
                            "node %s: every session is at ssh.max_streams_per_session (%u)", c->node,
                            cfg->ssh.max_streams_per_session);
                return;
        }
        if (r < 0) {
                NodeInfo info;
                node_get_info(node, &info);
                client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "node %s is %s%s%s", c->node,
                            node_state_to_string(info.state), info.last_error ? ": " : "",
                            info.last_error ? info.last_error : "");
        }
}

/* The upstream's 4xx/5xx for a SOCKS5 client: the nearest REP. */
static ProxyOutcome outcome_for_upstream_status(int status) {
        switch (status) {
        case 502:
                return PROXY_OUTCOME_REFUSED;
        case 504:
                return PROXY_OUTCOME_OPEN_TIMEOUT;
        case 403:
                return PROXY_OUTCOME_DENIED;
        default:
                return PROXY_OUTCOME_UNAVAILABLE;
        }
}

static void on_upstream_opened(Tunnel *uc, int status, const char *reason, const char *body,
                               void *userdata) {
        Request *c = userdata;
        Daemon *d = c->proxy->daemon;
        Node *node;

        c->up = NULL; /* handed over, or gone */
        node = daemon_find_node(d, c->node);
        if (status == 200) {
                if (node)
                        node_count_stream(node, STREAM_OK);
                client_start_relay(c, tunnel_far_end(uc));
                return;
        }
        if (node && status >= 400)
                node_count_stream(node, status == 502 ? STREAM_REFUSED : STREAM_UNAVAILABLE);
        if (status >= 400 && status <= 599) {
                /* konnectivity-server's own answer ("no tunnels available"),
                 * passed on with its reason */
                char text[1024];
                snprintf(text, sizeof(text), "konnectivity-server: %s%s%s", reason ? reason : "",
                         body && *body ? ": " : "", body ? body : "");
                client_answer(c, outcome_for_upstream_status(status), status, reason, text);
                return;
        }
        /* the upstream itself is unreachable: SSH, when it may and can */
        if (node && daemon_config(d)->konnectivity.fallback_to_ssh && node_is_ready(node)) {
                log_node(LOG_NOTICE, c->node, "konnectivity upstream unreachable (%s): this stream goes over SSH",
                         strna(reason));
                migration_count_fallback(daemon_migration(d), node);
                client_open_ssh(c, node);
                return;
        }
        client_fail(c, PROXY_OUTCOME_REFUSED, "konnectivity upstream %s unreachable: %s",
                    migration_upstream(daemon_migration(d)) ? upstream_address(migration_upstream(daemon_migration(d)))
                                                            : "?",
                    strna(reason));
}

static void client_route(Request *c, const char *host, uint16_t port) {
        Proxy *p = c->proxy;
        Daemon *d = p->daemon;
        const Config *cfg = daemon_config(d);
        Node *node;
        int r;

        if (!router_allowed(daemon_router(d), host, port)) {
                client_fail(c, PROXY_OUTCOME_DENIED, "%s is not in proxy.allow", c->target);
                return;
        }
        node = router_lookup(daemon_router(d), host);
        if (!node) {
                if (cfg->proxy.fallback == FALLBACK_NONE) {
                        client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "no node owns %s and proxy.fallback is \"none\"",
                                    host);
                        return;
                }
                node = daemon_pick_any_node(d);
                if (!node) {
                        client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "no node owns %s and no node is ready for it",
                                    host);
                        return;
                }
        }
        c->node = strdup(node_name(node));
        c->host = strdup(host);
        c->port = port;
        if (!c->node || !c->host) {
                client_free(c);
                return;
        }

        c->state = CLIENT_OPENING;
        /* no more reading until the tunnel exists; HUP and ERR still wake us */
        (void) iopoll_watch_set_events(c->io, EPOLLHUP);
        if (client_arm_timer(c, sec_to_usec(cfg->proxy.open_timeout)) < 0) {
                client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "cannot arm the open timer");
                return;
        }

        Migration *m = daemon_migration(d);
        if (migration_route(m, node) == ROUTE_KONNECTIVITY && migration_upstream(m)) {
                r = tunnel_open(migration_upstream(m), host, port, on_upstream_opened, c, &c->up);
                if (r >= 0)
                        return;
                log_node(LOG_WARNING, c->node, "cannot start a CONNECT to the konnectivity upstream: %s",
                         strerror(-r));
                if (!cfg->konnectivity.fallback_to_ssh || !node_is_ready(node)) {
                        client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "konnectivity upstream: %s", strerror(-r));
                        return;
                }
                migration_count_fallback(m, node);
        } else if (migration_listed(m, node))
                /* migrated, but its upstream path fails: SSH takes the stream */
                migration_count_fallback(m, node);
        client_open_ssh(c, node);
}

/* HTTP CONNECT: the head is complete. */
static void client_handle_head(Request *c, HttpRequest *req) {
        _cleanup_free_ char *host = NULL;
        uint16_t port;
        const char *target = http_request_target(req);

        if (!streq(http_request_method(req), "CONNECT")) {
                client_fail(c, PROXY_OUTCOME_NOT_CONNECT, "only CONNECT is served here");
                return;
        }
        c->target = strdup(target);
        if (!c->target) {
                client_free(c);
                return;
        }
        if (hostport_split(target, &host, &port) < 0) {
                client_fail(c, PROXY_OUTCOME_MALFORMED, "CONNECT target must be host:port or [v6]:port");
                return;
        }
        client_route(c, host, port);
}

static void client_read_http(Request *c, size_t n_new) {
        HttpRequest *req = NULL;
        int r;

        /* a head ends with a line: parse when a line ended (or the limit is
         * near), so that a client dribbling bytes costs one parse per line,
         * not one per byte (the parser starts over each time) */
        if (!memchr(buffer_head(&c->in) + buffer_len(&c->in) - n_new, '\n', n_new) &&
            buffer_len(&c->in) < HTTP_HEAD_MAX)
                return;
        r = http_request_parse((const char *) buffer_head(&c->in), buffer_len(&c->in), HTTP_HEAD_MAX, &req);
        if (r == 0)
                return;
        if (r == -EMSGSIZE) {
                client_fail(c, PROXY_OUTCOME_HEAD_TOO_LARGE, "request head larger than %d bytes or too many headers",
                            HTTP_HEAD_MAX);
                return;
        }
        if (r == -EBADMSG) {
                client_fail(c, PROXY_OUTCOME_MALFORMED, "malformed request");
                return;
        }
        if (r < 0) {
                client_fail(c, PROXY_OUTCOME_UNAVAILABLE, "cannot parse request: %s", strerror(-r));
                return;
        }
        c->head_len = (size_t) r;
        client_handle_head(c, req);
        http_request_free(req);
}

/* SOCKS5: the greeting, answered at once, then the request (a client may
 * send both in one go). */
static void client_read_socks(Request *c) {
        const uint8_t *in = buffer_head(&c->in);
        size_t len = buffer_len(&c->in);
        SocksRequest req;
        int r;

        if (c->greeting_len == 0) {
                uint8_t method, reply[SOCKS_METHOD_REPLY_LEN];

                r = socks_greeting_parse(in, len, &method);
                if (r == 0)
                        return;
                if (r < 0) {
                        client_fail(c, PROXY_OUTCOME_MALFORMED, "malformed greeting");
                        return;
                }
                socks_method_reply_format(method, reply);
                if (client_send(c, reply, sizeof(reply)) < 0) {
                        client_free(c);
                        return;
                }
                if (method != SOCKS_METHOD_NO_AUTH) {
                        client_fail(c, PROXY_OUTCOME_MALFORMED,
                                    "the client does not offer method 0x00 (no authentication), the "
                                    "only one served");
                        return;
                }
                c->greeting_len = (size_t) r;
        }

        r = socks_request_parse(in + c->greeting_len, len - c->greeting_len, &req);
        if (r == 0)
                return;
        if (r == -EOPNOTSUPP) {
                client_fail(c, PROXY_OUTCOME_NOT_CONNECT, "only CONNECT is served here (command 0x%02x)",
                            in[c->greeting_len + 1]);
                return;
        }
        if (r == -EAFNOSUPPORT) {
                client_fail(c, PROXY_OUTCOME_BAD_ADDRESS_TYPE, "unknown address type 0x%02x",
                            in[c->greeting_len + 3]);
                return;
        }
        if (r < 0) {
                client_fail(c, PROXY_OUTCOME_MALFORMED, "malformed request");
                return;
        }
        c->head_len = c->greeting_len + (size_t) r;
        c->target = hostport_join(req.host, req.port);
        if (!c->target) {
                client_free(c);
                return;
        }
        client_route(c, req.host, req.port);
}

static void client_read(Request *c) {
        ssize_t n;

        n = buffer_read_fd(&c->in, c->fd);
        if (n == -EAGAIN || n == -EINTR)
                return;
        if (n == -ENOBUFS) {
                client_fail(c, PROXY_OUTCOME_HEAD_TOO_LARGE, "request head larger than %d bytes", HTTP_HEAD_MAX);
                return;
        }
        if (n <= 0) {
                /* gone before finishing its request: nobody to answer */
                client_free(c);
                return;
        }

        if (c->protocol == PROTOCOL_UNKNOWN)
                c->protocol = buffer_head(&c->in)[0] == SOCKS_VERSION ? PROTOCOL_SOCKS : PROTOCOL_HTTP;
        if (c->protocol == PROTOCOL_SOCKS)
                client_read_socks(c);
        else
                client_read_http(c, (size_t) n);
}

static int on_client_io(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Request *c = userdata;
        ssize_t n;

        switch (c->state) {
        case CLIENT_READING:
                if (!buffer_empty(&c->out)) {
                        /* the rest of a SOCKS5 method reply */
                        n = buffer_write_fd(&c->out, c->fd);
                        if (n < 0 && n != -EAGAIN) {
                                client_free(c);
                                break;
                        }
                        if (buffer_empty(&c->out))
                                (void) iopoll_watch_set_events(c->io, EPOLLIN);
                }
                client_read(c);
                break;
        case CLIENT_OPENING:
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        /* the client hung up while its channel opens: the
                         * session finishes the open and closes it */
                        client_free(c);
                }
                break;
        case CLIENT_REPLYING:
                n = buffer_write_fd(&c->out, c->fd);
                if ((n < 0 && n != -EAGAIN) || buffer_empty(&c->out))
                        client_free(c);
                break;
        }
        return 0;
}

static int on_client_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Request *c = userdata;
        const Config *cfg = daemon_config(c->proxy->daemon);

        switch (c->state) {
        case CLIENT_READING:
                client_fail(c, PROXY_OUTCOME_HEAD_TIMEOUT, "no complete %s within proxy.header_timeout (%.1f s)",
                            c->protocol == PROTOCOL_SOCKS ? "request" : "request head",
                            cfg->proxy.header_timeout);
                break;
        case CLIENT_OPENING:
                client_fail(c, PROXY_OUTCOME_OPEN_TIMEOUT,
                            "node %s did not open %s within proxy.open_timeout (%.1f s)", c->node, c->target,
                            cfg->proxy.open_timeout);
                break;
        case CLIENT_REPLYING:
                client_free(c);
                break;
        }
        return 0;
}

void request_new(Proxy *p, int fd, const AcceptorPeer *peer) {
        const Config *cfg = daemon_config(p->daemon);
        Request *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return;
        }
        c->proxy = p;
        c->fd = fd;
        c->accepted = now_usec(CLOCK_MONOTONIC);
        buffer_init(&c->in, HTTP_HEAD_MAX + EARLY_DATA_MAX);
        buffer_init(&c->out, 4096);
        LIST_PREPEND(requests, p->requests, c);
        p->n_requests++;
        snprintf(c->peer, sizeof(c->peer), "%s", peer->text);
        snprintf(c->orig_host, sizeof(c->orig_host), "%s", peer->orig_host);
        c->orig_port = peer->orig_port;
        proxy_check_capacity(p);

        r = iopoll_add(daemon_iopoll(p->daemon), fd, EPOLLIN, on_client_io, c, &c->io);
        if (r >= 0)
                r = client_arm_timer(c, sec_to_usec(cfg->proxy.header_timeout));
        if (r < 0) {
                client_free(c);
                return;
        }
}

void request_free(Request *c) {
        client_free(c);
}
