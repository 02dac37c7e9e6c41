/* Name resolution off the loop: getaddrinfo() runs in a short-lived thread
 * and the answer comes back to the sd-event loop through a pipe. */
#pragma once

#include <netdb.h>
#include <stdint.h>

#include <systemd/sd-event.h>

typedef struct ResolveQuery ResolveQuery;

/* Called on the loop with error 0 and the addresses (valid only during the
 * call), or a negative errno (-EHOSTUNREACH for names that do not resolve,
 * with 'message' from gai_strerror). The query is freed after the call. */
typedef void (*ResolveCallback)(ResolveQuery *q, int error, const char *message,
                                const struct addrinfo *ai, void *userdata);

/* Resolve host (TCP, any family) with 'port' filled into the addresses. */
int resolve_start(sd_event *e, const char *host, uint16_t port, ResolveCallback cb, void *userdata,
                  ResolveQuery **ret);

/* Forget a query: the callback will not run. Accepts NULL, returns NULL. */
ResolveQuery *resolve_cancel(ResolveQuery *q);
