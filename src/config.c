/* The configuration file: libconfig syntax in, a validated Config out. Owns
 * the schema (every key, its type, range and default) and its error messages. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config.h"
#include "identity.h"
#include "macro.h"
#include "router.h"

/* A config file is written by the administrator, but a typo must still not
 * become an allocation of gigabytes or a quadratic walk over a million
 * entries. These are far above any real cluster. */
#define STRING_MAX 4096
#define NODES_MAX 10000
#define LISTEN_MAX 64
#define ALLOW_MAX 1024
#define HOSTNAMES_MAX 64
#define FORWARDS_MAX 1024
#define SECONDS_MAX 3600.0
#define ACCOUNT_MAX 256
#define HTTP_PATH_MAX 1024
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *) NULL)->sun_path))

typedef struct NameIndex {
        const char *key;
        size_t index;
} NameIndex;

typedef struct Parser {
        const char *path;        /* as given to config_load() */
        const char *include_dir; /* where libconfig resolves relative @include names */
        const config_t *lc;
        Config *config;
        char *error; /* the first error */
        NameIndex *by_name; /* the nodes sorted by name, once they are checked */
        size_t n_by_name;
        const config_setting_t **node_elems; /* each node's group, for messages */
        config_t *nodes_lc; /* the nodes_file, while it is checked */
        bool unreadable_identity_ok; /* reload after a privilege drop */
} Parser;

typedef struct Key Key;
typedef int (*KeyParse)(Parser *p, const config_setting_t *s, void *base, const Key *k);
struct Key {
        const char *name;
        KeyParse parse;
        size_t offset;       /* of the field in 'base' */
        long long min, max;  /* integer keys */
        const Key *keys;     /* a nested section's keys */
};

#define FIELD(base, k, type) ((type *) ((char *) (base) + (k)->offset))

/* libconfig names an @include'd file as written; messages name it as it
 * was opened. */
static char *file_name(const Parser *p, const char *file) {
        char *s;

        if (!file)
                return strdup(p->path);
        if (file[0] == '/' || !p->include_dir || streq(file, p->path))
                return strdup(file);
        if (asprintf(&s, "%s/%s", p->include_dir, file) < 0)
                return NULL;
        return s;
}

/* "ssh.port", "nodes[2].name", "proxy.listen[0]". */
static char *setting_key(const config_setting_t *s) {
        const config_setting_t *parent = config_setting_parent(s);
        _cleanup_free_ char *prefix = NULL;
        char *k;
        int r;

        if (!parent)
                return strdup("");
        if (config_setting_parent(parent)) {
                prefix = setting_key(parent);
                if (!prefix)
                        return NULL;
        }
        if (config_setting_name(s))
                r = asprintf(&k, "%s%s%s", prefix ?: "", prefix ? "." : "", config_setting_name(s));
        else
                r = asprintf(&k, "%s[%d]", prefix ?: "", config_setting_index(s));
        return r < 0 ? NULL : k;
}

_printf_(4, 0) static int failv(Parser *p, const config_setting_t *s, const char *key,
                                const char *format, va_list ap) {
        _cleanup_free_ char *msg = NULL, *file = NULL;
        unsigned line = s ? config_setting_source_line(s) : 0;
        int r;

        assert(!p->error);

        if (vasprintf(&msg, format, ap) < 0)
                return -ENOMEM;
        file = file_name(p, s ? config_setting_source_file(s) : NULL);
        if (!file)
                return -ENOMEM;
        if (line > 0)
                r = asprintf(&p->error, "%s:%u: %s: %s", file, line, key, msg);
        else
                r = asprintf(&p->error, "%s: %s: %s", file, key, msg);
        if (r < 0) {
                p->error = NULL;
                return -ENOMEM;
        }
        /* values are quoted as written and may hold escaped newlines */
        for (char *c = p->error; *c; c++)
                if ((unsigned char) *c < ' ' || *c == 0x7f)
                        *c = '?';
        return -EINVAL;
}

/* The message names 'key'; the location is that of 's' (NULL: the file). */
_printf_(4, 5) static int fail_key(Parser *p, const config_setting_t *s, const char *key,
                                   const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = failv(p, s, key, format, ap);
        va_end(ap);
        return r;
}

_printf_(3, 4) static int fail(Parser *p, const config_setting_t *s, const char *format, ...) {
        _cleanup_free_ char *key = setting_key(s);
        va_list ap;
        int r;

        if (!key)
                return -ENOMEM;
        va_start(ap, format);
        r = failv(p, s, key, format, ap);
        va_end(ap);
        return r;
}

/* For each name that must appear in group 'g' but does not. */
static int require_members(Parser *p, const config_setting_t *g, const char *const *names) {
        for (const char *const *n = names; *n; n++) {
                _cleanup_free_ char *key = NULL, *prefix = NULL;

                if (config_setting_get_member(g, *n))
                        continue;
                prefix = setting_key(g);
                if (!prefix || asprintf(&key, "%s.%s", prefix, *n) < 0)
                        return -ENOMEM;
                return fail_key(p, g, key, "required key is missing");
        }
        return 0;
}

static const char *intern_file(Parser *p, const config_setting_t *s) {
        Config *c = p->config;
        _cleanup_free_ char *name = file_name(p, config_setting_source_file(s));
        size_t n = strv_length(c->files);
        char **v;

        if (!name)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (streq(c->files[i], name))
                        return c->files[i];
        v = realloc(c->files, (n + 2) * sizeof(char *));
        if (!v)
                return NULL;
        c->files = v;
        v[n] = TAKE_PTR(name);
        v[n + 1] = NULL;
        return v[n];
}

/* --- values -------------------------------------------------------------- */

/* RFC 1123 host names: labels of letters, digits and inner hyphens, 1..63
 * bytes each, 253 in all. 'lowercase' narrows it to the names Kubernetes
 * gives nodes (DNS-1123 subdomains). */
static bool dns_name_is_valid(const char *s, bool lowercase) {
        size_t n = strlen(s), label = 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i <= n; i++) {
                char ch = s[i];

                if (ch == '.' || ch == 0) {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (label == 0 && ch == '-')
                        return false;
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      (!lowercase && ch >= 'A' && ch <= 'Z')))
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}

/* An IP literal or a DNS name. A numeric last label ("10.0.0.256",
 * "10.1") is a mistyped address: resolvers would read it as inet_aton()
 * shorthand and connect somewhere else. */
static bool host_is_valid(const char *s) {
        const char *last;

        if (ipaddr_parse(s, NULL) >= 0)
                return true;
        if (!dns_name_is_valid(s, false))
                return false;
        last = strrchr(s, '.');
        last = last ? last + 1 : s;
        return strspn(last, "0123456789") != strlen(last);
}

static bool node_name_is_valid(const char *s) {
        return dns_name_is_valid(s, true);
}

static bool node_name_or_star_is_valid(const char *s) {
        return streq(s, "*") || node_name_is_valid(s);
}

static bool hostname_is_valid(const char *s) {
        return dns_name_is_valid(s, false);
}

/* User and group names: what getpwnam() and the SSH protocol can carry. */
static bool account_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > ACCOUNT_MAX)
                return false;
        for (const char *c = s; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f || *c == ':' || *c == '/')
                        return false;
        return true;
}

static bool type_is_integer(int type) {
        return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
}

static int read_string(Parser *p, const config_setting_t *s, const char **ret) {
        const char *v;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(p, s, "expected a string");
        v = config_setting_get_string(s);
        if (strlen(v) > STRING_MAX)
                return fail(p, s, "longer than %d bytes", STRING_MAX);
        *ret = v;
        return 0;
}

/* libconfig 1.5 keeps literals beyond 32 bits only when they carry an 'L';
 * bigger unsuffixed ones arrive truncated and cannot be told apart. */
static int read_integer(Parser *p, const config_setting_t *s, long long min, long long max,
                        long long *ret) {
        long long v;

        if (!type_is_integer(config_setting_type(s)))
                return fail(p, s, "expected an integer");
        v = config_setting_get_int64(s);
        if (v < min || v > max)
                return fail(p, s, "%lld is out of range (%lld..%lld)", v, min, max);
        *ret = v;
        return 0;
}

static int read_number(Parser *p, const config_setting_t *s, double *ret) {
        if (type_is_integer(config_setting_type(s)))
                *ret = (double) config_setting_get_int64(s);
        else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
                *ret = config_setting_get_float(s);
        else
                return fail(p, s, "expected a number");
        return 0;
}

static int set_string(char **field, const char *v, bool empty_is_null) {
        char *copy = NULL;

        if (!empty_is_null || *v) {
                copy = strdup(v);
                if (!copy)
                        return -ENOMEM;
        }
        free(*field);
        *field = copy;
        return 0;
}

/* Index of 'v' in the NULL-terminated 'choices', or an error listing them. */
static int read_choice(Parser *p, const config_setting_t *s, const char *const *choices,
                       int *ret) {
        char list[256] = "";
        const char *v;
        int r;

        r = read_string(p, s, &v);
        if (r < 0)
                return r;
        for (int i = 0; choices[i]; i++) {
                if (streq(v, choices[i])) {
                        *ret = i;
                        return 0;
                }
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
                         i == 0 ? "" : choices[i + 1] ? ", " : " or ", choices[i]);
        }
        return fail(p, s, "invalid value \"%s\" (expected %s)", v, list);
}

/* An ARRAY or LIST of at most 'max' strings. */
static int check_string_array(Parser *p, const config_setting_t *s, int max) {
        int n;

        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return fail(p, s, "expected an array of strings [ \"...\", ... ]");
        n = config_setting_length(s);
        if (n > max)
                return fail(p, s, "more than %d entries", max);
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v;
                int r = read_string(p, e, &v);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int read_strv(Parser *p, const config_setting_t *s, int max, bool (*valid)(const char *),
                     const char *what, char ***ret) {
        _cleanup_strv_free_ char **v = NULL;
        int n, r;

        r = check_string_array(p, s, max);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *x = config_setting_get_string(e);

                if (!valid(x))
                        return fail(p, e, "invalid %s \"%s\"", what, x);
                v[i] = strdup(x);
                if (!v[i])
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(v);
        return 0;
}

static int read_hostport(Parser *p, const config_setting_t *s, char **ret_host,
                         uint16_t *ret_port) {
        _cleanup_free_ char *host = NULL;
        const char *v;
        uint16_t port;
        int r;

        r = read_string(p, s, &v);
        if (r < 0)
                return r;
        r = hostport_split(v, &host, &port);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !host_is_valid(host))
                return fail(p, s, "invalid target \"%s\" (expected \"HOST:PORT\" or \"[IPV6]:PORT\")", v);
        free(*ret_host);
        *ret_host = TAKE_PTR(host);
        *ret_port = port;
        return 0;
}

static int read_listen(Parser *p, const config_setting_t *s, const char *v, ListenAddress *ret) {
        int r = listen_address_parse(v, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(p, s,
                            "invalid listen address \"%s\" (expected \"unix:/PATH\" or \"tcp:IP:PORT\")",
                            v);
        return 0;
}

/* --- keys ---------------------------------------------------------------- */

static int parse_group(Parser *p, const config_setting_t *g, void *base, const Key *keys) {
        if (!config_setting_is_group(g))
                return fail(p, g, "expected a group { ... }");
        for (int i = 0; i < config_setting_length(g); i++) {
                const config_setting_t *s = config_setting_get_elem(g, i);
                const Key *k = keys;
                int r;

                while (k->name && !streq(k->name, config_setting_name(s)))
                        k++;
                if (!k->name)
                        return fail(p, s, "unknown key");
                r = k->parse(p, s, base, k);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int key_section(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return parse_group(p, s, FIELD(base, k, char), k->keys);
}

static int key_node_name(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!node_name_is_valid(v))
                return fail(p, s,
                            "invalid node name \"%s\" (expected a DNS-1123 subdomain: lowercase "
                            "letters, digits, '-' and '.')",
                            v);
        return set_string(FIELD(base, k, char *), v, false);
}

static int key_host(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!host_is_valid(v))
                return fail(p, s, "invalid address \"%s\" (expected an IP address or a DNS name)", v);
        return set_string(FIELD(base, k, char *), v, false);
}

/* k->min: 0 if "" means unset (NULL). */
static int key_account(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!*v && k->min > 0)
                return fail(p, s, "must not be empty");
        if (*v && !account_is_valid(v))
                return fail(p, s, "invalid name \"%s\"", v);
        return set_string(FIELD(base, k, char *), v, true);
}

/* k->min: 0 if "" means unset (NULL); k->max: longest allowed. */
static int key_path(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!*v && k->min == 0)
                return set_string(FIELD(base, k, char *), v, true);
        if (v[0] != '/')
                return fail(p, s, "\"%s\" is not an absolute path", v);
        if (k->max > 0 && strlen(v) > (size_t) k->max)
                return fail(p, s, "path longer than %lld bytes", k->max);
        return set_string(FIELD(base, k, char *), v, true);
}

static int key_unsigned(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        long long v = 0;
        int r = read_integer(p, s, k->min, k->max, &v);
        if (r < 0)
                return r;
        *FIELD(base, k, unsigned) = (unsigned) v;
        return 0;
}

static int key_port(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        long long v = 0;
        int r = read_integer(p, s, 1, 65535, &v);
        if (r < 0)
                return r;
        *FIELD(base, k, uint16_t) = (uint16_t) v;
        return 0;
}

static int key_seconds(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        double v = 0;
        int r = read_number(p, s, &v);
        if (r < 0)
                return r;
        if (!(v > 0 && v <= SECONDS_MAX))
                return fail(p, s, "%g is out of range (more than 0, at most %g seconds)", v,
                            SECONDS_MAX);
        *FIELD(base, k, double) = v;
        return 0;
}

static int key_fraction(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        double v = 0;
        int r = read_number(p, s, &v);
        if (r < 0)
                return r;
        if (!(v >= 0 && v <= 1))
                return fail(p, s, "%g is out of range (0..1)", v);
        *FIELD(base, k, double) = v;
        return 0;
}

static int key_bool(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return fail(p, s, "expected a boolean (true or false)");
        *FIELD(base, k, bool) = config_setting_get_bool(s);
        return 0;
}

/* libconfig has no octal literals (0660 would be 660), hence a string. */
static int key_mode(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        size_t n;
        unsigned long m;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(p, s, "expected an octal mode in a string, such as \"0660\"");
        v = config_setting_get_string(s);
        n = strlen(v);
        if (n == 0 || n > 4 || strspn(v, "01234567") != n)
                return fail(p, s, "invalid mode \"%s\" (expected octal, such as \"0660\")", v);
        m = strtoul(v, NULL, 8);
        if (m > 0777)
                return fail(p, s, "mode \"%s\" is out of range (0..0777)", v);
        *FIELD(base, k, mode_t) = (mode_t) m;
        return 0;
}

static int key_host_key_policy(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const choices[] = { "strict", "accept-new", NULL };
        int i, r = read_choice(p, s, choices, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, HostKeyPolicy) = i == 0 ? HOST_KEY_POLICY_STRICT : HOST_KEY_POLICY_ACCEPT_NEW;
        return 0;
}

static int key_fallback(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const choices[] = { "any", "none", NULL };
        int i, r = read_choice(p, s, choices, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, Fallback) = i == 0 ? FALLBACK_ANY : FALLBACK_NONE;
        return 0;
}

static int key_probe_type(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const choices[] = { "none", "tcp", "http", "https", NULL };
        static const ProbeType types[] = { PROBE_NONE, PROBE_TCP, PROBE_HTTP, PROBE_HTTPS };
        int i, r = read_choice(p, s, choices, &i);
        if (r < 0)
                return r;
        *FIELD(base, k, ProbeType) = types[i];
        return 0;
}

static int key_log_level(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        r = log_level_from_string(v);
        if (r < 0)
                return fail(p, s,
                            "invalid level \"%s\" (expected \"error\", \"warning\", \"notice\", "
                            "\"info\" or \"debug\")",
                            v);
        *FIELD(base, k, int) = r;
        return 0;
}

static int key_log_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        r = log_target_from_string(v);
        if (r < 0)
                return fail(p, s,
                            "invalid target \"%s\" (expected \"auto\", \"journal\", \"syslog\" "
                            "or \"stderr\")",
                            v);
        *FIELD(base, k, LogTarget) = (LogTarget) r;
        return 0;
}

static int key_proxy_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProxy *x = base;
        int n, r;

        r = check_string_array(p, s, LISTEN_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        if (n == 0)
                return fail(p, s, "must name at least one address");
        x->listen = calloc(n, sizeof(ListenAddress));
        if (!x->listen)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);
                ListenAddress a;

                r = read_listen(p, e, v, &a);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < x->n_listen; j++)
                        if (listen_address_equal(&x->listen[j], &a)) {
                                listen_address_done(&a);
                                return fail(p, e, "duplicate listen address \"%s\"", v);
                        }
                x->listen[x->n_listen++] = a;
        }
        return 0;
}

static int key_proxy_allow(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProxy *x = base;
        int n, r;

        r = check_string_array(p, s, ALLOW_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        if (n == 0)
                return fail(p, s, "must name at least one rule (\"nodes\" admits the nodes only)");
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
                        return fail(p, e,
                                    "invalid allow rule \"%s\" (expected \"nodes[:PORTS]\" or "
                                    "\"CIDR[:PORTS]\", PORTS like \"10250,10248\" or \"1-1024\")",
                                    v);
                x->n_allow++;
        }
        return 0;
}

static int key_metrics_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigAdmin *a = base;
        const char *v;
        int r;

        r = read_string(p, s, &v);
        if (r < 0 || !*v)
                return r;
        r = read_listen(p, s, v, &a->metrics_listen);
        if (r < 0)
                return r;
        a->has_metrics_listen = true;
        /* no authentication on it: metrics are for scrapers over TCP, and
         * the admin socket is where local users go */
        if (a->metrics_listen.kind != LISTEN_TCP)
                return fail(p, s, "\"%s\" is not a TCP address (expected \"tcp:IP:PORT\"; the admin "
                               "socket serves /metrics locally)", v);
        return 0;
}

static int key_probe(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        /* a probe section without a type asks for the usual kubelet probe */
        ((Config *) base)->probe.type = PROBE_HTTP;
        return key_section(p, s, base, k);
}

static int key_probe_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigProbe *x = base;
        return read_hostport(p, s, &x->target_host, &x->target_port);
}

/* It goes into a request line: no spaces, no control bytes. */
static int key_probe_path(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (v[0] != '/')
                return fail(p, s, "\"%s\" does not start with \"/\"", v);
        if (strlen(v) > HTTP_PATH_MAX)
                return fail(p, s, "longer than %d bytes", HTTP_PATH_MAX);
        for (const char *c = v; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f)
                        return fail(p, s, "\"%s\" holds a space or a control character", v);
        return set_string(FIELD(base, k, char *), v, false);
}

static int key_hostnames(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return read_strv(p, s, HOSTNAMES_MAX, hostname_is_valid, "hostname",
                         FIELD(base, k, char **));
}

static int key_pod_cidr(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigNode *n = base;
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (cidr_parse(v, &n->pod_cidr) < 0)
                return fail(p, s,
                            "invalid CIDR \"%s\" (expected ADDRESS/PREFIX with no host bits set, "
                            "such as \"10.244.1.0/24\")",
                            v);
        n->has_pod_cidr = true;
        return 0;
}

static const Key node_keys[] = {
        { "name", key_node_name, offsetof(ConfigNode, name) },
        { "address", key_host, offsetof(ConfigNode, address) },
        { "port", key_port, offsetof(ConfigNode, port) },
        { "hostnames", key_hostnames, offsetof(ConfigNode, hostnames) },
        { "pod_cidr", key_pod_cidr },
        {}
};

/* A "( { ... }, ... )" list; "[]" is how an empty one often gets written. */
static int check_group_list(Parser *p, const config_setting_t *s, int max) {
        if (!config_setting_is_list(s) &&
            !(config_setting_is_array(s) && config_setting_length(s) == 0))
                return fail(p, s, "expected a list of groups ( { ... }, ... )");
        if (config_setting_length(s) > max)
                return fail(p, s, "more than %d entries", max);
        return 0;
}

static int key_nodes(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const required[] = { "name", "address", NULL };
        Config *c = base;
        const config_setting_t **elems;
        ConfigNode *nodes;
        int n, r;

        r = check_group_list(p, s, NODES_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        if (c->n_nodes + (size_t) n > NODES_MAX)
                return fail(p, s, "more than %d nodes in all", NODES_MAX);
        /* appends: the nodes_file's nodes follow the main file's */
        nodes = realloc(c->nodes, MAX(c->n_nodes + (size_t) n, (size_t) 1) * sizeof(ConfigNode));
        if (!nodes)
                return -ENOMEM;
        c->nodes = nodes;
        elems = realloc(p->node_elems, MAX(c->n_nodes + (size_t) n, (size_t) 1) * sizeof(*elems));
        if (!elems)
                return -ENOMEM;
        p->node_elems = elems;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                ConfigNode *node = &c->nodes[c->n_nodes];

                *node = (ConfigNode) {};
                p->node_elems[c->n_nodes] = e;
                c->n_nodes++;
                node->line = config_setting_source_line(e);
                node->file = intern_file(p, e);
                if (!node->file)
                        return -ENOMEM;
                r = parse_group(p, e, node, node_keys);
                if (r < 0)
                        return r;
                r = require_members(p, e, required);
                if (r < 0)
                        return r;
                if (!node->hostnames) {
                        node->hostnames = calloc(1, sizeof(char *));
                        if (!node->hostnames)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int check_readable(const char *path, mode_t *ret_type);

/* The nodes_file holds "nodes = ( ... );" and nothing else; its nodes join
 * the main file's. A file that does not exist yet (the sync job has not run)
 * is an empty list, noted in c->nodes_file_missing. */
static int read_nodes_file(Parser *p) {
        Config *c = p->config;
        const config_setting_t *root, *list;
        mode_t type = 0;
        int r;

        if (!c->nodes_file)
                return 0;
        r = check_readable(c->nodes_file, &type);
        if (r == -ENOENT) {
                c->nodes_file_missing = true;
                return 0;
        }
        if (r < 0) {
                if (asprintf(&p->error, "%s: %s", c->nodes_file, strerror(-r)) < 0)
                        p->error = NULL;
                return r;
        }
        /* libconfig would wait on a FIFO for good, and the daemon reads this
         * file again on its own whenever it changes */
        if (!S_ISREG(type)) {
                if (asprintf(&p->error, "%s: not a regular file", c->nodes_file) < 0)
                        p->error = NULL;
                return -EINVAL;
        }
        p->nodes_lc = calloc(1, sizeof(config_t));
        if (!p->nodes_lc)
                return -ENOMEM;
        config_init(p->nodes_lc);
        if (!config_read_file(p->nodes_lc, c->nodes_file)) {
                if (asprintf(&p->error, "%s:%d: %s", c->nodes_file, config_error_line(p->nodes_lc),
                             config_error_text(p->nodes_lc)) < 0)
                        p->error = NULL;
                return -EINVAL;
        }
        root = config_root_setting(p->nodes_lc);
        for (int i = 0; i < config_setting_length(root); i++) {
                const config_setting_t *e = config_setting_get_elem(root, i);
                if (!streq(config_setting_name(e), "nodes"))
                        return fail(p, e, "unknown key in nodes_file (it holds only \"nodes\")");
        }
        list = config_lookup(p->nodes_lc, "nodes");
        if (!list)
                return 0;
        return key_nodes(p, list, c, NULL);
}

static int key_forward_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        return read_listen(p, s, v, FIELD(base, k, ListenAddress));
}

static int key_forward_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigForward *f = base;
        return read_hostport(p, s, &f->target_host, &f->target_port);
}

static const Key forward_keys[] = {
        { "listen", key_forward_listen, offsetof(ConfigForward, listen) },
        { "node", key_node_name, offsetof(ConfigForward, node) },
        { "target", key_forward_target },
        {}
};

static int key_forwards(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const required[] = { "listen", "node", "target", NULL };
        Config *c = base;
        int n, r;

        r = check_group_list(p, s, FORWARDS_MAX);
        if (r < 0)
                return r;
        n = config_setting_length(s);
        c->forwards = calloc(MAX(n, 1), sizeof(ConfigForward));
        if (!c->forwards)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                ConfigForward *f = &c->forwards[c->n_forwards++];

                f->line = config_setting_source_line(e);
                r = parse_group(p, e, f, forward_keys);
                if (r < 0)
                        return r;
                r = require_members(p, e, required);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int key_upstream(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = read_string(p, s, &v);
        if (r < 0)
                return r;
        if (strncmp(v, "unix:", 5) == 0) {
                if (v[5] != '/' || strlen(v + 5) >= SUN_PATH_MAX)
                        return fail(p, s, "\"%s\": the socket path must be absolute and shorter than %zu bytes",
                                    v, SUN_PATH_MAX);
        } else if (strncmp(v, "tcp:", 4) == 0) {
                _cleanup_free_ char *host = NULL;
                uint16_t port;

                r = hostport_split(v + 4, &host, &port);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !host_is_valid(host))
                        return fail(p, s, "invalid upstream \"%s\" (expected \"tcp:HOST:PORT\")", v);
        } else
                return fail(p, s, "invalid upstream \"%s\" (expected \"unix:/PATH\" or \"tcp:HOST:PORT\")", v);
        return set_string(FIELD(base, k, char *), v, false);
}

static int key_konnectivity_nodes(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return read_strv(p, s, NODES_MAX, node_name_or_star_is_valid, "node name",
                         FIELD(base, k, char **));
}

static const Key konnectivity_keys[] = {
        { "upstream", key_upstream, offsetof(ConfigKonnectivity, upstream) },
        { "nodes", key_konnectivity_nodes, offsetof(ConfigKonnectivity, nodes) },
        { "fallback_to_ssh", key_bool, offsetof(ConfigKonnectivity, fallback_to_ssh) },
        { "ca_file", key_path, offsetof(ConfigKonnectivity, ca_file), .max = PATH_MAX },
        { "cert_file", key_path, offsetof(ConfigKonnectivity, cert_file), .max = PATH_MAX },
        { "key_file", key_path, offsetof(ConfigKonnectivity, key_file), .max = PATH_MAX },
        { "server_name", key_host, offsetof(ConfigKonnectivity, server_name) },
        { "probe_port", key_port, offsetof(ConfigKonnectivity, probe_port) },
        {}
};

static int key_konnectivity(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const required[] = { "upstream", NULL };
        int r = key_section(p, s, base, k);
        if (r < 0)
                return r;
        return require_members(p, s, required);
}

static const Key ssh_keys[] = {
        { "user", key_account, offsetof(ConfigSsh, user), .min = 1 },
        { "identity", key_path, offsetof(ConfigSsh, identity), .min = 1, .max = PATH_MAX },
        { "known_hosts", key_path, offsetof(ConfigSsh, known_hosts), .min = 1, .max = PATH_MAX },
        { "host_key_policy", key_host_key_policy, offsetof(ConfigSsh, host_key_policy) },
        { "port", key_port, offsetof(ConfigSsh, port) },
        { "connect_timeout", key_seconds, offsetof(ConfigSsh, connect_timeout) },
        { "keepalive_interval", key_seconds, offsetof(ConfigSsh, keepalive_interval) },
        { "keepalive_count", key_unsigned, offsetof(ConfigSsh, keepalive_count), 1, 100 },
        { "pool_size", key_unsigned, offsetof(ConfigSsh, pool_size), 1, 64 },
        { "max_streams_per_session", key_unsigned, offsetof(ConfigSsh, max_streams_per_session), 1, 65535 },
        { "max_handshakes", key_unsigned, offsetof(ConfigSsh, max_handshakes), 1, 100000 },
        {}
};

static const Key proxy_keys[] = {
        { "listen", key_proxy_listen },
        { "socket_mode", key_mode, offsetof(ConfigProxy, socket_mode) },
        { "socket_group", key_account, offsetof(ConfigProxy, socket_group) },
        { "open_timeout", key_seconds, offsetof(ConfigProxy, open_timeout) },
        { "header_timeout", key_seconds, offsetof(ConfigProxy, header_timeout) },
        { "allow", key_proxy_allow },
        { "fallback", key_fallback, offsetof(ConfigProxy, fallback) },
        { "max_clients", key_unsigned, offsetof(ConfigProxy, max_clients), 1, 1000000 },
        {}
};

static const Key probe_keys[] = {
        { "type", key_probe_type, offsetof(ConfigProbe, type) },
        { "target", key_probe_target },
        { "path", key_probe_path, offsetof(ConfigProbe, path) },
        { "interval", key_seconds, offsetof(ConfigProbe, interval) },
        { "timeout", key_seconds, offsetof(ConfigProbe, timeout) },
        { "ca_file", key_path, offsetof(ConfigProbe, ca_file), .max = PATH_MAX },
        {}
};

static const Key admin_keys[] = {
        { "socket", key_path, offsetof(ConfigAdmin, socket), .min = 1, .max = SUN_PATH_MAX - 1 },
        { "metrics_listen", key_metrics_listen },
        { "ready_min_fraction", key_fraction, offsetof(ConfigAdmin, ready_min_fraction) },
        {}
};

static const Key log_keys[] = {
        { "level", key_log_level, offsetof(ConfigLog, level) },
        { "target", key_log_target, offsetof(ConfigLog, target) },
        {}
};

static const Key top_keys[] = {
        { "ssh", key_section, offsetof(Config, ssh), .keys = ssh_keys },
        { "proxy", key_section, offsetof(Config, proxy), .keys = proxy_keys },
        { "probe", key_probe, offsetof(Config, probe), .keys = probe_keys },
        { "admin", key_section, offsetof(Config, admin), .keys = admin_keys },
        { "log", key_section, offsetof(Config, log), .keys = log_keys },
        { "user", key_account, offsetof(Config, user) },
        { "drain_timeout", key_seconds, offsetof(Config, drain_timeout) },
        { "nodes", key_nodes },
        { "nodes_file", key_path, offsetof(Config, nodes_file), .max = PATH_MAX },
        { "forwards", key_forwards },
        { "konnectivity", key_konnectivity, offsetof(Config, konnectivity), .keys = konnectivity_keys },
        {}
};

/* --- whole-file checks --------------------------------------------------- */

static int name_index_compare(const void *a, const void *b) {
        const NameIndex *x = a, *y = b;
        int r = strcmp(x->key, y->key);
        if (r != 0)
                return r;
        return x->index < y->index ? -1 : x->index > y->index;
}

static int name_index_compare_key(const void *a, const void *b) {
        return strcmp(((const NameIndex *) a)->key, ((const NameIndex *) b)->key);
}

/* Sorts 'v'; finds the earliest entry that repeats an earlier one's key. */
static bool name_index_find_duplicate(NameIndex *v, size_t n, size_t *ret_first, size_t *ret_dup) {
        size_t head = 0, first = 0, dup = SIZE_MAX;

        qsort(v, n, sizeof(NameIndex), name_index_compare);
        for (size_t i = 1; i < n; i++) {
                if (!streq(v[i].key, v[i - 1].key)) {
                        head = i;
                        continue;
                }
                if (v[i].index < dup) {
                        first = v[head].index;
                        dup = v[i].index;
                }
        }
        if (dup == SIZE_MAX)
                return false;
        *ret_first = first;
        *ret_dup = dup;
        return true;
}

static const config_setting_t *member(const config_setting_t *list, size_t i, const char *name) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned) i);
        return e ? config_setting_get_member(e, name) ?: e : NULL;
}

/* The setting 'name' of node i (from either file), or its group. */
static const config_setting_t *node_member(const Parser *p, size_t i, const char *name) {
        const config_setting_t *e = p->node_elems[i];
        return config_setting_get_member(e, name) ?: e;
}

static int fail_duplicate(Parser *p, const config_setting_t *s, const ConfigNode *first,
                          const char *what) {
        _cleanup_free_ char *file = file_name(p, config_setting_source_file(s));

        if (!file)
                return -ENOMEM;
        if (streq(file, first->file))
                return fail(p, s, "%s (first defined at line %d)", what, first->line);
        return fail(p, s, "%s (first defined at %s:%d)", what, first->file, first->line);
}

static int check_nodes(Parser *p) {
        Config *c = p->config;
        _cleanup_free_ NameIndex *endpoints = NULL;
        char **keys = NULL;
        size_t first, dup;
        int r = 0;

        if (c->n_nodes == 0)
                return 0;

        p->by_name = calloc(c->n_nodes, sizeof(NameIndex));
        endpoints = calloc(c->n_nodes, sizeof(NameIndex));
        keys = calloc(c->n_nodes, sizeof(char *));
        if (!p->by_name || !endpoints || !keys) {
                r = -ENOMEM;
                goto out;
        }
        p->n_by_name = c->n_nodes;
        for (size_t i = 0; i < c->n_nodes; i++) {
                const ConfigNode *n = &c->nodes[i];
                char buf[INET6_ADDRSTRLEN];
                IpAddr ip;

                p->by_name[i] = (NameIndex) { n->name, i };
                /* one key per way of writing the same endpoint */
                if (ipaddr_parse(n->address, &ip) >= 0)
                        r = asprintf(&keys[i], "%s %u", ipaddr_to_string(&ip, buf, sizeof(buf)), n->port);
                else
                        r = asprintf(&keys[i], "%s %u", n->address, n->port);
                if (r < 0) {
                        keys[i] = NULL;
                        r = -ENOMEM;
                        goto out;
                }
                for (char *ch = keys[i]; *ch; ch++)
                        if (*ch >= 'A' && *ch <= 'Z')
                                *ch += 'a' - 'A';
                endpoints[i] = (NameIndex) { keys[i], i };
        }

        if (name_index_find_duplicate(p->by_name, c->n_nodes, &first, &dup)) {
                _cleanup_free_ char *what = NULL;
                if (asprintf(&what, "duplicate node name \"%s\"", c->nodes[dup].name) < 0)
                        r = -ENOMEM;
                else
                        r = fail_duplicate(p, node_member(p, dup, "name"), &c->nodes[first], what);
                goto out;
        }
        if (name_index_find_duplicate(endpoints, c->n_nodes, &first, &dup)) {
                const ConfigNode *n = &c->nodes[dup];
                _cleanup_free_ char *what = NULL;
                bool v6 = strchr(n->address, ':');
                if (asprintf(&what, "duplicate address and port %s%s%s:%u, also used by node \"%s\"",
                             v6 ? "[" : "", n->address, v6 ? "]" : "", n->port,
                             c->nodes[first].name) < 0)
                        r = -ENOMEM;
                else
                        r = fail_duplicate(p, node_member(p, dup, "address"), &c->nodes[first], what);
                goto out;
        }
        /* by_name stays sorted by name, for node_known() */
        r = 0;
out:
        for (size_t i = 0; keys && i < c->n_nodes; i++)
                free(keys[i]);
        free(keys);
        return r;
}

/* Whether a reference to a node can be checked now: with a nodes_file, the
 * node may come from there. */
static bool node_known(const Parser *p, const char *name) {
        NameIndex key = { name, 0 };

        if (p->config->nodes_file || streq(name, "*"))
                return true;
        return p->n_by_name > 0 &&
               bsearch(&key, p->by_name, p->n_by_name, sizeof(NameIndex), name_index_compare_key);
}

static int check_references(Parser *p) {
        const Config *c = p->config;
        const config_setting_t *list = config_lookup(p->lc, "forwards");

        for (size_t i = 0; i < c->n_forwards; i++) {
                const ConfigForward *f = &c->forwards[i];

                if (!node_known(p, f->node))
                        return fail(p, member(list, i, "node"), "no node named \"%s\" in nodes", f->node);
                for (size_t j = 0; j < c->proxy.n_listen; j++)
                        if (listen_address_equal(&f->listen, &c->proxy.listen[j]))
                                return fail(p, member(list, i, "listen"), "already used by proxy.listen[%zu]", j);
                for (size_t j = 0; j < i; j++)
                        if (listen_address_equal(&f->listen, &c->forwards[j].listen))
                                return fail(p, member(list, i, "listen"), "already used by forwards[%zu] (line %d)",
                                            j, c->forwards[j].line);
        }

        list = config_lookup(p->lc, "konnectivity.nodes");
        for (size_t i = 0; c->konnectivity.nodes[i]; i++)
                if (!node_known(p, c->konnectivity.nodes[i]))
                        return fail(p, config_setting_get_elem(list, (unsigned) i),
                                    "no node named \"%s\" in nodes", c->konnectivity.nodes[i]);

        if (c->konnectivity.upstream) {
                const ConfigKonnectivity *k = &c->konnectivity;
                bool tls = k->ca_file || k->cert_file || k->key_file || k->server_name;
                if (tls && strncmp(k->upstream, "tcp:", 4) != 0)
                        return fail_key(p, config_lookup(p->lc, "konnectivity.upstream"), "konnectivity.upstream",
                                        "TLS settings need a tcp: upstream (a unix socket is local)");
                if (tls && !k->ca_file)
                        return fail_key(p, config_lookup(p->lc, "konnectivity"), "konnectivity.ca_file",
                                        "TLS to the upstream needs ca_file to check its certificate");
                if (!k->cert_file != !k->key_file)
                        return fail_key(p, config_lookup(p->lc, k->cert_file ? "konnectivity.cert_file"
                                                                               : "konnectivity.key_file"),
                                        k->cert_file ? "konnectivity.cert_file" : "konnectivity.key_file",
                                        "cert_file and key_file go together");
        }
        if (c->admin.has_metrics_listen)
                for (size_t j = 0; j < c->proxy.n_listen; j++)
                        if (listen_address_equal(&c->admin.metrics_listen, &c->proxy.listen[j]))
                                return fail(p, config_lookup(p->lc, "admin.metrics_listen"),
                                            "already used by proxy.listen[%zu]", j);
        for (size_t j = 0; j < c->proxy.n_listen; j++)
                if (c->proxy.listen[j].kind == LISTEN_UNIX && streq(c->proxy.listen[j].path, c->admin.socket))
                        return fail_key(p, config_lookup(p->lc, "admin.socket"), "admin.socket",
                                        "already used by proxy.listen[%zu]", j);
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
        return fail_key(p, config_lookup(p->lc, "ssh.identity"), "ssh.identity", "%s",
                        reason ?: strerror(-r));
}

/* --- the Config object --------------------------------------------------- */

static Config *config_new(const char *path) {
        Config *c = calloc(1, sizeof(Config));
        if (!c)
                return NULL;

        c->ssh = (ConfigSsh) {
                .user = strdup("sshtund"),
                .identity = strdup("/etc/sshtund/id_ed25519"),
                .known_hosts = strdup("/etc/sshtund/known_hosts"),
                .host_key_policy = HOST_KEY_POLICY_STRICT,
                .port = 22,
                .connect_timeout = 10,
                .keepalive_interval = 5,
                .keepalive_count = 3,
                .pool_size = 1,
                .max_streams_per_session = 256,
                .max_handshakes = 64,
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
                .ready_min_fraction = 0.5,
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

        if (!c->ssh.user || !c->ssh.identity || !c->ssh.known_hosts || !c->probe.target_host ||
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

        r = parse_group(p, config_root_setting(p->lc), p->config, top_keys);
        if (r < 0)
                return r;
        r = read_nodes_file(p);
        if (r < 0)
                return r;
        r = config_complete(p->config);
        if (r < 0)
                return r;
        r = check_nodes(p);
        if (r < 0)
                return r;
        r = check_references(p);
        if (r < 0)
                return r;
        return check_identity(p);
}

/* libconfig reports an unreadable file as "file I/O error"; say why.
 * O_NONBLOCK: opening a FIFO to look at it does not wait for a writer. */
static int check_readable(const char *path, mode_t *ret_type) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (ret_type)
                *ret_type = st.st_mode & S_IFMT;
        return 0;
}

static void parser_done(Parser *p) {
        free(p->by_name);
        free(p->node_elems);
        if (p->nodes_lc) {
                config_destroy(p->nodes_lc);
                free(p->nodes_lc);
        }
}

static int config_load_internal(const char *path, bool reload, Config **ret, char **ret_error);

int config_load(const char *path, Config **ret, char **ret_error) {
        return config_load_internal(path, false, ret, ret_error);
}

int config_load_for_reload(const char *path, Config **ret, char **ret_error) {
        return config_load_internal(path, true, ret, ret_error);
}

static int config_load_internal(const char *path, bool reload, Config **ret, char **ret_error) {
        Parser p = { .path = path, .unreadable_identity_ok = reload };
        _cleanup_free_ char *dir = NULL;
        Config *c = NULL;
        config_t lc;
        int r;

        assert(path);
        assert(ret);

        r = check_readable(path, NULL);
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
                _cleanup_free_ char *file = file_name(&p, config_error_file(&lc));
                if (!file || asprintf(&p.error, "%s:%d: %s", file, config_error_line(&lc),
                                      config_error_text(&lc)) < 0) {
                        p.error = NULL;
                        r = -ENOMEM;
                } else
                        r = -EINVAL;
                goto fail_lc;
        }

        r = config_parse(&p);
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

const ConfigNode *config_find_node(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_nodes; i++)
                if (streq(c->nodes[i].name, name))
                        return &c->nodes[i];
        return NULL;
}

bool config_node_same_endpoint(const ConfigNode *a, const ConfigNode *b) {
        return a && b && a->port == b->port && streq_ptr(a->address, b->address);
}
