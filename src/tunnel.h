/* One tunnel through the Konnectivity upstream: the CONNECT kube-apiserver
 * would send to konnectivity-server, its reply, then (after a 200) a relay
 * far end carrying the stream. */
#pragma once

#include <stdint.h>

#include "relay.h"
#include "upstream.h"

typedef struct Tunnel Tunnel;

/* How a CONNECT through the upstream ended.
 *   status 200: the tunnel is open; the tunnel is the caller's far end
 *               (tunnel_far_end) until it is closed.
 *   status 400-599: the upstream answered so; 'reason' is its reason
 *               phrase and 'body' its body text (bounded, may be ""):
 *               both are passed on to the client. The tunnel is gone after
 *               the callback.
 *   status 0:   the upstream could not be reached or spoke no HTTP;
 *               'reason' says why. The tunnel is gone after the callback. */
typedef void (*TunnelOpened)(Tunnel *t, int status, const char *reason, const char *body, void *userdata);

/* Start a CONNECT to host:port (the host as the client wrote it), sent
 * byte for byte as kube-apiserver's egress dialer does. The callback runs
 * later, never from inside this call. -EINVAL for a host that cannot go
 * into a request line; reaching the upstream fails through the callback. */
int tunnel_open(Upstream *u, const char *host, uint16_t port, TunnelOpened cb, void *userdata, Tunnel **ret);
/* Give up on a tunnel before its callback ran (the client left, open_timeout
 * passed): the callback will not run. After a 200 it is the far end's
 * abort. Accepts NULL. */
void tunnel_abort(Tunnel *t);

/* An open tunnel as a relay far end (see relay.h): rx holds bytes from the
 * upstream, tx bytes for it; both bounded, reading stops while rx is full.
 * Over TLS the half-close (shutdown_tx) is a close_notify, which the
 * upstream takes for the client's EOF; konnectivity-server ends the whole
 * stream at the client's EOF in any case. close() lingers while tx drains
 * (at most 10 s); the tunnel counts in upstream_conns() until it is gone. */
FarEnd tunnel_far_end(Tunnel *t);

/* A tunnel's stream bytes from and to the upstream (the CONNECT exchange not
 * counted). */
uint64_t tunnel_bytes_rx(const Tunnel *t);
uint64_t tunnel_bytes_tx(const Tunnel *t);
