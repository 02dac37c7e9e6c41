/* The admin API's JSON views: nodes, probes, the daemon's status and the
 * GET /v1/migration report, and the JSON bodies every reply is made of. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "address.h"
#include "admin-internal.h"
#include "macro.h"
#include "nodeinfo.h"
#include "strbuf.h"

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
json_t *admin_json_text(const char *s) {
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

/* RFC 3339 in UTC with milliseconds ("2026-11-29T15:45:10.123Z") into
 * buf; false for 0 (never) or a time RFC 3339 cannot write. */
static bool format_timestamp(usec_t t, char buf[static 64]) {
        struct tm tm;
        time_t sec;
        size_t n;

        if (t == 0 || t == USEC_INFINITY || t / USEC_PER_SEC > (usec_t) INT64_MAX)
                return false;
        sec = (time_t) (t / USEC_PER_SEC);
        if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 > 9999)
                return false;
        n = strftime(buf, 64, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0)
                return false;
        snprintf(buf + n, 64 - n, ".%03uZ", (unsigned) (t % USEC_PER_SEC / USEC_PER_MSEC));
        return true;
}

/* The timestamp as a JSON string, or null. */
static json_t *json_timestamp(usec_t t) {
        char buf[64];

        return format_timestamp(t, buf) ? json_string(buf) : json_null();
}

/* Adds key → v, taking the reference (v may be NULL after a failed
 * allocation: the failure is reported here). */
int admin_json_add(json_t *o, const char *key, json_t *v) {
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
        if (admin_json_add(o, "ok", json_boolean(p->ok)) < 0 ||
            admin_json_add(o, "latency_ms", json_real((double) p->latency / USEC_PER_MSEC)) < 0 ||
            admin_json_add(o, "at", json_timestamp(p->at)) < 0 ||
            admin_json_add(o, "error", p->ok ? json_null() : admin_json_text(p->error)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

json_t *admin_node_to_json(const NodeInfo *n) {
        _cleanup_(json_decrefp) json_t *o = NULL;
        const NodeInfo info = *n;

        o = json_object();
        if (!o)
                return NULL;
        if (admin_json_add(o, "name", admin_json_text(info.name)) < 0 ||
            admin_json_add(o, "address", admin_json_text(info.address)) < 0 ||
            admin_json_add(o, "port", json_integer(info.port)) < 0 ||
            admin_json_add(o, "state", admin_json_text(node_state_to_string(info.state))) < 0 ||
            admin_json_add(o, "draining", json_boolean(info.draining)) < 0 ||
            admin_json_add(o, "route", admin_json_text(node_route_to_string(info.route))) < 0 ||
            admin_json_add(o, "sessions_up", json_integer(info.sessions_up)) < 0 ||
            admin_json_add(o, "sessions_total", json_integer(info.sessions_total)) < 0 ||
            admin_json_add(o, "streams", json_integer(info.streams)) < 0 ||
            admin_json_add(o, "streams_total", json_uint(info.streams_total)) < 0 ||
            admin_json_add(o, "reconnects", json_uint(info.reconnects)) < 0 ||
            admin_json_add(o, "last_error", admin_json_text(info.last_error)) < 0 ||
            admin_json_add(o, "reason", admin_json_text(info.reason)) < 0 ||
            admin_json_add(o, "host_key", admin_json_text(info.host_key)) < 0 ||
            admin_json_add(o, "probe", probe_to_json(&info.probe)) < 0 ||
            admin_json_add(o, "state_since", json_timestamp(info.state_since)) < 0 ||
            admin_json_add(o, "migrated", json_boolean(info.migrated)) < 0 ||
            admin_json_add(o, "falling_back", json_boolean(info.falling_back)) < 0 ||
            admin_json_add(o, "fallbacks", json_uint(info.fallbacks)) < 0 ||
            admin_json_add(o, "upstream_probe", probe_to_json(&info.upstream)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

json_t *admin_status_to_json(const AdminEnv *env) {
        _cleanup_(json_decrefp) json_t *o = NULL, *states = NULL;
        _cleanup_free_ NodeInfo *infos = NULL;
        unsigned counts[_NODE_STATE_MAX] = {};
        AdminStatus status;
        size_t n = 0;

        if (env->ops->nodes(env->userdata, &infos, &n) < 0)
                return NULL;
        env->ops->status(env->userdata, &status);
        for (size_t i = 0; i < n; i++)
                if (infos[i].state >= 0 && infos[i].state < _NODE_STATE_MAX)
                        counts[infos[i].state]++;

        states = json_object();
        if (!states)
                return NULL;
        /* "up" always, first; then every state some node is in. */
        if (admin_json_add(states, node_state_to_string(NODE_UP), json_integer(counts[NODE_UP])) < 0)
                return NULL;
        for (NodeState s = 0; s < _NODE_STATE_MAX; s++) {
                const char *name = node_state_to_string(s);
                if (s == NODE_UP || counts[s] == 0 || !name)
                        continue;
                if (admin_json_add(states, name, json_integer(counts[s])) < 0)
                        return NULL;
        }

        o = json_object();
        if (!o)
                return NULL;
        if (admin_json_add(o, "version", json_string(PACKAGE_VERSION)) < 0 ||
            admin_json_add(o, "nodes_total", json_uint(n)) < 0 ||
            admin_json_add(o, "nodes_up", json_integer(counts[NODE_UP])) < 0 ||
            admin_json_add(o, "streams", json_integer(status.streams)) < 0 ||
            admin_json_add(o, "states", TAKE_PTR(states)) < 0 ||
            admin_json_add(o, "handshakes_in_flight", json_integer(status.handshakes_in_flight)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* ---- GET /v1/nodes written directly ----------------------------------------------
 * The same text json_dumps() makes of admin_node_to_json() for each node
 * (the unit test compares them byte for byte), without 100,000 jansson
 * values to build and free at 5,000 nodes: 50-60 ms of loop time, now 5. */

/* A JSON string as admin_json_text() and jansson write it: '"', '\\' and
 * control characters escaped, invalid UTF-8 as '?', NULL as null. */
static void put_json_text(StrBuf *b, const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *p = (const unsigned char *) s;

        if (!s) {
                strbuf_puts(b, "null");
                return;
        }
        strbuf_putc(b, '"');
        while (*p) {
                size_t n = 0;

                /* the plain run: printable ASCII but the two that need escapes */
                while (p[n] >= 0x20 && p[n] < 0x80 && p[n] != '"' && p[n] != '\\')
                        n++;
                strbuf_mem(b, p, n);
                p += n;
                if (!*p)
                        break;
                if (*p >= 0x80) {
                        n = utf8_sequence_len(p);
                        if (n == 0) {
                                strbuf_putc(b, '?');
                                p++;
                        } else {
                                strbuf_mem(b, p, n);
                                p += n;
                        }
                        continue;
                }
                switch (*p) {
                case '"':
                        strbuf_puts(b, "\\\"");
                        break;
                case '\\':
                        strbuf_puts(b, "\\\\");
                        break;
                case '\b':
                        strbuf_puts(b, "\\b");
                        break;
                case '\f':
                        strbuf_puts(b, "\\f");
                        break;
                case '\n':
                        strbuf_puts(b, "\\n");
                        break;
                case '\r':
                        strbuf_puts(b, "\\r");
                        break;
                case '\t':
                        strbuf_puts(b, "\\t");
                        break;
                default: {
                        char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
                        strbuf_mem(b, u, sizeof(u));
                        break;
                }
                }
                p++;
        }
        strbuf_putc(b, '"');
}

/* "key": with the comma before it unless it opens the object */
static void put_json_key(StrBuf *b, const char *key, bool first) {
        if (!first)
                strbuf_putc(b, ',');
        strbuf_putc(b, '"');
        strbuf_puts(b, key);
        strbuf_puts(b, "\":");
}

static void put_json_uint(StrBuf *b, uint64_t v) {
        strbuf_u64(b, MIN(v, (uint64_t) LLONG_MAX)); /* as json_uint() caps it */
}

static void put_json_bool(StrBuf *b, bool v) {
        strbuf_puts(b, v ? "true" : "false");
}

/* A real as jansson writes it with JSON_REAL_PRECISION(9): "%.9g", a ".0"
 * when that reads as an integer, no '+' or leading zeros in the exponent. */
static void put_json_real(StrBuf *b, double v) {
        char buf[64], *e;
        int n = snprintf(buf, sizeof(buf), "%.9g", v);

        if (n < 0 || (size_t) n >= sizeof(buf)) {
                strbuf_puts(b, "null");
                return;
        }
        e = strchr(buf, 'e');
        if (e) {
                char *d = e + 1, *q = e + 1;
                if (*q == '+')
                        q++;
                else if (*q == '-')
                        *d++ = *q++;
                while (*q == '0' && q[1])
                        q++;
                memmove(d, q, strlen(q) + 1);
        } else if (!strchr(buf, '.') && (size_t) n + 3 <= sizeof(buf))
                strcat(buf, ".0");
        strbuf_puts(b, buf);
}

static void put_json_timestamp(StrBuf *b, usec_t t) {
        char buf[64];

        if (format_timestamp(t, buf))
                put_json_text(b, buf);
        else
                strbuf_puts(b, "null");
}

/* As probe_to_json() has it. */
static void put_json_probe(StrBuf *b, const ProbeInfo *p) {
        if (!p->valid) {
                strbuf_puts(b, "null");
                return;
        }
        strbuf_putc(b, '{');
        put_json_key(b, "ok", true);
        put_json_bool(b, p->ok);
        put_json_key(b, "latency_ms", false);
        put_json_real(b, (double) p->latency / USEC_PER_MSEC);
        put_json_key(b, "at", false);
        put_json_timestamp(b, p->at);
        put_json_key(b, "error", false);
        put_json_text(b, p->ok ? NULL : p->error);
        strbuf_putc(b, '}');
}

static void put_json_node(StrBuf *b, const NodeInfo *n) {
        strbuf_putc(b, '{');
        put_json_key(b, "name", true);
        put_json_text(b, n->name);
        put_json_key(b, "address", false);
        put_json_text(b, n->address);
        put_json_key(b, "port", false);
        strbuf_u64(b, n->port);
        put_json_key(b, "state", false);
        put_json_text(b, node_state_to_string(n->state));
        put_json_key(b, "draining", false);
        put_json_bool(b, n->draining);
        put_json_key(b, "route", false);
        put_json_text(b, node_route_to_string(n->route));
        put_json_key(b, "sessions_up", false);
        strbuf_u64(b, n->sessions_up);
        put_json_key(b, "sessions_total", false);
        strbuf_u64(b, n->sessions_total);
        put_json_key(b, "streams", false);
        strbuf_u64(b, n->streams);
        put_json_key(b, "streams_total", false);
        put_json_uint(b, n->streams_total);
        put_json_key(b, "reconnects", false);
        put_json_uint(b, n->reconnects);
        put_json_key(b, "last_error", false);
        put_json_text(b, n->last_error);
        put_json_key(b, "reason", false);
        put_json_text(b, n->reason);
        put_json_key(b, "host_key", false);
        put_json_text(b, n->host_key);
        put_json_key(b, "probe", false);
        put_json_probe(b, &n->probe);
        put_json_key(b, "state_since", false);
        put_json_timestamp(b, n->state_since);
        put_json_key(b, "migrated", false);
        put_json_bool(b, n->migrated);
        put_json_key(b, "falling_back", false);
        put_json_bool(b, n->falling_back);
        put_json_key(b, "fallbacks", false);
        put_json_uint(b, n->fallbacks);
        put_json_key(b, "upstream_probe", false);
        put_json_probe(b, &n->upstream);
        strbuf_putc(b, '}');
}

char *admin_nodes_body(const AdminEnv *env) {
        _cleanup_free_ NodeInfo *infos = NULL;
        StrBuf b = {};
        size_t n = 0;

        if (env->ops->nodes(env->userdata, &infos, &n) < 0)
                return NULL;
        (void) strbuf_reserve(&b, 64 + n * 450);
        strbuf_puts(&b, "{\"nodes\":[");
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        strbuf_putc(&b, ',');
                put_json_node(&b, &infos[i]);
        }
        strbuf_puts(&b, "]}");
        return strbuf_take(&b, NULL);
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
        return json_pack("{s:o, s:o}", "egress_selector_configuration", admin_json_text(yaml),
                         "konnectivity_server_flags", admin_json_text(flags));
}

/* Per node: where its streams go and whether the path through
 * konnectivity-server works (ready: a node on SSH may move). The final
 * switch shows once every node is migrated, routed upstream and passing. */
json_t *admin_migration_to_json(const AdminEnv *env) {
        const ConfigKonnectivity *k = &env->ops->config(env->userdata)->konnectivity;
        _cleanup_(json_decrefp) json_t *o = NULL, *list = NULL;
        _cleanup_free_ NodeInfo *infos = NULL;
        size_t n = 0, on = 0, ready = 0;
        bool all;

        if (env->ops->nodes(env->userdata, &infos, &n) < 0)
                return NULL;
        all = n > 0 && k->upstream;
        list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_decrefp) json_t *e = NULL;
                const NodeInfo info = infos[i];
                bool on_k, ok;

                on_k = info.route == ROUTE_KONNECTIVITY;
                ok = info.upstream.valid && info.upstream.ok;
                if (on_k)
                        on++;
                else if (ok)
                        ready++;
                all = all && info.migrated && on_k && ok;

                e = json_object();
                if (!e || admin_json_add(e, "name", admin_json_text(info.name)) < 0 ||
                    admin_json_add(e, "route", admin_json_text(node_route_to_string(info.route))) < 0 ||
                    admin_json_add(e, "migrated", json_boolean(info.migrated)) < 0 ||
                    admin_json_add(e, "upstream_probe", probe_to_json(&info.upstream)) < 0 ||
                    admin_json_add(e, "probe", probe_to_json(&info.probe)) < 0 ||
                    admin_json_add(e, "ready", json_boolean(ok)) < 0 ||
                    json_array_append_new(list, TAKE_PTR(e)) < 0)
                        return NULL;
        }

        o = json_object();
        if (!o)
                return NULL;
        if (admin_json_add(o, "upstream", admin_json_text(k->upstream)) < 0 ||
            admin_json_add(o, "fallback_to_ssh", json_boolean(k->fallback_to_ssh)) < 0 ||
            admin_json_add(o, "nodes_total", json_uint(n)) < 0 ||
            admin_json_add(o, "nodes_on_konnectivity", json_uint(on)) < 0 ||
            admin_json_add(o, "nodes_ready", json_uint(ready)) < 0 ||
            admin_json_add(o, "nodes", TAKE_PTR(list)) < 0 ||
            admin_json_add(o, "final_switch", all ? final_switch_to_json(k) : json_null()) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Serialise and drop 'v' (NULL means an allocation failed on the way). */
int admin_json_to_body(json_t *v, char **ret) {
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

int admin_error_body(const char *message, char **ret) {
        json_t *o = json_object();

        if (o && admin_json_add(o, "error", admin_json_text(message)) < 0) {
                json_decref(o);
                o = NULL;
        }
        return admin_json_to_body(o, ret);
}
