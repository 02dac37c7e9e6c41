/* The gate (ssh.max_handshakes): at most 'limit' holders, the rest wait
 * their turn in arrival order; a cancelled waiter is skipped; a raised
 * limit lets waiters in at once; a lowered one only stops new entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gate.h"
#include "log.h"
#include "macro.h"

static int order[64];
static size_t n_order;

static void resume(void *userdata) {
        order[n_order++] = (int) (intptr_t) userdata;
}

static void test_fifo(void **state) {
        Gate *g = NULL;

        n_order = 0;
        assert_int_equal(gate_new(2, "test.limit", &g), 0);
        assert_true(gate_acquire(g, resume, (void *) 1));
        assert_true(gate_acquire(g, resume, (void *) 2));
        /* full: the next ones queue, and are not called from inside */
        for (intptr_t i = 3; i <= 6; i++)
                assert_false(gate_acquire(g, resume, (void *) i));
        assert_int_equal(n_order, 0);
        assert_int_equal(gate_holders(g), 2);
        assert_int_equal(gate_waiting(g), 4);

        gate_cancel(g, (void *) 4);
        gate_cancel(g, (void *) 99); /* not waiting: nothing happens */
        assert_int_equal(gate_waiting(g), 3);

        gate_release(g);
        assert_int_equal(n_order, 1);
        assert_int_equal(order[0], 3);
        gate_release(g);
        gate_release(g);
        assert_int_equal(n_order, 3);
        assert_int_equal(order[1], 5);
        assert_int_equal(order[2], 6);
        assert_int_equal(gate_holders(g), 2);
        assert_int_equal(gate_waiting(g), 0);
        gate_free(g);
}

static void test_no_overtaking(void **state) {
        Gate *g = NULL;

        n_order = 0;
        assert_int_equal(gate_new(1, "test.limit", &g), 0);
        assert_true(gate_acquire(g, resume, (void *) 1));
        assert_false(gate_acquire(g, resume, (void *) 2));
        /* a place frees and goes to the waiter, not to a newcomer */
        gate_release(g);
        assert_int_equal(n_order, 1);
        assert_false(gate_acquire(g, resume, (void *) 3));
        assert_int_equal(gate_holders(g), 1);
        gate_free(g);
}

static void test_set_limit(void **state) {
        Gate *g = NULL;

        n_order = 0;
        assert_int_equal(gate_new(1, "test.limit", &g), 0);
        assert_true(gate_acquire(g, resume, (void *) 1));
        for (intptr_t i = 2; i <= 5; i++)
                assert_false(gate_acquire(g, resume, (void *) i));
        /* raised: two more go in at once */
        gate_set_limit(g, 3);
        assert_int_equal(n_order, 2);
        assert_int_equal(gate_holders(g), 3);
        /* lowered: nobody is thrown out, but releases admit no one until below */
        gate_set_limit(g, 1);
        gate_release(g);
        gate_release(g);
        assert_int_equal(n_order, 2);
        gate_release(g);
        assert_int_equal(n_order, 3);
        assert_int_equal(order[2], 4);
        gate_free(g);
}

static void test_many_waiters(void **state) {
        Gate *g = NULL;

        /* the queue grows and compacts: 5,000 nodes at start */
        n_order = 0;
        assert_int_equal(gate_new(0, "test.limit", &g), 0);
        for (intptr_t i = 0; i < 5000; i++)
                assert_false(gate_acquire(g, resume, (void *) i));
        assert_int_equal(gate_waiting(g), 5000);
        gate_set_limit(g, 40);
        assert_int_equal(n_order, 40);
        for (int i = 0; i < 40; i++)
                assert_int_equal(order[i], i);
        gate_free(g);
        assert_null(gate_free(NULL));
}

static void test_compaction(void **state) {
        Gate *g = NULL;

        /* the queue's first 16 slots full, 5 of them admitted: the next
         * waiters move the 11 still waiting to the front of the array
         * rather than growing it, and the order holds */
        n_order = 0;
        assert_int_equal(gate_new(1, "test.limit", &g), 0);
        assert_true(gate_acquire(g, resume, (void *) 100));
        for (intptr_t i = 0; i < 16; i++)
                assert_false(gate_acquire(g, resume, (void *) i));
        for (int i = 0; i < 5; i++)
                gate_release(g);
        assert_int_equal(n_order, 5);
        assert_int_equal(gate_waiting(g), 11);
        for (intptr_t i = 16; i < 21; i++)
                assert_false(gate_acquire(g, resume, (void *) i));
        assert_int_equal(gate_waiting(g), 16);
        /* a cancel in the compacted queue */
        gate_cancel(g, (void *) 7);
        for (int i = 0; i < 15; i++)
                gate_release(g);
        assert_int_equal(n_order, 20);
        for (int i = 0, want = 0; i < 20; i++, want++) {
                if (want == 7)
                        want++;
                assert_int_equal(order[i], want);
        }
        assert_int_equal(gate_waiting(g), 0);
        assert_int_equal(gate_holders(g), 1);
        gate_free(g);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fifo),
                cmocka_unit_test(test_no_overtaking),
                cmocka_unit_test(test_set_limit),
                cmocka_unit_test(test_many_waiters),
                cmocka_unit_test(test_compaction),
        };
        /* the one "wait their turn" line goes nowhere */
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
