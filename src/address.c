/* Parsing and matching of the address forms that appear in the config and in
 * requests. Everything is strict: a value either parses completely or not. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "address.h"
#include "macro.h"

int ipaddr_parse(const char *s, IpAddr *ret) {
        IpAddr a = {};

        if (!s)
                return -EINVAL;
        if (inet_pton(AF_INET, s, a.bytes) == 1)
                a.family = AF_INET;
        else if (inet_pton(AF_INET6, s, a.bytes) == 1)
                a.family = AF_INET6;
        else
                return -EINVAL;
        if (ret)
                *ret = a;
        return 0;
}

socklen_t ipaddr_to_sockaddr(const IpAddr *a, uint16_t port, struct sockaddr_storage *ret) {
        memset(ret, 0, sizeof(*ret));
        if (a->family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) ret;
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                memcpy(&in->sin_addr, a->bytes, 4);
                return sizeof(*in);
        }
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, a->bytes, 16);
        return sizeof(*in6);
}

int ipaddr_parse_bracketed(const char *s, IpAddr *ret) {
        char buf[INET6_ADDRSTRLEN + 2];
        size_t n;

        if (!s)
                return -EINVAL;
        if (s[0] != '[')
                return ipaddr_parse(s, ret);
        n = strlen(s);
        if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = 0;
        IpAddr a;
        if (ipaddr_parse(buf, &a) < 0 || a.family != AF_INET6)
                return -EINVAL;
        if (ret)
                *ret = a;
        return 0;
}

static size_t ipaddr_len(int family) {
        return family == AF_INET ? 4 : 16;
}

bool ipaddr_equal(const IpAddr *a, const IpAddr *b) {
        return a->family == b->family && memcmp(a->bytes, b->bytes, ipaddr_len(a->family)) == 0;
}

const char *ipaddr_to_string(const IpAddr *a, char *buf, size_t size) {
        if (!inet_ntop(a->family, a->bytes, buf, size))
                snprintf(buf, size, "?");
        return buf;
}

static int parse_uint(const char *s, const char *end, unsigned max, unsigned *ret) {
        unsigned long v = 0;

        if (s == end || end - s > 10)
                return -EINVAL;
        for (const char *p = s; p < end; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*p - '0');
                if (v > max)
                        return -ERANGE;
        }
        *ret = (unsigned) v;
        return 0;
}

int cidr_parse(const char *s, Cidr *ret) {
        char buf[INET6_ADDRSTRLEN];
        const char *slash;
        Cidr c = {};
        unsigned len;
        int r;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        if (!slash) {
                r = ipaddr_parse(s, &c.addr);
                if (r < 0)
                        return r;
                c.prefixlen = c.addr.family == AF_INET ? 32 : 128;
        } else {
                if ((size_t) (slash - s) >= sizeof(buf))
                        return -EINVAL;
                memcpy(buf, s, slash - s);
                buf[slash - s] = 0;
                r = ipaddr_parse(buf, &c.addr);
                if (r < 0)
                        return r;
                r = parse_uint(slash + 1, slash + 1 + strlen(slash + 1), c.addr.family == AF_INET ? 32 : 128,
                               &len);
                if (r < 0)
                        return -EINVAL;
                c.prefixlen = len;
                /* host bits must be clear */
                for (unsigned bit = len; bit < ipaddr_len(c.addr.family) * 8; bit++)
                        if (c.addr.bytes[bit / 8] & (0x80 >> (bit % 8)))
                                return -EINVAL;
        }
        if (ret)
                *ret = c;
        return 0;
}

bool cidr_contains(const Cidr *c, const IpAddr *a) {
        unsigned full, rest;

        if (c->addr.family != a->family)
                return false;
        full = c->prefixlen / 8;
        rest = c->prefixlen % 8;
        if (memcmp(c->addr.bytes, a->bytes, full) != 0)
                return false;
        if (rest) {
                uint8_t mask = (uint8_t) (0xff00 >> rest);
                if ((c->addr.bytes[full] & mask) != (a->bytes[full] & mask))
                        return false;
        }
        return true;
}

const char *cidr_to_string(const Cidr *c, char *buf, size_t size) {
        char a[INET6_ADDRSTRLEN];
        snprintf(buf, size, "%s/%u", ipaddr_to_string(&c->addr, a, sizeof(a)), c->prefixlen);
        return buf;
}

int port_parse(const char *s, uint16_t *ret) {
        unsigned v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_uint(s, s + strlen(s), 65535, &v);
        if (r < 0 || v == 0)
                return -EINVAL;
        if (ret)
                *ret = (uint16_t) v;
        return 0;
}

const char *hostport_format(const char *host, uint16_t port, char *buf, size_t size) {
        snprintf(buf, size, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned) port);
        return buf;
}

char *hostport_join(const char *host, uint16_t port) {
        char *s;

        if (asprintf(&s, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned) port) < 0)
                return NULL;
        return s;
}

const char *sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
        char ip[INET6_ADDRSTRLEN] = "?";

        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
                return hostport_format(ip, ntohs(in->sin_port), buf, size);
        }
        if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                return hostport_format(ip, ntohs(in6->sin6_port), buf, size);
        }
        if (sa->sa_family == AF_UNIX && len > (socklen_t) offsetof(struct sockaddr_un, sun_path)) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) sa;
                size_t n = strnlen(un->sun_path, MIN(sizeof(un->sun_path),
                                                     (size_t) len - offsetof(struct sockaddr_un, sun_path)));
                snprintf(buf, size, "unix:%.*s", (int) n, un->sun_path);
                return buf;
        }
        snprintf(buf, size, "?");
        return buf;
}

int hostport_split(const char *s, char **ret_host, uint16_t *ret_port) {
        const char *colon, *host_start, *host_end;
        uint16_t port;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '[') {
                host_end = strchr(s, ']');
                if (!host_end || host_end[1] != ':')
                        return -EINVAL;
                host_start = s + 1;
                colon = host_end + 1;
                char tmp[INET6_ADDRSTRLEN];
                if ((size_t) (host_end - host_start) >= sizeof(tmp))
                        return -EINVAL;
                memcpy(tmp, host_start, host_end - host_start);
                tmp[host_end - host_start] = 0;
                IpAddr a;
                if (ipaddr_parse(tmp, &a) < 0 || a.family != AF_INET6)
                        return -EINVAL;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                /* an unbracketed IPv6 literal has more than one colon */
                if (memchr(s, ':', colon - s))
                        return -EINVAL;
                host_start = s;
                host_end = colon;
        }
        if (host_end == host_start)
                return -EINVAL;
        if (port_parse(colon + 1, &port) < 0)
                return -EINVAL;
        if (ret_host) {
                char *h = strndup(host_start, host_end - host_start);
                if (!h)
                        return -ENOMEM;
                *ret_host = h;
        }
        if (ret_port)
                *ret_port = port;
        return 0;
}

int portlist_parse(const char *s, PortRange **ret, size_t *ret_n) {
        _cleanup_free_ PortRange *ranges = NULL;
        size_t n = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        for (;;) {
                const char *end = strchr(p, ',');
                const char *dash;
                unsigned lo, hi;

                if (!end)
                        end = p + strlen(p);
                dash = memchr(p, '-', end - p);
                if (dash) {
                        if (parse_uint(p, dash, 65535, &lo) < 0 || parse_uint(dash + 1, end, 65535, &hi) < 0)
                                return -EINVAL;
                } else {
                        if (parse_uint(p, end, 65535, &lo) < 0)
                                return -EINVAL;
                        hi = lo;
                }
                if (lo == 0 || hi < lo)
                        return -EINVAL;
                PortRange *nr = realloc(ranges, (n + 1) * sizeof(*ranges));
                if (!nr)
                        return -ENOMEM;
                ranges = nr;
                ranges[n++] = (PortRange) { .lo = (uint16_t) lo, .hi = (uint16_t) hi };
                if (!*end)
                        break;
                p = end + 1;
        }
        *ret = TAKE_PTR(ranges);
        *ret_n = n;
        return 0;
}

bool portlist_contains(const PortRange *ranges, size_t n, uint16_t port) {
        for (size_t i = 0; i < n; i++)
                if (port >= ranges[i].lo && port <= ranges[i].hi)
                        return true;
        return false;
}

int listen_address_parse(const char *s, ListenAddress *ret) {
        ListenAddress a = {};
        int r;

        if (!s)
                return -EINVAL;
        if (strncmp(s, "unix:", 5) == 0) {
                const char *path = s + 5;
                if (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                        return -EINVAL;
                a.kind = LISTEN_UNIX;
                a.path = strdup(path);
                if (!a.path)
                        return -ENOMEM;
        } else if (strncmp(s, "tcp:", 4) == 0) {
                _cleanup_free_ char *host = NULL;
                r = hostport_split(s + 4, &host, &a.port);
                if (r < 0)
                        return r;
                r = ipaddr_parse(host, &a.ip);
                if (r < 0)
                        return r;
                a.kind = LISTEN_TCP;
        } else
                return -EINVAL;
        *ret = a;
        return 0;
}

void listen_address_done(ListenAddress *a) {
        if (!a)
                return;
        free(a->path);
        a->path = NULL;
}

int listen_address_copy(const ListenAddress *a, ListenAddress *ret) {
        ListenAddress c = *a;
        if (a->path) {
                c.path = strdup(a->path);
                if (!c.path)
                        return -ENOMEM;
        }
        *ret = c;
        return 0;
}

bool listen_address_equal(const ListenAddress *a, const ListenAddress *b) {
        if (a->kind != b->kind)
                return false;
        if (a->kind == LISTEN_UNIX)
                return streq_ptr(a->path, b->path);
        return a->port == b->port && ipaddr_equal(&a->ip, &b->ip);
}

int listen_address_to_sockaddr(const ListenAddress *a, struct sockaddr_storage *ret) {
        memset(ret, 0, sizeof(*ret));
        if (a->kind == LISTEN_UNIX) {
                struct sockaddr_un *un = (struct sockaddr_un *) ret;
                size_t n = strlen(a->path);
                if (n >= sizeof(un->sun_path))
                        return -EINVAL;
                un->sun_family = AF_UNIX;
                memcpy(un->sun_path, a->path, n + 1);
                return (int) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        }
        if (a->ip.family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) ret;
                in->sin_family = AF_INET;
                in->sin_port = htons(a->port);
                memcpy(&in->sin_addr, a->ip.bytes, 4);
                return sizeof(*in);
        }
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        memcpy(&in6->sin6_addr, a->ip.bytes, 16);
        return sizeof(*in6);
}

char *listen_address_to_string(const ListenAddress *a) {
        char *s = NULL, ip[INET6_ADDRSTRLEN];

        if (a->kind == LISTEN_UNIX) {
                if (asprintf(&s, "unix:%s", a->path) < 0)
                        return NULL;
        } else if (a->ip.family == AF_INET6) {
                if (asprintf(&s, "tcp:[%s]:%u", ipaddr_to_string(&a->ip, ip, sizeof(ip)), a->port) < 0)
                        return NULL;
        } else if (asprintf(&s, "tcp:%s:%u", ipaddr_to_string(&a->ip, ip, sizeof(ip)), a->port) < 0)
                return NULL;
        return s;
}
