/* One node: a pool of SSH sessions, each reconnecting with full-jitter
 * backoff, and the single state an operator sees for the node. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "node.h"
#include "probe.h"

#define BACKOFF_BASE_USEC (1 * USEC_PER_SEC)
/* A session that stayed up this long earns a fresh backoff. */
#define BACKOFF_RESET_AFTER_USEC (30 * USEC_PER_SEC)
/* Refusals (host key, auth) cannot heal by retrying soon: at least half of
 * ssh.backoff_max, capped here. */
#define REFUSAL_RETRY_MIN_USEC (30 * USEC_PER_SEC)

typedef struct PoolSlot {
        Node *node;
        unsigned index;
        Session *session;
        sd_event_source *retry;
        Backoff backoff;
        usec_t retry_at;
} PoolSlot;

struct Node {
        const NodeEnv *env;
        const SessionOps *ops;
        ConfigNode cfg;

        PoolSlot **slots; /* each apart: timers point at them */
        unsigned n_slots;

        NodeState state;
        usec_t state_since; /* CLOCK_REALTIME */
        NodeState refusal;  /* sticky until a session is up again, else _INVALID */
        char *last_error;
        char *host_key;
        uint64_t reconnects;
        uint64_t streams_total;
        bool stopping; /* node_disconnect() was called: quiet, no retries */
        bool draining; /* the operator asked: no new streams */
        bool settled;  /* the first connection attempt has ended */
        bool started;  /* node_start() was called: new sessions connect at once */
        usec_t retire_deadline; /* removed by a reload: freed by then at the latest */
        RateLimit full_log;

        Probe *probe;
        bool probe_valid, probe_ok;
        usec_t probe_latency, probe_at;
        char *probe_error;
        uint64_t probe_failures;

        uint64_t streams_by_result[_STREAM_RESULT_MAX];
        uint64_t bytes_up, bytes_down;

        NodeHealth health; /* pool size 0: as the owner says */

        /* The journal hears of a failing node once per reason: the first
         * failure (it never came up, or went down), a change of reason,
         * and the recovery, each with what happened since. */
        char *reason;            /* the last failure in a few words, NULL while up */
        bool failing;            /* no session up since the first failure of this run */
        bool recovered;          /* a run just ended: the transition to up says so */
        bool was_up;             /* a session of this node has been up before this run */
        char *logged_reason;     /* the reason the journal heard last in this run */
        usec_t failing_since;    /* CLOCK_MONOTONIC, first failure of this run */
        unsigned failed_attempts;
        usec_t recovered_after;  /* the run that just ended: how long, how many */
        unsigned recovered_attempts;
};

static NodeState node_compute_state(const Node *n) {
        bool connecting = false, handshaking = false, authenticating = false;

        for (unsigned i = 0; i < n->n_slots; i++) {
                switch (n->ops->state(n->slots[i]->session)) {
                case SESSION_READY:
                        /* SSH works: what the operator and the probe say decides */
                        if (n->draining)
                                return NODE_DRAINING;
                        if (n->probe_valid && !n->probe_ok)
                                return NODE_DEGRADED;
                        return NODE_UP;
                case SESSION_WAITING:
                case SESSION_CONNECTING:
                        connecting = true;
                        break;
                case SESSION_HANDSHAKING:
                        handshaking = true;
                        break;
                case SESSION_AUTHENTICATING:
                        authenticating = true;
                        break;
                default:
                        break;
                }
        }
        if (n->n_slots == 0) {
                /* no SSH kept: the owner's view of the path it uses */
                if (n->draining)
                        return NODE_DRAINING;
                if (n->health == NODE_HEALTH_UNKNOWN)
                        return NODE_CONNECTING;
                return n->health == NODE_HEALTH_OK ? NODE_UP : NODE_DEGRADED;
        }
        if (n->refusal != _NODE_STATE_INVALID)
                return n->refusal;
        if (authenticating)
                return NODE_AUTHENTICATING;
        if (handshaking)
                return NODE_HANDSHAKING;
        if (connecting)
                return NODE_CONNECTING;
        return NODE_BACKOFF;
}


static void node_set_string(char **field, const char *v) {
        if (streq_ptr(*field, v))
                return;
        free(*field);
        *field = v ? strdup(v) : NULL;
}

/* Up, degraded and draining all have a ready SSH session. */
static bool state_has_ssh(NodeState st) {
        return st == NODE_UP || st == NODE_DEGRADED || st == NODE_DRAINING;
}

/* What an operator reads in the journal when the node's state changes. */
static void node_log_transition(Node *n, NodeState old, NodeState st) {
        switch (st) {
        case NODE_UP:
                if (old == NODE_DEGRADED)
                        log_node(LOG_NOTICE, n->cfg.name, "up: probe passes again");
                else if (old == NODE_DRAINING)
                        log_node(LOG_NOTICE, n->cfg.name, "up: no longer draining");
                else if (n->recovered)
                        log_node(LOG_NOTICE, n->cfg.name, "up again after %.1f s and %u failed attempts (host key %s)",
                                 (double) n->recovered_after / USEC_PER_SEC, n->recovered_attempts,
                                 strna(n->host_key));
                else
                        log_node(LOG_INFO, n->cfg.name, "up (host key %s)", strna(n->host_key));
                break;
        case NODE_DEGRADED:
                log_node(LOG_WARNING, n->cfg.name, "degraded: probe failed: %s", strna(n->probe_error));
                break;
        case NODE_DRAINING:
                log_node(LOG_NOTICE, n->cfg.name, "draining: no new streams, %u open ones finish",
                         node_streams(n));
                break;
        default:
                /* failures are told by node_note_failure(), once per reason */
                log_node(LOG_DEBUG, n->cfg.name, "%s%s", n->stopping ? "disconnected: " : "",
                         node_state_to_string(st));
                break;
        }
}

static void node_update_state(Node *n) {
        NodeState st = node_compute_state(n);

        probe_set_active(n->probe, state_has_ssh(st));
        if (st == n->state)
                return;
        node_log_transition(n, n->state, st);
        n->state = st;
        if (st != NODE_CONNECTING && st != NODE_HANDSHAKING && st != NODE_AUTHENTICATING)
                n->settled = true;
        n->state_since = now_usec(CLOCK_REALTIME);
        n->recovered = false;
        if (n->env->changed)
                n->env->changed(n, n->env->userdata);
}


/* A session failed while no other is up. */
static void node_note_failure(Node *n, SessionFailure f) {
        bool refusal = f == SESSION_FAILURE_HOSTKEY_UNKNOWN || f == SESSION_FAILURE_HOSTKEY_MISMATCH ||
                       f == SESSION_FAILURE_AUTH;
        int level = refusal ? LOG_ERR : LOG_WARNING;
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (!n->failing) {
                n->failing = true;
                n->failing_since = now;
                n->failed_attempts = 1;
                node_set_string(&n->logged_reason, n->reason);
                if (n->was_up)
                        log_node(level, n->cfg.name, "down: %s", strna(n->last_error));
                else
                        log_node(level, n->cfg.name, "cannot connect: %s", strna(n->last_error));
                return;
        }
        n->failed_attempts++;
        if (streq_ptr(n->reason, n->logged_reason))
                return; /* told already; the count grows */
        log_node(level, n->cfg.name, "still down, now: %s (%u attempts in %.0f s since the first failure)",
                 strna(n->last_error), n->failed_attempts, (double) (now - n->failing_since) / USEC_PER_SEC);
        node_set_string(&n->logged_reason, n->reason);
}

/* A session is up: a run of failures, if any, is over. */
static void node_note_recovery(Node *n) {
        node_set_string(&n->reason, NULL);
        n->was_up = true;
        if (!n->failing)
                return;
        n->failing = false;
        n->recovered = true;
        n->recovered_after = now_usec(CLOCK_MONOTONIC) - n->failing_since;
        n->recovered_attempts = n->failed_attempts;
        node_set_string(&n->logged_reason, NULL);
}

static int on_retry(sd_event_source *es, uint64_t usec, void *userdata) {
        PoolSlot *slot = userdata;
        slot->node->ops->connect(slot->session);
        return 0;
}

static void slot_schedule_retry(PoolSlot *slot, usec_t delay) {
        Node *n = slot->node;
        usec_t when = now_usec(CLOCK_MONOTONIC) + delay;
        int r;

        slot->retry_at = when;
        if (slot->retry) {
                r = sd_event_source_set_time(slot->retry, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(slot->retry, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time(n->env->event, &slot->retry, CLOCK_MONOTONIC, when, 50 * USEC_PER_MSEC,
                                      on_retry, slot);
                if (r >= 0)
                        (void) sd_event_source_set_description(slot->retry, "node-retry");
        }
        if (r < 0)
                log_node(LOG_ERR, n->cfg.name, "cannot schedule reconnect: %s", strerror(-r));
}

static uint64_t backoff_random(void *userdata, uint64_t n) {
        return rng_uniform(userdata, n);
}

static PoolSlot *node_find_slot(const Node *n, const Session *s) {
        for (unsigned i = 0; i < n->n_slots; i++)
                if (n->slots[i]->session == s)
                        return n->slots[i];
        return NULL;
}

static void on_session_changed(Session *s, void *userdata) {
        Node *n = userdata;
        const SessionOps *ops = n->ops;
        PoolSlot *slot = node_find_slot(n, s);

        if (!slot)
                return; /* still being built */

        if (ops->host_key(s))
                node_set_string(&n->host_key, ops->host_key(s));

        switch (ops->state(s)) {
        case SESSION_READY:
                n->refusal = _NODE_STATE_INVALID;
                node_set_string(&n->last_error, NULL);
                node_note_recovery(n);
                break;

        case SESSION_FAILED: {
                SessionFailure f = ops->failure(s);
                usec_t up = ops->up_duration(s);
                usec_t delay;

                if (up > 0 && f != SESSION_FAILURE_CLOSED)
                        n->reconnects++;
                if (up >= BACKOFF_RESET_AFTER_USEC)
                        backoff_reset(&slot->backoff);
                node_set_string(&n->last_error, ops->last_error(s));
                if (f == SESSION_FAILURE_LOCAL) {
                        /* the whole daemon's trouble: one line for every node */
                        unsigned suppressed;
                        node_set_string(&n->reason, ops->reason ? ops->reason(s) : NULL);
                        if (n->env->local_failure_log &&
                            ratelimit_below(n->env->local_failure_log, &suppressed))
                                log_warning("Out of file descriptors: cannot connect to nodes (%s: %s); they "
                                            "retry with backoff, this is said once a minute (%u times not "
                                            "since): raise LimitNOFILE",
                                            n->cfg.name, strna(ops->last_error(s)), suppressed);
                        else
                                log_node(LOG_DEBUG, n->cfg.name, "cannot connect: %s", strna(ops->last_error(s)));
                } else if (f != SESSION_FAILURE_CLOSED) {
                        node_set_string(&n->reason, ops->reason ? ops->reason(s) : NULL);
                        if (!node_has_ready_session(n))
                                node_note_failure(n, f);
                        else if (up > 0)
                                log_node(LOG_INFO, n->cfg.name, "session %u lost (%s); reconnecting", slot->index,
                                         strna(n->reason));
                }
                switch (f) {
                case SESSION_FAILURE_HOSTKEY_UNKNOWN:
                        n->refusal = NODE_HOSTKEY_UNKNOWN;
                        break;
                case SESSION_FAILURE_HOSTKEY_MISMATCH:
                        n->refusal = NODE_HOSTKEY_MISMATCH;
                        break;
                case SESSION_FAILURE_AUTH:
                        n->refusal = NODE_AUTH_FAILED;
                        break;
                case SESSION_FAILURE_CLOSED:
                        /* we closed it: the owner decides what comes next */
                        node_update_state(n);
                        return;
                default:
                        n->refusal = _NODE_STATE_INVALID;
                        break;
                }
                /* ssh.backoff_max as it is now: a reload applies at the next failure */
                usec_t cap = sec_to_usec(n->env->sessions->ssh->backoff_max);
                slot->backoff.cap = cap;
                slot->backoff.base = MIN(BACKOFF_BASE_USEC, cap);
                if (f == SESSION_FAILURE_HOSTKEY_UNKNOWN || f == SESSION_FAILURE_HOSTKEY_MISMATCH ||
                    f == SESSION_FAILURE_AUTH) {
                        usec_t lo = MIN(REFUSAL_RETRY_MIN_USEC, cap / 2);
                        delay = lo + rng_uniform(n->env->rng, cap - lo + 1);
                } else
                        delay = backoff_next(&slot->backoff, backoff_random, n->env->rng);
                log_node(LOG_DEBUG, n->cfg.name, "session %u: %s; retry in %.1f s", slot->index,
                         strna(ops->last_error(s)), (double) delay / USEC_PER_SEC);
                slot_schedule_retry(slot, delay);
                break;
        }
        default:
                break;
        }
        node_update_state(n);
}

/* A stream's open ended on one of our sessions. */
static void on_stream_opened(Session *s, StreamResult r, void *userdata) {
        node_count_stream(userdata, r);
}

/* An open stream ended: its bytes. */
static void on_stream_closed(Session *s, uint64_t up, uint64_t down, void *userdata) {
        Node *n = userdata;

        n->bytes_up += up;
        n->bytes_down += down;
}

static const SessionHooks session_hooks = {
        .changed = on_session_changed,
        .stream_opened = on_stream_opened,
        .stream_closed = on_stream_closed,
};

static void slot_free(PoolSlot *slot) {
        if (!slot)
                return;
        slot->retry = sd_event_source_disable_unref(slot->retry);
        /* detach first: the teardown must not call back into a dying slot */
        slot->node->ops->destroy(TAKE_PTR(slot->session));
        free(slot);
}

static int slot_new(Node *n, unsigned index, PoolSlot **ret) {
        PoolSlot *slot = calloc(1, sizeof(*slot));
        SessionParams p = {
                .node_name = n->cfg.name,
                .address = n->cfg.address,
                .port = n->cfg.port,
                .index = index,
                .hooks = &session_hooks,
                .userdata = n,
        };
        int r;

        if (!slot)
                return -ENOMEM;
        slot->node = n;
        slot->index = index;
        slot->backoff = (Backoff) { .base = BACKOFF_BASE_USEC, .cap = sec_to_usec(n->env->sessions->ssh->backoff_max) };
        r = n->ops->create(n->env->sessions, &p, &slot->session);
        if (r < 0) {
                free(slot);
                return r;
        }
        *ret = slot;
        return 0;
}

int node_set_pool_size(Node *n, unsigned size) {
        PoolSlot **slots;

        if (size == n->n_slots)
                return 0;
        /* shrinking closes the last connections: their streams end */
        while (n->n_slots > size)
                slot_free(n->slots[--n->n_slots]);
        slots = realloc(n->slots, MAX(size, 1u) * sizeof(PoolSlot *));
        if (!slots)
                return -ENOMEM;
        n->slots = slots;
        while (n->n_slots < size) {
                int r = slot_new(n, n->n_slots, &n->slots[n->n_slots]);
                if (r < 0)
                        return r;
                if (n->started)
                        n->ops->connect(n->slots[n->n_slots]->session);
                n->n_slots++;
        }
        if (n->started)
                node_update_state(n);
        return 0;
}

int node_update(Node *n, const ConfigNode *cn) {
        bool moved = !config_node_same_endpoint(&n->cfg, cn);
        ConfigNode copy;
        unsigned size = n->n_slots;
        int r;

        r = config_node_copy(cn, &copy);
        if (r < 0)
                return r;
        config_node_done(&n->cfg);
        n->cfg = copy;
        if (!moved)
                return 0;

        /* another machine, or another sshd: new sessions, and the old
         * host key, refusal and error no longer apply */
        log_node(LOG_NOTICE, n->cfg.name, "address changed to %s port %u: reconnecting", n->cfg.address,
                 n->cfg.port);
        while (n->n_slots > 0)
                slot_free(n->slots[--n->n_slots]);
        n->refusal = _NODE_STATE_INVALID;
        node_set_string(&n->host_key, NULL);
        node_set_string(&n->last_error, NULL);
        node_set_string(&n->reason, NULL);
        node_set_string(&n->logged_reason, NULL);
        n->failing = n->was_up = false;
        r = node_set_pool_size(n, size);
        if (r < 0)
                return r;
        return 1;
}

/* --- the probe ------------------------------------------------------------- */

static int probe_open_channel(void *userdata, const char *host, uint16_t port, const ChannelCallbacks *cb,
                              void *cb_userdata, Channel **ret) {
        Node *n = userdata;
        Session *best = NULL;

        /* a probe checks the path, whatever the operator or the load says */
        for (unsigned i = 0; i < n->n_slots; i++) {
                Session *s = n->slots[i]->session;
                if (n->ops->state(s) == SESSION_READY &&
                    (!best || n->ops->channels(s) < n->ops->channels(best)))
                        best = s;
        }
        if (!best)
                return -EHOSTDOWN;
        /* what a kubelet sees as the caller: the node itself */
        return n->ops->open_channel(best, true, host, port, "127.0.0.1", 0, cb, cb_userdata, ret);
}

/* A probe finished: a failing one turns an up node "degraded" (still
 * routed), a passing one turns it back. The state change is what is
 * logged (node_log_transition); each run only at debug level. */
static void probe_result(void *userdata, bool ok, usec_t latency, const char *error) {
        Node *n = userdata;

        n->probe_valid = true;
        n->probe_ok = ok;
        n->probe_latency = latency;
        n->probe_at = now_usec(CLOCK_REALTIME);
        if (!ok)
                n->probe_failures++;
        node_set_string(&n->probe_error, ok ? NULL : error);
        log_node(LOG_DEBUG, n->cfg.name, "probe %s in %.3f s%s%s", ok ? "passed" : "failed",
                 (double) latency / USEC_PER_SEC, ok ? "" : ": ", ok ? "" : strna(error));
        node_update_state(n);
}

static const ProbeHooks probe_hooks = {
        .open_channel = probe_open_channel,
        .result = probe_result,
};

static int node_make_probe(Node *n) {
        return probe_new(&(ProbeParams) {
                                 .event = n->env->event,
                                 .config = n->env->probe,
                                 .tls = n->env->probe_tls,
                                 .rng = n->env->rng,
                                 .metrics = n->env->metrics,
                                 .node = &n->cfg,
                                 .hooks = &probe_hooks,
                                 .userdata = n,
                         },
                         &n->probe);
}

int node_reset_probe(Node *n) {
        int r;

        n->probe = probe_free(n->probe);
        /* the old settings' verdict does not carry over */
        n->probe_valid = false;
        r = node_make_probe(n);
        if (r < 0)
                return log_node_full_errno(LOG_ERR, n->cfg.name, r, "cannot set up the probe: %m");
        node_update_state(n);
        return 0;
}

/* --- the object ------------------------------------------------------------ */

int node_new(const NodeEnv *env, const ConfigNode *cn, unsigned pool_size, Node **ret) {
        Node *n;
        int r;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->env = env;
        n->ops = env->session_ops;
        n->state = NODE_CONNECTING;
        n->state_since = now_usec(CLOCK_REALTIME);
        n->refusal = _NODE_STATE_INVALID;
        n->full_log = (RateLimit) { .interval = 60 * USEC_PER_SEC, .burst = 1 };
        r = config_node_copy(cn, &n->cfg);
        if (r < 0) {
                free(n);
                return r;
        }
        r = node_set_pool_size(n, pool_size);
        if (r >= 0)
                r = node_make_probe(n);
        if (r < 0) {
                node_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

Node *node_free(Node *n) {
        if (!n)
                return NULL;
        n->probe = probe_free(n->probe);
        while (n->n_slots > 0)
                slot_free(n->slots[--n->n_slots]);
        free(n->slots);
        config_node_done(&n->cfg);
        free(n->last_error);
        free(n->host_key);
        free(n->probe_error);
        free(n->reason);
        free(n->logged_reason);
        free(n);
        return NULL;
}

void node_start(Node *n) {
        n->started = true;
        for (unsigned i = 0; i < n->n_slots; i++)
                n->ops->connect(n->slots[i]->session);
        node_update_state(n);
}

void node_retire(Node *n, usec_t deadline) {
        n->retire_deadline = deadline;
        node_drain(n);
}

usec_t node_retire_deadline(const Node *n) {
        return n->retire_deadline;
}

bool node_started(const Node *n) {
        return n->started;
}

void node_disconnect(Node *n, const char *why) {
        n->stopping = true;
        for (unsigned i = 0; i < n->n_slots; i++) {
                n->slots[i]->retry = sd_event_source_disable_unref(n->slots[i]->retry);
                n->ops->disconnect(n->slots[i]->session, why);
        }
}

const char *node_name(const Node *n) {
        return n->cfg.name;
}

const ConfigNode *node_config(const Node *n) {
        return &n->cfg;
}

NodeState node_state(const Node *n) {
        return n->state;
}

unsigned node_streams(const Node *n) {
        unsigned c = 0;
        for (unsigned i = 0; i < n->n_slots; i++)
                c += n->ops->channels(n->slots[i]->session);
        return c;
}

void node_get_info(const Node *n, NodeInfo *ret) {
        unsigned up = 0, pending = 0;

        for (unsigned i = 0; i < n->n_slots; i++) {
                if (n->ops->state(n->slots[i]->session) == SESSION_READY)
                        up++;
                if (n->ops->opens_pending)
                        pending += n->ops->opens_pending(n->slots[i]->session);
        }
        *ret = (NodeInfo) {
                .name = n->cfg.name,
                .address = n->cfg.address,
                .port = n->cfg.port,
                .state = n->state,
                .route = ROUTE_SSH,
                .sessions_up = up,
                .sessions_total = n->n_slots,
                .streams = node_streams(n),
                .opens_pending = pending,
                .streams_total = n->streams_total,
                .reconnects = n->reconnects,
                .last_error = n->last_error,
                .reason = n->reason,
                .host_key = n->host_key,
                .state_since = n->state_since,
                .draining = n->draining,
                .probe = {
                        .valid = n->probe_valid,
                        .ok = n->probe_ok,
                        .latency = n->probe_latency,
                        .at = n->probe_at,
                        .error = n->probe_error,
                },
                .probe_failures = n->probe_failures,
                .bytes_up = n->bytes_up,
                .bytes_down = n->bytes_down,
        };
        memcpy(ret->streams_by_result, n->streams_by_result, sizeof(ret->streams_by_result));
}

void node_drain(Node *n) {
        if (n->draining)
                return;
        n->draining = true;
        node_update_state(n);
}

void node_undrain(Node *n) {
        if (!n->draining)
                return;
        n->draining = false;
        node_update_state(n);
}

void node_reconnect(Node *n) {
        log_node(LOG_NOTICE, n->cfg.name, "reconnecting on request");
        for (unsigned i = 0; i < n->n_slots; i++) {
                PoolSlot *slot = n->slots[i];
                /* the operator asked: no backoff, refusals included */
                (void) sd_event_source_set_enabled(slot->retry, SD_EVENT_OFF);
                backoff_reset(&slot->backoff);
                n->ops->disconnect(slot->session, "reconnect requested by the operator");
                n->ops->connect(slot->session);
        }
        n->refusal = _NODE_STATE_INVALID;
        node_update_state(n);
}

void node_set_health(Node *n, NodeHealth h) {
        if (n->health == h)
                return;
        n->health = h;
        node_update_state(n);
}

void node_count_stream(Node *n, StreamResult r) {
        if (r < _STREAM_RESULT_MAX)
                n->streams_by_result[r]++;
}

static unsigned node_max_streams(const Node *n) {
        return n->env->sessions->ssh->max_streams_per_session;
}

/* How busy a session is for a new stream: opens queued or in flight
 * first (libssh2 opens one channel at a time per session: a stream behind
 * another open waits a round trip for it), then the streams it carries
 * that are not ending. A stream whose client has finished (EOF, or gone)
 * closes a round trip later; counting it sent a client's next stream, one
 * after another, to the other session of a pool of two every time, to an
 * sshd that had gone to sleep meanwhile: 40 us more per open at the
 * median with pool_size = 2. */
static uint64_t node_session_load(const Node *n, Session *s) {
        unsigned pending = n->ops->opens_pending ? n->ops->opens_pending(s) : 0;
        unsigned busy = n->ops->busy_streams ? n->ops->busy_streams(s) : n->ops->channels(s);
        return ((uint64_t) pending << 32) | busy;
}

/* The least-loaded ready session with room, the first of equals. */
static Session *node_pick_session(const Node *n, bool *ret_full) {
        unsigned max = node_max_streams(n);
        Session *best = NULL;
        uint64_t best_load = 0;
        bool any_ready = false;

        for (unsigned i = 0; i < n->n_slots; i++) {
                Session *s = n->slots[i]->session;
                uint64_t load;

                if (n->ops->state(s) != SESSION_READY)
                        continue;
                any_ready = true;
                if (n->ops->channels(s) >= max)
                        continue;
                load = node_session_load(n, s);
                if (!best || load < best_load) {
                        best = s;
                        best_load = load;
                }
        }
        *ret_full = any_ready && !best;
        return best;
}

unsigned node_free_capacity(const Node *n) {
        unsigned max = node_max_streams(n), free_slots = 0;

        if (n->state != NODE_UP && n->state != NODE_DEGRADED)
                return 0; /* draining nodes take no new streams */
        for (unsigned i = 0; i < n->n_slots; i++) {
                Session *s = n->slots[i]->session;
                if (n->ops->state(s) == SESSION_READY && n->ops->channels(s) < max)
                        free_slots += max - n->ops->channels(s);
        }
        return free_slots;
}

bool node_settled(const Node *n) {
        return n->settled;
}

bool node_is_ready(const Node *n) {
        bool full;
        return (n->state == NODE_UP || n->state == NODE_DEGRADED) && node_pick_session(n, &full);
}

bool node_has_ready_session(const Node *n) {
        for (unsigned i = 0; i < n->n_slots; i++)
                if (n->ops->state(n->slots[i]->session) == SESSION_READY)
                        return true;
        return false;
}

int node_open_channel(Node *n, const char *host, uint16_t port, const char *orig_host,
                      uint16_t orig_port, const ChannelCallbacks *cb, void *userdata,
                      Channel **ret) {
        bool full;
        Session *s;
        int r;

        if (n->state != NODE_UP && n->state != NODE_DEGRADED) {
                node_count_stream(n, STREAM_UNAVAILABLE);
                return -EHOSTDOWN;
        }
        s = node_pick_session(n, &full);
        if (!s) {
                if (full) {
                        unsigned suppressed;
                        if (ratelimit_below(&n->full_log, &suppressed))
                                log_node(LOG_WARNING, n->cfg.name,
                                         "every session is at ssh.max_streams_per_session (%u): new streams "
                                         "get 503 (%u more times since the last message)",
                                         node_max_streams(n), suppressed);
                        node_count_stream(n, STREAM_UNAVAILABLE);
                        return -EBUSY;
                }
                node_count_stream(n, STREAM_UNAVAILABLE);
                return -EHOSTDOWN;
        }
        r = n->ops->open_channel(s, false, host, port, orig_host, orig_port, cb, userdata, ret);
        if (r >= 0)
                n->streams_total++;
        return r;
}
