/* SOCKS5 (RFC 1928) as the front door speaks it: the client greeting, the
 * CONNECT request and the replies, parsed from and built into caller
 * buffers. No I/O, no logging; every length the peer sends is bounded here.
 *
 * Only what a tunnel can honour is served: method 0x00 (no authentication)
 * and the CONNECT command, to IPv4, IPv6 and domain-name targets. The
 * request is answered once, after the node's channel opened or failed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SOCKS_VERSION 0x05

#define SOCKS_METHOD_NO_AUTH 0x00
#define SOCKS_METHOD_NONE_ACCEPTABLE 0xFF

#define SOCKS_CMD_CONNECT 0x01

#define SOCKS_ATYP_IPV4 0x01
#define SOCKS_ATYP_DOMAIN 0x03
#define SOCKS_ATYP_IPV6 0x04

/* The longest greeting (VER, NMETHODS, 255 methods) and request (header,
 * 255-byte domain, port): a peer cannot make either longer. */
#define SOCKS_GREETING_MAX (2 + 255)
#define SOCKS_REQUEST_MAX (4 + 1 + 255 + 2)
/* Method selection message and reply, in bytes. */
#define SOCKS_METHOD_REPLY_LEN 2
#define SOCKS_REPLY_LEN 10
/* A target host as text: a domain of up to 255 bytes, or an IP literal. */
#define SOCKS_HOST_MAX 256

/* REP values of RFC 1928 section 6. */
typedef enum SocksReply {
        SOCKS_REP_SUCCEEDED = 0x00,
        SOCKS_REP_GENERAL_FAILURE = 0x01,
        SOCKS_REP_NOT_ALLOWED = 0x02, /* connection not allowed by ruleset */
        SOCKS_REP_NETWORK_UNREACHABLE = 0x03,
        SOCKS_REP_HOST_UNREACHABLE = 0x04,
        SOCKS_REP_CONNECTION_REFUSED = 0x05,
        SOCKS_REP_TTL_EXPIRED = 0x06,
        SOCKS_REP_COMMAND_NOT_SUPPORTED = 0x07,
        SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
} SocksReply;

/* How a front-door request ends, whichever protocol asked. proxy.c answers
 * HTTP CONNECT with the status in the second column and SOCKS5 with the REP
 * that socks_reply_for_outcome() gives (third column):
 *
 *   outcome               HTTP  SOCKS5 REP
 *   OK                    200   0x00 succeeded
 *   MALFORMED             400   0x01 general failure (a garbage greeting,
 *                               before any method was chosen: closed
 *                               without a reply)
 *   BAD_ADDRESS_TYPE      400   0x08 address type not supported
 *   NOT_CONNECT           405   0x07 command not supported (BIND, UDP
 *                               ASSOCIATE, unknown commands)
 *   HEAD_TOO_LARGE        431   0x01 (cannot happen: SOCKS5 is bounded)
 *   HEAD_TIMEOUT          408   none: the connection is closed, as a
 *                               client that never finished its request
 *                               is not waiting for an answer
 *   DENIED                403   0x02 connection not allowed by ruleset
 *   PROHIBITED            502   0x02: the node's sshd answered
 *                               "administratively prohibited" (PermitOpen,
 *                               permitopen=, AllowTcpForwarding): a ruleset,
 *                               only the node's rather than ours
 *   REFUSED               502   0x05 connection refused: the node's sshd
 *                               answered "connect failed" (nothing listens
 *                               at the target, as seen from the node)
 *   UNAVAILABLE           503   0x01 general failure: no ready session for
 *                               the route, streams per session exhausted,
 *                               session lost while opening, out of memory
 *   OPEN_TIMEOUT          504   0x04 host unreachable: the node did not open
 *                               the channel in time, which is how an
 *                               unreachable host (or a hung node) looks
 *                               from here. 0x06 (TTL expired) names an IP
 *                               hop limit, which nothing here measures, and
 *                               clients print it as a routing loop.
 */
typedef enum ProxyOutcome {
        PROXY_OUTCOME_OK,
        PROXY_OUTCOME_MALFORMED,
        PROXY_OUTCOME_BAD_ADDRESS_TYPE,
        PROXY_OUTCOME_NOT_CONNECT,
        PROXY_OUTCOME_HEAD_TOO_LARGE,
        PROXY_OUTCOME_HEAD_TIMEOUT,
        PROXY_OUTCOME_DENIED,
        PROXY_OUTCOME_PROHIBITED,
        PROXY_OUTCOME_REFUSED,
        PROXY_OUTCOME_UNAVAILABLE,
        PROXY_OUTCOME_OPEN_TIMEOUT,
        _PROXY_OUTCOME_MAX,
} ProxyOutcome;

/* A parsed CONNECT request. */
typedef struct SocksRequest {
        uint8_t atyp;               /* SOCKS_ATYP_* as sent */
        char host[SOCKS_HOST_MAX];  /* dotted IPv4, RFC 5952 IPv6 without
                                     * brackets, or the domain as sent */
        uint16_t port;
} SocksRequest;

/* Parse the client greeting (VER, NMETHODS, METHODS) at the start of
 * buf[0..len).
 *
 * Returns:
 *   > 0        complete: its length in bytes (bytes after it are the
 *              request's); *ret_method is SOCKS_METHOD_NO_AUTH if the client
 *              offers it, else SOCKS_METHOD_NONE_ACCEPTABLE.
 *   0          incomplete so far, nothing seen is invalid: read more.
 *   -EBADMSG   VER is not 5, or NMETHODS is 0.
 * *ret_method is written only when the return value is > 0. */
int socks_greeting_parse(const void *buf, size_t len, uint8_t *ret_method);

/* Parse the request (VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT) at the start
 * of buf[0..len). Fields are checked as soon as they arrive, in order.
 *
 * Returns:
 *   > 0           complete: its length in bytes (bytes after it belong to
 *                 the tunnel); *ret holds the target.
 *   0             incomplete so far, nothing seen is invalid: read more.
 *   -EBADMSG      VER is not 5, RSV is not 0, an empty domain, or a domain
 *                 with a control character or a space (NUL included).
 *   -EOPNOTSUPP   CMD is not CONNECT (answer SOCKS_REP_COMMAND_NOT_SUPPORTED).
 *   -EAFNOSUPPORT ATYP is not 1, 3 or 4 (answer
 *                 SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED).
 * *ret is written only when the return value is > 0. */
int socks_request_parse(const void *buf, size_t len, SocksRequest *ret);

/* The method selection message: VER 5, METHOD. */
void socks_method_reply_format(uint8_t method, uint8_t ret[static SOCKS_METHOD_REPLY_LEN]);

/* A reply: VER 5, REP, RSV 0, ATYP 1, BND.ADDR 0.0.0.0, BND.PORT 0 (the
 * address sshtund's end is bound to means nothing through a tunnel, and
 * clients ignore it for CONNECT). */
void socks_reply_format(uint8_t rep, uint8_t ret[static SOCKS_REPLY_LEN]);

/* The REP for an outcome (table above), or -1 when the client gets no reply
 * and the connection is just closed. */
int socks_reply_for_outcome(ProxyOutcome outcome);

/* RFC 1928's words for a REP ("connection refused"), for logs;
 * "unassigned" for values it does not define. */
const char *socks_reply_to_string(uint8_t rep);
