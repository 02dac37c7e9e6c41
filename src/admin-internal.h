/* What admin.c (routing, connections, the sockets), admin-json.c (the JSON
 * views) and admin-hostkeys.c (host key scans, trust, list) share. Other
 * modules use admin.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "acceptor.h"
#include "admin.h"
#include "buffer.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "nodeinfo.h"

/* A connection has this long for its whole exchange, request to close. */
#define ADMIN_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* After a 408 is queued: time left to deliver it. */
#define ADMIN_GRACE_USEC (1 * USEC_PER_SEC)

#define JSON_TYPE "application/json"
#define SCAN_PATH "/v1/hostkeys/scan"
#define TRUST_PATH "/v1/hostkeys/trust"
#define HOSTKEYS_PATH "/v1/hostkeys"
#define FORGET_PATH "/v1/hostkeys/forget"

typedef enum ConnState {
        CONN_READING,   /* the request head */
        CONN_SCANNING,  /* waiting for a host key scan to answer */
        CONN_WRITING,   /* the reply */
        CONN_LINGERING, /* reply sent, write side shut: drop input until EOF */
} ConnState;

typedef struct AdminConn AdminConn;
typedef struct AdminScan AdminScan;

struct AdminConn {
        Admin *admin;
        LIST_FIELDS(AdminConn, conns);
        int fd;
        ConnState state;
        AdminScan *scan; /* CONN_SCANNING */
        sd_event_source *io;
        sd_event_source *timer;
        Buffer in;
        Buffer out;
        size_t discarded;
};

struct Admin {
        AdminEnv env;
        AdminAccess access;
        char *label; /* "admin socket unix:/run/sshtund/admin.sock", for logs */
        Acceptor *acceptor;
        AdminConn *conns;
        unsigned n_conns;
        AdminScan *scans;
        unsigned n_scans;
        RateLimit full_log;
};

typedef struct AdminReply {
        int status;
        char *body;
        const char *content_type;
        const char *allow;
} AdminReply;

/* admin-json.c */

/* A JSON string for text that may hold bytes from a peer (NULL: JSON null);
 * NULL only when out of memory. */
json_t *admin_json_text(const char *s);
/* Adds key → v, taking the reference; v NULL (a failed allocation) gives -ENOMEM. */
int admin_json_add(json_t *o, const char *key, json_t *v);
/* Serialise and drop 'v' (NULL means an allocation failed on the way). */
int admin_json_to_body(json_t *v, char **ret);
/* The body {"error": message}. */
int admin_error_body(const char *message, char **ret);
/* GET /v1/nodes/NAME: one node's state. */
json_t *admin_node_to_json(const NodeInfo *info);
/* GET /v1/status: the daemon's summary. */
json_t *admin_status_to_json(const AdminEnv *env);
/* GET /v1/nodes: every node, the JSON text itself (malloc'd; NULL when
 * out of memory). */
char *admin_nodes_body(const AdminEnv *env);
/* GET /v1/migration: the move to Konnectivity, node by node. */
json_t *admin_migration_to_json(const AdminEnv *env);

/* admin-hostkeys.c */

/* Route POST /v1/hostkeys/scan ('trust' false) and /v1/hostkeys/trust
 * ('trust' true) outside the socket server: only checked. */
int admin_route_scan(const AdminEnv *env, const char *method, const char *target, bool trust, AdminReply *reply);
/* Answer POST /v1/hostkeys/scan or, with 'trust', /v1/hostkeys/trust on
 * 'c': a 400, 404 or 503 now, else a scan that replies later. */
int admin_conn_scan(AdminConn *c, const char *target, bool trust);
/* GET /v1/hostkeys[?node=NAME]: the keys the files hold for each node, or
 * for the one (404 when it does not exist). */
int admin_route_hostkeys(const AdminEnv *env, const char *method, const char *target, AdminReply *reply);
/* POST /v1/hostkeys/forget?node=NAME: the node's keys leave learned_hosts
 * and the node reconnects (its streams end), so that no session made with
 * a forgotten key goes on. */
int admin_route_forget(const AdminEnv *env, const char *method, const char *target, AdminReply *reply);
/* The backstop timer of a scanning connection fired: drop the scan, reply 504. */
int admin_conn_scan_timeout(AdminConn *c);
/* Stops a scan and detaches it from its connection (which stays open). */
AdminScan *admin_scan_free(AdminScan *scan);

/* admin.c */

/* Percent-decode s[0..n). -EINVAL for a broken escape or an encoded NUL. */
int admin_url_decode(const char *s, size_t n, char **ret);
/* Set *r to a JSON error reply. */
int admin_reply_error(AdminReply *r, int status, const char *message);
/* Set *r to a 405 whose Allow header is 'allow' (a static string). */
int admin_reply_not_allowed(AdminReply *r, const char *allow);
/* Queue a reply and start writing it; the connection closes after it. */
int admin_conn_reply(AdminConn *c, int status, const char *body, const char *content_type, const char *allow);
/* Queue a JSON error reply, as admin_conn_reply(). */
int admin_conn_reply_error(AdminConn *c, int status, const char *message);
/* Close a connection and free it, with its scan. */
AdminConn *admin_conn_free(AdminConn *c);
