/* Reading one setting: where it is (FILE:LINE: KEY in every message), its
 * typed value within bounds, and a group checked against its table of keys;
 * the key types, each read and written (sshtund -T) side by side. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config-internal.h"
#include "macro.h"

/* libconfig names an @include'd file as written; messages name it as it
 * was opened. */
char *parser_file_name(const Parser *p, const char *file) {
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
        file = parser_file_name(p, s ? config_setting_source_file(s) : NULL);
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
_printf_(4, 5) int parser_fail_key(Parser *p, const config_setting_t *s, const char *key,
                                   const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = failv(p, s, key, format, ap);
        va_end(ap);
        return r;
}

_printf_(3, 4) int parser_fail(Parser *p, const config_setting_t *s, const char *format, ...) {
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
int parser_require_members(Parser *p, const config_setting_t *g, const char *const *names) {
        for (const char *const *n = names; *n; n++) {
                _cleanup_free_ char *key = NULL, *prefix = NULL;

                if (config_setting_get_member(g, *n))
                        continue;
                prefix = setting_key(g);
                if (!prefix || asprintf(&key, "%s.%s", prefix, *n) < 0)
                        return -ENOMEM;
                return parser_fail_key(p, g, key, "required key is missing");
        }
        return 0;
}

/* --- values -------------------------------------------------------------- */

/* RFC 1123 host names: labels of letters, digits and inner hyphens, 1..63
 * bytes each, 253 in all. 'lowercase' narrows it to the names Kubernetes
 * gives nodes (DNS-1123 subdomains). */
bool dns_name_is_valid(const char *s, bool lowercase) {
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
bool host_is_valid(const char *s) {
        const char *last;

        if (ipaddr_parse(s, NULL) >= 0)
                return true;
        if (!dns_name_is_valid(s, false))
                return false;
        last = strrchr(s, '.');
        last = last ? last + 1 : s;
        return strspn(last, "0123456789") != strlen(last);
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

int parser_read_string(Parser *p, const config_setting_t *s, const char **ret) {
        const char *v;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return parser_fail(p, s, "expected a string");
        v = config_setting_get_string(s);
        if (strlen(v) > STRING_MAX)
                return parser_fail(p, s, "longer than %d bytes", STRING_MAX);
        *ret = v;
        return 0;
}

/* libconfig 1.5 keeps literals beyond 32 bits only when they carry an 'L';
 * bigger unsuffixed ones arrive truncated and cannot be told apart. */
static int read_integer(Parser *p, const config_setting_t *s, long long min, long long max,
                        long long *ret) {
        long long v;

        if (!type_is_integer(config_setting_type(s)))
                return parser_fail(p, s, "expected an integer");
        v = config_setting_get_int64(s);
        if (v < min || v > max)
                return parser_fail(p, s, "%lld is out of range (%lld..%lld)", v, min, max);
        *ret = v;
        return 0;
}

static int read_number(Parser *p, const config_setting_t *s, double *ret) {
        if (type_is_integer(config_setting_type(s)))
                *ret = (double) config_setting_get_int64(s);
        else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
                *ret = config_setting_get_float(s);
        else
                return parser_fail(p, s, "expected a number");
        return 0;
}

int field_set_string(char **field, const char *v, bool empty_is_null) {
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
int parser_read_choice(Parser *p, const config_setting_t *s, const char *const *choices,
                       int *ret) {
        char list[256] = "";
        const char *v;
        int r;

        r = parser_read_string(p, s, &v);
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
        return parser_fail(p, s, "invalid value \"%s\" (expected %s)", v, list);
}

/* An ARRAY or LIST of at most 'max' strings. */
int parser_check_string_array(Parser *p, const config_setting_t *s, int max) {
        int n;

        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return parser_fail(p, s, "expected an array of strings [ \"...\", ... ]");
        n = config_setting_length(s);
        if (n > max)
                return parser_fail(p, s, "more than %d entries", max);
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v;
                int r = parser_read_string(p, e, &v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int parser_read_strv(Parser *p, const config_setting_t *s, int max, bool (*valid)(const char *),
                     const char *what, char ***ret) {
        _cleanup_strv_free_ char **v = NULL;
        int n, r;

        r = parser_check_string_array(p, s, max);
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
                        return parser_fail(p, e, "invalid %s \"%s\"", what, x);
                v[i] = strdup(x);
                if (!v[i])
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(v);
        return 0;
}

int parser_read_hostport(Parser *p, const config_setting_t *s, char **ret_host,
                         uint16_t *ret_port) {
        _cleanup_free_ char *host = NULL;
        const char *v;
        uint16_t port;
        int r;

        r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        r = hostport_split(v, &host, &port);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !host_is_valid(host))
                return parser_fail(p, s, "invalid target \"%s\" (expected \"HOST:PORT\" or \"[IPV6]:PORT\")",
                                   v);
        free(*ret_host);
        *ret_host = TAKE_PTR(host);
        *ret_port = port;
        return 0;
}

int parser_read_listen(Parser *p, const config_setting_t *s, const char *v, ListenAddress *ret) {
        int r = listen_address_parse(v, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return parser_fail(p, s, "invalid listen address \"%s\" (expected \"unix:/PATH\" or "
                                   "\"tcp:IP:PORT\")", v);
        return 0;
}

/* --- keys ---------------------------------------------------------------- */

int parser_read_group(Parser *p, const config_setting_t *g, void *base, const Key *keys) {
        if (!config_setting_is_group(g))
                return parser_fail(p, g, "expected a group { ... }");
        for (int i = 0; i < config_setting_length(g); i++) {
                const config_setting_t *s = config_setting_get_elem(g, i);
                const Key *k = keys;
                int r;

                while (k->name && !streq(k->name, config_setting_name(s)))
                        k++;
                if (!k->name)
                        return parser_fail(p, s, "unknown key");
                r = k->type->parse(p, s, base, k);
                if (r < 0)
                        return r;
        }
        return 0;
}

int parse_section(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return parser_read_group(p, s, FIELD(base, k, char), k->keys);
}

void print_section(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_group(w, CONST_FIELD(base, k, char), k->keys);
        printer_end(w);
}

const KeyType key_section = { parse_section, print_section };

/* Every char * field: NULL (unset, where "" means unset) prints as "". */
void print_string_field(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_string(w, *CONST_FIELD(base, k, char *));
        printer_end(w);
}

int parse_host(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!host_is_valid(v))
                return parser_fail(p, s, "invalid address \"%s\" (expected an IP address or a DNS name)", v);
        return field_set_string(FIELD(base, k, char *), v, false);
}

const KeyType key_host = { parse_host, print_string_field };

/* k->min: 0 if "" means unset (NULL). */
static int parse_account(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!*v && k->min > 0)
                return parser_fail(p, s, "must not be empty");
        if (*v && !account_is_valid(v))
                return parser_fail(p, s, "invalid name \"%s\"", v);
        return field_set_string(FIELD(base, k, char *), v, true);
}

const KeyType key_account = { parse_account, print_string_field };

/* k->min: 0 if "" means unset (NULL); k->max: longest allowed. */
int parse_path(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!*v && k->min == 0)
                return field_set_string(FIELD(base, k, char *), v, true);
        if (v[0] != '/')
                return parser_fail(p, s, "\"%s\" is not an absolute path", v);
        if (k->max > 0 && strlen(v) > (size_t) k->max)
                return parser_fail(p, s, "path longer than %lld bytes", k->max);
        return field_set_string(FIELD(base, k, char *), v, true);
}

const KeyType key_path = { parse_path, print_string_field };

/* An SSH algorithm list as OpenSSH writes one: names of letters, digits
 * and "@.-_", separated by commas. */
static int parse_algorithms(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        bool name = false;
        int r = parser_read_string(p, s, &v);

        if (r < 0)
                return r;
        if (strlen(v) > 1024)
                return parser_fail(p, s, "longer than 1024 bytes");
        for (const char *c = v; *c; c++) {
                if (*c == ',') {
                        if (!name)
                                return parser_fail(p, s, "\"%s\": an empty name in the list", v);
                        name = false;
                } else if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr("@.-_", *c))
                        name = true;
                else
                        return parser_fail(p, s, "\"%s\": algorithm names are lowercase letters, digits and "
                                           "\"@.-_\", separated by commas", v);
        }
        if (!name)
                return parser_fail(p, s, "\"%s\": an empty name in the list", v);
        return field_set_string(FIELD(base, k, char *), v, false);
}

const KeyType key_algorithms = { parse_algorithms, print_string_field };

static int parse_unsigned(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        long long v = 0;
        int r = read_integer(p, s, k->min, k->max, &v);
        if (r < 0)
                return r;
        *FIELD(base, k, unsigned) = (unsigned) v;
        return 0;
}

static void print_unsigned(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_printf(w, "%u", *CONST_FIELD(base, k, unsigned));
        printer_end(w);
}

const KeyType key_unsigned = { parse_unsigned, print_unsigned };

static int parse_port(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        long long v = 0;
        int r = read_integer(p, s, 1, 65535, &v);
        if (r < 0)
                return r;
        *FIELD(base, k, uint16_t) = (uint16_t) v;
        return 0;
}

static void print_port(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_printf(w, "%u", (unsigned) *CONST_FIELD(base, k, uint16_t));
        printer_end(w);
}

const KeyType key_port = { parse_port, print_port };

static int parse_seconds(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        double v = 0;
        int r = read_number(p, s, &v);
        if (r < 0)
                return r;
        if (!(v > 0 && v <= SECONDS_MAX))
                return parser_fail(p, s, "%g is out of range (more than 0, at most %g seconds)", v,
                                   SECONDS_MAX);
        *FIELD(base, k, double) = v;
        return 0;
}

static void print_double(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_double(w, *CONST_FIELD(base, k, double));
        printer_end(w);
}

const KeyType key_seconds = { parse_seconds, print_double };

static int parse_fraction(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        double v = 0;
        int r = read_number(p, s, &v);
        if (r < 0)
                return r;
        if (!(v >= 0 && v <= 1))
                return parser_fail(p, s, "%g is out of range (0..1)", v);
        *FIELD(base, k, double) = v;
        return 0;
}

const KeyType key_fraction = { parse_fraction, print_double };

static int parse_bool(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return parser_fail(p, s, "expected a boolean (true or false)");
        *FIELD(base, k, bool) = config_setting_get_bool(s);
        return 0;
}

static void print_bool(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_printf(w, "%s", *CONST_FIELD(base, k, bool) ? "true" : "false");
        printer_end(w);
}

const KeyType key_bool = { parse_bool, print_bool };

/* libconfig has no octal literals (0660 would be 660), hence a string. */
static int parse_mode(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        size_t n;
        unsigned long m;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return parser_fail(p, s, "expected an octal mode in a string, such as \"0660\"");
        v = config_setting_get_string(s);
        n = strlen(v);
        if (n == 0 || n > 4 || strspn(v, "01234567") != n)
                return parser_fail(p, s, "invalid mode \"%s\" (expected octal, such as \"0660\")", v);
        m = strtoul(v, NULL, 8);
        if (m > 0777)
                return parser_fail(p, s, "mode \"%s\" is out of range (0..0777)", v);
        *FIELD(base, k, mode_t) = (mode_t) m;
        return 0;
}

static void print_mode(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_printf(w, "\"%04o\"", (unsigned) *CONST_FIELD(base, k, mode_t));
        printer_end(w);
}

const KeyType key_mode = { parse_mode, print_mode };
