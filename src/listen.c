/* Binding listeners. The only subtle part is the unix socket path: a stale
 * socket from a crashed run must be replaced, a live one must not. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "listen.h"
#include "macro.h"

static int mkdir_parent(const char *path) {
        char dir[PATH_MAX];
        char *slash;

        if (strlen(path) >= sizeof(dir))
                return -ENAMETOOLONG;
        strcpy(dir, path);
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = 0;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                if (errno == ENOENT) {
                        int r = mkdir_parent(dir);
                        if (r < 0)
                                return r;
                        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        return 0;
                }
                return -errno;
        }
        return 0;
}

/* -EADDRINUSE if something accepts on 'path', 0 if it is stale or absent. */
static int unix_socket_check_stale(const struct sockaddr_storage *sa, socklen_t len, const char *path) {
        struct stat st;
        _cleanup_close_ int fd = -1;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        /* non-blocking: a live socket whose backlog is full must not hold us */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, len) == 0)
                return -EADDRINUSE;
        if (errno == EAGAIN || errno == EINPROGRESS)
                return -EADDRINUSE;
        if (errno != ECONNREFUSED && errno != ENOENT)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int listen_socket_open(const ListenAddress *a, mode_t mode, gid_t gid, int backlog) {
        struct sockaddr_storage sa;
        _cleanup_close_ int fd = -1;
        int len, r, one = 1;

        len = listen_address_to_sockaddr(a, &sa);
        if (len < 0)
                return len;

        fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;

        if (a->kind == LISTEN_UNIX) {
                mode_t old;

                r = mkdir_parent(a->path);
                if (r < 0)
                        return r;
                r = unix_socket_check_stale(&sa, (socklen_t) len, a->path);
                if (r < 0)
                        return r;
                /* no window in which the socket is wider open than asked */
                old = umask(0777 & ~mode);
                r = bind(fd, (struct sockaddr *) &sa, (socklen_t) len);
                umask(old);
                if (r < 0)
                        return -errno;
                if (gid != (gid_t) -1 && chown(a->path, (uid_t) -1, gid) < 0) {
                        r = -errno;
                        (void) unlink(a->path);
                        return r;
                }
                if (chmod(a->path, mode) < 0) {
                        r = -errno;
                        (void) unlink(a->path);
                        return r;
                }
        } else {
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (sa.ss_family == AF_INET6)
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *) &sa, (socklen_t) len) < 0)
                        return -errno;
        }
        if (listen(fd, backlog) < 0) {
                r = -errno;
                if (a->kind == LISTEN_UNIX)
                        (void) unlink(a->path);
                return r;
        }
        return TAKE_FD(fd);
}

void listen_socket_unlink(const ListenAddress *a, dev_t dev, ino_t ino) {
        struct stat st;

        if (a->kind != LISTEN_UNIX || !a->path)
                return;
        if (lstat(a->path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
                (void) unlink(a->path);
}

struct ListenFds {
        int *fds;
        char **names;
        size_t n;
};

int listen_fds_new(ListenFds **ret) {
        ListenFds *l = calloc(1, sizeof(*l));
        char **names = NULL;
        int n;

        if (!l)
                return -ENOMEM;
        n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
                free(l);
                return n;
        }
        if (n > 0) {
                l->fds = calloc((size_t) n, sizeof(int));
                if (!l->fds) {
                        for (int i = 0; i < n; i++)
                                safe_close(SD_LISTEN_FDS_START + i);
                        strv_free(names);
                        free(l);
                        return -ENOMEM;
                }
                for (int i = 0; i < n; i++)
                        l->fds[i] = SD_LISTEN_FDS_START + i;
        }
        l->n = (size_t) n;
        l->names = names;
        *ret = l;
        return 0;
}

ListenFds *listen_fds_free(ListenFds *l, size_t *ret_unused) {
        size_t unused = 0;

        if (l) {
                for (size_t i = 0; i < l->n; i++)
                        if (l->fds[i] >= 0) {
                                safe_close(l->fds[i]);
                                unused++;
                        }
                free(l->fds);
                strv_free(l->names);
                free(l);
        }
        if (ret_unused)
                *ret_unused = unused;
        return NULL;
}

/* The address a passed socket is bound to, as a ListenAddress. */
static int fd_listen_address(int fd, ListenAddress *ret) {
        struct sockaddr_storage sa = {};
        socklen_t len = sizeof(sa);
        ListenAddress a = {};

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        if (sa.ss_family == AF_UNIX) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) &sa;
                size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path)
                                                                        : 0;
                /* abstract and unnamed sockets have no path to match */
                if (n == 0 || un->sun_path[0] == 0)
                        return -EINVAL;
                a.kind = LISTEN_UNIX;
                a.path = strndup(un->sun_path, n);
                if (!a.path)
                        return -ENOMEM;
        } else if (sa.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &sa;
                a.kind = LISTEN_TCP;
                a.ip.family = AF_INET;
                memcpy(a.ip.bytes, &in->sin_addr, 4);
                a.port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &sa;
                a.kind = LISTEN_TCP;
                a.ip.family = AF_INET6;
                memcpy(a.ip.bytes, &in6->sin6_addr, 16);
                a.port = ntohs(in6->sin6_port);
        } else
                return -EAFNOSUPPORT;
        *ret = a;
        return 0;
}

int listen_fds_take(ListenFds *l, const ListenAddress *a) {
        if (!l)
                return -ENOENT;
        for (size_t i = 0; i < l->n; i++) {
                ListenAddress b;
                bool same;

                if (l->fds[i] < 0 || fd_listen_address(l->fds[i], &b) < 0)
                        continue;
                same = listen_address_equal(a, &b);
                listen_address_done(&b);
                if (same)
                        return TAKE_FD(l->fds[i]);
        }
        return -ENOENT;
}

int listen_fds_take_named(ListenFds *l, const char *name, ListenAddress *ret_address) {
        if (!l || !l->names)
                return -ENOENT;
        for (size_t i = 0; i < l->n && l->names[i]; i++) {
                ListenAddress b;

                if (l->fds[i] < 0 || !streq(l->names[i], name))
                        continue;
                if (fd_listen_address(l->fds[i], &b) < 0)
                        continue;
                *ret_address = b;
                return TAKE_FD(l->fds[i]);
        }
        return -ENOENT;
}
