/* One SSH connection to a node: TCP connect, key exchange, host key check,
 * public-key auth, liveness, and the channels multiplexed over it. Drives a
 * non-blocking libssh2 session from the daemon's loop; libssh2 is contained
 * here (and in hostkey-related code) and its error codes never leave. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "macro.h"

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Session Session;
typedef struct SessionChannel SessionChannel;

typedef enum SessionState {
        SESSION_IDLE,           /* not started, or waiting to retry */
        SESSION_WAITING,        /* queued for a handshake slot */
        SESSION_RESOLVING,
        SESSION_CONNECTING,     /* TCP */
        SESSION_HANDSHAKING,    /* banner + key exchange */
        SESSION_AUTHENTICATING,
        SESSION_READY,
        SESSION_FAILED,         /* see session_failure() */
        _SESSION_STATE_MAX,
} SessionState;

/* Why a session ended, for the node's state and backoff. */
typedef enum SessionFailure {
        SESSION_FAILURE_NONE,
        SESSION_FAILURE_NETWORK,          /* resolve, connect, reset, EOF, timeout */
        SESSION_FAILURE_TIMEOUT,          /* connect_timeout or liveness */
        SESSION_FAILURE_PROTOCOL,         /* key exchange or SSH protocol error */
        SESSION_FAILURE_HOSTKEY_UNKNOWN,
        SESSION_FAILURE_HOSTKEY_MISMATCH,
        SESSION_FAILURE_AUTH,
        SESSION_FAILURE_CLOSED,           /* closed by us */
        SESSION_FAILURE_SCANNED,          /* scan_only: done, the host key is kept */
} SessionFailure;

const char *session_state_to_string(SessionState s);

/* Callbacks from a channel to its user (the front door while opening, the
 * relay afterwards). They run from the session's processing; they may call
 * any session_channel_*() function, including session_channel_close().
 * Until the open finishes only 'opened' is called: the others may be NULL
 * for a user that hands the channel on (session_channel_set_callbacks). */
typedef struct ChannelCallbacks {
        /* The open finished. error == 0: the channel carries data now.
         * error < 0: the open failed (reason is a short human text) and the
         * channel is already gone. -ECONNREFUSED: the node refused the
         * target (connect failed, prohibited); -ECONNABORTED: the session
         * ended first. */
        void (*opened)(SessionChannel *ch, int error, const char *reason, void *userdata);
        /* New bytes in session_channel_rx(), or the node's EOF. */
        void (*readable)(SessionChannel *ch, void *userdata);
        /* Room in session_channel_tx() again, after it had filled up. */
        void (*writable)(SessionChannel *ch, void *userdata);
        /* The channel ended abnormally (session lost, channel error); the
         * channel is gone after this returns. */
        void (*failed)(SessionChannel *ch, int error, const char *reason, void *userdata);
} ChannelCallbacks;

/* The owner learns of every state change (READY, FAILED, ...). */
typedef void (*SessionChanged)(Session *s, void *userdata);

typedef struct SessionParams {
        const char *node_name; /* for logs */
        const char *address;   /* IP literal or DNS name */
        uint16_t port;
        unsigned index;        /* position in the node's pool, for logs */
        SessionChanged changed;
        void *userdata;
        /* Stop after the key exchange: keep the host key the server
         * presented (session_host_key_blob), check nothing, authenticate
         * nothing, then end with SESSION_FAILURE_SCANNED. */
        bool scan_only;
} SessionParams;

/* Process-wide SSH library setup, once before anything else (and before any
 * thread starts). Returns 0 or -EIO. */
int session_global_init(void);
void session_global_done(void);

/* A session in SESSION_IDLE; session_connect() starts it. 'node' (may be
 * NULL for a scan) receives the streams' accounting. */
int session_new(Daemon *d, Node *node, const SessionParams *p, Session **ret);
/* Tears the session down at once (no SSH disconnect): channels fail with
 * -ECONNABORTED. Accepts NULL, returns NULL. */
Session *session_free(Session *s);

/* Start (or restart after a failure) connecting. */
void session_connect(Session *s);
/* Polite close: SSH disconnect, channels fail. State becomes FAILED with
 * SESSION_FAILURE_CLOSED. */
void session_disconnect(Session *s, const char *why);

SessionState session_state(const Session *s);
SessionFailure session_failure(const Session *s);
/* Text of the last failure ("connection refused", "host key mismatch:
 * SHA256:..."), or NULL. */
const char *session_last_error(const Session *s);
/* "SHA256:..." of the host key the server presented last, or NULL. */
const char *session_host_key(const Session *s);
/* The wire-format host key blob of a scan_only session, or NULL. */
const void *session_host_key_blob(const Session *s, size_t *ret_len);
/* Channels open or opening on this session. */
unsigned session_channels(const Session *s);
/* Monotonic time the session became ready (0 if not ready). */
usec_t session_ready_since(const Session *s);
/* For a FAILED session: how long it had been ready before it failed (0 if
 * it never was). */
usec_t session_up_duration(const Session *s);
/* The local port of the TCP connection (0 if none), to find sshd's child. */
uint16_t session_local_port(const Session *s);

/* Queue a direct-tcpip open to host:port. orig_* is the originator the
 * node's sshd sees. Only for READY sessions; -ENOTCONN otherwise. */
int session_open_channel(Session *s, const char *host, uint16_t port, const char *orig_host,
                         uint16_t orig_port, const ChannelCallbacks *cb, void *userdata,
                         SessionChannel **ret);

/* Like session_open_channel(), for a health probe: not a stream, so it is
 * in no stream count, limit or metric. */
int session_open_probe_channel(Session *s, const char *host, uint16_t port, const char *orig_host,
                               uint16_t orig_port, const ChannelCallbacks *cb, void *userdata,
                               SessionChannel **ret);

/* Bytes from the node, for the user to consume (then call _consumed). */
Buffer *session_channel_rx(SessionChannel *ch);
/* The node sent EOF and every byte before it is in rx (or consumed). */
bool session_channel_rx_eof(const SessionChannel *ch);
/* Tell the session bytes were taken from rx: reading resumes if it had
 * stopped for lack of room. */
void session_channel_consumed(SessionChannel *ch);

/* Bytes for the node: append, then call _kick. */
Buffer *session_channel_tx(SessionChannel *ch);
/* Room left in tx before the channel pushes back. */
size_t session_channel_tx_room(const SessionChannel *ch);
void session_channel_kick(SessionChannel *ch);
/* Send EOF once tx is empty: the client half-closed. */
void session_channel_shutdown_tx(SessionChannel *ch);
/* True once our EOF went out (after shutdown_tx and an empty tx). */
bool session_channel_tx_done(const SessionChannel *ch);

/* Hand the channel to a new user (the relay after the front door). */
void session_channel_set_callbacks(SessionChannel *ch, const ChannelCallbacks *cb, void *userdata);

/* The user is done with the channel: no more callbacks. Bytes still in tx
 * go out first, then the EOF if shutdown_tx was asked for, then the channel
 * closes; a pending open finishes first and is closed at once. */
void session_channel_close(SessionChannel *ch);
/* Like close, but drops what tx still holds: the stream failed. */
void session_channel_abort(SessionChannel *ch);

/* Byte counters for the stream (node→client, client→node). */
uint64_t session_channel_bytes_rx(const SessionChannel *ch);
uint64_t session_channel_bytes_tx(const SessionChannel *ch);
