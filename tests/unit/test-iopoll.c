/* IoPoll: every ready socket is served, at most IOPOLL_BATCH per loop
 * iteration and no more once IOPOLL_BUDGET_USEC has gone by; events 0
 * silences even HUP; watches freed mid-batch are skipped. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "iopoll.h"
#include "macro.h"

#define N_PAIRS 200

typedef struct Pair {
        int fd[2]; /* [0] watched, [1] the peer */
        IoWatch *w;
        unsigned calls;
        uint32_t last;
        struct Pair *victim; /* freed by this pair's handler */
} Pair;

static int on_ready(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Pair *p = userdata;
        char buf[64];

        p->calls++;
        p->last = revents;
        if (revents & EPOLLIN) {
                /* level-triggered: once drained it goes quiet (0 at the hangup) */
                ssize_t n = read(fd, buf, sizeof(buf));
                assert_true(n >= 0);
        }
        if (p->victim)
                p->victim->w = iopoll_watch_free(p->victim->w);
        return 0;
}

static void pair_open(IoPoll *poll, Pair *p, uint32_t events) {
        memset(p, 0, sizeof(*p));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd), 0);
        assert_int_equal(iopoll_add(poll, p->fd[0], events, on_ready, p, &p->w), 0);
}

static void pair_close(Pair *p) {
        p->w = iopoll_watch_free(p->w);
        close(p->fd[0]);
        if (p->fd[1] >= 0)
                close(p->fd[1]);
}

static unsigned total_calls(Pair *pairs, size_t n) {
        unsigned c = 0;
        for (size_t i = 0; i < n; i++)
                c += pairs[i].calls;
        return c;
}

static void test_batches_serve_everyone(void **state) {
        static Pair pairs[N_PAIRS];
        sd_event *e;
        IoPoll *poll;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &poll), 0);
        for (size_t i = 0; i < N_PAIRS; i++) {
                pair_open(poll, &pairs[i], EPOLLIN);
                assert_int_equal(write(pairs[i].fd[1], "x", 1), 1);
        }
        assert_int_equal(iopoll_watches(poll), N_PAIRS);
        assert_int_equal(iopoll_armed(poll), N_PAIRS);

        /* one loop iteration, one batch (fewer when the handlers are slow,
         * as under valgrind: the time budget) */
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_in_range(total_calls(pairs, N_PAIRS), 1, IOPOLL_BATCH);

        for (int i = 0; i < 2 * N_PAIRS && total_calls(pairs, N_PAIRS) < N_PAIRS; i++)
                assert_true(sd_event_run(e, 0) >= 0);
        for (size_t i = 0; i < N_PAIRS; i++) {
                assert_int_equal(pairs[i].calls, 1);
                assert_true(pairs[i].last & EPOLLIN);
        }
        /* all drained: nothing more */
        assert_int_equal(sd_event_run(e, 0), 0);
        assert_int_equal(total_calls(pairs, N_PAIRS), N_PAIRS);

        for (size_t i = 0; i < N_PAIRS; i++)
                pair_close(&pairs[i]);
        assert_int_equal(iopoll_watches(poll), 0);
        iopoll_free(poll);
        sd_event_unref(e);
}

static int on_ready_slow(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        usec_t until = now_usec(CLOCK_MONOTONIC) + IOPOLL_BUDGET_USEC;

        while (now_usec(CLOCK_MONOTONIC) < until)
                ;
        return on_ready(w, fd, revents, userdata);
}

/* Handlers that take the whole budget each: one per turn of the loop, so
 * that timers and other sources run in between; nobody is left out. */
static void test_budget_ends_a_batch(void **state) {
        static Pair pairs[8];
        sd_event *e;
        IoPoll *poll;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &poll), 0);
        for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
                pair_open(poll, &pairs[i], EPOLLIN);
                pairs[i].w = iopoll_watch_free(pairs[i].w);
                assert_int_equal(iopoll_add(poll, pairs[i].fd[0], EPOLLIN, on_ready_slow, &pairs[i], &pairs[i].w), 0);
                assert_int_equal(write(pairs[i].fd[1], "x", 1), 1);
        }
        for (size_t turn = 1; turn <= ELEMENTSOF(pairs); turn++) {
                assert_int_equal(sd_event_run(e, 0), 1);
                assert_int_equal(total_calls(pairs, ELEMENTSOF(pairs)), turn);
        }
        for (size_t i = 0; i < ELEMENTSOF(pairs); i++)
                assert_int_equal(pairs[i].calls, 1);
        assert_int_equal(sd_event_run(e, 0), 0);

        for (size_t i = 0; i < ELEMENTSOF(pairs); i++)
                pair_close(&pairs[i]);
        iopoll_free(poll);
        sd_event_unref(e);
}

static void test_events_zero_silences_hangup(void **state) {
        sd_event *e;
        IoPoll *poll;
        Pair p;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &poll), 0);
        pair_open(poll, &p, EPOLLOUT);

        /* writable: reported; asked for nothing: not even the hangup */
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(p.calls, 1);
        assert_int_equal(iopoll_watch_set_events(p.w, 0), 0);
        assert_int_equal(iopoll_armed(poll), 0);
        close(p.fd[1]);
        p.fd[1] = -1;
        assert_int_equal(sd_event_run(e, 0), 0);
        assert_int_equal(p.calls, 1);

        /* armed again: the hangup is there */
        assert_int_equal(iopoll_watch_set_events(p.w, EPOLLIN), 0);
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(p.calls, 2);
        assert_true(p.last & (EPOLLHUP | EPOLLIN));

        pair_close(&p);
        iopoll_free(poll);
        sd_event_unref(e);
}

static void test_freed_during_batch_is_skipped(void **state) {
        sd_event *e;
        IoPoll *poll;
        Pair a, b;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &poll), 0);
        pair_open(poll, &a, EPOLLIN);
        pair_open(poll, &b, EPOLLIN);
        /* whichever runs first frees the other, which must not run */
        a.victim = &b;
        b.victim = &a;
        assert_int_equal(write(a.fd[1], "x", 1), 1);
        assert_int_equal(write(b.fd[1], "x", 1), 1);

        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(a.calls + b.calls, 1);
        assert_int_equal(iopoll_watches(poll), 1);
        assert_int_equal(iopoll_armed(poll), 1);

        a.victim = b.victim = NULL;
        pair_close(&a);
        pair_close(&b);
        assert_int_equal(iopoll_watches(poll), 0);
        iopoll_free(poll);
        sd_event_unref(e);
}

typedef struct Owner {
        IoPoll *poll;
        Pair pairs[3];
        unsigned calls;
} Owner;

/* The last watch's handler lets go of everything, the set included: an
 * Upstream whose last conn ends after a reload replaced it. */
static int on_ready_free_all(IoWatch *w, int fd, uint32_t revents, void *userdata) {
        Owner *o = userdata;

        o->calls++;
        for (size_t i = 0; i < ELEMENTSOF(o->pairs); i++)
                o->pairs[i].w = iopoll_watch_free(o->pairs[i].w);
        o->poll = iopoll_free(o->poll);
        return 0;
}

static void test_freed_by_a_handler(void **state) {
        sd_event *e;
        Owner o = { 0 };

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &o.poll), 0);
        for (size_t i = 0; i < ELEMENTSOF(o.pairs); i++) {
                Pair *p = &o.pairs[i];
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fd), 0);
                assert_int_equal(iopoll_add(o.poll, p->fd[0], EPOLLIN, on_ready_free_all, &o, &p->w), 0);
                assert_int_equal(write(p->fd[1], "x", 1), 1);
        }
        /* the first handler frees the set; the others must not run */
        assert_int_equal(sd_event_run(e, 0), 1);
        assert_int_equal(o.calls, 1);
        assert_null(o.poll);
        assert_int_equal(sd_event_run(e, 0), 0);
        for (size_t i = 0; i < ELEMENTSOF(o.pairs); i++) {
                close(o.pairs[i].fd[0]);
                close(o.pairs[i].fd[1]);
        }
        sd_event_unref(e);
}

static void test_bad_arguments(void **state) {
        sd_event *e;
        IoPoll *poll;
        IoWatch *w = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(iopoll_new(e, &poll), 0);
        assert_int_equal(iopoll_add(poll, -1, EPOLLIN, on_ready, NULL, &w), -EINVAL);
        /* epoll refuses what cannot be polled, like a regular file */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(iopoll_add(poll, fd, EPOLLIN, on_ready, NULL, &w), -EPERM);
        assert_null(w);
        assert_int_equal(iopoll_watches(poll), 0);
        close(fd);
        assert_null(iopoll_watch_free(NULL));
        assert_null(iopoll_free(NULL));
        iopoll_free(poll);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_batches_serve_everyone),
                cmocka_unit_test(test_budget_ends_a_batch),
                cmocka_unit_test(test_events_zero_silences_hangup),
                cmocka_unit_test(test_freed_during_batch_is_skipped),
                cmocka_unit_test(test_freed_by_a_handler),
                cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
