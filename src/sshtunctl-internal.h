/* What sshtunctl.c (the command line, the actions), sshtunctl-client.c (the
 * request over admin.sock), sshtunctl-show.c (the views) and
 * sshtunctl-watch.c (--watch) share. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "macro.h"

#define EXIT_USAGE 64
#define EXIT_UNREACHABLE 3
/* Node names in the request path; the daemon's request head limit is 8 KiB. */
#define CTL_NAME_MAX 1024

typedef enum Output {
        OUTPUT_TABLE,
        OUTPUT_WIDE,
        OUTPUT_JSON,
        OUTPUT_NAME, /* node names, one a line */
} Output;

typedef struct Ctl {
        const char *socket;
        const char *readonly_socket; /* tried when 'socket' is the default and refuses us (EACCES) */
        Output output;
        bool color;
        bool no_headers; /* tables without their header line */
        bool nagios;     /* check: any failure is one "SSHTUND UNKNOWN" line on stdout, exit 3 */
        usec_t timeout;  /* for the whole command ... */
        usec_t deadline; /* ... ending here (CLOCK_MONOTONIC) */
        FILE *out;       /* what a view prints: stdout, or --watch's frame */
        FILE *err;       /* why it failed: stderr, or --watch's frame */
        int cancel_fd;   /* --watch: readable once SIGINT or SIGTERM is pending, else -1 */
} Ctl;

/* Say why the command failed (stderr, or the check's UNKNOWN line); returns the exit status. */
_printf_(3, 4) int ctl_fail(const Ctl *ctl, int status, const char *format, ...);
/* ctl_fail() for out of memory. */
int ctl_oom(const Ctl *ctl);
/* 'method' 'target': 0 with the reply's status and its JSON object (NULL
 * when the body is not one), whatever the status; a request that got no
 * reply says why and returns the exit status. */
int ctl_request_status(const Ctl *ctl, const char *method, const char *target, int *ret_status, json_t **ret);
/* 'method' 'target'; a 200 reply's JSON object into *ret; else says why, returns the exit status. */
int ctl_request_json(const Ctl *ctl, const char *method, const char *target, json_t **ret);
/* ctl_request_json() with GET. */
int ctl_get_json(const Ctl *ctl, const char *target, json_t **ret);
/* 's' percent-encoded for a request path (malloc'd; NULL when out of memory). */
char *path_escape(const char *s);
/* "/v1/nodes/NAME" + suffix, the name escaped; NULL when out of memory. */
char *node_path(const char *name, const char *suffix);

/* The string member 'key' of 'o', or NULL. */
const char *json_str(const json_t *o, const char *key);
/* The integer member 'key' of 'o', or 0. */
json_int_t json_int(const json_t *o, const char *key);
/* "s" unless n is 1. */
const char *plural(json_int_t n);
/* 'v' as indented JSON on stdout; returns 0 or the exit status. */
int print_json(const Ctl *ctl, const json_t *v);

/* `status`: the summary line, then the node table; returns the exit status (so do the others). */
int cmd_status(const Ctl *ctl);
/* `nodes`: the node table. */
int cmd_nodes(const Ctl *ctl);
/* `node NAME`: every field of one node. */
int cmd_node(const Ctl *ctl, const char *name);
/* `check`: one line for Nagios and its kin; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
int cmd_check(const Ctl *ctl);
/* `migration`: per node its route, upstream check and readiness; the final switch once all moved. */
int cmd_migration(const Ctl *ctl);
/* The options only `hostkeys` takes. */
typedef struct HostkeysOptions {
        bool unknown;     /* scan --unknown: the nodes in hostkey-unknown */
        bool all;         /* scan --all: every node */
        const char *from; /* trust --from FILE (- for stdin) */
} HostkeysOptions;

/* `hostkeys scan|trust|list ...`: args after "hostkeys". */
int cmd_hostkeys(Ctl *ctl, char **args, int n_args, const HostkeysOptions *o);

/* --watch: run 'view' every 'interval' until SIGINT or SIGTERM, then return
 * 0. Each round is one frame, headed by 'title': redrawn in place when
 * stdout is a terminal, else printed after the last. A round that fails
 * shows why in its frame; the next one tries again. */
int ctl_watch(Ctl *ctl, const char *title, int (*view)(const Ctl *ctl), usec_t interval);
