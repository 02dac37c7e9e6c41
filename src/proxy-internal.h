/* What proxy.c (the listeners) and request.c (one request each) share. */
#pragma once

#include <stdbool.h>

#include "acceptor.h"
#include "log.h"
#include "proxy.h"

typedef struct Request Request;

struct Proxy {
        Daemon *daemon;
        Acceptor **listeners;
        size_t n_listeners;
        Request *requests;     /* not yet answered */
        unsigned n_requests;
        unsigned n_streams;    /* relays started here and still running */
        bool full;             /* at proxy.max_clients: listeners paused */
        bool held;             /* proxy_hold(): listeners paused */
        RateLimit reject_log;
        RateLimit accept_log;
};

/* proxy.max_clients: pause or resume the listeners after a change of count. */
void proxy_check_capacity(Proxy *p);

/* A new front-door connection: read its request, route it, answer it. */
void request_new(Proxy *p, int fd, const AcceptorPeer *peer);
/* Drop a request not yet answered (the front door closes). */
void request_free(Request *c);
