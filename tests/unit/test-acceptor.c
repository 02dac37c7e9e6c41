/* The acceptor: connections reach the handler; out of descriptors it rests
 * instead of spinning; with a reserve (the admin sockets) it still takes
 * one connection at a time when accept() fails with EMFILE, and takes its
 * spare descriptor back when that connection is closed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "acceptor.h"
#include "log.h"
#include "macro.h"

typedef struct Fixture {
        char dir[64];
        char path[96];
        sd_event *event;
        Acceptor *acceptor;
        int accepted[8];
        size_t n_accepted;
        int fillers[4096];
        size_t n_fillers;
        struct rlimit saved;
} Fixture;

static void on_accept(Acceptor *a, int fd, const AcceptorPeer *peer, void *userdata) {
        Fixture *f = userdata;

        assert_true(fd >= 0);
        assert_string_equal(peer->orig_host, "127.0.0.1");
        assert_true(f->n_accepted < ELEMENTSOF(f->accepted));
        f->accepted[f->n_accepted++] = fd;
}

static void fixture_start(Fixture *f, bool reserve) {
        ListenAddress address;
        char spec[128];

        *f = (Fixture) {};
        snprintf(f->dir, sizeof(f->dir), "/tmp/sshtund-test-acceptor.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
        snprintf(spec, sizeof(spec), "unix:%s", f->path);
        assert_int_equal(listen_address_parse(spec, &address), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(acceptor_new(f->event, &address,
                                      &(AcceptorParams) {
                                              .mode = 0600,
                                              .gid = (gid_t) -1,
                                              .label = "test listener",
                                              .description = "test-listen",
                                              .handler = on_accept,
                                              .userdata = f,
                                              .fd = -1,
                                              .reserve = reserve,
                                      },
                                      &f->acceptor),
                         0);
        listen_address_done(&address);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &f->saved), 0);
}

static void client_connect(const Fixture *f, int fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
        /* queued in the backlog: connect() does not wait for accept() */
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
}

static int client_socket(void) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        return fd;
}

static int client(const Fixture *f) {
        int fd = client_socket();

        client_connect(f, fd);
        return fd;
}

/* valgrind emulates RLIMIT_NOFILE above the kernel: accept() succeeds in
 * the kernel and valgrind closes the new descriptor to report EMFILE, so the
 * connection is lost instead of left in the backlog. */
static bool under_valgrind(void) {
        const char *preload = getenv("LD_PRELOAD");

        return preload && strstr(preload, "vgpreload");
}

/* Use up every descriptor below a lowered soft limit. */
static void exhaust(Fixture *f) {
        struct rlimit rl = f->saved;
        int fd;

        rl.rlim_cur = 256;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
                assert_true(f->n_fillers < ELEMENTSOF(f->fillers));
                f->fillers[f->n_fillers++] = fd;
        }
        assert_int_equal(errno, EMFILE);
}

/* Run the loop for 'usec'; returns how many times it dispatched something. */
static unsigned run_for(Fixture *f, usec_t usec) {
        usec_t end = now_usec(CLOCK_MONOTONIC) + usec;
        unsigned n = 0;
        int r;

        for (usec_t now; (now = now_usec(CLOCK_MONOTONIC)) < end;) {
                r = sd_event_run(f->event, end - now);
                assert_true(r >= 0);
                n += r > 0;
        }
        return n;
}

static void fixture_stop(Fixture *f) {
        for (size_t i = 0; i < f->n_fillers; i++)
                safe_close(f->fillers[i]);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &f->saved), 0);
        for (size_t i = 0; i < f->n_accepted; i++)
                safe_close(f->accepted[i]);
        acceptor_free(f->acceptor);
        sd_event_unref(f->event);
        assert_int_equal(rmdir(f->dir), 0); /* the socket file went with the acceptor */
}

static void test_accepts(void **state) {
        Fixture f;
        int c[3];

        fixture_start(&f, false);
        for (size_t i = 0; i < ELEMENTSOF(c); i++)
                c[i] = client(&f);
        run_for(&f, 50 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, ELEMENTSOF(c));
        for (size_t i = 0; i < ELEMENTSOF(c); i++)
                safe_close(c[i]);
        fixture_stop(&f);
}

static void test_out_of_descriptors_rests(void **state) {
        Fixture f;

        if (under_valgrind())
                skip();
        int c;

        fixture_start(&f, false);
        c = client(&f);
        exhaust(&f);
        /* one wakeup, then a rest: no spinning on the level-triggered
         * listener (the rest timer cannot be made now: it was made at start) */
        assert_in_range(run_for(&f, 200 * USEC_PER_MSEC), 1, 3);
        assert_int_equal(f.n_accepted, 0);
        /* room again: accepted after the rest */
        safe_close(f.fillers[--f.n_fillers]);
        run_for(&f, 1500 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, 1);
        safe_close(c);
        fixture_stop(&f);
}

static void test_reserve_takes_one_at_a_time(void **state) {
        Fixture f;
        int c1, c2, c3;

        if (under_valgrind())
                skip();

        fixture_start(&f, true);
        c1 = client(&f);
        c2 = client(&f);
        c3 = client(&f);
        exhaust(&f);

        /* the spare descriptor serves the first; the second waits */
        run_for(&f, 200 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, 1);

        /* the owner closes it and takes the spare back: nothing else in the
         * process could have taken that descriptor in between */
        f.accepted[0] = safe_close(f.accepted[0]);
        acceptor_replenish(f.acceptor);
        assert_int_equal(open("/dev/null", O_RDONLY | O_CLOEXEC), -1);
        assert_int_equal(errno, EMFILE);

        /* after the rest, the second comes in on the spare */
        run_for(&f, 1500 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, 2);
        assert_true(f.accepted[1] >= 0);

        /* a replenish while the spare is lent and no descriptor is free
         * changes nothing; the connection still works */
        acceptor_replenish(f.acceptor);
        assert_int_equal(send(c2, "x", 1, MSG_NOSIGNAL), 1);
        char ch;
        assert_int_equal(recv(f.accepted[1], &ch, 1, 0), 1);
        assert_int_equal(ch, 'x');

        safe_close(c1);
        safe_close(c2);
        safe_close(c3);
        fixture_stop(&f);
}

static void test_reserve_back_for_the_next_without_a_rest(void **state) {
        Fixture f;
        int c1, c2;

        if (under_valgrind())
                skip();
        fixture_start(&f, true);
        c1 = client(&f);
        c2 = client_socket(); /* made now, connected once nothing is left */
        exhaust(&f);

        /* one connection, served on the spare: no accept() tried after it,
         * so no rest */
        run_for(&f, 100 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, 1);
        f.accepted[0] = safe_close(f.accepted[0]);
        acceptor_replenish(f.acceptor);

        /* the operator's next command is served at once */
        client_connect(&f, c2);
        run_for(&f, 100 * USEC_PER_MSEC);
        assert_int_equal(f.n_accepted, 2);

        safe_close(c1);
        safe_close(c2);
        fixture_stop(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepts),
                cmocka_unit_test(test_out_of_descriptors_rests),
                cmocka_unit_test(test_reserve_takes_one_at_a_time),
                cmocka_unit_test(test_reserve_back_for_the_next_without_a_rest),
        };
        log_setup(LOG_TARGET_STDERR, LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
