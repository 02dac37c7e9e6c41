/* Host keys over the admin API: POST /v1/hostkeys/scan (the keys a node or
 * host presents, one key-only session per key type), POST
 * /v1/hostkeys/trust (a scan whose keys go to ssh.learned_hosts when their
 * fingerprints are the ones the operator names) and GET /v1/hostkeys (what
 * the files hold for each node). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "address.h"
#include "admin-internal.h"
#include "fingerprint.h"
#include "hostkey.h"
#include "known-hosts.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "session.h"
#include "trust.h"

/* Host key scans in flight (each up to SCAN_PROBES sessions); more get 503. */
#define ADMIN_SCANS_MAX 8
/* Fingerprints one trust request may name. */
#define TRUST_FINGERPRINTS_MAX 8
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

/* The 'index'th value of 'key' in the query of a request target,
 * percent-decoded: -ENOENT when absent, -EINVAL when malformed. */
static int query_param_nth(const char *target, const char *key, size_t index, char **ret) {
        const char *q = strchr(target, '?');
        size_t klen = strlen(key);

        if (!q)
                return -ENOENT;
        for (q++; *q && *q != '#';) {
                size_t n = strcspn(q, "&#");

                if (n > klen && strncmp(q, key, klen) == 0 && q[klen] == '=' && index-- == 0)
                        return admin_url_decode(q + klen + 1, n - klen - 1, ret);
                q += n;
                if (*q == '&')
                        q++;
        }
        return -ENOENT;
}

static int query_param(const char *target, const char *key, char **ret) {
        return query_param_nth(target, key, 0, ret);
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

/* 400 with 'message' (and ': detail'): returns 1, or -ENOMEM. */
static int reply_bad(AdminReply *reply, const char *message, const char *detail) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (detail && asprintf(&text, "%s: %s", message, detail) < 0)
                return -ENOMEM;
        r = admin_reply_error(reply, 400, text ?: message);
        return r < 0 ? r : 1;
}

/* The target of POST /v1/hostkeys/scan?target=...: 0 and *ret, or 1 when
 * the request is bad and *reply holds the 400. */
static int scan_target_from_request(const AdminEnv *env, const char *target, ScanTarget *ret,
                                    AdminReply *reply) {
        _cleanup_free_ char *text = NULL;
        const char *error = NULL;
        int r;

        r = query_param(target, "target", &text);
        if (r == -ENOENT || (r >= 0 && !*text))
                return reply_bad(reply, "missing target: POST " SCAN_PATH "?target=NODE|HOST[:PORT]", NULL);
        if (r == -EINVAL)
                return reply_bad(reply, "malformed target in the query", NULL);
        if (r < 0)
                return r;
        r = scan_target_parse(env, text, ret, &error);
        if (r != -EINVAL)
                return r;
        return reply_bad(reply, error, text);
}

typedef struct TrustRequest {
        ScanTarget target;
        char *fingerprints[TRUST_FINGERPRINTS_MAX];
        size_t n_fingerprints;
} TrustRequest;

static void trust_request_done(TrustRequest *t) {
        scan_target_done(&t->target);
        for (size_t i = 0; i < t->n_fingerprints; i++)
                free(t->fingerprints[i]);
        *t = (TrustRequest) {};
}

/* POST /v1/hostkeys/trust?node=NAME&fingerprint=SHA256:...[&fingerprint=...]:
 * 0 and *ret; 1 with a 400 or 404 in *reply. */
static int trust_request_parse(const AdminEnv *env, const char *target, TrustRequest *ret, AdminReply *reply) {
        _cleanup_(trust_request_done) TrustRequest t = {};
        _cleanup_free_ char *node = NULL;
        NodeInfo info;
        int r;

        r = query_param(target, "node", &node);
        if (r == -ENOENT || (r >= 0 && !*node))
                return reply_bad(reply, "missing node: POST " TRUST_PATH "?node=NODE&fingerprint=SHA256:...", NULL);
        if (r == -EINVAL)
                return reply_bad(reply, "malformed node in the query", NULL);
        if (r < 0)
                return r;
        for (;;) {
                char *fp = NULL;

                r = query_param_nth(target, "fingerprint", t.n_fingerprints, &fp);
                if (r == -ENOENT)
                        break;
                if (r == -EINVAL)
                        return reply_bad(reply, "malformed fingerprint in the query", NULL);
                if (r < 0)
                        return r;
                if (t.n_fingerprints == TRUST_FINGERPRINTS_MAX) {
                        free(fp);
                        return reply_bad(reply, "too many fingerprints (at most 8)", NULL);
                }
                t.fingerprints[t.n_fingerprints++] = fp;
                if (!fingerprint_is_valid(fp))
                        return reply_bad(reply,
                                         "malformed fingerprint (SHA256: and 43 base64 characters, as ssh-keygen -l "
                                         "prints it)", fp);
        }
        if (t.n_fingerprints == 0)
                return reply_bad(reply, "missing fingerprint: the node's key fingerprint, obtained out of band", NULL);

        /* only a configured node: its key goes in under its own address */
        if (env->ops->node(env->userdata, node, &info) < 0) {
                _cleanup_free_ char *message = NULL;
                if (asprintf(&message, "no node %s (hostkeys trust takes configured nodes only)", node) < 0)
                        return -ENOMEM;
                r = admin_reply_error(reply, 404, message);
                return r < 0 ? r : 1;
        }
        r = scan_target_parse(env, node, &t.target, &(const char *) { NULL });
        if (r < 0)
                return r;
        *ret = t;
        t = (TrustRequest) {};
        return 0;
}

/* Outside the socket server a scan has no connection to wait on: the
 * request is only checked. */
int admin_route_scan(const AdminEnv *env, const char *method, const char *target, bool trust, AdminReply *reply) {
        int r;

        if (!streq(method, "POST"))
                return admin_reply_not_allowed(reply, "POST");
        if (trust) {
                _cleanup_(trust_request_done) TrustRequest t = {};
                r = trust_request_parse(env, target, &t, reply);
        } else {
                _cleanup_(scan_target_done) ScanTarget t = {};
                r = scan_target_from_request(env, target, &t, reply);
        }
        if (r != 0)
                return r < 0 ? r : 0;
        return admin_reply_error(reply, 500, "host key scans are answered on the admin socket only");
}

/* The host keys the daemon trusts; NULL (every key unknown) for a listener
 * given no sessions, as the metrics listener and the fuzz harness are. */
static Trust *admin_trust(const AdminEnv *env) {
        return env->sessions ? env->sessions->trust : NULL;
}

/* ---- scans: one key-only session per key type ------------------------------ */

/* libssh2 1.10 verifies ed25519 and ECDSA host keys (RSA only with SHA-1,
 * which OpenSSH 8.8 and later refuse): one session asks for each. */
#define SCAN_PROBES 2
static const char *const scan_probe_types[SCAN_PROBES] = {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521",
};

typedef struct ScanKey {
        uint8_t *blob;
        size_t len;
        char type[HOSTKEY_TYPE_MAX];
        char fingerprint[HOSTKEY_FINGERPRINT_MAX];
} ScanKey;

/* The connection waits while the sessions run. A session reports from
 * inside its own processing, so its callback only records the outcome;
 * once all have, the 'finish' defer source replies and frees the scan
 * from the loop. A client that leaves (or the timeout) frees the scan at
 * once: that never happens inside a session's callback. */
struct AdminScan {
        Admin *admin;
        LIST_FIELDS(AdminScan, scans);
        const SessionOps *ops;
        AdminConn *conn;
        Session *probes[SCAN_PROBES];
        unsigned running;
        sd_event_source *finish;
        ScanTarget target;
        bool trust; /* POST /v1/hostkeys/trust */
        TrustRequest request;
        ScanKey keys[SCAN_PROBES];
        size_t n_keys;
        char *error; /* the first probe's failure, when no key came */
        int status;  /* 0 until the outcome is known */
        char *body;  /* the reply; NULL with a status: out of memory */
};

AdminScan *admin_scan_free(AdminScan *scan) {
        if (!scan)
                return NULL;
        if (scan->conn)
                scan->conn->scan = NULL;
        scan->finish = sd_event_source_disable_unref(scan->finish);
        for (size_t i = 0; i < SCAN_PROBES; i++)
                if (scan->probes[i])
                        scan->probes[i] = scan->ops->destroy(scan->probes[i]);
        if (scan->admin) {
                LIST_REMOVE(scans, scan->admin->scans, scan);
                scan->admin->n_scans--;
        }
        for (size_t i = 0; i < scan->n_keys; i++)
                free(scan->keys[i].blob);
        scan_target_done(&scan->target);
        trust_request_done(&scan->request);
        free(scan->error);
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

/* One key as the scan reply lists it: its line and what the files make of it. */
static json_t *scan_key_to_json(const AdminEnv *env, const ScanTarget *t, const ScanKey *k) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *line = NULL;
        unsigned bits = hostkey_bits(k->blob, k->len);
        const char *decided = NULL;
        unsigned decided_line = 0;
        HostKeyCheck check = trust_check(admin_trust(env), t->host, t->port, k->blob, k->len, &decided,
                                         &decided_line);

        line = known_hosts_line(t->host, t->port, k->blob, k->len);
        o = json_object();
        if (!line || !o)
                return NULL;
        if (admin_json_add(o, "key_type", admin_json_text(k->type)) < 0 ||
            admin_json_add(o, "bits", bits ? json_integer(bits) : json_null()) < 0 ||
            admin_json_add(o, "fingerprint", admin_json_text(k->fingerprint)) < 0 ||
            admin_json_add(o, "known_hosts_line", admin_json_text(line)) < 0 ||
            admin_json_add(o, "known_hosts_check", admin_json_text(host_key_check_names[check])) < 0 ||
            admin_json_add(o, "known_hosts_file", admin_json_text(decided)) < 0 ||
            admin_json_add(o, "known_hosts_file_line", decided_line ? json_integer(decided_line) : json_null()) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The target's fields, every file's path, and the keys. */
static json_t *scan_result_to_json(const AdminEnv *env, const AdminScan *scan) {
        _cleanup_(json_decrefp) json_t *o = json_object(), *keys = json_array();
        const ScanTarget *t = &scan->target;

        if (!o || !keys)
                return NULL;
        for (size_t i = 0; i < scan->n_keys; i++)
                if (json_array_append_new(keys, scan_key_to_json(env, t, scan->keys + i)) < 0)
                        return NULL;
        if (admin_json_add(o, "target", admin_json_text(t->text)) < 0 ||
            admin_json_add(o, "node", admin_json_text(t->node)) < 0 ||
            admin_json_add(o, "host", admin_json_text(t->host)) < 0 ||
            admin_json_add(o, "port", json_integer(t->port)) < 0 ||
            admin_json_add(o, "known_hosts", admin_json_text(trust_known_path(admin_trust(env)))) < 0 ||
            admin_json_add(o, "learned_hosts", admin_json_text(trust_learned_path(admin_trust(env)))) < 0)
                return NULL;
        /* the first key's fields at the top as well, as before there were several */
        if (scan->n_keys > 0) {
                json_t *first = json_array_get(keys, 0);
                const char *k;
                json_t *v;

                json_object_foreach(first, k, v)
                        if (json_object_set(o, k, v) < 0)
                                return NULL;
        }
        if (admin_json_add(o, "keys", TAKE_PTR(keys)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* A reply with a JSON error and more members ('extra' taken). */
static int scan_reply(AdminScan *scan, int status, const char *message, json_t *extra) {
        _cleanup_(json_decrefp) json_t *o = extra ?: json_object();

        scan->status = status;
        if (!o || admin_json_add(o, "error", admin_json_text(message)) < 0 ||
            admin_json_to_body(json_incref(o), &scan->body) < 0)
                scan->body = NULL;
        return 0;
}

/* The keys the node presented, for a trust reply. */
static json_t *presented_to_json(const AdminScan *scan) {
        _cleanup_(json_decrefp) json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < scan->n_keys; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:s}", "key_type", scan->keys[i].type, "fingerprint",
                                                       scan->keys[i].fingerprint)) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

static bool fingerprint_listed(const TrustRequest *r, const char *fp) {
        for (size_t i = 0; i < r->n_fingerprints; i++)
                if (streq(r->fingerprints[i], fp))
                        return true;
        return false;
}

/* The keys are in: record those whose fingerprints the operator named. */
static void trust_settle(AdminScan *scan) {
        const AdminEnv *env = &scan->admin->env;
        const ScanTarget *t = &scan->target;
        Trust *trust = admin_trust(env);
        _cleanup_free_ char *message = NULL, *error = NULL, *seen = NULL;
        _cleanup_(json_decrefp) json_t *trusted = json_array();
        KnownHostsEdit edits[SCAN_PROBES];
        const ScanKey *picked[SCAN_PROBES]; /* the keys of 'edits' */
        size_t n = 0;
        bool changed = false;
        int r;

        if (!trusted) {
                scan->status = 500;
                return;
        }
        for (size_t i = 0; i < scan->n_keys; i++) {
                const ScanKey *k = scan->keys + i;
                const char *path = NULL;
                unsigned line = 0;
                HostKeyCheck check;

                if (!fingerprint_listed(&scan->request, k->fingerprint))
                        continue;
                check = trust_check(trust, t->host, t->port, k->blob, k->len, &path, &line);
                /* what the operator's own file says is not overruled here */
                if (check == HOSTKEY_REVOKED ||
                    (check == HOSTKEY_MISMATCH && !streq_ptr(path, trust_learned_path(trust)))) {
                        if (asprintf(&message, "%s %s of node %s is %s in %s:%u: change that file first",
                                     k->type, k->fingerprint, t->node,
                                     check == HOSTKEY_REVOKED ? "revoked" : "not the key held", strna(path),
                                     line) < 0)
                                message = NULL;
                        log_warning("Host key trust of %s refused: %s", t->node, strna(message));
                        (void) scan_reply(scan, 409, message ?: "refused", json_pack("{s:o*}", "presented",
                                                                                    presented_to_json(scan)));
                        return;
                }
                picked[n] = k;
                edits[n++] = (KnownHostsEdit) { .host = t->host, .port = t->port, .blob = k->blob,
                                                .blob_len = k->len, .replace = true };
                if (json_array_append_new(trusted, json_pack("{s:s, s:s, s:b}", "key_type", k->type,
                                                             "fingerprint", k->fingerprint, "known",
                                                             check == HOSTKEY_OK)) < 0) {
                        scan->status = 500;
                        return;
                }
        }
        if (n == 0) {
                FILE *f;
                size_t size = 0;

                f = open_memstream(&seen, &size);
                if (f) {
                        for (size_t i = 0; i < scan->n_keys; i++)
                                fprintf(f, "%s%s %s", i ? ", " : "", scan->keys[i].type, scan->keys[i].fingerprint);
                        fclose(f);
                }
                if (asprintf(&message, "node %s presents %s; none has a fingerprint given: nothing trusted",
                             t->node, strna(seen)) < 0)
                        message = NULL;
                log_warning("Host key trust of %s refused: %s", t->node, strna(message));
                (void) scan_reply(scan, 409, message ?: "no key matches", json_pack("{s:o*}", "presented",
                                                                                   presented_to_json(scan)));
                return;
        }

        r = trust_record(trust, edits, n, &changed, &error);
        if (r < 0) {
                log_error("Host key trust of %s: cannot record: %s", t->node, strna(error));
                (void) scan_reply(scan, r == -ENOENT && !trust_learned_path(trust) ? 409 : 500,
                                  error ?: "cannot record the key", NULL);
                return;
        }
        for (size_t i = 0; i < n; i++)
                log_notice("%s: host key %s %s trusted (%s) in %s", t->node, picked[i]->type, picked[i]->fingerprint,
                           changed ? "recorded" : "already there", trust_learned_path(trust));
        /* the node need not wait for its next retry */
        env->ops->host_key_trusted(env->userdata, t->node);

        scan->status = 200;
        if (admin_json_to_body(json_pack("{s:s, s:s, s:i, s:s, s:b, s:O, s:o*}", "node", t->node, "host", t->host,
                                         "port", (int) t->port, "learned_hosts", trust_learned_path(trust),
                                         "changed", changed, "trusted", trusted, "presented",
                                         presented_to_json(scan)),
                               &scan->body) < 0)
                scan->body = NULL;
}

/* Every probe ended: turn that into the reply. */
static void scan_settle(AdminScan *scan) {
        const AdminEnv *env = &scan->admin->env;
        const ScanTarget *t = &scan->target;

        if (scan->n_keys == 0) {
                const char *why = scan->error ?: "no host key of a type sshtund can verify";

                log_info("Host key scan of %s (%s port %u) failed: %s", t->text, t->host, (unsigned) t->port, why);
                (void) scan_reply(scan, 502, why, NULL);
                return;
        }
        for (size_t i = 0; i < scan->n_keys; i++)
                log_info("Host key scan of %s (%s port %u): %s %s", t->text, t->host, (unsigned) t->port,
                         scan->keys[i].type, scan->keys[i].fingerprint);
        if (scan->trust) {
                trust_settle(scan);
                return;
        }
        scan->status = 200;
        if (admin_json_to_body(scan_result_to_json(env, scan), &scan->body) < 0)
                scan->body = NULL;
}

static void on_probe_changed(Session *s, void *userdata) {
        AdminScan *scan = userdata;
        const SessionOps *ops = scan->ops;
        const void *blob;
        size_t len = 0;

        if (ops->state(s) != SESSION_FAILED || scan->status != 0)
                return;
        blob = ops->host_key_blob(s, &len);
        if (ops->failure(s) == SESSION_FAILURE_SCANNED && blob && len > 0) {
                ScanKey *k = scan->keys + scan->n_keys;

                if (hostkey_type(blob, len, k->type, sizeof k->type) >= 0 && (k->blob = malloc(len))) {
                        memcpy(k->blob, blob, len);
                        k->len = len;
                        hostkey_fingerprint(blob, len, k->fingerprint, sizeof k->fingerprint);
                        /* one key per type, whatever the server does */
                        for (size_t i = 0; i < scan->n_keys; i++)
                                if (streq(scan->keys[i].type, k->type)) {
                                        free(k->blob);
                                        k->blob = NULL;
                                        break;
                                }
                        if (k->blob)
                                scan->n_keys++;
                } else if (!scan->error)
                        scan->error = strdup("the server sent a host key sshtund cannot read");
        } else if (!scan->error)
                scan->error = strdup(strna(ops->last_error(s)));
        if (--scan->running > 0)
                return;
        scan_settle(scan);
        (void) sd_event_source_set_enabled(scan->finish, SD_EVENT_ONESHOT);
}

static const SessionHooks scan_hooks = {
        .changed = on_probe_changed,
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

/* Start scanning for 'c'; takes scan (freed on failure). */
static int scan_start(AdminConn *c, AdminScan *scan) {
        Admin *a = c->admin;
        const AdminEnv *env = &a->env;
        const ConfigSsh *cfg = &env->ops->config(env->userdata)->ssh;
        _cleanup_free_ char *log_name = NULL;
        usec_t timeout = MIN(sec_to_usec(cfg->connect_timeout), ADMIN_SCAN_TIMEOUT_USEC) +
                         ADMIN_SCAN_GRACE_USEC;
        int r;

        scan->ops = env->session_ops;
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
        for (size_t i = 0; i < SCAN_PROBES && r >= 0; i++) {
                SessionParams p = {
                        .node_name = log_name,
                        .address = scan->target.host,
                        .port = scan->target.port,
                        .index = (unsigned) i,
                        .hooks = &scan_hooks,
                        .userdata = scan,
                        .scan_only = true,
                        .scan_key_types = scan_probe_types[i],
                };
                r = env->session_ops->create(env->sessions, &p, &scan->probes[i]);
        }
        /* the sessions' connect_timeout ends the scan; this is the backstop */
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

        log_debug("Scanning the host keys of %s (%s port %u)", scan->target.text, scan->target.host,
                  (unsigned) scan->target.port);
        scan->running = SCAN_PROBES;
        for (size_t i = 0; i < SCAN_PROBES; i++)
                scan->ops->connect(scan->probes[i]);
        return 0;
}

int admin_conn_scan(AdminConn *c, const char *target, bool trust) {
        AdminReply reply = {};
        AdminScan *scan;
        int r;

        scan = calloc(1, sizeof *scan);
        if (!scan)
                return admin_conn_reply_error(c, 500, "out of memory");
        scan->trust = trust;
        if (trust) {
                r = trust_request_parse(&c->admin->env, target, &scan->request, &reply);
                if (r == 0) {
                        scan->target = scan->request.target;
                        scan->request.target = (ScanTarget) {};
                }
        } else
                r = scan_target_from_request(&c->admin->env, target, &scan->target, &reply);
        if (r != 0) {
                admin_scan_free(scan);
                if (r < 0)
                        return admin_conn_reply_error(c, 500, "out of memory");
                r = admin_conn_reply(c, reply.status, reply.body, reply.content_type, NULL);
                free(reply.body);
                return r;
        }
        if (c->admin->n_scans >= ADMIN_SCANS_MAX) {
                admin_scan_free(scan);
                return admin_conn_reply_error(c, 503, "too many host key scans in progress; try again shortly");
        }
        r = scan_start(c, scan);
        if (r < 0)
                return admin_conn_reply_error(c, 500, "cannot start the scan");
        return 0;
}

/* The backstop timer: a session never ended. */
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

/* ---- GET /v1/hostkeys: what the files hold, node by node -------------------- */

static json_t *node_keys_to_json(const AdminEnv *env, const NodeInfo *info) {
        _cleanup_(json_decrefp) json_t *o = json_object(), *keys = json_array();
        _cleanup_free_ KnownHostsKey *k = NULL;
        size_t n = 0;
        int r;

        if (!o || !keys)
                return NULL;
        r = trust_keys(admin_trust(env), info->address, info->port, &k, &n);
        if (r == -ENOMEM)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                char fp[HOSTKEY_FINGERPRINT_MAX];
                json_t *e = json_object();

                if (json_array_append_new(keys, e) < 0 ||
                    admin_json_add(e, "key_type", admin_json_text(k[i].type)) < 0 ||
                    admin_json_add(e, "fingerprint", admin_json_text(hostkey_fingerprint(k[i].blob, k[i].blob_len, fp,
                                                                                         sizeof fp))) < 0 ||
                    admin_json_add(e, "file", admin_json_text(k[i].path)) < 0 ||
                    admin_json_add(e, "line", k[i].line ? json_integer(k[i].line) : json_null()) < 0 ||
                    admin_json_add(e, "revoked", json_boolean(k[i].revoked)) < 0)
                        return NULL;
        }
        if (admin_json_add(o, "node", admin_json_text(info->name)) < 0 ||
            admin_json_add(o, "address", admin_json_text(info->address)) < 0 ||
            admin_json_add(o, "port", json_integer(info->port)) < 0 ||
            admin_json_add(o, "state", admin_json_text(node_state_to_string(info->state))) < 0 ||
            admin_json_add(o, "host_key", admin_json_text(info->host_key)) < 0 ||
            admin_json_add(o, "keys_unreadable", json_boolean(r == -EIO)) < 0 ||
            admin_json_add(o, "keys", TAKE_PTR(keys)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_t *hostkeys_to_json(const AdminEnv *env, const NodeInfo *one) {
        _cleanup_(json_decrefp) json_t *o = json_object(), *list = json_array();
        _cleanup_free_ NodeInfo *infos = NULL;
        size_t n = 0;

        if (!o || !list)
                return NULL;
        if (one) {
                if (json_array_append_new(list, node_keys_to_json(env, one)) < 0)
                        return NULL;
        } else {
                if (env->ops->nodes(env->userdata, &infos, &n) < 0)
                        return NULL;
                for (size_t i = 0; i < n; i++)
                        if (json_array_append_new(list, node_keys_to_json(env, infos + i)) < 0)
                                return NULL;
        }
        if (admin_json_add(o, "known_hosts", admin_json_text(trust_known_path(admin_trust(env)))) < 0 ||
            admin_json_add(o, "learned_hosts", admin_json_text(trust_learned_path(admin_trust(env)))) < 0 ||
            admin_json_add(o, "nodes", TAKE_PTR(list)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

int admin_route_hostkeys(const AdminEnv *env, const char *method, const char *target, AdminReply *reply) {
        _cleanup_free_ char *node = NULL;
        NodeInfo info;
        int r;

        if (!streq(method, "GET"))
                return admin_reply_not_allowed(reply, "GET");
        r = query_param(target, "node", &node);
        if (r == -EINVAL)
                return admin_reply_error(reply, 400, "malformed node in the query");
        if (r < 0 && r != -ENOENT)
                return r;
        if (node && env->ops->node(env->userdata, node, &info) < 0) {
                _cleanup_free_ char *message = NULL;
                if (asprintf(&message, "no node %s", node) < 0)
                        return -ENOMEM;
                return admin_reply_error(reply, 404, message);
        }
        /* the operator may just have edited a file */
        trust_refresh(admin_trust(env));
        reply->status = 200;
        reply->content_type = JSON_TYPE;
        return admin_json_to_body(hostkeys_to_json(env, node ? &info : NULL), &reply->body);
}

/* ---- POST /v1/hostkeys/forget ------------------------------------------------ */

int admin_route_forget(const AdminEnv *env, const char *method, const char *target, AdminReply *reply) {
        _cleanup_free_ char *node = NULL, *error = NULL;
        _cleanup_(json_decrefp) json_t *keys = NULL;
        Trust *trust = admin_trust(env);
        bool changed = false;
        NodeInfo info;
        int r;

        if (!streq(method, "POST"))
                return admin_reply_not_allowed(reply, "POST");
        r = query_param(target, "node", &node);
        if (r == -ENOENT || (r >= 0 && !*node))
                return admin_reply_error(reply, 400, "missing node: POST " FORGET_PATH "?node=NODE");
        if (r == -EINVAL)
                return admin_reply_error(reply, 400, "malformed node in the query");
        if (r < 0)
                return r;
        if (env->ops->node(env->userdata, node, &info) < 0) {
                _cleanup_free_ char *message = NULL;
                if (asprintf(&message, "no node %s (hostkeys forget takes configured nodes only)", node) < 0)
                        return -ENOMEM;
                return admin_reply_error(reply, 404, message);
        }
        if (!trust)
                return admin_reply_error(reply, 500, "host keys are forgotten on the admin socket only");

        trust_refresh(trust); /* the operator may just have edited a file */
        r = trust_forget(trust, info.address, info.port, &changed, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error("Host keys of %s: cannot forget: %s", node, strna(error));
                return admin_reply_error(reply, r == -ENOENT && !trust_learned_path(trust) ? 409 : 500,
                                         error ?: "cannot change learned_hosts");
        }
        if (changed)
                log_notice("%s: host keys forgotten: removed from %s on request", node, trust_learned_path(trust));
        /* a session made with a forgotten key does not go on */
        r = env->ops->action(env->userdata, node, ADMIN_ACTION_RECONNECT, &info);
        if (r < 0 && r != -ENOENT)
                return r;

        /* what is left: known_hosts' lines, @revoked ones, lines naming other hosts too */
        keys = node_keys_to_json(env, &info);
        if (!keys)
                return -ENOMEM;
        if (json_object_set_new(keys, "changed", json_boolean(changed)) < 0 ||
            json_object_set_new(keys, "learned_hosts", admin_json_text(trust_learned_path(trust))) < 0)
                return -ENOMEM;
        reply->status = 200;
        reply->content_type = JSON_TYPE;
        return admin_json_to_body(TAKE_PTR(keys), &reply->body);
}
