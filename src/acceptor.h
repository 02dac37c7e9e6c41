/* A listening socket on the daemon's loop that accepts in bounded batches,
 * rests instead of spinning when descriptors run out, and hands each new
 * connection to its owner (the front door, a static forward). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "address.h"

typedef struct Acceptor Acceptor;

/* Who connected, as the owner needs it. */
typedef struct AcceptorPeer {
        char text[64];      /* "10.0.0.1:4711", "[::1]:4711", "unix:pid=42,uid=0": for logs */
        char orig_host[48]; /* originator for direct-tcpip: the client's IP, "127.0.0.1" for unix */
        uint16_t orig_port; /* the client's port, 0 for unix */
} AcceptorPeer;

/* One accepted connection: 'fd' (non-blocking, close-on-exec, TCP_NODELAY
 * on TCP) belongs to the handler from here on. The handler may call
 * acceptor_hold() but must not free the acceptor. */
typedef void (*AcceptorHandler)(Acceptor *a, int fd, const AcceptorPeer *peer, void *userdata);

typedef struct AcceptorParams {
        mode_t mode;             /* unix sockets only */
        gid_t gid;               /* unix sockets only; (gid_t) -1 keeps the process group */
        const char *label;       /* "front door", "forwards[0]": names the listener in logs */
        const char *description; /* sd-event source description, e.g. "proxy-listener" */
        AcceptorHandler handler;
        void *userdata;
        /* Adopt this already listening socket (socket activation) instead of
         * binding: it is made non-blocking, and its path is left in place
         * when the acceptor goes (the service manager owns it). */
        bool adopt;
        int fd;
        /* Keep one descriptor in reserve (an open /dev/null) and give it up
         * for a connection when accept() fails with EMFILE or ENFILE: an
         * admin socket stays reachable when the process is out of
         * descriptors. The owner calls acceptor_replenish() right after it
         * closes a connection, to take the descriptor back. */
        bool reserve;
} AcceptorParams;

/* Bind 'address' (see listen_socket_open()), or adopt p->fd, and start
 * accepting on 'e'. An adopted fd is the acceptor's even on failure.
 * Returns 0 or -errno (the caller logs: it knows which key to name). */
int acceptor_new(sd_event *e, const ListenAddress *address, const AcceptorParams *p, Acceptor **ret);
/* Stop accepting, close the socket and unlink a unix socket path. Accepts
 * NULL, returns NULL. */
Acceptor *acceptor_free(Acceptor *a);

/* The owner's own pause (a capacity limit): while held, new connections
 * wait in the kernel's listen backlog. Independent of the rest after a
 * descriptor shortage; accepting resumes when neither applies. */
void acceptor_hold(Acceptor *a, bool hold);

/* A connection accepted here was closed: take the reserve descriptor back if
 * it was lent out (see AcceptorParams.reserve). Accepts NULL. */
void acceptor_replenish(Acceptor *a);

const ListenAddress *acceptor_address(const Acceptor *a);
/* True if the socket came from the service manager. */
bool acceptor_adopted(const Acceptor *a);

/* The gid of group 'name' for AcceptorParams.gid: 0 and the gid, -ENOENT if
 * there is no such group. Reads the group database: call at start only. */
int acceptor_group_lookup(const char *name, gid_t *ret);
