/* What upstream.c (the upstream: address, TLS context) and tunnel.c (one
 * CONNECT through it, then a far end) share: the Upstream object. */
#pragma once

#include <sys/socket.h>

#include <openssl/ssl.h>
#include <systemd/sd-event.h>

#include "iopoll.h"
#include "macro.h"
#include "upstream.h"

#define UPSTREAM_RX_MAX (256 * 1024)             /* per tunnel, as an SSH channel's */
#define UPSTREAM_TX_MAX (256 * 1024)
#define UPSTREAM_READ_CHUNK (64 * 1024)          /* one read: a small stream holds little */
#define UPSTREAM_HEAD_MAX (16 * 1024)            /* the reply head */
#define UPSTREAM_BODY_MAX 4096                   /* an error reply's body: this much, or to EOF, */
#define UPSTREAM_BODY_USEC (500 * USEC_PER_MSEC) /* within this time */
#define UPSTREAM_LINGER_USEC (10 * USEC_PER_SEC) /* close(): how long tx may take to drain */
#define UPSTREAM_HOST_MAX 1024                   /* the longest CONNECT target host */

/* Shared by the daemon and every conn: a conn keeps what it was opened
 * with after a reload dropped the daemon's reference. */
struct Upstream {
        unsigned n_ref;
        sd_event *event;
        IoPoll *iopoll;               /* the conns' sockets (see iopoll.h) */
        char *address;                /* as configured */
        char *host;                   /* tcp: as configured */
        uint16_t port;
        struct sockaddr_storage addr; /* unix, or tcp to an IP literal */
        socklen_t addr_len;           /* 0: resolve host for each conn */
        SSL_CTX *ctx;                 /* tcp with ca_file: TLS */
        char *verify_name;            /* the name the certificate must carry (SNI too, unless an IP) */
        unsigned n_conns; /* tunnels alive */
};

/* Drop a reference; the last one frees. Returns NULL. */
Upstream *upstream_unref(Upstream *u);
