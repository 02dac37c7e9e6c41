/* StrBuf: appends of every kind read back exactly, NUL-terminated, across
 * reallocations; take() hands the text over and leaves the buffer empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

static void test_appends(void **state) {
        StrBuf b = {};
        size_t len = 0;
        char *s;

        strbuf_puts(&b, "sshtund_node_up{node=");
        strbuf_putc(&b, '"');
        strbuf_mem(&b, "n1xyz", 2);
        strbuf_puts(&b, "\"} ");
        strbuf_u64(&b, 0);
        strbuf_putc(&b, ' ');
        strbuf_u64(&b, UINT64_MAX);
        strbuf_printf(&b, " %s=%d", "x", -7);
        assert_false(b.failed);
        s = strbuf_take(&b, &len);
        assert_non_null(s);
        assert_string_equal(s, "sshtund_node_up{node=\"n1\"} 0 18446744073709551615 x=-7");
        assert_int_equal(len, strlen(s));
        assert_null(b.buf);
        assert_int_equal(b.len, 0);
        free(s);
}

/* Past the first allocation, many times over, and a printf longer than
 * its first try: every byte where it belongs. */
static void test_growth(void **state) {
        _cleanup_free_ char *big = malloc(100000);
        StrBuf b = {};
        size_t len;
        char *s;

        assert_non_null(big);
        memset(big, 'y', 99999);
        big[99999] = 0;
        for (unsigned i = 0; i < 100000; i++) {
                strbuf_u64(&b, i % 10);
                if (b.len != i + 1)
                        fail_msg("length %zu after %u appends", b.len, i + 1);
        }
        strbuf_printf(&b, "<%s>", big);
        s = strbuf_take(&b, &len);
        assert_non_null(s);
        assert_int_equal(len, 100000 + 2 + 99999);
        for (unsigned i = 0; i < 100000; i++)
                assert_int_equal(s[i], '0' + (int) (i % 10));
        assert_int_equal(s[100000], '<');
        assert_int_equal(s[len - 1], '>');
        assert_int_equal(s[len], 0);
        assert_int_equal(strspn(s + 100001, "y"), 99999);
        free(s);
}

/* Nothing appended: an empty string, not NULL. A failed buffer gives
 * NULL and frees what it held. */
static void test_empty_and_failed(void **state) {
        StrBuf b = {};
        char *s = strbuf_take(&b, NULL);

        assert_non_null(s);
        assert_string_equal(s, "");
        free(s);

        strbuf_puts(&b, "partial");
        assert_false(strbuf_reserve(&b, SIZE_MAX - 4));
        assert_true(b.failed);
        strbuf_puts(&b, "more"); /* ignored */
        assert_null(strbuf_take(&b, NULL));
        assert_null(b.buf);
        strbuf_done(&b); /* after take: harmless */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_appends),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_empty_and_failed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
