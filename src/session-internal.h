/* What session.c and channel.c share: the session and channel objects and
 * the calls between them. Not for other modules: they use session.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <libssh2.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "channel.h"
#include "hostkey.h"
#include "iopoll.h"
#include "list.h"
#include "connector.h"
#include "session.h"
#include "ssharena.h"

/* Per-channel buffers: bounded, so a slow reader costs at most this plus
 * one SSH window (CHANNEL_WINDOW) of memory. */
#define CHANNEL_RX_MAX (256 * 1024)
#define CHANNEL_TX_MAX (256 * 1024)
/* Receive window we grant the node per channel, and the largest packet we
 * accept (never above 32768: libssh2 kills the session on larger ones). */
#define CHANNEL_WINDOW (2 * 1024 * 1024)
#define CHANNEL_PACKET 32768
/* Largest single libssh2_channel_write(): one SSH packet's worth. */
#define CHANNEL_WRITE_CHUNK 32700
/* Above this, no channel writes until the socket drains. */
#define OUTQ_HIGH (512 * 1024)
/* Extra headroom for non-channel packets (window adjusts, EOF, keepalive). */
#define OUTQ_HARD_LIMIT (64 * 1024 * 1024)

/* An open of this unknown channel type is refused by sshd and dropbear at
 * debug level only: a round trip that costs nothing on the node. Used for
 * liveness when the node allows no session channel. */
#define LIVENESS_CHANNEL_TYPE "liveness@sshtund"
/* The env request used as liveness round trip on the control channel; sshd
 * ignores names outside AcceptEnv and answers "failure". */
#define LIVENESS_ENV_NAME "SSHTUND_LIVENESS"

typedef enum ChannelKind {
        CHANNEL_USER,     /* direct-tcpip for a client */
        CHANNEL_CONTROL,  /* our "session" channel, carrier of liveness requests */
        CHANNEL_LIVENESS, /* unknown-type open: a round trip, never really opens */
} ChannelKind;

typedef enum ChannelState {
        CHANNEL_QUEUED,  /* waiting in the open FIFO */
        CHANNEL_OPEN,
        CHANNEL_CLOSING, /* libssh2_channel_free() until it returns 0 */
} ChannelState;

struct Channel {
        Session *session;
        LIST_FIELDS(Channel, link);
        ChannelKind kind;
        ChannelState state;
        bool abandoned; /* the user closed it; no callbacks */
        bool counted;   /* its open outcome went to the node's counters */
        bool internal;  /* a probe's: not a stream, in no count or limit */
        usec_t queued_at;

        LIBSSH2_CHANNEL *ch;
        uint8_t *open_msg; /* direct-tcpip request data */
        size_t open_msg_len;

        const ChannelCallbacks *cb;
        void *userdata;

        Buffer rx, tx;
        bool rx_eof;
        bool tx_shutdown;
        bool eof_sent;
        bool tx_blocked; /* tx filled up: signal writable when it drains */
        bool ending;     /* a stream whose client finished (EOF or closed): in n_ending */
        uint64_t bytes_rx, bytes_tx;
};

struct Session {
        const SessionEnv *env;
        const SessionHooks *hooks;
        void *userdata;
        char *node_name;
        char *address;
        uint16_t port;
        unsigned index;

        SessionState state;
        SessionFailure failure;
        bool scan_only;
        char *scan_key_types; /* scan_only: the host key algorithms offered, or NULL */
        uint8_t *scanned_key; /* scan_only: the blob */
        size_t scanned_key_len;
        usec_t connect_started; /* for the connect-time histogram */
        char *last_error;
        char reason[SESSION_REASON_MAX + 1]; /* the last failure in a few words, "" if none */
        char host_key[HOSTKEY_FINGERPRINT_MAX];
        bool have_slot;

        Connector *connector; /* SESSION_CONNECTING */

        int fd;
        uint16_t local_port;
        IoWatch *io;            /* the socket, in the daemon's IoPoll with every other */
        sd_event_source *timer; /* connect timeout, then liveness ticks */
        sd_event_source *defer; /* coalesced "run the pump" requests */
        LIBSSH2_SESSION *ssh;
        SshArena arena; /* every block of ssh, released after it is freed */

        Buffer outq;
        Buffer rxq;      /* read ahead for libssh2's one-byte reads of the version exchange */
        bool rx_drained; /* last recv() said EAGAIN and epoll has not woken us */
        unsigned rx_calls; /* recv() calls since epoll last woke us */
        uint64_t rx_at_wakeup; /* rx_total then */
        uint64_t rx_at_start; /* rx_total when this connection began */
        bool rx_overflow;  /* the node sent HANDSHAKE_RX_LIMIT before the session was ready */
        bool rx_closed;    /* the node closed the connection (EOF or an error on receive) */
        bool dead;       /* the socket is gone: callbacks fail fast */
        uint64_t rx_total;

        Channel *opens;    /* FIFO, head in flight */
        Channel *channels; /* open */
        Channel *closing;
        Channel *control;
        unsigned n_user; /* user channels queued or open */
        unsigned n_ending; /* of those, the ones ending (see Channel.ending) */

        /* liveness */
        bool liveness_pending;
        unsigned liveness_missed;
        uint64_t rx_at_tick;
        usec_t ready_since;
        usec_t up_duration;

        bool processing, reprocess;
};

/* --- channel.c ---------------------------------------------------------- */

/* A channel of 'kind' for s, not yet queued anywhere. */
Channel *channel_new(Session *s, ChannelKind kind);
void channel_free(Channel *ch);
/* Take the channel off whichever list holds it. */
void channel_unlink(Channel *ch);
/* Close an open channel through the closing list, or drop a queued one. */
void channel_retire(Channel *ch);
/* Tell the user the channel failed (opened or failed callback), retire it. */
void channel_fail(Channel *ch, int error, const char *reason);
/* A stream a client asked for: counted in n_user and the node's figures. */
static inline bool channel_is_stream(const Channel *ch) {
        return ch->kind == CHANNEL_USER && !ch->internal;
}

/* True for libssh2 errors that end one channel, not the session. */
bool channel_is_error(int rc);
/* Drive opens, every channel, and closings until nothing moves. Returns a
 * libssh2 error that ends the session, else 0. */
int channel_pump_all(Session *s);

/* --- session.c ---------------------------------------------------------- */

/* libssh2's text for the last error of the session. */
const char *session_ssh_error(Session *s);
/* A liveness round trip came back. */
void session_liveness_answered(Session *s);
/* Run the pump soon (coalesced), or again if it is running now. */
void session_kick(Session *s);
/* Write the output queue to the socket until it would block; -errno on a
 * socket error. */
int session_flush(Session *s);
