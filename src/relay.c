/* One forwarded stream between a client socket and an SSH channel. The
 * channel's buffers are the only buffers: a full one stops reading its
 * source, so a slow side pushes back instead of growing memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "audit.h"
#include "iopoll.h"
#include "log.h"
#include "relay.h"

struct Relay {
        const RelayEnv *env;
        int fd;
        IoWatch *io;       /* the client socket, in the daemon's IoPoll */
        FarEnd far;      /* far.end is NULL once the far end is gone */
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
};

static void relay_finish(Relay *r, bool graceful, StreamEnd end, const char *error, const char *detail);
static void relay_destroy(Relay *r, bool graceful);

static void relay_update_events(Relay *r) {
        uint32_t events = 0;

        if (!r->io)
                return;
        if (!r->client_eof && buffer_room(r->far.ops->tx(r->far.end)) > 0)
                events |= EPOLLIN;
        if (!buffer_empty(&r->head) || (r->client_spoke && !buffer_empty(r->far.ops->rx(r->far.end))))
                events |= EPOLLOUT;
        /* epoll reports HUP and ERR whatever we ask for: with nothing to
         * do on this socket a half-closed client would spin the loop, so
         * events 0 takes it out of the set until the channel needs it */
        (void) iopoll_watch_set_events(r->io, events);
}

/* Node → client. Returns -errno on a client error, else 0. */
static int relay_flush_down(Relay *r) {
        Buffer *rx = r->far.ops->rx(r->far.end);
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
                r->far.ops->consumed(r->far.end);
        if (buffer_empty(rx) && r->far.ops->rx_eof(r->far.end) && !r->down_done) {
                (void) shutdown(r->fd, SHUT_WR);
                r->down_done = true;
        }
        return 0;
}

/* Client → node. Returns -errno on a client error, else 0. */
static int relay_read_up(Relay *r) {
        Buffer *tx = r->far.ops->tx(r->far.end);
        bool got = false;

        while (!r->client_eof && buffer_room(tx) > 0) {
                ssize_t n = buffer_read_fd(tx, r->fd);
                if (n == -EAGAIN || n == -EINTR)
                        break;
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        r->client_eof = true;
                        r->far.ops->shutdown_tx(r->far.end);
                        break;
                }
                r->bytes_up += (uint64_t) n;
                got = true;
        }
        if (got)
                r->far.ops->kick(r->far.end);
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
                relay_finish(r, false, STREAM_END_CLIENT_RESET, NULL, NULL);
        else
                relay_finish(r, false, STREAM_END_ERROR, strerror(-e), NULL);
}

static int on_client_io(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Relay *r = userdata;
        int e;

        if (revents & EPOLLERR) {
                int err = 0;
                socklen_t len = sizeof(err);
                (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err)
                        relay_finish_client_error(r, -err);
                else
                        relay_finish(r, false, STREAM_END_ERROR, "socket error", NULL);
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
                relay_finish(r, true, STREAM_END_DONE, NULL, NULL);
                return 0;
        }
        relay_update_events(r);
        return 0;
}

/* After moving bytes one way: end on a client error or when both ways are
 * done, else update what the socket is watched for. */
static void relay_settle(Relay *r, int e) {
        if (e < 0) {
                relay_finish_client_error(r, e);
                return;
        }
        if (relay_done(r)) {
                relay_finish(r, true, STREAM_END_DONE, NULL, NULL);
                return;
        }
        relay_update_events(r);
}

static void relay_far_readable(void *userdata) {
        Relay *r = userdata;
        relay_settle(r, relay_flush_down(r));
}

static void relay_far_writable(void *userdata) {
        Relay *r = userdata;
        relay_settle(r, relay_read_up(r));
}

static void relay_far_failed(void *userdata, const char *reason) {
        Relay *r = userdata;

        r->far.end = NULL; /* gone after we return */
        relay_finish(r, false, STREAM_END_NODE_CLOSED, NULL, reason);
}

static const FarEndHooks relay_hooks = {
        .readable = relay_far_readable,
        .writable = relay_far_writable,
        .failed = relay_far_failed,
};

/* --- an SSH channel as a far end ------------------------------------------- */

static void far_channel_on_readable(Channel *ch, void *userdata) {
        relay_far_readable(userdata);
}

static void far_channel_on_writable(Channel *ch, void *userdata) {
        relay_far_writable(userdata);
}

static void far_channel_on_failed(Channel *ch, int error, const char *reason, void *userdata) {
        relay_far_failed(userdata, reason);
}

static const ChannelCallbacks far_channel_callbacks = {
        .readable = far_channel_on_readable,
        .writable = far_channel_on_writable,
        .failed = far_channel_on_failed,
};

static Buffer *far_channel_rx(void *end) {
        return channel_rx(end);
}
static bool far_channel_rx_eof(void *end) {
        return channel_rx_eof(end);
}
static void far_channel_consumed(void *end) {
        channel_consumed(end);
}
static Buffer *far_channel_tx(void *end) {
        return channel_tx(end);
}
static void far_channel_kick(void *end) {
        channel_kick(end);
}
static void far_channel_shutdown_tx(void *end) {
        channel_shutdown_tx(end);
}
static void far_channel_attach(void *end, const FarEndHooks *hooks, void *relay) {
        /* the channel's callbacks are the hooks' own shape: no table to keep */
        channel_set_callbacks(end, &far_channel_callbacks, relay);
}
static void far_channel_close(void *end) {
        channel_close(end);
}
static void far_channel_abort(void *end) {
        channel_abort(end);
}

static const FarEndOps far_channel_ops = {
        .rx = far_channel_rx,
        .rx_eof = far_channel_rx_eof,
        .consumed = far_channel_consumed,
        .tx = far_channel_tx,
        .kick = far_channel_kick,
        .shutdown_tx = far_channel_shutdown_tx,
        .attach = far_channel_attach,
        .close = far_channel_close,
        .abort = far_channel_abort,
};

FarEnd relay_channel_far_end(Channel *ch) {
        return (FarEnd) { &far_channel_ops, ch };
}


int relay_new(const RelayEnv *env, int fd, FarEnd far, const RelayParams *p, Relay **ret) {
        Relay *r;
        int e;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->env = env;
        r->fd = fd;
        r->far = far;
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
            buffer_append(far.ops->tx(far.end), p->early, p->early_len) != (ssize_t) p->early_len)
                goto oom;

        /* early bytes count as taken from the client: they are in tx now */
        r->bytes_up = p->early_len;

        e = iopoll_add(env->poll, fd, EPOLLIN, on_client_io, r, &r->io);
        if (e < 0) {
                r->fd = -1;
                r->far.end = NULL;
                r->on_done = NULL;
                relay_destroy(r, false);
                return e;
        }
        far.ops->attach(far.end, &relay_hooks, r);

        /* the reply head goes out now; early bytes head for the node */
        e = relay_flush_down(r);
        if (e < 0) {
                relay_finish_client_error(r, e);
                *ret = NULL;
                return 0;
        }
        if (p->early_len)
                far.ops->kick(far.end);
        relay_update_events(r);
        *ret = r;
        return 0;
oom:
        /* nothing started: the caller keeps fd and channel, no audit line */
        r->fd = -1;
        r->far.end = NULL;
        r->on_done = NULL;
        relay_destroy(r, false);
        return -ENOMEM;
}

static void relay_destroy(Relay *r, bool graceful) {
        r->io = iopoll_watch_free(r->io);
        if (!graceful && r->fd >= 0) {
                /* a stream cut short must not look finished: a TCP client
                 * gets a reset instead of an orderly EOF */
                struct linger l = { .l_onoff = 1, .l_linger = 0 };
                (void) setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        r->fd = safe_close(r->fd);
        if (r->far.end) {
                void *end = TAKE_PTR(r->far.end);
                if (graceful)
                        r->far.ops->close(end);
                else
                        r->far.ops->abort(end);
        }
        if (r->on_done)
                r->on_done(r->userdata);
        buffer_done(&r->head);
        free(r->node);
        free(r->target);
        free(r->client);
        free(r);
}

/* The audit line's result for each way a stream ends; an error's is its text. */
static const char *const stream_end_results[_STREAM_END_MAX] = {
        [STREAM_END_DONE] = "done",
        [STREAM_END_CLIENT_RESET] = "reset by client",
        [STREAM_END_NODE_CLOSED] = "node closed",
        [STREAM_END_ABORTED] = "aborted",
};

/* The stream ended as 'end'; 'error' is the text of a STREAM_END_ERROR, and
 * 'detail' (may be NULL) says more. */
static void relay_finish(Relay *r, bool graceful, StreamEnd end, const char *error, const char *detail) {
        usec_t duration = now_usec(CLOCK_MONOTONIC) - r->started;

        metrics_observe_stream_end(r->env->metrics, end, (double) duration / USEC_PER_SEC);
        audit_stream_end(r->env->audit, &(AuditStream) {
                                           .node = r->node,
                                           .client = r->client,
                                           .target = r->target,
                                           .result = end == STREAM_END_ERROR ? error : stream_end_results[end],
                                           .detail = detail,
                                           .bytes_up = r->bytes_up,
                                           .bytes_down = r->bytes_down,
                                           .duration = duration,
                                   });
        relay_destroy(r, graceful);
}

Relay *relay_free(Relay *r) {
        if (r)
                relay_finish(r, false, STREAM_END_ABORTED, NULL, NULL);
        return NULL;
}
