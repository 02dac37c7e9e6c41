/* Listening sockets for the front door, the admin API and forwards: bind a
 * ListenAddress, replacing a stale unix socket but never a live one. */
#pragma once

#include <sys/types.h>

#include "address.h"

/* Create, bind and listen (non-blocking, close-on-exec). For unix sockets:
 * the parent directory is created (0755) if missing; an existing socket
 * nobody accepts on is replaced, one that accepts gives -EADDRINUSE; the
 * socket gets 'mode', and group 'gid' unless gid == (gid_t) -1. Returns the
 * fd or -errno. */
int listen_socket_open(const ListenAddress *a, mode_t mode, gid_t gid, int backlog);

/* Unlink a unix socket path we created (no-op for tcp). */
void listen_socket_unlink(const ListenAddress *a);
