/* One SSH connection to a node: TCP connect, key exchange, host key check,
 * public-key auth, liveness, and the channels multiplexed over it. Drives a
 * non-blocking libssh2 session from the daemon's loop; libssh2 is contained
 * here (and in hostkey-related code) and its error codes never leave.
 * A session knows nothing of its owner: what it needs comes in a
 * SessionEnv, what it has to say goes out through SessionHooks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "buffer.h"
#include "conf.h"
#include "gate.h"
#include "hostkey.h"
#include "trust.h"
#include "identity.h"
#include "iopoll.h"
#include "macro.h"
#include "metrics.h"
#include "nodeinfo.h"

typedef struct Session Session;
/* One channel of a session: channel.h. */
typedef struct Channel Channel;
typedef struct ChannelCallbacks ChannelCallbacks;

typedef enum SessionState {
        SESSION_IDLE,           /* not started, or waiting to retry */
        SESSION_WAITING,        /* queued for a handshake slot */
        SESSION_CONNECTING,     /* resolving the name, then TCP */
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
        SESSION_FAILURE_LOCAL,            /* out of descriptors here: not the node's doing */
} SessionFailure;

const char *session_state_to_string(SessionState s);


/* What every session of the daemon shares, owned by the daemon. The
 * pointers to configuration, identity and known hosts are live: a reload
 * points them at the new objects, and sessions read them when they need
 * them (a session in the middle of a handshake finishes with what it read). */
typedef struct SessionEnv {
        sd_event *event;
        IoPoll *iopoll;                /* where connects and sessions' sockets are watched */
        const ConfigSsh *ssh;
        const Identity *identity;
        Trust *trust;                  /* the host keys: check, and accept-new's record */
        Gate *handshakes;              /* ssh.max_handshakes */
        double open_timeout;           /* proxy.open_timeout: a channel open the node leaves
                                        * unanswered this long fails (libssh2 >= 1.11; 0: its 60 s) */
        Metrics *metrics;              /* may be NULL */
} SessionEnv;

/* What a session tells its owner. 'changed' is required; the stream
 * accounting hooks may be NULL (a host key scan opens no streams). */
typedef struct SessionHooks {
        /* Every state change (READY, FAILED, ...). */
        void (*changed)(Session *s, void *userdata);
        /* A stream's open came to an end, once per stream: ok, refused,
         * unavailable (the session died first) or abandoned (its user left). */
        void (*stream_opened)(Session *s, StreamResult r, void *userdata);
        /* An open stream ended with these byte counts (client -> node, node -> client). */
        void (*stream_closed)(Session *s, uint64_t bytes_up, uint64_t bytes_down, void *userdata);
} SessionHooks;

typedef struct SessionParams {
        const char *node_name; /* for logs */
        const char *address;   /* IP literal or DNS name */
        uint16_t port;
        unsigned index;        /* position in the node's pool, for logs */
        const SessionHooks *hooks;
        void *userdata;
        /* Stop after the key exchange: keep the host key the server
         * presented (session_host_key_blob), check nothing, authenticate
         * nothing, then end with SESSION_FAILURE_SCANNED. */
        bool scan_only;
        /* scan_only: the host key algorithms to offer (comma-separated),
         * to fetch the key of one type; NULL: the usual preference. */
        const char *scan_key_types;
} SessionParams;

/* Process-wide SSH library setup, once before anything else (and before any
 * thread starts). Returns 0 or -EIO. */
int session_global_init(void);
void session_global_done(void);

/* A session in SESSION_IDLE; session_connect() starts it. 'env' must
 * outlive it. */
int session_new(const SessionEnv *env, const SessionParams *p, Session **ret);
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
/* The last failure in a few words ("connection refused", "host key
 * unknown", "DNS: Name or service not known"), at most SESSION_REASON_MAX
 * bytes, or NULL: for tables and the journal. */
#define SESSION_REASON_MAX 40
const char *session_reason(const Session *s);
/* "SHA256:..." of the host key the server presented last, or NULL. */
const char *session_host_key(const Session *s);
/* The wire-format host key blob of a scan_only session, or NULL. */
const void *session_host_key_blob(const Session *s, size_t *ret_len);
/* Channels open or opening on this session. */
unsigned session_channels(const Session *s);
/* Streams whose channel open is queued or in flight (libssh2 opens one
 * channel at a time per session). */
unsigned session_opens_pending(const Session *s);
/* Streams queued or open whose client has not finished yet. */
unsigned session_busy_streams(const Session *s);
/* Monotonic time the session became ready (0 if not ready). */
usec_t session_ready_since(const Session *s);
/* For a FAILED session: how long it had been ready before it failed (0 if
 * it never was). */
usec_t session_up_duration(const Session *s);
/* The local port of the TCP connection (0 if none), to find sshd's child. */
uint16_t session_local_port(const Session *s);

/* The calls a node makes on its sessions, as a table: the daemon's nodes
 * use session_ops (below); a unit test of node.c passes sessions of its
 * own making. 'probe' opens a channel for a health probe: not a stream,
 * so it is in no stream count, limit or metric. */
typedef struct SessionOps {
        int (*create)(const SessionEnv *env, const SessionParams *p, Session **ret);
        Session *(*destroy)(Session *s);
        void (*connect)(Session *s);
        void (*disconnect)(Session *s, const char *why);
        SessionState (*state)(const Session *s);
        SessionFailure (*failure)(const Session *s);
        const char *(*last_error)(const Session *s);
        const char *(*reason)(const Session *s);
        const char *(*host_key)(const Session *s);
        const void *(*host_key_blob)(const Session *s, size_t *ret_len);
        usec_t (*up_duration)(const Session *s);
        unsigned (*channels)(const Session *s);
        unsigned (*opens_pending)(const Session *s);
        unsigned (*busy_streams)(const Session *s); /* may be NULL: channels() */
        int (*open_channel)(Session *s, bool probe, const char *host, uint16_t port, const char *orig_host,
                            uint16_t orig_port, const ChannelCallbacks *cb, void *userdata, Channel **ret);
} SessionOps;

/* The real sessions' table. */
extern const SessionOps session_ops;
