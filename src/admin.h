/* The admin API: HTTP/1.1 + JSON on a unix socket (mode 0600), read by
 * sshtunctl and by curl --unix-socket; health and metrics also on TCP
 * (admin.metrics_listen). It knows the daemon only through AdminOps. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "address.h"
#include "conf.h"
#include "nodeinfo.h"
#include "session.h"

typedef struct Admin Admin;

/* What a listener serves. */
typedef enum AdminAccess {
        ADMIN_ACCESS_FULL,     /* admin.socket: everything */
        ADMIN_ACCESS_READONLY, /* admin.readonly_socket: every GET; 403 to what changes state */
        ADMIN_ACCESS_PUBLIC,   /* admin.metrics_listen: GET /metrics, /healthz and /readyz; 404 to the rest */
} AdminAccess;

typedef enum AdminAction {
        ADMIN_ACTION_RECONNECT,
        ADMIN_ACTION_DRAIN,
        ADMIN_ACTION_UNDRAIN,
        _ADMIN_ACTION_MAX,
} AdminAction;

/* Daemon-wide figures besides the nodes. */
typedef struct AdminStatus {
        unsigned streams;              /* open, every node and the upstream */
        unsigned handshakes_in_flight;
} AdminStatus;

/* What the admin API asks of the daemon. Snapshots are valid until the loop
 * turns (their strings point into the daemon's objects). */
typedef struct AdminOps {
        /* Every node in configuration order, *ret malloc'd (may be NULL for none). */
        int (*nodes)(void *userdata, NodeInfo **ret, size_t *ret_n);
        /* One node: 0 and *ret, or -ENOENT. */
        int (*node)(void *userdata, const char *name, NodeInfo *ret);
        void (*status)(void *userdata, AdminStatus *ret);
        /* An operator action on a node: 0 (then *ret holds its snapshot after
         * it), or -ENOENT. */
        int (*action)(void *userdata, const char *name, AdminAction a, NodeInfo *ret);
        /* Reload the configuration: 0, or -errno and *ret_error (malloc'd). */
        int (*reload)(void *userdata, char **ret_error);
        /* The metrics exposition, malloc'd; NULL when out of memory. */
        char *(*metrics)(void *userdata, size_t *ret_len);
        /* The configuration now in force. */
        const Config *(*config)(void *userdata);
        /* `hostkeys trust` recorded the node's key: it should not wait for
         * its next retry. */
        void (*host_key_trusted)(void *userdata, const char *name);
} AdminOps;

/* Everything an admin listener uses, owned by the daemon. */
typedef struct AdminEnv {
        sd_event *event;
        const AdminOps *ops;
        void *userdata;
        /* Host key scans run a session of their own. */
        const SessionEnv *sessions;
        const SessionOps *session_ops;
} AdminEnv;

typedef struct AdminParams {
        AdminAccess access;
        mode_t mode;       /* unix sockets */
        gid_t gid;         /* unix sockets; (gid_t) -1: the process's */
        int activated_fd;  /* a socket the service manager passed (adopted), or -1 */
} AdminParams;

/* Listen on 'address' and serve. Returns -errno (the caller logs). */
int admin_new(const AdminEnv *env, const ListenAddress *address, const AdminParams *p, Admin **ret);
/* Stops listening, closes open connections, unlinks the socket (not an
 * adopted one). Accepts NULL, returns NULL. */
Admin *admin_free(Admin *a);
/* Closes the listening socket (and unlinks it, unless adopted) now; the
 * connections open on it go on until admin_free(). */
void admin_stop_listening(Admin *a);

/* True if the listener came from the service manager. */
bool admin_adopted(const Admin *a);

/* Build the reply to one request as a listener of 'access' would (exposed
 * for tests): status code, body (malloc'd, JSON unless noted), content
 * type (static string) and, for 405, the Allow header's value (static
 * string, else NULL; ret_allow may be NULL). POST /v1/hostkeys/scan
 * answers only on a socket, once the node has: here its target is checked
 * (400) and a good one gets 500. Returns 0, or -ENOMEM. */
int admin_handle(const AdminEnv *env, AdminAccess access, const char *method, const char *target,
                 int *ret_status, char **ret_body, const char **ret_content_type, const char **ret_allow);
