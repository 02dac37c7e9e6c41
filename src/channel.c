/* The channels of a session: the open FIFO (libssh2 keeps one open in
 * flight per session), the pump that moves bytes between libssh2 and the
 * channel buffers, and the closing of channels libssh2 may still hold. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "session-internal.h"
#include "sshwire.h"

/* A user channel's open outcome, once, into its node's counters. */
static void channel_account_open(Channel *ch, StreamResult r) {
        Session *s = ch->session;

        if (!channel_is_stream(ch) || ch->counted)
                return;
        ch->counted = true;
        if (s->hooks->stream_opened)
                s->hooks->stream_opened(s, r, s->userdata);
        if (r == STREAM_OK)
                metrics_observe(s->env->metrics, METRICS_STREAM_OPEN,
                                (double) (now_usec(CLOCK_MONOTONIC) - ch->queued_at) / USEC_PER_SEC);
}

Channel *channel_new(Session *s, ChannelKind kind) {
        Channel *ch = calloc(1, sizeof(*ch));
        if (!ch)
                return NULL;
        ch->session = s;
        ch->kind = kind;
        buffer_init(&ch->rx, CHANNEL_RX_MAX);
        buffer_init(&ch->tx, CHANNEL_TX_MAX);
        return ch;
}

void channel_free(Channel *ch) {
        buffer_done(&ch->rx);
        buffer_done(&ch->tx);
        free(ch->open_msg);
        free(ch);
}

void channel_unlink(Channel *ch) {
        Session *s = ch->session;

        switch (ch->state) {
        case CHANNEL_QUEUED:
                LIST_REMOVE(link, s->opens, ch);
                break;
        case CHANNEL_OPEN:
                LIST_REMOVE(link, s->channels, ch);
                break;
        case CHANNEL_CLOSING:
                LIST_REMOVE(link, s->closing, ch);
                break;
        }
        if (channel_is_stream(ch) && ch->state != CHANNEL_CLOSING) {
                s->n_user--;
                if (ch->ending)
                        s->n_ending--;
        }
        if (s->control == ch)
                s->control = NULL;
}

/* Hand an open libssh2 channel to the closing list, or drop a queued one. */
void channel_retire(Channel *ch) {
        Session *s = ch->session;

        if (ch->state == CHANNEL_OPEN && channel_is_stream(ch) && s->hooks->stream_closed)
                s->hooks->stream_closed(s, ch->bytes_tx, ch->bytes_rx, s->userdata);
        channel_unlink(ch);
        if (!ch->ch) {
                channel_free(ch);
                return;
        }
        ch->abandoned = true;
        ch->state = CHANNEL_CLOSING;
        buffer_done(&ch->rx);
        buffer_done(&ch->tx);
        LIST_PREPEND(link, s->closing, ch);
}

/* Tell the user its channel failed and forget it. */
void channel_fail(Channel *ch, int error, const char *reason) {
        bool was_open = ch->state == CHANNEL_OPEN;
        bool notify = !ch->abandoned && ch->kind == CHANNEL_USER;

        if (!was_open)
                channel_account_open(ch, error == -ECONNREFUSED ? STREAM_REFUSED : STREAM_UNAVAILABLE);
        /* abandoned first: a channel_close() from the callback is a no-op */
        ch->abandoned = true;
        if (notify) {
                if (was_open)
                        ch->cb->failed ? ch->cb->failed(ch, error, reason, ch->userdata) : (void) 0;
                else
                        ch->cb->opened ? ch->cb->opened(ch, error, reason, ch->userdata) : (void) 0;
        }
        channel_retire(ch);
}

static bool channel_tx_finished(const Channel *ch) {
        return buffer_empty(&ch->tx) && (!ch->tx_shutdown || ch->eof_sent);
}

bool channel_is_error(int rc) {
        switch (rc) {
        case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
        case LIBSSH2_ERROR_CHANNEL_FAILURE:
        case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
        case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
        case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
        case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
        case LIBSSH2_ERROR_CHANNEL_CLOSED:
        case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
                return true;
        default:
                return false;
        }
}


/* Build the RFC 4254 direct-tcpip open data: host, port, originator host,
 * originator port. */
static int channel_set_target(Channel *ch, const char *host, uint16_t port, const char *orig_host,
                              uint16_t orig_port) {
        size_t hl = strlen(host), ol = strlen(orig_host);
        SshWireWriter w;

        if (hl > 1024 || ol > 1024)
                return -EINVAL;
        ch->open_msg_len = sshwire_string_size(hl) + 4 + sshwire_string_size(ol) + 4;
        ch->open_msg = malloc(ch->open_msg_len);
        if (!ch->open_msg)
                return -ENOMEM;
        sshwire_writer_init(&w, ch->open_msg, ch->open_msg_len);
        (void) sshwire_put_cstring(&w, host);
        (void) sshwire_put_u32(&w, port);
        (void) sshwire_put_cstring(&w, orig_host);
        (void) sshwire_put_u32(&w, orig_port);
        return sshwire_writer_finish(&w, &ch->open_msg_len);
}


/* Drive the head of the open FIFO. libssh2 keeps one open in flight per
 * session and must be called again with the same arguments until it ends. */
static int session_drive_opens(Session *s, bool *progress) {
        Channel *ch;

        while ((ch = s->opens)) {
                LIBSSH2_CHANNEL *c;

                switch (ch->kind) {
                case CHANNEL_USER:
                        c = libssh2_channel_open_ex(s->ssh, "direct-tcpip", strlen("direct-tcpip"),
                                                    CHANNEL_WINDOW, CHANNEL_PACKET, (const char *) ch->open_msg,
                                                    (unsigned) ch->open_msg_len);
                        break;
                case CHANNEL_CONTROL:
                        c = libssh2_channel_open_ex(s->ssh, "session", strlen("session"), 64 * 1024,
                                                    CHANNEL_PACKET, NULL, 0);
                        break;
                default:
                        c = libssh2_channel_open_ex(s->ssh, LIVENESS_CHANNEL_TYPE,
                                                    strlen(LIVENESS_CHANNEL_TYPE), 64 * 1024, CHANNEL_PACKET,
                                                    NULL, 0);
                        break;
                }

                if (!c) {
                        int e = libssh2_session_last_errno(s->ssh);
                        if (e == LIBSSH2_ERROR_EAGAIN)
                                return 0;
                        if (e == LIBSSH2_ERROR_TIMEOUT && ch->kind == CHANNEL_USER) {
                                /* libssh2 stopped waiting for this open (its read
                                 * timeout, proxy.open_timeout on 1.11) and is ready for
                                 * the next: the stream fails, the session carries on */
                                *progress = true;
                                log_node(LOG_INFO, s->node_name,
                                         "a channel open went unanswered until libssh2's read timeout: that "
                                         "stream fails, the session stays");
                                channel_fail(ch, -ETIMEDOUT, "the node did not answer the channel open in time");
                                continue;
                        }
                        if (!channel_is_error(e))
                                return e;
                        /* the node answered: refused */
                        *progress = true;
                        if (ch->kind == CHANNEL_LIVENESS) {
                                session_liveness_answered(s);
                                channel_unlink(ch);
                                channel_free(ch);
                        } else if (ch->kind == CHANNEL_CONTROL) {
                                log_node(LOG_DEBUG, s->node_name,
                                         "session channel refused (%s): liveness by channel-open round trips",
                                         session_ssh_error(s));
                                session_liveness_answered(s);
                                channel_unlink(ch);
                                channel_free(ch);
                        } else {
                                const char *why = session_ssh_error(s);
                                const char *paren = strchr(why, '(');
                                char reason[128];
                                /* "Channel open failure (connect failed)" → "connect failed" */
                                if (paren) {
                                        snprintf(reason, sizeof(reason), "%s", paren + 1);
                                        char *close = strchr(reason, ')');
                                        if (close)
                                                *close = 0;
                                } else
                                        snprintf(reason, sizeof(reason), "%s", why);
                                channel_fail(ch, -ECONNREFUSED, reason);
                        }
                        continue;
                }

                *progress = true;
                libssh2_channel_set_blocking(c, 0);
                channel_unlink(ch);
                if (channel_is_stream(ch)) {
                        s->n_user++; /* unlink counted it out; it stays a stream */
                        if (ch->ending)
                                s->n_ending++;
                }
                ch->ch = c;
                ch->state = CHANNEL_OPEN;
                LIST_PREPEND(link, s->channels, ch);

                if (ch->kind == CHANNEL_LIVENESS) {
                        /* a server that opens anything: answered all the same */
                        session_liveness_answered(s);
                        channel_retire(ch);
                } else if (ch->kind == CHANNEL_CONTROL) {
                        s->control = ch;
                        session_liveness_answered(s);
                } else if (ch->abandoned)
                        channel_retire(ch);
                else {
                        channel_account_open(ch, STREAM_OK);
                        ch->cb->opened(ch, 0, NULL, ch->userdata);
                }
        }
        return 0;
}

/* Write tx into the channel while the window and the output queue allow.
 * Returns a libssh2 error that ends the session, 1 if the channel failed
 * (and is gone), else 0. */
static int channel_flush_tx(Channel *ch, bool *progress) {
        Session *s = ch->session;

        while (!buffer_empty(&ch->tx) && buffer_len(&s->outq) < OUTQ_HIGH) {
                ssize_t n = libssh2_channel_write(ch->ch, (const char *) buffer_head(&ch->tx),
                                                  MIN(buffer_len(&ch->tx), (size_t) CHANNEL_WRITE_CHUNK));
                if (n > 0) {
                        buffer_consume(&ch->tx, (size_t) n);
                        ch->bytes_tx += (uint64_t) n;
                        *progress = true;
                        continue;
                }
                if (n == 0 || n == LIBSSH2_ERROR_EAGAIN)
                        break; /* the node's window is shut */
                if (!channel_is_error((int) n))
                        return (int) n;
                *progress = true;
                channel_fail(ch, -EPIPE, session_ssh_error(s));
                return 1;
        }
        if (ch->tx_shutdown && !ch->eof_sent && buffer_empty(&ch->tx)) {
                int rc = libssh2_channel_send_eof(ch->ch);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                        return 0;
                if (rc < 0 && !channel_is_error(rc))
                        return rc;
                /* sent, or the node closed first and needs no EOF */
                ch->eof_sent = true;
                *progress = true;
        }
        return 0;
}

/* Liveness round trips ride on the control channel as env requests. */
static int control_pump(Channel *ch, bool *progress) {
        Session *s = ch->session;

        if (s->liveness_pending) {
                int rc = libssh2_channel_setenv_ex(ch->ch, LIVENESS_ENV_NAME, strlen(LIVENESS_ENV_NAME), "1", 1);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                        return 0;
                if (rc != 0 && !channel_is_error(rc))
                        return rc;
                session_liveness_answered(s);
                *progress = true;
                if (rc == LIBSSH2_ERROR_CHANNEL_CLOSED || rc == LIBSSH2_ERROR_CHANNEL_UNKNOWN)
                        channel_retire(ch);
                return 0;
        }
        if (libssh2_channel_eof(ch->ch))
                channel_retire(ch);
        return 0;
}

/* Read what the node sent into rx while there is room. Returns a libssh2
 * error that ends the session, 1 if the channel failed, else 0; *got tells
 * whether rx or the EOF flag changed. */
static int channel_fill_rx(Channel *ch, bool *got) {
        Session *s = ch->session;

        while (!ch->rx_eof && buffer_room(&ch->rx) > 0) {
                unsigned long avail = 0;
                ssize_t n;

                libssh2_channel_window_read_ex(ch->ch, &avail, NULL);
                if (avail > 0) {
                        size_t size;
                        uint8_t *p = buffer_reserve(&ch->rx, MIN((size_t) avail, buffer_room(&ch->rx)), &size);
                        if (!p)
                                return LIBSSH2_ERROR_ALLOC;
                        n = libssh2_channel_read(ch->ch, (char *) p, size);
                        if (n > 0)
                                buffer_commit(&ch->rx, (size_t) n);
                        else if (buffer_empty(&ch->rx))
                                buffer_consume(&ch->rx, 0);
                } else {
                        /* nothing queued: a small read runs the transport and
                         * tells EOF apart, without allocating the buffer */
                        char scratch[512];
                        n = libssh2_channel_read(ch->ch, scratch, MIN(sizeof(scratch), buffer_room(&ch->rx)));
                        if (n > 0 && buffer_append(&ch->rx, scratch, (size_t) n) != n)
                                return LIBSSH2_ERROR_ALLOC;
                }
                if (n > 0) {
                        ch->bytes_rx += (uint64_t) n;
                        *got = true;
                        continue;
                }
                if (n == 0) {
                        if (libssh2_channel_eof(ch->ch)) {
                                ch->rx_eof = true;
                                *got = true;
                        }
                        break;
                }
                if (n == LIBSSH2_ERROR_EAGAIN)
                        break;
                if (!channel_is_error((int) n))
                        return (int) n;
                channel_fail(ch, -ECONNRESET, session_ssh_error(s));
                return 1;
        }
        return 0;
}

/* Move what can move for one open channel. Returns a libssh2 error that
 * ends the session, else 0. */
static int channel_pump(Channel *ch, bool *progress) {
        bool got = false;
        int r;

        if (ch->kind == CHANNEL_CONTROL)
                return control_pump(ch, progress);

        if (ch->abandoned) {
                /* closed by its user with bytes still to send: finish them */
                r = channel_flush_tx(ch, progress);
                if (r != 0)
                        return r < 0 ? r : 0;
                if (channel_tx_finished(ch)) {
                        channel_retire(ch);
                        *progress = true;
                }
                return 0;
        }

        /* node → client */
        r = channel_fill_rx(ch, &got);
        if (r != 0) {
                *progress = true;
                return r < 0 ? r : 0;
        }
        if (got) {
                *progress = true;
                if (ch->cb->readable)
                        ch->cb->readable(ch, ch->userdata);
                if (ch->state != CHANNEL_OPEN || ch->abandoned)
                        return 0; /* the user closed it from the callback */
        }

        /* client → node */
        r = channel_flush_tx(ch, progress);
        if (r != 0)
                return r < 0 ? r : 0;
        if (ch->tx_blocked && buffer_room(&ch->tx) >= CHANNEL_TX_MAX / 2) {
                ch->tx_blocked = false;
                if (ch->cb->writable)
                        ch->cb->writable(ch, ch->userdata);
        }
        return 0;
}

static int session_drive_closing(Session *s, bool *progress) {
        Channel *ch, *next;

        LIST_FOREACH_SAFE(link, ch, next, s->closing) {
                int rc = libssh2_channel_free(ch->ch);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                        continue;
                /* freed, or failed for good: either way libssh2 let go of it */
                ch->ch = NULL;
                LIST_REMOVE(link, s->closing, ch);
                channel_free(ch);
                *progress = true;
                if (rc < 0 && !channel_is_error(rc))
                        return rc;
        }
        return 0;
}

int channel_pump_all(Session *s) {
        bool progress;
        int r;

        do {
                Channel *ch, *next;

                progress = false;
                r = session_drive_opens(s, &progress);
                if (r < 0)
                        return r;
                LIST_FOREACH_SAFE(link, ch, next, s->channels) {
                        r = channel_pump(ch, &progress);
                        if (r < 0)
                                return r;
                        if (s->state != SESSION_READY)
                                return 0;
                        /* a callback may have retired the next one too */
                        if (next && next->state != CHANNEL_OPEN)
                                break;
                }
                r = session_drive_closing(s, &progress);
                if (r < 0)
                        return r;
                if (buffer_len(&s->outq) >= OUTQ_HIGH) {
                        r = session_flush(s);
                        if (r < 0)
                                return LIBSSH2_ERROR_SOCKET_SEND;
                }
                if (!progress && !s->rx_drained && s->control) {
                        /* bytes wait in the kernel that no channel asked for
                         * (all full, or none): reading the control channel
                         * runs the transport until EAGAIN and moves them into
                         * libssh2's queues, where the windows bound them */
                        char scratch[256];
                        ssize_t n = libssh2_channel_read(s->control->ch, scratch, sizeof(scratch));
                        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN && !channel_is_error((int) n))
                                return (int) n;
                        /* drained now: other channels may have data queued */
                        progress = n > 0 || s->rx_drained;
                }
        } while (progress && s->state == SESSION_READY);
        return 0;
}


/* --- public API ------------------------------------------------------------ */

static int open_channel(Session *s, bool internal, const char *host, uint16_t port, const char *orig_host,
                        uint16_t orig_port, const ChannelCallbacks *cb, void *userdata, Channel **ret) {
        Channel *ch;
        int r;

        if (s->state != SESSION_READY || s->dead)
                return -ENOTCONN;
        ch = channel_new(s, CHANNEL_USER);
        if (!ch)
                return -ENOMEM;
        ch->internal = internal;
        r = channel_set_target(ch, host, port, orig_host, orig_port);
        if (r < 0) {
                channel_free(ch);
                return r;
        }
        ch->cb = cb;
        ch->userdata = userdata;
        ch->queued_at = now_usec(CLOCK_MONOTONIC);
        LIST_APPEND(link, s->opens, ch);
        if (!internal)
                s->n_user++;
        session_kick(s);
        *ret = ch;
        return 0;
}

int channel_open(Session *s, const char *host, uint16_t port, const char *orig_host,
                         uint16_t orig_port, const ChannelCallbacks *cb, void *userdata,
                         Channel **ret) {
        return open_channel(s, false, host, port, orig_host, orig_port, cb, userdata, ret);
}

const SessionOps session_ops = {
        .create = session_new,
        .destroy = session_free,
        .connect = session_connect,
        .disconnect = session_disconnect,
        .state = session_state,
        .failure = session_failure,
        .last_error = session_last_error,
        .reason = session_reason,
        .host_key = session_host_key,
        .host_key_blob = session_host_key_blob,
        .up_duration = session_up_duration,
        .channels = session_channels,
        .opens_pending = session_opens_pending,
        .busy_streams = session_busy_streams,
        .open_channel = open_channel,
};

Buffer *channel_rx(Channel *ch) {
        return &ch->rx;
}

bool channel_rx_eof(const Channel *ch) {
        return ch->rx_eof;
}

void channel_consumed(Channel *ch) {
        if (buffer_room(&ch->rx) > 0 && !ch->rx_eof)
                session_kick(ch->session);
}

Buffer *channel_tx(Channel *ch) {
        return &ch->tx;
}

void channel_kick(Channel *ch) {
        if (buffer_room(&ch->tx) == 0)
                ch->tx_blocked = true;
        session_kick(ch->session);
}

/* The stream's client has finished: it still counts in n_user until it is
 * gone, but no longer as load when a session is picked for a new one. */
static void channel_mark_ending(Channel *ch) {
        if (ch->ending || !channel_is_stream(ch) || ch->state == CHANNEL_CLOSING)
                return;
        ch->ending = true;
        ch->session->n_ending++;
}

void channel_shutdown_tx(Channel *ch) {
        ch->tx_shutdown = true;
        channel_mark_ending(ch);
        session_kick(ch->session);
}

bool channel_tx_done(const Channel *ch) {
        return ch->eof_sent;
}

void channel_set_callbacks(Channel *ch, const ChannelCallbacks *cb, void *userdata) {
        ch->cb = cb;
        ch->userdata = userdata;
}

static void channel_close_internal(Channel *ch, bool graceful) {
        Session *s = ch->session;

        if (ch->abandoned)
                return;
        if (ch->state == CHANNEL_QUEUED) {
                channel_account_open(ch, STREAM_ABANDONED);
                if (s->opens == ch && s->state == SESSION_READY && !s->dead) {
                        /* in flight inside libssh2: let the open finish, then close */
                        channel_mark_ending(ch);
                        ch->abandoned = true;
                        return;
                }
                channel_unlink(ch);
                channel_free(ch);
                return;
        }
        if (ch->state != CHANNEL_OPEN)
                return;
        if (graceful && !channel_tx_finished(ch)) {
                /* linger: the pump sends what is left, then the EOF, then retires it */
                channel_mark_ending(ch);
                ch->abandoned = true;
                buffer_done(&ch->rx);
        } else
                channel_retire(ch);
        session_kick(s);
}

void channel_close(Channel *ch) {
        channel_close_internal(ch, true);
}

void channel_abort(Channel *ch) {
        channel_close_internal(ch, false);
}

uint64_t channel_bytes_rx(const Channel *ch) {
        return ch->bytes_rx;
}

uint64_t channel_bytes_tx(const Channel *ch) {
        return ch->bytes_tx;
}
