/* SOCKS5 greeting and request parsing, and reply building, for the front
 * door. Each parse looks at a caller's bytes from the start, never past len. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "macro.h"
#include "socks.h"

int socks_greeting_parse(const void *buf, size_t len, uint8_t *ret_method) {
        const uint8_t *p = buf;
        size_t n;

        if (len < 1)
                return 0;
        if (p[0] != SOCKS_VERSION)
                return -EBADMSG;
        if (len < 2)
                return 0;
        n = p[1];
        if (n == 0)
                return -EBADMSG;
        if (len < 2 + n)
                return 0;

        *ret_method = memchr(p + 2, SOCKS_METHOD_NO_AUTH, n) ? SOCKS_METHOD_NO_AUTH
                                                             : SOCKS_METHOD_NONE_ACCEPTABLE;
        return (int) (2 + n);
}

/* A domain travels to the router, the logs and the node's sshd as text:
 * nothing that could split or hide part of a line. */
static bool domain_byte_ok(uint8_t b) {
        return b > ' ' && b != 0x7f;
}

int socks_request_parse(const void *buf, size_t len, SocksRequest *ret) {
        const uint8_t *p = buf;
        size_t addr_len, total;

        if (len >= 1 && p[0] != SOCKS_VERSION)
                return -EBADMSG;
        if (len >= 2 && p[1] != SOCKS_CMD_CONNECT)
                return -EOPNOTSUPP;
        if (len >= 3 && p[2] != 0)
                return -EBADMSG;
        if (len < 4)
                return 0;

        switch (p[3]) {
        case SOCKS_ATYP_IPV4:
                addr_len = 4;
                break;
        case SOCKS_ATYP_IPV6:
                addr_len = 16;
                break;
        case SOCKS_ATYP_DOMAIN:
                if (len < 5)
                        return 0;
                if (p[4] == 0)
                        return -EBADMSG;
                for (size_t i = 5; i < MIN(len, (size_t) 5 + p[4]); i++)
                        if (!domain_byte_ok(p[i]))
                                return -EBADMSG;
                addr_len = 1 + (size_t) p[4];
                break;
        default:
                return -EAFNOSUPPORT;
        }
        total = 4 + addr_len + 2;
        if (len < total)
                return 0;

        ret->atyp = p[3];
        switch (p[3]) {
        case SOCKS_ATYP_IPV4:
                if (!inet_ntop(AF_INET, p + 4, ret->host, sizeof(ret->host)))
                        return -EBADMSG; /* cannot happen: the buffer fits any address */
                break;
        case SOCKS_ATYP_IPV6:
                if (!inet_ntop(AF_INET6, p + 4, ret->host, sizeof(ret->host)))
                        return -EBADMSG;
                break;
        default:
                memcpy(ret->host, p + 5, p[4]);
                ret->host[p[4]] = 0;
                break;
        }
        ret->port = (uint16_t) ((p[4 + addr_len] << 8) | p[4 + addr_len + 1]);
        return (int) total;
}

void socks_method_reply_format(uint8_t method, uint8_t ret[static SOCKS_METHOD_REPLY_LEN]) {
        ret[0] = SOCKS_VERSION;
        ret[1] = method;
}

void socks_reply_format(uint8_t rep, uint8_t ret[static SOCKS_REPLY_LEN]) {
        memset(ret, 0, SOCKS_REPLY_LEN);
        ret[0] = SOCKS_VERSION;
        ret[1] = rep;
        ret[3] = SOCKS_ATYP_IPV4;
}

int socks_reply_for_outcome(ProxyOutcome outcome) {
        switch (outcome) {
        case PROXY_OUTCOME_OK:
                return SOCKS_REP_SUCCEEDED;
        case PROXY_OUTCOME_BAD_ADDRESS_TYPE:
                return SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED;
        case PROXY_OUTCOME_NOT_CONNECT:
                return SOCKS_REP_COMMAND_NOT_SUPPORTED;
        case PROXY_OUTCOME_HEAD_TIMEOUT:
                return -1;
        case PROXY_OUTCOME_DENIED:
        case PROXY_OUTCOME_PROHIBITED:
                return SOCKS_REP_NOT_ALLOWED;
        case PROXY_OUTCOME_REFUSED:
                return SOCKS_REP_CONNECTION_REFUSED;
        case PROXY_OUTCOME_OPEN_TIMEOUT:
                return SOCKS_REP_HOST_UNREACHABLE;
        case PROXY_OUTCOME_MALFORMED:
        case PROXY_OUTCOME_HEAD_TOO_LARGE:
        case PROXY_OUTCOME_UNAVAILABLE:
        default:
                return SOCKS_REP_GENERAL_FAILURE;
        }
}

const char *socks_reply_to_string(uint8_t rep) {
        static const char *const table[] = {
                [SOCKS_REP_SUCCEEDED] = "succeeded",
                [SOCKS_REP_GENERAL_FAILURE] = "general SOCKS server failure",
                [SOCKS_REP_NOT_ALLOWED] = "connection not allowed by ruleset",
                [SOCKS_REP_NETWORK_UNREACHABLE] = "network unreachable",
                [SOCKS_REP_HOST_UNREACHABLE] = "host unreachable",
                [SOCKS_REP_CONNECTION_REFUSED] = "connection refused",
                [SOCKS_REP_TTL_EXPIRED] = "TTL expired",
                [SOCKS_REP_COMMAND_NOT_SUPPORTED] = "command not supported",
                [SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED] = "address type not supported",
        };

        return rep < ELEMENTSOF(table) ? table[rep] : "unassigned";
}
