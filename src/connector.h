/* Connecting out: one stream socket to a host and port (resolved off the
 * loop when it is a name, each address tried in turn) or to a fixed address
 * (a unix socket), non-blocking from start to end. The one connector of
 * every outgoing connection: the SSH sessions and the Konnectivity
 * upstream. No timeout of its own: the owner's timer bounds it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "iopoll.h"

typedef struct Connector Connector;

typedef enum ConnectorPhase {
        CONNECTOR_RESOLVE, /* the name did not resolve (or has no IPv4/IPv6 address) */
        CONNECTOR_CONNECT, /* no address accepted the connection */
} ConnectorPhase;

/* The outcome. fd >= 0: connected (non-blocking, close-on-exec), the fd
 * is the callee's now, error is 0. fd < 0: -errno in 'error', where it
 * failed, a message for the operator ("connect to 10.0.0.7:22:
 * Connection refused", "cannot resolve node-1.example: Name or service not
 * known") and its cause alone, for a short reason ("Connection refused",
 * "Name or service not known": the resolver's words). Runs from the loop,
 * never from inside connector_new(); the connector is freed right after it
 * returns. */
typedef void (*ConnectorDone)(int fd, int error, ConnectorPhase phase, const char *message, const char *cause,
                              void *userdata);

typedef struct ConnectorParams {
        /* Either a host (IP literal or DNS name) and port... */
        const char *host;
        uint16_t port;
        /* ...or a fixed address (addr_len > 0), used as it is. */
        const struct sockaddr *addr;
        socklen_t addr_len;
        /* Socket options before connect() (may be NULL). */
        void (*prepare)(int fd, int family, void *userdata);
        ConnectorDone done;
        void *userdata;
} ConnectorParams;

/* Start connecting; sockets are watched through 'poll'. */
int connector_new(sd_event *e, IoPoll *poll, const ConnectorParams *p, Connector **ret);
/* Give up: the callback will not run. Accepts NULL, returns NULL. */
Connector *connector_free(Connector *c);

/* True while the name is being resolved (for messages). */
bool connector_resolving(const Connector *c);
