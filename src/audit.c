/* Stream audit lines: quoting, the budget, the count of what it held back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "log.h"

/* Longest field of the audit line, quoted; longer text is cut. */
#define AUDIT_FIELD_MAX 256

struct AuditLog {
        RateLimit budget;
        uint64_t suppressed;
};

int audit_new(unsigned burst, usec_t interval, AuditLog **ret) {
        AuditLog *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        a->budget = (RateLimit) { .interval = interval, .burst = burst };
        *ret = a;
        return 0;
}

AuditLog *audit_free(AuditLog *a) {
        free(a);
        return NULL;
}

/* s in double quotes for the audit line: a quote, a backslash or a control
 * byte from a peer (the target is what the client asked for) cannot fake a
 * field or a line; they become '?'. */
static const char *audit_quote(const char *s, char *buf, size_t size) {
        size_t j = 0;

        buf[j++] = '"';
        for (const char *p = s ?: ""; *p && j + 2 < size; p++) {
                unsigned char c = (unsigned char) *p;
                buf[j++] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char) c;
        }
        buf[j++] = '"';
        buf[j] = 0;
        return buf;
}

void audit_stream_end(AuditLog *a, const AuditStream *s) {
        char client[AUDIT_FIELD_MAX], target[AUDIT_FIELD_MAX], res[AUDIT_FIELD_MAX],
                error[AUDIT_FIELD_MAX + 8] = "";
        unsigned suppressed = 0;

        if (log_get_max_level() < LOG_INFO)
                return;
        if (!ratelimit_below(&a->budget, &suppressed)) {
                a->suppressed++;
                return;
        }
        if (suppressed > 0)
                log_info("%u stream lines suppressed", suppressed);
        if (s->detail && *s->detail) {
                char q[AUDIT_FIELD_MAX];
                snprintf(error, sizeof(error), " error=%s", audit_quote(s->detail, q, sizeof(q)));
        }
        log_node(LOG_INFO, s->node,
                 "stream client=%s target=%s result=%s%s bytes_up=%llu bytes_down=%llu duration=%.3fs",
                 audit_quote(s->client, client, sizeof(client)), audit_quote(s->target, target, sizeof(target)),
                 audit_quote(s->result, res, sizeof(res)), error, (unsigned long long) s->bytes_up,
                 (unsigned long long) s->bytes_down, (double) s->duration / USEC_PER_SEC);
}

uint64_t audit_suppressed(const AuditLog *a) {
        return a->suppressed;
}
