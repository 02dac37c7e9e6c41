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
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, len) == 0)
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

void listen_socket_unlink(const ListenAddress *a) {
        if (a->kind == LISTEN_UNIX && a->path)
                (void) unlink(a->path);
}
