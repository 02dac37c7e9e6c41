/* Addresses as users write them: IP literals, CIDR blocks, "host:port" with
 * bracketed IPv6, port lists, and "unix:PATH" / "tcp:HOST:PORT" listen specs.
 * Pure parsing and matching: no name resolution, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct IpAddr {
        int family; /* AF_INET or AF_INET6 */
        uint8_t bytes[16];
} IpAddr;

/* Parse an IPv4 or IPv6 literal (no brackets, no zone). -EINVAL otherwise. */
int ipaddr_parse(const char *s, IpAddr *ret);
/* Parse an IP literal that may be bracketed ("[fd00::1]"). */
int ipaddr_parse_bracketed(const char *s, IpAddr *ret);
/* 'a' and 'port' as a sockaddr_in or sockaddr_in6 in *ret; returns its length. */
socklen_t ipaddr_to_sockaddr(const IpAddr *a, uint16_t port, struct sockaddr_storage *ret);
bool ipaddr_equal(const IpAddr *a, const IpAddr *b);
/* Text form; buf must hold INET6_ADDRSTRLEN bytes. Returns buf. */
const char *ipaddr_to_string(const IpAddr *a, char *buf, size_t size);

typedef struct Cidr {
        IpAddr addr; /* host bits cleared */
        unsigned prefixlen;
} Cidr;

/* "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128). Host bits set
 * below the prefix are -EINVAL: "10.0.0.1/8" is a typo more often than not. */
int cidr_parse(const char *s, Cidr *ret);
bool cidr_contains(const Cidr *c, const IpAddr *a);
/* Canonical "ADDR/LEN" form. */
const char *cidr_to_string(const Cidr *c, char *buf, size_t size);

/* Split "host:port" or "[v6]:port". The host comes back without brackets and
 * must be non-empty; the port is decimal 1..65535. -EINVAL on anything else,
 * -ENOMEM on allocation failure. */
int hostport_split(const char *s, char **ret_host, uint16_t *ret_port);
/* The other way: "host:port", or "[host]:port" when the host holds a ':'
 * (an IPv6 literal), into buf (cut short if it does not fit); returns buf. */
const char *hostport_format(const char *host, uint16_t port, char *buf, size_t size);
/* The same, malloc'd; NULL when out of memory. */
char *hostport_join(const char *host, uint16_t port);
/* A socket address as text: "10.0.0.7:22", "[fd00::7]:22", "unix:/path";
 * returns buf. */
const char *sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Parse a decimal port 1..65535 with no sign, spaces or leading junk. */
int port_parse(const char *s, uint16_t *ret);

typedef struct PortRange {
        uint16_t lo, hi;
} PortRange;

/* "10250", "10250,10248", "1-1024", "80,443,8000-9000" → ranges (lo <= hi).
 * The array is malloc'd; -EINVAL on syntax errors or empty ranges. */
int portlist_parse(const char *s, PortRange **ret, size_t *ret_n);
bool portlist_contains(const PortRange *ranges, size_t n, uint16_t port);

typedef enum ListenKind {
        LISTEN_UNIX,
        LISTEN_TCP,
} ListenKind;

typedef struct ListenAddress {
        ListenKind kind;
        char *path;    /* LISTEN_UNIX: absolute path, shorter than sun_path */
        IpAddr ip;     /* LISTEN_TCP: IP literal */
        uint16_t port; /* LISTEN_TCP */
} ListenAddress;

/* "unix:/run/x.sock" | "tcp:127.0.0.1:8131" | "tcp:[::1]:8131". TCP hosts
 * must be IP literals: listeners are bound before any resolver is trusted. */
int listen_address_parse(const char *s, ListenAddress *ret);
void listen_address_done(ListenAddress *a);
int listen_address_copy(const ListenAddress *a, ListenAddress *ret);
bool listen_address_equal(const ListenAddress *a, const ListenAddress *b);
/* Fill a sockaddr for bind(); returns its length or -EINVAL. */
int listen_address_to_sockaddr(const ListenAddress *a, struct sockaddr_storage *ret);
/* "unix:/path" or "tcp:1.2.3.4:5" / "tcp:[::1]:5", malloc'd. */
char *listen_address_to_string(const ListenAddress *a);
