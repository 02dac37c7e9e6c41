/* Fuzzing the SOCKS5 greeting and request parsers as the front door runs
 * them over one buffer: split reads agree with one read, lengths stay
 * within the protocol's bounds, and the target reads back as sent. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "socks.h"

static void check_greeting(const uint8_t *p, size_t size, size_t split) {
        uint8_t whole = 0xAA, part = 0xAA;
        int r, k;

        r = socks_greeting_parse(p, size, &whole);
        fuzz_check(r >= 0 || r == -EBADMSG);
        fuzz_check(r <= (int) SOCKS_GREETING_MAX && (size_t) MAX(r, 0) <= size);
        fuzz_check(r > 0 || whole == 0xAA);
        k = socks_greeting_parse(p, split, &part);
        if (k != 0)
                fuzz_check(k == r && part == whole);
        if (r > 0) {
                bool no_auth = memchr(p + 2, SOCKS_METHOD_NO_AUTH, p[1]);

                fuzz_check(whole == (no_auth ? SOCKS_METHOD_NO_AUTH : SOCKS_METHOD_NONE_ACCEPTABLE));
                fuzz_check(r == 2 + p[1]);
        }
}

/* The parsed target is the bytes on the wire. */
static void check_target(const uint8_t *p, int len, const SocksRequest *req) {
        uint8_t addr[16];

        fuzz_check(req->atyp == p[3]);
        fuzz_check(req->port == (p[len - 2] << 8 | p[len - 1]));
        switch (req->atyp) {
        case SOCKS_ATYP_IPV4:
                fuzz_check(len == 10);
                fuzz_check(inet_pton(AF_INET, req->host, addr) == 1 && memcmp(addr, p + 4, 4) == 0);
                break;
        case SOCKS_ATYP_IPV6:
                fuzz_check(len == 22);
                fuzz_check(inet_pton(AF_INET6, req->host, addr) == 1 && memcmp(addr, p + 4, 16) == 0);
                break;
        case SOCKS_ATYP_DOMAIN:
                fuzz_check(len == 4 + 1 + p[4] + 2);
                fuzz_check(strlen(req->host) == p[4] && memcmp(req->host, p + 5, p[4]) == 0);
                for (const char *c = req->host; *c; c++)
                        fuzz_check((unsigned char) *c > ' ' && *c != 0x7f);
                break;
        default:
                fuzz_check(!"unknown ATYP parsed");
        }
}

static void check_request(const uint8_t *p, size_t size, size_t split) {
        SocksRequest whole, part;
        int r, k;

        memset(&whole, 0xAA, sizeof(whole));
        memset(&part, 0xAA, sizeof(part));
        r = socks_request_parse(p, size, &whole);
        fuzz_check(r >= 0 || r == -EBADMSG || r == -EOPNOTSUPP || r == -EAFNOSUPPORT);
        fuzz_check(r <= (int) SOCKS_REQUEST_MAX && (size_t) MAX(r, 0) <= size);
        k = socks_request_parse(p, split, &part);
        if (k > 0)
                fuzz_check(k == r && memcmp(&part, &whole, offsetof(SocksRequest, host)) == 0 &&
                           streq(part.host, whole.host) && part.port == whole.port);
        else if (k < 0)
                fuzz_check(k == r);
        if (r > 0)
                check_target(p, r, &whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t h = fuzz_hash(data, size);
        uint8_t method, reply[SOCKS_REPLY_LEN], mreply[SOCKS_METHOD_REPLY_LEN];
        int g;

        /* the greeting, then the request in the bytes after it */
        check_greeting(data, size, size > 0 ? (size_t) (h % (size + 1)) : 0);
        g = socks_greeting_parse(data, size, &method);
        if (g > 0) {
                size_t rest = size - (size_t) g;
                check_request(data + g, rest, rest > 0 ? (size_t) ((h >> 32) % (rest + 1)) : 0);
        }
        /* and the request alone, for inputs that skip the greeting */
        check_request(data, size, size > 0 ? (size_t) ((h >> 16) % (size + 1)) : 0);

        /* the replies, for the last byte (the first is nearly always 5) */
        if (size > 0) {
                uint8_t b = data[size - 1];
                int rep = socks_reply_for_outcome((ProxyOutcome) (b % _PROXY_OUTCOME_MAX));

                fuzz_check(rep >= -1 && rep <= 0xff);
                fuzz_check(socks_reply_to_string(b) != NULL);
                socks_reply_format(b, reply);
                fuzz_check(reply[0] == SOCKS_VERSION && reply[1] == b && reply[3] == SOCKS_ATYP_IPV4);
                socks_method_reply_format(b, mreply);
                fuzz_check(mreply[0] == SOCKS_VERSION && mreply[1] == b);
        }
        return 0;
}
