/* Fuzzing the router and the allowlist: the input is a small script of
 * allow rules, nodes added and removed, and lookups; every answer of
 * router_lookup() and router_allowed() is checked against a plain model
 * that keeps the nodes in a list and searches it from the start.
 *
 *   allow RULE                        (all allow lines are read first)
 *   node NAME ADDRESS [CIDR|-] [HOSTNAME...]
 *   remove NAME
 *   lookup HOST [PORT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "router.h"

#define FIELDS_MAX 16
#define NODES_MAX 64
#define RULES_MAX 16

typedef struct ModelNode {
        uintptr_t id;
        char *keys[FIELDS_MAX]; /* normalised as the router does */
        size_t n_keys;
        char *name;             /* as written, for "remove" */
        bool has_pod_cidr;
        Cidr pod_cidr;
} ModelNode;

typedef struct Model {
        ModelNode nodes[NODES_MAX]; /* in the order added */
        size_t n_nodes;
        AllowRule rules[RULES_MAX];
        size_t n_rules;
} Model;

static void model_node_done(ModelNode *n) {
        for (size_t i = 0; i < n->n_keys; i++)
                free(n->keys[i]);
        free(n->name);
        *n = (ModelNode) {};
}

static void model_done(Model *m) {
        for (size_t i = 0; i < m->n_nodes; i++)
                model_node_done(&m->nodes[i]);
        for (size_t i = 0; i < m->n_rules; i++)
                allow_rule_done(&m->rules[i]);
}

/* An IP literal (bracketed or not) in canonical form, else lowercase. */
static char *normalize(const char *s) {
        char buf[INET6_ADDRSTRLEN], *k;
        IpAddr ip;

        if (ipaddr_parse_bracketed(s, &ip) >= 0)
                return strdup(ipaddr_to_string(&ip, buf, sizeof(buf)));
        k = strdup(s);
        for (char *p = k; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        return k;
}

static void model_add_key(ModelNode *n, const char *s) {
        char *k;

        if (!s || !*s)
                return;
        k = normalize(s);
        fuzz_check(k);
        for (size_t i = 0; i < n->n_keys; i++)
                if (streq(n->keys[i], k)) {
                        free(k);
                        return;
                }
        n->keys[n->n_keys++] = k;
}

static uintptr_t model_lookup(const Model *m, const char *host) {
        _cleanup_free_ char *k = NULL;
        const ModelNode *best = NULL;
        IpAddr ip;
        bool is_ip;

        if (!*host)
                return 0;
        is_ip = ipaddr_parse_bracketed(host, &ip) >= 0;
        if (!is_ip && host[0] == '[')
                return 0;
        k = normalize(host);
        fuzz_check(k);
        /* the earliest node holding the key */
        for (size_t i = 0; i < m->n_nodes; i++)
                for (size_t j = 0; j < m->nodes[i].n_keys; j++)
                        if (streq(m->nodes[i].keys[j], k))
                                return m->nodes[i].id;
        if (!is_ip)
                return 0;
        /* the longest pod CIDR, the earliest of equals */
        for (size_t i = 0; i < m->n_nodes; i++) {
                const ModelNode *n = &m->nodes[i];
                if (n->has_pod_cidr && cidr_contains(&n->pod_cidr, &ip) &&
                    (!best || n->pod_cidr.prefixlen > best->pod_cidr.prefixlen))
                        best = n;
        }
        return best ? best->id : 0;
}

static bool model_allowed(const Model *m, const char *host, uint16_t port) {
        IpAddr ip;
        bool is_ip;

        if (!*host)
                return false;
        is_ip = ipaddr_parse_bracketed(host, &ip) >= 0;
        for (size_t i = 0; i < m->n_rules; i++) {
                const AllowRule *r = &m->rules[i];

                if (r->n_ports > 0 && !portlist_contains(r->ports, r->n_ports, port))
                        continue;
                if (r->kind == ALLOW_NODES && model_lookup(m, host))
                        return true;
                if (r->kind == ALLOW_CIDR && is_ip && cidr_contains(&r->cidr, &ip))
                        return true;
        }
        return false;
}

/* Split a line at blanks, in place. */
static size_t split_fields(char *line, char **fields) {
        char *save = NULL;
        size_t n = 0;

        for (char *tok = strtok_r(line, " \t", &save); tok && n < FIELDS_MAX;
             tok = strtok_r(NULL, " \t", &save))
                fields[n++] = tok;
        return n;
}

static void check_rule(const char *text, const AllowRule *rule) {
        AllowRule copy;

        fuzz_check(streq(rule->text, text));
        fuzz_check(rule->kind == ALLOW_NODES || rule->kind == ALLOW_CIDR);
        fuzz_check((rule->n_ports == 0) == !rule->ports);
        for (size_t i = 0; i < rule->n_ports; i++)
                fuzz_check(rule->ports[i].lo >= 1 && rule->ports[i].lo <= rule->ports[i].hi);
        if (allow_rule_copy(rule, &copy) < 0)
                return;
        fuzz_check(copy.kind == rule->kind && copy.n_ports == rule->n_ports && streq(copy.text, rule->text));
        allow_rule_done(&copy);
}

static void run_node(Router *r, Model *m, char **f, size_t n, uintptr_t id) {
        char *hostnames[FIELDS_MAX + 1] = {};
        ModelNode *node;
        Cidr cidr;
        bool has_cidr = false;
        int k;

        if (n < 3 || m->n_nodes >= NODES_MAX)
                return;
        if (n > 3 && !streq(f[3], "-")) {
                if (cidr_parse(f[3], &cidr) < 0)
                        return;
                has_cidr = true;
        }
        for (size_t i = 4; i < n; i++)
                hostnames[i - 4] = f[i];

        k = router_add_node(r, f[1], f[2], hostnames, has_cidr ? &cidr : NULL, (void *) id);
        fuzz_check(k == 0);

        node = &m->nodes[m->n_nodes++];
        *node = (ModelNode) { .id = id };
        node->name = strdup(f[1]);
        fuzz_check(node->name);
        model_add_key(node, f[1]);
        model_add_key(node, f[2]);
        for (size_t i = 0; hostnames[i]; i++)
                model_add_key(node, hostnames[i]);
        node->has_pod_cidr = has_cidr;
        if (has_cidr)
                node->pod_cidr = cidr;
}

static void run_remove(Router *r, Model *m, char **f, size_t n) {
        if (n < 2)
                return;
        for (size_t i = 0; i < m->n_nodes; i++)
                if (streq(m->nodes[i].name, f[1])) {
                        router_remove_node(r, (void *) m->nodes[i].id);
                        model_node_done(&m->nodes[i]);
                        memmove(&m->nodes[i], &m->nodes[i + 1], (m->n_nodes - i - 1) * sizeof(ModelNode));
                        m->nodes[--m->n_nodes] = (ModelNode) {};
                        return;
                }
        /* an unknown node: nothing happens */
        router_remove_node(r, (void *) (uintptr_t) 0xdead);
}

static void run_lookup(const Router *r, const Model *m, char **f, size_t n) {
        uint16_t port = 443;

        if (n < 2)
                return;
        if (n > 2 && port_parse(f[2], &port) < 0)
                port = (uint16_t) strtoul(f[2], NULL, 0);
        fuzz_check((uintptr_t) router_lookup(r, f[1]) == model_lookup(m, f[1]));
        fuzz_check(router_allowed(r, f[1], port) == model_allowed(m, f[1], port));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *rules_text = NULL;
        _cleanup_(model_done) Model m = {};
        Router *r = NULL;
        uintptr_t next_id = 1;
        char *line, *save = NULL;

        /* text, NUL-terminated at the first NUL */
        text = strndup((const char *) data, size);
        rules_text = strndup((const char *) data, size);
        if (!text || !rules_text)
                return 0;

        /* first pass: the allowlist */
        for (line = strtok_r(rules_text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *sp = strchr(line, ' ');

                if (!sp || strncmp(line, "allow ", 6) != 0 || m.n_rules >= RULES_MAX)
                        continue;
                if (allow_rule_parse(sp + 1, &m.rules[m.n_rules]) == 0)
                        check_rule(sp + 1, &m.rules[m.n_rules++]);
        }
        if (router_new(m.rules, m.n_rules, &r) < 0)
                return 0;

        /* second pass: the script */
        save = NULL;
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[FIELDS_MAX];
                size_t n = split_fields(line, f);

                if (n == 0)
                        continue;
                if (streq(f[0], "node"))
                        run_node(r, &m, f, n, next_id++);
                else if (streq(f[0], "remove"))
                        run_remove(r, &m, f, n);
                else if (streq(f[0], "lookup"))
                        run_lookup(r, &m, f, n);
        }

        /* every key of every node finds the node that holds it */
        for (size_t i = 0; i < m.n_nodes; i++)
                for (size_t j = 0; j < m.nodes[i].n_keys; j++)
                        fuzz_check((uintptr_t) router_lookup(r, m.nodes[i].keys[j]) ==
                                   model_lookup(&m, m.nodes[i].keys[j]));

        router_free(r);
        return 0;
}
