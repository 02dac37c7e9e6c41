/* Each node's route state (listed, rolling back, the last check of its path
 * through konnectivity-server) and the checks themselves: the same CONNECT
 * kube-apiserver would send to konnectivity-server, to the node's address
 * and kubelet port; a 200 means the node's agent is connected and reaches
 * the kubelet. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migration.h"
#include "tunnel.h"

#define CHECK_INTERVAL_DEFAULT_USEC (10 * USEC_PER_SEC)
#define CHECK_TIMEOUT_DEFAULT_USEC (5 * USEC_PER_SEC)

typedef struct RouteState {
        Migration *owner;
        Node *node;
        bool listed;
        bool rolling_back;
        bool falling_back; /* as last logged */
        bool kept;         /* migration_update(): still a node */

        /* the check of the path through konnectivity-server */
        sd_event_source *timer;
        Tunnel *tunnel;
        usec_t started;
        bool check_valid, check_ok;
        usec_t check_latency, check_at;
        char *check_error;
        uint64_t check_failures;
        uint64_t fallbacks;
} RouteState;

struct Migration {
        sd_event *event;
        Rng *rng;
        const Config *cfg;
        Upstream *upstream;
        RouteState **states; /* sorted by node pointer */
        size_t n_states;
        usec_t interval, timeout;
};

NodeRoute migration_decide(const RouteInputs *in) {
        if (!in->upstream)
                return ROUTE_SSH;
        if (!in->listed)
                return in->rolling_back && !in->ssh_ready ? ROUTE_KONNECTIVITY : ROUTE_SSH;
        if (in->fallback_to_ssh && in->check_valid && !in->check_ok && in->ssh_ready)
                return ROUTE_SSH;
        return ROUTE_KONNECTIVITY;
}

unsigned migration_pool_size(const Config *cfg, const char *name) {
        if (config_konnectivity_lists(cfg, name) && !cfg->konnectivity.fallback_to_ssh)
                return 0;
        return MAX(cfg->ssh.pool_size, 1u);
}

/* --- per-node state ------------------------------------------------------------ */

static int state_cmp(const void *a, const void *b) {
        const Node *x = (*(RouteState *const *) a)->node, *y = (*(RouteState *const *) b)->node;
        return x < y ? -1 : x > y;
}

static RouteState *migration_find(const Migration *m, const Node *n) {
        size_t lo = 0, hi = m->n_states;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const Node *k = m->states[mid]->node;
                if (k == n)
                        return m->states[mid];
                if (k < n)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static RouteInputs route_inputs(const Migration *m, const RouteState *st) {
        return (RouteInputs) {
                .upstream = m->upstream,
                .listed = st->listed,
                .rolling_back = st->rolling_back,
                .check_valid = st->check_valid,
                .check_ok = st->check_ok,
                .fallback_to_ssh = m->cfg && m->cfg->konnectivity.fallback_to_ssh,
                .ssh_ready = node_has_ready_session(st->node),
        };
}

/* Log a change between Konnectivity and its SSH fallback. */
static void state_note_route(Migration *m, RouteState *st) {
        RouteInputs in = route_inputs(m, st);
        bool falling_back = in.listed && migration_decide(&in) == ROUTE_SSH && in.upstream;

        if (falling_back == st->falling_back)
                return;
        st->falling_back = falling_back;
        if (falling_back)
                log_node(LOG_WARNING, node_name(st->node), "upstream path failing (%s): new streams go over SSH",
                         strna(st->check_error));
        else if (st->listed)
                log_node(LOG_NOTICE, node_name(st->node), "upstream path back: new streams go to konnectivity");
}

static void check_stop(RouteState *st) {
        tunnel_abort(TAKE_PTR(st->tunnel));
}

static void state_free(RouteState *st) {
        if (!st)
                return;
        st->timer = sd_event_source_disable_unref(st->timer);
        check_stop(st);
        free(st->check_error);
        free(st);
}

/* --- the checks -------------------------------------------------------------------- */

static void check_finish(RouteState *st, bool ok, const char *fmt, ...) _printf_(3, 4);
static void check_finish(RouteState *st, bool ok, const char *fmt, ...) {
        Migration *m = st->owner;
        char error[512] = "";
        va_list ap;

        check_stop(st);
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(error, sizeof(error), fmt, ap);
                va_end(ap);
        }
        st->check_valid = true;
        st->check_ok = ok;
        if (!ok)
                st->check_failures++;
        st->check_latency = now_usec(CLOCK_MONOTONIC) - st->started;
        st->check_at = now_usec(CLOCK_REALTIME);
        if (!streq_ptr(st->check_error, ok ? NULL : error)) {
                free(st->check_error);
                st->check_error = ok ? NULL : strdup(error);
        }
        /* the next one an interval after this one started */
        (void) sd_event_source_set_time(st->timer, st->started + m->interval);
        state_note_route(m, st);
        /* a node with no SSH pool is as healthy as this path */
        node_set_health(st->node, ok ? NODE_HEALTH_OK : NODE_HEALTH_FAILING);
}

static void on_check_opened(Tunnel *t, int status, const char *reason, const char *body, void *userdata) {
        RouteState *st = userdata;

        st->tunnel = NULL;
        if (status == 200) {
                /* the path works: nothing to say through it */
                FarEnd far = tunnel_far_end(t);
                far.ops->abort(far.end);
                check_finish(st, true, NULL);
        } else if (status > 0)
                check_finish(st, false, "HTTP %d %s%s%s", status, strna(reason), body && *body ? ": " : "",
                             body ? body : "");
        else
                check_finish(st, false, "upstream unreachable: %s", strna(reason));
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        RouteState *st = userdata;
        Migration *m = st->owner;
        int r;

        if (st->tunnel) {
                check_finish(st, false, "no answer within %.1f s", (double) m->timeout / USEC_PER_SEC);
                return 0;
        }
        if (!m->upstream) {
                (void) sd_event_source_set_time(s, usec + m->interval);
                return 0;
        }
        st->started = now_usec(CLOCK_MONOTONIC);
        r = tunnel_open(m->upstream, node_config(st->node)->address, m->cfg->konnectivity.probe_port,
                        on_check_opened, st, &st->tunnel);
        if (r < 0) {
                check_finish(st, false, "cannot start a CONNECT: %s", strerror(-r));
                return 0;
        }
        /* wake at the timeout if the answer does not come first */
        (void) sd_event_source_set_time(s, st->started + m->timeout);
        return 0;
}

/* Checks start somewhere in the interval: not every node at once. */
static int check_schedule(RouteState *st) {
        Migration *m = st->owner;
        usec_t when = now_usec(CLOCK_MONOTONIC) + rng_uniform(m->rng, m->interval);
        int r;

        check_stop(st);
        if (!m->upstream) {
                st->timer = sd_event_source_disable_unref(st->timer);
                return 0;
        }
        if (st->timer)
                r = sd_event_source_set_time(st->timer, when);
        else {
                r = sd_event_add_time(m->event, &st->timer, CLOCK_MONOTONIC, when, 50 * USEC_PER_MSEC,
                                      on_check_timer, st);
                if (r >= 0)
                        (void) sd_event_source_set_description(st->timer, "upstream-check");
        }
        if (r >= 0)
                r = sd_event_source_set_enabled(st->timer, SD_EVENT_ON);
        return r;
}

/* --- the object ------------------------------------------------------------------- */

int migration_new(sd_event *e, Rng *rng, Migration **ret) {
        Migration *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->event = e;
        m->rng = rng;
        m->interval = CHECK_INTERVAL_DEFAULT_USEC;
        m->timeout = CHECK_TIMEOUT_DEFAULT_USEC;
        *ret = m;
        return 0;
}

Migration *migration_free(Migration *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_states; i++)
                state_free(m->states[i]);
        free(m->states);
        free(m);
        return NULL;
}

void migration_update(Migration *m, const Config *cfg, Upstream *u, Node *const *nodes, size_t n_nodes) {
        bool new_upstream = u != m->upstream;
        RouteState **next;
        size_t n_next = 0;

        m->cfg = cfg;
        m->upstream = u;
        m->interval = cfg->probe.type != PROBE_NONE ? sec_to_usec(cfg->probe.interval) : CHECK_INTERVAL_DEFAULT_USEC;
        m->timeout = cfg->probe.type != PROBE_NONE ? sec_to_usec(cfg->probe.timeout) : CHECK_TIMEOUT_DEFAULT_USEC;
        m->timeout = MIN(m->timeout, m->interval);

        next = calloc(MAX(n_nodes, (size_t) 1), sizeof(RouteState *));
        if (!next) {
                log_error("konnectivity: out of memory: routes keep their previous state");
                return;
        }
        for (size_t i = 0; i < n_nodes; i++) {
                RouteState *st = migration_find(m, nodes[i]);
                bool listed = config_konnectivity_lists(cfg, node_name(nodes[i]));

                if (st) {
                        if (listed != st->listed) {
                                /* rollback: keep the upstream until SSH can take over */
                                st->rolling_back = !listed && node_started(nodes[i]);
                                log_node(LOG_NOTICE, node_name(nodes[i]), "route: %s", listed ? "konnectivity" : "ssh");
                        }
                        st->listed = listed;
                        if (new_upstream || !st->timer)
                                (void) check_schedule(st);
                } else {
                        st = calloc(1, sizeof(*st));
                        if (!st) {
                                log_node(LOG_ERR, node_name(nodes[i]), "konnectivity: out of memory: routed over SSH");
                                continue;
                        }
                        st->owner = m;
                        st->node = nodes[i];
                        st->listed = listed;
                        (void) check_schedule(st);
                }
                st->kept = true;
                next[n_next++] = st;
        }
        /* nodes gone: their state goes */
        for (size_t j = 0; j < m->n_states; j++)
                if (!m->states[j]->kept)
                        state_free(m->states[j]);
        for (size_t i = 0; i < n_next; i++)
                next[i]->kept = false;
        free(m->states);
        qsort(next, n_next, sizeof(RouteState *), state_cmp);
        m->states = next;
        m->n_states = n_next;
        for (size_t i = 0; i < n_next; i++)
                state_note_route(m, next[i]);
}

NodeRoute migration_route(const Migration *m, const Node *n) {
        const RouteState *st = m ? migration_find(m, n) : NULL;
        RouteInputs in;

        if (!st)
                return ROUTE_SSH;
        in = route_inputs(m, st);
        return migration_decide(&in);
}

bool migration_listed(const Migration *m, const Node *n) {
        const RouteState *st = m ? migration_find(m, n) : NULL;
        return st && st->listed && m->upstream;
}

Upstream *migration_upstream(const Migration *m) {
        return m ? m->upstream : NULL;
}

void migration_node_changed(Migration *m, Node *n) {
        RouteState *st = m ? migration_find(m, n) : NULL;

        if (!st)
                return;
        if (st->rolling_back && node_has_ready_session(n))
                st->rolling_back = false;
        state_note_route(m, st);
}

void migration_count_fallback(Migration *m, const Node *n) {
        RouteState *st = m ? migration_find(m, n) : NULL;

        if (st)
                st->fallbacks++;
}

void migration_fill_info(const Migration *m, const Node *n, NodeInfo *info) {
        const RouteState *st = m ? migration_find(m, n) : NULL;
        RouteInputs in;

        info->route = ROUTE_SSH;
        if (!st)
                return;
        in = route_inputs(m, st);
        info->route = migration_decide(&in);
        info->migrated = st->listed && m->upstream;
        info->falling_back = info->migrated && info->route == ROUTE_SSH;
        info->upstream = (ProbeInfo) {
                .valid = st->check_valid,
                .ok = st->check_ok,
                .latency = st->check_latency,
                .at = st->check_at,
                .error = st->check_error,
        };
        info->fallbacks = st->fallbacks;
        info->upstream_failures = st->check_failures;
}
