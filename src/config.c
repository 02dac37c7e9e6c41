/* The configuration file: libconfig syntax in, a validated Config out. Owns
 * the top level, the ssh, proxy, probe, admin and log sections, and every default. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config-internal.h"
#include "conf.h"
#include "fileio.h"
#include "identity.h"
#include "macro.h"
#include "router.h"

/* The names of the enums' values, indexed by value: read and written. */
static const char *const host_key_policy_names[] = {
        [HOST_KEY_POLICY_STRICT] = "strict",
        [HOST_KEY_POLICY_ACCEPT_NEW] = "accept-new",
        NULL,
};
static const char *const fallback_names[] = {
        [FALLBACK_ANY] = "any",
        [FALLBACK_NONE] = "none",
        NULL,
};
static const char *const probe_type_names[] = {
        [PROBE_NONE] = "none",
        [PROBE_TCP] = "tcp",
        [PROBE_HTTP] = "http",
        [PROBE_HTTPS] = "https",
        NULL,
};

static void print_name(Printer *w, const Key *k, const char *name) {
        printer_key(w, k);
        printer_string(w, name);
        printer_end(w);
}

static int parse_host_key_policy(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        int i, r = parser_read_choice(p, s, host_key_policy_names, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, HostKeyPolicy) = (HostKeyPolicy) i;
        return 0;
}

static void print_host_key_policy(Printer *w, const void *base, const Key *k) {
        print_name(w, k, host_key_policy_names[*CONST_FIELD(base, k, HostKeyPolicy)]);
}

static const KeyType key_host_key_policy = { parse_host_key_policy, print_host_key_policy };

static int parse_fallback(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        int i, r = parser_read_choice(p, s, fallback_names, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, Fallback) = (Fallback) i;
        return 0;
}

static void print_fallback(Printer *w, const void *base, const Key *k) {
        print_name(w, k, fallback_names[*CONST_FIELD(base, k, Fallback)]);
}

static const KeyType key_fallback = { parse_fallback, print_fallback };

static int parse_probe_type(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        int i, r = parser_read_choice(p, s, probe_type_names, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, ProbeType) = (ProbeType) i;
        return 0;
}

static void print_probe_type(Printer *w, const void *base, const Key *k) {
        print_name(w, k, probe_type_names[*CONST_FIELD(base, k, ProbeType)]);
}

static const KeyType key_probe_type = { parse_probe_type, print_probe_type };

static int parse_log_level(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        r = log_level_from_string(v);
        if (r < 0)
                return parser_fail(p, s,
                                   "invalid level \"%s\" (expected \"error\", \"warning\", \"notice\", "
                                   "\"info\" or \"debug\")",
                                   v);
        *FIELD(base, k, int) = r;
        return 0;
}

static void print_log_level(Printer *w, const void *base, const Key *k) {
        print_name(w, k, log_level_to_string(*CONST_FIELD(base, k, int)));
}

static const KeyType key_log_level = { parse_log_level, print_log_level };

static int parse_log_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        r = log_target_from_string(v);
        if (r < 0)
                return parser_fail(p, s,
                                   "invalid target \"%s\" (expected \"auto\", \"journal\", \"syslog\" "
                                   "or \"stderr\")",
                                   v);
        *FIELD(base, k, LogTarget) = (LogTarget) r;
        return 0;
}

static void print_log_target(Printer *w, const void *base, const Key *k) {
        print_name(w, k, log_target_to_string(*CONST_FIELD(base, k, LogTarget)));
}

static const KeyType key_log_target = { parse_log_target, print_log_target };

static int parse_proxy_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProxy *x = base;
        int n, r;

        r = parser_check_string_array(p, s, LISTEN_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        if (n == 0)
                return parser_fail(p, s, "must name at least one address");
        x->listen = calloc(n, sizeof(ListenAddress));
        if (!x->listen)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);
                ListenAddress a;

                r = parser_read_listen(p, e, v, &a);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < x->n_listen; j++)
                        if (listen_address_equal(&x->listen[j], &a)) {
                                listen_address_done(&a);
                                return parser_fail(p, e, "duplicate listen address \"%s\"", v);
                        }
                x->listen[x->n_listen++] = a;
        }
        return 0;
}

static void print_proxy_listen(Printer *w, const void *base, const Key *k) {
        const ConfigProxy *x = base;

        printer_key(w, k);
        printer_printf(w, "[ ");
        for (size_t i = 0; i < x->n_listen; i++) {
                printer_printf(w, "%s", i > 0 ? ", " : "");
                printer_listen(w, &x->listen[i]);
        }
        printer_printf(w, " ]");
        printer_end(w);
}

static const KeyType key_proxy_listen = { parse_proxy_listen, print_proxy_listen };

static int parse_proxy_allow(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProxy *x = base;
        int n, r;

        r = parser_check_string_array(p, s, ALLOW_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        if (n == 0)
                return parser_fail(p, s, "must name at least one rule (\"nodes\" admits the nodes only)");
        x->allow = calloc(n, sizeof(AllowRule));
        if (!x->allow)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);

                r = allow_rule_parse(v, &x->allow[x->n_allow]);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return parser_fail(p, e,
                                           "invalid allow rule \"%s\" (expected \"nodes[:PORTS]\" or "
                                           "\"CIDR[:PORTS]\", PORTS like \"10250,10248\" or \"1-1024\")",
                                           v);
                x->n_allow++;
        }
        return 0;
}

/* As written: a rule keeps its text. */
static void print_proxy_allow(Printer *w, const void *base, const Key *k) {
        const ConfigProxy *x = base;

        printer_key(w, k);
        printer_printf(w, "[ ");
        for (size_t i = 0; i < x->n_allow; i++) {
                printer_printf(w, "%s", i > 0 ? ", " : "");
                printer_string(w, x->allow[i].text);
        }
        printer_printf(w, " ]");
        printer_end(w);
}

static const KeyType key_proxy_allow = { parse_proxy_allow, print_proxy_allow };

static int parse_metrics_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigAdmin *a = base;
        const char *v;
        int r;

        r = parser_read_string(p, s, &v);
        if (r < 0 || !*v)
                return r;
        r = parser_read_listen(p, s, v, &a->metrics_listen);
        if (r < 0)
                return r;
        a->has_metrics_listen = true;
        /* no authentication on it: metrics are for scrapers over TCP, and
         * the admin socket is where local users go */
        if (a->metrics_listen.kind != LISTEN_TCP)
                return parser_fail(p, s, "\"%s\" is not a TCP address (expected \"tcp:IP:PORT\"; the admin "
                                   "socket serves /metrics locally)", v);
        return 0;
}

static void print_metrics_listen(Printer *w, const void *base, const Key *k) {
        const ConfigAdmin *a = base;

        printer_key(w, k);
        if (a->has_metrics_listen)
                printer_listen(w, &a->metrics_listen);
        else
                printer_string(w, "");
        printer_end(w);
}

static const KeyType key_metrics_listen = { parse_metrics_listen, print_metrics_listen };

static int parse_probe(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        /* a probe section without a type asks for the usual kubelet probe */
        ((Config *) base)->probe.type = PROBE_HTTP;
        return parse_section(p, s, base, k);
}

/* Printed with its type always, so the default of a section without one
 * does not matter. */
static const KeyType key_probe = { parse_probe, print_section };

static int parse_probe_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProbe *x = base;
        return parser_read_hostport(p, s, &x->target_host, &x->target_port);
}

static void print_probe_target(Printer *w, const void *base, const Key *k) {
        const ConfigProbe *x = base;

        printer_key(w, k);
        printer_hostport(w, x->target_host, x->target_port);
        printer_end(w);
}

static const KeyType key_probe_target = { parse_probe_target, print_probe_target };

/* It goes into a request line: no spaces, no control bytes. */
static int parse_probe_path(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (v[0] != '/')
                return parser_fail(p, s, "\"%s\" does not start with \"/\"", v);
        if (strlen(v) > HTTP_PATH_MAX)
                return parser_fail(p, s, "longer than %d bytes", HTTP_PATH_MAX);
        for (const char *c = v; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f)
                        return parser_fail(p, s, "\"%s\" holds a space or a control character", v);
        return field_set_string(FIELD(base, k, char *), v, false);
}

static const KeyType key_probe_path = { parse_probe_path, print_string_field };

static const Key ssh_keys[] = {
        { "user", &key_account, offsetof(ConfigSsh, user), .min = 1 },
        { "identity", &key_path, offsetof(ConfigSsh, identity), .min = 1, .max = PATH_MAX },
        { "known_hosts", &key_path, offsetof(ConfigSsh, known_hosts), .min = 1, .max = PATH_MAX },
        { "learned_hosts", &key_path, offsetof(ConfigSsh, learned_hosts), .max = PATH_MAX },
        { "host_key_policy", &key_host_key_policy, offsetof(ConfigSsh, host_key_policy) },
        { "port", &key_port, offsetof(ConfigSsh, port) },
        { "connect_timeout", &key_seconds, offsetof(ConfigSsh, connect_timeout) },
        { "keepalive_interval", &key_seconds, offsetof(ConfigSsh, keepalive_interval) },
        { "keepalive_count", &key_unsigned, offsetof(ConfigSsh, keepalive_count), 1, 100 },
        { "pool_size", &key_unsigned, offsetof(ConfigSsh, pool_size), 1, 64 },
        { "backoff_max", &key_seconds, offsetof(ConfigSsh, backoff_max) },
        { "max_streams_per_session", &key_unsigned, offsetof(ConfigSsh, max_streams_per_session), 1, 65535 },
        { "max_handshakes", &key_unsigned, offsetof(ConfigSsh, max_handshakes), 1, 100000 },
        { "ciphers", &key_algorithms, offsetof(ConfigSsh, ciphers) },
        { "macs", &key_algorithms, offsetof(ConfigSsh, macs) },
        {}
};

static const Key proxy_keys[] = {
        { "listen", &key_proxy_listen },
        { "socket_mode", &key_mode, offsetof(ConfigProxy, socket_mode) },
        { "socket_group", &key_account, offsetof(ConfigProxy, socket_group) },
        { "open_timeout", &key_seconds, offsetof(ConfigProxy, open_timeout) },
        { "header_timeout", &key_seconds, offsetof(ConfigProxy, header_timeout) },
        { "allow", &key_proxy_allow },
        { "fallback", &key_fallback, offsetof(ConfigProxy, fallback) },
        { "max_clients", &key_unsigned, offsetof(ConfigProxy, max_clients), 1, 1000000 },
        {}
};

static const Key probe_keys[] = {
        { "type", &key_probe_type, offsetof(ConfigProbe, type) },
        { "target", &key_probe_target },
        { "path", &key_probe_path, offsetof(ConfigProbe, path) },
        { "interval", &key_seconds, offsetof(ConfigProbe, interval) },
        { "timeout", &key_seconds, offsetof(ConfigProbe, timeout) },
        { "ca_file", &key_path, offsetof(ConfigProbe, ca_file), .max = PATH_MAX },
        {}
};

static const Key admin_keys[] = {
        { "socket", &key_path, offsetof(ConfigAdmin, socket), .min = 1, .max = SUN_PATH_MAX - 1 },
        { "readonly_socket", &key_path, offsetof(ConfigAdmin, readonly_socket), .max = SUN_PATH_MAX - 1 },
        { "readonly_socket_mode", &key_mode, offsetof(ConfigAdmin, readonly_socket_mode) },
        { "readonly_socket_group", &key_account, offsetof(ConfigAdmin, readonly_socket_group) },
        { "metrics_listen", &key_metrics_listen },
        { "ready_min_fraction", &key_fraction, offsetof(ConfigAdmin, ready_min_fraction) },
        { "metrics_per_node", &key_bool, offsetof(ConfigAdmin, metrics_per_node) },
        {}
};

static const Key log_keys[] = {
        { "level", &key_log_level, offsetof(ConfigLog, level) },
        { "target", &key_log_target, offsetof(ConfigLog, target) },
        {}
};

const Key config_keys[] = {
        { "ssh", &key_section, offsetof(Config, ssh), .keys = ssh_keys },
        { "proxy", &key_section, offsetof(Config, proxy), .keys = proxy_keys },
        { "probe", &key_probe, offsetof(Config, probe), .keys = probe_keys },
        { "admin", &key_section, offsetof(Config, admin), .keys = admin_keys },
        { "log", &key_section, offsetof(Config, log), .keys = log_keys },
        { "user", &key_account, offsetof(Config, user) },
        { "drain_timeout", &key_seconds, offsetof(Config, drain_timeout) },
        { "nodes", &key_nodes },
        { "nodes_file", &key_nodes_file, offsetof(Config, nodes_file), .max = PATH_MAX },
        { "forwards", &key_forwards },
        { "konnectivity", &key_konnectivity, offsetof(Config, konnectivity) },
        {}
};

/* --- whole-file checks --------------------------------------------------- */

/* The admin API's sockets are not the proxy's. */
static int check_listeners(Parser *p) {
        const Config *c = p->config;

        if (c->admin.has_metrics_listen)
                for (size_t j = 0; j < c->proxy.n_listen; j++)
                        if (listen_address_equal(&c->admin.metrics_listen, &c->proxy.listen[j]))
                                return parser_fail(p, config_lookup(p->lc, "admin.metrics_listen"),
                                                   "already used by proxy.listen[%zu]", j);
        for (size_t j = 0; j < c->proxy.n_listen; j++)
                if (c->proxy.listen[j].kind == LISTEN_UNIX && streq(c->proxy.listen[j].path, c->admin.socket))
                        return parser_fail_key(p, config_lookup(p->lc, "admin.socket"), "admin.socket",
                                               "already used by proxy.listen[%zu]", j);
        if (c->admin.readonly_socket) {
                if (streq(c->admin.readonly_socket, c->admin.socket))
                        return parser_fail_key(p, config_lookup(p->lc, "admin.readonly_socket"),
                                               "admin.readonly_socket", "the same path as admin.socket");
                for (size_t j = 0; j < c->proxy.n_listen; j++)
                        if (c->proxy.listen[j].kind == LISTEN_UNIX &&
                            streq(c->proxy.listen[j].path, c->admin.readonly_socket))
                                return parser_fail_key(p, config_lookup(p->lc, "admin.readonly_socket"),
                                                       "admin.readonly_socket", "already used by proxy.listen[%zu]",
                                                       j);
        }
        return 0;
}

/* learned_hosts is where accept-new writes, and never known_hosts. */
static int check_host_keys(Parser *p) {
        const ConfigSsh *c = &p->config->ssh;

        if (c->learned_hosts && streq(c->learned_hosts, c->known_hosts))
                return parser_fail_key(p, config_lookup(p->lc, "ssh.learned_hosts"), "ssh.learned_hosts",
                                       "the same file as ssh.known_hosts, which sshtund never writes");
        if (c->host_key_policy == HOST_KEY_POLICY_ACCEPT_NEW && !c->learned_hosts)
                return parser_fail_key(p, config_lookup(p->lc, "ssh.host_key_policy"), "ssh.host_key_policy",
                                       "\"accept-new\" records keys in ssh.learned_hosts, which is empty");
        return 0;
}

/* Fill in what depends on other keys or could not be defaulted up front. */
static int config_complete(Config *c) {
        int r;

        if (c->proxy.n_listen == 0) {
                c->proxy.listen = calloc(1, sizeof(ListenAddress));
                if (!c->proxy.listen)
                        return -ENOMEM;
                r = listen_address_parse("unix:/run/sshtund/proxy.sock", &c->proxy.listen[0]);
                if (r < 0)
                        return r;
                c->proxy.n_listen = 1;
        }
        if (c->proxy.n_allow == 0) {
                c->proxy.allow = calloc(1, sizeof(AllowRule));
                if (!c->proxy.allow)
                        return -ENOMEM;
                r = allow_rule_parse("nodes", &c->proxy.allow[0]);
                if (r < 0)
                        return r;
                c->proxy.n_allow = 1;
        }
        for (size_t i = 0; i < c->n_nodes; i++)
                if (c->nodes[i].port == 0)
                        c->nodes[i].port = c->ssh.port;
        return 0;
}

/* The key must be usable, not only named: RSA keys in particular parse fine
 * and then fail against every modern sshd. */
static int check_identity(Parser *p) {
        const config_setting_t *s;
        Identity *id = NULL;
        _cleanup_free_ char *reason = NULL;
        int r;

        r = identity_load(p->config->ssh.identity, &id, &reason);
        if (r >= 0) {
                identity_free(id);
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        /* a daemon that dropped privileges cannot read a root-only key
         * again: the key read at start stays in use (reload.c) */
        if (r == -EACCES && p->unreadable_identity_ok)
                return 0;
        s = config_lookup(p->lc, "ssh.identity");
        /* left at its default: no line to look at, so the path */
        return parser_fail_key(p, s, "ssh.identity", "%s%s%s", s ? "" : p->config->ssh.identity, s ? "" : ": ",
                               reason ?: strerror(-r));
}

/* --- the Config object --------------------------------------------------- */

static Config *config_new(const char *path) {
        Config *c = calloc(1, sizeof(Config));
        if (!c)
                return NULL;

        c->ssh = (ConfigSsh) {
                .user = strdup("sshtund"),
                .identity = strdup(CONFIG_DEFAULT_IDENTITY),
                .known_hosts = strdup(CONFIG_DEFAULT_KNOWN_HOSTS),
                .learned_hosts = strdup(CONFIG_DEFAULT_LEARNED_HOSTS),
                .host_key_policy = HOST_KEY_POLICY_STRICT,
                .port = 22,
                .connect_timeout = 10,
                .keepalive_interval = 5,
                .keepalive_count = 3,
                .pool_size = 1,
                .backoff_max = 60,
                .max_streams_per_session = 256,
                .max_handshakes = 64,
                .ciphers = strdup(CONFIG_DEFAULT_CIPHERS),
                .macs = strdup(CONFIG_DEFAULT_MACS),
        };
        c->proxy = (ConfigProxy) {
                .socket_mode = 0660,
                .open_timeout = 10,
                .header_timeout = 10,
                .fallback = FALLBACK_ANY,
                .max_clients = 4096,
        };
        c->probe = (ConfigProbe) {
                .type = PROBE_NONE,
                .target_host = strdup("127.0.0.1"),
                .target_port = 10248,
                .path = strdup("/healthz"),
                .interval = 10,
                .timeout = 5,
        };
        c->admin = (ConfigAdmin) {
                .socket = strdup("/run/sshtund/admin.sock"),
                .readonly_socket_mode = 0660,
                .ready_min_fraction = 0.5,
                .metrics_per_node = true,
        };
        c->log = (ConfigLog) { .level = LOG_INFO, .target = LOG_TARGET_AUTO };
        c->drain_timeout = 10;
        c->konnectivity = (ConfigKonnectivity) {
                .nodes = calloc(1, sizeof(char *)),
                .fallback_to_ssh = true,
                .probe_port = 10250,
        };
        c->path = strdup(path);
        c->files = calloc(2, sizeof(char *));
        if (c->files)
                c->files[0] = strdup(path);

        if (!c->ssh.user || !c->ssh.identity || !c->ssh.known_hosts || !c->ssh.learned_hosts || !c->ssh.ciphers ||
            !c->ssh.macs ||
            !c->probe.target_host ||
            !c->probe.path || !c->admin.socket || !c->konnectivity.nodes || !c->path || !c->files ||
            !c->files[0])
                return config_free(c);
        return c;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;

        free(c->path);
        strv_free(c->files);
        free(c->ssh.user);
        free(c->ssh.identity);
        free(c->ssh.known_hosts);
        free(c->ssh.learned_hosts);
        free(c->ssh.ciphers);
        free(c->ssh.macs);
        for (size_t i = 0; i < c->proxy.n_listen; i++)
                listen_address_done(&c->proxy.listen[i]);
        free(c->proxy.listen);
        free(c->proxy.socket_group);
        for (size_t i = 0; i < c->proxy.n_allow; i++)
                allow_rule_done(&c->proxy.allow[i]);
        free(c->proxy.allow);
        free(c->probe.target_host);
        free(c->probe.path);
        free(c->probe.ca_file);
        free(c->admin.socket);
        free(c->admin.readonly_socket);
        free(c->admin.readonly_socket_group);
        if (c->admin.has_metrics_listen)
                listen_address_done(&c->admin.metrics_listen);
        free(c->user);
        for (size_t i = 0; i < c->n_nodes; i++) {
                free(c->nodes[i].name);
                free(c->nodes[i].address);
                strv_free(c->nodes[i].hostnames);
        }
        free(c->nodes);
        free(c->nodes_file);
        for (size_t i = 0; i < c->n_forwards; i++) {
                listen_address_done(&c->forwards[i].listen);
                free(c->forwards[i].node);
                free(c->forwards[i].target_host);
        }
        free(c->forwards);
        free(c->konnectivity.upstream);
        strv_free(c->konnectivity.nodes);
        free(c->konnectivity.ca_file);
        free(c->konnectivity.cert_file);
        free(c->konnectivity.key_file);
        free(c->konnectivity.server_name);
        free(c);
        return NULL;
}

static int config_parse(Parser *p) {
        int r;

        r = parser_read_group(p, config_root_setting(p->lc), p->config, config_keys);
        if (r < 0)
                return r;
        r = parser_read_nodes_file(p);
        if (r < 0)
                return r;
        r = config_complete(p->config);
        if (r < 0)
                return r;
        r = parser_check_nodes(p);
        if (r < 0)
                return r;
        r = parser_check_references(p);
        if (r < 0)
                return r;
        r = check_listeners(p);
        if (r < 0)
                return r;
        r = check_host_keys(p);
        if (r < 0)
                return r;
        return check_identity(p);
}

static void parser_done(Parser *p) {
        free(p->by_name);
        free(p->node_elems);
        if (p->nodes_lc) {
                config_destroy(p->nodes_lc);
                free(p->nodes_lc);
        }
}

typedef enum LoadMode {
        LOAD_FILE,   /* the file alone (and the identity it names) */
        LOAD_START,  /* and what it names on this host: sshtund -t and start */
        LOAD_RELOAD, /* the file, after privileges were dropped */
} LoadMode;

static int config_load_internal(const char *path, LoadMode mode, Config **ret, char **ret_error);

int config_load(const char *path, Config **ret, char **ret_error) {
        return config_load_internal(path, LOAD_FILE, ret, ret_error);
}

int config_load_for_start(const char *path, Config **ret, char **ret_error) {
        return config_load_internal(path, LOAD_START, ret, ret_error);
}

int config_load_for_reload(const char *path, Config **ret, char **ret_error) {
        return config_load_internal(path, LOAD_RELOAD, ret, ret_error);
}

static int config_load_internal(const char *path, LoadMode mode, Config **ret, char **ret_error) {
        Parser p = { .path = path, .unreadable_identity_ok = mode == LOAD_RELOAD };
        _cleanup_free_ char *dir = NULL;
        Config *c = NULL;
        config_t lc;
        int r;

        assert(path);
        assert(ret);

        r = fileio_check_readable(path, NULL); /* libconfig would say "file I/O error" */
        if (r < 0)
                goto fail;

        c = config_new(path);
        if (!c) {
                r = -ENOMEM;
                goto fail;
        }

        config_init(&lc);
        if (strrchr(path, '/')) {
                dir = strndup(path, MAX(strrchr(path, '/') - path, 1));
                if (!dir) {
                        r = -ENOMEM;
                        goto fail_lc;
                }
                config_set_include_dir(&lc, dir);
                p.include_dir = dir;
        }
        p.lc = &lc;
        p.config = c;

        if (!config_read_file(&lc, path)) {
                _cleanup_free_ char *file = parser_file_name(&p, config_error_file(&lc));
                if (!file || asprintf(&p.error, "%s:%d: %s", file, config_error_line(&lc),
                                      config_error_text(&lc)) < 0) {
                        p.error = NULL;
                        r = -ENOMEM;
                } else
                        r = -EINVAL;
                goto fail_lc;
        }

        r = config_parse(&p);
        if (r >= 0 && mode == LOAD_START)
                r = parser_check_host(&p);
        if (r < 0)
                goto fail_lc;

        parser_done(&p);
        config_destroy(&lc);
        *ret = c;
        return 0;

fail_lc:
        parser_done(&p);
        config_destroy(&lc);
fail:
        config_free(c);
        if (ret_error) {
                if (!p.error && asprintf(&p.error, "%s: %s", path, strerror(-r)) < 0)
                        p.error = NULL;
                *ret_error = TAKE_PTR(p.error);
        }
        free(p.error);
        return r;
}
