/* Buffer: the limit holds, storage is released when empty, reserve/commit
 * and fd I/O move exactly the bytes they report. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "buffer.h"

static void test_limit(void **state) {
        Buffer b;
        uint8_t data[100];

        memset(data, 'x', sizeof(data));
        buffer_init(&b, 64);
        assert_int_equal(buffer_append(&b, data, 40), 40);
        assert_int_equal(buffer_append(&b, data, 40), 24);
        assert_int_equal(buffer_len(&b), 64);
        assert_int_equal(buffer_room(&b), 0);
        assert_int_equal(buffer_append(&b, data, 1), 0);
        /* force ignores the limit (the SSH output queue) */
        assert_int_equal(buffer_append_force(&b, data, 100), 0);
        assert_int_equal(buffer_len(&b), 164);
        buffer_done(&b);
}

static void test_release_when_empty(void **state) {
        Buffer b;

        buffer_init(&b, 1 << 20);
        assert_null(b.data);
        assert_int_equal(buffer_append(&b, "hello", 5), 5);
        assert_non_null(b.data);
        buffer_consume(&b, 2);
        assert_memory_equal(buffer_head(&b), "llo", 3);
        buffer_consume(&b, 3);
        assert_true(buffer_empty(&b));
        assert_null(b.data);
        assert_int_equal(b.alloc, 0);
        buffer_done(&b);
}

static void test_order_across_compaction(void **state) {
        Buffer b;
        uint8_t out[256];
        size_t n = 0;

        buffer_init(&b, 8192);
        /* append and consume in uneven steps so data slides and grows */
        for (int i = 0; i < 200; i++) {
                uint8_t c = (uint8_t) i;
                assert_int_equal(buffer_append(&b, &c, 1), 1);
                if (i % 3 == 2) {
                        out[n++] = buffer_head(&b)[0];
                        buffer_consume(&b, 1);
                }
        }
        while (!buffer_empty(&b)) {
                out[n++] = buffer_head(&b)[0];
                buffer_consume(&b, 1);
        }
        assert_int_equal(n, 200);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(out[i], (uint8_t) i);
        buffer_done(&b);
}

static void test_reserve_commit(void **state) {
        Buffer b;
        size_t size;
        uint8_t *p;

        buffer_init(&b, 10000);
        p = buffer_reserve(&b, 5000, &size);
        assert_non_null(p);
        assert_true(size >= 5000 && size <= 10000);
        memset(p, 'a', 5000);
        buffer_commit(&b, 5000);
        assert_int_equal(buffer_len(&b), 5000);
        p = buffer_reserve(&b, 20000, &size);
        assert_non_null(p);
        assert_int_equal(size, 5000); /* never past the limit */
        buffer_commit(&b, 0);
        buffer_consume(&b, 5000);
        assert_null(b.data);
        buffer_done(&b);
}

static void test_fd_io(void **state) {
        Buffer in, out;
        int sv[2];
        uint8_t big[70000];

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (i * 7);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        buffer_init(&in, 1 << 20);
        buffer_init(&out, 1 << 20);
        assert_int_equal(buffer_append(&out, big, sizeof(big)), sizeof(big));

        /* shuttle until all bytes crossed; partial writes keep the rest */
        while (buffer_len(&in) < sizeof(big)) {
                ssize_t w = buffer_write_fd(&out, sv[0]);
                assert_true(w >= 0 || w == -EAGAIN);
                ssize_t r = buffer_read_fd(&in, sv[1]);
                assert_true(r > 0 || r == -EAGAIN);
        }
        assert_memory_equal(buffer_head(&in), big, sizeof(big));
        assert_true(buffer_empty(&out));
        assert_null(out.data);

        /* nothing to read: -EAGAIN and no memory kept */
        buffer_done(&in);
        assert_int_equal(buffer_read_fd(&in, sv[1]), -EAGAIN);
        assert_null(in.data);

        /* EOF */
        close(sv[0]);
        assert_int_equal(buffer_read_fd(&in, sv[1]), 0);
        /* full buffer */
        Buffer tiny;
        buffer_init(&tiny, 0);
        assert_int_equal(buffer_read_fd(&tiny, sv[1]), -ENOBUFS);
        close(sv[1]);
        buffer_done(&in);
        buffer_done(&out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_release_when_empty),
                cmocka_unit_test(test_order_across_compaction),
                cmocka_unit_test(test_reserve_commit),
                cmocka_unit_test(test_fd_io),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
