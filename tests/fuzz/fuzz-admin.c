/* Fuzzing the admin API's request handler (admin_handle) against a fake
 * daemon: the input is a request head, parsed as the admin socket parses
 * it, or failing that a raw "METHOD TARGET" line. Every reply must be a
 * known status with a body; JSON bodies must parse; the response the socket
 * would send must read back with the same status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "stub-daemon.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(HttpRequest *, http_request_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(Daemon *, stub_daemon_free);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        /* operator actions log at notice: keep the output to findings */
        log_setup(LOG_TARGET_STDERR, LOG_ERR);
        return 0;
}

static void check_reply(int status, const char *body, const char *content_type, const char *allow) {
        _cleanup_free_ char *out = NULL, *extra = NULL;
        HttpResponseHead head;
        size_t n = 0;

        fuzz_check(status == 200 || status == 400 || status == 404 || status == 405 || status == 500 ||
                   status == 503);
        fuzz_check(body && content_type);
        fuzz_check((status == 405) == !!allow);

        if (streq(content_type, "application/json")) {
                json_error_t error;
                json_t *v = json_loads(body, 0, &error);

                if (!v)
                        fprintf(stderr, "not JSON (%s): %s\n", error.text, body);
                fuzz_check(v);
                fuzz_check(json_is_object(v));
                if (status >= 400)
                        fuzz_check(json_is_string(json_object_get(v, "error")));
                json_decref(v);
        }

        if (allow && asprintf(&extra, "Allow: %s\r\n", allow) < 0)
                return;
        out = http_response_format(status, NULL, extra, content_type, body, strlen(body), &n);
        if (!out)
                return;
        fuzz_check(http_response_parse(out, n, n, &head) > 0);
        fuzz_check(head.status == status);
}

static void handle(const uint8_t *data, size_t size, const char *method, const char *target) {
        _cleanup_(stub_daemon_freep) Daemon *d = NULL;
        _cleanup_free_ char *body = NULL;
        const char *content_type = NULL, *allow = NULL;
        int status = 0, r;

        uint64_t h = fuzz_hash(data, size);

        /* now and then a reload that fails with a message that is not
         * UTF-8, and a daemon whose nodes all went to konnectivity */
        d = stub_daemon_new(h % 2 ? "/etc/sshtund/sshtund.conf:3: ssh.port: \xff\xfe bad\x01" : NULL,
                            (h >> 1) % 2);
        if (!d)
                return;
        r = admin_handle(d, method, target, &status, &body, &content_type, &allow);
        fuzz_check(r == 0 || r == -ENOMEM);
        if (r == 0)
                check_reply(status, body, content_type, allow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(http_request_freep) HttpRequest *req = NULL;
        _cleanup_free_ char *text = NULL;
        char *sp;

        if (http_request_parse((const char *) data, size, HTTP_HEAD_MAX, &req) > 0) {
                handle(data, size, http_request_method(req), http_request_target(req));
                return 0;
        }

        /* admin_handle() on its own takes any strings: up to the first NUL,
         * the method before the first space, the target after it */
        text = strndup((const char *) data, size);
        if (!text)
                return 0;
        sp = strchr(text, ' ');
        if (!sp)
                return 0;
        *sp = 0;
        sp[strcspn(sp + 1, "\r\n") + 1] = 0;
        handle(data, size, text, sp + 1);
        return 0;
}
