/* The front door: listeners (unix and tcp) speaking HTTP CONNECT, each
 * request parsed, checked against the allowlist, routed to a node, and
 * answered once the node's channel opens (or fails, or times out). */
#pragma once

#include "config.h"

typedef struct Daemon Daemon;
typedef struct Proxy Proxy;

/* Bind every proxy.listen address (unix sockets get socket_mode and
 * socket_group) and start accepting on the daemon's loop. */
int proxy_new(Daemon *d, Proxy **ret);
/* Stop accepting, drop requests not yet answered, unlink unix sockets.
 * Established streams are not affected. Accepts NULL, returns NULL. */
Proxy *proxy_free(Proxy *p);

/* Requests read or waiting for their channel. */
unsigned proxy_pending(const Proxy *p);
