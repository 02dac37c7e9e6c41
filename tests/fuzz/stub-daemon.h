/* A daemon for the admin harness: a few fake nodes with awkward names and
 * texts, the counters admin_handle() reads, and a reload that can fail.
 * Made fresh for every input, so operator actions leave nothing behind. */
#pragma once

#include <stdbool.h>

#include "daemon.h"

/* A daemon whose reload fails with 'reload_error' (NULL: it succeeds).
 * With 'konnectivity', an upstream is configured and every node has been
 * moved to it, so that the migration view offers the final switch. */
Daemon *stub_daemon_new(const char *reload_error, bool konnectivity);
Daemon *stub_daemon_free(Daemon *d);
