/* sshwire: every getter stops at the end of its data and leaves the cursor
 * where it was on failure; putters stop at the end of their buffer and stay
 * failed; mpints read and write as OpenSSH encodes them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sshwire.h"

static void test_get_u32_and_string(void **state) {
        static const uint8_t data[] = { 0, 0, 0, 7, 's', 's', 'h', '-', 'r', 's', 'a', 0, 0, 0, 0, 0xde };
        SshWireReader r;
        const uint8_t *s;
        size_t n;
        uint8_t b;

        sshwire_reader_init(&r, data, sizeof data);
        assert_int_equal(sshwire_get_string(&r, &s, &n), 0);
        assert_int_equal(n, 7);
        assert_true(sshwire_string_is(s, n, "ssh-rsa"));
        assert_false(sshwire_string_is(s, n, "ssh-rs"));
        assert_false(sshwire_string_is(s, n, "ssh-rsa2"));
        assert_int_equal(sshwire_get_string(&r, &s, &n), 0); /* the empty string */
        assert_int_equal(n, 0);
        assert_true(sshwire_string_is(s, n, ""));
        assert_int_equal(sshwire_reader_left(&r), 1);
        assert_int_equal(sshwire_get_u8(&r, &b), 0);
        assert_int_equal(b, 0xde);
        assert_int_equal(sshwire_get_u8(&r, &b), -EBADMSG);
}

static void test_short_data_leaves_cursor(void **state) {
        /* a string claiming 5 bytes with only 3 behind it */
        static const uint8_t data[] = { 0, 0, 0, 5, 'a', 'b', 'c' };
        SshWireReader r;
        const uint8_t *s = (const uint8_t *) "untouched";
        size_t n = 42;
        uint32_t v;

        sshwire_reader_init(&r, data, sizeof data);
        assert_int_equal(sshwire_get_string(&r, &s, &n), -EBADMSG);
        assert_int_equal(n, 42);
        assert_string_equal((const char *) s, "untouched");
        assert_int_equal(sshwire_reader_left(&r), sizeof data);
        /* the same bytes still read as a u32 */
        assert_int_equal(sshwire_get_u32(&r, &v), 0);
        assert_int_equal(v, 5);
        assert_int_equal(sshwire_get_u32(&r, &v), -EBADMSG);
        assert_int_equal(sshwire_reader_left(&r), 3);
        assert_int_equal(sshwire_get_bytes(&r, 4, NULL), -EBADMSG);
        assert_int_equal(sshwire_get_bytes(&r, 3, &s), 0);
        assert_memory_equal(s, "abc", 3);

        /* a length that would wrap a size_t sum */
        static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };
        sshwire_reader_init(&r, huge, sizeof huge);
        assert_int_equal(sshwire_get_string(&r, NULL, NULL), -EBADMSG);
        /* nothing at all */
        sshwire_reader_init(&r, NULL, 0);
        assert_int_equal(sshwire_get_u32(&r, &v), -EBADMSG);
}

static void test_cstring(void **state) {
        static const uint8_t text[] = { 0, 0, 0, 3, 'f', 'o', 'o' };
        static const uint8_t nul[] = { 0, 0, 0, 3, 'f', 0, 'o' };
        SshWireReader r;
        char buf[4], tiny[3];

        sshwire_reader_init(&r, text, sizeof text);
        assert_int_equal(sshwire_get_cstring(&r, tiny, sizeof tiny), -ENOBUFS);
        assert_int_equal(sshwire_reader_left(&r), sizeof text);
        assert_int_equal(sshwire_get_cstring(&r, buf, sizeof buf), 0);
        assert_string_equal(buf, "foo");
        sshwire_reader_init(&r, nul, sizeof nul);
        assert_int_equal(sshwire_get_cstring(&r, buf, sizeof buf), -EBADMSG);
}

static void test_mpint(void **state) {
        static const uint8_t positive[] = { 0, 0, 0, 2, 0x00, 0x80 };    /* 128, sign byte needed */
        static const uint8_t padded[] = { 0, 0, 0, 3, 0x00, 0x00, 0x7f }; /* 127 with a needless zero */
        static const uint8_t negative[] = { 0, 0, 0, 1, 0x80 };
        static const uint8_t zero[] = { 0, 0, 0, 0 };
        SshWireReader r;
        const uint8_t *m;
        size_t n;

        sshwire_reader_init(&r, positive, sizeof positive);
        assert_int_equal(sshwire_get_mpint(&r, &m, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(m[0], 0x80);
        assert_int_equal(sshwire_mpint_bits(m, n), 8);

        sshwire_reader_init(&r, padded, sizeof padded);
        assert_int_equal(sshwire_get_mpint(&r, &m, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(m[0], 0x7f);
        assert_int_equal(sshwire_mpint_bits(m, n), 7);

        sshwire_reader_init(&r, negative, sizeof negative);
        assert_int_equal(sshwire_get_mpint(&r, &m, &n), -EBADMSG);
        assert_int_equal(sshwire_reader_left(&r), sizeof negative);

        sshwire_reader_init(&r, zero, sizeof zero);
        assert_int_equal(sshwire_get_mpint(&r, &m, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(sshwire_mpint_bits(m, n), 0);
}

static void test_put(void **state) {
        static const uint8_t high[] = { 0x00, 0x00, 0xff, 0x01 }; /* leading zeros dropped, sign byte added */
        static const uint8_t want[] = { 0, 0, 0, 3, 'a', 'b', 'c', 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 3, 0, 0xff, 0x01 };
        uint8_t buf[64];
        SshWireWriter w;
        size_t n;

        sshwire_writer_init(&w, buf, sizeof buf);
        assert_int_equal(sshwire_put_cstring(&w, "abc"), 0);
        assert_int_equal(sshwire_put_u32(&w, 0x12345678), 0);
        assert_int_equal(sshwire_mpint_size(high, sizeof high), 7);
        assert_int_equal(sshwire_put_mpint(&w, high, sizeof high), 0);
        assert_int_equal(sshwire_writer_finish(&w, &n), 0);
        assert_int_equal(n, sizeof want);
        assert_memory_equal(buf, want, sizeof want);

        /* and back */
        SshWireReader r;
        const uint8_t *m;
        size_t len;
        sshwire_reader_init(&r, buf, n);
        assert_int_equal(sshwire_get_string(&r, NULL, NULL), 0);
        assert_int_equal(sshwire_get_u32(&r, NULL), 0);
        assert_int_equal(sshwire_get_mpint(&r, &m, &len), 0);
        assert_int_equal(len, 2);
        assert_memory_equal(m, high + 2, 2);
        assert_int_equal(sshwire_reader_left(&r), 0);
}

static void test_put_overflow_sticks(void **state) {
        uint8_t buf[8];
        SshWireWriter w;
        size_t n = 99;

        memset(buf, 0xaa, sizeof buf);
        sshwire_writer_init(&w, buf, 6);
        assert_int_equal(sshwire_put_string(&w, "abc", 3), -ENOBUFS); /* 7 bytes into 6 */
        /* a put that would fit alone fails too: the sequence is broken */
        assert_int_equal(sshwire_put_u8(&w, 1), -ENOBUFS);
        assert_int_equal(sshwire_writer_finish(&w, &n), -ENOBUFS);
        assert_int_equal(n, 99);
        /* nothing beyond 'size' was touched */
        assert_int_equal(buf[6], 0xaa);
        assert_int_equal(buf[7], 0xaa);

        sshwire_writer_init(&w, NULL, 0);
        assert_int_equal(sshwire_put_u8(&w, 1), -ENOBUFS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_get_u32_and_string),
                cmocka_unit_test(test_short_data_leaves_cursor),
                cmocka_unit_test(test_cstring),
                cmocka_unit_test(test_mpint),
                cmocka_unit_test(test_put),
                cmocka_unit_test(test_put_overflow_sticks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
