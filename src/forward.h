/* Static forwards (ssh -L style): each `forwards` entry listens on its own
 * address and sends every connection through one fixed node to one fixed
 * target. No request, no allowlist, no fallback: the operator wrote it. */
#pragma once

typedef struct Daemon Daemon;
typedef struct Forwards Forwards;

/* Bind every forwards[] listen address (unix sockets get proxy.socket_mode
 * and proxy.socket_group, like the front door) and start accepting on the
 * daemon's loop. Logs what failed and returns -errno. */
int forwards_new(Daemon *d, Forwards **ret);
/* Stop accepting, drop connections whose channel is still opening, unlink
 * unix sockets. Streams already relaying are not affected. Accepts NULL,
 * returns NULL. */
Forwards *forwards_free(Forwards *f);

/* Apply the daemon's new forwards: a listen address that stays keeps its
 * socket and connections (its node and target may change); new addresses
 * are bound before removed ones close. If one cannot be bound nothing
 * changes and -errno returns. */
int forwards_reload(Forwards *f);

