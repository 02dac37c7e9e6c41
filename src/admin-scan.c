/* Host key scans over the admin API: what POST /v1/hostkeys/scan names, and
 * a scan_only session per request whose outcome becomes the reply. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "address.h"
#include "admin-internal.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "session.h"

/* Host key scans in flight; more get 503. */
#define ADMIN_SCANS_MAX 8
/* A scan ends by ssh.connect_timeout, capped here, plus the grace below for
 * a wait on a handshake slot; sshtunctl waits longer than the sum. */
#define ADMIN_SCAN_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define ADMIN_SCAN_GRACE_USEC (5 * USEC_PER_SEC)
/* A DNS name's longest text form. */
#define ADMIN_SCAN_HOST_MAX 253

/* ---- host key scans: what to scan ------------------------------------------- */

typedef struct ScanTarget {
        char *text; /* as asked */
        char *node; /* the node it names, or NULL */
        char *host;
        uint16_t port;
} ScanTarget;

static void scan_target_done(ScanTarget *t) {
        free(t->text);
        free(t->node);
        free(t->host);
        *t = (ScanTarget) {};
}

/* The value of 'key' in the query of a request target, percent-decoded:
 * -ENOENT when absent, -EINVAL when malformed. */
static int query_param(const char *target, const char *key, char **ret) {
        const char *q = strchr(target, '?');
        size_t klen = strlen(key);

        if (!q)
                return -ENOENT;
        for (q++; *q && *q != '#';) {
                size_t n = strcspn(q, "&#");

                if (n > klen && strncmp(q, key, klen) == 0 && q[klen] == '=')
                        return admin_url_decode(q + klen + 1, n - klen - 1, ret);
                q += n;
                if (*q == '&')
                        q++;
        }
        return -ENOENT;
}

/* A DNS name as a node's address may be written: letters, digits, '-',
 * '_' and '.', not starting with '-' or '.'. */
static bool scan_host_is_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > ADMIN_SCAN_HOST_MAX || s[0] == '-' || s[0] == '.')
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      strchr("-_.", *c)))
                        return false;
        return true;
}

/* NODE (a configured node's address and port), HOST, HOST:PORT, [HOST],
 * [HOST]:PORT or a bare IPv6 literal; ssh.port when no port is given.
 * -EINVAL (with *ret_error, static text) or -ENOMEM. */
static int scan_target_parse(const AdminEnv *env, const char *text, ScanTarget *ret, const char **ret_error) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        const char *colon = strchr(text, ':');
        NodeInfo info;
        bool node = env->ops->node(env->userdata, text, &info) >= 0;
        IpAddr ip;
        int r;

        t.text = strdup(text);
        if (!t.text)
                return -ENOMEM;
        if (node) {
                t.node = strdup(info.name);
                t.host = strdup(info.address);
                t.port = info.port;
                if (!t.node || !t.host)
                        return -ENOMEM;
                *ret = t;
                t = (ScanTarget) {};
                return 0;
        }

        if (text[0] == '[') {
                /* known_hosts writes "[host]:port" for any host */
                const char *close = strchr(text, ']');

                if (!close || (close[1] && (close[1] != ':' || port_parse(close + 2, &t.port) < 0))) {
                        *ret_error = "not a node name, HOST or HOST:PORT";
                        return -EINVAL;
                }
                if (!close[1])
                        t.port = env->ops->config(env->userdata)->ssh.port;
                t.host = strndup(text + 1, (size_t) (close - text - 1));
                if (!t.host)
                        return -ENOMEM;
        } else if (colon && !strchr(colon + 1, ':')) {
                r = hostport_split(text, &t.host, &t.port);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        *ret_error = "not a node name, HOST or HOST:PORT";
                        return -EINVAL;
                }
        } else {
                t.host = strdup(text);
                if (!t.host)
                        return -ENOMEM;
                t.port = env->ops->config(env->userdata)->ssh.port;
        }
        if (ipaddr_parse(t.host, &ip) < 0 && !scan_host_is_name(t.host)) {
                *ret_error = "not a node name, HOST or HOST:PORT";
                return -EINVAL;
        }
        *ret = t;
        t = (ScanTarget) {};
        return 0;
}

/* The target of POST /v1/hostkeys/scan?target=...: 0 and *ret, or 1 when
 * the request is bad and *reply holds the 400. */
static int scan_target_from_request(const AdminEnv *env, const char *target, ScanTarget *ret,
                                    AdminReply *reply) {
        _cleanup_free_ char *text = NULL, *message = NULL;
        const char *error = NULL;
        int r;

        r = query_param(target, "target", &text);
        if (r == -ENOENT || (r >= 0 && !*text))
                error = "missing target: POST " SCAN_PATH "?target=NODE|HOST[:PORT]";
        else if (r == -EINVAL)
                error = "malformed target in the query";
        else if (r < 0)
                return r;
        if (error) {
                r = admin_reply_error(reply, 400, error);
                return r < 0 ? r : 1;
        }

        r = scan_target_parse(env, text, ret, &error);
        if (r != -EINVAL)
                return r;
        if (asprintf(&message, "%s: %s", error, text) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        r = admin_reply_error(reply, 400, message);
        return r < 0 ? r : 1;
}

/* Outside the socket server a scan has no connection to wait on: the
 * request is only checked. */
int admin_route_scan(const AdminEnv *env, const char *method, const char *target, AdminReply *reply) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        int r;

        if (!streq(method, "POST"))
                return admin_reply_not_allowed(reply, "POST");
        r = scan_target_from_request(env, target, &t, reply);
        if (r != 0)
                return r < 0 ? r : 0;
        return admin_reply_error(reply, 500, "host key scans are answered on the admin socket only");
}

/* ---- host key scans: a scan_only session per request ---------------------- */

/* The connection waits while the session runs. The session reports from
 * inside its own processing, so its callback only records the outcome and
 * the 'finish' defer source replies and frees it from the loop. A client
 * that leaves (or the timeout) frees the scan at once: that never happens
 * inside the session's callback. */
struct AdminScan {
        Admin *admin;
        LIST_FIELDS(AdminScan, scans);
        const SessionOps *ops;
        AdminConn *conn;
        Session *session;
        sd_event_source *finish;
        ScanTarget target;
        int status; /* 0 until the outcome is known */
        char *body; /* the reply; NULL with a status: out of memory */
};

AdminScan *admin_scan_free(AdminScan *scan) {
        if (!scan)
                return NULL;
        if (scan->conn)
                scan->conn->scan = NULL;
        scan->finish = sd_event_source_disable_unref(scan->finish);
        if (scan->session)
                scan->session = scan->ops->destroy(scan->session);
        if (scan->admin) {
                LIST_REMOVE(scans, scan->admin->scans, scan);
                scan->admin->n_scans--;
        }
        scan_target_done(&scan->target);
        free(scan->body);
        free(scan);
        return NULL;
}

static const char *const host_key_check_names[] = {
        [HOSTKEY_OK] = "ok",
        [HOSTKEY_UNKNOWN] = "unknown",
        [HOSTKEY_MISMATCH] = "mismatch",
        [HOSTKEY_REVOKED] = "revoked",
};

static json_t *scan_result_to_json(const AdminEnv *env, const ScanTarget *t, const void *blob, size_t len,
                                   const char *type) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *line = NULL;
        char fingerprint[HOSTKEY_FINGERPRINT_MAX];
        unsigned bits = hostkey_bits(blob, len);
        /* what sshtund itself would make of this key */
        HostKeyCheck check = known_hosts_check(env->sessions->known_hosts, t->host, t->port, blob, len);

        line = known_hosts_line(t->host, t->port, blob, len);
        if (!line)
                return NULL;
        hostkey_fingerprint(blob, len, fingerprint, sizeof(fingerprint));
        o = json_object();
        if (!o)
                return NULL;
        if (admin_json_add(o, "target", admin_json_text(t->text)) < 0 ||
            admin_json_add(o, "node", admin_json_text(t->node)) < 0 ||
            admin_json_add(o, "host", admin_json_text(t->host)) < 0 ||
            admin_json_add(o, "port", json_integer(t->port)) < 0 ||
            admin_json_add(o, "key_type", admin_json_text(type)) < 0 ||
            admin_json_add(o, "bits", bits ? json_integer(bits) : json_null()) < 0 ||
            admin_json_add(o, "fingerprint", admin_json_text(fingerprint)) < 0 ||
            admin_json_add(o, "known_hosts_line", admin_json_text(line)) < 0 ||
            admin_json_add(o, "known_hosts", admin_json_text(env->ops->config(env->userdata)->ssh.known_hosts)) < 0 ||
            admin_json_add(o, "known_hosts_check", admin_json_text(host_key_check_names[check])) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The session ended: turn that into the reply. */
static void scan_settle(AdminScan *scan) {
        const AdminEnv *env = &scan->admin->env;
        const ScanTarget *t = &scan->target;
        _cleanup_free_ char *message = NULL;
        char type[64];
        size_t len = 0;
        const SessionOps *ops = scan->ops;
        const void *blob = ops->host_key_blob(scan->session, &len);

        if (ops->failure(scan->session) == SESSION_FAILURE_SCANNED && blob && len > 0 &&
            hostkey_type(blob, len, type, sizeof(type)) >= 0) {
                scan->status = 200;
                if (admin_json_to_body(scan_result_to_json(env, t, blob, len, type), &scan->body) < 0)
                        scan->body = NULL;
                log_info("Host key scan of %s (%s port %u): %s", t->text, t->host, (unsigned) t->port,
                         strna(ops->host_key(scan->session)));
                return;
        }

        scan->status = 502;
        if (ops->failure(scan->session) == SESSION_FAILURE_SCANNED)
                message = strdup("the server sent a host key sshtund cannot read");
        else
                message = strdup(strna(ops->last_error(scan->session)));
        log_info("Host key scan of %s (%s port %u) failed: %s", t->text, t->host, (unsigned) t->port,
                 strna(message));
        if (!message || admin_error_body(message, &scan->body) < 0)
                scan->body = NULL;
}

static void on_scan_changed(Session *s, void *userdata) {
        AdminScan *scan = userdata;

        if (scan->ops->state(s) != SESSION_FAILED || scan->status != 0)
                return;
        scan_settle(scan);
        (void) sd_event_source_set_enabled(scan->finish, SD_EVENT_ONESHOT);
}

static const SessionHooks scan_hooks = {
        .changed = on_scan_changed,
};

static int on_scan_finish(sd_event_source *es, void *userdata) {
        AdminScan *scan = userdata;
        AdminConn *c = scan->conn;
        _cleanup_free_ char *body = TAKE_PTR(scan->body);
        int status = scan->status, r;

        admin_scan_free(scan);
        if (!c)
                return 0;
        if (body)
                r = admin_conn_reply(c, status, body, JSON_TYPE, NULL);
        else
                r = admin_conn_reply_error(c, 500, "out of memory");
        /* the scan used up the connection's time: allow the usual for the rest */
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_TIMEOUT_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                admin_conn_free(c);
        return 0;
}

/* Start scanning for 'c'; takes the target. */
static int scan_start(AdminConn *c, ScanTarget *t) {
        Admin *a = c->admin;
        const AdminEnv *env = &a->env;
        const ConfigSsh *cfg = &env->ops->config(env->userdata)->ssh;
        _cleanup_free_ char *log_name = NULL;
        usec_t timeout = MIN(sec_to_usec(cfg->connect_timeout), ADMIN_SCAN_TIMEOUT_USEC) +
                         ADMIN_SCAN_GRACE_USEC;
        AdminScan *scan;
        int r;

        scan = calloc(1, sizeof(*scan));
        if (!scan)
                return -ENOMEM;
        scan->ops = env->session_ops;
        scan->target = *t;
        *t = (ScanTarget) {};
        if (asprintf(&log_name, "scan:%s", scan->target.node ?: scan->target.host) < 0) {
                log_name = NULL;
                admin_scan_free(scan);
                return -ENOMEM;
        }

        r = sd_event_add_defer(env->event, &scan->finish, on_scan_finish, scan);
        if (r >= 0)
                r = sd_event_source_set_enabled(scan->finish, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_source_set_description(scan->finish, "admin-scan-finish");
        if (r >= 0) {
                SessionParams p = {
                        .node_name = log_name,
                        .address = scan->target.host,
                        .port = scan->target.port,
                        .hooks = &scan_hooks,
                        .userdata = scan,
                        .scan_only = true,
                };
                r = env->session_ops->create(env->sessions, &p, &scan->session);
        }
        /* the session's connect_timeout ends the scan; this is the backstop */
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, timeout);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_warning_errno(r, "Cannot start a host key scan of %s: %m", scan->target.text);
                admin_scan_free(scan);
                return r;
        }

        scan->admin = a;
        LIST_PREPEND(scans, a->scans, scan);
        a->n_scans++;
        scan->conn = c;
        c->scan = scan;
        c->state = CONN_SCANNING;
        buffer_done(&c->in);

        log_debug("Scanning the host key of %s (%s port %u)", scan->target.text, scan->target.host,
                  (unsigned) scan->target.port);
        scan->ops->connect(scan->session);
        return 0;
}

int admin_conn_scan(AdminConn *c, const char *target) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        AdminReply reply = {};
        int r;

        r = scan_target_from_request(&c->admin->env, target, &t, &reply);
        if (r > 0) {
                r = admin_conn_reply(c, reply.status, reply.body, reply.content_type, NULL);
                free(reply.body);
                return r;
        }
        if (r < 0)
                return admin_conn_reply_error(c, 500, "out of memory");
        if (c->admin->n_scans >= ADMIN_SCANS_MAX)
                return admin_conn_reply_error(c, 503, "too many host key scans in progress; try again shortly");
        r = scan_start(c, &t);
        if (r < 0)
                return admin_conn_reply_error(c, 500, "cannot start the scan");
        return 0;
}


/* The backstop timer: the session never ended. */
int admin_conn_scan_timeout(AdminConn *c) {
        _cleanup_free_ char *message = NULL;
        AdminScan *scan = c->scan;
        int r;

        if (asprintf(&message, "no host key from %s port %u in time", scan->target.host,
                     (unsigned) scan->target.port) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        admin_scan_free(scan);
        r = admin_conn_reply_error(c, 504, message);
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_GRACE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r;
}
