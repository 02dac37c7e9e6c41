/* The daemon: owns the event loop, the configuration, the nodes, the
 * listeners, the admin sockets and every live stream; start, reload and
 * shutdown. Its direct children (the front door, the forwards) reach back
 * through the accessors below; nothing further down knows the daemon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "audit.h"
#include "conf.h"
#include "identity.h"
#include "iopoll.h"
#include "metrics.h"
#include "migration.h"
#include "node.h"
#include "relay.h"
#include "router.h"

typedef struct Daemon Daemon;

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

/* --- for the daemon's direct children ----------------------------------- */

sd_event *daemon_event(const Daemon *d);
/* Where streams and front-door requests watch their client sockets. */
IoPoll *daemon_iopoll(const Daemon *d);
/* What every relay is given. */
const RelayEnv *daemon_relay_env(const Daemon *d);
const Config *daemon_config(const Daemon *d);
Router *daemon_router(const Daemon *d);
Metrics *daemon_metrics(const Daemon *d);
/* Where each node's streams go. */
Migration *daemon_migration(const Daemon *d);

Node *daemon_find_node(const Daemon *d, const char *name);
/* A random ready node (fallback = "any"), weighted by free capacity, or NULL. */
Node *daemon_pick_any_node(Daemon *d);

/* A relay the front door started ended (RelayParams.on_done with the
 * daemon as userdata): the front door, if still open, counts it out. */
void daemon_relay_done(void *userdata);
