/* What start would find wrong on this host with what the file names: the
 * accounts, the identity's permissions, the known_hosts files, the TLS
 * files, the directories of the Unix sockets. Run by -t and start alike
 * (config_load_for_start), before anything is bound, created or dialled. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-internal.h"
#include "known-hosts.h"
#include "macro.h"
#include "tls.h"

static const config_setting_t *lookup(const Parser *p, const char *key) {
        return config_lookup(p->lc, key);
}

/* The error, at the setting of 'key' (the file, if it was left out). */
#define fail(p, key, ...) parser_fail_key((p), lookup((p), (key)), (key), __VA_ARGS__)

/* getpwnam() or getgrnam() found no 'what' called 'name' (errno set to 0
 * before): these errno values, or none, are how getpw*(3) say "no such
 * entry"; the others are a failed lookup. */
static int fail_lookup(Parser *p, const char *key, const char *what, const char *name) {
        int e = errno;

        if (e == ENOMEM)
                return -ENOMEM;
        if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
                return fail(p, key, "cannot look up %s \"%s\": %s", what, name, strerror(e));
        return fail(p, key, "no such %s \"%s\"", what, name);
}

/* The account start switches to, and whether it can switch at all:
 * as root it can, as that account it has nothing to do, as anyone else it
 * cannot. */
static int check_user(Parser *p) {
        const char *name = p->config->user;
        struct passwd *pw;

        if (!name)
                return 0;
        errno = 0;
        pw = getpwnam(name);
        if (!pw)
                return fail_lookup(p, "user", "user", name);
        if (geteuid() != 0 && geteuid() != pw->pw_uid)
                return fail(p, "user", "cannot switch to \"%s\": not running as root", name);
        return 0;
}

static int check_group(Parser *p, const char *key, const char *name) {
        if (!name)
                return 0;
        errno = 0;
        if (getgrnam(name))
                return 0;
        return fail_lookup(p, key, "group", name);
}

/* Parsed already (config.c); here: who else may change it or read it. A
 * key anyone may read is refused where it guards root or another account:
 * started as root, or with `user` set (which is for a start as root). */
static int check_identity_mode(Parser *p) {
        const char *path = p->config->ssh.identity, *key = "ssh.identity";
        const char *as = geteuid() == 0 ? "sshtund runs as root" : "sshtund is to start as root (user is set)";
        struct stat st;

        if (stat(path, &st) < 0)
                return fail(p, key, "%s: %s", path, strerror(errno));
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return fail(p, key, "%s is writable by %s (mode %04o): anyone who can change it can "
                                       "replace the key (chmod go-w)",
                                       path, st.st_mode & S_IWOTH ? "everyone" : "its group",
                                       (unsigned) (st.st_mode & 07777));
        if ((st.st_mode & S_IROTH) && (geteuid() == 0 || p->config->user))
                return fail(p, key, "%s is readable by everyone (mode %04o), and %s: chmod 0600, or 0640 "
                                       "with the group of the user sshtund runs as",
                                       path, (unsigned) (st.st_mode & 07777), as);
        return 0;
}

/* Read and parsed as start reads them: a missing file is empty, lines that
 * do not parse are counted (and logged at start), a file that exists but
 * cannot be read is an error. */
static int check_known_hosts(Parser *p, const char *key, const char *path) {
        KnownHosts *kh = NULL;
        int r;

        if (!path)
                return 0;
        r = known_hosts_load(path, &kh);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(p, key, "%s: %s", path, strerror(-r));
        known_hosts_free(kh);
        return 0;
}

static int check_ca_file(Parser *p, const char *key, const char *path) {
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!path)
                return 0;
        r = tls_check_ca_file(path, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(p, key, "%s: %s", path, reason ?: strerror(-r));
        return 0;
}

static int check_key_pair(Parser *p) {
        const ConfigKonnectivity *k = &p->config->konnectivity;
        _cleanup_free_ char *reason = NULL, *key = NULL;
        TlsFile which;
        int r;

        if (!k->cert_file || !k->key_file)
                return 0;
        r = tls_check_key_pair(k->cert_file, k->key_file, &which, &reason);
        if (r == -ENOMEM)
                return r;
        if (r >= 0)
                return 0;
        if (asprintf(&key, "konnectivity.%s", tls_file_to_string(which)) < 0)
                return -ENOMEM;
        return fail(p, key, "%s: %s", which == TLS_FILE_CERT ? k->cert_file : k->key_file,
                    reason ?: strerror(-r));
}

/* Start binds a Unix socket at 'path' after making its missing directories
 * (mode 0755): so the nearest of them that exists must be a directory this
 * process can create entries in. Something other than a socket at 'path'
 * is never replaced. A socket that is there already may be the service
 * manager's, which start adopts without writing to the directory: it
 * passes (one left by a crash and not removable fails at start, exit 1).
 * 's' names the setting ('key' with its index). */
static int check_socket_path(Parser *p, const config_setting_t *s, const char *key, const char *path) {
        char dir[PATH_MAX];
        struct stat st;

        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return parser_fail_key(p, s, key, "%s exists and is not a socket", path);
                return 0;
        }
        if (strlen(path) >= sizeof(dir))
                return parser_fail_key(p, s, key, "%s: %s", path, strerror(ENAMETOOLONG));
        strcpy(dir, path);
        for (;;) {
                char *slash = strrchr(dir, '/');

                if (!slash)
                        return 0; /* not absolute: the parser refuses it */
                if (slash == dir)
                        slash[1] = 0; /* "/" */
                else
                        *slash = 0;
                if (stat(dir, &st) == 0) {
                        if (!S_ISDIR(st.st_mode))
                                return parser_fail_key(p, s, key, "cannot create %s: %s is not a directory", path,
                                                       dir);
                        if (access(dir, W_OK | X_OK) < 0)
                                return parser_fail_key(p, s, key, "cannot create %s in %s: %s", path, dir,
                                                       strerror(errno));
                        return 0;
                }
                /* missing, or under a file: the walk up finds which */
                if (errno != ENOENT && errno != ENOTDIR)
                        return parser_fail_key(p, s, key, "cannot create %s: %s: %s", path, dir, strerror(errno));
                if (streq(dir, "/"))
                        return parser_fail_key(p, s, key, "cannot create %s: / is missing", path);
        }
}

static int check_listen_path(Parser *p, const char *list, size_t i, const char *member, const ListenAddress *a) {
        const config_setting_t *s = lookup(p, list);
        _cleanup_free_ char *key = NULL;

        if (a->kind != LISTEN_UNIX)
                return 0;
        if (s)
                s = config_setting_get_elem(s, (unsigned) i);
        if (s && member)
                s = config_setting_get_member(s, member) ?: s;
        if (asprintf(&key, "%s[%zu]%s%s", list, i, member ? "." : "", member ?: "") < 0)
                return -ENOMEM;
        return check_socket_path(p, s, key, a->path);
}

static int check_sockets(Parser *p) {
        const Config *c = p->config;
        int r;

        for (size_t i = 0; i < c->proxy.n_listen; i++) {
                r = check_listen_path(p, "proxy.listen", i, NULL, &c->proxy.listen[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_forwards; i++) {
                r = check_listen_path(p, "forwards", i, "listen", &c->forwards[i].listen);
                if (r < 0)
                        return r;
        }
        r = check_socket_path(p, lookup(p, "admin.socket"), "admin.socket", c->admin.socket);
        if (r < 0)
                return r;
        if (c->admin.readonly_socket)
                return check_socket_path(p, lookup(p, "admin.readonly_socket"), "admin.readonly_socket",
                                         c->admin.readonly_socket);
        return 0;
}

int parser_check_host(Parser *p) {
        const Config *c = p->config;
        int r;

        r = check_user(p);
        if (r < 0)
                return r;
        r = check_group(p, "proxy.socket_group", c->proxy.socket_group);
        if (r < 0)
                return r;
        r = check_group(p, "admin.readonly_socket_group", c->admin.readonly_socket_group);
        if (r < 0)
                return r;
        r = check_identity_mode(p);
        if (r < 0)
                return r;
        r = check_known_hosts(p, "ssh.known_hosts", c->ssh.known_hosts);
        if (r < 0)
                return r;
        r = check_known_hosts(p, "ssh.learned_hosts", c->ssh.learned_hosts);
        if (r < 0)
                return r;
        r = check_ca_file(p, "probe.ca_file", c->probe.ca_file);
        if (r < 0)
                return r;
        r = check_ca_file(p, "konnectivity.ca_file", c->konnectivity.ca_file);
        if (r < 0)
                return r;
        r = check_key_pair(p);
        if (r < 0)
                return r;
        return check_sockets(p);
}
