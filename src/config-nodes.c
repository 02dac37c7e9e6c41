/* The nodes of the configuration: the nodes list and the nodes_file, the
 * forwards and konnectivity sections that name nodes, and the checks across them. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config-internal.h"
#include "fileio.h"
#include "macro.h"

struct NameIndex {
        const char *key;
        size_t index;
};

static const char *intern_file(Parser *p, const config_setting_t *s) {
        Config *c = p->config;
        _cleanup_free_ char *name = parser_file_name(p, config_setting_source_file(s));
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

static bool node_name_is_valid(const char *s) {
        return dns_name_is_valid(s, true);
}

static bool node_name_or_star_is_valid(const char *s) {
        return streq(s, "*") || node_name_is_valid(s);
}

static bool hostname_is_valid(const char *s) {
        return dns_name_is_valid(s, false);
}

static int parse_node_name(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (!node_name_is_valid(v))
                return parser_fail(p, s,
                                   "invalid node name \"%s\" (expected a DNS-1123 subdomain: lowercase "
                                   "letters, digits, '-' and '.')",
                                   v);
        return field_set_string(FIELD(base, k, char *), v, false);
}

static const KeyType key_node_name = { parse_node_name, print_string_field };

static void print_strv_field(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_strv(w, *CONST_FIELD(base, k, char **));
        printer_end(w);
}

static int parse_hostnames(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return parser_read_strv(p, s, HOSTNAMES_MAX, hostname_is_valid, "hostname",
                                FIELD(base, k, char **));
}

static const KeyType key_hostnames = { parse_hostnames, print_strv_field };

/* "" is none, as when the key is left out: -T writes every key. */
static int parse_pod_cidr(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigNode *n = base;
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        n->has_pod_cidr = false;
        if (!*v)
                return 0;
        if (cidr_parse(v, &n->pod_cidr) < 0)
                return parser_fail(p, s,
                                   "invalid CIDR \"%s\" (expected ADDRESS/PREFIX with no host bits set, "
                                   "such as \"10.244.1.0/24\")",
                                   v);
        n->has_pod_cidr = true;
        return 0;
}

static void print_pod_cidr(Printer *w, const void *base, const Key *k) {
        const ConfigNode *n = base;
        char buf[INET6_ADDRSTRLEN + 8];

        printer_key(w, k);
        printer_string(w, n->has_pod_cidr ? cidr_to_string(&n->pod_cidr, buf, sizeof(buf)) : "");
        printer_end(w);
}

static const KeyType key_pod_cidr = { parse_pod_cidr, print_pod_cidr };

static const Key node_keys[] = {
        { "name", &key_node_name, offsetof(ConfigNode, name) },
        { "address", &key_host, offsetof(ConfigNode, address) },
        { "port", &key_port, offsetof(ConfigNode, port) },
        { "hostnames", &key_hostnames, offsetof(ConfigNode, hostnames) },
        { "pod_cidr", &key_pod_cidr },
        {}
};

/* A "( { ... }, ... )" list; "[]" is how an empty one often gets written. */
static int check_group_list(Parser *p, const config_setting_t *s, int max) {
        if (!config_setting_is_list(s) &&
            !(config_setting_is_array(s) && config_setting_length(s) == 0))
                return parser_fail(p, s, "expected a list of groups ( { ... }, ... )");
        if (config_setting_length(s) > max)
                return parser_fail(p, s, "more than %d entries", max);
        return 0;
}

static int parse_nodes(Parser *p, const config_setting_t *s, void *base, const Key *k) {
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
                return parser_fail(p, s, "more than %d nodes in all", NODES_MAX);
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
                r = parser_read_group(p, e, node, node_keys);
                if (r < 0)
                        return r;
                r = parser_require_members(p, e, required);
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

static bool node_from_nodes_file(const void *elem) {
        return ((const ConfigNode *) elem)->from_nodes_file;
}

static bool node_from_main_file(const void *elem) {
        return !node_from_nodes_file(elem);
}

/* The main file's nodes, @include'd ones among them; with each one's port
 * filled in from ssh.port where it had none. */
static void print_nodes(Printer *w, const void *base, const Key *k) {
        const Config *c = base;

        printer_key(w, k);
        printer_list(w, c->nodes, c->n_nodes, sizeof(ConfigNode), node_keys, node_from_main_file);
        printer_end(w);
}

const KeyType key_nodes = { parse_nodes, print_nodes };

/* The nodes_file stays named: read again whenever it changes, it is not a
 * copy of today's nodes. They are shown under it as comments. */
static void print_nodes_file(Printer *w, const void *base, const Key *k) {
        const Config *c = base;
        Printer comment = *w;
        const Key nodes = { "nodes", &key_nodes };

        print_string_field(w, base, k);
        if (!c->nodes_file)
                return;
        if (c->nodes_file_missing) {
                printer_line(w, "# It does not exist (yet): no nodes from it.");
                return;
        }
        printer_line(w, "# Its nodes, read again whenever it changes:");
        comment.prefix = "# ";
        printer_key(&comment, &nodes);
        printer_list(&comment, c->nodes, c->n_nodes, sizeof(ConfigNode), node_keys, node_from_nodes_file);
        printer_end(&comment);
        w->error = w->error ?: comment.error;
}

const KeyType key_nodes_file = { parse_path, print_nodes_file };

/* The nodes_file holds "nodes = ( ... );" and nothing else; its nodes join
 * the main file's. A file that does not exist yet (the sync job has not run)
 * is an empty list, noted in c->nodes_file_missing. */
int parser_read_nodes_file(Parser *p) {
        Config *c = p->config;
        const config_setting_t *root, *list;
        mode_t type = 0;
        size_t first;
        int r;

        if (!c->nodes_file)
                return 0;
        r = fileio_check_readable(c->nodes_file, &type);
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
                        return parser_fail(p, e, "unknown key in nodes_file (it holds only \"nodes\")");
        }
        list = config_lookup(p->nodes_lc, "nodes");
        if (!list)
                return 0;
        first = c->n_nodes;
        r = parse_nodes(p, list, c, NULL);
        for (size_t i = first; i < c->n_nodes; i++)
                c->nodes[i].from_nodes_file = true;
        return r;
}

static int parse_forward_listen(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        return parser_read_listen(p, s, v, FIELD(base, k, ListenAddress));
}

static void print_forward_listen(Printer *w, const void *base, const Key *k) {
        printer_key(w, k);
        printer_listen(w, CONST_FIELD(base, k, ListenAddress));
        printer_end(w);
}

static const KeyType key_forward_listen = { parse_forward_listen, print_forward_listen };

static int parse_forward_target(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        ConfigForward *f = base;
        return parser_read_hostport(p, s, &f->target_host, &f->target_port);
}

static void print_forward_target(Printer *w, const void *base, const Key *k) {
        const ConfigForward *f = base;

        printer_key(w, k);
        printer_hostport(w, f->target_host, f->target_port);
        printer_end(w);
}

static const KeyType key_forward_target = { parse_forward_target, print_forward_target };

static const Key forward_keys[] = {
        { "listen", &key_forward_listen, offsetof(ConfigForward, listen) },
        { "node", &key_node_name, offsetof(ConfigForward, node) },
        { "target", &key_forward_target },
        {}
};

static int parse_forwards(Parser *p, const config_setting_t *s, void *base, const Key *k) {
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
                r = parser_read_group(p, e, f, forward_keys);
                if (r < 0)
                        return r;
                r = parser_require_members(p, e, required);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void print_forwards(Printer *w, const void *base, const Key *k) {
        const Config *c = base;

        printer_key(w, k);
        printer_list(w, c->forwards, c->n_forwards, sizeof(ConfigForward), forward_keys, NULL);
        printer_end(w);
}

const KeyType key_forwards = { parse_forwards, print_forwards };

static int parse_upstream(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        const char *v;
        int r = parser_read_string(p, s, &v);
        if (r < 0)
                return r;
        if (strncmp(v, "unix:", 5) == 0) {
                if (v[5] != '/' || strlen(v + 5) >= SUN_PATH_MAX)
                        return parser_fail(p, s, "\"%s\": the socket path must be absolute and shorter "
                                           "than %zu bytes", v, SUN_PATH_MAX);
        } else if (strncmp(v, "tcp:", 4) == 0) {
                _cleanup_free_ char *host = NULL;
                uint16_t port;

                r = hostport_split(v + 4, &host, &port);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !host_is_valid(host))
                        return parser_fail(p, s, "invalid upstream \"%s\" (expected \"tcp:HOST:PORT\")", v);
        } else
                return parser_fail(p, s, "invalid upstream \"%s\" (expected \"unix:/PATH\" or "
                                   "\"tcp:HOST:PORT\")", v);
        return field_set_string(FIELD(base, k, char *), v, false);
}

static const KeyType key_upstream = { parse_upstream, print_string_field };

static int parse_konnectivity_nodes(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        return parser_read_strv(p, s, NODES_MAX, node_name_or_star_is_valid, "node name",
                                FIELD(base, k, char **));
}

static const KeyType key_konnectivity_nodes = { parse_konnectivity_nodes, print_strv_field };

/* "" is unset (the upstream's host), as when the key is left out. */
static int parse_server_name(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        if (config_setting_type(s) == CONFIG_TYPE_STRING && !*config_setting_get_string(s)) {
                free(*FIELD(base, k, char *));
                *FIELD(base, k, char *) = NULL;
                return 0;
        }
        return parse_host(p, s, base, k);
}

static const KeyType key_server_name = { parse_server_name, print_string_field };

static const Key konnectivity_keys[] = {
        { "upstream", &key_upstream, offsetof(ConfigKonnectivity, upstream) },
        { "nodes", &key_konnectivity_nodes, offsetof(ConfigKonnectivity, nodes) },
        { "fallback_to_ssh", &key_bool, offsetof(ConfigKonnectivity, fallback_to_ssh) },
        { "ca_file", &key_path, offsetof(ConfigKonnectivity, ca_file), .max = PATH_MAX },
        { "cert_file", &key_path, offsetof(ConfigKonnectivity, cert_file), .max = PATH_MAX },
        { "key_file", &key_path, offsetof(ConfigKonnectivity, key_file), .max = PATH_MAX },
        { "server_name", &key_server_name, offsetof(ConfigKonnectivity, server_name) },
        { "probe_port", &key_port, offsetof(ConfigKonnectivity, probe_port) },
        {}
};

static int parse_konnectivity(Parser *p, const config_setting_t *s, void *base, const Key *k) {
        static const char *const required[] = { "upstream", NULL };
        int r = parser_read_group(p, s, FIELD(base, k, char), konnectivity_keys);
        if (r < 0)
                return r;
        return parser_require_members(p, s, required);
}

/* Without an upstream the section is absent: nothing to print but a note. */
static void print_konnectivity(Printer *w, const void *base, const Key *k) {
        const Key section = { k->name, &key_section, k->offset, .keys = konnectivity_keys };

        if (!CONST_FIELD(base, k, ConfigKonnectivity)->upstream) {
                printer_line(w, "# konnectivity: no section, every node goes over SSH.");
                return;
        }
        print_section(w, base, &section);
}

const KeyType key_konnectivity = { parse_konnectivity, print_konnectivity };

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
        _cleanup_free_ char *file = parser_file_name(p, config_setting_source_file(s));

        if (!file)
                return -ENOMEM;
        if (streq(file, first->file))
                return parser_fail(p, s, "%s (first defined at line %d)", what, first->line);
        return parser_fail(p, s, "%s (first defined at %s:%d)", what, first->file, first->line);
}

int parser_check_nodes(Parser *p) {
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

/* A forward's node exists and its listen address is its own; so do
 * konnectivity's nodes, and its TLS settings fit together. */
int parser_check_references(Parser *p) {
        const Config *c = p->config;
        const config_setting_t *list = config_lookup(p->lc, "forwards");

        for (size_t i = 0; i < c->n_forwards; i++) {
                const ConfigForward *f = &c->forwards[i];

                if (!node_known(p, f->node))
                        return parser_fail(p, member(list, i, "node"), "no node named \"%s\" in nodes",
                                           f->node);
                for (size_t j = 0; j < c->proxy.n_listen; j++)
                        if (listen_address_equal(&f->listen, &c->proxy.listen[j]))
                                return parser_fail(p, member(list, i, "listen"),
                                                   "already used by proxy.listen[%zu]", j);
                for (size_t j = 0; j < i; j++)
                        if (listen_address_equal(&f->listen, &c->forwards[j].listen))
                                return parser_fail(p, member(list, i, "listen"),
                                                   "already used by forwards[%zu] (line %d)", j,
                                                   c->forwards[j].line);
        }

        list = config_lookup(p->lc, "konnectivity.nodes");
        for (size_t i = 0; c->konnectivity.nodes[i]; i++)
                if (!node_known(p, c->konnectivity.nodes[i]))
                        return parser_fail(p, config_setting_get_elem(list, (unsigned) i),
                                           "no node named \"%s\" in nodes", c->konnectivity.nodes[i]);

        if (c->konnectivity.upstream) {
                const ConfigKonnectivity *k = &c->konnectivity;
                const char *half = k->cert_file ? "konnectivity.cert_file" : "konnectivity.key_file";
                bool tls = k->ca_file || k->cert_file || k->key_file || k->server_name;
                if (tls && strncmp(k->upstream, "tcp:", 4) != 0)
                        return parser_fail_key(p, config_lookup(p->lc, "konnectivity.upstream"),
                                               "konnectivity.upstream",
                                               "TLS settings need a tcp: upstream (a unix socket is local)");
                if (tls && !k->ca_file)
                        return parser_fail_key(p, config_lookup(p->lc, "konnectivity"),
                                               "konnectivity.ca_file",
                                               "TLS to the upstream needs ca_file to check its certificate");
                if (!k->cert_file != !k->key_file)
                        return parser_fail_key(p, config_lookup(p->lc, half), half,
                                               "cert_file and key_file go together");
        }
        return 0;
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

void config_node_done(ConfigNode *c) {
        free(c->name);
        free(c->address);
        strv_free(c->hostnames);
        *c = (ConfigNode) {};
}

int config_node_copy(const ConfigNode *src, ConfigNode *dst) {
        size_t n = strv_length(src->hostnames);

        *dst = *src;
        dst->name = strdup(src->name);
        dst->address = strdup(src->address);
        dst->hostnames = calloc(n + 1, sizeof(char *));
        if (!dst->name || !dst->address || !dst->hostnames)
                goto fail;
        for (size_t i = 0; i < n; i++)
                if (!(dst->hostnames[i] = strdup(src->hostnames[i])))
                        goto fail;
        dst->file = NULL; /* points into a Config that may go away */
        return 0;
fail:
        config_node_done(dst);
        return -ENOMEM;
}

bool config_konnectivity_lists(const Config *c, const char *name) {
        if (!c->konnectivity.upstream)
                return false;
        for (char **i = c->konnectivity.nodes; i && *i; i++)
                if (streq(*i, "*") || streq(*i, name))
                        return true;
        return false;
}

static bool strv_equal(char **a, char **b) {
        size_t i;
        for (i = 0; a && b && a[i] && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

bool config_probe_equal(const ConfigProbe *a, const ConfigProbe *b) {
        return a->type == b->type && streq_ptr(a->target_host, b->target_host) && a->target_port == b->target_port &&
               streq_ptr(a->path, b->path) && a->interval == b->interval && a->timeout == b->timeout &&
               streq_ptr(a->ca_file, b->ca_file);
}

bool config_konnectivity_equal(const ConfigKonnectivity *a, const ConfigKonnectivity *b) {
        return streq_ptr(a->upstream, b->upstream) && streq_ptr(a->ca_file, b->ca_file) &&
               streq_ptr(a->cert_file, b->cert_file) && streq_ptr(a->key_file, b->key_file) &&
               streq_ptr(a->server_name, b->server_name) && a->probe_port == b->probe_port &&
               a->fallback_to_ssh == b->fallback_to_ssh && strv_equal(a->nodes, b->nodes);
}
