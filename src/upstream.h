/* The Konnectivity upstream: where konnectivity-server is (unix or tcp,
 * optionally TLS with a client certificate, as the API server's egress TCP
 * transport) for the nodes routed to it. Each tunnel through it (tunnel.h)
 * is one CONNECT; once open it is a relay far end. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"

typedef struct Upstream Upstream;

/* From a konnectivity section: parse the address ("unix:PATH",
 * "tcp:HOST:PORT"), load the TLS material when configured. On failure a
 * malloc'd reason in *ret_error (may be NULL). */
int upstream_new(sd_event *e, const ConfigKonnectivity *k, Upstream **ret, char **ret_error);
/* Drop the daemon's reference. Conns open or opening keep what they need
 * and run on until they end. Accepts NULL, returns NULL. */
Upstream *upstream_free(Upstream *u);

/* "unix:/path" or "tcp:host:port" as configured, for messages. */
const char *upstream_address(const Upstream *u);

/* Tunnels open, opening or lingering, for status and shutdown. */
unsigned upstream_conns(const Upstream *u);

