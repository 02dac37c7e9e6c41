/* Bench only: the floor for sshtund's CPU per byte. One blocking libssh2
 * session, one direct-tcpip channel, read N bytes and discard them. */

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>

/* The bench server's bulk protocol: 'D' and a big-endian byte count asks it
 * to send that many bytes (bench/bench.py, BULK_DOWN). */
#define REQUEST_DOWN 'D'
#define READ_BUFFER (256 * 1024)

static uint64_t cpu_ns(void) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return 0;
        return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
               (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t wall_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int tcp_connect(const char *host, const char *port) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
        int fd = -1;

        if (getaddrinfo(host, port, &hints, &res) != 0)
                return -1;
        for (ai = res; ai; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                if (fd < 0)
                        continue;
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        return fd;
}

static int fail(LIBSSH2_SESSION *s, const char *what) {
        char *msg = NULL;

        if (s)
                libssh2_session_last_error(s, &msg, NULL, 0);
        fprintf(stderr, "libssh2-read: %s failed%s%s\n", what, msg ? ": " : "", msg ? msg : "");
        return 1;
}

int main(int argc, char *argv[]) {
        LIBSSH2_SESSION *s;
        LIBSSH2_CHANNEL *ch;
        unsigned char req[9];
        uint64_t want, got = 0, c0, w0, c1, w1;
        char *buf;
        int fd, r;

        const char *cipher = argc > 8 ? argv[8] : "aes128-ctr", *mac = argc > 9 ? argv[9] : "hmac-sha2-256";

        if (argc < 8 || argc > 10) {
                fprintf(stderr, "usage: %s SSH_HOST SSH_PORT USER KEY TARGET_HOST TARGET_PORT BYTES [CIPHER [MAC]]\n",
                        argv[0]);
                return 64;
        }
        want = strtoull(argv[7], NULL, 10);
        buf = malloc(READ_BUFFER);
        if (!buf || libssh2_init(0) != 0)
                return fail(NULL, "init");

        fd = tcp_connect(argv[1], argv[2]);
        if (fd < 0)
                return fail(NULL, "connect");
        s = libssh2_session_init();
        if (!s)
                return fail(NULL, "session_init");
        libssh2_session_set_blocking(s, 1);
        /* The same algorithms the bench's sshd allows and sshtund negotiates. */
        libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, "ssh-ed25519");
        libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_CS, cipher);
        libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_SC, cipher);
        libssh2_session_method_pref(s, LIBSSH2_METHOD_MAC_CS, mac);
        libssh2_session_method_pref(s, LIBSSH2_METHOD_MAC_SC, mac);
        if (libssh2_session_handshake(s, fd) != 0)
                return fail(s, "handshake");
        if (libssh2_userauth_publickey_fromfile_ex(s, argv[3], (unsigned) strlen(argv[3]), NULL,
                                                   argv[4], NULL) != 0)
                return fail(s, "authentication");
        ch = libssh2_channel_direct_tcpip_ex(s, argv[5], atoi(argv[6]), "127.0.0.1", 0);
        if (!ch)
                return fail(s, "direct-tcpip");

        req[0] = REQUEST_DOWN;
        for (int i = 0; i < 8; i++)
                req[1 + i] = (unsigned char) (want >> (56 - 8 * i));

        c0 = cpu_ns();
        w0 = wall_ns();
        if (libssh2_channel_write(ch, (const char *) req, sizeof(req)) != (ssize_t) sizeof(req))
                return fail(s, "channel_write");
        while (got < want) {
                r = (int) libssh2_channel_read(ch, buf, READ_BUFFER);
                if (r < 0)
                        return fail(s, "channel_read");
                if (r == 0)
                        break;
                got += (uint64_t) r;
        }
        c1 = cpu_ns();
        w1 = wall_ns();
        if (got != want) {
                fprintf(stderr, "libssh2-read: EOF after %llu of %llu bytes\n",
                        (unsigned long long) got, (unsigned long long) want);
                return 1;
        }
        printf("bytes=%llu cpu_ns=%llu wall_ns=%llu\n", (unsigned long long) got,
               (unsigned long long) (c1 - c0), (unsigned long long) (w1 - w0));

        libssh2_channel_free(ch);
        libssh2_session_disconnect(s, "done");
        libssh2_session_free(s);
        close(fd);
        libssh2_exit();
        free(buf);
        return 0;
}
