/* Kubelet health probes through a node's own tunnel: a TCP open, an HTTP
 * GET, or a TLS GET with optional certificate verification, every
 * probe.interval, spread over the interval across nodes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "macro.h"
#include "metrics.h"
#include "rng.h"
#include "session.h"

typedef struct Probe Probe;

/* The TLS client context of https probes: one per probe.ca_file, shared
 * by every node's probe (each Probe holds a reference). */
typedef struct ProbeTls ProbeTls;

/* Load 'ca_file' (NULL: no verification). On failure -errno and, if
 * ret_error is not NULL, a malloc'd reason ("no usable CA certificate (no
 * certificate or crl found)"). Reads the file. */
int probe_tls_new(const char *ca_file, ProbeTls **ret, char **ret_error);
ProbeTls *probe_tls_ref(ProbeTls *t);
/* Drop a reference; accepts NULL; returns NULL. */
ProbeTls *probe_tls_unref(ProbeTls *t);

/* What a probe asks of its node and tells it. */
typedef struct ProbeHooks {
        /* Open a channel to host:port from the node for the probe, on any
         * ready session; -EHOSTDOWN when none is ready (no verdict then). */
        int (*open_channel)(void *userdata, const char *host, uint16_t port, const ChannelCallbacks *cb,
                            void *cb_userdata, Channel **ret);
        /* A run ended with a verdict: 'error' is NULL when it passed. The
         * probe may be freed or deactivated from inside. */
        void (*result)(void *userdata, bool ok, usec_t latency, const char *error);
} ProbeHooks;

typedef struct ProbeParams {
        sd_event *event;
        const ConfigProbe *config; /* copied: a new configuration needs a new Probe */
        ProbeTls *tls;             /* https: the shared context (a reference is taken) */
        Rng *rng;                  /* the phase within the interval */
        Metrics *metrics;          /* probe durations; may be NULL */
        const ConfigNode *node;    /* its name for logs, its names for certificate messages; must outlive the probe */
        const ProbeHooks *hooks;
        void *userdata;
} ProbeParams;

/* A prober for one node. It runs only while the node can carry streams
 * (probe_set_active). With probe.type = "none" no Probe is created
 * (*ret = NULL, returns 0); an https probe without 'tls' is -EINVAL. */
int probe_new(const ProbeParams *p, Probe **ret);
/* Stops the timer and any probe in flight. Accepts NULL, returns NULL. */
Probe *probe_free(Probe *p);
/* The node became able (or unable) to carry streams: start probing at a
 * random point of the interval, or stop. */
void probe_set_active(Probe *p, bool active);

/* --- the pure parts, for tests -------------------------------------------- */

#include <stddef.h>

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
