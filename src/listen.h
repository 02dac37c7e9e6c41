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

/* Unlink a unix socket path we created (no-op for tcp), unless another
 * process has replaced it since: 'dev' and 'ino' are those of ours (from
 * lstat() after listen_socket_open()). */
void listen_socket_unlink(const ListenAddress *a, dev_t dev, ino_t ino);

/* Sockets handed over by the service manager (socket activation,
 * sd_listen_fds(3)): each is taken by the listener it belongs to; what is
 * left is closed by listen_fds_free(). */
typedef struct ListenFds ListenFds;

/* Collect the passed sockets (none is fine: an empty set). The
 * environment variables are unset so children do not see them. */
int listen_fds_new(ListenFds **ret);
/* Close every socket not taken; returns NULL. *ret_unused (may be NULL)
 * receives how many that were. Accepts NULL. */
ListenFds *listen_fds_free(ListenFds *l, size_t *ret_unused);
/* Take the socket bound to 'a' (unix path or tcp address and port):
 * returns its fd (now the caller's) or -ENOENT. */
int listen_fds_take(ListenFds *l, const ListenAddress *a);
/* Take the first socket named 'name' (FileDescriptorName=) not taken yet;
 * *ret_address receives its address. Returns the fd or -ENOENT. */
int listen_fds_take_named(ListenFds *l, const char *name, ListenAddress *ret_address);
