/* The destination index (node name, hostnames, address, pod CIDR → node) and
 * the allowlist that decides which host:port a front-door client may reach. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "router.h"

static int allow_rule_parse_cidr(const char *s, size_t n, Cidr *ret) {
        char buf[INET6_ADDRSTRLEN + 5]; /* address, "/", up to 3 digits */

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = 0;
        return cidr_parse(buf, ret) < 0 ? -EINVAL : 0;
}

int allow_rule_parse(const char *s, AllowRule *ret) {
        AllowRule rule = {};
        const char *ports = NULL;
        int r;

        assert(ret);

        if (!s)
                return -EINVAL;

        if (strncmp(s, "nodes", 5) == 0 && (s[5] == 0 || s[5] == ':')) {
                rule.kind = ALLOW_NODES;
                if (s[5] == ':')
                        ports = s + 6;
        } else if (s[0] == '[') {
                /* Brackets are how an IPv6 block keeps its colons apart from the port list. */
                const char *end = strchr(s, ']');

                if (!end || (end[1] != 0 && end[1] != ':'))
                        return -EINVAL;
                r = allow_rule_parse_cidr(s + 1, (size_t) (end - s - 1), &rule.cidr);
                if (r < 0 || rule.cidr.addr.family != AF_INET6)
                        return -EINVAL;
                rule.kind = ALLOW_CIDR;
                if (end[1] == ':')
                        ports = end + 2;
        } else {
                const char *colon = strchr(s, ':');

                /* More than one colon: an unbracketed IPv6 block, which cannot carry ports. */
                if (colon && strchr(colon + 1, ':'))
                        colon = NULL;
                r = allow_rule_parse_cidr(s, colon ? (size_t) (colon - s) : strlen(s), &rule.cidr);
                if (r < 0)
                        return r;
                rule.kind = ALLOW_CIDR;
                if (colon)
                        ports = colon + 1;
        }

        if (ports) {
                r = portlist_parse(ports, &rule.ports, &rule.n_ports);
                if (r < 0)
                        return r == -ENOMEM ? r : -EINVAL;
        }

        rule.text = strdup(s);
        if (!rule.text) {
                free(rule.ports);
                return -ENOMEM;
        }
        *ret = rule;
        return 0;
}

void allow_rule_done(AllowRule *rule) {
        if (!rule)
                return;
        free(rule->ports);
        rule->ports = NULL;
        rule->n_ports = 0;
        free(rule->text);
        rule->text = NULL;
}

int allow_rule_copy(const AllowRule *rule, AllowRule *ret) {
        AllowRule c;

        assert(rule);
        assert(ret);

        c = *rule;
        c.ports = NULL;
        c.text = NULL;
        if (rule->n_ports > 0) {
                c.ports = malloc(rule->n_ports * sizeof(PortRange));
                if (!c.ports)
                        return -ENOMEM;
                memcpy(c.ports, rule->ports, rule->n_ports * sizeof(PortRange));
        }
        if (rule->text) {
                c.text = strdup(rule->text);
                if (!c.text) {
                        free(c.ports);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

/* One key of the index. A node's entries live in one array owned by the
 * node; an entry is linked into the table only while its node holds the key
 * (an earlier node with the same key keeps it). */
typedef struct RouterEntry {
        char *key; /* normalized: canonical IP text, or lowercased */
        size_t hash;
        void *userdata;
        bool linked;
        struct RouterEntry *next;
} RouterEntry;

typedef struct RouterNode {
        void *userdata;
        RouterEntry *entries;
        size_t n_entries;
        bool has_pod_cidr;
        Cidr pod_cidr;
} RouterNode;

struct Router {
        AllowRule *rules;
        size_t n_rules;

        RouterEntry **buckets; /* chained; n_buckets is a power of two */
        size_t n_buckets;
        size_t n_linked;

        RouterNode *nodes; /* in the order added: earlier nodes win conflicts */
        size_t n_nodes;
        size_t n_nodes_allocated;
        size_t n_shadowed; /* entries whose key an earlier node holds */
};

#define ROUTER_BUCKETS_MIN 64

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* FNV-1a over the lowercased bytes, so that a lookup needs no lowercased copy. */
static size_t key_hash(const char *s) {
        uint64_t h = 14695981039346656037ULL;

        for (; *s; s++) {
                h ^= (uint8_t) ascii_lower(*s);
                h *= 1099511628211ULL;
        }
        return (size_t) (h ^ (h >> 32));
}

static bool key_equal(const char *stored, const char *s) {
        for (; *stored && ascii_lower(*s) == *stored; stored++, s++)
                ;
        return *stored == 0 && *s == 0;
}

/* An IP literal, bracketed or not, in canonical text form. */
static bool host_canonical_ip(const char *host, IpAddr *ret_ip, char buf[static INET6_ADDRSTRLEN]) {
        IpAddr ip;

        if (ipaddr_parse_bracketed(host, &ip) < 0)
                return false;
        ipaddr_to_string(&ip, buf, INET6_ADDRSTRLEN);
        if (ret_ip)
                *ret_ip = ip;
        return true;
}

static char *key_normalize(const char *s) {
        char buf[INET6_ADDRSTRLEN];
        char *k;

        if (host_canonical_ip(s, NULL, buf))
                return strdup(buf);
        k = strdup(s);
        if (!k)
                return NULL;
        for (char *p = k; *p; p++)
                *p = ascii_lower(*p);
        return k;
}

static void router_node_done(RouterNode *n) {
        for (size_t i = 0; i < n->n_entries; i++)
                free(n->entries[i].key);
        free(n->entries);
        n->entries = NULL;
        n->n_entries = 0;
}

static int router_node_add_key(RouterNode *n, const char *s) {
        char *k;

        if (!s || !*s)
                return 0;
        k = key_normalize(s);
        if (!k)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_entries; i++)
                if (streq(n->entries[i].key, k)) {
                        free(k);
                        return 0;
                }
        n->entries[n->n_entries++] = (RouterEntry) {
                .key = k,
                .hash = key_hash(k),
                .userdata = n->userdata,
        };
        return 0;
}

/* The link that points at the entry for 'key', or at the end of its chain. */
static RouterEntry **router_slot(const Router *r, const char *key, size_t hash) {
        RouterEntry **e = &r->buckets[hash & (r->n_buckets - 1)];

        for (; *e; e = &(*e)->next)
                if ((*e)->hash == hash && key_equal((*e)->key, key))
                        break;
        return e;
}

/* Best effort: if memory is short the chains get longer, lookups stay right. */
static void router_reserve(Router *r, size_t n_more) {
        size_t n = r->n_buckets;
        RouterEntry **b;

        while (n < r->n_linked + n_more && n < SIZE_MAX / 2 / sizeof(*b))
                n *= 2;
        if (n == r->n_buckets)
                return;
        b = calloc(n, sizeof(*b));
        if (!b)
                return;
        for (size_t i = 0; i < r->n_buckets; i++)
                for (RouterEntry *e = r->buckets[i], *next; e; e = next) {
                        next = e->next;
                        e->next = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                }
        free(r->buckets);
        r->buckets = b;
        r->n_buckets = n;
}

/* Link the entry unless another node holds its key. */
static void router_link(Router *r, RouterEntry *e) {
        RouterEntry **slot = router_slot(r, e->key, e->hash);

        if (*slot) {
                r->n_shadowed++;
                return;
        }
        e->next = NULL;
        e->linked = true;
        *slot = e;
        r->n_linked++;
}

int router_new(const AllowRule *rules, size_t n_rules, Router **ret) {
        Router *r;
        int k;

        assert(rules || n_rules == 0);
        assert(ret);

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->n_buckets = ROUTER_BUCKETS_MIN;
        r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
        if (!r->buckets) {
                router_free(r);
                return -ENOMEM;
        }
        if (n_rules > 0) {
                r->rules = calloc(n_rules, sizeof(*r->rules));
                if (!r->rules) {
                        router_free(r);
                        return -ENOMEM;
                }
                for (; r->n_rules < n_rules; r->n_rules++) {
                        k = allow_rule_copy(&rules[r->n_rules], &r->rules[r->n_rules]);
                        if (k < 0) {
                                router_free(r);
                                return k;
                        }
                }
        }
        *ret = r;
        return 0;
}

Router *router_free(Router *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_nodes; i++)
                router_node_done(&r->nodes[i]);
        free(r->nodes);
        free(r->buckets);
        for (size_t i = 0; i < r->n_rules; i++)
                allow_rule_done(&r->rules[i]);
        free(r->rules);
        free(r);
        return NULL;
}

static RouterNode *router_find_node(const Router *r, const void *userdata) {
        for (size_t i = 0; i < r->n_nodes; i++)
                if (r->nodes[i].userdata == userdata)
                        return &r->nodes[i];
        return NULL;
}

int router_add_node(Router *r, const char *name, const char *address, char *const *hostnames,
                    const Cidr *pod_cidr, void *userdata) {
        _cleanup_(router_node_done) RouterNode n = {};
        size_t n_keys;
        int k;

        assert(r);
        assert(userdata); /* NULL is router_lookup()'s "no node" */

        if (router_find_node(r, userdata))
                return -EEXIST;

        n_keys = 2 + strv_length(hostnames);
        n.userdata = userdata;
        n.entries = calloc(n_keys, sizeof(*n.entries));
        if (!n.entries)
                return -ENOMEM;
        k = router_node_add_key(&n, name);
        if (k < 0)
                return k;
        k = router_node_add_key(&n, address);
        if (k < 0)
                return k;
        for (size_t i = 0; hostnames && hostnames[i]; i++) {
                k = router_node_add_key(&n, hostnames[i]);
                if (k < 0)
                        return k;
        }
        if (pod_cidr) {
                n.has_pod_cidr = true;
                n.pod_cidr = *pod_cidr;
        }

        if (r->n_nodes == r->n_nodes_allocated) {
                size_t m = MAX(r->n_nodes_allocated * 2, (size_t) 16);
                RouterNode *nodes = reallocarray(r->nodes, m, sizeof(*nodes));
                if (!nodes)
                        return -ENOMEM;
                r->nodes = nodes;
                r->n_nodes_allocated = m;
        }

        /* Nothing below can fail. */
        router_reserve(r, n.n_entries);
        for (size_t i = 0; i < n.n_entries; i++)
                router_link(r, &n.entries[i]);
        r->nodes[r->n_nodes++] = n;
        n = (RouterNode) {};
        return 0;
}

/* A key whose holder left goes to the earliest remaining node that claimed it. */
static void router_hand_over(Router *r, const RouterEntry *gone) {
        for (size_t i = 0; i < r->n_nodes; i++)
                for (size_t j = 0; j < r->nodes[i].n_entries; j++) {
                        RouterEntry *e = &r->nodes[i].entries[j];

                        if (!e->linked && e->hash == gone->hash && streq(e->key, gone->key)) {
                                r->n_shadowed--;
                                router_link(r, e);
                                return;
                        }
                }
}

void router_remove_node(Router *r, void *userdata) {
        RouterNode *p, n;

        assert(r);

        p = router_find_node(r, userdata);
        if (!p)
                return;
        n = *p;
        memmove(p, p + 1, (size_t) (r->nodes + r->n_nodes - (p + 1)) * sizeof(*p));
        r->n_nodes--;

        for (size_t i = 0; i < n.n_entries; i++) {
                RouterEntry *e = &n.entries[i];

                if (!e->linked) {
                        r->n_shadowed--;
                        continue;
                }
                RouterEntry **slot = router_slot(r, e->key, e->hash);
                assert(*slot == e);
                *slot = e->next;
                r->n_linked--;
                if (r->n_shadowed > 0)
                        router_hand_over(r, e);
        }
        router_node_done(&n);
}

void *router_lookup(const Router *r, const char *host) {
        char buf[INET6_ADDRSTRLEN];
        const RouterNode *best = NULL;
        RouterEntry *e;
        IpAddr ip;
        bool is_ip;

        assert(r);

        if (!host || !*host)
                return NULL;
        is_ip = host_canonical_ip(host, &ip, buf);
        if (!is_ip && host[0] == '[')
                return NULL;

        e = *router_slot(r, is_ip ? buf : host, key_hash(is_ip ? buf : host));
        if (e)
                return e->userdata;
        if (!is_ip)
                return NULL;

        /* Strictly longer wins, so of two equal blocks the earlier node keeps it. */
        for (size_t i = 0; i < r->n_nodes; i++) {
                const RouterNode *n = &r->nodes[i];

                if (n->has_pod_cidr && (!best || n->pod_cidr.prefixlen > best->pod_cidr.prefixlen) &&
                    cidr_contains(&n->pod_cidr, &ip))
                        best = n;
        }
        return best ? best->userdata : NULL;
}

bool router_allowed(const Router *r, const char *host, uint16_t port) {
        bool is_ip;
        IpAddr ip;

        assert(r);

        if (!host || !*host)
                return false;
        is_ip = ipaddr_parse_bracketed(host, &ip) >= 0;

        for (size_t i = 0; i < r->n_rules; i++) {
                const AllowRule *rule = &r->rules[i];

                if (rule->n_ports > 0 && !portlist_contains(rule->ports, rule->n_ports, port))
                        continue;
                switch (rule->kind) {
                case ALLOW_NODES:
                        if (router_lookup(r, host))
                                return true;
                        break;
                case ALLOW_CIDR:
                        if (is_ip && cidr_contains(&rule->cidr, &ip))
                                return true;
                        break;
                }
        }
        return false;
}
