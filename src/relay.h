/* One forwarded stream: a client socket on one side, the far end on the
 * other (an open SSH channel, or a tunnel through the Konnectivity
 * upstream), bytes both ways with back-pressure and half-close, until both
 * directions end or either side fails. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "audit.h"
#include "buffer.h"
#include "channel.h"
#include "iopoll.h"
#include "metrics.h"

typedef struct Relay Relay;

/* What the far end tells the relay (the relay passes itself as 'relay'). */
typedef struct FarEndHooks {
        void (*readable)(void *relay);  /* new bytes in rx, or the far EOF */
        void (*writable)(void *relay);  /* room in tx again */
        void (*failed)(void *relay, const char *reason); /* the far end is gone */
} FarEndHooks;

/* The far end as the relay drives it: two bounded buffers and the calls
 * around them. Both kinds keep the same contract as channel_*(). */
typedef struct FarEndOps {
        Buffer *(*rx)(void *end);          /* bytes for the client */
        bool (*rx_eof)(void *end);         /* the far side sent EOF, all of it is in rx */
        void (*consumed)(void *end);       /* bytes were taken from rx */
        Buffer *(*tx)(void *end);          /* bytes for the far side: append, then kick */
        void (*kick)(void *end);
        void (*shutdown_tx)(void *end);    /* the client half-closed */
        void (*attach)(void *end, const FarEndHooks *hooks, void *relay);
        void (*close)(void *end);          /* done: flush tx, then close */
        void (*abort)(void *end);          /* failed: drop tx */
} FarEndOps;

typedef struct FarEnd {
        const FarEndOps *ops;
        void *end;
} FarEnd;

/* An open SSH channel as a far end. */
FarEnd relay_channel_far_end(Channel *ch);

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

/* What every relay of the daemon shares. */
typedef struct RelayEnv {
        IoPoll *poll;     /* where client sockets are watched */
        AuditLog *audit;  /* one line per stream that ends */
        Metrics *metrics; /* stream durations; may be NULL */
} RelayEnv;

/* Take over 'fd' and the far end and start relaying. On failure the
 * caller still owns both. 'env' must outlive the relay. */
int relay_new(const RelayEnv *env, int fd, FarEnd far, const RelayParams *p, Relay **ret);
/* Abort the stream: close the client socket, drop the channel; its audit
 * line says "aborted". Accepts NULL. */
Relay *relay_free(Relay *r);
