/* Destination → node, and the allowlist. The router holds an index of every
 * node's name, hostnames, address and pod CIDR, each pointing at an opaque
 * caller object; it knows nothing of sessions or health. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"

typedef struct Router Router;

/* One proxy.allow rule: what a client may reach through the front door. */
typedef enum AllowKind {
        ALLOW_NODES, /* the nodes' names, hostnames, addresses and pod CIDRs */
        ALLOW_CIDR,
} AllowKind;

typedef struct AllowRule {
        AllowKind kind;
        Cidr cidr;         /* ALLOW_CIDR */
        PortRange *ports;  /* NULL/0: every port */
        size_t n_ports;
        char *text;        /* as written, for messages */
} AllowRule;

/* A router with the given allowlist rules (copied). */
int router_new(const AllowRule *rules, size_t n_rules, Router **ret);
Router *router_free(Router *r);

/* Index one node under its name, its address, each hostname and its pod CIDR
 * (may be NULL). Names and hostnames compare case-insensitively; an address
 * that is an IP literal compares as an address (so "fd00::7",
 * "fd00:0::7" and "[fd00::7]" are one key). Keys already taken by an earlier
 * node are not overridden. */
int router_add_node(Router *r, const char *name, const char *address, char *const *hostnames,
                    const Cidr *pod_cidr, void *userdata);

/* Remove every key of the node whose userdata is 'userdata'. */
void router_remove_node(Router *r, void *userdata);

/* The userdata of the node that owns 'host' (as the client wrote it, IPv6
 * without brackets or with), by exact match on name, hostname or address,
 * else by the longest pod CIDR holding an IP literal; NULL if none. */
void *router_lookup(const Router *r, const char *host);

/* True if the allowlist lets a client reach host:port. A "nodes" rule
 * admits every key router_lookup() would match; a CIDR rule admits IP
 * literals inside the block. Ports are checked against each rule's list. */
bool router_allowed(const Router *r, const char *host, uint16_t port);

/* Parse one allowlist rule, "nodes", "nodes:PORTS", "CIDR", "CIDR:PORTS"
 * (IPv6 CIDRs may be bracketed: "[fd00::/8]:443"). Used by config.c.
 * Returns -EINVAL on bad syntax. */
int allow_rule_parse(const char *s, AllowRule *ret);
void allow_rule_done(AllowRule *rule);
int allow_rule_copy(const AllowRule *rule, AllowRule *ret);
