/* sshtunctl: the operator's client of the admin API. Owns the command line
 * (options, commands, help) and the actions: reconnect, drain, undrain, reload, hostkeys scan. */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "macro.h"
#include "sshtunctl-internal.h"
#include "table.h"

#define DEFAULT_SOCKET "/run/sshtund/admin.sock"
/* What the packaged configuration names admin.readonly_socket: a user of
 * the group sshtund-monitor gets the read-only view without -s. */
#define DEFAULT_READONLY_SOCKET "/run/sshtund/admin-readonly.sock"
#define CTL_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* --watch without SECONDS; and the bounds of SECONDS (watch(1) takes 0.1 s
 * at least; a day is more than anyone waits between two frames). */
#define WATCH_DEFAULT_USEC (2 * USEC_PER_SEC)
#define WATCH_MIN_SECONDS 0.1
#define WATCH_MAX_SECONDS 86400.0

/* ---- reconnect, drain, undrain ---------------------------------------------- */

static int cmd_node_action(const Ctl *ctl, const char *action, const char *name) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *target = NULL, *suffix = NULL, *shown = NULL;
        const char *state;
        json_int_t streams;
        int r;

        if (strlen(name) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: node name too long\n");
                return EXIT_USAGE;
        }
        if (asprintf(&suffix, "/%s", action) < 0) {
                suffix = NULL;
                return ctl_oom(ctl);
        }
        target = node_path(name, suffix);
        if (!target)
                return ctl_oom(ctl);
        r = ctl_request_json(ctl, "POST", target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        shown = table_escape(json_str(v, "name") ?: name);
        state = json_str(v, "state");
        streams = json_int(v, "streams");
        if (!shown)
                return ctl_oom(ctl);
        if (ctl->output == OUTPUT_NAME)
                printf("%s\n", shown);
        else if (streq(action, "drain")) {
                if (streq_ptr(state, "draining"))
                        printf("%s: draining, %" JSON_INTEGER_FORMAT " stream%s left\n", shown, streams,
                               plural(streams));
                else /* not up now: it takes no streams once it is */
                        printf("%s: draining (now %s), %" JSON_INTEGER_FORMAT " stream%s left\n", shown,
                               strna(state), streams, plural(streams));
        } else if (streq(action, "undrain"))
                printf("%s: undrained, now %s\n", shown, strna(state));
        else
                printf("%s: reconnecting, now %s\n", shown, strna(state));
        return 0;
}

/* ---- reload ---------------------------------------------------------------- */

static int cmd_reload(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        /* an invalid file comes back as an error reply: its message (FILE:LINE)
         * is printed and the exit status is 1 */
        r = ctl_request_json(ctl, "POST", "/v1/reload", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);
        printf("reloaded: %" JSON_INTEGER_FORMAT " node%s\n", json_int(v, "nodes_total"),
               plural(json_int(v, "nodes_total")));
        return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void help(void) {
        printf("Usage: sshtunctl [-s SOCKET] [-o table|json|wide|name] COMMAND [ARG]\n"
               "\n"
               "Commands:\n"
               "  status                 summary and the node table\n"
               "  nodes                  the node table\n"
               "  node NAME              every field of one node\n"
               "  check                  one line and exit status for monitoring (0 OK, 1 WARNING,\n"
               "                         2 CRITICAL, 3 UNKNOWN)\n"
               "  reconnect NAME         close the node's sessions and connect again now\n"
               "  drain NAME             no new streams through the node; open ones finish\n"
               "  undrain NAME           take new streams again\n"
               "  reload                 apply the edited configuration (exit 1, and why, if it\n"
               "                         does not load)\n"
               "  migration              the move to Konnectivity: route, upstream check and\n"
               "                         readiness per node; the final switch once all are moved\n"
               "  hostkeys scan TARGET...|--unknown|--all\n"
               "                         fetch the host keys of nodes (NODE, HOST or HOST:PORT; the\n"
               "                         nodes in hostkey-unknown; every node): known_hosts lines on\n"
               "                         stdout, NODE SHA256:... TYPE on stderr; writes nothing\n"
               "  hostkeys trust NODE SHA256:FP...\n"
               "  hostkeys trust --from FILE|-\n"
               "                         scan the node and record in ssh.learned_hosts the key whose\n"
               "                         fingerprint you obtained out of band; FILE has NODE SHA256:FP\n"
               "                         lines (as scan prints them); the node connects at once\n"
               "  hostkeys list [NODE]   the keys known_hosts and learned_hosts hold for each node\n"
               "  hostkeys forget NODE...\n"
               "                         remove the nodes' keys from ssh.learned_hosts and reconnect\n"
               "                         them (known_hosts and @revoked lines stay)\n"
               "\n"
               "Options:\n"
               "  -s, --socket SOCKET   admin socket (default $SSHTUND_ADMIN_SOCKET, then %s)\n"
               "  -o, --output FORMAT   table (default), wide, json, or name (node names, one a\n"
               "                        line)\n"
               "      --no-headers      tables without their header line\n"
               "  -w, --watch[=SECONDS] status, nodes: show it again every SECONDS (2), in place on\n"
               "                        a terminal, until Ctrl-C\n"
               "  -h, --help            show this help\n"
               "      --version         show the version\n",
               DEFAULT_SOCKET);
}

static int usage_error(const char *message, const char *arg) {
        fprintf(stderr, "sshtunctl: %s%s%s\nTry 'sshtunctl --help'.\n", message, arg ? ": " : "", arg ?: "");
        return EXIT_USAGE;
}

/* SECONDS for --watch: a number from 0.1 to 86400. */
static int parse_interval(const char *s, usec_t *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || *end || !isfinite(v) || v < WATCH_MIN_SECONDS || v > WATCH_MAX_SECONDS)
                return -EINVAL;
        *ret = (usec_t) (v * USEC_PER_SEC + 0.5);
        return 0;
}

/* Whether the word after "-w" is its SECONDS: no command is a number. */
static bool is_number(const char *s) {
        char *end;

        (void) strtod(s, &end);
        return end != s && !*end;
}

static bool want_color(void) {
        const char *term = getenv("TERM");

        return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !streq_ptr(term, "dumb");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_NO_HEADERS, ARG_UNKNOWN, ARG_ALL, ARG_FROM };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "output", required_argument, NULL, 'o' },
                { "no-headers", no_argument, NULL, ARG_NO_HEADERS },
                { "watch", optional_argument, NULL, 'w' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "unknown", no_argument, NULL, ARG_UNKNOWN },
                { "all", no_argument, NULL, ARG_ALL },
                { "from", required_argument, NULL, ARG_FROM },
                {},
        };
        Ctl ctl = { .output = OUTPUT_TABLE, .out = stdout, .err = stderr, .cancel_fd = -1 };
        HostkeysOptions hostkeys = {};
        usec_t watch = 0;
        const char *command;
        char **args;
        int c, r, n_args;

        ctl.socket = getenv("SSHTUND_ADMIN_SOCKET");
        if (!ctl.socket || !*ctl.socket) {
                ctl.socket = DEFAULT_SOCKET;
                ctl.readonly_socket = DEFAULT_READONLY_SOCKET;
        }

        while ((c = getopt_long(argc, argv, "s:o:w::h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        ctl.socket = optarg;
                        ctl.readonly_socket = NULL;
                        break;
                case 'o':
                        if (streq(optarg, "table"))
                                ctl.output = OUTPUT_TABLE;
                        else if (streq(optarg, "wide"))
                                ctl.output = OUTPUT_WIDE;
                        else if (streq(optarg, "json"))
                                ctl.output = OUTPUT_JSON;
                        else if (streq(optarg, "name"))
                                ctl.output = OUTPUT_NAME;
                        else
                                return usage_error("unknown output format", optarg);
                        break;
                case ARG_NO_HEADERS:
                        ctl.no_headers = true;
                        break;
                case ARG_UNKNOWN:
                        hostkeys.unknown = true;
                        break;
                case ARG_ALL:
                        hostkeys.all = true;
                        break;
                case ARG_FROM:
                        hostkeys.from = optarg;
                        break;
                case 'w': {
                        const char *seconds = optarg;

                        /* "-w 5" and "--watch 5" too, not only "-w5" and "--watch=5" */
                        if (!seconds && optind < argc && is_number(argv[optind]))
                                seconds = argv[optind++];
                        watch = WATCH_DEFAULT_USEC;
                        if (seconds && parse_interval(seconds, &watch) < 0)
                                return usage_error("--watch takes a number of seconds from 0.1 to 86400",
                                                   seconds);
                        break;
                }
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sshtunctl %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'sshtunctl --help'.\n");
                        return EXIT_USAGE;
                }

        if (optind >= argc)
                return usage_error("no command given", NULL);
        command = argv[optind];
        args = argv + optind + 1;
        n_args = argc - optind - 1;

        ctl.color = ctl.output != OUTPUT_JSON && want_color();
        ctl.timeout = CTL_TIMEOUT_USEC;
        ctl.deadline = now_usec(CLOCK_MONOTONIC) + ctl.timeout;

        if ((hostkeys.unknown || hostkeys.all || hostkeys.from) && !streq(command, "hostkeys"))
                return usage_error("--unknown, --all and --from are options of hostkeys", command);
        if (watch > 0 && !streq(command, "status") && !streq(command, "nodes"))
                return usage_error("--watch works with status and nodes only", command);
        if (ctl.output == OUTPUT_NAME &&
            (streq(command, "reload") || (streq(command, "hostkeys") && !(n_args > 0 && streq(args[0], "list")))))
                return usage_error("-o name lists nodes: not for this command", command);

        if (streq(command, "status") || streq(command, "nodes")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                if (watch > 0)
                        r = ctl_watch(&ctl, command, streq(command, "status") ? cmd_status : cmd_nodes, watch);
                else
                        r = streq(command, "status") ? cmd_status(&ctl) : cmd_nodes(&ctl);
        } else if (streq(command, "node")) {
                if (n_args != 1)
                        return usage_error("expected one node name", command);
                r = cmd_node(&ctl, args[0]);
        } else if (streq(command, "check")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                ctl.nagios = true;
                r = cmd_check(&ctl);
        } else if (streq(command, "reconnect") || streq(command, "drain") || streq(command, "undrain")) {
                if (n_args != 1)
                        return usage_error("expected one node name", command);
                r = cmd_node_action(&ctl, command, args[0]);
        } else if (streq(command, "migration")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = cmd_migration(&ctl);
        } else if (streq(command, "reload")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = cmd_reload(&ctl);
        } else if (streq(command, "hostkeys"))
                r = cmd_hostkeys(&ctl, args, n_args, &hostkeys);
        else
                return usage_error("unknown command", command);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "sshtunctl: failed to write the output: %m\n");
                return ctl.nagios ? EXIT_UNREACHABLE : EXIT_FAILURE;
        }
        return r;
}
