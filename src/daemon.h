/* The daemon: owns the event loop, the configuration, the nodes, the
 * listeners, the admin socket and every live stream; start and shutdown. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "hostkey.h"
#include "identity.h"

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Router Router;

/* Takes ownership of 'config' and 'identity'. Binds nothing yet. */
int daemon_new(Config *config, Identity *identity, Daemon **ret);
Daemon *daemon_free(Daemon *d);

/* Bind the listeners and the admin socket, start the nodes. */
int daemon_start(Daemon *d);
/* Re-read the configuration file and apply the difference (SIGHUP,
 * sshtunctl reload). With nodes_only, only the node list is applied (the
 * nodes_file changed). On failure nothing changes, -errno returns and
 * *ret_error (may be NULL) gets "FILE:LINE: KEY: message". */
int daemon_reload(Daemon *d, bool nodes_only, char **ret_error);
/* -d: keep logging to stderr at debug whatever the file says. */
void daemon_set_log_override(Daemon *d, bool on);

/* Run the loop until a clean stop; returns the exit status. */
int daemon_run(Daemon *d);

/* Give the unix sockets we bound (front door, forwards, admin) to 'uid'
 * before dropping privileges, so the daemon can still remove them. */
void daemon_chown_sockets(Daemon *d, uid_t uid);

sd_event *daemon_event(const Daemon *d);
/* Where streams watch their client sockets (see iopoll.h). */
typedef struct IoPoll IoPoll;
IoPoll *daemon_iopoll(const Daemon *d);
const Config *daemon_config(const Daemon *d);
const Identity *daemon_identity(const Daemon *d);
Router *daemon_router(const Daemon *d);
/* The Konnectivity upstream, or NULL when none is configured. */
typedef struct Upstream Upstream;
Upstream *daemon_upstream(const Daemon *d);

/* Counters and histograms. */
typedef struct Metrics Metrics;
Metrics *daemon_metrics(const Daemon *d);

/* The front door, or NULL once it is closed. */
typedef struct Proxy Proxy;
Proxy *daemon_proxy(const Daemon *d);

size_t daemon_n_nodes(const Daemon *d);
Node *daemon_node(const Daemon *d, size_t i);
Node *daemon_find_node(const Daemon *d, const char *name);
/* A random ready node (fallback = "any"), or NULL. */
Node *daemon_pick_any_node(Daemon *d);

/* Streams open across all nodes. */
unsigned daemon_streams(const Daemon *d);

/* The known_hosts set, reloaded first if the file changed. */
const KnownHosts *daemon_known_hosts(Daemon *d);

/* Handshake slots (ssh.max_handshakes): acquire returns true if the caller
 * may start now; otherwise 'resume' is called with 'userdata' when a slot
 * frees. cancel removes a waiter; release returns a slot. */
typedef void (*HandshakeResume)(void *userdata);
bool daemon_handshake_acquire(Daemon *d, HandshakeResume resume, void *userdata);
void daemon_handshake_cancel(Daemon *d, void *userdata);
void daemon_handshake_release(Daemon *d);
unsigned daemon_handshakes_in_flight(const Daemon *d);

/* Uniform random number in [0, n) from the daemon's generator. */
uint64_t daemon_random(Daemon *d, uint64_t n);
