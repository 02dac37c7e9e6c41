/* Kubelet health probes through a node's own tunnel: a TCP open, an HTTP
 * GET, or a TLS GET with optional certificate verification, every
 * probe.interval, spread over the interval across nodes. */
#pragma once

#include <stdbool.h>

typedef struct Daemon Daemon;
typedef struct Node Node;
typedef struct Probe Probe;

/* A prober for 'node' following the daemon's probe configuration as it is
 * now (it keeps a copy: a new configuration needs a new Probe). It runs
 * only while the node can carry streams (probe_set_active). Results go to
 * node_probe_result(). With probe.type = "none" no Probe is created
 * (*ret = NULL, returns 0). An https probe loads probe.ca_file here and
 * fails (logged) when it cannot. */
int probe_new(Daemon *d, Node *node, Probe **ret);
/* Stops the timer and any probe in flight. Accepts NULL, returns NULL. */
Probe *probe_free(Probe *p);
/* The node became able (or unable) to carry streams: start probing at a
 * random point of the interval, or stop. */
void probe_set_active(Probe *p, bool active);

/* Whether 'path' can serve as probe.ca_file (readable, PEM, at least one
 * certificate), for configuration checks. Returns 0, or -errno and, if
 * ret_reason is not NULL, a malloc'd reason ("no usable CA certificate
 * (no certificate or crl found)"). Reads the file. */
int probe_ca_file_check(const char *path, char **ret_reason);

/* --- the pure parts, for tests -------------------------------------------- */

#include <stddef.h>
#include <stdint.h>

/* The most response-head bytes an http or https probe reads (interim 1xx
 * heads included) before it gives up. */
#define PROBE_HEAD_MAX (16 * 1024)

typedef enum ProbeVerdict {
        PROBE_VERDICT_PENDING, /* no complete final head yet: read more */
        PROBE_VERDICT_PASS,    /* a 2xx final head */
        PROBE_VERDICT_FAIL,    /* anything else; the reason is in 'error' */
} ProbeVerdict;

/* What an HTTP probe makes of the response bytes received so far; 'eof':
 * no more will come. Interim 1xx heads are skipped. FAIL writes a short
 * reason ("HTTP 500 Internal Server Error", "response head too large",
 * "connection closed before a response") into error[0..error_size). */
ProbeVerdict probe_http_verdict(const void *buf, size_t len, bool eof, char *error, size_t error_size);

/* The request an HTTP probe sends (GET path, Host host:port, Connection:
 * close), malloc'd; NULL on allocation failure. */
char *probe_http_request(const char *host, uint16_t port, const char *path);
