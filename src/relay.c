/* One forwarded stream between a client socket and an SSH channel. The
 * channel's buffers are the only buffers: a full one stops reading its
 * source, so a slow side pushes back instead of growing memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"

/* Longest field of the audit line, quoted; longer text is cut. */
#define AUDIT_FIELD_MAX 256

struct Relay {
        Daemon *daemon;
        int fd;
        sd_event_source *io;
        SessionChannel *ch;
        Buffer head; /* the reply head, ahead of any node byte */

        char *node, *target, *client;
        usec_t started;
        /* ours, not the channel's: they outlive a channel that failed */
        uint64_t bytes_up;   /* taken from the client */
        uint64_t bytes_down; /* written to the client, the reply head not counted */
        void (*on_done)(void *userdata);
        void *userdata;

        bool client_spoke; /* the client sent a byte (or its EOF), or the node may speak first */
        bool client_eof;   /* the client sent FIN */
        bool down_done;  /* we delivered the node's EOF (shutdown(SHUT_WR)) */
        bool io_paused;    /* no interest in the socket right now: source off */
};

static void relay_finish(Relay *r, bool graceful, const char *result, const char *detail);
static void relay_destroy(Relay *r, bool graceful);

static void relay_update_events(Relay *r) {
        uint32_t events = 0;

        if (!r->io)
                return;
        if (!r->client_eof && session_channel_tx_room(r->ch) > 0)
                events |= EPOLLIN;
        if (!buffer_empty(&r->head) || (r->client_spoke && !buffer_empty(session_channel_rx(r->ch))))
                events |= EPOLLOUT;
        if (events == 0) {
                /* epoll reports HUP and ERR whatever we ask for: with nothing
                 * to do on this socket a half-closed client would spin the
                 * loop, so the source goes off until the channel needs it */
                if (!r->io_paused) {
                        r->io_paused = true;
                        (void) sd_event_source_set_enabled(r->io, SD_EVENT_OFF);
                }
                return;
        }
        (void) sd_event_source_set_io_events(r->io, events);
        if (r->io_paused) {
                r->io_paused = false;
                (void) sd_event_source_set_enabled(r->io, SD_EVENT_ON);
        }
}

/* Node → client. Returns -errno on a client error, else 0. */
static int relay_flush_down(Relay *r) {
        Buffer *rx = session_channel_rx(r->ch);
        bool consumed = false;
        ssize_t n;

        while (!buffer_empty(&r->head)) {
                n = buffer_write_fd(&r->head, r->fd);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int) n;
        }
        /* kube-apiserver fails the dial if any byte follows the 200 before
         * it speaks: a target that talks first (a banner) waits for it */
        if (!r->client_spoke)
                return 0;
        while (!buffer_empty(rx)) {
                n = buffer_write_fd(rx, r->fd);
                if (n == -EAGAIN)
                        break;
                if (n < 0)
                        return (int) n;
                r->bytes_down += (uint64_t) n;
                consumed = true;
        }
        if (consumed)
                session_channel_consumed(r->ch);
        if (buffer_empty(rx) && session_channel_rx_eof(r->ch) && !r->down_done) {
                (void) shutdown(r->fd, SHUT_WR);
                r->down_done = true;
        }
        return 0;
}

/* Client → node. Returns -errno on a client error, else 0. */
static int relay_read_up(Relay *r) {
        Buffer *tx = session_channel_tx(r->ch);
        bool got = false;

        while (!r->client_eof && buffer_room(tx) > 0) {
                ssize_t n = buffer_read_fd(tx, r->fd);
                if (n == -EAGAIN || n == -EINTR)
                        break;
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        r->client_eof = true;
                        session_channel_shutdown_tx(r->ch);
                        break;
                }
                r->bytes_up += (uint64_t) n;
                got = true;
        }
        if (got)
                session_channel_kick(r->ch);
        if ((got || r->client_eof) && !r->client_spoke) {
                r->client_spoke = true;
                return relay_flush_down(r);
        }
        return 0;
}

static bool relay_done(const Relay *r) {
        return r->down_done && r->client_eof;
}

/* The client's socket failed with -e. */
static void relay_finish_client_error(Relay *r, int e) {
        if (e == -ECONNRESET || e == -EPIPE)
                relay_finish(r, false, "reset by client", NULL);
        else
                relay_finish(r, false, strerror(-e), NULL);
}

static int on_client_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Relay *r = userdata;
        int e;

        if (revents & EPOLLERR) {
                int err = 0;
                socklen_t len = sizeof(err);
                (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err)
                        relay_finish_client_error(r, -err);
                else
                        relay_finish(r, false, "socket error", NULL);
                return 0;
        }
        e = relay_flush_down(r);
        if (e >= 0 && (revents & (EPOLLIN | EPOLLHUP)))
                e = relay_read_up(r);
        if (e < 0) {
                relay_finish_client_error(r, e);
                return 0;
        }
        if (relay_done(r)) {
                relay_finish(r, true, "done", NULL);
                return 0;
        }
        relay_update_events(r);
        return 0;
}

static void on_channel_readable(SessionChannel *ch, void *userdata) {
        Relay *r = userdata;
        int e = relay_flush_down(r);

        if (e < 0) {
                relay_finish_client_error(r, e);
                return;
        }
        if (relay_done(r)) {
                relay_finish(r, true, "done", NULL);
                return;
        }
        relay_update_events(r);
}

static void on_channel_writable(SessionChannel *ch, void *userdata) {
        Relay *r = userdata;
        int e = relay_read_up(r);

        if (e < 0) {
                relay_finish_client_error(r, e);
                return;
        }
        if (relay_done(r)) {
                relay_finish(r, true, "done", NULL);
                return;
        }
        relay_update_events(r);
}

static void on_channel_failed(SessionChannel *ch, int error, const char *reason, void *userdata) {
        Relay *r = userdata;

        r->ch = NULL; /* gone after we return */
        relay_finish(r, false, "node closed", reason);
}

static const ChannelCallbacks relay_callbacks = {
        .readable = on_channel_readable,
        .writable = on_channel_writable,
        .failed = on_channel_failed,
};

int relay_new(Daemon *d, int fd, SessionChannel *ch, const RelayParams *p, Relay **ret) {
        Relay *r;
        int e;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->daemon = d;
        r->fd = fd;
        r->ch = ch;
        r->started = now_usec(CLOCK_MONOTONIC);
        r->on_done = p->on_done;
        r->client_spoke = p->early_len > 0 || p->node_may_speak_first;
        r->userdata = p->userdata;
        buffer_init(&r->head, 16 * 1024);
        r->node = strdup(strna(p->node));
        r->target = strdup(strna(p->target));
        r->client = strdup(strna(p->client));
        if (!r->node || !r->target || !r->client)
                goto oom;
        if (p->head_len && buffer_append(&r->head, p->head, p->head_len) != (ssize_t) p->head_len)
                goto oom;
        if (p->early_len &&
            buffer_append(session_channel_tx(ch), p->early, p->early_len) != (ssize_t) p->early_len)
                goto oom;

        /* early bytes count as taken from the client: they are in tx now */
        r->bytes_up = p->early_len;

        e = sd_event_add_io(daemon_event(d), &r->io, fd, EPOLLIN, on_client_io, r);
        if (e < 0) {
                r->fd = -1;
                r->ch = NULL;
                r->on_done = NULL;
                relay_destroy(r, false);
                return e;
        }
        (void) sd_event_source_set_description(r->io, "relay");
        session_channel_set_callbacks(ch, &relay_callbacks, r);

        /* the reply head goes out now; early bytes head for the node */
        e = relay_flush_down(r);
        if (e < 0) {
                relay_finish_client_error(r, e);
                *ret = NULL;
                return 0;
        }
        if (p->early_len)
                session_channel_kick(ch);
        relay_update_events(r);
        *ret = r;
        return 0;
oom:
        /* nothing started: the caller keeps fd and channel, no audit line */
        r->fd = -1;
        r->ch = NULL;
        r->on_done = NULL;
        relay_destroy(r, false);
        return -ENOMEM;
}

static void relay_destroy(Relay *r, bool graceful) {
        r->io = sd_event_source_disable_unref(r->io);
        r->fd = safe_close(r->fd);
        if (r->ch) {
                SessionChannel *ch = TAKE_PTR(r->ch);
                if (graceful)
                        session_channel_close(ch);
                else
                        session_channel_abort(ch);
        }
        if (r->on_done)
                r->on_done(r->userdata);
        buffer_done(&r->head);
        free(r->node);
        free(r->target);
        free(r->client);
        free(r);
}

/* s in double quotes for the audit line: a quote, a backslash or a control
 * byte from a peer (the target is what the client asked for) cannot fake a
 * field or a line; they become '?'. */
static const char *audit_quote(const char *s, char *buf, size_t size) {
        size_t j = 0;

        buf[j++] = '"';
        for (const char *p = s ?: ""; *p && j + 2 < size; p++) {
                unsigned char c = (unsigned char) *p;
                buf[j++] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char) c;
        }
        buf[j++] = '"';
        buf[j] = 0;
        return buf;
}

/* The audit line of one finished stream, at info level, within the
 * daemon-wide budget; the first line after a dropped run says how many
 * were dropped. */
static void relay_log_end(Relay *r, const char *result, const char *detail) {
        char client[AUDIT_FIELD_MAX], target[AUDIT_FIELD_MAX], res[AUDIT_FIELD_MAX],
                error[AUDIT_FIELD_MAX + 8] = "";
        usec_t dur = now_usec(CLOCK_MONOTONIC) - r->started;
        unsigned suppressed = 0;

        if (log_get_max_level() < LOG_INFO)
                return;
        if (!metrics_stream_log_allow(daemon_metrics(r->daemon), &suppressed))
                return;
        if (suppressed > 0)
                log_info("%u stream lines suppressed", suppressed);
        if (detail && *detail) {
                char q[AUDIT_FIELD_MAX];
                snprintf(error, sizeof(error), " error=%s", audit_quote(detail, q, sizeof(q)));
        }
        log_node(LOG_INFO, r->node, "stream client=%s target=%s result=%s%s bytes_up=%llu bytes_down=%llu "
                 "duration=%.3fs",
                 audit_quote(r->client, client, sizeof(client)), audit_quote(r->target, target, sizeof(target)),
                 audit_quote(result, res, sizeof(res)), error, (unsigned long long) r->bytes_up,
                 (unsigned long long) r->bytes_down, (double) dur / USEC_PER_SEC);
}

/* The stream ended: 'result' is "done", "reset by client", "node closed"
 * or an error text; 'detail' (may be NULL) says more. */
static void relay_finish(Relay *r, bool graceful, const char *result, const char *detail) {
        relay_log_end(r, result, detail);
        relay_destroy(r, graceful);
}

Relay *relay_free(Relay *r) {
        if (r)
                relay_finish(r, false, "aborted", NULL);
        return NULL;
}
