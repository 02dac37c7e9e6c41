/* One stream between a client socket (a socketpair here) and a far end of
 * the test's own (two bounded buffers behind FarEndOps): the reply head
 * first, node bytes held until the client speaks (front door) or not
 * (forwards), back-pressure both ways, half-close both ways, and the ends:
 * done, reset by the client, far end failed, aborted. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "iopoll.h"
#include "log.h"
#include "relay.h"

/* ---- a far end of the test's own ----------------------------------------------- */

typedef struct Far {
        Buffer rx, tx;
        bool rx_eof, tx_shutdown;
        const FarEndHooks *hooks;
        void *relay;
        unsigned kicks, consumed;
        bool closed, aborted;
} Far;

static Buffer *far_rx(void *end) {
        return &((Far *) end)->rx;
}
static bool far_rx_eof(void *end) {
        return ((Far *) end)->rx_eof;
}
static void far_consumed(void *end) {
        ((Far *) end)->consumed++;
}
static Buffer *far_tx(void *end) {
        return &((Far *) end)->tx;
}
static void far_kick(void *end) {
        ((Far *) end)->kicks++;
}
static void far_shutdown_tx(void *end) {
        ((Far *) end)->tx_shutdown = true;
}
static void far_attach(void *end, const FarEndHooks *hooks, void *relay) {
        Far *f = end;
        f->hooks = hooks;
        f->relay = relay;
}
static void far_close(void *end) {
        ((Far *) end)->closed = true;
}
static void far_abort(void *end) {
        ((Far *) end)->aborted = true;
}

static const FarEndOps far_ops = {
        .rx = far_rx,
        .rx_eof = far_rx_eof,
        .consumed = far_consumed,
        .tx = far_tx,
        .kick = far_kick,
        .shutdown_tx = far_shutdown_tx,
        .attach = far_attach,
        .close = far_close,
        .abort = far_abort,
};

/* ---- the fixture ----------------------------------------------------------------------- */

typedef struct Fixture {
        sd_event *event;
        IoPoll *poll;
        AuditLog *audit;
        Metrics *metrics;
        RelayEnv env;
        int client;  /* the test's side of the socketpair */
        Far far;
        Relay *relay;
        unsigned done;
} Fixture;

static void on_done(void *userdata) {
        Fixture *f = userdata;
        f->done++;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(iopoll_new(f->event, &f->poll), 0);
        assert_int_equal(audit_new(1000, USEC_PER_SEC, &f->audit), 0);
        assert_int_equal(metrics_new(&f->metrics), 0);
        buffer_init(&f->far.rx, 64 * 1024);
        buffer_init(&f->far.tx, 64 * 1024);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        relay_free(f->relay);
        safe_close(f->client);
        buffer_done(&f->far.rx);
        buffer_done(&f->far.tx);
        iopoll_free(f->poll);
        audit_free(f->audit);
        metrics_free(f->metrics);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

/* A relay over a fresh socketpair; the relay's side is non-blocking. */
static void start(Fixture *f, const char *head, const char *early, bool speak_first) {
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
        f->client = sv[0];
        f->env = (RelayEnv) { .poll = f->poll, .audit = f->audit, .metrics = f->metrics };
        assert_int_equal(relay_new(&f->env, sv[1], (FarEnd) { &far_ops, &f->far },
                                   &(RelayParams) {
                                           .node = "node-1",
                                           .target = "10.0.0.7:10250",
                                           .client = "test",
                                           .head = head,
                                           .head_len = head ? strlen(head) : 0,
                                           .early = early,
                                           .early_len = early ? strlen(early) : 0,
                                           .node_may_speak_first = speak_first,
                                           .on_done = on_done,
                                           .userdata = f,
                                   },
                                   &f->relay),
                         0);
        assert_ptr_equal(f->far.relay, f->relay);
}

/* The stream duration histogram's count for one result, from the exposition. */
static unsigned ended(Fixture *f, const char *result) {
        char *text = metrics_render(f->metrics, &(MetricsView) {}, NULL), want[128];
        const char *p;
        unsigned n = 0;

        assert_non_null(text);
        snprintf(want, sizeof want, "sshtund_stream_duration_seconds_count{result=\"%s\"} ", result);
        p = strstr(text, want);
        assert_non_null(p);
        n = (unsigned) strtoul(p + strlen(want), NULL, 10);
        free(text);
        return n;
}

static void spin(Fixture *f) {
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f->event, 0) >= 0);
}

/* What the client can read now. */
static size_t client_read(Fixture *f, char *buf, size_t size) {
        ssize_t n = read(f->client, buf, size - 1);
        if (n < 0) {
                assert_int_equal(errno, EAGAIN);
                n = 0;
        }
        buf[n] = 0;
        return (size_t) n;
}

/* Bytes from the node, as the far end reports them. */
static void far_deliver(Fixture *f, const char *data, bool eof) {
        if (data)
                assert_int_equal(buffer_append(&f->far.rx, data, strlen(data)), (ssize_t) strlen(data));
        f->far.rx_eof = eof;
        f->far.hooks->readable(f->far.relay);
}

static void test_head_then_wait_for_client(void **state) {
        Fixture *f = *state;
        char buf[256];

        start(f, "HTTP/1.1 200 Connection Established\r\n\r\n", NULL, false);
        assert_int_equal(client_read(f, buf, sizeof buf), 39);
        assert_string_equal(buf, "HTTP/1.1 200 Connection Established\r\n\r\n");
        /* a banner from the target waits: the API server's dialer fails on
         * bytes it did not ask for yet */
        far_deliver(f, "SSH-2.0-banner\r\n", false);
        spin(f);
        assert_int_equal(client_read(f, buf, sizeof buf), 0);
        /* the client speaks: its bytes go to the far end, the banner comes */
        assert_int_equal(write(f->client, "GET /", 5), 5);
        spin(f);
        assert_int_equal(buffer_len(&f->far.tx), 5);
        assert_true(f->far.kicks > 0);
        assert_int_equal(client_read(f, buf, sizeof buf), 16);
        assert_string_equal(buf, "SSH-2.0-banner\r\n");
        assert_true(f->far.consumed > 0);
}

static void test_node_speaks_first(void **state) {
        Fixture *f = *state;
        char buf[256];

        /* a forward, as ssh -L: the banner is heard at once; early bytes go up */
        start(f, NULL, "early", true);
        assert_int_equal(buffer_len(&f->far.tx), 5);
        far_deliver(f, "220 smtp ready\r\n", false);
        spin(f);
        assert_int_equal(client_read(f, buf, sizeof buf), 16);
}

static void test_half_close_both_ways(void **state) {
        Fixture *f = *state;
        char buf[256];

        start(f, NULL, NULL, true);
        /* client -> node EOF */
        assert_int_equal(write(f->client, "req", 3), 3);
        assert_int_equal(shutdown(f->client, SHUT_WR), 0);
        spin(f);
        assert_true(f->far.tx_shutdown);
        assert_int_equal(f->done, 0);
        /* the answer still flows, then the node's EOF ends the stream */
        far_deliver(f, "answer", true);
        spin(f);
        assert_int_equal(client_read(f, buf, sizeof buf), 6);
        assert_int_equal(read(f->client, buf, sizeof buf), 0); /* EOF */
        spin(f);
        assert_int_equal(f->done, 1);
        assert_true(f->far.closed);
        assert_false(f->far.aborted);
        assert_int_equal(ended(f, "done"), 1);
        assert_int_equal(ended(f, "aborted"), 0);
        f->relay = NULL; /* gone */
}

static void test_backpressure_up(void **state) {
        Fixture *f = *state;
        char chunk[16 * 1024];
        size_t sent = 0;

        memset(chunk, 'u', sizeof chunk);
        start(f, NULL, NULL, true);
        /* the client writes far more than the far end's tx holds */
        for (int i = 0; i < 64; i++) {
                ssize_t n = write(f->client, chunk, sizeof chunk);
                if (n > 0)
                        sent += (size_t) n;
                spin(f);
        }
        /* tx full and no more taken: the rest waits in the socket */
        assert_int_equal(buffer_room(&f->far.tx), 0);
        assert_true(sent > buffer_len(&f->far.tx));
        /* the far end drains: the relay takes more when told */
        buffer_consume(&f->far.tx, buffer_len(&f->far.tx));
        f->far.hooks->writable(f->far.relay);
        spin(f);
        assert_true(buffer_len(&f->far.tx) > 0);
}

static void test_backpressure_down(void **state) {
        Fixture *f = *state;
        char chunk[32 * 1024], buf[16384];
        size_t appended = 0, got = 0;
        bool pushed_back = false;

        memset(chunk, 'd', sizeof chunk);
        start(f, NULL, NULL, true);
        /* the node sends 1 MiB while the client reads nothing: the socket
         * fills, the relay stops taking from rx, and rx fills up (the far
         * end would stop reading from the node then) */
        while (appended < 1024 * 1024) {
                ssize_t n = buffer_append(&f->far.rx, chunk, MIN(sizeof chunk, 1024 * 1024 - appended));
                assert_true(n >= 0);
                appended += (size_t) n;
                f->far.hooks->readable(f->far.relay);
                spin(f);
                if (buffer_room(&f->far.rx) == 0) {
                        pushed_back = true;
                        break;
                }
        }
        assert_true(pushed_back);
        /* the client reads: everything arrives, in full */
        for (int i = 0; i < 10000 && got < appended; i++) {
                got += client_read(f, buf, sizeof buf);
                spin(f);
        }
        assert_int_equal(got, appended);
        assert_true(buffer_empty(&f->far.rx));
}

static void test_client_reset(void **state) {
        Fixture *f = *state;
        struct linger l = { .l_onoff = 1, .l_linger = 0 };

        start(f, NULL, NULL, true);
        assert_int_equal(setsockopt(f->client, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
        f->client = safe_close(f->client);
        spin(f);
        /* a close reads as the client's EOF (it may be a half-close): the
         * far end hears it, the stream goes on for the answer... */
        assert_true(f->far.tx_shutdown);
        assert_int_equal(f->done, 0);
        /* ...which cannot be delivered: the stream is cut, the far end aborted */
        far_deliver(f, "answer", false);
        spin(f);
        assert_int_equal(f->done, 1);
        assert_true(f->far.aborted);
        assert_false(f->far.closed);
        assert_int_equal(ended(f, "client_reset"), 1);
        f->relay = NULL;
}

static void test_far_failed(void **state) {
        Fixture *f = *state;
        char buf[16];

        start(f, NULL, NULL, true);
        f->far.hooks->failed(f->far.relay, "session lost");
        assert_int_equal(f->done, 1);
        /* the far end is gone already: neither closed nor aborted by us */
        assert_false(f->far.closed || f->far.aborted);
        assert_int_equal(ended(f, "node_closed"), 1);
        /* the client sees the stream cut short */
        ssize_t n = read(f->client, buf, sizeof buf);
        assert_true(n == 0 || (n < 0 && (errno == ECONNRESET || errno == EAGAIN)));
        f->relay = NULL;
}

static void test_abort(void **state) {
        Fixture *f = *state;

        start(f, NULL, NULL, true);
        f->relay = relay_free(f->relay);
        assert_int_equal(f->done, 1);
        assert_true(f->far.aborted);
        assert_int_equal(ended(f, "aborted"), 1);
        assert_int_equal(ended(f, "done"), 0);
        assert_null(relay_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_head_then_wait_for_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_node_speaks_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_both_ways, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_up, setup, teardown),
                cmocka_unit_test_setup_teardown(test_backpressure_down, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_reset, setup, teardown),
                cmocka_unit_test_setup_teardown(test_far_failed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        };
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
