/* The admin API: the listening Unix socket, its connections (one request
 * each, answered and closed) and the JSON views of the daemon's state. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "address.h"
#include "admin.h"
#include "buffer.h"
#include "hostkey.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "node.h"
#include "session.h"

#define ADMIN_BACKLOG 64
#define ADMIN_CONNECTIONS_MAX 64
/* A connection has this long for its whole exchange, request to close. */
#define ADMIN_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define ADMIN_TIMER_ACCURACY_USEC (100 * USEC_PER_MSEC)
/* After a 408 is queued: time left to deliver it. */
#define ADMIN_GRACE_USEC (1 * USEC_PER_SEC)
/* Request bodies and trailing junk we read and drop before closing. */
#define ADMIN_DISCARD_MAX (64 * 1024)
/* Largest reply body; sshtunctl refuses more than this. */
#define ADMIN_BODY_MAX (16 * 1024 * 1024)
#define ADMIN_HEAD_ROOM 1024
#define ADMIN_ACCEPT_BATCH 16
/* Out of file descriptors: stop accepting for a while instead of spinning. */
#define ADMIN_ACCEPT_PAUSE_USEC (250 * USEC_PER_MSEC)
#define ADMIN_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)

#define JSON_TYPE "application/json"

/* Host key scans in flight; more get 503. */
#define ADMIN_SCANS_MAX 8
/* A scan ends by ssh.connect_timeout, capped here, plus the grace below for
 * a wait on a handshake slot; sshtunctl waits longer than the sum. */
#define ADMIN_SCAN_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define ADMIN_SCAN_GRACE_USEC (5 * USEC_PER_SEC)
/* A DNS name's longest text form. */
#define ADMIN_SCAN_HOST_MAX 253
#define SCAN_PATH "/v1/hostkeys/scan"

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
        AdminConn *prev, *next;
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
        Daemon *daemon;
        char *path;
        int fd;
        bool bound;   /* we created 'path' */
        dev_t dev;    /* ... as this inode, so that we unlink only our own */
        ino_t ino;
        sd_event_source *io;
        sd_event_source *resume;
        AdminConn *conns;
        unsigned n_conns;
        AdminScan *scans;
        unsigned n_scans;
        RateLimit full_log;
        RateLimit accept_log;
        bool metrics_only; /* metrics_listen: /metrics, /healthz and /readyz, nothing else */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(Admin *, admin_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);

/* ---- JSON views ----------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (as jansson checks it: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_sequence_len(const unsigned char *s) {
        unsigned c = s[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                n = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                cp = c & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* A JSON string for text that may hold bytes from a peer (error messages):
 * invalid UTF-8 becomes '?' rather than failing the whole reply. NULL gives
 * JSON null. Returns NULL only when out of memory. */
static json_t *json_text(const char *s) {
        _cleanup_free_ char *copy = NULL;
        json_t *v;

        if (!s)
                return json_null();
        v = json_string(s);
        if (v)
                return v;
        copy = strdup(s);
        if (!copy)
                return NULL;
        for (unsigned char *p = (unsigned char *) copy; *p;) {
                size_t n = utf8_sequence_len(p);
                if (n == 0) {
                        *p++ = '?';
                        continue;
                }
                p += n;
        }
        return json_string(copy);
}

static json_t *json_uint(uint64_t v) {
        return json_integer(v > (uint64_t) LLONG_MAX ? LLONG_MAX : (json_int_t) v);
}

/* RFC 3339 in UTC with milliseconds ("2026-11-29T15:45:10.123Z"); null
 * for 0 (never) or a time RFC 3339 cannot write. */
static json_t *json_timestamp(usec_t t) {
        char buf[64];
        struct tm tm;
        time_t sec;
        size_t n;

        if (t == 0 || t == USEC_INFINITY || t / USEC_PER_SEC > (usec_t) INT64_MAX)
                return json_null();
        sec = (time_t) (t / USEC_PER_SEC);
        if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 > 9999)
                return json_null();
        n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0)
                return json_null();
        snprintf(buf + n, sizeof(buf) - n, ".%03uZ", (unsigned) (t % USEC_PER_SEC / USEC_PER_MSEC));
        return json_string(buf);
}

/* Adds key → v, taking the reference (v may be NULL after a failed
 * allocation: the failure is reported here). */
static int json_add(json_t *o, const char *key, json_t *v) {
        return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

/* The last probe: {ok, latency_ms, at, error}, or null before the first. */
static json_t *probe_to_json(const ProbeInfo *p) {
        _cleanup_(json_decrefp) json_t *o = NULL;

        if (!p->valid)
                return json_null();
        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "ok", json_boolean(p->ok)) < 0 ||
            json_add(o, "latency_ms", json_real((double) p->latency / USEC_PER_MSEC)) < 0 ||
            json_add(o, "at", json_timestamp(p->at)) < 0 ||
            json_add(o, "error", p->ok ? json_null() : json_text(p->error)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_t *node_to_json(const Node *n) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        NodeInfo info;

        node_get_info(n, &info);
        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "name", json_text(info.name)) < 0 ||
            json_add(o, "address", json_text(info.address)) < 0 ||
            json_add(o, "port", json_integer(info.port)) < 0 ||
            json_add(o, "state", json_text(node_state_to_string(info.state))) < 0 ||
            json_add(o, "draining", json_boolean(info.draining)) < 0 ||
            json_add(o, "route", json_text(info.route)) < 0 ||
            json_add(o, "sessions_up", json_integer(info.sessions_up)) < 0 ||
            json_add(o, "sessions_total", json_integer(info.sessions_total)) < 0 ||
            json_add(o, "streams", json_integer(info.streams)) < 0 ||
            json_add(o, "streams_total", json_uint(info.streams_total)) < 0 ||
            json_add(o, "reconnects", json_uint(info.reconnects)) < 0 ||
            json_add(o, "last_error", json_text(info.last_error)) < 0 ||
            json_add(o, "host_key", json_text(info.host_key)) < 0 ||
            json_add(o, "probe", probe_to_json(&info.probe)) < 0 ||
            json_add(o, "state_since", json_timestamp(info.state_since)) < 0 ||
            json_add(o, "migrated", json_boolean(info.migrated)) < 0 ||
            json_add(o, "falling_back", json_boolean(info.falling_back)) < 0 ||
            json_add(o, "fallbacks", json_uint(info.fallbacks)) < 0 ||
            json_add(o, "upstream_probe", probe_to_json(&info.upstream)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_t *status_to_json(Daemon *d) {
        _cleanup_(json_decrefp) json_t *o = NULL, *states = NULL;
        unsigned counts[_NODE_STATE_MAX] = {};
        size_t n = daemon_n_nodes(d);

        for (size_t i = 0; i < n; i++) {
                NodeInfo info;
                node_get_info(daemon_node(d, i), &info);
                if (info.state >= 0 && info.state < _NODE_STATE_MAX)
                        counts[info.state]++;
        }

        states = json_object();
        if (!states)
                return NULL;
        /* "up" always, first; then every state some node is in. */
        if (json_add(states, node_state_to_string(NODE_UP), json_integer(counts[NODE_UP])) < 0)
                return NULL;
        for (NodeState s = 0; s < _NODE_STATE_MAX; s++) {
                const char *name = node_state_to_string(s);
                if (s == NODE_UP || counts[s] == 0 || !name)
                        continue;
                if (json_add(states, name, json_integer(counts[s])) < 0)
                        return NULL;
        }

        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "version", json_string(PACKAGE_VERSION)) < 0 ||
            json_add(o, "nodes_total", json_uint(n)) < 0 ||
            json_add(o, "nodes_up", json_integer(counts[NODE_UP])) < 0 ||
            json_add(o, "streams", json_integer(daemon_streams(d))) < 0 ||
            json_add(o, "states", TAKE_PTR(states)) < 0 ||
            json_add(o, "handshakes_in_flight", json_integer(daemon_handshakes_in_flight(d))) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_t *nodes_to_json(Daemon *d) {
        _cleanup_(json_decrefp) json_t *o = NULL, *list = NULL;
        size_t n = daemon_n_nodes(d);

        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(list, node_to_json(daemon_node(d, i))) < 0)
                        return NULL;
        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "nodes", TAKE_PTR(list)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* ---- GET /v1/migration: the move to Konnectivity ------------------------------- */

static bool char_is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Text that a YAML plain scalar and a shell word both take as it is: a path
 * or URL of ordinary characters, starting with a letter, digit or '/' and
 * not ending in ':' (no ": ", no '#', no quotes, no spaces). */
static bool text_is_plain(const char *s) {
        if (!*s || !(s[0] == '/' || char_is_alnum(s[0])) || s[strlen(s) - 1] == ':')
                return false;
        for (const char *p = s; *p; p++)
                if (!char_is_alnum(*p) && !strchr("/._~+=,@%:-", *p))
                        return false;
        return true;
}

/* A YAML scalar: plain when it can be, else double-quoted with escapes. */
static void put_yaml_scalar(FILE *f, const char *s) {
        if (text_is_plain(s)) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p < 0x20 || *p == 0x7f)
                        fprintf(f, "\\x%02x", *p);
                else
                        fputc(*p, f);
        fputc('"', f);
}

/* A shell word: as it is when it can be, else single-quoted. */
static void put_shell_word(FILE *f, const char *s) {
        if (text_is_plain(s)) {
                fputs(s, f);
                return;
        }
        fputc('\'', f);
        for (const char *p = s; *p; p++)
                if (*p == '\'')
                        fputs("'\\''", f);
                else
                        fputc(*p, f);
        fputc('\'', f);
}

/* Close an open_memstream() stream: its buffer (set only by the close),
 * or NULL when a write or the close failed. */
static char *memstream_done(FILE *f, char **buf) {
        bool failed = ferror(f);

        if (fclose(f) != 0 || failed) {
                free(*buf);
                return NULL;
        }
        return *buf;
}

/* What kube-apiserver is given once every node is on Konnectivity: the
 * same HTTPConnect egress, now to konnectivity-server itself (its socket,
 * or its TCP frontend with the TLS material sshtund uses for it). */
static char *egress_selector_yaml(const ConfigKonnectivity *k) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fputs("apiVersion: apiserver.k8s.io/v1beta1\n"
              "kind: EgressSelectorConfiguration\n"
              "egressSelections:\n"
              "- name: cluster\n"
              "  connection:\n"
              "    proxyProtocol: HTTPConnect\n"
              "    transport:\n",
              f);
        if (strncmp(k->upstream, "unix:", 5) == 0) {
                fputs("      uds:\n        udsName: ", f);
                put_yaml_scalar(f, k->upstream + 5);
                fputc('\n', f);
        } else {
                _cleanup_free_ char *url = NULL;

                /* "tcp:HOST:PORT" as written, brackets of an IPv6 host included */
                if (asprintf(&url, "%s://%s", k->ca_file ? "https" : "http", k->upstream + 4) < 0) {
                        url = NULL;
                        fclose(f);
                        free(buf);
                        return NULL;
                }
                fputs("      tcp:\n        url: ", f);
                put_yaml_scalar(f, url);
                fputc('\n', f);
                if (k->ca_file) {
                        fputs("        tlsConfig:\n          caBundle: ", f);
                        put_yaml_scalar(f, k->ca_file);
                        fputc('\n', f);
                        if (k->cert_file && k->key_file) {
                                fputs("          clientCert: ", f);
                                put_yaml_scalar(f, k->cert_file);
                                fputs("\n          clientKey: ", f);
                                put_yaml_scalar(f, k->key_file);
                                fputc('\n', f);
                        }
                }
        }
        return memstream_done(f, &buf);
}

/* konnectivity-server's flags for that egress: HTTP CONNECT on the same
 * frontend, and each CONNECT routed to the agent of the node it names
 * (destHost), as the per-node checks have been using it. A UDS frontend
 * needs --server-port=0: konnectivity-server refuses a port with one. */
static char *konnectivity_server_flags(const ConfigKonnectivity *k) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fputs("--mode=http-connect ", f);
        if (strncmp(k->upstream, "unix:", 5) == 0) {
                fputs("--uds-name=", f);
                put_shell_word(f, k->upstream + 5);
                fputs(" --server-port=0", f);
        } else {
                _cleanup_free_ char *host = NULL;
                uint16_t port = 0;

                if (hostport_split(k->upstream + 4, &host, &port) == -ENOMEM) {
                        fclose(f);
                        free(buf);
                        return NULL;
                }
                fprintf(f, "--server-port=%u", port);
        }
        fputs(" --proxy-strategies=destHost", f);
        return memstream_done(f, &buf);
}

static json_t *final_switch_to_json(const ConfigKonnectivity *k) {
        _cleanup_free_ char *yaml = egress_selector_yaml(k), *flags = konnectivity_server_flags(k);

        if (!yaml || !flags)
                return NULL;
        return json_pack("{s:o, s:o}", "egress_selector_configuration", json_text(yaml),
                         "konnectivity_server_flags", json_text(flags));
}

/* Per node: where its streams go and whether the path through
 * konnectivity-server works (ready: a node on SSH may move). The final
 * switch shows once every node is migrated, routed upstream and passing. */
static json_t *migration_to_json(Daemon *d) {
        const ConfigKonnectivity *k = &daemon_config(d)->konnectivity;
        _cleanup_(json_decrefp) json_t *o = NULL, *list = NULL;
        size_t n = daemon_n_nodes(d), on = 0, ready = 0;
        bool all = n > 0 && k->upstream;

        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_decrefp) json_t *e = NULL;
                NodeInfo info;
                bool on_k, ok;

                node_get_info(daemon_node(d, i), &info);
                on_k = streq_ptr(info.route, "konnectivity");
                ok = info.upstream.valid && info.upstream.ok;
                if (on_k)
                        on++;
                else if (ok)
                        ready++;
                all = all && info.migrated && on_k && ok;

                e = json_object();
                if (!e || json_add(e, "name", json_text(info.name)) < 0 ||
                    json_add(e, "route", json_text(info.route)) < 0 ||
                    json_add(e, "migrated", json_boolean(info.migrated)) < 0 ||
                    json_add(e, "upstream_probe", probe_to_json(&info.upstream)) < 0 ||
                    json_add(e, "probe", probe_to_json(&info.probe)) < 0 ||
                    json_add(e, "ready", json_boolean(ok)) < 0 || json_array_append_new(list, TAKE_PTR(e)) < 0)
                        return NULL;
        }

        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "upstream", json_text(k->upstream)) < 0 ||
            json_add(o, "fallback_to_ssh", json_boolean(k->fallback_to_ssh)) < 0 ||
            json_add(o, "nodes_total", json_uint(n)) < 0 ||
            json_add(o, "nodes_on_konnectivity", json_uint(on)) < 0 ||
            json_add(o, "nodes_ready", json_uint(ready)) < 0 || json_add(o, "nodes", TAKE_PTR(list)) < 0 ||
            json_add(o, "final_switch", all ? final_switch_to_json(k) : json_null()) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Serialise and drop 'v' (NULL means an allocation failed on the way). */
static int json_to_body(json_t *v, char **ret) {
        char *s;

        if (!v)
                return -ENOMEM;
        /* 9 digits: latencies to the microsecond, without binary noise */
        s = json_dumps(v, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(9));
        json_decref(v);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int error_body(const char *message, char **ret) {
        json_t *o = json_object();

        if (o && json_add(o, "error", json_text(message)) < 0) {
                json_decref(o);
                o = NULL;
        }
        return json_to_body(o, ret);
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decode s[0..n). -EINVAL for a broken escape or an encoded NUL. */
static int url_decode(const char *s, size_t n, char **ret) {
        char *out = malloc(n + 1), *p = out;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '%') {
                        *p++ = s[i];
                        continue;
                }
                if (n - i < 3 || unhex(s[i + 1]) < 0 || unhex(s[i + 2]) < 0) {
                        free(out);
                        return -EINVAL;
                }
                char c = (char) (unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                if (c == 0) {
                        free(out);
                        return -EINVAL;
                }
                *p++ = c;
                i += 2;
        }
        *p = 0;
        *ret = out;
        return 0;
}

typedef struct AdminReply {
        int status;
        char *body;
        const char *content_type;
        const char *allow;
} AdminReply;

static int reply_json(AdminReply *r, int status, json_t *v) {
        r->status = status;
        r->content_type = JSON_TYPE;
        return json_to_body(v, &r->body);
}

static int reply_error(AdminReply *r, int status, const char *message) {
        r->status = status;
        r->content_type = JSON_TYPE;
        return error_body(message, &r->body);
}

static int reply_not_allowed(AdminReply *r, const char *allow) {
        r->allow = allow;
        return reply_error(r, 405, "method not allowed");
}

/* The path of a request target: origin-form ("/v1/status?x") or
 * absolute-form ("http://host/v1/status"), without the query. */
static void target_path(const char *target, const char **ret_path, size_t *ret_len) {
        const char *p = target;

        if (strncasecmp(p, "http://", 7) == 0) {
                p = strchr(p + 7, '/');
                if (!p)
                        p = "/";
        }
        *ret_path = p;
        *ret_len = strcspn(p, "?#");
}

static bool path_is(const char *path, size_t len, const char *want) {
        return len == strlen(want) && memcmp(path, want, len) == 0;
}

static int reply_no_such_node(AdminReply *reply, const char *name) {
        _cleanup_free_ char *message = NULL;

        if (asprintf(&message, "no such node: %s", name) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        return reply_error(reply, 404, message);
}

/* ---- operator actions: POST /v1/nodes/NAME/{reconnect,drain,undrain} ------ */

static const struct {
        const char *name;
        void (*run)(Node *n);
} node_actions[] = {
        { "reconnect", node_reconnect },
        { "drain", node_drain },
        { "undrain", node_undrain },
};

/* "NAME/ACTION" after "/v1/nodes/": the action's index, and the raw name. */
static bool node_action_match(const char *rest, size_t len, size_t *ret_action, size_t *ret_name_len) {
        const char *slash = memchr(rest, '/', len);

        if (!slash || slash == rest)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(node_actions); i++)
                if (path_is(slash + 1, len - (size_t) (slash + 1 - rest), node_actions[i].name)) {
                        *ret_action = i;
                        *ret_name_len = (size_t) (slash - rest);
                        return true;
                }
        return false;
}

static int route_node_action(Daemon *d, const char *method, const char *raw_name, size_t raw_len,
                             size_t action, AdminReply *reply) {
        _cleanup_free_ char *name = NULL;
        Node *n;
        int r;

        if (!streq(method, "POST"))
                return reply_not_allowed(reply, "POST");
        r = url_decode(raw_name, raw_len, &name);
        if (r == -EINVAL)
                return reply_error(reply, 400, "malformed node name in path");
        if (r < 0)
                return r;
        n = daemon_find_node(d, name);
        if (!n)
                return reply_no_such_node(reply, name);

        if (!streq(node_actions[action].name, "reconnect")) /* node.c logs its reconnects */
                log_node(LOG_NOTICE, node_name(n), "%s requested over the admin API (%u streams open)",
                         node_actions[action].name, node_streams(n));
        node_actions[action].run(n);
        return reply_json(reply, 200, node_to_json(n));
}

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
                        return url_decode(q + klen + 1, n - klen - 1, ret);
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
static int scan_target_parse(Daemon *d, const char *text, ScanTarget *ret, const char **ret_error) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        const char *colon = strchr(text, ':');
        Node *n = daemon_find_node(d, text);
        IpAddr ip;
        int r;

        t.text = strdup(text);
        if (!t.text)
                return -ENOMEM;
        if (n) {
                const ConfigNode *cn = node_config(n);
                t.node = strdup(node_name(n));
                t.host = strdup(cn->address);
                t.port = cn->port;
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
                        t.port = daemon_config(d)->ssh.port;
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
                t.port = daemon_config(d)->ssh.port;
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
static int scan_target_from_request(Daemon *d, const char *target, ScanTarget *ret, AdminReply *reply) {
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
                r = reply_error(reply, 400, error);
                return r < 0 ? r : 1;
        }

        r = scan_target_parse(d, text, ret, &error);
        if (r != -EINVAL)
                return r;
        if (asprintf(&message, "%s: %s", error, text) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        r = reply_error(reply, 400, message);
        return r < 0 ? r : 1;
}

/* Outside the socket server a scan has no connection to wait on: the
 * request is only checked. */
static int route_scan(Daemon *d, const char *method, const char *target, AdminReply *reply) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        int r;

        if (!streq(method, "POST"))
                return reply_not_allowed(reply, "POST");
        r = scan_target_from_request(d, target, &t, reply);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_error(reply, 500, "host key scans are answered on the admin socket only");
}

/* ---- health and metrics: the routes metrics_listen serves too ---------------- */

#define TEXT_TYPE "text/plain; charset=utf-8"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

static int reply_text(AdminReply *r, int status, const char *content_type, char *body) {
        if (!body)
                return -ENOMEM;
        r->status = status;
        r->content_type = content_type;
        r->body = body;
        return 0;
}

static int admin_metrics(Daemon *d, AdminReply *reply) {
        return reply_text(reply, 200, METRICS_TYPE, metrics_render(d, NULL));
}

/* Ready when at least admin.ready_min_fraction of the nodes are up or
 * degraded (degraded nodes still carry streams). With no nodes there is
 * nothing to wait for: ready. */
static int admin_readyz(Daemon *d, AdminReply *reply) {
        double fraction = daemon_config(d)->admin.ready_min_fraction;
        size_t n = daemon_n_nodes(d), ok = 0;
        char *body = NULL;
        bool ready;

        for (size_t i = 0; i < n; i++) {
                NodeInfo info;
                node_get_info(daemon_node(d, i), &info);
                if (info.state == NODE_UP || info.state == NODE_DEGRADED)
                        ok++;
        }
        /* the slack keeps 0.28 of 25 nodes at 7, not at 7.000000000000001 */
        ready = n == 0 || (double) ok + 1e-9 >= fraction * (double) n;
        if (n == 0) {
                body = strdup("ready: no nodes configured\n");
        } else if (asprintf(&body, "%s: %zu/%zu nodes up or degraded, need %g%%\n", ready ? "ready" : "not ready",
                            ok, n, fraction * 100) < 0)
                body = NULL;
        return reply_text(reply, ready ? 200 : 503, TEXT_TYPE, body);
}

/* 1 if 'path' is one of these routes (the reply is set), 0 if not, or
 * -ENOMEM. */
static int route_public(Daemon *d, const char *method, const char *path, size_t len, AdminReply *reply) {
        int r;

        if (path_is(path, len, "/healthz"))
                r = streq(method, "GET") ? reply_text(reply, 200, TEXT_TYPE, strdup("ok\n"))
                                         : reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/readyz"))
                r = streq(method, "GET") ? admin_readyz(d, reply) : reply_not_allowed(reply, "GET");
        else if (path_is(path, len, "/metrics"))
                r = streq(method, "GET") ? admin_metrics(d, reply) : reply_not_allowed(reply, "GET");
        else
                return 0;
        return r < 0 ? r : 1;
}

/* What metrics_listen answers: the routes above, 404 for the rest. */
static int admin_route_public_only(Daemon *d, const char *method, const char *target, AdminReply *reply) {
        const char *path;
        size_t len;
        int r;

        target_path(target, &path, &len);
        r = route_public(d, method, path, len, reply);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_error(reply, 404, "not found");
}

/* ---- POST /v1/reload ---------------------------------------------------------- */

static int admin_reload(Daemon *d, AdminReply *reply) {
        _cleanup_free_ char *error = NULL;
        json_t *v;
        int r;

        r = daemon_reload(d, false, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                /* the request was fine, the file is not: the daemon could not do it */
                return reply_error(reply, 500, error ? error : strerror(-r));
        v = json_pack("{s:b, s:I}", "reloaded", 1, "nodes_total", (json_int_t) daemon_n_nodes(d));
        if (!v)
                return -ENOMEM;
        return reply_json(reply, 200, v);
}

/* ---- the whole API ---------------------------------------------------------- */

static int admin_route(Daemon *d, const char *method, const char *target, AdminReply *reply) {
        static const char nodes_prefix[] = "/v1/nodes/";
        bool get = streq(method, "GET");
        const char *path;
        size_t len;
        int handled;

        target_path(target, &path, &len);

        handled = route_public(d, method, path, len, reply);
        if (handled != 0)
                return handled < 0 ? handled : 0;
        if (path_is(path, len, "/v1/status")) {
                if (!get)
                        return reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, status_to_json(d));
        }
        if (path_is(path, len, "/v1/nodes")) {
                if (!get)
                        return reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, nodes_to_json(d));
        }
        if (path_is(path, len, "/v1/migration")) {
                if (!get)
                        return reply_not_allowed(reply, "GET");
                return reply_json(reply, 200, migration_to_json(d));
        }
        if (path_is(path, len, SCAN_PATH))
                return route_scan(d, method, target, reply);
        if (path_is(path, len, "/v1/reload")) {
                if (!streq(method, "POST"))
                        return reply_not_allowed(reply, "POST");
                return admin_reload(d, reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0) {
                size_t action, name_len;

                if (node_action_match(path + strlen(nodes_prefix), len - strlen(nodes_prefix), &action,
                                      &name_len))
                        return route_node_action(d, method, path + strlen(nodes_prefix), name_len, action,
                                                 reply);
        }
        if (len > strlen(nodes_prefix) && strncmp(path, nodes_prefix, strlen(nodes_prefix)) == 0 &&
            !memchr(path + strlen(nodes_prefix), '/', len - strlen(nodes_prefix))) {
                _cleanup_free_ char *name = NULL;
                const char *raw = path + strlen(nodes_prefix);
                Node *n;
                int r;

                if (!get)
                        return reply_not_allowed(reply, "GET");
                r = url_decode(raw, len - strlen(nodes_prefix), &name);
                if (r == -EINVAL)
                        return reply_error(reply, 400, "malformed node name in path");
                if (r < 0)
                        return r;
                n = daemon_find_node(d, name);
                if (n)
                        return reply_json(reply, 200, node_to_json(n));
                return reply_no_such_node(reply, name);
        }
        return reply_error(reply, 404, "not found");
}

int admin_handle(Daemon *d, const char *method, const char *target, int *ret_status, char **ret_body,
                 const char **ret_content_type, const char **ret_allow) {
        AdminReply reply = {};
        int r;

        assert(d);
        assert(method);
        assert(target);

        r = admin_route(d, method, target, &reply);
        if (r < 0) {
                free(reply.body);
                return r;
        }
        *ret_status = reply.status;
        *ret_body = reply.body;
        *ret_content_type = reply.content_type;
        if (ret_allow)
                *ret_allow = reply.allow;
        return 0;
}

/* ---- connections ---------------------------------------------------------- */

static AdminScan *scan_free(AdminScan *scan);

static AdminConn *conn_free(AdminConn *c) {
        if (!c)
                return NULL;
        scan_free(c->scan);
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->fd = safe_close(c->fd);
        buffer_done(&c->in);
        buffer_done(&c->out);
        if (c->admin) {
                if (c->prev)
                        c->prev->next = c->next;
                else
                        c->admin->conns = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                c->admin->n_conns--;
        }
        free(c);
        return NULL;
}

/* Write what is queued. 0: more to write later (or lingering now), < 0: error. */
static int conn_flush(AdminConn *c) {
        while (!buffer_empty(&c->out)) {
                ssize_t n = buffer_write_fd(&c->out, c->fd);
                if (n == -EAGAIN)
                        return sd_event_source_set_io_events(c->io, EPOLLOUT);
                if (n == -EINTR)
                        continue;
                if (n < 0)
                        return (int) n;
        }
        buffer_done(&c->out);

        /* Closing while the client's bytes sit unread in our queue would end
         * its read with ECONNRESET instead of EOF: shut our side, then drop
         * what still comes until the client closes. */
        if (shutdown(c->fd, SHUT_WR) < 0)
                return -errno;
        c->state = CONN_LINGERING;
        return sd_event_source_set_io_events(c->io, EPOLLIN);
}

static int conn_reply(AdminConn *c, int status, const char *body, const char *content_type,
                      const char *allow) {
        _cleanup_free_ char *head = NULL;
        char extra[128];
        size_t len;
        ssize_t n;

        snprintf(extra, sizeof(extra), "Connection: close\r\nCache-Control: no-store\r\n%s%s%s",
                 allow ? "Allow: " : "", allow ?: "", allow ? "\r\n" : "");
        head = http_response_format(status, http_status_reason(status), extra, content_type, body,
                                    body ? strlen(body) : 0, &len);
        if (!head)
                return -ENOMEM;

        buffer_done(&c->in);
        c->state = CONN_WRITING;
        n = buffer_append(&c->out, head, len);
        if (n < 0)
                return (int) n;
        if ((size_t) n < len)
                return -EMSGSIZE;
        return conn_flush(c);
}

static int conn_reply_error(AdminConn *c, int status, const char *message) {
        _cleanup_free_ char *body = NULL;

        if (error_body(message, &body) < 0)
                return -ENOMEM;
        return conn_reply(c, status, body, JSON_TYPE, NULL);
}

/* ---- host key scans: a scan_only session per request ---------------------- */

/* The connection waits while the session runs. The session reports from
 * inside its own processing, so its callback only records the outcome and
 * the 'finish' defer source replies and frees it from the loop. A client
 * that leaves (or the timeout) frees the scan at once: that never happens
 * inside the session's callback. */
struct AdminScan {
        Admin *admin;
        AdminScan *prev, *next;
        AdminConn *conn;
        Session *session;
        sd_event_source *finish;
        ScanTarget target;
        int status; /* 0 until the outcome is known */
        char *body; /* the reply; NULL with a status: out of memory */
};

static AdminScan *scan_free(AdminScan *scan) {
        if (!scan)
                return NULL;
        if (scan->conn)
                scan->conn->scan = NULL;
        scan->finish = sd_event_source_disable_unref(scan->finish);
        scan->session = session_free(scan->session);
        if (scan->admin) {
                if (scan->prev)
                        scan->prev->next = scan->next;
                else
                        scan->admin->scans = scan->next;
                if (scan->next)
                        scan->next->prev = scan->prev;
                scan->admin->n_scans--;
        }
        scan_target_done(&scan->target);
        free(scan->body);
        free(scan);
        return NULL;
}

/* One SSH wire-format string at p: its bytes and length, and where the next
 * field starts (NULL when it runs past 'end'). */
static const uint8_t *blob_string(const uint8_t *p, const uint8_t *end, const uint8_t **ret,
                                  uint32_t *ret_len) {
        uint32_t n;

        if (end - p < 4)
                return NULL;
        n = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        p += 4;
        if ((size_t) (end - p) < n)
                return NULL;
        *ret = p;
        *ret_len = n;
        return p + n;
}

/* Bits of an mpint's magnitude. */
static unsigned mpint_bits(const uint8_t *p, uint32_t n) {
        while (n > 0 && *p == 0) {
                p++;
                n--;
        }
        if (n == 0)
                return 0;
        return (n - 1) * 8 + (unsigned) (32 - __builtin_clz(*p));
}

/* The key size `ssh-keygen -l` prints, or 0 when unknown. */
static unsigned host_key_bits(const void *blob, size_t len, const char *type) {
        const uint8_t *p = blob, *end = p + len, *s;
        uint32_t n;

        if (streq(type, "ssh-ed25519") || streq(type, "sk-ssh-ed25519@openssh.com"))
                return 256;
        if (streq(type, "ssh-ed448"))
                return 456;
        if (strncmp(type, "ecdsa-sha2-nistp", 16) == 0 || strncmp(type, "sk-ecdsa-sha2-nistp", 19) == 0) {
                char *rest;
                unsigned long bits = strtoul(strstr(type, "nistp") + 5, &rest, 10);
                return (*rest == 0 || *rest == '@') && (bits == 256 || bits == 384 || bits == 521)
                               ? (unsigned) bits
                               : 0;
        }
        p = blob_string(p, end, &s, &n); /* the type */
        if (p && streq(type, "ssh-rsa")) {
                p = blob_string(p, end, &s, &n); /* e */
                if (p && blob_string(p, end, &s, &n))
                        return mpint_bits(s, n);
        }
        if (p && streq(type, "ssh-dss") && blob_string(p, end, &s, &n))
                return mpint_bits(s, n);
        return 0;
}

static const char *const host_key_check_names[] = {
        [HOSTKEY_OK] = "ok",
        [HOSTKEY_UNKNOWN] = "unknown",
        [HOSTKEY_MISMATCH] = "mismatch",
        [HOSTKEY_REVOKED] = "revoked",
};

static json_t *scan_result_to_json(Daemon *d, const ScanTarget *t, const void *blob, size_t len,
                                   const char *type) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        _cleanup_free_ char *line = NULL;
        char fingerprint[HOSTKEY_FINGERPRINT_MAX];
        unsigned bits = host_key_bits(blob, len, type);
        /* what sshtund itself would make of this key */
        HostKeyCheck check = known_hosts_check(daemon_known_hosts(d), t->host, t->port, blob, len);

        line = hostkey_known_hosts_line(t->host, t->port, blob, len);
        if (!line)
                return NULL;
        hostkey_fingerprint(blob, len, fingerprint, sizeof(fingerprint));
        o = json_object();
        if (!o)
                return NULL;
        if (json_add(o, "target", json_text(t->text)) < 0 ||
            json_add(o, "node", json_text(t->node)) < 0 ||
            json_add(o, "host", json_text(t->host)) < 0 ||
            json_add(o, "port", json_integer(t->port)) < 0 ||
            json_add(o, "key_type", json_text(type)) < 0 ||
            json_add(o, "bits", bits ? json_integer(bits) : json_null()) < 0 ||
            json_add(o, "fingerprint", json_text(fingerprint)) < 0 ||
            json_add(o, "known_hosts_line", json_text(line)) < 0 ||
            json_add(o, "known_hosts", json_text(daemon_config(d)->ssh.known_hosts)) < 0 ||
            json_add(o, "known_hosts_check", json_text(host_key_check_names[check])) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The session ended: turn that into the reply. */
static void scan_settle(AdminScan *scan) {
        Daemon *d = scan->admin->daemon;
        const ScanTarget *t = &scan->target;
        _cleanup_free_ char *message = NULL;
        char type[64];
        size_t len = 0;
        const void *blob = session_host_key_blob(scan->session, &len);

        if (session_failure(scan->session) == SESSION_FAILURE_SCANNED && blob && len > 0 &&
            hostkey_type(blob, len, type, sizeof(type)) >= 0) {
                scan->status = 200;
                if (json_to_body(scan_result_to_json(d, t, blob, len, type), &scan->body) < 0)
                        scan->body = NULL;
                log_info("Host key scan of %s (%s port %u): %s", t->text, t->host, (unsigned) t->port,
                         strna(session_host_key(scan->session)));
                return;
        }

        scan->status = 502;
        if (session_failure(scan->session) == SESSION_FAILURE_SCANNED)
                message = strdup("the server sent a host key sshtund cannot read");
        else
                message = strdup(strna(session_last_error(scan->session)));
        log_info("Host key scan of %s (%s port %u) failed: %s", t->text, t->host, (unsigned) t->port,
                 strna(message));
        if (!message || error_body(message, &scan->body) < 0)
                scan->body = NULL;
}

static void on_scan_changed(Session *s, void *userdata) {
        AdminScan *scan = userdata;

        if (session_state(s) != SESSION_FAILED || scan->status != 0)
                return;
        scan_settle(scan);
        (void) sd_event_source_set_enabled(scan->finish, SD_EVENT_ONESHOT);
}

static int on_scan_finish(sd_event_source *es, void *userdata) {
        AdminScan *scan = userdata;
        AdminConn *c = scan->conn;
        _cleanup_free_ char *body = TAKE_PTR(scan->body);
        int status = scan->status, r;

        scan_free(scan);
        if (!c)
                return 0;
        if (body)
                r = conn_reply(c, status, body, JSON_TYPE, NULL);
        else
                r = conn_reply_error(c, 500, "out of memory");
        /* the scan used up the connection's time: allow the usual for the rest */
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_TIMEOUT_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                conn_free(c);
        return 0;
}

/* Start scanning for 'c'; takes the target. */
static int scan_start(AdminConn *c, ScanTarget *t) {
        Admin *a = c->admin;
        Daemon *d = a->daemon;
        const ConfigSsh *cfg = &daemon_config(d)->ssh;
        _cleanup_free_ char *log_name = NULL;
        usec_t timeout = MIN(sec_to_usec(cfg->connect_timeout), ADMIN_SCAN_TIMEOUT_USEC) +
                         ADMIN_SCAN_GRACE_USEC;
        AdminScan *scan;
        int r;

        scan = calloc(1, sizeof(*scan));
        if (!scan)
                return -ENOMEM;
        scan->target = *t;
        *t = (ScanTarget) {};
        if (asprintf(&log_name, "scan:%s", scan->target.node ?: scan->target.host) < 0) {
                log_name = NULL;
                scan_free(scan);
                return -ENOMEM;
        }

        r = sd_event_add_defer(daemon_event(d), &scan->finish, on_scan_finish, scan);
        if (r >= 0)
                r = sd_event_source_set_enabled(scan->finish, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_source_set_description(scan->finish, "admin-scan-finish");
        if (r >= 0) {
                SessionParams p = {
                        .node_name = log_name,
                        .address = scan->target.host,
                        .port = scan->target.port,
                        .changed = on_scan_changed,
                        .userdata = scan,
                        .scan_only = true,
                };
                r = session_new(d, NULL, &p, &scan->session);
        }
        /* the session's connect_timeout ends the scan; this is the backstop */
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, timeout);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_warning_errno(r, "Cannot start a host key scan of %s: %m", scan->target.text);
                scan_free(scan);
                return r;
        }

        scan->admin = a;
        scan->next = a->scans;
        if (a->scans)
                a->scans->prev = scan;
        a->scans = scan;
        a->n_scans++;
        scan->conn = c;
        c->scan = scan;
        c->state = CONN_SCANNING;
        buffer_done(&c->in);

        log_debug("Scanning the host key of %s (%s port %u)", scan->target.text, scan->target.host,
                  (unsigned) scan->target.port);
        session_connect(scan->session);
        return 0;
}

static int conn_scan(AdminConn *c, const char *target) {
        _cleanup_(scan_target_done) ScanTarget t = {};
        AdminReply reply = {};
        int r;

        r = scan_target_from_request(c->admin->daemon, target, &t, &reply);
        if (r > 0) {
                r = conn_reply(c, reply.status, reply.body, reply.content_type, NULL);
                free(reply.body);
                return r;
        }
        if (r < 0)
                return conn_reply_error(c, 500, "out of memory");
        if (c->admin->n_scans >= ADMIN_SCANS_MAX)
                return conn_reply_error(c, 503, "too many host key scans in progress; try again shortly");
        r = scan_start(c, &t);
        if (r < 0)
                return conn_reply_error(c, 500, "cannot start the scan");
        return 0;
}

/* While a scan runs the client only waits. One that closes the connection
 * is gone (HUP); one that merely shut its sending side still wants the
 * answer. 0: keep waiting, < 0: close. */
static int conn_watch(AdminConn *c, uint32_t revents) {
        char scratch[4096];
        ssize_t n = read(c->fd, scratch, sizeof(scratch));

        if (n > 0) {
                c->discarded += (size_t) n;
                return c->discarded > ADMIN_DISCARD_MAX ? -EMSGSIZE : 0;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return revents & (EPOLLHUP | EPOLLERR) ? -ECONNRESET : 0;
        if (n < 0)
                return -errno;
        if (revents & (EPOLLHUP | EPOLLERR))
                return -ECONNRESET;
        return sd_event_source_set_io_events(c->io, 0); /* HUP and ERR still wake us */
}

/* The backstop timer: the session never ended. */
static int conn_scan_timeout(AdminConn *c) {
        _cleanup_free_ char *message = NULL;
        AdminScan *scan = c->scan;
        int r;

        if (asprintf(&message, "no host key from %s port %u in time", scan->target.host,
                     (unsigned) scan->target.port) < 0) {
                message = NULL;
                return -ENOMEM;
        }
        scan_free(scan);
        r = conn_reply_error(c, 504, message);
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_GRACE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r;
}

static bool is_scan_request(const HttpRequest *req) {
        const char *path;
        size_t len;

        target_path(http_request_target(req), &path, &len);
        return streq(http_request_method(req), "POST") && path_is(path, len, SCAN_PATH);
}

/* metrics_listen: the public routes only, whatever else the API has. */
static int conn_handle_public(AdminConn *c, const HttpRequest *req) {
        AdminReply reply = {};
        _cleanup_free_ char *body = NULL;
        int r;

        r = admin_route_public_only(c->admin->daemon, http_request_method(req), http_request_target(req),
                                    &reply);
        body = reply.body;
        if (r < 0)
                return conn_reply_error(c, 500, "out of memory");
        if (body && strlen(body) > ADMIN_BODY_MAX)
                return conn_reply_error(c, 500, "reply too large");
        return conn_reply(c, reply.status, body, reply.content_type, reply.allow);
}

static int conn_handle(AdminConn *c, const HttpRequest *req) {
        _cleanup_free_ char *body = NULL;
        const char *content_type = NULL, *allow = NULL;
        int status, r;

        if (c->admin->metrics_only)
                return conn_handle_public(c, req);

        if (is_scan_request(req))
                return conn_scan(c, http_request_target(req));
        r = admin_handle(c->admin->daemon, http_request_method(req), http_request_target(req), &status,
                         &body, &content_type, &allow);
        if (r < 0)
                return conn_reply_error(c, 500, "out of memory");
        if (body && strlen(body) > ADMIN_BODY_MAX)
                return conn_reply_error(c, 500, "reply too large");
        return conn_reply(c, status, body, content_type, allow);
}

static int conn_read_head(AdminConn *c) {
        _cleanup_(http_request_freep) HttpRequest *req = NULL;
        ssize_t n;
        int r;

        n = buffer_read_fd(&c->in, c->fd);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n == -ENOBUFS)
                return conn_reply_error(c, 431, "request head too large");
        if (n < 0)
                return (int) n;
        if (n == 0)
                return -ECONNRESET; /* gone before a whole request: nobody to answer */

        r = http_request_parse((const char *) buffer_head(&c->in), buffer_len(&c->in), HTTP_HEAD_MAX,
                               &req);
        if (r == 0)
                return 0;
        if (r == -EMSGSIZE)
                return conn_reply_error(c, 431, "request head too large");
        if (r == -EBADMSG)
                return conn_reply_error(c, 400, "malformed request");
        if (r < 0)
                return r;
        return conn_handle(c, req);
}

/* 0: keep lingering; < 0: done, close. */
static int conn_discard(AdminConn *c) {
        char scratch[4096];
        ssize_t n = read(c->fd, scratch, sizeof(scratch));

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        c->discarded += (size_t) n;
        return c->discarded > ADMIN_DISCARD_MAX ? -EMSGSIZE : 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AdminConn *c = userdata;
        int r = 0;

        switch (c->state) {
        case CONN_READING:
                r = conn_read_head(c);
                break;
        case CONN_SCANNING:
                r = conn_watch(c, revents);
                break;
        case CONN_WRITING:
                r = conn_flush(c);
                break;
        case CONN_LINGERING:
                r = conn_discard(c);
                break;
        }
        if (r < 0)
                conn_free(c);
        return 0;
}

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AdminConn *c = userdata;
        int r;

        if (c->state == CONN_SCANNING) {
                if (conn_scan_timeout(c) < 0)
                        conn_free(c);
                return 0;
        }
        if (c->state != CONN_READING) {
                conn_free(c);
                return 0;
        }
        r = conn_reply_error(c, 408, "request timeout");
        if (r >= 0)
                r = sd_event_source_set_time_relative(c->timer, ADMIN_GRACE_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                conn_free(c);
        return 0;
}

/* Takes 'fd' in every case. */
static int conn_new(Admin *a, int fd) {
        sd_event *e = daemon_event(a->daemon);
        AdminConn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        buffer_init(&c->in, HTTP_HEAD_MAX);
        buffer_init(&c->out, ADMIN_BODY_MAX + ADMIN_HEAD_ROOM);

        r = sd_event_add_io(e, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r >= 0)
                r = sd_event_source_set_description(c->io, "admin-connection");
        if (r >= 0)
                r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, ADMIN_TIMEOUT_USEC,
                                               ADMIN_TIMER_ACCURACY_USEC, on_conn_timer, c);
        if (r >= 0)
                r = sd_event_source_set_description(c->timer, "admin-connection-timeout");
        if (r < 0) {
                conn_free(c);
                return r;
        }

        c->admin = a;
        c->next = a->conns;
        if (a->conns)
                a->conns->prev = c;
        a->conns = c;
        a->n_conns++;
        return 0;
}

static int on_accept_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        Admin *a = userdata;

        (void) sd_event_source_set_enabled(a->io, SD_EVENT_ON);
        return 0;
}

/* Stop accepting for a moment: the socket stays readable while we are out
 * of descriptors, and a level-triggered source would spin. */
static void admin_pause_accept(Admin *a) {
        int r;

        if (!a->resume) {
                r = sd_event_add_time_relative(daemon_event(a->daemon), &a->resume, CLOCK_MONOTONIC,
                                               ADMIN_ACCEPT_PAUSE_USEC, ADMIN_TIMER_ACCURACY_USEC,
                                               on_accept_resume, a);
                if (r >= 0)
                        (void) sd_event_source_set_description(a->resume, "admin-accept-resume");
        } else {
                r = sd_event_source_set_time_relative(a->resume, ADMIN_ACCEPT_PAUSE_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(a->resume, SD_EVENT_ONESHOT);
        }
        /* Without a timer to turn it back on, keep accepting (and spinning)
         * rather than go deaf for good. */
        if (r >= 0)
                (void) sd_event_source_set_enabled(a->io, SD_EVENT_OFF);
}

static const char *suppressed_note(unsigned n, char *buf, size_t size) {
        if (n == 0)
                return "";
        snprintf(buf, size, " (%u more since the last message)", n);
        return buf;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Admin *a = userdata;
        unsigned suppressed;
        char note[64];

        for (unsigned i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        r = -errno;
                        if (r == -EAGAIN || r == -EWOULDBLOCK)
                                return 0;
                        if (r == -EINTR || r == -ECONNABORTED)
                                continue;
                        if (ratelimit_below(&a->accept_log, &suppressed))
                                log_warning_errno(r, "Failed to accept an admin connection: %m%s",
                                                  suppressed_note(suppressed, note, sizeof(note)));
                        if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM)
                                admin_pause_accept(a);
                        return 0;
                }

                if (a->n_conns >= ADMIN_CONNECTIONS_MAX) {
                        safe_close(cfd);
                        if (ratelimit_below(&a->full_log, &suppressed))
                                log_warning("Admin socket %s: %u connections open, refusing more%s", a->path,
                                            a->n_conns, suppressed_note(suppressed, note, sizeof(note)));
                        continue;
                }

                r = conn_new(a, cfd);
                if (r < 0 && ratelimit_below(&a->accept_log, &suppressed))
                        log_warning_errno(r, "Failed to set up an admin connection: %m%s",
                                          suppressed_note(suppressed, note, sizeof(note)));
        }
        return 0;
}

/* ---- the listening socket ------------------------------------------------- */

static int mkdir_parent(const char *path) {
        _cleanup_free_ char *dir = NULL;
        const char *slash = strrchr(path, '/');

        if (!slash || slash == path)
                return 0;
        dir = strndup(path, (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* A socket file nobody listens on is left over from a daemon that died:
 * remove it. A live one means another sshtund owns the path. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa, socklen_t salen) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, salen) == 0)
                return -EADDRINUSE;
        switch (errno) {
        case EAGAIN:      /* listening, backlog full */
        case EINPROGRESS:
                return -EADDRINUSE;
        case ENOENT:      /* gone meanwhile */
                return 0;
        case ECONNREFUSED:
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        default:
                return -errno;
        }
}

int admin_new(Daemon *d, const char *path, Admin **ret) {
        _cleanup_(admin_freep) Admin *a = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        struct stat st;
        mode_t old_umask;
        size_t len;
        int r;

        assert(d);
        assert(path);
        assert(ret);

        len = strlen(path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->daemon = d;
        a->fd = -1;
        a->full_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->accept_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->path = strdup(path);
        if (!a->path)
                return -ENOMEM;

        r = mkdir_parent(path);
        if (r < 0)
                return r;
        r = remove_stale_socket(path, &sa, salen);
        if (r < 0)
                return r;

        a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0)
                return -errno;
        /* Created 0600 from the start: no window in which others may connect. */
        old_umask = umask(0177);
        r = bind(a->fd, (const struct sockaddr *) &sa, salen) < 0 ? -errno : 0;
        umask(old_umask);
        if (r < 0)
                return r;
        if (lstat(path, &st) < 0)
                return -errno;
        a->bound = true;
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        if (chmod(path, 0600) < 0)
                return -errno;
        if (listen(a->fd, ADMIN_BACKLOG) < 0)
                return -errno;

        r = sd_event_add_io(daemon_event(d), &a->io, a->fd, EPOLLIN, on_accept, a);
        if (r < 0)
                return r;
        r = sd_event_source_set_description(a->io, "admin-listen");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

int admin_new_metrics(Daemon *d, const ListenAddress *address, Admin **ret) {
        _cleanup_(admin_freep) Admin *a = NULL;
        int r;

        assert(d);
        assert(address);
        assert(ret);

        /* unauthenticated: a TCP port for scrapers, never a socket file
         * someone could mistake for the admin socket */
        if (address->kind != LISTEN_TCP)
                return -EAFNOSUPPORT;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->daemon = d;
        a->fd = -1;
        a->metrics_only = true;
        a->full_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->accept_log = (RateLimit) { .interval = ADMIN_LOG_INTERVAL_USEC, .burst = 1 };
        a->path = listen_address_to_string(address);
        if (!a->path)
                return -ENOMEM;

        r = listen_socket_open(address, 0, (gid_t) -1, ADMIN_BACKLOG);
        if (r < 0)
                return r;
        a->fd = r;

        r = sd_event_add_io(daemon_event(d), &a->io, a->fd, EPOLLIN, on_accept, a);
        if (r < 0)
                return r;
        r = sd_event_source_set_description(a->io, "metrics-listen");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

Admin *admin_free(Admin *a) {
        struct stat st;

        if (!a)
                return NULL;
        while (a->conns)
                conn_free(a->conns);
        while (a->scans)
                scan_free(a->scans);
        a->io = sd_event_source_disable_unref(a->io);
        a->resume = sd_event_source_disable_unref(a->resume);
        a->fd = safe_close(a->fd);
        /* Leave the path alone if another process has replaced it since. */
        if (a->bound && lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
                (void) unlink(a->path);
        free(a->path);
        free(a);
        return NULL;
}
