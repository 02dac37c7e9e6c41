/* Backoff: the ceiling doubles from base to cap and stays there; delays are
 * the full range [0, ceiling]; reset starts over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static uint64_t rnd_max(void *userdata, uint64_t n) {
        return n - 1;
}

static uint64_t rnd_zero(void *userdata, uint64_t n) {
        return 0;
}

/* records the bound it was asked for */
static uint64_t rnd_record(void *userdata, uint64_t n) {
        *(uint64_t *) userdata = n;
        return n / 2;
}

static void test_ceiling_doubles_to_cap(void **state) {
        Backoff b = { .base = USEC_PER_SEC, .cap = 60 * USEC_PER_SEC };
        const usec_t expect[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };

        for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
                assert_int_equal(backoff_ceiling(&b), expect[i] * USEC_PER_SEC);
                assert_int_equal(backoff_next(&b, rnd_max, NULL), expect[i] * USEC_PER_SEC);
        }
        assert_int_equal(b.attempts, 9);
}

static void test_full_jitter_range(void **state) {
        Backoff b = { .base = USEC_PER_SEC, .cap = 60 * USEC_PER_SEC, .attempts = 3 };
        uint64_t asked = 0;

        assert_int_equal(backoff_next(&b, rnd_zero, NULL), 0);
        /* the generator is asked for [0, ceiling] inclusive: bound ceiling+1 */
        assert_int_equal(backoff_next(&b, rnd_record, &asked), 16 * USEC_PER_SEC / 2 + 0);
        assert_int_equal(asked, 16 * USEC_PER_SEC + 1);
}

static void test_no_overflow(void **state) {
        Backoff b = { .base = USEC_PER_SEC, .cap = UINT64_MAX - 1, .attempts = 5000 };
        assert_true(backoff_ceiling(&b) <= UINT64_MAX - 1);
        assert_true(backoff_ceiling(&b) >= USEC_PER_SEC);

        Backoff c = { .base = 3 * USEC_PER_SEC, .cap = 10 * USEC_PER_SEC, .attempts = 1 };
        assert_int_equal(backoff_ceiling(&c), 6 * USEC_PER_SEC);
        c.attempts = 2;
        assert_int_equal(backoff_ceiling(&c), 10 * USEC_PER_SEC);
}

static void test_reset(void **state) {
        Backoff b = { .base = USEC_PER_SEC, .cap = 60 * USEC_PER_SEC };
        for (int i = 0; i < 10; i++)
                (void) backoff_next(&b, rnd_max, NULL);
        assert_int_equal(backoff_ceiling(&b), 60 * USEC_PER_SEC);
        backoff_reset(&b);
        assert_int_equal(backoff_ceiling(&b), USEC_PER_SEC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ceiling_doubles_to_cap),
                cmocka_unit_test(test_full_jitter_range),
                cmocka_unit_test(test_no_overflow),
                cmocka_unit_test(test_reset),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
