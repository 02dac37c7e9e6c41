/* The audit log of streams: one line per finished stream at info level
 * (client, target, result, bytes, duration), within a daemon-wide budget
 * so a connection storm cannot flood the journal. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct AuditLog AuditLog;

/* At most 'burst' lines per 'interval' (the daemon uses 100 per 10 s). */
int audit_new(unsigned burst, usec_t interval, AuditLog **ret);
AuditLog *audit_free(AuditLog *a);

typedef struct AuditStream {
        const char *node;   /* may be NULL */
        const char *client; /* peer description */
        const char *target; /* "host:port" as the client asked */
        const char *result; /* "done", "reset by client", "node closed", ... */
        const char *detail; /* more about the result, may be NULL */
        uint64_t bytes_up;  /* client -> node */
        uint64_t bytes_down;
        usec_t duration;
} AuditStream;

/* Write the line for one finished stream if the budget allows (the first
 * line after a dropped run says how many were dropped). Fields a peer
 * chose are quoted so they cannot fake a field or a line. */
void audit_stream_end(AuditLog *a, const AuditStream *s);

/* Lines held back by the budget, ever (a metric). */
uint64_t audit_suppressed(const AuditLog *a);
