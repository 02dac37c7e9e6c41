/* Logging: the stderr target stamps each line with RFC 3339 local time
 * (milliseconds, UTC offset), then "sshtund:", the level word for errors
 * and warnings, the node; levels and targets read from and back to text;
 * the rate limit lets 'burst' through and counts the rest. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* 2026-12-07T01:20:33.123456Z */
#define T ((usec_t) 1796606433 * USEC_PER_SEC + 123456)

static void test_timestamp(void **state) {
        char buf[48];

        setenv("TZ", "UTC0", 1);
        tzset();
        assert_string_equal(log_timestamp(T, buf, sizeof buf), "2026-12-07T01:20:33.123+00:00");
        /* POSIX TZ: "CET-1" is one hour east of UTC */
        setenv("TZ", "CET-1", 1);
        tzset();
        assert_string_equal(log_timestamp(T, buf, sizeof buf), "2026-12-07T02:20:33.123+01:00");
        setenv("TZ", "XST+5:30", 1);
        tzset();
        assert_string_equal(log_timestamp(T, buf, sizeof buf), "2026-12-06T19:50:33.123-05:30");
        /* the start of a second */
        setenv("TZ", "UTC0", 1);
        tzset();
        assert_string_equal(log_timestamp((usec_t) 1796606433 * USEC_PER_SEC, buf, sizeof buf),
                            "2026-12-07T01:20:33.000+00:00");
}

static void test_stderr_line(void **state) {
        int p[2], saved;
        char line[512];
        ssize_t n;
        regex_t re;

        assert_int_equal(pipe(p), 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(dup2(p[1], STDERR_FILENO) >= 0);
        log_setup(LOG_TARGET_STDERR, LOG_INFO);
        log_node(LOG_WARNING, "node-1", "down: %s", "connection refused");
        log_debug("not written at info");
        log_info("plain");
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(p[1]);
        n = read(p[0], line, sizeof line - 1);
        close(p[0]);
        assert_true(n > 0);
        line[n] = 0;
        assert_int_equal(regcomp(&re,
                                 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} "
                                 "sshtund: warning: node-1: down: connection refused\n"
                                 "[0-9T:.+-]+ sshtund: plain\n$",
                                 REG_EXTENDED),
                         0);
        if (regexec(&re, line, 0, NULL, 0) != 0)
                fail_msg("unexpected lines:\n%s", line);
        regfree(&re);
}

static void test_names(void **state) {
        assert_int_equal(log_level_from_string("warn"), LOG_WARNING);
        assert_int_equal(log_level_from_string("error"), LOG_ERR);
        assert_int_equal(log_level_from_string("verbose"), -EINVAL);
        assert_string_equal(log_level_to_string(LOG_NOTICE), "notice");
        assert_string_equal(log_level_to_string(LOG_CRIT), "error");
        assert_int_equal(log_target_from_string("journal"), LOG_TARGET_JOURNAL);
        assert_int_equal(log_target_from_string("file"), -EINVAL);
        assert_string_equal(log_target_to_string(LOG_TARGET_SYSLOG), "syslog");
        assert_null(log_target_to_string(_LOG_TARGET_MAX));
}

static void test_ratelimit(void **state) {
        RateLimit rl = { .interval = 60 * USEC_PER_SEC, .burst = 2 };
        unsigned suppressed = 99;

        assert_true(ratelimit_below(&rl, &suppressed));
        assert_int_equal(suppressed, 0);
        assert_true(ratelimit_below(&rl, NULL));
        assert_false(ratelimit_below(&rl, NULL));
        assert_false(ratelimit_below(&rl, NULL));
        /* a new window: the first message hears how many were dropped */
        rl.begin -= 61 * USEC_PER_SEC;
        assert_true(ratelimit_below(&rl, &suppressed));
        assert_int_equal(suppressed, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timestamp),
                cmocka_unit_test(test_stderr_line),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_ratelimit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
