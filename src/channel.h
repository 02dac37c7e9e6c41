/* One channel of an SSH session: a direct-tcpip open queued on its
 * session, then two bounded buffers (bytes from the node, bytes for it)
 * that the session pumps. The channel's user (the front door while it
 * opens, a relay or a probe afterwards) hears through ChannelCallbacks. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buffer.h"
#include "session.h"

/* Callbacks from a channel to its user (the front door while opening, the
 * relay afterwards). They run from the session's processing; they may call
 * any channel_*() function, including channel_close().
 * Until the open finishes only 'opened' is called: the others may be NULL
 * for a user that hands the channel on (channel_set_callbacks). */
struct ChannelCallbacks {
        /* The open finished. error == 0: the channel carries data now.
         * error < 0: the open failed (reason is a short human text) and the
         * channel is already gone. -ECONNREFUSED: the node refused the
         * target (connect failed, prohibited); -ECONNABORTED: the session
         * ended first. */
        void (*opened)(Channel *ch, int error, const char *reason, void *userdata);
        /* New bytes in channel_rx(), or the node's EOF. */
        void (*readable)(Channel *ch, void *userdata);
        /* Room in channel_tx() again, after it had filled up. */
        void (*writable)(Channel *ch, void *userdata);
        /* The channel ended abnormally (session lost, channel error); the
         * channel is gone after this returns. */
        void (*failed)(Channel *ch, int error, const char *reason, void *userdata);
};

/* Queue a direct-tcpip open to host:port. orig_* is the originator the
 * node's sshd sees. Only for READY sessions; -ENOTCONN otherwise. */
int channel_open(Session *s, const char *host, uint16_t port, const char *orig_host, uint16_t orig_port,
                 const ChannelCallbacks *cb, void *userdata, Channel **ret);

/* Bytes from the node, for the user to consume (then call _consumed). */
Buffer *channel_rx(Channel *ch);
/* The node sent EOF and every byte before it is in rx (or consumed). */
bool channel_rx_eof(const Channel *ch);
/* Tell the session bytes were taken from rx: reading resumes if it had
 * stopped for lack of room. */
void channel_consumed(Channel *ch);

/* Bytes for the node: append, then call _kick. */
Buffer *channel_tx(Channel *ch);
void channel_kick(Channel *ch);
/* Send EOF once tx is empty: the client half-closed. */
void channel_shutdown_tx(Channel *ch);
/* True once our EOF went out (after shutdown_tx and an empty tx). */
bool channel_tx_done(const Channel *ch);

/* Hand the channel to a new user (the relay after the front door). */
void channel_set_callbacks(Channel *ch, const ChannelCallbacks *cb, void *userdata);

/* The user is done with the channel: no more callbacks. Bytes still in tx
 * go out first, then the EOF if shutdown_tx was asked for, then the channel
 * closes; a pending open finishes first and is closed at once. */
void channel_close(Channel *ch);
/* Like close, but drops what tx still holds: the stream failed. */
void channel_abort(Channel *ch);

/* Byte counters for the stream (node→client, client→node). */
uint64_t channel_bytes_rx(const Channel *ch);
uint64_t channel_bytes_tx(const Channel *ch);
