/* sshtund: options, configuration check, logging setup, then the daemon.
 * It never forks: systemd or start-stop-daemon handle the background. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf.h"
#include "daemon.h"
#include "identity.h"
#include "log.h"
#include "macro.h"
#include "session.h"

#define EXIT_USAGE 64
#define EXIT_CONFIG 78

static void usage(FILE *f) {
        fprintf(f,
                "Usage: sshtund [-c FILE] [-t | -T] [-d] [--pidfile FILE] [--version]\n"
                "\n"
                "SSH-tunnel manager for Kubernetes control planes: keeps SSH sessions to\n"
                "every node and serves HTTP CONNECT on a local socket.\n"
                "\n"
                "  -c, --config FILE   configuration file (default %s)\n"
                "  -t, --test          check the configuration as start would, bind and dial\n"
                "                      nothing, and exit (0 valid, 78 not)\n"
                "  -T, --print-config  check it, print every key with its value (defaults\n"
                "                      filled in) and exit\n"
                "  -d, --debug         debug logging to stderr\n"
                "      --pidfile FILE  write the process id to FILE\n"
                "  -h, --help          this text\n"
                "      --version       print the version\n",
                CONFIG_DEFAULT_PATH);
}

/* Every stream costs two descriptors and the default soft limit is 1024:
 * take the hard limit (systemd's LimitNOFILE sets it), as epoll allows. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Cannot raise RLIMIT_NOFILE: %m");
}

/* Become 'user' for good: supplementary groups, gid, uid, then check that
 * none of root's can come back. */
static int drop_privileges(Daemon *d, const char *user) {
        struct passwd *pw;
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid, groups[2];
        int n;

        errno = 0;
        pw = getpwnam(user);
        if (!pw)
                return log_error_errno(errno ? errno : ENOENT, "user: cannot find user \"%s\": %m", user);
        if (geteuid() != 0) {
                if (geteuid() == pw->pw_uid)
                        return 0; /* already there (systemd's User=) */
                return log_error_errno(EPERM, "user: cannot switch to \"%s\": not running as root", user);
        }

        /* the sockets we created become the user's, so it can remove them */
        daemon_chown_sockets(d, pw->pw_uid);

        if (setgroups(1, &pw->pw_gid) < 0)
                return log_error_errno(errno, "user: setgroups: %m");
        if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0)
                return log_error_errno(errno, "user: setresgid(%u): %m", (unsigned) pw->pw_gid);
        if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                return log_error_errno(errno, "user: setresuid(%u): %m", (unsigned) pw->pw_uid);

        /* verified, as OpenSSH's permanently_set_uid() does */
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return log_error_errno(errno, "user: cannot read back the ids: %m");
        n = getgroups(ELEMENTSOF(groups), groups);
        if (ruid != pw->pw_uid || euid != pw->pw_uid || suid != pw->pw_uid || rgid != pw->pw_gid ||
            egid != pw->pw_gid || sgid != pw->pw_gid || n != 1 || groups[0] != pw->pw_gid)
                return log_error_errno(EPERM, "user: the switch to \"%s\" did not take", user);
        if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
                return log_error_errno(EPERM, "user: root privileges could be regained after the switch");
        log_info("Running as user %s (uid %u, gid %u)", user, (unsigned) pw->pw_uid, (unsigned) pw->pw_gid);
        return 0;
}

static int write_pidfile(const char *path) {
        char buf[32];
        int fd, n;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        if (write(fd, buf, (size_t) n) != n) {
                int r = -errno;
                close(fd);
                return r ? r : -EIO;
        }
        close(fd);
        return 0;
}

int main(int argc, char *argv[]) {
        enum { OPT_PIDFILE = 256, OPT_VERSION };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "test", no_argument, NULL, 't' },
                { "print-config", no_argument, NULL, 'T' },
                { "debug", no_argument, NULL, 'd' },
                { "pidfile", required_argument, NULL, OPT_PIDFILE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        const char *config_path = CONFIG_DEFAULT_PATH, *pidfile = NULL;
        bool test = false, print = false, debug = false;
        _cleanup_free_ char *error = NULL;
        Config *config = NULL;
        Identity *identity = NULL;
        Daemon *d = NULL;
        int c, r, ret;

        while ((c = getopt_long(argc, argv, "c:tTdh", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 't':
                        test = true;
                        break;
                case 'T':
                        print = true;
                        break;
                case 'd':
                        debug = true;
                        break;
                case OPT_PIDFILE:
                        pidfile = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        printf("sshtund %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "sshtund: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return EXIT_USAGE;
        }

        /* before any thread (the resolver's) exists */
        if (session_global_init() < 0) {
                fprintf(stderr, "sshtund: cannot initialise libssh2\n");
                return 1;
        }

        /* the same checks for -t, -T and the start: what fails here fails
         * before anything is bound or dialled, with exit status 78 */
        r = config_load_for_start(config_path, &config, &error);
        if (r == -ENOMEM) {
                fprintf(stderr, "sshtund: out of memory\n");
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "%s\n", error ? error : "sshtund: cannot load the configuration");
                return EXIT_CONFIG;
        }
        if (print) {
                r = config_print(config, stdout);
                config_free(config);
                if (r < 0) {
                        fprintf(stderr, "sshtund: cannot write the configuration: %s\n", strerror(-r));
                        return 1;
                }
                return 0;
        }
        if (test) {
                printf("%s: configuration valid (%zu nodes)\n", config_path, config->n_nodes);
                config_free(config);
                return 0;
        }

        if (debug)
                log_setup(LOG_TARGET_STDERR, LOG_DEBUG);
        else
                log_setup(config->log.target, config->log.level);

        raise_fd_limit();

        /* checked above; read again to keep (a file changed in between is
         * still the file's fault) */
        free(error);
        error = NULL;
        r = identity_load(config->ssh.identity, &identity, &error);
        if (r < 0) {
                log_error("%s: ssh.identity: %s: %s", config_path, config->ssh.identity, strna(error));
                config_free(config);
                return r == -ENOMEM ? 1 : EXIT_CONFIG;
        }
        /* refused above when it guards root or another account */
        if (identity_is_world_readable(identity))
                log_warning("ssh.identity %s is readable by everyone: chmod 0600", config->ssh.identity);

        r = daemon_new(config, identity, &d);
        if (r < 0) {
                log_error_errno(r, "Cannot set up: %m");
                config_free(config);
                identity_free(identity);
                return 1;
        }
        daemon_set_log_override(d, debug);
        r = daemon_start(d);
        if (r < 0) {
                daemon_free(d);
                return 1;
        }
        /* everything that needs root is done: sockets bound, key read */
        if (daemon_config(d)->user) {
                r = drop_privileges(d, daemon_config(d)->user);
                if (r < 0) {
                        daemon_free(d);
                        return 1;
                }
        }
        if (pidfile) {
                r = write_pidfile(pidfile);
                if (r < 0)
                        log_warning_errno(r, "Cannot write %s: %m", pidfile);
        }

        r = daemon_run(d);
        ret = r < 0 ? 1 : 0;
        daemon_free(d);
        if (pidfile)
                (void) unlink(pidfile);
        session_global_done();
        log_info("Stopped");
        return ret;
}
