/* One node's state machine over sessions the test drives (fake-session.c):
 * the state an operator sees for each mix of session states, refusals that
 * stick until a session is up, backoff and its reset, operator actions,
 * the choice of session for a stream, address changes, pool sizes, and the
 * counters a snapshot carries. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "fake-session.h"
#include "log.h"
#include "node.h"

typedef struct Fixture {
        sd_event *event;
        ConfigSsh ssh;
        ConfigProbe probe;
        SessionEnv sessions;
        NodeEnv env;
        Rng rng;
        unsigned changes;
        Node *node;
} Fixture;

static void on_changed(Node *n, void *userdata) {
        Fixture *f = userdata;
        f->changes++;
}

static const ConfigNode node_one = {
        .name = (char *) "node-1",
        .address = (char *) "10.0.0.11",
        .port = 22,
        .hostnames = (char *[]) { (char *) "node-1.example", NULL },
};

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        rng_init_seed(&f->rng, 42);
        f->ssh = (ConfigSsh) { .max_streams_per_session = 2, .pool_size = 2, .connect_timeout = 10,
                               .backoff_max = 60 };
        f->probe = (ConfigProbe) { .type = PROBE_NONE };
        f->sessions = (SessionEnv) { .event = f->event, .ssh = &f->ssh };
        f->env = (NodeEnv) {
                .event = f->event,
                .sessions = &f->sessions,
                .session_ops = &fake_session_ops,
                .rng = &f->rng,
                .probe = &f->probe,
                .changed = on_changed,
                .userdata = f,
        };
        (void) fake_session_take_connects();
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        node_free(f->node);
        assert_int_equal(fake_session_count(), 0);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

static Node *make(Fixture *f, unsigned pool) {
        assert_int_equal(node_new(&f->env, &node_one, pool, &f->node), 0);
        return f->node;
}

static Session *S(unsigned i) {
        Session *s = fake_session_get(i);
        assert_non_null(s);
        return s;
}

/* Run the loop for about 'usec' (timers of the node fire). */
static void run_for(Fixture *f, usec_t usec) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + usec;
        while (now_usec(CLOCK_MONOTONIC) < end)
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
}

static void test_start_and_up(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        NodeInfo info;

        assert_int_equal(fake_session_count(), 2);
        assert_int_equal(node_state(n), NODE_CONNECTING);
        assert_false(node_settled(n));
        /* nothing connects before node_start() */
        assert_int_equal(fake_session_take_connects(), 0);
        node_start(n);
        assert_int_equal(fake_session_take_connects(), 2);
        assert_false(node_is_ready(n));

        fake_session_set_state(S(0), SESSION_HANDSHAKING);
        assert_int_equal(node_state(n), NODE_HANDSHAKING);
        fake_session_set_state(S(1), SESSION_AUTHENTICATING);
        assert_int_equal(node_state(n), NODE_AUTHENTICATING);
        fake_session_set_host_key(S(0), "SHA256:abc");
        fake_session_set_state(S(0), SESSION_READY);
        assert_int_equal(node_state(n), NODE_UP);
        assert_true(node_settled(n));
        assert_true(node_is_ready(n));
        assert_true(node_has_ready_session(n));
        assert_int_equal(node_free_capacity(n), 2);
        fake_session_set_state(S(1), SESSION_READY);
        assert_int_equal(node_free_capacity(n), 4);

        node_get_info(n, &info);
        assert_string_equal(info.name, "node-1");
        assert_int_equal(info.sessions_up, 2);
        assert_int_equal(info.sessions_total, 2);
        assert_string_equal(info.host_key, "SHA256:abc");
        assert_null(info.last_error);
        assert_int_equal(info.route, ROUTE_SSH);
        assert_int_equal(f->changes, 3); /* handshaking, authenticating, up */
}

static void test_down_and_backoff(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        NodeInfo info;

        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_set_state(S(1), SESSION_READY);
        (void) fake_session_take_connects();

        /* one session lost: still up on the other, one reconnect counted */
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "connection closed by the node", 5 * USEC_PER_SEC);
        assert_int_equal(node_state(n), NODE_UP);
        fake_session_fail(S(1), SESSION_FAILURE_TIMEOUT, "no answer from the node", 5 * USEC_PER_SEC);
        assert_int_equal(node_state(n), NODE_BACKOFF);
        node_get_info(n, &info);
        assert_int_equal(info.reconnects, 2);
        assert_string_equal(info.last_error, "no answer from the node");
        assert_false(node_is_ready(n));

        /* the first retry comes within the base backoff (1 s, full jitter) */
        assert_int_equal(fake_session_take_connects(), 0);
        run_for(f, 1200 * USEC_PER_MSEC);
        assert_int_equal(fake_session_take_connects(), 2);
        assert_int_equal(node_state(n), NODE_CONNECTING);

        /* a failure before ever being ready is no reconnect */
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "connect to 10.0.0.11:22: Connection refused", 0);
        node_get_info(n, &info);
        assert_int_equal(info.reconnects, 2);
}

static void test_backoff_grows_and_resets(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 1);

        node_start(n);
        /* six failures in a row: the ceiling is 32 s now, so a retry within
         * 1.2 s is unlikely... */
        for (int i = 0; i < 6; i++)
                fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "refused", 0);
        (void) fake_session_take_connects();
        /* ...while a session that stayed up 30 s earns a fresh backoff */
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "closed", 31 * USEC_PER_SEC);
        run_for(f, 1200 * USEC_PER_MSEC);
        assert_int_equal(fake_session_take_connects(), 1);
}

static void test_refusals_stick(void **state) {
        static const struct {
                SessionFailure failure;
                NodeState state;
        } cases[] = {
                { SESSION_FAILURE_HOSTKEY_UNKNOWN, NODE_HOSTKEY_UNKNOWN },
                { SESSION_FAILURE_HOSTKEY_MISMATCH, NODE_HOSTKEY_MISMATCH },
                { SESSION_FAILURE_AUTH, NODE_AUTH_FAILED },
        };
        Fixture *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Node *n = make(f, 2);

                node_start(n);
                fake_session_fail(S(0), cases[i].failure, "refused for a reason", 0);
                assert_int_equal(node_state(n), cases[i].state);
                assert_true(node_settled(n));
                /* the other session still trying does not hide the refusal */
                fake_session_set_state(S(1), SESSION_HANDSHAKING);
                assert_int_equal(node_state(n), cases[i].state);
                /* refusals are retried slowly: nothing within a second */
                (void) fake_session_take_connects();
                run_for(f, 300 * USEC_PER_MSEC);
                assert_int_equal(fake_session_take_connects(), 0);
                /* the operator reconnects: at once, the refusal forgotten */
                node_reconnect(n);
                assert_int_equal(fake_session_take_connects(), 2);
                assert_int_equal(node_state(n), NODE_CONNECTING);
                /* a ready session clears a refusal too */
                fake_session_fail(S(0), cases[i].failure, "refused again", 0);
                fake_session_set_state(S(1), SESSION_READY);
                assert_int_equal(node_state(n), NODE_UP);
                f->node = node_free(n);
        }
}

static void test_drain(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 1);
        Channel *ch;

        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        node_drain(n);
        assert_int_equal(node_state(n), NODE_DRAINING);
        assert_false(node_is_ready(n));
        assert_int_equal(node_free_capacity(n), 0);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), -EHOSTDOWN);
        /* still SSH underneath: a route may rely on it */
        assert_true(node_has_ready_session(n));
        node_undrain(n);
        assert_int_equal(node_state(n), NODE_UP);
        /* a drained node that loses its session is down, then draining again */
        node_drain(n);
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "closed", USEC_PER_SEC);
        assert_int_equal(node_state(n), NODE_BACKOFF);
        fake_session_set_state(S(0), SESSION_READY);
        assert_int_equal(node_state(n), NODE_DRAINING);
}

static void test_open_channel(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        Channel *ch;
        NodeInfo info;

        node_start(n);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), -EHOSTDOWN);
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_set_state(S(1), SESSION_READY);
        fake_session_set_channels(S(0), 1);
        /* the least-loaded session takes it */
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(fake_session_opens(S(1), false), 1);
        assert_int_equal(fake_session_opens(S(0), false), 0);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(node_streams(n), 4);
        /* every session at max_streams_per_session (2) */
        assert_int_equal(node_free_capacity(n), 0);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), -EBUSY);
        assert_false(node_is_ready(n));
        node_get_info(n, &info);
        assert_int_equal(info.streams_total, 3);
        assert_int_equal(info.streams_by_result[STREAM_UNAVAILABLE], 2);
}

/* Load is streams that still carry a client, after opens waiting: a
 * stream whose client has finished does not push the next one away, an
 * open in flight does. */
static void test_open_channel_load(void **state) {
        Fixture *f = *state;
        Node *n;
        Channel *ch;

        f->ssh.max_streams_per_session = 256;
        n = make(f, 2);
        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_set_state(S(1), SESSION_READY);
        /* the previous stream on the first is closing: still the first */
        fake_session_set_channels(S(0), 1);
        fake_session_set_ending(S(0), 1);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(fake_session_opens(S(0), false), 1);
        /* now it carries a live one: the other takes the next */
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(fake_session_opens(S(1), false), 1);
        /* an open in flight outweighs streams */
        fake_session_set_channels(S(0), 5);
        fake_session_set_opens_pending(S(1), 1);
        assert_int_equal(node_open_channel(n, "10.0.0.11", 10250, "127.0.0.1", 0, NULL, NULL, &ch), 0);
        assert_int_equal(fake_session_opens(S(0), false), 2);
}

static void test_stream_accounting(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        NodeInfo info;

        /* what session.c reports through the hooks it was given */
        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_set_state(S(1), SESSION_READY);
        fake_session_stream_opened(S(0), STREAM_OK);
        fake_session_stream_opened(S(1), STREAM_OK);
        fake_session_stream_opened(S(1), STREAM_ABANDONED);
        fake_session_stream_closed(S(0), 100, 2000);
        fake_session_stream_closed(S(1), 1, 20);
        /* a stream that never reached a session (the Konnectivity route) */
        node_count_stream(n, STREAM_REFUSED);
        node_get_info(n, &info);
        assert_int_equal(info.streams_by_result[STREAM_OK], 2);
        assert_int_equal(info.streams_by_result[STREAM_ABANDONED], 1);
        assert_int_equal(info.streams_by_result[STREAM_REFUSED], 1);
        assert_int_equal(info.streams_by_result[STREAM_UNAVAILABLE], 0);
        assert_int_equal(info.bytes_up, 101);
        assert_int_equal(info.bytes_down, 2020);
}

static void test_address_change(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        ConfigNode moved = node_one;
        Session *before;
        NodeInfo info;

        node_start(n);
        fake_session_set_host_key(S(0), "SHA256:old");
        fake_session_fail(S(0), SESSION_FAILURE_HOSTKEY_MISMATCH, "mismatch", 0);
        assert_int_equal(node_state(n), NODE_HOSTKEY_MISMATCH);
        before = S(0);
        (void) fake_session_take_connects();

        /* hostnames only: the sessions stay */
        moved.hostnames = (char *[]) { NULL };
        assert_int_equal(node_update(n, &moved), 0);
        assert_ptr_equal(S(0), before);

        /* another address: new sessions, the old key and refusal forgotten */
        moved.address = (char *) "10.0.0.99";
        assert_int_equal(node_update(n, &moved), 1);
        assert_int_equal(fake_session_count(), 2);
        assert_int_equal(fake_session_take_connects(), 2);
        assert_string_equal(node_config(n)->address, "10.0.0.99");
        node_get_info(n, &info);
        assert_null(info.host_key);
        assert_null(info.last_error);
        assert_int_equal(node_state(n), NODE_CONNECTING);
}

static void test_pool_size(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 1);

        node_start(n);
        (void) fake_session_take_connects();
        assert_int_equal(node_set_pool_size(n, 3), 0);
        assert_int_equal(fake_session_count(), 3);
        assert_int_equal(fake_session_take_connects(), 2);
        assert_int_equal(node_set_pool_size(n, 1), 0);
        assert_int_equal(fake_session_count(), 1);
}

static void test_no_pool_health(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 0);

        /* migrated with no SSH kept: its owner tells how the path it uses is */
        node_start(n);
        assert_int_equal(fake_session_count(), 0);
        assert_int_equal(node_state(n), NODE_CONNECTING);
        node_set_health(n, NODE_HEALTH_OK);
        assert_int_equal(node_state(n), NODE_UP);
        node_set_health(n, NODE_HEALTH_FAILING);
        assert_int_equal(node_state(n), NODE_DEGRADED);
        node_drain(n);
        assert_int_equal(node_state(n), NODE_DRAINING);
        assert_false(node_has_ready_session(n));
}

static void test_backoff_max(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 1);

        /* ssh.backoff_max 0.2 s: ten failures in a row still retry within it,
         * a host key refusal too (at least half of it) */
        f->ssh.backoff_max = 0.2;
        node_start(n);
        for (int i = 0; i < 10; i++)
                fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "refused", 0);
        (void) fake_session_take_connects();
        run_for(f, 300 * USEC_PER_MSEC);
        assert_int_equal(fake_session_take_connects(), 1);
        fake_session_fail(S(0), SESSION_FAILURE_HOSTKEY_UNKNOWN, "host key unknown", 0);
        run_for(f, 300 * USEC_PER_MSEC);
        assert_int_equal(fake_session_take_connects(), 1);
}

static void test_disconnect_is_quiet(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);

        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        (void) fake_session_take_connects();
        node_disconnect(n, "shutting down");
        /* closed by us: no retry */
        run_for(f, 1200 * USEC_PER_MSEC);
        assert_int_equal(fake_session_take_connects(), 0);
        assert_int_equal(node_state(n), NODE_BACKOFF);
}

/* What the journal hears while the body runs: stderr through a pipe. */
typedef struct Journal {
        int pipe[2], saved;
        char text[16384];
} Journal;

static void journal_start(Journal *j) {
        assert_int_equal(pipe2(j->pipe, O_NONBLOCK | O_CLOEXEC), 0);
        fflush(stderr);
        j->saved = dup(STDERR_FILENO);
        assert_true(dup2(j->pipe[1], STDERR_FILENO) >= 0);
        log_setup(LOG_TARGET_STDERR, LOG_INFO);
}

static const char *journal_end(Journal *j) {
        ssize_t n;

        fflush(stderr);
        assert_true(dup2(j->saved, STDERR_FILENO) >= 0);
        close(j->saved);
        close(j->pipe[1]);
        n = read(j->pipe[0], j->text, sizeof j->text - 1);
        close(j->pipe[0]);
        j->text[n > 0 ? n : 0] = 0;
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return j->text;
}

static unsigned lines_with(const char *text, const char *what) {
        unsigned n = 0;
        for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
                n++;
        return n;
}

static void test_failures_told_once(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        const char *text;
        NodeInfo info;
        Journal j;

        journal_start(&j);
        node_start(n);
        /* never up: both sessions refused, again and again: one line */
        for (int i = 0; i < 10; i++) {
                fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "connection refused", 0);
                fake_session_fail(S(1), SESSION_FAILURE_NETWORK, "connection refused", 0);
        }
        node_get_info(n, &info);
        assert_string_equal(info.reason, "connection refused");
        /* another reason: one more line, with the count and the time */
        fake_session_fail(S(0), SESSION_FAILURE_TIMEOUT, "timed out", 0);
        fake_session_fail(S(1), SESSION_FAILURE_TIMEOUT, "timed out", 0);
        /* up again: one notice with the attempts */
        fake_session_set_state(S(0), SESSION_READY);
        node_get_info(n, &info);
        assert_null(info.reason);
        /* down after being up: "down", once */
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "closed by the node", 5 * USEC_PER_SEC);
        fake_session_fail(S(0), SESSION_FAILURE_NETWORK, "closed by the node", 0);
        /* a host key refusal is an error line */
        fake_session_fail(S(1), SESSION_FAILURE_HOSTKEY_MISMATCH, "host key mismatch", 0);
        text = journal_end(&j);

        assert_int_equal(lines_with(text, "\n"), 5);
        assert_int_equal(lines_with(text, "sshtund: warning: node-1: cannot connect: connection refused"), 1);
        assert_int_equal(lines_with(text, "sshtund: warning: node-1: still down, now: timed out (21 attempts in "), 1);
        assert_int_equal(lines_with(text, "sshtund: node-1: up again after "), 1);
        assert_int_equal(lines_with(text, "and 22 failed attempts (host key"), 1);
        assert_int_equal(lines_with(text, "sshtund: warning: node-1: down: closed by the node"), 1);
        assert_int_equal(lines_with(text, "sshtund: error: node-1: still down, now: host key mismatch (3 attempts"), 1);
}

static void test_session_lost_while_up(void **state) {
        Fixture *f = *state;
        Node *n = make(f, 2);
        const char *text;
        Journal j;

        node_start(n);
        fake_session_set_state(S(0), SESSION_READY);
        fake_session_set_state(S(1), SESSION_READY);
        journal_start(&j);
        /* one of two lost: the node stays up, an info line; failing again
         * to reconnect while the other is up: quiet */
        fake_session_fail(S(1), SESSION_FAILURE_NETWORK, "closed by the node", USEC_PER_SEC);
        fake_session_fail(S(1), SESSION_FAILURE_NETWORK, "connection refused", 0);
        text = journal_end(&j);
        assert_int_equal(node_state(n), NODE_UP);
        assert_int_equal(lines_with(text, "\n"), 1);
        assert_int_equal(lines_with(text, "node-1: session 1 lost (closed by the node); reconnecting"), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_start_and_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_down_and_backoff, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backoff_grows_and_resets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_stick, setup, teardown),
                cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_channel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_open_channel_load, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_accounting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_address_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pool_size, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_pool_health, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backoff_max, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_is_quiet, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failures_told_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_session_lost_while_up, setup, teardown),
        };
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
