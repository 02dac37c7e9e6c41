/* The admin API: HTTP/1.1 + JSON on a Unix socket (mode 0600), read by
 * sshtunctl and by curl --unix-socket; health and metrics also on TCP. */
#pragma once

#include "address.h"
#include "daemon.h"

typedef struct Admin Admin;

/* Bind 'path' (replacing a stale socket), mode 0600, and serve requests on
 * the daemon's loop. */
int admin_new(Daemon *d, const char *path, Admin **ret);
/* The metrics_listen server: a TCP address (-EAFNOSUPPORT for any other)
 * that answers GET /metrics, /healthz and /readyz, and 404 to the rest of
 * the API. Freed with admin_free(). */
int admin_new_metrics(Daemon *d, const ListenAddress *address, Admin **ret);
/* Stops listening, closes open connections, unlinks the socket. */
Admin *admin_free(Admin *a);

/* Build the reply to one request (exposed for tests): status code, body
 * (malloc'd, JSON unless noted), content type (static string) and, for 405,
 * the Allow header's value (static string, else NULL; ret_allow may be NULL).
 * POST /v1/hostkeys/scan answers only on the socket, once the node has:
 * here its target is checked (400) and a good one gets 500.
 * Returns 0, or -ENOMEM. */
int admin_handle(Daemon *d, const char *method, const char *target, int *ret_status, char **ret_body,
                 const char **ret_content_type, const char **ret_allow);
