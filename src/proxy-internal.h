/* What proxy.c (the listeners) and request.c (one request each) share. */
#pragma once

#include <stdbool.h>

#include "acceptor.h"
#include "log.h"
#include "proxy.h"

typedef struct ProxyClient ProxyClient;

struct Proxy {
        Daemon *daemon;
        Acceptor **listeners;
        size_t n_listeners;
        ProxyClient *clients;
        unsigned n_clients;    /* requests not yet answered */
        unsigned n_streams;    /* relays started here and still running */
        bool full;             /* at proxy.max_clients: listeners paused */
        bool held;             /* proxy_hold(): listeners paused */
        RateLimit reject_log;
        RateLimit accept_log;
};

/* proxy.max_clients: pause or resume the listeners after a change of count. */
void proxy_check_capacity(Proxy *p);
/* A relay started by a request ended (RelayParams.on_done; userdata: the daemon). */
void proxy_relay_done(void *userdata);

/* A new front-door connection: read its request, route it, answer it. */
void request_new(Proxy *p, int fd, const AcceptorPeer *peer);
/* Drop a request not yet answered (the front door closes). */
void request_free(ProxyClient *c);
