/* One SSH connection: connect, key exchange, host key, auth, liveness;
 * its channels live in channel.c. A non-blocking libssh2 session on the loop.
 *
 * Two rules from libssh2 1.10 shape this file (see LIBSSH2.md):
 *  - libssh2 never sees a short or failed send: the send callback appends to
 *    our own output queue, which the loop flushes when the socket is
 *    writable. Channel writes stop while that queue is above its high-water
 *    mark, so it stays bounded.
 *  - any libssh2 call may read packets for every channel, so after any call
 *    every channel with room is pumped again, until nothing moves.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>
#include <systemd/sd-event.h>

#include "address.h"
#include "hostkey.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "session-internal.h"

/* What one wakeup may read from a node before the loop turns: a node that
 * sends faster than we read (an endless banner arrives one recv() per byte)
 * must not keep the loop from its timers and from the other nodes. The
 * kernel still holds the rest; level-triggered epoll wakes us again. */
#define RX_CALLS_PER_WAKEUP 1024U
#define RX_BYTES_PER_WAKEUP (1024U * 1024U)

/* A key exchange and a public-key authentication take a few KiB, pre-banner
 * lines and an auth banner included; more before the session is ready is a
 * node feeding us garbage (libssh2 reads the version line one byte per
 * recv()): drop it now rather than at connect_timeout. */
#define HANDSHAKE_RX_LIMIT (256U * 1024U)
/* libssh2 reads the node's version exchange one byte per recv() (RFC 4253
 * 4.2 lets a node send any number of lines before its version line): a
 * read shorter than this takes up to this much from the socket in one
 * call and hands it out from Session.rxq. Only the version exchange
 * reads so little; the packet reads ask for ~32 KiB. */
#define RX_READ_AHEAD 4096U

/* Host-key algorithms libssh2 1.10 can verify (no -cert: its init is NULL). */
#define HOSTKEY_METHODS "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521"

static const char *const state_names[_SESSION_STATE_MAX] = {
        [SESSION_IDLE] = "idle",
        [SESSION_WAITING] = "waiting",
        [SESSION_CONNECTING] = "connecting",
        [SESSION_HANDSHAKING] = "handshaking",
        [SESSION_AUTHENTICATING] = "authenticating",
        [SESSION_READY] = "ready",
        [SESSION_FAILED] = "failed",
};

const char *session_state_to_string(SessionState s) {
        return s < _SESSION_STATE_MAX ? state_names[s] : "?";
}

static const ConfigSsh *session_cfg(const Session *s) {
        return s->env->ssh;
}

static void session_process(Session *s);
static void session_fail(Session *s, SessionFailure f, const char *reason, const char *fmt, ...) _printf_(4, 5);
static void session_update_io(Session *s);

/* --- libssh2 memory and I/O callbacks --------------------------------- */

static LIBSSH2_ALLOC_FUNC(session_alloc_cb) {
        Session *s = *abstract;
        return ssh_arena_alloc(&s->arena, count);
}

static LIBSSH2_REALLOC_FUNC(session_realloc_cb) {
        Session *s = *abstract;
        return ssh_arena_realloc(&s->arena, ptr, count);
}

static LIBSSH2_FREE_FUNC(session_free_cb) {
        Session *s = *abstract;
        ssh_arena_free(&s->arena, ptr);
}

/* libssh2 frees the signature with the session's allocator. */
static LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC(session_sign_cb) {
        Session *s = *abstract;
        uint8_t buf[IDENTITY_SIGNATURE_MAX];
        size_t n = 0;

        if (identity_sign(s->env->identity, data, data_len, buf, &n) < 0)
                return -1;
        *sig = ssh_arena_alloc(&s->arena, n);
        if (!*sig)
                return -1;
        memcpy(*sig, buf, n);
        *sig_len = n;
        return 0;
}

static LIBSSH2_SEND_FUNC(session_send_cb) {
        Session *s = *abstract;

        if (s->dead)
                return -EPIPE;
        if (buffer_len(&s->outq) + length > OUTQ_HARD_LIMIT)
                return -ENOBUFS;
        if (buffer_append_force(&s->outq, buffer, length) < 0)
                return -ENOMEM;
        return (ssize_t) length;
}

static ssize_t session_rx_take(Session *s, void *buffer, size_t length) {
        size_t n = MIN(length, buffer_len(&s->rxq));

        memcpy(buffer, buffer_head(&s->rxq), n);
        buffer_consume(&s->rxq, n);
        return (ssize_t) n;
}

static LIBSSH2_RECV_FUNC(session_recv_cb) {
        Session *s = *abstract;
        ssize_t n;

        if (s->dead)
                return -ECONNRESET;
        if (!buffer_empty(&s->rxq))
                return session_rx_take(s, buffer, length);
        /* libssh2 polls the socket from every channel call; one EAGAIN per
         * wakeup is enough, the rest would be wasted syscalls */
        if (s->rx_drained)
                return -EAGAIN;
        if (s->rx_overflow)
                return -EMSGSIZE;
        if (s->state != SESSION_READY && s->rx_total - s->rx_at_start >= HANDSHAKE_RX_LIMIT) {
                s->rx_overflow = true;
                return -EMSGSIZE;
        }
        if (s->rx_calls >= RX_CALLS_PER_WAKEUP || s->rx_total - s->rx_at_wakeup >= RX_BYTES_PER_WAKEUP) {
                /* budget spent: what is left waits for the next turn */
                s->rx_drained = true;
                return -EAGAIN;
        }
        s->rx_calls++;
        if (length < RX_READ_AHEAD)
                n = buffer_read_fd(&s->rxq, s->fd); /* -errno */
        else if ((n = recv(s->fd, buffer, length, MSG_DONTWAIT)) < 0)
                n = -errno;
        if (n == -EAGAIN || n == -EINTR) {
                s->rx_drained = true;
                return -EAGAIN;
        }
        if (n < 0) {
                s->rx_closed = true;
                return n;
        }
        if (n == 0) {
                s->rx_closed = true;
                return -ECONNRESET; /* libssh2 treats 0 as an error anyway */
        }
        s->rx_total += (uint64_t) n;
        return buffer_empty(&s->rxq) ? n : session_rx_take(s, buffer, length);
}

/* --- output --------------------------------------------------------------- */

int session_flush(Session *s) {
        while (!buffer_empty(&s->outq)) {
                ssize_t n = buffer_write_fd(&s->outq, s->fd);
                if (n == -EAGAIN || n == -EINTR)
                        return 0;
                if (n < 0)
                        return (int) n;
        }
        return 0;
}

static void session_update_io(Session *s) {
        uint32_t events;

        if (!s->io)
                return;
        /* without a control channel, bytes nobody asked for stay in the
         * kernel: stop polling for them (level-triggered epoll would spin)
         * until a channel or an open wants to read; a hang-up still wakes us */
        bool stalled = s->state == SESSION_READY && !s->rx_drained && !s->control && !s->opens;
        events = (stalled ? EPOLLRDHUP : EPOLLIN) | (buffer_empty(&s->outq) ? 0 : EPOLLOUT);
        (void) iopoll_watch_set_events(s->io, events);
        /* bytes read ahead are no longer in the socket: epoll would not
         * say they are there (libssh2 takes them with its next read) */
        if (!buffer_empty(&s->rxq) && s->defer)
                (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

/* --- connection setup ----------------------------------------------------- */

static void session_release_slot(Session *s) {
        if (s->have_slot) {
                s->have_slot = false;
                gate_release(s->env->handshakes);
        }
}

static void session_set_state(Session *s, SessionState st) {
        if (s->state == st)
                return;
        s->state = st;
        s->hooks->changed(s, s->userdata);
}

/* Everything that holds the connection goes; channels fail. */
static void session_teardown(Session *s, int channel_error, const char *why) {
        Channel *ch;

        /* from here on libssh2's I/O callbacks fail and no new channel opens */
        s->dead = true;
        s->connector = connector_free(s->connector);
        gate_cancel(s->env->handshakes, s);
        session_release_slot(s);
        s->timer = sd_event_source_disable_unref(s->timer);
        s->io = iopoll_watch_free(s->io);
        if (s->defer)
                (void) sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);

        /* user channels learn first, while their objects still exist */
        while ((ch = s->opens) || (ch = s->channels)) {
                if (ch->kind == CHANNEL_USER && !ch->abandoned) { /* streams and probes */
                        ch->ch = NULL; /* libssh2 frees it with the session */
                        channel_fail(ch, channel_error, why);
                } else {
                        channel_unlink(ch);
                        ch->ch = NULL;
                        channel_free(ch);
                }
        }
        while ((ch = s->closing)) {
                LIST_REMOVE(link, s->closing, ch);
                channel_free(ch);
        }

        s->dead = true;
        if (s->fd >= 0)
                (void) shutdown(s->fd, SHUT_RDWR);
        if (s->ssh) {
                /* with the socket shut, libssh2 frees without waiting */
                libssh2_session_free(s->ssh);
                s->ssh = NULL;
        }
        /* what libssh2 forgot (see ssharena.h) */
        (void) ssh_arena_release(&s->arena, NULL);
        s->fd = safe_close(s->fd);
        buffer_done(&s->outq);
        buffer_done(&s->rxq);
        s->rx_drained = false;
        s->rx_calls = 0;
        s->rx_overflow = false;
        s->rx_closed = false;
        s->local_port = 0;
        s->liveness_pending = false;
        s->liveness_missed = 0;
        if (s->ready_since)
                s->up_duration = now_usec(CLOCK_MONOTONIC) - s->ready_since;
        s->ready_since = 0;
        s->n_user = 0;
        s->n_ending = 0;
}

/* The session ended: 'f' for its owner, 'reason' in a few words ("connection
 * refused", at most SESSION_REASON_MAX) for tables and the journal, and
 * the whole story for last_error. */
static void session_fail(Session *s, SessionFailure f, const char *reason, const char *fmt, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);

        free(s->last_error);
        s->last_error = strdup(buf);
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
        s->failure = f;
        session_teardown(s, -ECONNABORTED, buf);
        session_set_state(s, SESSION_FAILED);
}

static int on_session_timer(sd_event_source *es, uint64_t usec, void *userdata);

static int session_arm_timer(Session *s, usec_t after) {
        usec_t when = now_usec(CLOCK_MONOTONIC) + after;
        int r;

        if (s->timer) {
                r = sd_event_source_set_time(s->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(s->env->event, &s->timer, CLOCK_MONOTONIC, when, 10 * USEC_PER_MSEC,
                              on_session_timer, s);
        if (r >= 0)
                (void) sd_event_source_set_description(s->timer, "session-timer");
        return r;
}

static int on_session_io(IoWatch *w, int fd, uint32_t revents, void *userdata);

#ifdef HAVE_LIBSSH2_SESSION_SET_READ_TIMEOUT
/* Seconds libssh2 may wait for one packet: proxy.open_timeout, but not
 * less than connect_timeout nor the liveness deadline. */
static long session_read_timeout(const Session *s) {
        const ConfigSsh *c = session_cfg(s);
        double t = MAX(s->env->open_timeout, c->connect_timeout);
        long n;

        t = MAX(t, c->keepalive_interval * c->keepalive_count);
        n = (long) t;
        if ((double) n < t)
                n++;
        return MAX(n, 1L);
}
#endif

/* 'list' (comma-separated) without the names this libssh2 does not
 * support for 'type', nor repeats, in its order; malloc'd, "" when none is
 * left, NULL when out of memory. libssh2 drops unknown names itself, but
 * 1.10 does it with an overlapping memcpy(). */
static char *session_supported_methods(Session *s, int type, const char *list) {
        const char **algs = NULL;
        int n = libssh2_session_supported_algs(s->ssh, type, &algs);
        size_t len = strlen(list);
        char *out = malloc(len + 1), *o = out;

        if (!out) {
                if (n > 0)
                        libssh2_free(s->ssh, algs);
                return NULL;
        }
        *o = 0;
        for (const char *p = list; *p;) {
                size_t k = strcspn(p, ",");
                bool known = n <= 0; /* the library cannot say: keep it */

                for (int i = 0; i < n && !known; i++)
                        known = strlen(algs[i]) == k && strncmp(algs[i], p, k) == 0;
                for (const char *q = out; known && *q;) {
                        size_t m = strcspn(q, ",");
                        if (m == k && strncmp(q, p, k) == 0)
                                known = false; /* a repeat */
                        q += m + (q[m] == ',');
                }
                if (known && k > 0) {
                        if (o != out)
                                *o++ = ',';
                        memcpy(o, p, k);
                        o += k;
                        *o = 0;
                }
                p += k + (p[k] == ',');
        }
        if (n > 0)
                libssh2_free(s->ssh, algs);
        return out;
}

/* One kind of algorithm, both directions (cs == sc for host keys), in the
 * order of 'list'; a list libssh2 knows none of fails the session naming
 * 'key'. */
static int session_set_methods(Session *s, int cs, int sc, const char *list, const char *key) {
        _cleanup_free_ char *supported = NULL;

        if (!list)
                return 0;
        supported = session_supported_methods(s, cs, list);
        if (!supported) {
                session_fail(s, SESSION_FAILURE_PROTOCOL, "out of memory", "out of memory");
                return -ENOMEM;
        }
        if (!*supported || libssh2_session_method_pref(s->ssh, cs, supported) < 0 ||
            (sc != cs && libssh2_session_method_pref(s->ssh, sc, supported) < 0)) {
                session_fail(s, SESSION_FAILURE_PROTOCOL, "no usable algorithm",
                             "%s: this libssh2 supports none of \"%s\"", key, list);
                return -EINVAL;
        }
        return 0;
}

static void session_start_handshake(Session *s) {
        _cleanup_free_ char *known = NULL, *prefs = NULL;
        struct sockaddr_storage local;
        socklen_t len = sizeof(local);
        int r;

        if (getsockname(s->fd, (struct sockaddr *) &local, &len) == 0)
                s->local_port = ntohs(local.ss_family == AF_INET ? ((struct sockaddr_in *) &local)->sin_port
                                                                  : ((struct sockaddr_in6 *) &local)->sin6_port);
        /* with every other session's in one poll set, served in batches: a
         * thousand sessions ready at once (liveness replies, a burst of
         * opens) then cost one epoll item each, not one each per turn of
         * the loop */
        r = iopoll_add(s->env->iopoll, s->fd, EPOLLIN, on_session_io, s, &s->io);
        if (r < 0) {
                session_fail(s, SESSION_FAILURE_NETWORK, "local error", "cannot watch socket: %s", strerror(-r));
                return;
        }

        s->ssh = libssh2_session_init_ex(session_alloc_cb, session_free_cb, session_realloc_cb, s);
        if (!s->ssh) {
                session_fail(s, SESSION_FAILURE_PROTOCOL, "out of memory", "cannot allocate an SSH session");
                return;
        }
        libssh2_session_set_blocking(s->ssh, 0);
#ifdef HAVE_LIBSSH2_SESSION_CALLBACK_SET2
        libssh2_session_callback_set2(s->ssh, LIBSSH2_CALLBACK_SEND, (libssh2_cb_generic *) session_send_cb);
        libssh2_session_callback_set2(s->ssh, LIBSSH2_CALLBACK_RECV, (libssh2_cb_generic *) session_recv_cb);
#else
        libssh2_session_callback_set(s->ssh, LIBSSH2_CALLBACK_SEND, (void *) session_send_cb);
        libssh2_session_callback_set(s->ssh, LIBSSH2_CALLBACK_RECV, (void *) session_recv_cb);
#endif
        /* want_reply = 0: replies would pile up inside libssh2 forever */
        libssh2_keepalive_config(s->ssh, 0, (unsigned) MAX(1.0, session_cfg(s)->keepalive_interval));
#ifdef HAVE_LIBSSH2_SESSION_SET_READ_TIMEOUT
        /* libssh2 gives up on a packet it waits for after this (else 60 s):
         * a channel open the node leaves unanswered fails after
         * proxy.open_timeout, never sooner than our own handshake and
         * liveness deadlines would end the session */
        libssh2_session_set_read_timeout(s->ssh, session_read_timeout(s));
#endif

        /* offer the key types known_hosts can verify first */
        known = s->scan_only ? NULL : trust_types(s->env->trust, s->address, s->port);
        if (known && *known) {
                if (asprintf(&prefs, "%s,%s", known, HOSTKEY_METHODS) < 0)
                        prefs = NULL;
        } else if (s->scan_key_types)
                prefs = strdup(s->scan_key_types);
        if (session_set_methods(s, LIBSSH2_METHOD_HOSTKEY, LIBSSH2_METHOD_HOSTKEY, prefs ? prefs : HOSTKEY_METHODS,
                                "host key types") < 0)
                return;
        /* ssh.ciphers and ssh.macs, in their order (names this libssh2 does
         * not know are left out; none known fails the session, naming the key) */
        if (session_set_methods(s, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC, session_cfg(s)->ciphers,
                                "ssh.ciphers") < 0 ||
            session_set_methods(s, LIBSSH2_METHOD_MAC_CS, LIBSSH2_METHOD_MAC_SC, session_cfg(s)->macs,
                                "ssh.macs") < 0)
                return;

        session_set_state(s, SESSION_HANDSHAKING);
        session_update_io(s);
        session_process(s);
}

/* Before connect(): catch a dead path, keepalives make TCP notice unacked
 * data; no Nagle delay on the SSH packets. */
static void session_prepare_socket(int fd, int family, void *userdata) {
        Session *s = userdata;
        const ConfigSsh *cfg = session_cfg(s);
        unsigned timeout_ms = (unsigned) (cfg->keepalive_interval * 1000.0 * (cfg->keepalive_count + 1));
        int one = 1, idle = (int) MAX(1.0, cfg->keepalive_interval);

        (void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void on_connected(int fd, int error, ConnectorPhase phase, const char *message, const char *cause,
                         void *userdata) {
        Session *s = userdata;

        s->connector = NULL; /* freed by now */
        if (fd < 0) {
                char reason[SESSION_REASON_MAX + 1];

                if (phase == CONNECTOR_RESOLVE)
                        /* DNS and the resolver's words */
                        snprintf(reason, sizeof(reason), "DNS: %s", cause);
                else {
                        snprintf(reason, sizeof(reason), "%s", cause);
                        reason[0] = (char) tolower((unsigned char) reason[0]);
                }
                /* EMFILE, ENFILE: this process or host is out of descriptors,
                 * every node alike; the owner says so once, not per node */
                session_fail(s, error == -EMFILE || error == -ENFILE ? SESSION_FAILURE_LOCAL : SESSION_FAILURE_NETWORK,
                             reason, "%s", message);
                return;
        }
        s->fd = fd;
        s->dead = false;
        session_start_handshake(s);
}

/* We hold a handshake slot: resolve (if needed) and connect. */
static void session_begin(void *userdata) {
        Session *s = userdata;
        int r;

        s->have_slot = true;
        s->connect_started = now_usec(CLOCK_MONOTONIC);
        s->rx_at_start = s->rx_at_wakeup = s->rx_total;
        r = session_arm_timer(s, sec_to_usec(session_cfg(s)->connect_timeout));
        if (r < 0) {
                session_fail(s, SESSION_FAILURE_NETWORK, "local error", "cannot arm timer: %s", strerror(-r));
                return;
        }
        session_set_state(s, SESSION_CONNECTING);
        r = connector_new(s->env->event, s->env->iopoll,
                          &(ConnectorParams) {
                                  .host = s->address,
                                  .port = s->port,
                                  .prepare = session_prepare_socket,
                                  .done = on_connected,
                                  .userdata = s,
                          },
                          &s->connector);
        if (r < 0)
                session_fail(s, SESSION_FAILURE_NETWORK, "local error", "cannot connect to %s: %s", s->address, strerror(-r));
}

void session_connect(Session *s) {
        if (s->state != SESSION_IDLE && s->state != SESSION_FAILED)
                return;
        session_teardown(s, -ECONNABORTED, "reconnecting");
        s->failure = SESSION_FAILURE_NONE;
        s->up_duration = 0;
        if (gate_acquire(s->env->handshakes, session_begin, s))
                session_begin(s);
        else
                session_set_state(s, SESSION_WAITING);
}

/* --- handshake, host key, auth ------------------------------------------- */

static int session_check_host_key(Session *s) {
        Trust *trust = s->env->trust;
        const ConfigSsh *cfg = session_cfg(s);
        const char *blob, *path = NULL;
        unsigned line = 0;
        size_t len = 0;
        int type = 0, r;
        char keytype[64] = "unknown", where[2 * PATH_MAX + 16];

        blob = libssh2_session_hostkey(s->ssh, &len, &type);
        if (!blob || len == 0) {
                session_fail(s, SESSION_FAILURE_PROTOCOL, "no host key", "the node sent no host key");
                return -EPROTO;
        }
        hostkey_fingerprint(blob, len, s->host_key, sizeof(s->host_key));
        (void) hostkey_type(blob, len, keytype, sizeof(keytype));

        switch (trust_check(trust, s->address, s->port, blob, len, &path, &line)) {
        case HOSTKEY_OK:
                return 0;
        case HOSTKEY_REVOKED:
                if (line > 0)
                        snprintf(where, sizeof where, "%s:%u", strna(path), line);
                else
                        snprintf(where, sizeof where, "%s", strna(path));
                session_fail(s, SESSION_FAILURE_HOSTKEY_MISMATCH, "host key revoked",
                             "host key %s %s is revoked in %s", keytype, s->host_key, where);
                return -EPERM;
        case HOSTKEY_MISMATCH:
                if (line > 0)
                        snprintf(where, sizeof where, "%s:%u", strna(path), line);
                else
                        snprintf(where, sizeof where, "%s", path ?: cfg->known_hosts);
                session_fail(s, SESSION_FAILURE_HOSTKEY_MISMATCH, "host key mismatch",
                             "HOST KEY MISMATCH: the node presented %s %s, which is not the key %s holds for it",
                             keytype, s->host_key, where);
                return -EPERM;
        case HOSTKEY_UNKNOWN:
        default:
                if (cfg->host_key_policy == HOST_KEY_POLICY_ACCEPT_NEW) {
                        r = trust_learn(trust, s->address, s->port, blob, len);
                        if (r < 0) {
                                session_fail(s, SESSION_FAILURE_HOSTKEY_UNKNOWN, "host key not recorded",
                                             "cannot record host key %s %s in %s: %s", keytype, s->host_key,
                                             strna(trust_learned_path(trust)), strerror(-r));
                                return r;
                        }
                        log_node(LOG_NOTICE, s->node_name, "recorded new host key %s %s in %s (accept-new)",
                                 keytype, s->host_key, trust_learned_path(trust));
                        return 0;
                }
                if (cfg->learned_hosts)
                        snprintf(where, sizeof where, "neither %s nor %s", cfg->known_hosts, cfg->learned_hosts);
                else
                        snprintf(where, sizeof where, "not %s", cfg->known_hosts);
                session_fail(s, SESSION_FAILURE_HOSTKEY_UNKNOWN, "host key unknown",
                             "host key %s %s is in %s (compare its fingerprint with the node's own, then "
                             "`sshtunctl hostkeys trust %s SHA256:...`)",
                             keytype, s->host_key, where, s->node_name);
                return -EPERM;
        }
}

static int session_step_handshake(Session *s) {
        int rc = libssh2_session_handshake(s->ssh, s->fd);

        if (rc == LIBSSH2_ERROR_EAGAIN)
                return 0;
        if (rc != 0) {
                const char *why = session_ssh_error(s);
                if (s->rx_overflow)
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "node floods the handshake",
                                     "key exchange failed: the node sent over %u KiB without completing it",
                                     HANDSHAKE_RX_LIMIT / 1024);
                else if (rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || s->rx_closed)
                        session_fail(s, SESSION_FAILURE_NETWORK, "closed during key exchange", "connection closed during key exchange (%s)",
                                     why);
                else
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "key exchange failed", "key exchange failed: %s", why);
                return -EPROTO;
        }
        if (s->scan_only) {
                const char *blob;
                size_t len = 0;
                int type;

                blob = libssh2_session_hostkey(s->ssh, &len, &type);
                if (!blob || len == 0) {
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "no host key", "the node sent no host key");
                        return -EPROTO;
                }
                free(s->scanned_key);
                s->scanned_key = malloc(len);
                if (!s->scanned_key) {
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "out of memory", "out of memory");
                        return -ENOMEM;
                }
                memcpy(s->scanned_key, blob, len);
                s->scanned_key_len = len;
                hostkey_fingerprint(blob, len, s->host_key, sizeof(s->host_key));
                /* nothing was authenticated or opened: just hang up */
                (void) libssh2_session_disconnect_ex(s->ssh, SSH_DISCONNECT_BY_APPLICATION, "host key scan", "");
                (void) session_flush(s);
                session_fail(s, SESSION_FAILURE_SCANNED, "host key scanned", "host key scanned");
                return -ECANCELED;
        }
        if (session_check_host_key(s) < 0)
                return -EPERM;
        session_set_state(s, SESSION_AUTHENTICATING);
        return 1;
}

static int session_step_auth(Session *s) {
        const ConfigSsh *cfg = session_cfg(s);
        const Identity *id = s->env->identity;
        size_t len;
        const uint8_t *pub = identity_public_blob(id, &len);
        void *abstract = s;
        int rc;

        /* our own signature: libssh2's _frommemory decodes the key file twice
         * per attempt, through OpenSSL 3's slow PEM decoder first */
        rc = libssh2_userauth_publickey(s->ssh, cfg->user, pub, len, session_sign_cb, &abstract);
        if (rc == LIBSSH2_ERROR_EAGAIN)
                return 0;
        if (rc != 0) {
                /* libssh2 reports a connection lost during userauth as
                 * AUTHENTICATION_FAILED too: a refusal is an answer, not a close */
                if ((rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) &&
                    !s->rx_closed)
                        session_fail(s, SESSION_FAILURE_AUTH, "auth refused",
                                     "public key authentication as \"%s\" refused (key %s %s)", cfg->user,
                                     identity_type(id), identity_fingerprint(id));
                else if (s->rx_overflow)
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "node floods the handshake",
                                     "authentication failed: the node sent over %u KiB before it ended",
                                     HANDSHAKE_RX_LIMIT / 1024);
                else if (rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || s->rx_closed)
                        session_fail(s, SESSION_FAILURE_NETWORK, "closed during authentication", "connection closed during authentication (%s)",
                                     session_ssh_error(s));
                else
                        session_fail(s, SESSION_FAILURE_PROTOCOL, "authentication failed", "authentication failed: %s", session_ssh_error(s));
                return -EACCES;
        }

        session_release_slot(s);
        s->ready_since = now_usec(CLOCK_MONOTONIC);
        metrics_observe(s->env->metrics, METRICS_SSH_CONNECT,
                        (double) (s->ready_since - s->connect_started) / USEC_PER_SEC);
        free(s->last_error);
        s->last_error = NULL;
        s->reason[0] = 0;
        s->failure = SESSION_FAILURE_NONE;

        /* the control channel goes first: liveness rides on it */
        Channel *ctl = channel_new(s, CHANNEL_CONTROL);
        if (!ctl) {
                session_fail(s, SESSION_FAILURE_PROTOCOL, "out of memory", "out of memory");
                return -ENOMEM;
        }
        LIST_APPEND(link, s->opens, ctl);
        s->liveness_pending = true;
        s->rx_at_tick = s->rx_total;
        (void) session_arm_timer(s, sec_to_usec(cfg->keepalive_interval));

        session_set_state(s, SESSION_READY);
        return 1;
}

static void session_process(Session *s) {
        int r = 0;

        if (s->processing) {
                s->reprocess = true;
                return;
        }
        s->processing = true;
        do {
                s->reprocess = false;
                switch (s->state) {
                case SESSION_HANDSHAKING:
                        r = session_step_handshake(s);
                        break;
                case SESSION_AUTHENTICATING:
                        r = session_step_auth(s);
                        break;
                case SESSION_READY:
                        r = channel_pump_all(s);
                        if (r < 0) {
                                int rc = r;
                                if (rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT)
                                        session_fail(s, SESSION_FAILURE_NETWORK, "closed by the node", "connection closed by the node");
                                else
                                        session_fail(s, SESSION_FAILURE_PROTOCOL, "SSH protocol error", "SSH error %d: %s", rc,
                                                     s->ssh ? session_ssh_error(s) : "?");
                                r = -EIO;
                        }
                        break;
                default:
                        r = 0;
                }
                if (r < 0)
                        break;
                if (r > 0)
                        s->reprocess = true; /* state advanced: run the next step now */
        } while (s->reprocess && s->state >= SESSION_HANDSHAKING && s->state <= SESSION_READY);

        if (s->fd >= 0 && !s->dead) {
                r = session_flush(s);
                if (r < 0)
                        session_fail(s, SESSION_FAILURE_NETWORK, "send failed", "send to the node: %s", strerror(-r));
                else
                        session_update_io(s);
        }
        s->processing = false;
}

const char *session_ssh_error(Session *s) {
        char *msg = NULL;
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        return msg && *msg ? msg : "unknown error";
}

void session_liveness_answered(Session *s) {
        s->liveness_pending = false;
        s->liveness_missed = 0;
}

/* --- event handlers ------------------------------------------------------- */

static int on_session_io(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Session *s = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                s->rx_drained = false;
                s->rx_calls = 0;
                s->rx_at_wakeup = s->rx_total;
        }
        if ((revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !(revents & EPOLLIN) && s->state == SESSION_READY &&
            !s->control && !s->opens) {
                /* nobody would read the error out of the socket */
                int err = 0;
                socklen_t len = sizeof(err);
                (void) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                session_fail(s, SESSION_FAILURE_NETWORK, "connection lost", "connection lost: %s",
                             err ? strerror(err) : "closed by the node");
                return 0;
        }
        session_process(s);
        return 0;
}

static int on_session_defer(sd_event_source *es, void *userdata) {
        Session *s = userdata;
        session_process(s);
        return 0;
}

static int on_session_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Session *s = userdata;
        const ConfigSsh *cfg = session_cfg(s);

        if (s->state != SESSION_READY) {
                session_fail(s, SESSION_FAILURE_TIMEOUT, "timed out", "no SSH session within connect_timeout (%.1f s) while %s",
                             cfg->connect_timeout,
                             s->connector && connector_resolving(s->connector) ? "resolving"
                                                                               : session_state_to_string(s->state));
                return 0;
        }

        /* any byte from the node proves sshd alive; silence while a round
         * trip is outstanding counts as a miss */
        if (s->rx_total != s->rx_at_tick)
                s->liveness_missed = 0;
        else if (s->liveness_pending)
                s->liveness_missed++;
        s->rx_at_tick = s->rx_total;

        if (s->liveness_missed >= cfg->keepalive_count) {
                session_fail(s, SESSION_FAILURE_TIMEOUT, "no answer to liveness checks", "no answer from the node to %u liveness checks in %.1f s",
                             s->liveness_missed, cfg->keepalive_interval * s->liveness_missed);
                return 0;
        }

        int next = 0;
        (void) libssh2_keepalive_send(s->ssh, &next);
        if (!s->liveness_pending) {
                s->liveness_pending = true;
                if (!s->control) {
                        /* no session channel allowed: a refused open is the round trip */
                        bool queued = false;
                        for (Channel *c = s->opens; c; c = c->link_next)
                                if (c->kind != CHANNEL_USER)
                                        queued = true;
                        Channel *lc = queued ? NULL : channel_new(s, CHANNEL_LIVENESS);
                        if (lc)
                                LIST_APPEND(link, s->opens, lc);
                        /* a user open stuck at the head (a slow target) delays
                         * this one: that is not the node's silence */
                        if (s->opens && s->opens->kind == CHANNEL_USER)
                                s->liveness_missed = 0;
                }
        }
        (void) session_arm_timer(s, sec_to_usec(cfg->keepalive_interval));
        session_process(s);
        return 0;
}

/* --- public API ------------------------------------------------------------ */

int session_global_init(void) {
        return libssh2_init(0) == 0 ? 0 : -EIO;
}

void session_global_done(void) {
        libssh2_exit();
}

int session_new(const SessionEnv *env, const SessionParams *p, Session **ret) {
        Session *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->env = env;
        s->hooks = p->hooks;
        s->fd = -1;
        s->port = p->port;
        s->index = p->index;
        s->userdata = p->userdata;
        s->scan_only = p->scan_only;
        buffer_init(&s->outq, OUTQ_HARD_LIMIT);
        buffer_init(&s->rxq, RX_READ_AHEAD);
        s->node_name = strdup(p->node_name);
        s->address = strdup(p->address);
        s->scan_key_types = p->scan_only && p->scan_key_types ? strdup(p->scan_key_types) : NULL;
        if (!s->node_name || !s->address || (p->scan_only && p->scan_key_types && !s->scan_key_types)) {
                session_free(s);
                return -ENOMEM;
        }
        r = sd_event_add_defer(env->event, &s->defer, on_session_defer, s);
        if (r < 0) {
                session_free(s);
                return r;
        }
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->defer, "session-pump");
        *ret = s;
        return 0;
}

Session *session_free(Session *s) {
        if (!s)
                return NULL;
        session_teardown(s, -ECONNABORTED, "session closed");
        s->defer = sd_event_source_disable_unref(s->defer);
        free(s->last_error);
        free(s->scanned_key);
        free(s->scan_key_types);
        free(s->node_name);
        free(s->address);
        free(s);
        return NULL;
}

void session_disconnect(Session *s, const char *why) {
        if (s->ssh && s->state == SESSION_READY && !s->dead) {
                (void) libssh2_session_disconnect_ex(s->ssh, SSH_DISCONNECT_BY_APPLICATION, why, "");
                (void) session_flush(s);
        }
        free(s->last_error);
        s->last_error = strdup(why);
        snprintf(s->reason, sizeof(s->reason), "closed by sshtund");
        s->failure = SESSION_FAILURE_CLOSED;
        session_teardown(s, -ECONNABORTED, why);
        session_set_state(s, SESSION_FAILED);
}

SessionState session_state(const Session *s) {
        return s->state;
}

SessionFailure session_failure(const Session *s) {
        return s->failure;
}

const char *session_last_error(const Session *s) {
        return s->last_error;
}

const char *session_reason(const Session *s) {
        return s->reason[0] ? s->reason : NULL;
}

const char *session_host_key(const Session *s) {
        return s->host_key[0] ? s->host_key : NULL;
}

const void *session_host_key_blob(const Session *s, size_t *ret_len) {
        if (ret_len)
                *ret_len = s->scanned_key_len;
        return s->scanned_key;
}

unsigned session_channels(const Session *s) {
        return s->n_user;
}

unsigned session_opens_pending(const Session *s) {
        unsigned n = 0;

        for (const Channel *ch = s->opens; ch; ch = ch->link_next)
                if (channel_is_stream(ch))
                        n++;
        return n;
}

unsigned session_busy_streams(const Session *s) {
        return s->n_user - s->n_ending;
}

usec_t session_ready_since(const Session *s) {
        return s->ready_since;
}

usec_t session_up_duration(const Session *s) {
        return s->up_duration;
}

uint16_t session_local_port(const Session *s) {
        return s->local_port;
}

void session_kick(Session *s) {
        if (s->defer && s->state == SESSION_READY && !s->processing)
                (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
        else if (s->processing)
                s->reprocess = true;
}

