/* The Konnectivity upstream: an HTTP CONNECT client to konnectivity-server
 * (unix or tcp, optionally TLS with a client certificate, as the API
 * server's egress TCP transport), for the nodes routed to it. Each
 * UpstreamConn is one tunnel; once open it is a relay far end. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "relay.h"

typedef struct Daemon Daemon;
typedef struct Upstream Upstream;
typedef struct UpstreamConn UpstreamConn;

/* From the daemon's konnectivity section: parse the address ("unix:PATH",
 * "tcp:HOST:PORT"), load the TLS material when configured. On failure a
 * malloc'd reason in *ret_error (may be NULL). */
int upstream_new(Daemon *d, Upstream **ret, char **ret_error);
/* Drop the daemon's reference. Conns open or opening keep what they need
 * and run on until they end. Accepts NULL, returns NULL. */
Upstream *upstream_free(Upstream *u);

/* "unix:/path" or "tcp:host:port" as configured, for messages. */
const char *upstream_address(const Upstream *u);

/* How a CONNECT through the upstream ended.
 *   status 200: the tunnel is open; the conn is the caller's far end
 *               (upstream_far_end) until it is closed.
 *   status 400-599: the upstream answered so; 'reason' is its reason
 *               phrase and 'body' its body text (bounded, may be ""):
 *               both are passed on to the client. The conn is gone after
 *               the callback.
 *   status 0:   the upstream could not be reached or spoke no HTTP;
 *               'reason' says why. The conn is gone after the callback. */
typedef void (*UpstreamOpened)(UpstreamConn *c, int status, const char *reason, const char *body,
                               void *userdata);

/* Start a CONNECT to host:port (the host as the client wrote it), sent
 * byte for byte as kube-apiserver's egress dialer does. The callback runs
 * later, never from inside this call. -EINVAL for a host that cannot go
 * into a request line; reaching the upstream fails through the callback. */
int upstream_connect(Upstream *u, const char *host, uint16_t port, UpstreamOpened cb, void *userdata,
                     UpstreamConn **ret);
/* Give up on a conn before its callback ran (the client left, open_timeout
 * passed): the callback will not run. After a 200 it is the far end's
 * abort. Accepts NULL. */
void upstream_conn_abort(UpstreamConn *c);

/* An open conn as a relay far end (see relay.h): rx holds bytes from the
 * upstream, tx bytes for it; both bounded, reading stops while rx is full.
 * Over TLS the half-close (shutdown_tx) is a close_notify, which the
 * upstream takes for the client's EOF; konnectivity-server ends the whole
 * stream at the client's EOF in any case. close() lingers while tx drains
 * (at most 10 s); the conn counts in upstream_conns() until it is gone. */
FarEnd upstream_far_end(UpstreamConn *c);

/* Conns open, opening or lingering, for status and shutdown. */
unsigned upstream_conns(const Upstream *u);

/* A conn's stream bytes from and to the upstream (the CONNECT exchange not
 * counted). */
uint64_t upstream_conn_bytes_rx(const UpstreamConn *c);
uint64_t upstream_conn_bytes_tx(const UpstreamConn *c);
