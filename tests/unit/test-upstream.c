/* Tests for the Konnectivity upstream: the CONNECT it sends, every kind of
 * reply, TLS, and the open tunnel as a far end, against fake upstreams run
 * by threads of this process on a unix socket or 127.0.0.1. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buffer.h"
#include "conf.h"
#include "macro.h"
#include "relay.h"
#include "tunnel.h"
#include "upstream.h"

/* ---- the test CA and certificates (made once with the openssl CLI) ----------- */

static struct {
        bool ok;
        char dir[64];
        char ca[96], other_ca[96], server_crt[96], server_key[96], client_crt[96], client_key[96];
} certs;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int certs_setup(void **state) {
        static const char script[] =
                "cd %s && "
                "printf 'subjectAltName=DNS:konnectivity.test,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' >server.ext && "
                "printf 'extendedKeyUsage=clientAuth\\n' >client.ext && "
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 2 "
                "  -subj /CN=test-ca -keyout ca.key -out ca.crt && "
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 2 "
                "  -subj /CN=other-ca -keyout other.key -out other.crt && "
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=konnectivity-server "
                "  -keyout server.key -out server.csr && "
                "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 2 "
                "  -extfile server.ext -out server.crt && "
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=sshtund-client "
                "  -keyout client.key -out client.csr && "
                "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 2 "
                "  -extfile client.ext -out client.crt";
        char cmd[sizeof(script) + 64 + 32], full[sizeof(cmd) + 32];

        snprintf(certs.dir, sizeof(certs.dir), "/tmp/test-upstream-certs-XXXXXX");
        assert_non_null(mkdtemp(certs.dir));
        snprintf(cmd, sizeof(cmd), script, certs.dir);
        snprintf(full, sizeof(full), "(%s) >/dev/null 2>&1", cmd);
        certs.ok = system(full) == 0;
        snprintf(certs.ca, sizeof(certs.ca), "%s/ca.crt", certs.dir);
        snprintf(certs.other_ca, sizeof(certs.other_ca), "%s/other.crt", certs.dir);
        snprintf(certs.server_crt, sizeof(certs.server_crt), "%s/server.crt", certs.dir);
        snprintf(certs.server_key, sizeof(certs.server_key), "%s/server.key", certs.dir);
        snprintf(certs.client_crt, sizeof(certs.client_crt), "%s/client.crt", certs.dir);
        snprintf(certs.client_key, sizeof(certs.client_key), "%s/client.key", certs.dir);
        return 0;
}

static int certs_teardown(void **state) {
        return nftw(certs.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- a fake konnectivity-server: one connection, on a thread ------------------- */

typedef enum FakeKind {
        FAKE_UNIX,
        FAKE_TCP,
        FAKE_TLS,
} FakeKind;

typedef struct Fake Fake;
typedef struct Peer {
        int fd;
        SSL *ssl;
} Peer;
typedef void (*Scenario)(Fake *k, Peer *p);

struct Fake {
        bool started;
        FakeKind kind;
        int listen_fd;
        uint16_t port;
        int stop[2], go[2];
        pthread_t thread;
        SSL_CTX *ctx;
        bool want_client_cert;
        bool no_handshake; /* TLS: accept, then never answer the ClientHello */
        bool no_head;      /* do not read the request head */
        Scenario scenario;
        const char *reply;
        size_t reply_len;
        size_t flood;      /* bytes to send after the 200 */

        /* what the thread saw: written before 'seen' (or 'done') is set */
        char head[2048];
        char sni[256], client_cn[256];
        char data[256];    /* the first bytes from the client after the head */
        size_t data_len;
        atomic_bool seen, done, client_eof, close_notify, mismatch;
        atomic_size_t sent, received;
};

static uint8_t pattern(size_t i) {
        return (uint8_t) ((i ^ (i >> 8) ^ (i >> 16)) * 31 + 7);
}

/* Wait for fd, or the stop signal (false). */
static bool fake_wait(Fake *k, int fd, short events) {
        struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = k->stop[0], .events = POLLIN } };
        int r;

        do
                r = poll(p, 2, 20000);
        while (r < 0 && errno == EINTR);
        return r > 0 && !p[1].revents;
}

static void fake_wait_go(Fake *k) {
        char c;

        if (fake_wait(k, k->go[0], POLLIN))
                (void) !read(k->go[0], &c, 1);
}

static ssize_t peer_read(Fake *k, Peer *p, void *buf, size_t n) {
        if (!(p->ssl && SSL_pending(p->ssl) > 0) && !fake_wait(k, p->fd, POLLIN))
                return -1;
        if (p->ssl) {
                int r = SSL_read(p->ssl, buf, (int) n);
                if (r > 0)
                        return r;
                if (SSL_get_error(p->ssl, r) == SSL_ERROR_ZERO_RETURN) {
                        k->close_notify = true;
                        return 0;
                }
                return -1;
        }
        return read(p->fd, buf, n);
}

static bool peer_write(Peer *p, const void *buf, size_t n) {
        const char *b = buf;

        while (n > 0) {
                ssize_t w = p->ssl ? SSL_write(p->ssl, b, (int) n) : send(p->fd, b, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return false;
                b += w;
                n -= (size_t) w;
        }
        return true;
}

static void peer_shutdown(Peer *p) {
        if (p->ssl)
                (void) SSL_shutdown(p->ssl);
        else
                (void) shutdown(p->fd, SHUT_WR);
}

/* Read the client until EOF: the first bytes into k->data, the count into
 * k->received, the pattern checked from byte 0 when 'check'. */
static void peer_drain(Fake *k, Peer *p, bool check) {
        char buf[65536];
        ssize_t n;

        while ((n = peer_read(k, p, buf, sizeof(buf))) > 0) {
                size_t off = k->received;
                for (ssize_t i = 0; check && i < n; i++)
                        if ((uint8_t) buf[i] != pattern(off + (size_t) i))
                                k->mismatch = true;
                if (k->data_len < sizeof(k->data) - 1) {
                        size_t m = MIN((size_t) n, sizeof(k->data) - 1 - k->data_len);
                        memcpy(k->data + k->data_len, buf, m);
                        k->data_len += m;
                }
                k->received += (size_t) n;
        }
        if (n == 0)
                k->client_eof = true;
}

static void sc_reply(Fake *k, Peer *p) {
        (void) peer_write(p, k->reply, k->reply_len);
}

static void sc_reply_hold(Fake *k, Peer *p) {
        (void) peer_write(p, k->reply, k->reply_len);
        peer_drain(k, p, false);
}

static void sc_silent(Fake *k, Peer *p) {
        peer_drain(k, p, false);
}

/* 200, then echo until the client's EOF, then ours. */
static void sc_echo(Fake *k, Peer *p) {
        char buf[65536];
        ssize_t n;

        if (!peer_write(p, k->reply, k->reply_len))
                return;
        while ((n = peer_read(k, p, buf, sizeof(buf))) > 0) {
                k->received += (size_t) n;
                if (!peer_write(p, buf, (size_t) n))
                        return;
        }
        if (n == 0)
                k->client_eof = true;
        peer_shutdown(p);
        peer_drain(k, p, false);
}

/* 200, then k->flood bytes of the pattern, then EOF. */
static void sc_flood(Fake *k, Peer *p) {
        char buf[16384];

        if (!peer_write(p, k->reply, k->reply_len))
                return;
        while (k->sent < k->flood) {
                size_t n = MIN(sizeof(buf), k->flood - k->sent);
                for (size_t i = 0; i < n; i++)
                        buf[i] = (char) pattern(k->sent + i);
                if (!peer_write(p, buf, n))
                        return;
                k->sent += n;
        }
        peer_shutdown(p);
        peer_drain(k, p, false);
}

/* 200, wait for the go, then read everything (pattern checked). */
static void sc_slow_reader(Fake *k, Peer *p) {
        if (!peer_write(p, k->reply, k->reply_len))
                return;
        fake_wait_go(k);
        peer_drain(k, p, true);
}

/* 200, read to the client's EOF, answer "bye", close. */
static void sc_half_close_up(Fake *k, Peer *p) {
        if (!peer_write(p, k->reply, k->reply_len))
                return;
        peer_drain(k, p, false);
        (void) peer_write(p, "bye", 3);
        peer_shutdown(p);
}

/* 200 + "data", our EOF, then read the client to its EOF. */
static void sc_half_close_down(Fake *k, Peer *p) {
        if (!peer_write(p, k->reply, k->reply_len) || !peer_write(p, "data", 4))
                return;
        peer_shutdown(p);
        peer_drain(k, p, false);
}

/* 200, wait for a byte, then reset the connection. */
static void sc_reset(Fake *k, Peer *p) {
        struct linger l = { .l_onoff = 1, .l_linger = 0 };
        char c;

        if (!peer_write(p, k->reply, k->reply_len) || peer_read(k, p, &c, 1) != 1)
                return;
        (void) setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void fake_read_head(Fake *k, Peer *p) {
        size_t n = 0;

        while (n < sizeof(k->head) - 1 && (n < 4 || memcmp(k->head + n - 4, "\r\n\r\n", 4) != 0))
                if (peer_read(k, p, k->head + n, 1) != 1)
                        break;
                else
                        n++;
        k->head[n] = 0;
}

static void *fake_thread(void *userdata) {
        Fake *k = userdata;
        Peer p = { .fd = -1 };

        if (!fake_wait(k, k->listen_fd, POLLIN))
                goto out;
        p.fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (p.fd < 0)
                goto out;
        if (k->ctx) {
                if (k->no_handshake) {
                        sc_silent(k, &p);
                        goto out;
                }
                p.ssl = SSL_new(k->ctx);
                SSL_set_fd(p.ssl, p.fd);
                if (SSL_accept(p.ssl) != 1)
                        goto out;
                const char *sni = SSL_get_servername(p.ssl, TLSEXT_NAMETYPE_host_name);
                snprintf(k->sni, sizeof(k->sni), "%s", sni ?: "");
                X509 *cert = SSL_get1_peer_certificate(p.ssl);
                if (cert) {
                        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, k->client_cn,
                                                  sizeof(k->client_cn));
                        X509_free(cert);
                }
        }
        if (!k->no_head)
                fake_read_head(k, &p);
        k->seen = true;
        k->scenario(k, &p);
out:
        if (p.ssl)
                SSL_free(p.ssl);
        safe_close(p.fd);
        k->done = true;
        return NULL;
}

/* ---- the fixture ------------------------------------------------------------------ */

typedef struct Fixture {
        char dir[64];
        char sock[128];
        char address[192];
        sd_event *event;
        ConfigKonnectivity konnectivity;
        Upstream *u;
        Fake fake;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-upstream-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->sock, sizeof(f->sock), "%s/konnectivity-server.socket", f->dir);
        snprintf(f->address, sizeof(f->address), "unix:%s", f->sock);
        assert_int_equal(sd_event_new(&f->event), 0);
        f->fake.listen_fd = -1;
        *state = f;
        return 0;
}

static void fake_stop(Fake *k) {
        if (!k->started)
                return;
        (void) !write(k->stop[1], "x", 1);
        pthread_join(k->thread, NULL);
        k->listen_fd = safe_close(k->listen_fd);
        safe_close(k->stop[0]);
        safe_close(k->stop[1]);
        safe_close(k->go[0]);
        safe_close(k->go[1]);
        SSL_CTX_free(k->ctx);
        k->ctx = NULL;
        k->started = false;
}

static int teardown(void **state) {
        Fixture *f = *state;
        unsigned left = f->u ? upstream_conns(f->u) : 0;
        int r;

        /* clean up first: a failed test leaves no files behind either */
        f->u = upstream_free(f->u);
        fake_stop(&f->fake);
        (void) unlink(f->sock);
        r = rmdir(f->dir);
        sd_event_unref(f->event);
        free(f);
        assert_int_equal(r, 0);
        assert_int_equal(left, 0);
        return 0;
}

/* Listen and start the thread; TCP and TLS on 127.0.0.1, and f->address
 * set to reach it. */
static void fake_start(Fixture *f, FakeKind kind, Scenario sc, const char *reply) {
        Fake *k = &f->fake;

        k->kind = kind;
        k->scenario = sc;
        k->reply = reply ?: "HTTP/1.1 200 Connection Established\r\n\r\n";
        k->reply_len = strlen(k->reply);
        assert_int_equal(pipe2(k->stop, O_CLOEXEC), 0);
        assert_int_equal(pipe2(k->go, O_CLOEXEC), 0);
        if (kind == FAKE_UNIX) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                memcpy(sa.sun_path, f->sock, strlen(f->sock) + 1);
                k->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_int_equal(bind(k->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        } else {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(sa);
                k->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_int_equal(bind(k->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                assert_int_equal(getsockname(k->listen_fd, (struct sockaddr *) &sa, &len), 0);
                k->port = ntohs(sa.sin_port);
                snprintf(f->address, sizeof(f->address), "tcp:127.0.0.1:%u", k->port);
        }
        assert_int_equal(listen(k->listen_fd, 8), 0);
        if (kind == FAKE_TLS) {
                k->ctx = SSL_CTX_new(TLS_server_method());
                assert_non_null(k->ctx);
                assert_int_equal(SSL_CTX_use_certificate_chain_file(k->ctx, certs.server_crt), 1);
                assert_int_equal(SSL_CTX_use_PrivateKey_file(k->ctx, certs.server_key, SSL_FILETYPE_PEM), 1);
                if (k->want_client_cert) {
                        assert_int_equal(SSL_CTX_load_verify_locations(k->ctx, certs.ca, NULL), 1);
                        SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
                }
        }
        assert_int_equal(pthread_create(&k->thread, NULL, fake_thread, k), 0);
        k->started = true;
}

static void fake_go(Fake *k) {
        assert_int_equal(write(k->go[1], "g", 1), 1);
}

static void upstream_make(Fixture *f, const char *ca, const char *cert, const char *key, const char *name) {
        ConfigKonnectivity *kc = &f->konnectivity;
        char *error = NULL;

        kc->upstream = f->address;
        kc->ca_file = (char *) ca;
        kc->cert_file = (char *) cert;
        kc->key_file = (char *) key;
        kc->server_name = (char *) name;
        assert_int_equal(upstream_new(f->event, &f->konnectivity, &f->u, &error), 0);
        assert_null(error);
        assert_string_equal(upstream_address(f->u), f->address);
}

#define RUN_UNTIL(f, cond)                                                                   \
        do {                                                                                 \
                usec_t _end = now_usec(CLOCK_MONOTONIC) + 20 * USEC_PER_SEC;                 \
                while (!(cond)) {                                                            \
                        assert_true(now_usec(CLOCK_MONOTONIC) < _end);                       \
                        assert_true(sd_event_run((f)->event, 10 * USEC_PER_MSEC) >= 0); \
                }                                                                            \
        } while (0)

/* Run the loop for a while; returns how many times it dispatched. */
static unsigned run_for(Fixture *f, usec_t usec) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + usec;
        unsigned n = 0;

        while (now_usec(CLOCK_MONOTONIC) < end) {
                int r = sd_event_run(f->event, 10 * USEC_PER_MSEC);
                assert_true(r >= 0);
                n += r > 0;
        }
        return n;
}

/* ---- the relay's part, played by the test ------------------------------------------- */

typedef struct Side {
        FarEnd far;
        Buffer *rx, *tx;
        unsigned readable, writable, failed;
        char failure[256];
        size_t max_rx;
        bool consume;             /* take rx in the readable hook */
        uint8_t *got;
        size_t got_len, got_alloc;
        size_t feed_total, fed;   /* pattern bytes to send, and sent so far */
        bool shutdown_after_feed;
} Side;

static void side_take(Side *s, size_t max) {
        size_t n = MIN(buffer_len(s->rx), max);

        if (n == 0)
                return;
        if (s->got_len + n > s->got_alloc) {
                s->got_alloc = MAX(s->got_alloc * 2, s->got_len + n);
                s->got = realloc(s->got, s->got_alloc);
                assert_non_null(s->got);
        }
        memcpy(s->got + s->got_len, buffer_head(s->rx), n);
        s->got_len += n;
        buffer_consume(s->rx, n);
        s->far.ops->consumed(s->far.end);
}

static void side_feed(Side *s) {
        uint8_t buf[16384];
        bool any = false;

        while (s->fed < s->feed_total && buffer_room(s->tx) > 0) {
                size_t n = MIN(MIN(sizeof(buf), buffer_room(s->tx)), s->feed_total - s->fed);
                for (size_t i = 0; i < n; i++)
                        buf[i] = pattern(s->fed + i);
                assert_int_equal(buffer_append(s->tx, buf, n), (ssize_t) n);
                s->fed += n;
                any = true;
        }
        if (any)
                s->far.ops->kick(s->far.end);
        if (s->fed == s->feed_total && s->shutdown_after_feed) {
                s->shutdown_after_feed = false;
                s->far.ops->shutdown_tx(s->far.end);
        }
}

static void hook_readable(void *relay) {
        Side *s = relay;

        s->readable++;
        s->max_rx = MAX(s->max_rx, buffer_len(s->rx));
        if (s->consume)
                side_take(s, SIZE_MAX);
}

static void hook_writable(void *relay) {
        Side *s = relay;

        s->writable++;
        side_feed(s);
}

static void hook_failed(void *relay, const char *reason) {
        Side *s = relay;

        s->failed++;
        snprintf(s->failure, sizeof(s->failure), "%s", reason);
        s->far.end = NULL;
}

static const FarEndHooks side_hooks = {
        .readable = hook_readable,
        .writable = hook_writable,
        .failed = hook_failed,
};

static void side_attach(Side *s, Tunnel *c) {
        s->far = tunnel_far_end(c);
        s->rx = s->far.ops->rx(s->far.end);
        s->tx = s->far.ops->tx(s->far.end);
        s->far.ops->attach(s->far.end, &side_hooks, s);
}

static void side_send(Side *s, const char *text) {
        assert_int_equal(buffer_append(s->tx, text, strlen(text)), (ssize_t) strlen(text));
        s->far.ops->kick(s->far.end);
}

static bool side_at_eof(const Side *s) {
        return s->far.end && s->far.ops->rx_eof(s->far.end) && buffer_empty(s->rx);
}

typedef struct Opened {
        unsigned calls;
        int status;
        char reason[256];
        char body[8192];
        Tunnel *conn;
        Side *side;            /* attached on 200 */
        bool abort_in_callback;
        usec_t at;
} Opened;

static void on_opened(Tunnel *c, int status, const char *reason, const char *body, void *userdata) {
        Opened *o = userdata;

        o->calls++;
        o->status = status;
        o->at = now_usec(CLOCK_MONOTONIC);
        assert_non_null(reason);
        assert_non_null(body);
        snprintf(o->reason, sizeof(o->reason), "%s", reason);
        snprintf(o->body, sizeof(o->body), "%s", body);
        o->conn = status == 200 ? c : NULL;
        if (status == 200 && o->abort_in_callback) {
                tunnel_abort(c);
                o->conn = NULL;
        } else if (status == 200 && o->side)
                side_attach(o->side, c);
}

/* CONNECT host:port and run until the callback ran. */
static void open_and_wait(Fixture *f, const char *host, uint16_t port, Opened *o) {
        Tunnel *c = NULL;

        assert_int_equal(tunnel_open(f->u, host, port, on_opened, o, &c), 0);
        assert_non_null(c);
        assert_int_equal(o->calls, 0); /* never from inside tunnel_open() */
        RUN_UNTIL(f, o->calls > 0);
        assert_int_equal(o->calls, 1);
}

/* ---- the CONNECT and the replies --------------------------------------------------- */

static void test_connect_bytes(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .consume = true };

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_echo, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.reason, "Connection Established");
        assert_true(f->fake.seen);
        /* exactly what kube-apiserver's egress dialer writes */
        assert_string_equal(f->fake.head, "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_int_equal(upstream_conns(f->u), 1);

        side_send(&s, "ping");
        RUN_UNTIL(f, s.got_len == 4);
        assert_memory_equal(s.got, "ping", 4);
        assert_int_equal(tunnel_bytes_tx(o.conn), 4);
        assert_int_equal(tunnel_bytes_rx(o.conn), 4);
        s.far.ops->abort(s.far.end);
        assert_int_equal(upstream_conns(f->u), 0);
        RUN_UNTIL(f, f->fake.done);
        assert_true(f->fake.client_eof);
        free(s.got);
}

static void test_connect_ipv6_and_names(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c = NULL;

        fake_start(f, FAKE_UNIX, sc_reply, "HTTP/1.1 503 Service Unavailable\r\n\r\n");
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "fd00::7", 10250, &o);
        assert_string_equal(f->fake.head, "CONNECT [fd00::7]:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_int_equal(o.status, 503);

        /* nothing that could break the request line goes out */
        assert_int_equal(tunnel_open(f->u, "a b", 1, on_opened, &o, &c), -EINVAL);
        assert_int_equal(tunnel_open(f->u, "a\r\nX: y", 1, on_opened, &o, &c), -EINVAL);
        assert_int_equal(tunnel_open(f->u, "", 1, on_opened, &o, &c), -EINVAL);
        assert_int_equal(tunnel_open(f->u, "node-1", 0, on_opened, &o, &c), -EINVAL);
        assert_null(c);
        assert_int_equal(upstream_conns(f->u), 0);
}

static void test_bytes_after_head(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { 0 };

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_reply_hold, "HTTP/1.1 200 Connection Established\r\n\r\nhello");
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "node-1", 10250, &o);
        assert_int_equal(o.status, 200);
        /* they belong to the stream: in rx when the relay takes over */
        RUN_UNTIL(f, buffer_len(s.rx) == 5);
        assert_memory_equal(buffer_head(s.rx), "hello", 5);
        assert_int_equal(tunnel_bytes_rx(o.conn), 5);
        s.far.ops->abort(s.far.end);
}

/* What konnectivity-server writes when it has no agent for the host. */
static void test_no_tunnels_500(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        fake_start(f, FAKE_UNIX, sc_reply,
                   "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
                   "currently no tunnels available: No agent available");
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 500);
        assert_string_equal(o.reason, "Internal Server Error");
        assert_string_equal(o.body, "currently no tunnels available: No agent available");
        assert_int_equal(upstream_conns(f->u), 0);
}

static void test_gateway_errors(void **state) {
        static const struct {
                const char *reply;
                int status;
                const char *reason, *body;
        } cases[] = {
                { "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                  "Backend context error: context canceled\r\n",
                  502, "Bad Gateway", "Backend context error: context canceled\r\n" },
                { "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                  "Backend dial timeout: backend dial timeout\r\n",
                  504, "Gateway Timeout", "Backend dial timeout: backend dial timeout\r\n" },
                /* older releases: an agent's dial failure, written with no HTTP version */
                { "HTTP/0.0 503 Service Unavailable\r\n\r\ndial tcp 10.0.0.7:10250: connect: connection refused",
                  503, "Service Unavailable", "dial tcp 10.0.0.7:10250: connect: connection refused" },
                /* newer releases: with a length, and a control byte that must not pass */
                { "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nrefused\x01!",
                  503, "Service Unavailable", "refused?!" },
        };
        Fixture *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Opened o = { 0 };

                fake_start(f, FAKE_UNIX, sc_reply, cases[i].reply);
                upstream_make(f, NULL, NULL, NULL, NULL);
                open_and_wait(f, "10.0.0.7", 10250, &o);
                assert_int_equal(o.status, cases[i].status);
                assert_string_equal(o.reason, cases[i].reason);
                assert_string_equal(o.body, cases[i].body);
                assert_int_equal(upstream_conns(f->u), 0);
                f->u = upstream_free(f->u);
                fake_stop(&f->fake);
                (void) unlink(f->sock);
        }
}

/* An error reply on a connection kept open: a length ends the wait at
 * once, without one the short timer does; the body is cut at 4 KiB. */
static void test_error_body_bounded(void **state) {
        static const char head[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10000\r\n\r\n";
        Fixture *f = *state;
        char *big = malloc(sizeof(head) + 10000);
        Opened o = { 0 };
        usec_t start;

        assert_non_null(big);
        memcpy(big, head, sizeof(head) - 1);
        memset(big + sizeof(head) - 1, 'x', 10000);
        big[sizeof(head) - 1 + 10000] = 0;

        fake_start(f, FAKE_UNIX, sc_reply_hold, big);
        upstream_make(f, NULL, NULL, NULL, NULL);
        start = now_usec(CLOCK_MONOTONIC);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 503);
        assert_int_equal(strlen(o.body), 4096);
        assert_true(o.at - start < 400 * USEC_PER_MSEC);
        f->u = upstream_free(f->u);
        fake_stop(&f->fake);
        (void) unlink(f->sock);
        free(big);

        memset(&o, 0, sizeof(o));
        fake_start(f, FAKE_UNIX, sc_reply_hold, "HTTP/1.1 503 Service Unavailable\r\n\r\npartial");
        upstream_make(f, NULL, NULL, NULL, NULL);
        start = now_usec(CLOCK_MONOTONIC);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 503);
        assert_string_equal(o.body, "partial");
        assert_true(o.at - start >= 400 * USEC_PER_MSEC);
        assert_true(o.at - start < 3 * USEC_PER_SEC);
}

static void test_malformed_replies(void **state) {
        static const struct {
                const char *reply, *reason;
        } cases[] = {
                { "SSH-2.0-OpenSSH_9.2p1\r\n", "upstream reply is not HTTP/1.x: \"SSH-2.0-OpenSSH_9.2p1??\"" },
                { "", "upstream closed the connection before replying" },
                { "HTTP/1.1 200 Conn", "upstream closed the connection in the middle of its reply" },
                { "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", "upstream answered 302 Found" },
                { "HTTP/1.1 204 No Content\r\n\r\n", "upstream answered 204 No Content" },
                /* as the API server's dialer (Go's http.ReadResponse): a 1xx is the answer */
                { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection Established\r\n\r\n",
                  "upstream answered 100 Continue" },
        };
        Fixture *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Opened o = { 0 };

                fake_start(f, FAKE_UNIX, sc_reply, cases[i].reply);
                upstream_make(f, NULL, NULL, NULL, NULL);
                open_and_wait(f, "10.0.0.7", 10250, &o);
                assert_int_equal(o.status, 0);
                assert_string_equal(o.reason, cases[i].reason);
                assert_string_equal(o.body, "");
                assert_int_equal(upstream_conns(f->u), 0);
                f->u = upstream_free(f->u);
                fake_stop(&f->fake);
                (void) unlink(f->sock);
        }
}

static void test_closes_at_once(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        f->fake.no_head = true;
        fake_start(f, FAKE_UNIX, sc_reply, "");
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        assert_true(strlen(o.reason) > 0);
        assert_int_equal(upstream_conns(f->u), 0);
}

/* A head that never ends: refused at 16 KiB, not buffered on. */
static void test_huge_head(void **state) {
        Fixture *f = *state;
        size_t n = 64 * 1024;
        char *reply = malloc(n + 1);
        Opened o = { 0 };

        assert_non_null(reply);
        strcpy(reply, "HTTP/1.1 200 Connection Established\r\nX-Pad: ");
        memset(reply + strlen(reply), 'a', n - strlen(reply));
        reply[n] = 0;
        fake_start(f, FAKE_UNIX, sc_reply_hold, reply);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        assert_string_equal(o.reason, "upstream reply head too large (over 16384 bytes)");
        assert_int_equal(upstream_conns(f->u), 0);
        fake_stop(&f->fake);
        free(reply);
}

static void test_missing_socket(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        char want[256];

        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        snprintf(want, sizeof(want), "cannot connect to %s: No such file or directory", f->address);
        assert_string_equal(o.reason, want);
        assert_int_equal(upstream_conns(f->u), 0);
}

static void test_tcp_refused(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);

        /* a port that was just free: nothing listens */
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        snprintf(f->address, sizeof(f->address), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        safe_close(fd);
        assert_int_equal(o.status, 0);
        assert_non_null(strstr(o.reason, "Connection refused"));
}

/* A host name goes through the resolver; each address is tried in turn. */
static void test_tcp_name(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        fake_start(f, FAKE_TCP, sc_reply_hold, NULL);
        snprintf(f->address, sizeof(f->address), "tcp:localhost:%u", f->fake.port);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        tunnel_abort(o.conn);
}

/* ---- aborts, in every phase ----------------------------------------------------------- */

static void abort_and_check(Fixture *f, Tunnel *c, Opened *o, usec_t after) {
        tunnel_abort(c);
        assert_int_equal(upstream_conns(f->u), 0);
        (void) run_for(f, after);
        assert_int_equal(o->calls, 0);
}

static void test_abort_reporting(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        upstream_make(f, NULL, NULL, NULL, NULL); /* nothing listens: the failure waits for the loop */
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        abort_and_check(f, c, &o, 50 * USEC_PER_MSEC);
        tunnel_abort(NULL);
}

static void test_abort_resolving(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        snprintf(f->address, sizeof(f->address), "tcp:localhost:1");
        upstream_make(f, NULL, NULL, NULL, NULL);
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        /* the resolver thread finishes on its own and frees its part */
        abort_and_check(f, c, &o, 300 * USEC_PER_MSEC);
}

static void test_abort_connecting(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        fake_start(f, FAKE_TCP, sc_silent, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        abort_and_check(f, c, &o, 50 * USEC_PER_MSEC);
}

static void test_abort_waiting_for_reply(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        fake_start(f, FAKE_UNIX, sc_silent, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        RUN_UNTIL(f, f->fake.seen);
        (void) run_for(f, 50 * USEC_PER_MSEC);
        abort_and_check(f, c, &o, 50 * USEC_PER_MSEC);
        RUN_UNTIL(f, f->fake.done);
        assert_true(f->fake.client_eof);
}

static void test_abort_reading_body(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        fake_start(f, FAKE_UNIX, sc_reply_hold, "HTTP/1.1 503 Service Unavailable\r\n\r\npartial");
        upstream_make(f, NULL, NULL, NULL, NULL);
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        (void) run_for(f, 100 * USEC_PER_MSEC);
        /* the body window (500 ms) is open: the timer must not fire later */
        abort_and_check(f, c, &o, 700 * USEC_PER_MSEC);
}

static void test_abort_in_callback(void **state) {
        Fixture *f = *state;
        Opened o = { .abort_in_callback = true };

        fake_start(f, FAKE_UNIX, sc_echo, "HTTP/1.1 200 Connection Established\r\n\r\nearly");
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        assert_int_equal(upstream_conns(f->u), 0);
        RUN_UNTIL(f, f->fake.done);
}

static void test_abort_open_with_tx(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .feed_total = 8 << 20 };

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_slow_reader, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        side_feed(&s);
        (void) run_for(f, 50 * USEC_PER_MSEC);
        assert_true(buffer_len(s.tx) > 0);
        s.far.ops->abort(s.far.end);
        assert_int_equal(upstream_conns(f->u), 0);
        fake_go(&f->fake);
        RUN_UNTIL(f, f->fake.done);
        assert_true(f->fake.received < s.fed);
}

/* The daemon's reference goes (a reload): the open conn runs on. */
static void test_free_with_open_conn(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .consume = true };

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_echo, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        f->u = upstream_free(f->u);
        side_send(&s, "still here");
        RUN_UNTIL(f, s.got_len == 10);
        s.far.ops->shutdown_tx(s.far.end);
        RUN_UNTIL(f, side_at_eof(&s));
        s.far.ops->close(s.far.end);
        RUN_UNTIL(f, f->fake.done);
        free(s.got);
}

/* ---- the open tunnel: data, back-pressure, half-close, failure ----------------------------- */

static void echo_both_ways(Fixture *f) {
        Opened o = { 0 };
        Side s = { .consume = true, .feed_total = 1 << 20, .shutdown_after_feed = true };

        o.side = &s;
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        side_feed(&s);
        RUN_UNTIL(f, side_at_eof(&s));
        assert_int_equal(s.got_len, s.feed_total);
        for (size_t i = 0; i < s.got_len; i++)
                if (s.got[i] != pattern(i))
                        fail_msg("byte %zu differs", i);
        assert_int_equal(tunnel_bytes_tx(o.conn), s.feed_total);
        assert_int_equal(tunnel_bytes_rx(o.conn), s.feed_total);
        assert_int_equal(s.failed, 0);
        s.far.ops->close(s.far.end);
        RUN_UNTIL(f, upstream_conns(f->u) == 0 && f->fake.done);
        assert_true(f->fake.client_eof);
        free(s.got);
}

static void test_echo_both_ways(void **state) {
        Fixture *f = *state;

        fake_start(f, FAKE_UNIX, sc_echo, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        echo_both_ways(f);
}

/* The upstream sends 8 MiB; the test reads slowly. rx never holds more than
 * its bound, reading stops while it is full (the loop idles, the sender
 * blocks), and every byte arrives in order. */
static void flood_down(Fixture *f) {
        Opened o = { 0 };
        Side s = { 0 };
        unsigned dispatched;

        o.side = &s;
        f->fake.flood = 8 << 20;
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        RUN_UNTIL(f, buffer_room(s.rx) == 0);
        dispatched = run_for(f, 300 * USEC_PER_MSEC);
        assert_true(dispatched < 20);
        assert_int_equal(buffer_len(s.rx), 256 * 1024);
        assert_true(f->fake.sent < f->fake.flood);

        while (!side_at_eof(&s)) {
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
                assert_true(buffer_len(s.rx) <= 256 * 1024);
                side_take(&s, 64 * 1024);
        }
        assert_true(s.max_rx <= 256 * 1024);
        assert_int_equal(s.got_len, f->fake.flood);
        for (size_t i = 0; i < s.got_len; i++)
                if (s.got[i] != pattern(i))
                        fail_msg("byte %zu differs", i);
        s.far.ops->close(s.far.end);
        RUN_UNTIL(f, upstream_conns(f->u) == 0 && f->fake.done);
        free(s.got);
}

static void test_backpressure_down(void **state) {
        Fixture *f = *state;

        fake_start(f, FAKE_UNIX, sc_flood, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        flood_down(f);
}

/* The test sends 8 MiB to an upstream that reads only after a while: tx
 * fills, the writable hook waits for room, nothing spins meanwhile. */
static void test_backpressure_up(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .feed_total = 8 << 20, .shutdown_after_feed = true };
        unsigned dispatched;

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_slow_reader, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        side_feed(&s);
        while (buffer_room(s.tx) > 0) { /* until the socket is full too */
                side_feed(&s);
                (void) run_for(f, 10 * USEC_PER_MSEC);
        }
        dispatched = run_for(f, 300 * USEC_PER_MSEC);
        assert_true(dispatched < 20);
        assert_int_equal(s.writable, 0);
        assert_int_equal(buffer_room(s.tx), 0);

        fake_go(&f->fake);
        RUN_UNTIL(f, f->fake.done);
        assert_true(s.writable > 0);
        assert_int_equal(f->fake.received, s.feed_total);
        assert_true(f->fake.client_eof);
        assert_false(f->fake.mismatch);
        s.far.ops->close(s.far.end);
        RUN_UNTIL(f, upstream_conns(f->u) == 0);
}

static void half_close_up(Fixture *f) {
        Opened o = { 0 };
        Side s = { .consume = true };

        o.side = &s;
        open_and_wait(f, "10.0.0.7", 10250, &o);
        side_send(&s, "ping");
        s.far.ops->shutdown_tx(s.far.end);
        /* the upstream saw our EOF and still answers */
        RUN_UNTIL(f, side_at_eof(&s));
        assert_true(f->fake.client_eof);
        assert_int_equal(f->fake.data_len, 4);
        assert_memory_equal(f->fake.data, "ping", 4);
        assert_int_equal(s.got_len, 3);
        assert_memory_equal(s.got, "bye", 3);
        /* both ways ended, the socket hung up: nothing to do, and no spinning on HUP */
        RUN_UNTIL(f, f->fake.done);
        assert_true(run_for(f, 200 * USEC_PER_MSEC) < 10);
        s.far.ops->close(s.far.end);
        assert_int_equal(upstream_conns(f->u), 0);
        free(s.got);
}

static void test_half_close_up(void **state) {
        Fixture *f = *state;

        fake_start(f, FAKE_UNIX, sc_half_close_up, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        half_close_up(f);
}

static void half_close_down(Fixture *f) {
        Opened o = { 0 };
        Side s = { .consume = true };

        o.side = &s;
        open_and_wait(f, "10.0.0.7", 10250, &o);
        RUN_UNTIL(f, side_at_eof(&s));
        assert_int_equal(s.got_len, 4);
        assert_memory_equal(s.got, "data", 4);
        /* after the upstream's EOF our direction still works */
        side_send(&s, "reply");
        s.far.ops->shutdown_tx(s.far.end);
        RUN_UNTIL(f, f->fake.done);
        assert_true(f->fake.client_eof);
        assert_int_equal(f->fake.data_len, 5);
        assert_memory_equal(f->fake.data, "reply", 5);
        assert_int_equal(s.failed, 0);
        s.far.ops->close(s.far.end);
        assert_int_equal(upstream_conns(f->u), 0);
        free(s.got);
}

static void test_half_close_down(void **state) {
        Fixture *f = *state;

        fake_start(f, FAKE_UNIX, sc_half_close_down, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        half_close_down(f);
}

/* close() with bytes still queued: they go out, then the EOF, then the conn. */
static void test_close_flushes(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .feed_total = 8 << 20 };

        o.side = &s;
        fake_start(f, FAKE_UNIX, sc_slow_reader, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        while (buffer_room(s.tx) > 0) {
                side_feed(&s);
                (void) run_for(f, 10 * USEC_PER_MSEC);
        }
        s.far.ops->close(s.far.end);
        assert_int_equal(upstream_conns(f->u), 1); /* lingering */
        fake_go(&f->fake);
        RUN_UNTIL(f, f->fake.done);
        assert_int_equal(f->fake.received, s.fed);
        assert_true(f->fake.client_eof);
        assert_false(f->fake.mismatch);
        RUN_UNTIL(f, upstream_conns(f->u) == 0);
}

static void test_upstream_resets(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Side s = { .consume = true };

        o.side = &s;
        fake_start(f, FAKE_TCP, sc_reset, NULL);
        upstream_make(f, NULL, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        side_send(&s, "x");
        RUN_UNTIL(f, s.failed > 0);
        assert_int_equal(s.failed, 1);
        assert_string_equal(s.failure, "upstream connection: Connection reset by peer");
        assert_null(s.far.end);
        assert_int_equal(upstream_conns(f->u), 0);
        (void) run_for(f, 50 * USEC_PER_MSEC);
        assert_int_equal(s.failed, 1);
}

/* ---- TLS ---------------------------------------------------------------------------- */

#define SKIP_WITHOUT_CERTS()                  \
        do {                                  \
                if (!certs.ok)                \
                        skip();               \
        } while (0)

static void test_tls_client_cert(void **state) {
        Fixture *f = *state;

        SKIP_WITHOUT_CERTS();
        f->fake.want_client_cert = true;
        fake_start(f, FAKE_TLS, sc_echo, NULL);
        upstream_make(f, certs.ca, certs.client_crt, certs.client_key, NULL);
        echo_both_ways(f);
        assert_string_equal(f->fake.client_cn, "sshtund-client");
        assert_string_equal(f->fake.sni, ""); /* an IP: no SNI, as Go's client */
        assert_string_equal(f->fake.head, "CONNECT 10.0.0.7:10250 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

static void test_tls_server_name(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_reply_hold, NULL);
        upstream_make(f, certs.ca, NULL, NULL, "konnectivity.test");
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 200);
        assert_string_equal(f->fake.sni, "konnectivity.test");
        assert_string_equal(f->fake.client_cn, "");
        tunnel_abort(o.conn);
}

static void test_tls_wrong_ca(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_reply_hold, NULL);
        upstream_make(f, certs.other_ca, certs.client_crt, certs.client_key, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        assert_string_equal(o.reason, "certificate verify failed: unable to get local issuer certificate");
        assert_int_equal(upstream_conns(f->u), 0);
}

static void test_tls_name_mismatch(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_reply_hold, NULL);
        upstream_make(f, certs.ca, NULL, NULL, "other.test");
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        assert_string_equal(o.reason, "certificate verify failed: hostname mismatch: expected other.test");
}

/* The server wants a client certificate we do not have. */
static void test_tls_no_client_cert(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };

        SKIP_WITHOUT_CERTS();
        f->fake.want_client_cert = true;
        fake_start(f, FAKE_TLS, sc_reply_hold, NULL);
        upstream_make(f, certs.ca, NULL, NULL, NULL);
        open_and_wait(f, "10.0.0.7", 10250, &o);
        assert_int_equal(o.status, 0);
        assert_non_null(strstr(o.reason, "TLS "));
        assert_string_equal(f->fake.client_cn, "");
}

static void test_tls_half_close(void **state) {
        Fixture *f = *state;

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_half_close_up, NULL);
        upstream_make(f, certs.ca, NULL, NULL, NULL);
        half_close_up(f);
        /* our EOF over TLS is a close_notify */
        assert_true(f->fake.close_notify);
}

static void test_tls_half_close_down(void **state) {
        Fixture *f = *state;

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_half_close_down, NULL);
        upstream_make(f, certs.ca, NULL, NULL, NULL);
        half_close_down(f);
}

static void test_tls_backpressure(void **state) {
        Fixture *f = *state;

        SKIP_WITHOUT_CERTS();
        fake_start(f, FAKE_TLS, sc_flood, NULL);
        upstream_make(f, certs.ca, NULL, NULL, NULL);
        flood_down(f);
}

static void test_abort_handshake(void **state) {
        Fixture *f = *state;
        Opened o = { 0 };
        Tunnel *c;

        SKIP_WITHOUT_CERTS();
        f->fake.no_handshake = true;
        fake_start(f, FAKE_TLS, sc_silent, NULL);
        upstream_make(f, certs.ca, NULL, NULL, NULL);
        assert_int_equal(tunnel_open(f->u, "10.0.0.7", 10250, on_opened, &o, &c), 0);
        (void) run_for(f, 100 * USEC_PER_MSEC);
        abort_and_check(f, c, &o, 50 * USEC_PER_MSEC);
        RUN_UNTIL(f, f->fake.done);
}

static void test_new_errors(void **state) {
        Fixture *f = *state;
        ConfigKonnectivity *kc = &f->konnectivity;
        char *error = NULL;
        Upstream *u = NULL;

        kc->upstream = NULL;
        assert_int_equal(upstream_new(f->event, &f->konnectivity, &u, &error), -EINVAL);
        assert_string_equal(error, "no konnectivity upstream configured");
        free(error);
        error = NULL;

        kc->upstream = (char *) "tcp:nohost";
        assert_int_equal(upstream_new(f->event, &f->konnectivity, &u, &error), -EINVAL);
        assert_string_equal(error, "invalid upstream \"tcp:nohost\"");
        free(error);
        error = NULL;

        kc->upstream = (char *) "tcp:127.0.0.1:8132";
        kc->ca_file = (char *) "/nonexistent/ca.crt";
        assert_int_equal(upstream_new(f->event, &f->konnectivity, &u, &error), -ENOENT);
        assert_string_equal(error, "konnectivity.ca_file \"/nonexistent/ca.crt\": No such file or directory");
        free(error);
        error = NULL;
        assert_int_equal(upstream_new(f->event, &f->konnectivity, &u, NULL), -ENOENT);

        if (certs.ok) {
                kc->ca_file = certs.ca;
                kc->cert_file = certs.client_crt;
                kc->key_file = certs.server_key;
                assert_int_equal(upstream_new(f->event, &f->konnectivity, &u, &error), -EINVAL);
                assert_non_null(strstr(error, "konnectivity.key_file"));
                free(error);
        error = NULL;
        }
        assert_null(u);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_connect_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connect_ipv6_and_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bytes_after_head, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_tunnels_500, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gateway_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_error_body_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_closes_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_huge_head, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_socket, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tcp_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tcp_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_reporting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_resolving, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_connecting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_waiting_for_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_reading_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_in_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_open_with_tx, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_open_conn, setup, teardown),
                cmocka_unit_test_setup_teardown(test_echo_both_ways, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_down, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_down, setup, teardown),
                cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upstream_resets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_client_cert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_server_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_wrong_ca, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_name_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_no_client_cert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_half_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_half_close_down, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_backpressure, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_handshake, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        };

        /* as the daemon: a write to a closed peer is an error, not a signal */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, certs_setup, certs_teardown);
}
