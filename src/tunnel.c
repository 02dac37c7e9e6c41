/* One tunnel through the Konnectivity upstream: connect (and TLS), the
 * CONNECT kube-apiserver would send, the reply, then a relay far end. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <systemd/sd-event.h>

#include "address.h"
#include "buffer.h"
#include "connector.h"
#include "http.h"
#include "macro.h"
#include "tunnel.h"
#include "upstream-internal.h"


typedef enum ConnState {
        CONN_CONNECTING, /* the connector resolves and connects */
        CONN_HANDSHAKE,
        CONN_REQUEST,   /* CONNECT out, reading the reply head */
        CONN_BODY,      /* an error reply: reading some of its body */
        CONN_REPORTING, /* could not open: the callback runs from the defer source */
        CONN_OPEN,      /* a far end */
        CONN_FAILED,    /* failed while open: hooks.failed runs from the defer source */
        CONN_CLOSING,   /* closed by its user: tx drains, then the socket closes */
        CONN_DEAD,
} ConnState;

struct Tunnel {
        Upstream *upstream;
        unsigned n_ref; /* its own, plus one per handler of ours on the stack */
        ConnState state;
        int fd;
        IoWatch *io; /* in the upstream's IoPoll */
        sd_event_source *timer, *defer;
        Connector *connector; /* CONN_CONNECTING */

        SSL *ssl;
        uint32_t tls_want; /* the handshake waits for EPOLLIN or EPOLLOUT */
        bool read_wants_write, write_wants_read;

        TunnelOpened cb;
        void *userdata;
        size_t request_left; /* bytes of our CONNECT still in tx */
        int status;
        char reason[sizeof(((HttpResponseHead *) NULL)->reason)];

        Buffer rx, tx;
        bool rx_eof, tx_shutdown, shut_done, tx_blocked;
        bool rx_news; /* rx or its EOF changed and no readable hook said so yet */
        const FarEndHooks *hooks;
        void *relay;
        uint64_t bytes_rx, bytes_tx;
        char error[256];
};

/* --- a conn's life -------------------------------------------------------------- */

static Tunnel *conn_ref(Tunnel *c) {
        c->n_ref++;
        return c;
}

static void conn_unref(Tunnel *c) {
        if (--c->n_ref > 0)
                return;
        buffer_done(&c->rx);
        buffer_done(&c->tx);
        upstream_unref(c->upstream);
        free(c);
}

/* Let go of the socket and its sources; the object stays. */
static void conn_release(Tunnel *c) {
        c->connector = connector_free(c->connector);
        c->io = iopoll_watch_free(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->fd = safe_close(c->fd);
}

/* Nothing of it runs again; the memory goes with the last reference. */
static void conn_end(Tunnel *c) {
        if (c->state == CONN_DEAD)
                return;
        c->state = CONN_DEAD;
        conn_release(c);
        c->defer = sd_event_source_disable_unref(c->defer);
        c->upstream->n_conns--;
        conn_unref(c);
}

static void conn_schedule(Tunnel *c) {
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
}

_printf_(2, 3) static void conn_error(Tunnel *c, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
}

/* It failed: 'e' (-EPROTO: a TLS error, c->error has its words already) in
 * 'what'. The callback (opening) or hooks.failed (open) runs from the loop,
 * never from inside tunnel_open() or an op, where callers are mid-call. */
static void conn_fail(Tunnel *c, int e, const char *what) {
        if (c->state == CONN_CLOSING) {
                conn_end(c); /* no one to tell */
                return;
        }
        if (e < 0 && e != -EPROTO)
                conn_error(c, "%s: %s", what, strerror(-e));
        conn_release(c);
        c->state = c->state == CONN_OPEN ? CONN_FAILED : CONN_REPORTING;
        conn_schedule(c);
}

static void conn_update_events(Tunnel *c) {
        bool open = c->state == CONN_OPEN || c->state == CONN_CLOSING;
        /* reading stops while rx is full: the upstream's window shuts */
        bool want_read = c->state == CONN_REQUEST || c->state == CONN_BODY ||
                         (open && !c->rx_eof && (c->state == CONN_CLOSING || buffer_room(&c->rx) > 0));
        bool want_write = (c->state == CONN_REQUEST || open) && !buffer_empty(&c->tx);
        uint32_t events = c->state == CONN_HANDSHAKE ? c->tls_want : 0;

        if (!c->io)
                return;
        want_write = want_write || (open && c->tx_shutdown && !c->shut_done);
        if (want_read)
                events |= c->read_wants_write ? EPOLLOUT : EPOLLIN;
        if (want_write)
                events |= c->write_wants_read ? EPOLLIN : EPOLLOUT;
        /* epoll reports HUP and ERR whatever we ask for: with nothing to
         * do, a closed socket would spin the loop; events 0 takes it out */
        (void) iopoll_watch_set_events(c->io, events);
}

/* --- transport: the socket, or TLS on it ----------------------------------------- */

/* Words for a TLS failure into c->error; returns -EPROTO. */
static int conn_tls_error(Tunnel *c, int ssl_error, const char *what) {
        long v = SSL_get_verify_result(c->ssl);
        unsigned long e = ERR_peek_error();
        const char *why = e ? ERR_reason_error_string(e) : NULL;
        bool name = v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH;
        int saved = errno;

        ERR_clear_error();
        if (v != X509_V_OK)
                conn_error(c, "certificate verify failed: %s%s%s", X509_verify_cert_error_string(v),
                           name ? ": expected " : "", name ? c->upstream->verify_name : "");
        else if (why)
                conn_error(c, "TLS %s failed: %s", what, why);
        else if (ssl_error == SSL_ERROR_SYSCALL && saved != 0)
                conn_error(c, "TLS %s failed: %s", what, strerror(saved));
        else
                conn_error(c, "connection closed during the TLS %s", what);
        return -EPROTO;
}

/* An SSL call's outcome: r > 0 as it is, 0 at the peer's close_notify,
 * -EAGAIN (*ret_other: waiting for the other direction), or -EPROTO. */
static int conn_ssl(Tunnel *c, int r, int other, bool *ret_other, const char *what) {
        int e;

        if (r > 0) {
                *ret_other = false;
                return r;
        }
        e = SSL_get_error(c->ssl, r);
        *ret_other = e == other;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return -EAGAIN;
        return e == SSL_ERROR_ZERO_RETURN ? 0 : conn_tls_error(c, e, what);
}

static ssize_t io_result(ssize_t k) {
        if (k >= 0)
                return k;
        return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
}

/* Returns bytes read, 0 on EOF, -EAGAIN, or -errno (-EPROTO: TLS). */
static ssize_t conn_recv(Tunnel *c, void *p, size_t n) {
        if (!c->ssl)
                return io_result(read(c->fd, p, n));
        ERR_clear_error();
        return conn_ssl(c, SSL_read(c->ssl, p, (int) MIN(n, (size_t) INT_MAX)), SSL_ERROR_WANT_WRITE,
                        &c->read_wants_write, "read");
}

/* Read at most 'max' bytes into b (which has room). */
static ssize_t conn_recv_into(Tunnel *c, Buffer *b, size_t max) {
        size_t size;
        uint8_t *p = buffer_reserve(b, MIN(max, (size_t) UPSTREAM_READ_CHUNK), &size);
        ssize_t n;

        if (!p)
                return -ENOMEM;
        n = conn_recv(c, p, MIN(size, max));
        if (n > 0)
                buffer_commit(b, (size_t) n);
        else if (buffer_empty(b))
                buffer_consume(b, 0);
        return n;
}

static ssize_t conn_send(Tunnel *c, const void *p, size_t n) {
        if (!c->ssl)
                return io_result(send(c->fd, p, n, MSG_NOSIGNAL));
        ERR_clear_error();
        return conn_ssl(c, SSL_write(c->ssl, p, (int) MIN(n, (size_t) INT_MAX)), SSL_ERROR_WANT_READ,
                        &c->write_wants_read, "write");
}

/* Our EOF to the upstream. Over TLS that is a close_notify: konnectivity-
 * server (as any TLS peer) reads it as the client's EOF. */
static int conn_shutdown_write(Tunnel *c) {
        int r = 0;

        if (c->ssl) {
                ERR_clear_error();
                r = SSL_shutdown(c->ssl);
                r = r >= 0 ? 0 : conn_ssl(c, r, SSL_ERROR_WANT_READ, &c->write_wants_read, "shutdown");
        } else if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
                r = -errno;
        if (r == 0)
                c->shut_done = true;
        return r == -EAGAIN ? 0 : r;
}

/* Write tx while the socket takes it, then the half-close once it is
 * empty. Returns 0 or -errno. */
static int conn_flush(Tunnel *c) {
        while (!buffer_empty(&c->tx)) {
                ssize_t n = conn_send(c, buffer_head(&c->tx), buffer_len(&c->tx));
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
                size_t request = MIN((size_t) n, c->request_left);
                c->request_left -= request;
                c->bytes_tx += (size_t) n - request;
                buffer_consume(&c->tx, (size_t) n);
        }
        if (c->tx_shutdown && !c->shut_done && (c->state == CONN_OPEN || c->state == CONN_CLOSING))
                return conn_shutdown_write(c);
        return 0;
}

/* --- opening: connect, TLS, CONNECT, the reply ------------------------------------- */

static int on_io(IoWatch *w, int fd, uint32_t revents, void *userdata);
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
static void conn_report_body(Tunnel *c);

static void conn_connected(Tunnel *c) {
        Upstream *u = c->upstream;
        const char *name = u->verify_name;

        c->state = CONN_REQUEST;
        if (u->ctx) {
                bool is_ip = ipaddr_parse(name, NULL) == 0;

                c->ssl = SSL_new(u->ctx);
                if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
                    /* as Go's crypto/tls: subjectAltName only, and no SNI for an IP */
                    (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1
                           : SSL_set1_host(c->ssl, name) != 1 || SSL_set_tlsext_host_name(c->ssl, name) != 1)) {
                        ERR_clear_error();
                        conn_error(c, "cannot set up TLS for %s", name);
                        conn_fail(c, 0, NULL);
                        return;
                }
                SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
                SSL_set_connect_state(c->ssl);
                c->state = CONN_HANDSHAKE;
                c->tls_want = EPOLLOUT;
        }
        conn_update_events(c);
}

static void on_connected(int fd, int error, ConnectorPhase phase, const char *message, const char *cause,
                         void *userdata) {
        Tunnel *c = userdata;
        int r, one = 1;

        c->connector = NULL; /* freed by now */
        if (fd < 0) {
                if (phase == CONNECTOR_RESOLVE)
                        conn_error(c, "%s", message);
                else
                        conn_error(c, "cannot connect to %s: %s", c->upstream->address, cause);
                conn_fail(c, 0, NULL);
                return;
        }
        c->fd = fd;
        if (c->upstream->host)
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        r = iopoll_add(c->upstream->iopoll, c->fd, 0, on_io, c, &c->io);
        if (r < 0) {
                conn_error(c, "cannot watch the upstream socket: %s", strerror(-r));
                conn_fail(c, 0, NULL);
                return;
        }
        conn_connected(c);
}

static void conn_handshake(Tunnel *c) {
        bool wants_read;
        int r;

        ERR_clear_error();
        r = SSL_connect(c->ssl);
        if (r == 1) {
                c->state = CONN_REQUEST;
                return;
        }
        r = conn_ssl(c, r, SSL_ERROR_WANT_READ, &wants_read, "handshake");
        if (r == -EAGAIN) {
                c->tls_want = wants_read ? EPOLLIN : EPOLLOUT;
                return;
        }
        if (r == 0)
                conn_error(c, "connection closed during the TLS handshake");
        conn_fail(c, r, NULL);
}

/* Report how the open ended; with anything but 200 the conn ends too. */
static void conn_report(Tunnel *c, int status, const char *reason, const char *body) {
        TunnelOpened cb = TAKE_PTR(c->cb);

        if (status != 200)
                conn_release(c);
        if (cb)
                cb(c, status, reason, body, c->userdata);
        if (status != 200)
                conn_end(c);
}

/* Peer bytes as text for a message: control bytes (but for tab, CR and
 * LF when 'lines') become '?'. */
static void text_copy(char *dst, const void *src, size_t n, bool lines) {
        const uint8_t *p = src;

        for (size_t i = 0; i < n; i++)
                dst[i] = (p[i] < 0x20 && !(lines && (p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))) ||
                                         p[i] == 0x7f || (!lines && p[i] == '"')
                                 ? '?'
                                 : (char) p[i];
        dst[n] = 0;
}

/* The reply head is the first 'n' bytes of rx: act on it. */
static void conn_on_reply(Tunnel *c, int n, const HttpResponseHead *h) {
        c->status = h->status;
        snprintf(c->reason, sizeof(c->reason), "%s", h->reason);
        buffer_consume(&c->rx, (size_t) n);
        if (h->status == 200) {
                /* whatever followed the head is the stream's */
                c->bytes_rx = buffer_len(&c->rx);
                c->rx_news = !buffer_empty(&c->rx) || c->rx_eof;
                c->state = CONN_OPEN;
                conn_report(c, 200, c->reason, "");
        } else if (h->status < 400 || h->status > 599) {
                /* as the API server's dialer: a tunnel opens with 200 only (a 1xx too is final) */
                conn_error(c, "upstream answered %d%s%s", h->status, *h->reason ? " " : "", h->reason);
                conn_fail(c, 0, NULL);
        } else {
                /* konnectivity-server closes after an error: EOF ends the body */
                c->state = CONN_BODY;
                if (sd_event_add_time_relative(c->upstream->event, &c->timer, CLOCK_MONOTONIC, UPSTREAM_BODY_USEC,
                                               10 * USEC_PER_MSEC, on_timer, c) < 0)
                        conn_report_body(c); /* no timer: what came is all there is */
        }
}

/* "HTTP/1.x" is all http_response_parse() takes, and all a reply should
 * be; but konnectivity-server releases before apiserver-network-proxy PR
 * 765 write an agent's dial failure with Go's http.Response.Write and no
 * version set: "HTTP/0.0 503 ...". Go's client (the API server's) reads
 * that, so we do. */
static void conn_fix_version(Tunnel *c) {
        if (buffer_len(&c->rx) >= 9 && memcmp(buffer_head(&c->rx), "HTTP/0.0 ", 9) == 0)
                c->rx.data[c->rx.start + 5] = '1';
}

static void conn_request(Tunnel *c) {
        const char *p;
        HttpResponseHead h;
        size_t len;
        int r, sent;

        /* a failed send still lets a reply that came first be read */
        sent = conn_flush(c);
        while (!c->rx_eof && buffer_len(&c->rx) < UPSTREAM_HEAD_MAX) {
                ssize_t n = conn_recv_into(c, &c->rx, UPSTREAM_HEAD_MAX - buffer_len(&c->rx));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        conn_fail(c, (int) n, "reading the upstream's reply");
                        return;
                }
                c->rx_eof = n == 0;
        }
        conn_fix_version(c);
        p = buffer_empty(&c->rx) ? "" : (const char *) buffer_head(&c->rx);
        len = buffer_len(&c->rx);
        r = http_response_parse(p, len, UPSTREAM_HEAD_MAX, &h);
        if (r > 0)
                conn_on_reply(c, r, &h);
        else if (r == 0 && !c->rx_eof && sent >= 0)
                return;
        else if (r == 0 && sent < 0)
                conn_fail(c, sent, "cannot send the CONNECT");
        else {
                if (r == 0)
                        conn_error(c, len == 0 ? "upstream closed the connection before replying"
                                               : "upstream closed the connection in the middle of its reply");
                else if (r == -EMSGSIZE)
                        conn_error(c, "upstream reply head too large (over %d bytes)", UPSTREAM_HEAD_MAX);
                else if (r == -EBADMSG) {
                        char start[33];
                        text_copy(start, p, MIN(len, sizeof(start) - 1), false);
                        conn_error(c, "upstream reply is not HTTP/1.x: \"%s\"", start);
                }
                conn_fail(c, r == -ENOMEM ? r : 0, "reading the upstream's reply");
        }
}

/* An error reply's body, as far as it came: passed on as text. */
static void conn_report_body(Tunnel *c) {
        char body[UPSTREAM_BODY_MAX + 1];

        text_copy(body, buffer_head(&c->rx), MIN(buffer_len(&c->rx), (size_t) UPSTREAM_BODY_MAX), true);
        conn_report(c, c->status, c->reason, body);
}

static void conn_body(Tunnel *c) {
        while (!c->rx_eof && buffer_len(&c->rx) < UPSTREAM_BODY_MAX) {
                ssize_t n = conn_recv_into(c, &c->rx, UPSTREAM_BODY_MAX - buffer_len(&c->rx));
                if (n == -EAGAIN)
                        return;
                if (n <= 0)
                        break; /* EOF, or an error: the status is what counts */
        }
        conn_report_body(c);
}

/* --- open: the far end ---------------------------------------------------------- */

static void conn_pump(Tunnel *c) {
        int r = 0;

        while (!c->rx_eof && (c->state == CONN_CLOSING || buffer_room(&c->rx) > 0)) {
                char scratch[16 * 1024];
                /* closing: no one reads any more, drop it lest the upstream stall */
                ssize_t n = c->state == CONN_CLOSING ? conn_recv(c, scratch, sizeof(scratch))
                                                     : conn_recv_into(c, &c->rx, buffer_room(&c->rx));
                if (n == -EAGAIN)
                        break;
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                c->rx_eof = n == 0;
                c->bytes_rx += (uint64_t) n;
                c->rx_news = true;
                if (c->state == CONN_CLOSING)
                        break; /* the rest on the next round: a fast sender cannot hold the loop */
        }
        if (r == 0)
                r = conn_flush(c);
        if (c->rx_news && c->state == CONN_OPEN && c->hooks && c->hooks->readable) {
                c->rx_news = false;
                c->hooks->readable(c->relay);
                if (c->state != CONN_OPEN)
                        return; /* closed from the hook */
        }
        if (r < 0) {
                conn_fail(c, r, "upstream connection");
                return;
        }
        if (c->state == CONN_CLOSING) {
                if (buffer_empty(&c->tx) && c->shut_done)
                        conn_end(c);
                return;
        }
        if (c->tx_blocked && buffer_room(&c->tx) >= UPSTREAM_TX_MAX / 2) {
                c->tx_blocked = false;
                if (c->hooks && c->hooks->writable)
                        c->hooks->writable(c->relay);
        }
}

/* One step in the state the conn is in; true if it moved on to one that
 * may proceed now (the reply head may hold stream bytes already). */
static bool conn_step(Tunnel *c) {
        ConnState s = c->state;

        if (s == CONN_HANDSHAKE)
                conn_handshake(c);
        else if (s == CONN_REQUEST)
                conn_request(c);
        else if (s == CONN_BODY)
                conn_body(c);
        else if (s == CONN_OPEN || s == CONN_CLOSING)
                conn_pump(c);
        return c->state != s && c->state != CONN_CONNECTING && c->state != CONN_CLOSING;
}

static int on_io(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Tunnel *c = conn_ref(userdata);

        while (conn_step(c))
                ;
        conn_update_events(c);
        conn_unref(c);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Tunnel *c = conn_ref(userdata);

        if (c->state == CONN_BODY)
                conn_report_body(c);
        else
                conn_end(c); /* lingered long enough */
        conn_unref(c);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        Tunnel *c = conn_ref(userdata);

        if (c->state == CONN_REPORTING)
                conn_report(c, 0, c->error, "");
        else if (c->state == CONN_FAILED && c->hooks) {
                const FarEndHooks *h = c->hooks;
                conn_end(c);
                if (h->failed)
                        h->failed(c->relay, c->error);
        } else if (c->state == CONN_OPEN) {
                conn_pump(c);
                conn_update_events(c);
        }
        conn_unref(c);
        return 0;
}

static bool host_is_sendable(const char *host) {
        size_t n = strlen(host);

        if (n == 0 || n > UPSTREAM_HOST_MAX)
                return false;
        /* it goes into the request line: no space, no control byte */
        for (const char *p = host; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                        return false;
        return true;
}

int tunnel_open(Upstream *u, const char *host, uint16_t port, TunnelOpened cb, void *userdata, Tunnel **ret) {
        _cleanup_free_ char *request = NULL;
        char target[UPSTREAM_HOST_MAX + 16];
        Tunnel *c;
        int r, len;

        if (!host_is_sendable(host) || port == 0 || !cb)
                return -EINVAL;
        /* byte for byte what kube-apiserver's egress dialer writes */
        len = asprintf(&request, "CONNECT %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                       hostport_format(host, port, target, sizeof(target)));
        if (len < 0) {
                request = NULL;
                return -ENOMEM;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (Tunnel) { .upstream = u, .n_ref = 1, .fd = -1, .cb = cb, .userdata = userdata,
                              .request_left = (size_t) len };
        u->n_ref++;
        buffer_init(&c->rx, UPSTREAM_RX_MAX);
        buffer_init(&c->tx, UPSTREAM_TX_MAX);
        r = (int) buffer_append(&c->tx, request, (size_t) len);
        if (r >= 0)
                r = sd_event_add_defer(u->event, &c->defer, on_defer, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        if (r < 0) {
                c->defer = sd_event_source_disable_unref(c->defer);
                conn_unref(c);
                return r;
        }
        (void) sd_event_source_set_description(c->defer, "upstream-defer");
        u->n_conns++;

        c->state = CONN_CONNECTING;
        r = connector_new(u->event, u->iopoll,
                          &(ConnectorParams) {
                                  .host = u->host,
                                  .port = u->port,
                                  .addr = u->addr_len > 0 ? (const struct sockaddr *) &u->addr : NULL,
                                  .addr_len = u->addr_len,
                                  .done = on_connected,
                                  .userdata = c,
                          },
                          &c->connector);
        if (r < 0)
                conn_fail(c, r, "cannot connect to the upstream");
        *ret = c;
        return 0;
}

void tunnel_abort(Tunnel *c) {
        if (c)
                conn_end(c);
}

uint64_t tunnel_bytes_rx(const Tunnel *c) {
        return c->bytes_rx;
}

uint64_t tunnel_bytes_tx(const Tunnel *c) {
        return c->bytes_tx;
}

/* --- the far end ops: never a hook from inside one (the relay is mid-call) --------- */

static Buffer *far_rx(void *end) {
        return &((Tunnel *) end)->rx;
}

static bool far_rx_eof(void *end) {
        return ((Tunnel *) end)->rx_eof;
}

static Buffer *far_tx(void *end) {
        return &((Tunnel *) end)->tx;
}

static void far_consumed(void *end) {
        Tunnel *c = end;

        if (c->state != CONN_OPEN)
                return;
        /* TLS may hold decrypted bytes the socket will not signal again */
        if (c->ssl && !c->rx_eof && buffer_room(&c->rx) > 0 && SSL_has_pending(c->ssl))
                conn_schedule(c);
        conn_update_events(c);
}

static void far_kick(void *end) {
        Tunnel *c = end;
        int r;

        if (c->state != CONN_OPEN)
                return;
        if (buffer_room(&c->tx) == 0)
                c->tx_blocked = true;
        r = conn_flush(c);
        if (r < 0) {
                conn_fail(c, r, "upstream connection");
                return;
        }
        if (c->tx_blocked && buffer_room(&c->tx) >= UPSTREAM_TX_MAX / 2)
                conn_schedule(c); /* writable, from the loop */
        conn_update_events(c);
}

static void far_shutdown_tx(void *end) {
        ((Tunnel *) end)->tx_shutdown = true;
        far_kick(end);
}

static void far_attach(void *end, const FarEndHooks *hooks, void *relay) {
        Tunnel *c = end;

        c->hooks = hooks;
        c->relay = relay;
        if (c->state == CONN_FAILED || c->rx_news)
                conn_schedule(c);
}

static void far_close(void *end) {
        Tunnel *c = end;

        c->hooks = NULL;
        c->tx_shutdown = true;
        buffer_done(&c->rx);
        if (c->state != CONN_OPEN || conn_flush(c) < 0 || (buffer_empty(&c->tx) && c->shut_done) ||
            sd_event_add_time_relative(c->upstream->event, &c->timer, CLOCK_MONOTONIC, UPSTREAM_LINGER_USEC,
                                       USEC_PER_SEC, on_timer, c) < 0) {
                conn_end(c);
                return;
        }
        (void) sd_event_source_set_description(c->timer, "upstream-linger");
        c->state = CONN_CLOSING;
        conn_update_events(c);
}

static void far_abort(void *end) {
        conn_end(end);
}

static const FarEndOps upstream_far_ops = {
        .rx = far_rx,
        .rx_eof = far_rx_eof,
        .consumed = far_consumed,
        .tx = far_tx,
        .kick = far_kick,
        .shutdown_tx = far_shutdown_tx,
        .attach = far_attach,
        .close = far_close,
        .abort = far_abort,
};

FarEnd tunnel_far_end(Tunnel *c) {
        return (FarEnd) { &upstream_far_ops, c };
}
