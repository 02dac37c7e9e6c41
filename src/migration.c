/* Upstream path checks, one per node: the same CONNECT kube-apiserver would
 * send to konnectivity-server, to the node's address and kubelet port; a
 * 200 means the node's agent is connected and reaches the kubelet. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-event.h>

#include "daemon.h"
#include "log.h"
#include "migration.h"
#include "node.h"
#include "upstream.h"

#define CHECK_INTERVAL_DEFAULT_USEC (10 * USEC_PER_SEC)
#define CHECK_TIMEOUT_DEFAULT_USEC (5 * USEC_PER_SEC)

typedef struct Check {
        Migration *owner;
        char *node; /* looked up by name: reloads replace nodes */
        sd_event_source *timer;
        UpstreamConn *conn;
        usec_t started;
} Check;

struct Migration {
        Daemon *daemon;
        Check **checks;
        size_t n_checks;
        usec_t interval, timeout;
};

static void check_finish(Check *c, bool ok, const char *fmt, ...) _printf_(3, 4);
static void check_finish(Check *c, bool ok, const char *fmt, ...) {
        Node *n = daemon_find_node(c->owner->daemon, c->node);
        char error[512] = "";
        va_list ap;

        if (c->conn)
                upstream_conn_abort(TAKE_PTR(c->conn));
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(error, sizeof(error), fmt, ap);
                va_end(ap);
        }
        if (n)
                node_upstream_result(n, ok, now_usec(CLOCK_MONOTONIC) - c->started, ok ? NULL : error);
        /* the next one an interval after this one started */
        (void) sd_event_source_set_time(c->timer, c->started + c->owner->interval);
}

static void on_check_opened(UpstreamConn *uc, int status, const char *reason, const char *body, void *userdata) {
        Check *c = userdata;

        c->conn = NULL;
        if (status == 200) {
                /* the path works: nothing to say through it */
                FarEnd far = upstream_far_end(uc);
                far.ops->abort(far.end);
                check_finish(c, true, NULL);
        } else if (status > 0)
                check_finish(c, false, "HTTP %d %s%s%s", status, strna(reason), body && *body ? ": " : "",
                             body ? body : "");
        else
                check_finish(c, false, "upstream unreachable: %s", strna(reason));
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Check *c = userdata;
        Migration *m = c->owner;
        Upstream *u = daemon_upstream(m->daemon);
        Node *n = daemon_find_node(m->daemon, c->node);

        if (c->conn) {
                check_finish(c, false, "no answer within %.1f s", (double) m->timeout / USEC_PER_SEC);
                return 0;
        }
        if (n && u) {
                const ConfigNode *cn = node_config(n);
                int r;

                c->started = now_usec(CLOCK_MONOTONIC);
                r = upstream_connect(u, cn->address, daemon_config(m->daemon)->konnectivity.probe_port,
                                     on_check_opened, c, &c->conn);
                if (r < 0) {
                        check_finish(c, false, "cannot start a CONNECT: %s", strerror(-r));
                        return 0;
                }
                /* wake at the timeout if the answer does not come first */
                (void) sd_event_source_set_time(s, c->started + m->timeout);
                return 0;
        }
        (void) sd_event_source_set_time(s, usec + m->interval);
        return 0;
}

static void check_free(Check *c) {
        if (!c)
                return;
        c->timer = sd_event_source_disable_unref(c->timer);
        if (c->conn)
                upstream_conn_abort(TAKE_PTR(c->conn));
        free(c->node);
        free(c);
}

static int check_new(Migration *m, const char *node, Check **ret) {
        Check *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->owner = m;
        c->node = strdup(node);
        if (!c->node) {
                free(c);
                return -ENOMEM;
        }
        /* spread over the interval: not every node at once */
        r = sd_event_add_time_relative(daemon_event(m->daemon), &c->timer, CLOCK_MONOTONIC,
                                       daemon_random(m->daemon, m->interval), 50 * USEC_PER_MSEC, on_check_timer,
                                       c);
        if (r < 0) {
                check_free(c);
                return r;
        }
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(c->timer, "upstream-check");
        *ret = c;
        return 0;
}

void migration_nodes_changed(Migration *m) {
        Daemon *d;
        Check **next;
        size_t n_next = 0;

        if (!m)
                return;
        d = m->daemon;
        next = calloc(MAX(daemon_n_nodes(d), (size_t) 1), sizeof(Check *));
        if (!next)
                return;
        for (size_t i = 0; i < daemon_n_nodes(d); i++) {
                const char *name = node_name(daemon_node(d, i));
                Check *c = NULL;

                for (size_t j = 0; j < m->n_checks && !c; j++)
                        if (m->checks[j] && streq(m->checks[j]->node, name))
                                c = TAKE_PTR(m->checks[j]);
                if (!c && check_new(m, name, &c) < 0)
                        continue;
                next[n_next++] = c;
        }
        for (size_t j = 0; j < m->n_checks; j++)
                check_free(m->checks[j]);
        free(m->checks);
        m->checks = next;
        m->n_checks = n_next;
}

int migration_new(Daemon *d, Migration **ret) {
        const Config *cfg = daemon_config(d);
        Migration *m;

        if (!cfg->konnectivity.upstream) {
                *ret = NULL;
                return 0;
        }
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->daemon = d;
        m->interval = cfg->probe.type != PROBE_NONE ? sec_to_usec(cfg->probe.interval) : CHECK_INTERVAL_DEFAULT_USEC;
        m->timeout = cfg->probe.type != PROBE_NONE ? sec_to_usec(cfg->probe.timeout) : CHECK_TIMEOUT_DEFAULT_USEC;
        m->timeout = MIN(m->timeout, m->interval);
        migration_nodes_changed(m);
        *ret = m;
        return 0;
}

Migration *migration_free(Migration *m) {
        if (!m)
                return NULL;
        for (size_t j = 0; j < m->n_checks; j++)
                check_free(m->checks[j]);
        free(m->checks);
        free(m);
        return NULL;
}
