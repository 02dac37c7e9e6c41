/* One forwarded stream: a client socket on one side, an open SSH channel on
 * the other, bytes both ways with back-pressure and half-close, until both
 * directions end or either side fails. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "session.h"

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Relay Relay;

typedef struct RelayParams {
        const char *node;   /* node name, for logs and the audit line */
        const char *target; /* "host:port" as the client asked, for the audit line */
        const char *client; /* peer description, for the audit line */
        const void *head;   /* sent to the client before any node byte (the 200 reply) */
        size_t head_len;
        const void *early;  /* client bytes that came with the request head */
        size_t early_len;
        /* Pass node bytes on before the client's first byte. Off for the
         * front door (its dialer fails on bytes it did not ask for yet),
         * on for static forwards (a banner is heard at once, as with ssh -L). */
        bool node_may_speak_first;
        void (*on_done)(void *userdata); /* called once when the stream ends (may be NULL) */
        void *userdata;
} RelayParams;

/* Take over 'fd' and the open channel 'ch' and start relaying. On failure
 * the caller still owns both. */
int relay_new(Daemon *d, int fd, SessionChannel *ch, const RelayParams *p, Relay **ret);
/* Abort the stream: close the client socket, drop the channel; its audit
 * line says "aborted". Accepts NULL. (Every stream that ends writes one
 * audit line at info level, within the daemon-wide budget of
 * metrics_stream_log_allow().) */
Relay *relay_free(Relay *r);
