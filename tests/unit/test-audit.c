/* The stream audit log: one line per stream within the budget, the lines
 * held back counted and announced, and fields a peer chose quoted so that
 * they cannot fake a field or a line. stderr is captured through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "log.h"

typedef struct Capture {
        int pipe[2];
        int saved;
        char text[65536];
} Capture;

static void capture_start(Capture *c) {
        assert_int_equal(pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC), 0);
        fflush(stderr);
        c->saved = dup(STDERR_FILENO);
        assert_true(c->saved >= 0);
        assert_true(dup2(c->pipe[1], STDERR_FILENO) >= 0);
        log_setup(LOG_TARGET_STDERR, LOG_INFO);
}

static const char *capture_end(Capture *c) {
        ssize_t n;

        fflush(stderr);
        assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
        close(c->saved);
        close(c->pipe[1]);
        n = read(c->pipe[0], c->text, sizeof(c->text) - 1);
        close(c->pipe[0]);
        c->text[n > 0 ? n : 0] = 0;
        return c->text;
}

static unsigned count(const char *text, const char *what) {
        unsigned n = 0;
        for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
                n++;
        return n;
}

static const AuditStream stream = {
        .node = "node-1",
        .client = "unix:pid=42,uid=0",
        .target = "10.0.0.7:10250",
        .result = "done",
        .bytes_up = 12,
        .bytes_down = 34,
        .duration = 1500 * USEC_PER_MSEC,
};

static void test_line(void **state) {
        AuditLog *a = NULL;
        Capture c;
        const char *text;

        assert_int_equal(audit_new(10, 10 * USEC_PER_SEC, &a), 0);
        capture_start(&c);
        audit_stream_end(a, &stream);
        text = capture_end(&c);
        assert_non_null(strstr(text, "stream client=\"unix:pid=42,uid=0\" target=\"10.0.0.7:10250\" "
                                     "result=\"done\" bytes_up=12 bytes_down=34 duration=1.500s"));
        assert_int_equal(audit_suppressed(a), 0);
        audit_free(a);
}

static void test_budget(void **state) {
        AuditLog *a = NULL;
        Capture c;
        const char *text;

        assert_int_equal(audit_new(3, 60 * USEC_PER_SEC, &a), 0);
        capture_start(&c);
        for (int i = 0; i < 5; i++)
                audit_stream_end(a, &stream);
        text = capture_end(&c);
        /* three written, two held back and counted */
        assert_int_equal(count(text, "stream client="), 3);
        assert_int_equal(audit_suppressed(a), 2);
        audit_free(a);

        /* below info level nothing is written, and nothing is counted */
        assert_int_equal(audit_new(1, 60 * USEC_PER_SEC, &a), 0);
        capture_start(&c);
        log_setup(LOG_TARGET_STDERR, LOG_NOTICE);
        audit_stream_end(a, &stream);
        audit_stream_end(a, &stream);
        text = capture_end(&c);
        assert_int_equal(count(text, "stream client="), 0);
        assert_int_equal(audit_suppressed(a), 0);
        audit_free(a);
}

static void test_suppressed_announced(void **state) {
        AuditLog *a = NULL;
        Capture c;
        const char *text;

        /* a budget of 1 per 50 ms: the line after a dropped run says so */
        assert_int_equal(audit_new(1, 50 * USEC_PER_MSEC, &a), 0);
        capture_start(&c);
        audit_stream_end(a, &stream);
        audit_stream_end(a, &stream);
        audit_stream_end(a, &stream);
        usleep(80 * 1000);
        audit_stream_end(a, &stream);
        text = capture_end(&c);
        assert_int_equal(count(text, "stream client="), 2);
        assert_non_null(strstr(text, "2 stream lines suppressed"));
        assert_int_equal(audit_suppressed(a), 2);
        audit_free(a);
}

static void test_quoting(void **state) {
        AuditStream s = stream;
        AuditLog *a = NULL;
        Capture c;
        const char *text;
        char long_target[1000];

        memset(long_target, 'x', sizeof(long_target) - 1);
        long_target[sizeof(long_target) - 1] = 0;
        assert_int_equal(audit_new(10, 10 * USEC_PER_SEC, &a), 0);
        capture_start(&c);
        /* a target that would fake a field and start a new line */
        s.target = "evil\" result=\"done\nfake line\\";
        s.result = "reset by client";
        s.detail = "tab\there";
        audit_stream_end(a, &s);
        s.target = long_target;
        s.detail = NULL;
        audit_stream_end(a, &s);
        text = capture_end(&c);
        assert_non_null(strstr(text, "target=\"evil? result=?done?fake line?\" result=\"reset by client\" "
                                     "error=\"tab?here\""));
        assert_null(strstr(text, "\nfake line"));
        /* long text is cut, the quote still closes the field */
        assert_non_null(strstr(text, "xxx\" result="));
        assert_null(strstr(text, long_target));
        audit_free(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line),
                cmocka_unit_test(test_budget),
                cmocka_unit_test(test_suppressed_announced),
                cmocka_unit_test(test_quoting),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
