/* The front door: listeners (unix and tcp) speaking HTTP CONNECT, each
 * request parsed, checked against the allowlist, routed to a node, and
 * answered once the node's channel opens (or fails, or times out). */
#pragma once

#include <stdbool.h>

#include "conf.h"

typedef struct Daemon Daemon;
typedef struct Proxy Proxy;

typedef struct ListenFds ListenFds;

/* Bind every proxy.listen address (unix sockets get socket_mode and
 * socket_group) and start accepting on the daemon's loop. A socket passed
 * by the service manager ('activated', may be NULL) is adopted instead of
 * binding when it is bound to a proxy.listen address; passed sockets named
 * "proxy" (FileDescriptorName=) bound elsewhere become extra listeners. */
int proxy_new(Daemon *d, ListenFds *activated, Proxy **ret);
/* Stop accepting, drop requests not yet answered, unlink unix sockets.
 * Established streams are not affected. Accepts NULL, returns NULL. */
Proxy *proxy_free(Proxy *p);

/* Apply the daemon's new proxy configuration ('old' is the previous one):
 * bind the new listen addresses first, then close the ones no longer
 * listed (sockets from the service manager stay), and give kept unix
 * sockets the new mode and group. Pending requests and streams are kept.
 * If a new address cannot be bound nothing changes and -errno returns. */
int proxy_reload(Proxy *p, const ConfigProxy *old);

/* Stop (or resume) accepting: new dials wait in the listen backlog, as
 * during the start-up grace. */
void proxy_hold(Proxy *p, bool hold);

/* True if the listener for 'a' was passed by the service manager. */
bool proxy_listener_adopted(const Proxy *p, const ListenAddress *a);

/* Front-door connections open: requests being read or opened, and the
 * streams they became (what proxy.max_clients bounds). */
unsigned proxy_connections(const Proxy *p);

/* A relay a request started ended (through daemon_relay_done(): the
 * front door may be gone by then). */
void proxy_relay_done(Proxy *p);

