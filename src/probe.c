/* Kubelet probes through a node's own tunnel: the timer spread over the
 * interval, one probe in flight, tcp/http checks and TLS over memory BIOs. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <systemd/sd-event.h>

#include "address.h"
#include "buffer.h"
#include "channel.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "session.h"
#include "tls.h"

/* Ciphertext handed to OpenSSL ahead of its reading: more than one TLS
 * record (16 KiB + overhead), so a record always fits; the rest waits in
 * the channel, whose window then pushes back. */
#define PROBE_TLS_IN_MAX (64 * 1024)

/* The originator a probe's direct-tcpip open names. */

/* The TLS client context: made once per CA file, shared by every run of
 * every node's probe. */
struct ProbeTls {
        unsigned n_ref;
        SSL_CTX *ctx;
        bool verify; /* probe.ca_file was set */
};

typedef enum ProbeStep {
        PROBE_IDLE,    /* waiting for the next run, or inactive */
        PROBE_OPENING, /* the channel is being opened */
        PROBE_TALKING, /* http, https: request out, reading the answer */
} ProbeStep;

struct Probe {
        sd_event *event;
        Rng *rng;
        Metrics *metrics;
        const ConfigNode *node;
        const ProbeHooks *hooks;
        void *userdata;

        /* the configuration it was made with */
        ProbeType type;
        char *host;
        uint16_t port;
        char *target;  /* "host:port", for messages */
        char *request; /* http, https */
        usec_t interval, timeout;

        bool active;
        ProbeStep step;
        sd_event_source *timer; /* the next run; while one is in flight, its deadline */
        usec_t next_at;         /* CLOCK_MONOTONIC */
        usec_t started;
        Channel *ch;

        /* https: the shared context, then this run's connection */
        ProbeTls *tls;
        SSL *ssl;
        BIO *in, *out; /* ciphertext from / for the node; the SSL owns both */
        bool handshake_done, request_sent;
        Buffer plain;  /* the decrypted answer so far */
};

static const char *probe_node_name(const Probe *p) {
        return p->node->name;
}

/* --- pure parts --------------------------------------------------------------- */

ProbeVerdict probe_http_verdict(const void *buf, size_t len, bool eof, char *error, size_t error_size) {
        const char *p = len > 0 ? buf : "";
        size_t off = 0;

        for (;;) {
                HttpResponseHead h;
                int r = http_response_parse(p + off, len - off, PROBE_HEAD_MAX - off, &h);

                if (r == -EMSGSIZE) {
                        snprintf(error, error_size, "response head too large (over %d bytes)", PROBE_HEAD_MAX);
                        return PROBE_VERDICT_FAIL;
                }
                if (r < 0) {
                        snprintf(error, error_size, "not an HTTP/1.x response");
                        return PROBE_VERDICT_FAIL;
                }
                if (r == 0) {
                        if (!eof)
                                return PROBE_VERDICT_PENDING;
                        if (off == len)
                                snprintf(error, error_size, "connection closed before a response");
                        else
                                snprintf(error, error_size, "connection closed in the middle of the response head");
                        return PROBE_VERDICT_FAIL;
                }
                /* interim answers (100 Continue, 103 Early Hints) precede the real one */
                if (h.status >= 100 && h.status < 200 && h.status != 101) {
                        off += (size_t) r;
                        continue;
                }
                if (h.status >= 200 && h.status < 300)
                        return PROBE_VERDICT_PASS;
                snprintf(error, error_size, "HTTP %d%s%s", h.status, h.reason[0] ? " " : "", h.reason);
                return PROBE_VERDICT_FAIL;
        }
}

static bool host_is_ip(const char *host) {
        return ipaddr_parse(host, NULL) == 0;
}

char *probe_http_request(const char *host, uint16_t port, const char *path) {
        _cleanup_free_ char *hp = hostport_join(host, port);
        char *s = NULL;

        if (!hp)
                return NULL;
        if (asprintf(&s,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: sshtund/" PACKAGE_VERSION "\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     path, hp) < 0)
                return NULL;
        return s;
}

/* --- the TLS context ---------------------------------------------------------- */

ProbeTls *probe_tls_ref(ProbeTls *t) {
        if (t)
                t->n_ref++;
        return t;
}

ProbeTls *probe_tls_unref(ProbeTls *t) {
        if (!t || --t->n_ref > 0)
                return NULL;
        SSL_CTX_free(t->ctx);
        free(t);
        return NULL;
}

static int probe_verify(int ok, X509_STORE_CTX *xs);

int probe_tls_new(const char *ca_file, ProbeTls **ret, char **ret_error) {
        ProbeTls *t;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_ref = 1;
        ERR_clear_error();
        t->ctx = SSL_CTX_new(TLS_client_method());
        if (!t->ctx)
                goto fail;
        if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1)
                goto fail;
        /* a health check: no resumption; a peer that just closes has answered */
        SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
        if (ca_file) {
                int r = tls_load_ca_file(t->ctx, ca_file, ret_error);
                if (r < 0) {
                        probe_tls_unref(t);
                        return r;
                }
                SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, probe_verify);
                t->verify = true;
        } else
                SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
        *ret = t;
        return 0;
fail:
        ERR_clear_error();
        probe_tls_unref(t);
        return -ENOMEM;
}

/* --- scheduling ----------------------------------------------------------------- */

static void probe_arm(Probe *p) {
        usec_t when = p->step == PROBE_IDLE ? p->next_at : p->started + p->timeout;
        int r;

        r = sd_event_source_set_time(p->timer, when);
        if (r >= 0)
                r = sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_node(LOG_ERR, probe_node_name(p), "cannot schedule the next probe: %s", strerror(-r));
}

/* Runs that a long probe overlapped are skipped; the phase is kept, so the
 * spread over the interval survives. */
static void probe_advance(Probe *p) {
        usec_t now = now_usec(CLOCK_MONOTONIC);
        if (p->next_at <= now)
                p->next_at += ((now - p->next_at) / p->interval + 1) * p->interval;
}

/* Move what OpenSSL wrote into the channel, as far as tx has room; the
 * rest stays in the memory BIO until the channel is writable again. */
static void probe_tls_flush(Probe *p) {
        Buffer *tx = channel_tx(p->ch);
        bool moved = false;

        while (BIO_ctrl_pending(p->out) > 0) {
                size_t size;
                uint8_t *b = buffer_reserve(tx, BIO_ctrl_pending(p->out), &size);
                int n;

                if (!b)
                        break;
                n = BIO_read(p->out, b, (int) MIN(size, (size_t) INT_MAX));
                if (n <= 0)
                        break;
                buffer_commit(tx, (size_t) n);
                moved = true;
        }
        if (moved)
                channel_kick(p->ch);
}

/* End the run in flight: the channel goes (politely after a complete
 * exchange), the TLS objects are freed. */
static void probe_end_run(Probe *p, bool graceful) {
        Channel *ch;

        if (p->ch && p->ssl && graceful && p->handshake_done) {
                ERR_clear_error();
                (void) SSL_shutdown(p->ssl); /* close_notify, into p->out */
                probe_tls_flush(p);
                ERR_clear_error();
        }
        ch = TAKE_PTR(p->ch);
        if (ch) {
                if (graceful)
                        channel_close(ch);
                else
                        channel_abort(ch);
        }
        SSL_free(p->ssl);
        p->ssl = NULL;
        p->in = p->out = NULL;
        p->handshake_done = p->request_sent = false;
        buffer_done(&p->plain);
        p->step = PROBE_IDLE;
}

static void probe_rearm(Probe *p) {
        if (!p->active)
                return;
        probe_advance(p);
        probe_arm(p);
}

/* The run ended with a result: tell the node (last, since the node may
 * call back into probe_set_active). */
static _printf_(4, 5) void probe_finish(Probe *p, bool ok, bool graceful, const char *fmt, ...) {
        usec_t latency = now_usec(CLOCK_MONOTONIC) - p->started;
        char error[256] = "";

        if (!ok) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(error, sizeof(error), fmt, ap);
                va_end(ap);
        }
        probe_end_run(p, graceful);
        probe_rearm(p);
        metrics_observe(p->metrics, METRICS_PROBE, (double) latency / USEC_PER_SEC);
        /* the node logs what it makes of it */
        p->hooks->result(p->userdata, ok, latency, ok ? NULL : error);
}

/* The run ended without a result (its SSH session went away): the next
 * one decides. */
static void probe_drop(Probe *p, const char *why) {
        log_node(LOG_DEBUG, probe_node_name(p), "probe %s dropped: %s", p->target, why);
        probe_end_run(p, false);
        probe_rearm(p);
}

/* --- TLS -------------------------------------------------------------------------- */

static bool cert_names(X509 *cert, const char *name) {
        if (!name || !*name)
                return false;
        if (host_is_ip(name))
                return X509_check_ip_asc(cert, name, 0) == 1;
        /* like Go's crypto/tls (and so the API server): subjectAltName only */
        return X509_check_host(cert, name, strlen(name),
                               X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                               NULL) == 1;
}

/* The names a kubelet certificate may rightly carry: the probe target as
 * the node sees it, and the node as sshtund knows it. */
static bool probe_cert_matches(const Probe *p, X509 *cert) {
        const ConfigNode *cn = p->node;

        if (cert_names(cert, p->host) || cert_names(cert, cn->name) || cert_names(cert, cn->address))
                return true;
        for (char **h = cn->hostnames; h && *h; h++)
                if (cert_names(cert, *h))
                        return true;
        return false;
}

static int probe_verify(int ok, X509_STORE_CTX *xs) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
        const Probe *p = ssl ? SSL_get_app_data(ssl) : NULL;

        /* the chain is OpenSSL's to judge; the leaf's names are ours */
        if (!ok || !p || X509_STORE_CTX_get_error_depth(xs) != 0)
                return ok;
        if (probe_cert_matches(p, X509_STORE_CTX_get_current_cert(xs)))
                return 1;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
        return 0;
}

static void names_append(char *buf, size_t size, const char *name) {
        size_t l = strlen(buf);

        if (!name || !*name || l + 1 >= size)
                return;
        /* each name once: target and address are often the same */
        for (const char *s = buf; (s = strstr(s, name)); s += strlen(name))
                if ((s == buf || s[-1] == ' ') && (s[strlen(name)] == ',' || s[strlen(name)] == 0))
                        return;
        snprintf(buf + l, size - l, "%s%s", l ? ", " : "", name);
}

/* Why the handshake (or a read) failed, in the words an operator needs. */
static void probe_tls_fail(Probe *p, bool eof, const char *what) {
        long v = SSL_get_verify_result(p->ssl);
        unsigned long e = ERR_peek_error();
        const char *reason = e ? ERR_reason_error_string(e) : NULL;

        ERR_clear_error();
        /* the alert goes out before the channel closes: the kubelet logs why */
        probe_tls_flush(p);
        if (p->tls->verify && v != X509_V_OK) {
                if (v == X509_V_ERR_HOSTNAME_MISMATCH) {
                        const ConfigNode *cn = p->node;
                        char names[160] = "";

                        names_append(names, sizeof(names), p->host);
                        names_append(names, sizeof(names), cn->name);
                        names_append(names, sizeof(names), cn->address);
                        for (char **h = cn->hostnames; h && *h; h++)
                                names_append(names, sizeof(names), *h);
                        probe_finish(p, false, true, "certificate verify failed: %s (it names none of %s)",
                                     X509_verify_cert_error_string(v), names);
                } else
                        probe_finish(p, false, true, "certificate verify failed: %s",
                                     X509_verify_cert_error_string(v));
        } else if (reason && ERR_GET_REASON(e) != SSL_R_UNEXPECTED_EOF_WHILE_READING)
                probe_finish(p, false, true, "TLS %s failed: %s", what, reason);
        else if (eof)
                probe_finish(p, false, true, "connection closed during the TLS %s", what);
        else
                probe_finish(p, false, true, "TLS %s failed", what);
}

static int probe_tls_start(Probe *p) {
        ERR_clear_error();
        p->ssl = SSL_new(p->tls->ctx);
        p->in = BIO_new(BIO_s_mem());
        p->out = BIO_new(BIO_s_mem());
        if (!p->ssl || !p->in || !p->out) {
                BIO_free(p->in);
                BIO_free(p->out);
                SSL_free(p->ssl);
                p->ssl = NULL;
                p->in = p->out = NULL;
                ERR_clear_error();
                return -ENOMEM;
        }
        /* an empty input BIO means "not yet", until the channel's EOF */
        BIO_set_mem_eof_return(p->in, -1);
        SSL_set_bio(p->ssl, p->in, p->out);
        SSL_set_connect_state(p->ssl);
        SSL_set_app_data(p->ssl, p);
        if (!host_is_ip(p->host) && SSL_set_tlsext_host_name(p->ssl, p->host) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        buffer_init(&p->plain, PROBE_HEAD_MAX);
        return 0;
}

/* Ciphertext from the node into OpenSSL, as much as it may hold ahead.
 * Returns -ENOMEM, or 0; *ret_eof: every byte the node will send is in. */
static int probe_tls_feed(Probe *p, bool *ret_eof) {
        Buffer *rx = channel_rx(p->ch);
        size_t pending = BIO_ctrl_pending(p->in);

        if (!buffer_empty(rx) && pending < PROBE_TLS_IN_MAX) {
                size_t n = MIN(buffer_len(rx), (size_t) PROBE_TLS_IN_MAX - pending);
                int w = BIO_write(p->in, buffer_head(rx), (int) n);
                if (w <= 0) {
                        ERR_clear_error();
                        return -ENOMEM;
                }
                buffer_consume(rx, (size_t) w);
                channel_consumed(p->ch);
        }
        *ret_eof = channel_rx_eof(p->ch) && buffer_empty(rx);
        if (*ret_eof)
                BIO_set_mem_eof_return(p->in, 0);
        return 0;
}

/* OpenSSL took all it was given and the channel holds more. */
static bool probe_tls_more(Probe *p) {
        return !buffer_empty(channel_rx(p->ch)) && BIO_ctrl_pending(p->in) < PROBE_TLS_IN_MAX;
}

/* One pass over the TLS exchange with the bytes at hand. Returns true when
 * OpenSSL took all it was given and the channel holds more (go again);
 * false when it waits for the node, or the run ended. */
static bool probe_tls_step(Probe *p) {
        bool eof, plain_eof = false;
        char error[256];
        int r;

        if (probe_tls_feed(p, &eof) < 0) {
                probe_finish(p, false, false, "out of memory");
                return false;
        }

        ERR_clear_error();
        if (!p->handshake_done) {
                r = SSL_do_handshake(p->ssl);
                if (r != 1) {
                        int e = SSL_get_error(p->ssl, r);
                        if ((e == SSL_ERROR_WANT_READ && !eof) || e == SSL_ERROR_WANT_WRITE) {
                                probe_tls_flush(p);
                                return probe_tls_more(p);
                        }
                        probe_tls_fail(p, eof, "handshake");
                        return false;
                }
                p->handshake_done = true;
        }
        if (!p->request_sent) {
                /* a memory BIO takes it all at once */
                r = SSL_write(p->ssl, p->request, (int) strlen(p->request));
                if (r <= 0) {
                        probe_tls_fail(p, eof, "write");
                        return false;
                }
                p->request_sent = true;
        }

        /* the answer, until its head is complete */
        for (;;) {
                size_t size;
                uint8_t *b;

                if (buffer_room(&p->plain) == 0)
                        break; /* the verdict says "too large" */
                b = buffer_reserve(&p->plain, buffer_room(&p->plain), &size);
                if (!b) {
                        probe_finish(p, false, false, "out of memory");
                        return false;
                }
                r = SSL_read(p->ssl, b, (int) MIN(size, (size_t) INT_MAX));
                if (r > 0) {
                        buffer_commit(&p->plain, (size_t) r);
                        continue;
                }
                if (buffer_empty(&p->plain))
                        buffer_consume(&p->plain, 0); /* release the reservation */
                r = SSL_get_error(p->ssl, r);
                if (r == SSL_ERROR_WANT_READ && !eof)
                        break;
                if (r == SSL_ERROR_ZERO_RETURN || r == SSL_ERROR_WANT_READ) {
                        plain_eof = true;
                        break;
                }
                probe_tls_fail(p, eof, "read");
                return false;
        }
        ERR_clear_error();

        switch (probe_http_verdict(buffer_head(&p->plain), buffer_len(&p->plain), plain_eof, error,
                                   sizeof(error))) {
        case PROBE_VERDICT_PASS:
                probe_finish(p, true, true, NULL);
                return false;
        case PROBE_VERDICT_FAIL:
                probe_finish(p, false, true, "%s", error);
                return false;
        default:
                probe_tls_flush(p);
                return probe_tls_more(p);
        }
}

static void probe_tls_pump(Probe *p) {
        while (probe_tls_step(p))
                ;
}

/* --- the channel ------------------------------------------------------------------- */

static void probe_http_read(Probe *p) {
        Buffer *rx = channel_rx(p->ch);
        char error[256];

        /* the head is parsed where it lies: rx holds far more than PROBE_HEAD_MAX */
        switch (probe_http_verdict(buffer_head(rx), buffer_len(rx), channel_rx_eof(p->ch), error,
                                   sizeof(error))) {
        case PROBE_VERDICT_PENDING:
                return;
        case PROBE_VERDICT_PASS:
                probe_finish(p, true, true, NULL);
                return;
        case PROBE_VERDICT_FAIL:
                probe_finish(p, false, true, "%s", error);
                return;
        }
}

static void on_probe_opened(Channel *ch, int error, const char *reason, void *userdata) {
        Probe *p = userdata;
        size_t len;
        int r;

        if (error < 0) {
                p->ch = NULL; /* gone already */
                if (error == -ECONNABORTED)
                        probe_drop(p, reason ? reason : "the SSH session ended");
                else
                        probe_finish(p, false, false, "cannot connect to %s from the node: %s", p->target,
                                     reason ? reason : strerror(-error));
                return;
        }

        switch (p->type) {
        case PROBE_HTTP:
                p->step = PROBE_TALKING;
                len = strlen(p->request);
                if (buffer_append(channel_tx(ch), p->request, len) != (ssize_t) len) {
                        probe_finish(p, false, false, "out of memory");
                        return;
                }
                channel_kick(ch);
                return;
        case PROBE_HTTPS:
                p->step = PROBE_TALKING;
                r = probe_tls_start(p);
                if (r < 0) {
                        probe_finish(p, false, false, "cannot set up TLS: %s", strerror(-r));
                        return;
                }
                probe_tls_pump(p);
                return;
        default:
                /* tcp: the kubelet accepted a connection; that is the whole check */
                probe_finish(p, true, true, NULL);
                return;
        }
}

static void on_probe_readable(Channel *ch, void *userdata) {
        Probe *p = userdata;

        if (p->type == PROBE_HTTPS)
                probe_tls_pump(p);
        else if (p->type == PROBE_HTTP)
                probe_http_read(p);
}

static void on_probe_writable(Channel *ch, void *userdata) {
        Probe *p = userdata;

        if (p->ssl)
                probe_tls_flush(p);
}

static void on_probe_failed(Channel *ch, int error, const char *reason, void *userdata) {
        Probe *p = userdata;

        p->ch = NULL; /* gone after we return */
        if (error == -ECONNABORTED)
                probe_drop(p, reason ? reason : "the SSH session ended");
        else
                probe_finish(p, false, false, "connection to %s lost: %s", p->target,
                             reason ? reason : strerror(-error));
}

static const ChannelCallbacks probe_callbacks = {
        .opened = on_probe_opened,
        .readable = on_probe_readable,
        .writable = on_probe_writable,
        .failed = on_probe_failed,
};

static void probe_run(Probe *p) {
        int r;

        /* draining or full, the path is still checked: a probe is not a
         * stream (ProbeHooks.open_channel) */
        p->started = now_usec(CLOCK_MONOTONIC);
        r = p->hooks->open_channel(p->userdata, p->host, p->port, &probe_callbacks, p, &p->ch);
        if (r == -EHOSTDOWN) {
                /* no session can take a channel now: no verdict on the kubelet */
                log_node(LOG_DEBUG, probe_node_name(p), "probe skipped: no ready session");
                return;
        }
        if (r < 0) {
                probe_finish(p, false, false, "cannot open a channel: %s", strerror(-r));
                return;
        }
        p->step = PROBE_OPENING;
}

static int on_probe_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Probe *p = userdata;

        if (p->step != PROBE_IDLE) {
                probe_finish(p, false, false, "timeout after %g s", (double) p->timeout / USEC_PER_SEC);
                return 0;
        }
        probe_advance(p);
        probe_run(p);
        if (p->active)
                probe_arm(p);
        return 0;
}

/* --- the object ----------------------------------------------------------------------- */

int probe_new(const ProbeParams *pp, Probe **ret) {
        const ConfigProbe *cfg = pp->config;
        Probe *p;
        int r;

        if (cfg->type == PROBE_NONE) {
                *ret = NULL;
                return 0;
        }
        if (cfg->type == PROBE_HTTPS && !pp->tls)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->event = pp->event;
        p->rng = pp->rng;
        p->metrics = pp->metrics;
        p->node = pp->node;
        p->hooks = pp->hooks;
        p->userdata = pp->userdata;
        p->type = cfg->type;
        p->port = cfg->target_port;
        p->interval = MAX(sec_to_usec(cfg->interval), USEC_PER_MSEC);
        p->timeout = MAX(sec_to_usec(cfg->timeout), USEC_PER_MSEC);
        buffer_init(&p->plain, PROBE_HEAD_MAX);
        p->host = strdup(cfg->target_host);
        p->target = p->host ? hostport_join(p->host, p->port) : NULL;
        if (!p->target)
                goto oom;
        if (p->type == PROBE_HTTP || p->type == PROBE_HTTPS) {
                p->request = probe_http_request(p->host, p->port, cfg->path);
                if (!p->request)
                        goto oom;
        }
        if (p->type == PROBE_HTTPS)
                p->tls = probe_tls_ref(pp->tls);

        /* timers a few per mille of the interval apart may share a wakeup;
         * coarser, and nodes would probe in bunches */
        r = sd_event_add_time(p->event, &p->timer, CLOCK_MONOTONIC, 0,
                              CLAMP(p->interval / 500, USEC_PER_MSEC, 20 * USEC_PER_MSEC), on_probe_timer, p);
        if (r < 0) {
                probe_free(p);
                return r;
        }
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(p->timer, "probe");
        *ret = p;
        return 0;
oom:
        probe_free(p);
        return -ENOMEM;
}

Probe *probe_free(Probe *p) {
        if (!p)
                return NULL;
        probe_end_run(p, false);
        p->timer = sd_event_source_disable_unref(p->timer);
        probe_tls_unref(p->tls);
        free(p->host);
        free(p->target);
        free(p->request);
        free(p);
        return NULL;
}

void probe_set_active(Probe *p, bool active) {
        if (!p || p->active == active)
                return;
        p->active = active;
        if (!active) {
                if (p->step != PROBE_IDLE)
                        log_node(LOG_DEBUG, probe_node_name(p), "probe %s cancelled", p->target);
                probe_end_run(p, false);
                (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
                return;
        }
        /* somewhere in the interval: nodes that come up together probe apart */
        p->next_at = now_usec(CLOCK_MONOTONIC) + rng_uniform(p->rng, p->interval);
        probe_arm(p);
}
