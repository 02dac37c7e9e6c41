/* Fault injection for the relay tests, loaded with LD_PRELOAD: reads, writes
 * and accepts on the daemon's stream sockets come back short, fail with
 * EAGAIN or EINTR, or reset the connection, at random but repeatably per seed.
 *
 * Which sockets: TCP (the SSH side, and TCP front-door clients) and Unix
 * stream sockets bound to FAULTFD_UNIX_PATH (the front door). Everything else
 * (sd-event's epoll, timer, signal and event fds, the notify and journal
 * datagram sockets, the admin socket, files) passes through untouched, so
 * the test can still ask the admin API what happened.
 *
 * Settings, from the environment, read once:
 *   FAULTFD_SEED=N          seed of the per-thread generators (default 1)
 *   FAULTFD_SHORT=P         a read or write moves fewer bytes (default 0.3)
 *   FAULTFD_EAGAIN=P        -1/EAGAIN, nothing moved (default 0.1)
 *   FAULTFD_EINTR=P         -1/EINTR, nothing moved (default 0.05)
 *   FAULTFD_RESET=P         shutdown(SHUT_RDWR), then -1/ECONNRESET (default 0.0005)
 *   FAULTFD_RESET_UNIX=P, FAULTFD_RESET_INET=P  the same for one side only
 *                           (a reset on the SSH side ends a whole session)
 *   FAULTFD_UNIX_PATH=PATH  the Unix listener whose connections are faulted
 *   FAULTFD_INET=0          leave TCP sockets alone (default 1)
 * At exit one line on stderr counts the calls seen and the faults injected
 * per side ("faultfd: ... unix: calls=... inet: calls=..."), unless no call
 * reached a faulted socket; each reset is logged as it happens.
 *
 * A shim has no owner object to hang state on: the next symbols, the
 * settings and the counters are process-wide by nature. Faults leave the
 * kernel's state alone (EAGAIN and EINTR move no byte; a short transfer
 * only asks for fewer), so level-triggered epoll reports the socket again
 * and a correct relay loses nothing. Each side has its own sequence of
 * decisions, fixed by the seed: the n-th call on a side always meets the
 * same one; which call is the n-th still depends on timing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef enum Side {
        SIDE_NONE, /* not a socket we fault */
        SIDE_UNIX,
        SIDE_INET,
        _SIDE_MAX,
} Side;

typedef enum Counter {
        COUNT_CALLS,
        COUNT_SHORT,
        COUNT_EAGAIN,
        COUNT_EINTR,
        COUNT_RESET,
        _COUNT_MAX,
} Counter;

static const char *const side_names[_SIDE_MAX] = { "none", "unix", "inet" };
static const char *const counter_names[_COUNT_MAX] = { "calls", "short", "eagain", "eintr", "reset" };

static struct {
        unsigned long long seed;
        double p_short, p_eagain, p_eintr;
        double p_reset[_SIDE_MAX];
        char unix_path[sizeof(((struct sockaddr_un *) NULL)->sun_path) + 1];
        bool inet;
} settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static atomic_ulong counters[_SIDE_MAX][_COUNT_MAX];
static atomic_uint threads_seen;
static _Thread_local uint64_t rng_state[_SIDE_MAX];

/* --- the next definitions (libc's, or a sanitizer's in front of it) ---------- */

/* Looked up on first use, not in a constructor: a library's constructor may
 * read or write before ours has run. */
#define NEXT(name)                                                              \
        ({                                                                      \
                static __typeof__(&name) next_;                                 \
                __typeof__(&name) f_ = __atomic_load_n(&next_, __ATOMIC_RELAXED); \
                if (!f_) {                                                      \
                        f_ = (__typeof__(&name)) dlsym(RTLD_NEXT, #name);      \
                        if (!f_)                                                \
                                next_missing(#name);                            \
                        __atomic_store_n(&next_, f_, __ATOMIC_RELAXED);         \
                }                                                               \
                f_;                                                             \
        })

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

__attribute__((noreturn)) static void next_missing(const char *name) {
        say("faultfd: no next definition of %s(): %s\n", name, dlerror() ?: "?");
        abort();
}

/* One line on stderr in one write(2), past our own write(). */
static void say(const char *fmt, ...) {
        char line[512];
        va_list ap;
        int n, saved = errno;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n > 0)
                (void) !NEXT(write)(STDERR_FILENO, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1);
        errno = saved;
}

/* --- settings ------------------------------------------------------------- */

static double env_probability(const char *name, double dflt) {
        const char *v = getenv(name);
        char *end;
        double p;

        if (!v || !*v)
                return dflt;
        errno = 0;
        p = strtod(v, &end);
        if (errno != 0 || *end || !(p >= 0.0 && p <= 1.0)) {
                say("faultfd: %s=%s is not a probability in [0, 1]\n", name, v);
                abort();
        }
        return p;
}

static void settings_load(void) {
        const char *v;
        double p;

        v = getenv("FAULTFD_SEED");
        settings.seed = v && *v ? strtoull(v, NULL, 0) : 1;
        settings.p_short = env_probability("FAULTFD_SHORT", 0.3);
        settings.p_eagain = env_probability("FAULTFD_EAGAIN", 0.1);
        settings.p_eintr = env_probability("FAULTFD_EINTR", 0.05);
        p = env_probability("FAULTFD_RESET", 0.0005);
        settings.p_reset[SIDE_UNIX] = env_probability("FAULTFD_RESET_UNIX", p);
        settings.p_reset[SIDE_INET] = env_probability("FAULTFD_RESET_INET", p);
        for (Side s = SIDE_UNIX; s < _SIDE_MAX; s++)
                if (settings.p_short + settings.p_eagain + settings.p_eintr + settings.p_reset[s] > 1.0) {
                        say("faultfd: the probabilities add up to more than 1\n");
                        abort();
                }
        v = getenv("FAULTFD_UNIX_PATH");
        if (v && strlen(v) >= sizeof(settings.unix_path) - 1) {
                say("faultfd: FAULTFD_UNIX_PATH is longer than a socket path can be\n");
                abort();
        }
        snprintf(settings.unix_path, sizeof(settings.unix_path), "%s", v ?: "");
        v = getenv("FAULTFD_INET");
        settings.inet = !v || strcmp(v, "0") != 0;
}

static void settings_ensure(void) {
        (void) pthread_once(&settings_once, settings_load);
}

/* --- randomness: xorshift64* per thread and side, seeded from the seed -----
 * One sequence per side: the n-th call on the SSH side meets the same
 * decision however the front door's calls interleave with it. */

static uint64_t splitmix64(uint64_t x) {
        x += 0x9E3779B97F4A7C15ULL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        return x ^ (x >> 31);
}

static uint64_t rng_next(Side side) {
        uint64_t *x = &rng_state[side];

        if (*x == 0) {
                /* the first thread to fault (the event loop) gets thread
                 * index 0 */
                static _Thread_local unsigned thread_index;
                static _Thread_local bool indexed;
                if (!indexed) {
                        thread_index = atomic_fetch_add(&threads_seen, 1);
                        indexed = true;
                }
                *x = splitmix64(settings.seed ^ ((uint64_t) thread_index << 32 | (uint64_t) side)) ?: 1;
        }
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        return *x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static double rng_unit(Side side) {
        return (double) (rng_next(side) >> 11) * 0x1.0p-53;
}

/* Uniform in [1, n], n >= 1. */
static size_t rng_between_1_and(Side side, size_t n) {
        return 1 + (size_t) (rng_next(side) % n);
}

/* --- which sockets ---------------------------------------------------------- */

static Side fd_side(int fd) {
        struct sockaddr_storage ss;
        socklen_t len;
        struct stat st;
        int type, saved = errno;
        Side side = SIDE_NONE;

        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                goto out;
        len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                goto out;
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                goto out;
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                if (settings.inet)
                        side = SIDE_INET;
        } else if (ss.ss_family == AF_UNIX && settings.unix_path[0]) {
                /* an accepted Unix socket reports the listener's path */
                const struct sockaddr_un *un = (const struct sockaddr_un *) &ss;
                size_t off = offsetof(struct sockaddr_un, sun_path);
                size_t n = len > off ? strnlen(un->sun_path, len - off) : 0;
                if (n == strlen(settings.unix_path) && memcmp(un->sun_path, settings.unix_path, n) == 0)
                        side = SIDE_UNIX;
        }
out:
        errno = saved;
        return side;
}

static bool fd_nonblocking(int fd, int flags) {
        int saved = errno, fl;

        if (flags & MSG_DONTWAIT)
                return true;
        fl = fcntl(fd, F_GETFL);
        errno = saved;
        return fl >= 0 && (fl & O_NONBLOCK);
}

/* --- the decision ------------------------------------------------------------ */

/* Decide the fate of one transfer of *len bytes on fd. Returns 0 to call
 * through with *len (perhaps smaller), or -1 with errno set: the fault is the
 * call's result. 'flags' are the send/recv flags (0 for read/write). */
static int fault_transfer(const char *call, int fd, int flags, size_t *len) {
        Side side;
        double u;

        settings_ensure();
        if (*len == 0 || (side = fd_side(fd)) == SIDE_NONE)
                return 0;
        atomic_fetch_add(&counters[side][COUNT_CALLS], 1);

        u = rng_unit(side);
        if ((u -= settings.p_reset[side]) < 0) {
                /* both directions die, as under a real reset: the next read
                 * sees EOF, the peer sees the connection go */
                (void) shutdown(fd, SHUT_RDWR);
                atomic_fetch_add(&counters[side][COUNT_RESET], 1);
                say("faultfd: reset %s fd %d in %s()\n", side_names[side], fd, call);
                errno = ECONNRESET;
                return -1;
        }
        if ((u -= settings.p_eintr) < 0) {
                atomic_fetch_add(&counters[side][COUNT_EINTR], 1);
                errno = EINTR;
                return -1;
        }
        if ((u -= settings.p_eagain) < 0) {
                /* a blocking socket never says EAGAIN: no fault there */
                if (!fd_nonblocking(fd, flags))
                        return 0;
                atomic_fetch_add(&counters[side][COUNT_EAGAIN], 1);
                errno = EAGAIN;
                return -1;
        }
        if ((u -= settings.p_short) < 0 && *len > 1) {
                /* half the short ones very short: packet and header parsers
                 * must resume after a byte or two */
                size_t cap = rng_next(side) & 1 ? *len : (*len < 8 ? *len : 8);
                size_t n = rng_between_1_and(side, cap);
                if (n < *len) {
                        atomic_fetch_add(&counters[side][COUNT_SHORT], 1);
                        *len = n;
                }
        }
        return 0;
}

/* accept: EINTR and EAGAIN only; the connection stays in the backlog. */
static int fault_accept(int fd) {
        Side side;
        double u;

        settings_ensure();
        if ((side = fd_side(fd)) == SIDE_NONE)
                return 0;
        atomic_fetch_add(&counters[side][COUNT_CALLS], 1);
        u = rng_unit(side);
        if ((u -= settings.p_eintr) < 0) {
                atomic_fetch_add(&counters[side][COUNT_EINTR], 1);
                errno = EINTR;
                return -1;
        }
        if ((u -= settings.p_eagain) < 0 && fd_nonblocking(fd, 0)) {
                atomic_fetch_add(&counters[side][COUNT_EAGAIN], 1);
                errno = EAGAIN;
                return -1;
        }
        return 0;
}

static size_t iov_total(const struct iovec *iov, int cnt) {
        size_t t = 0;

        for (int i = 0; i < cnt; i++)
                t += iov[i].iov_len;
        return t;
}

/* The first 'limit' bytes of iov[] in out[] (room for cnt entries);
 * returns the number of entries used. */
static int iov_cut(const struct iovec *iov, int cnt, size_t limit, struct iovec *out) {
        int k = 0;

        for (int i = 0; i < cnt && limit > 0; i++) {
                out[k] = iov[i];
                if (out[k].iov_len > limit)
                        out[k].iov_len = limit;
                limit -= out[k].iov_len;
                k++;
        }
        return k;
}

/* --- the interposed calls ------------------------------------------------------ */

EXPORT ssize_t read(int fd, void *buf, size_t len) {
        if (fault_transfer("read", fd, 0, &len) < 0)
                return -1;
        return NEXT(read)(fd, buf, len);
}

EXPORT ssize_t write(int fd, const void *buf, size_t len) {
        if (fault_transfer("write", fd, 0, &len) < 0)
                return -1;
        return NEXT(write)(fd, buf, len);
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags) {
        if (fault_transfer("recv", fd, flags, &len) < 0)
                return -1;
        return NEXT(recv)(fd, buf, len, flags);
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags) {
        if (fault_transfer("send", fd, flags, &len) < 0)
                return -1;
        return NEXT(send)(fd, buf, len, flags);
}

EXPORT ssize_t recvfrom(int fd, void *restrict buf, size_t len, int flags, struct sockaddr *restrict addr,
                        socklen_t *restrict addrlen) {
        if (fault_transfer("recvfrom", fd, flags, &len) < 0)
                return -1;
        return NEXT(recvfrom)(fd, buf, len, flags, addr, addrlen);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                      socklen_t addrlen) {
        if (fault_transfer("sendto", fd, flags, &len) < 0)
                return -1;
        return NEXT(sendto)(fd, buf, len, flags, addr, addrlen);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt) {
        size_t total, len;

        if (cnt <= 0 || cnt > IOV_MAX)
                return NEXT(readv)(fd, iov, cnt);
        total = len = iov_total(iov, cnt);
        if (fault_transfer("readv", fd, 0, &len) < 0)
                return -1;
        if (len < total) {
                struct iovec cut[IOV_MAX];
                return NEXT(readv)(fd, cut, iov_cut(iov, cnt, len, cut));
        }
        return NEXT(readv)(fd, iov, cnt);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt) {
        size_t total, len;

        if (cnt <= 0 || cnt > IOV_MAX)
                return NEXT(writev)(fd, iov, cnt);
        total = len = iov_total(iov, cnt);
        if (fault_transfer("writev", fd, 0, &len) < 0)
                return -1;
        if (len < total) {
                struct iovec cut[IOV_MAX];
                return NEXT(writev)(fd, cut, iov_cut(iov, cnt, len, cut));
        }
        return NEXT(writev)(fd, iov, cnt);
}

/* recvmsg/sendmsg: the data is cut, never the ancillary part. */
static ssize_t msg_call(const char *call, ssize_t (*next)(int, struct msghdr *, int), int fd,
                        struct msghdr *msg, int flags) {
        size_t total, len;
        int cnt = (int) msg->msg_iovlen;

        if (cnt <= 0 || cnt > IOV_MAX)
                return next(fd, msg, flags);
        total = len = iov_total(msg->msg_iov, cnt);
        if (fault_transfer(call, fd, flags, &len) < 0)
                return -1;
        if (len < total) {
                struct iovec cut[IOV_MAX];
                struct msghdr m = *msg;
                ssize_t n;

                m.msg_iov = cut;
                m.msg_iovlen = (size_t) iov_cut(msg->msg_iov, cnt, len, cut);
                n = next(fd, &m, flags);
                msg->msg_namelen = m.msg_namelen;
                msg->msg_controllen = m.msg_controllen;
                msg->msg_flags = m.msg_flags;
                return n;
        }
        return next(fd, msg, flags);
}

static ssize_t next_recvmsg(int fd, struct msghdr *msg, int flags) {
        return NEXT(recvmsg)(fd, msg, flags);
}

static ssize_t next_sendmsg(int fd, struct msghdr *msg, int flags) {
        return NEXT(sendmsg)(fd, msg, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
        return msg_call("recvmsg", next_recvmsg, fd, msg, flags);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
        /* msg_call writes back only on a cut, into its own copy's fields */
        struct msghdr m = *msg;
        return msg_call("sendmsg", next_sendmsg, fd, &m, flags);
}

EXPORT int accept(int fd, struct sockaddr *restrict addr, socklen_t *restrict addrlen) {
        if (fault_accept(fd) < 0)
                return -1;
        return NEXT(accept)(fd, addr, addrlen);
}

EXPORT int accept4(int fd, struct sockaddr *restrict addr, socklen_t *restrict addrlen, int flags) {
        if (fault_accept(fd) < 0)
                return -1;
        return NEXT(accept4)(fd, addr, addrlen, flags);
}

/* _FORTIFY_SOURCE turns calls with a buffer of known size into these. */
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *restrict buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *restrict addr, socklen_t *restrict addrlen);

EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) {
        if (len > buflen) /* the check's own failure path */
                return NEXT(__read_chk)(fd, buf, len, buflen);
        return read(fd, buf, len);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
        if (len > buflen)
                return NEXT(__recv_chk)(fd, buf, len, buflen, flags);
        return recv(fd, buf, len, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *restrict buf, size_t len, size_t buflen, int flags,
                              struct sockaddr *restrict addr, socklen_t *restrict addrlen) {
        if (len > buflen)
                return NEXT(__recvfrom_chk)(fd, buf, len, buflen, flags, addr, addrlen);
        return recvfrom(fd, buf, len, flags, addr, addrlen);
}

/* --- the report ------------------------------------------------------------------ */

__attribute__((destructor)) static void faultfd_report(void) {
        char text[400];
        size_t k = 0;
        unsigned long calls = 0;

        /* silent in the processes that never touched a faulted socket */
        for (Side s = SIDE_UNIX; s < _SIDE_MAX; s++)
                calls += atomic_load(&counters[s][COUNT_CALLS]);
        if (calls == 0)
                return;
        for (Side s = SIDE_UNIX; s < _SIDE_MAX; s++) {
                k += (size_t) snprintf(text + k, sizeof(text) - k, " %s:", side_names[s]);
                for (Counter c = 0; c < _COUNT_MAX && k < sizeof(text); c++)
                        k += (size_t) snprintf(text + k, sizeof(text) - k, " %s=%lu", counter_names[c],
                                               atomic_load(&counters[s][c]));
                if (k >= sizeof(text))
                        break;
        }
        say("faultfd: pid=%d seed=%llu%s\n", (int) getpid(), settings.seed, text);
}
