/* SshArena: blocks are tracked through alloc, realloc and free, aligned like
 * malloc's, and release frees exactly what is left (valgrind and ASan check). */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ssharena.h"

static void test_tracks_blocks(void **state) {
        SshArena a = { 0 };
        size_t bytes = 0;
        char *p, *q;

        p = ssh_arena_alloc(&a, 32);
        q = ssh_arena_alloc(&a, 100);
        assert_non_null(p);
        assert_non_null(q);
        assert_int_equal((uintptr_t) p % alignof(max_align_t), 0);
        assert_int_equal((uintptr_t) q % alignof(max_align_t), 0);
        memset(p, 'p', 32);
        memset(q, 'q', 100);
        assert_int_equal(a.n_blocks, 2);
        assert_int_equal(a.bytes, 132);

        /* realloc keeps the contents and the count */
        q = ssh_arena_realloc(&a, q, 5000);
        assert_non_null(q);
        assert_int_equal(q[99], 'q');
        assert_int_equal(a.n_blocks, 2);
        assert_int_equal(a.bytes, 5032);

        ssh_arena_free(&a, q);
        ssh_arena_free(&a, NULL);
        assert_int_equal(a.n_blocks, 1);
        assert_int_equal(a.bytes, 32);
        assert_int_equal(p[31], 'p');
        ssh_arena_free(&a, p);
        assert_int_equal(ssh_arena_release(&a, &bytes), 0);
        assert_int_equal(bytes, 0);
}

static void test_release_frees_the_rest(void **state) {
        SshArena a = { 0 };
        size_t bytes = 0;
        void *keep;

        /* a session freed mid key exchange: libssh2 leaves its key pair */
        (void) ssh_arena_alloc(&a, 32);
        (void) ssh_arena_alloc(&a, 32);
        keep = ssh_arena_realloc(&a, NULL, 10);
        assert_non_null(keep);
        ssh_arena_free(&a, keep);
        (void) ssh_arena_alloc(&a, 0);
        assert_int_equal(ssh_arena_release(&a, &bytes), 3);
        assert_int_equal(bytes, 64);
        assert_null(a.blocks);
        assert_int_equal(a.n_blocks, 0);

        /* usable again after a release */
        void *p = ssh_arena_alloc(&a, 8);
        assert_non_null(p);
        assert_int_equal(ssh_arena_release(&a, NULL), 1);
}

static void test_huge_sizes_fail(void **state) {
        SshArena a = { 0 };
        void *p;

        assert_null(ssh_arena_alloc(&a, SIZE_MAX));
        assert_null(ssh_arena_alloc(&a, SIZE_MAX - 8));
        p = ssh_arena_alloc(&a, 16);
        assert_non_null(p);
        /* a failed realloc leaves the block where it was */
        assert_null(ssh_arena_realloc(&a, p, SIZE_MAX));
        assert_int_equal(a.n_blocks, 1);
        assert_int_equal(a.bytes, 16);
        ssh_arena_free(&a, p);
        assert_int_equal(a.n_blocks, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tracks_blocks),
                cmocka_unit_test(test_release_frees_the_rest),
                cmocka_unit_test(test_huge_sizes_fail),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
