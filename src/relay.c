/* One forwarded stream between a client socket and an SSH channel. The
 * channel's buffers are the only buffers: a full one stops reading its
 * source, so a slow side pushes back instead of growing memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "daemon.h"
#include "log.h"
#include "relay.h"

struct Relay {
        Daemon *daemon;
        int fd;
        sd_event_source *io;
        SessionChannel *ch;
        Buffer head; /* the reply head, ahead of any node byte */

        char *node, *target, *client;
        usec_t started;
        void (*on_done)(void *userdata);
        void *userdata;

        bool client_spoke; /* the client sent a byte (or its EOF), or the node may speak first */
        bool client_eof;   /* the client sent FIN */
        bool down_done;  /* we delivered the node's EOF (shutdown(SHUT_WR)) */
        bool io_paused;    /* no interest in the socket right now: source off */
};

static void relay_finish(Relay *r, bool graceful, const char *why);

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

static int on_client_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Relay *r = userdata;
        int e;

        if (revents & EPOLLERR) {
                int err = 0;
                socklen_t len = sizeof(err);
                (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                relay_finish(r, false, err ? strerror(err) : "socket error");
                return 0;
        }
        e = relay_flush_down(r);
        if (e >= 0 && (revents & (EPOLLIN | EPOLLHUP)))
                e = relay_read_up(r);
        if (e < 0) {
                relay_finish(r, false, strerror(-e));
                return 0;
        }
        if (relay_done(r)) {
                relay_finish(r, true, NULL);
                return 0;
        }
        relay_update_events(r);
        return 0;
}

static void on_channel_readable(SessionChannel *ch, void *userdata) {
        Relay *r = userdata;
        int e = relay_flush_down(r);

        if (e < 0) {
                relay_finish(r, false, strerror(-e));
                return;
        }
        if (relay_done(r)) {
                relay_finish(r, true, NULL);
                return;
        }
        relay_update_events(r);
}

static void on_channel_writable(SessionChannel *ch, void *userdata) {
        Relay *r = userdata;
        int e = relay_read_up(r);

        if (e < 0) {
                relay_finish(r, false, strerror(-e));
                return;
        }
        if (relay_done(r)) {
                relay_finish(r, true, NULL);
                return;
        }
        relay_update_events(r);
}

static void on_channel_failed(SessionChannel *ch, int error, const char *reason, void *userdata) {
        Relay *r = userdata;

        r->ch = NULL; /* gone after we return */
        relay_finish(r, false, reason);
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

        e = sd_event_add_io(daemon_event(d), &r->io, fd, EPOLLIN, on_client_io, r);
        if (e < 0) {
                r->fd = -1;
                r->ch = NULL;
                r->on_done = NULL;
                relay_free(r);
                return e;
        }
        (void) sd_event_source_set_description(r->io, "relay");
        session_channel_set_callbacks(ch, &relay_callbacks, r);

        /* the reply head goes out now; early bytes head for the node */
        e = relay_flush_down(r);
        if (e < 0) {
                relay_finish(r, false, strerror(-e));
                *ret = NULL;
                return 0;
        }
        if (p->early_len)
                session_channel_kick(ch);
        relay_update_events(r);
        *ret = r;
        return 0;
oom:
        r->fd = -1;
        r->ch = NULL;
        r->on_done = NULL;
        relay_free(r);
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

static void relay_finish(Relay *r, bool graceful, const char *why) {
        usec_t dur = now_usec(CLOCK_MONOTONIC) - r->started;
        uint64_t up = r->ch ? session_channel_bytes_tx(r->ch) : 0;
        uint64_t down = r->ch ? session_channel_bytes_rx(r->ch) : 0;

        log_node(LOG_DEBUG, r->node, "stream %s -> %s %s: %llu bytes up, %llu down, %.3f s", r->client,
                 r->target, graceful ? "done" : why ? why : "aborted", (unsigned long long) up,
                 (unsigned long long) down, (double) dur / USEC_PER_SEC);
        relay_destroy(r, graceful);
}

Relay *relay_free(Relay *r) {
        if (r)
                relay_destroy(r, false);
        return NULL;
}
