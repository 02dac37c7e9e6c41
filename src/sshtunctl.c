/* sshtunctl: the operator's client of the admin API. One HTTP/1.1 request per
 * view over admin.sock, all under one deadline; replies shown as tables or JSON. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "macro.h"
#include "table.h"

#define EXIT_USAGE 64
#define EXIT_UNREACHABLE 3
#define DEFAULT_SOCKET "/run/sshtund/admin.sock"
#define CTL_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define CTL_HEAD_MAX (64 * 1024)
#define CTL_BODY_MAX (16 * 1024 * 1024)
/* Node names in the request path; the daemon's request head limit is 8 KiB. */
#define CTL_NAME_MAX 1024

typedef enum Output {
        OUTPUT_TABLE,
        OUTPUT_WIDE,
        OUTPUT_JSON,
} Output;

typedef struct Ctl {
        const char *socket;
        Output output;
        bool color;
        usec_t deadline; /* CLOCK_MONOTONIC, for the whole command */
} Ctl;

typedef struct Reply {
        int status;
        char *data;       /* the whole reply as read */
        const char *body; /* into data */
        size_t body_len;
} Reply;

static void reply_done(Reply *r) {
        free(r->data);
        *r = (Reply) {};
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* ---- HTTP over the Unix socket -------------------------------------------- */

static int remaining_msec(const Ctl *ctl) {
        usec_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= ctl->deadline)
                return 0;
        return (int) ((ctl->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* Wait for 'events' until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(const Ctl *ctl, int fd, short events) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = remaining_msec(ctl), r;

                if (ms == 0)
                        return -ETIMEDOUT;
                r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

static int connect_socket(const Ctl *ctl, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(ctl->socket);
        _cleanup_close_ int fd = -1;
        int ms = remaining_msec(ctl);
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, ctl->socket, len);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A Unix connect() blocks only while the backlog is full, for as long
         * as the send timeout allows. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_all(const Ctl *ctl, int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        int r = wait_fd(ctl, fd, POLLOUT);
                        if (r < 0)
                                return r;
                        continue;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Find the end of the head in data[0..len): the offset after CRLFCRLF, or 0. */
static size_t head_end(const char *data, size_t len) {
        for (size_t i = 3; i < len; i++)
                if (data[i - 3] == '\r' && data[i - 2] == '\n' && data[i - 1] == '\r' && data[i] == '\n')
                        return i + 1;
        return 0;
}

/* Parse "HTTP/1.x DDD ..." and the Content-Length of a complete head.
 * *ret_length is -1 when the reply has none. -EBADMSG when malformed. */
static int parse_head(const char *data, size_t head_len, int *ret_status, int64_t *ret_length) {
        const char *p = data, *end = data + head_len;
        int64_t length = -1;
        int status;

        if (head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
                return -EBADMSG;
        for (int i = 9; i < 12; i++)
                if (p[i] < '0' || p[i] > '9')
                        return -EBADMSG;
        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (status < 100)
                return -EBADMSG;

        p = memchr(p, '\n', (size_t) (end - p));
        if (!p)
                return -EBADMSG;
        for (p++; p < end && *p != '\r';) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                static const char cl[] = "content-length:";

                if (!eol)
                        return -EBADMSG;
                if ((size_t) (eol - p) > strlen(cl) && strncasecmp(p, cl, strlen(cl)) == 0) {
                        const char *v = p + strlen(cl);
                        int64_t n = 0;
                        bool digits = false;

                        while (*v == ' ' || *v == '\t')
                                v++;
                        for (; *v >= '0' && *v <= '9'; v++) {
                                if (n > (CTL_BODY_MAX + 1) / 10)
                                        n = CTL_BODY_MAX + 1; /* too large; keep it so */
                                else
                                        n = n * 10 + (*v - '0');
                                digits = true;
                        }
                        while (*v == ' ' || *v == '\t')
                                v++;
                        if (!digits || *v != '\r' || (length >= 0 && length != n))
                                return -EBADMSG;
                        length = n;
                }
                p = eol + 1;
        }
        *ret_status = status;
        *ret_length = length;
        return 0;
}

/* Percent-encode a node name for the request path. */
static char *path_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *out = malloc(strlen(s) * 3 + 1), *p = out;

        if (!out)
                return NULL;
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                    strchr("-._~", *c))
                        *p++ = (char) *c;
                else {
                        *p++ = '%';
                        *p++ = hex[*c >> 4];
                        *p++ = hex[*c & 15];
                }
        }
        *p = 0;
        return out;
}

static int fail_unreachable(const Ctl *ctl, int r) {
        if (r == -ETIMEDOUT)
                fprintf(stderr, "sshtunctl: %s: no reply from sshtund within %u s\n", ctl->socket,
                        (unsigned) (CTL_TIMEOUT_USEC / USEC_PER_SEC));
        else
                fprintf(stderr, "sshtunctl: cannot connect to %s: %s (is sshtund running?)\n", ctl->socket,
                        strerror(-r));
        return EXIT_UNREACHABLE;
}

/* GET 'target'. Returns 0 with *ret filled, or the exit status after saying why. */
static int ctl_get(const Ctl *ctl, const char *target, Reply *ret) {
        _cleanup_free_ char *request = NULL, *data = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0, alloc = 0, head = 0;
        int64_t length = -1;
        int status = 0, r;

        r = connect_socket(ctl, &fd);
        if (r < 0)
                return fail_unreachable(ctl, r);

        if (asprintf(&request,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sshtunctl/%s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n",
                     target, PACKAGE_VERSION) < 0) {
                request = NULL;
                fprintf(stderr, "sshtunctl: out of memory\n");
                return EXIT_FAILURE;
        }
        r = send_all(ctl, fd, request, strlen(request));
        if (r == -ETIMEDOUT)
                return fail_unreachable(ctl, r);
        if (r < 0) {
                fprintf(stderr, "sshtunctl: failed to send the request to %s: %s\n", ctl->socket, strerror(-r));
                return EXIT_FAILURE;
        }

        for (;;) {
                ssize_t n;

                if (head > 0 && length >= 0 && len - head >= (size_t) length)
                        break; /* the whole body is here */
                if (len == alloc) {
                        size_t want = alloc ? alloc * 2 : 16384;
                        char *p;

                        want = MIN(want, (size_t) CTL_HEAD_MAX + CTL_BODY_MAX + 1);
                        if (want == alloc) {
                                fprintf(stderr, "sshtunctl: reply from %s is too large\n", ctl->socket);
                                return EXIT_FAILURE;
                        }
                        p = realloc(data, want + 1);
                        if (!p) {
                                fprintf(stderr, "sshtunctl: out of memory\n");
                                return EXIT_FAILURE;
                        }
                        data = p;
                        alloc = want;
                }
                n = read(fd, data + len, alloc - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        r = wait_fd(ctl, fd, POLLIN);
                        if (r == -ETIMEDOUT)
                                return fail_unreachable(ctl, r);
                        if (r < 0) {
                                fprintf(stderr, "sshtunctl: %s: %s\n", ctl->socket, strerror(-r));
                                return EXIT_FAILURE;
                        }
                        continue;
                }
                if (n < 0 && errno == ECONNRESET && head > 0 && length < 0)
                        break; /* the server's close counts as the end of the body */
                if (n < 0) {
                        fprintf(stderr, "sshtunctl: failed to read the reply from %s: %m\n", ctl->socket);
                        return EXIT_FAILURE;
                }
                if (n == 0)
                        break;
                len += (size_t) n;

                if (head == 0) {
                        head = head_end(data, len);
                        if (head == 0 && len > CTL_HEAD_MAX) {
                                fprintf(stderr, "sshtunctl: malformed reply from %s: head too large\n", ctl->socket);
                                return EXIT_FAILURE;
                        }
                        if (head > 0 && parse_head(data, head, &status, &length) < 0) {
                                fprintf(stderr, "sshtunctl: malformed reply from %s\n", ctl->socket);
                                return EXIT_FAILURE;
                        }
                        if (length > CTL_BODY_MAX) {
                                fprintf(stderr, "sshtunctl: reply from %s is too large\n", ctl->socket);
                                return EXIT_FAILURE;
                        }
                }
                if (head > 0 && len - head > CTL_BODY_MAX) {
                        fprintf(stderr, "sshtunctl: reply from %s is too large\n", ctl->socket);
                        return EXIT_FAILURE;
                }
        }

        if (head == 0) {
                fprintf(stderr, "sshtunctl: %s closed the connection without a reply\n", ctl->socket);
                return EXIT_FAILURE;
        }
        if (length >= 0 && len - head < (size_t) length) {
                fprintf(stderr, "sshtunctl: truncated reply from %s\n", ctl->socket);
                return EXIT_FAILURE;
        }
        data[len] = 0;
        *ret = (Reply) {
                .status = status,
                .body = data + head,
                .body_len = length >= 0 ? (size_t) length : len - head,
        };
        ret->data = TAKE_PTR(data);
        return 0;
}

/* GET 'target' and parse a 200 reply's JSON into *ret. For an error reply,
 * says what the daemon said and returns 1. */
static int ctl_get_json(const Ctl *ctl, const char *target, json_t **ret) {
        _cleanup_(reply_done) Reply reply = {};
        json_error_t error;
        json_t *v;
        int r;

        r = ctl_get(ctl, target, &reply);
        if (r != 0)
                return r;

        v = json_loadb(reply.body, reply.body_len, 0, &error);
        if (reply.status != 200) {
                const char *message = json_string_value(json_object_get(v, "error"));
                _cleanup_free_ char *shown = table_escape(message);

                if (message && shown)
                        fprintf(stderr, "sshtunctl: %s\n", shown);
                else
                        fprintf(stderr, "sshtunctl: sshtund replied with HTTP status %d\n", reply.status);
                json_decref(v);
                return EXIT_FAILURE;
        }
        if (!v) {
                fprintf(stderr, "sshtunctl: malformed reply from %s: %s\n", ctl->socket, error.text);
                return EXIT_FAILURE;
        }
        *ret = v;
        return 0;
}

/* ---- rendering ------------------------------------------------------------ */

static const char *json_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static json_int_t json_int(const json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

static const char *age_since(const char *timestamp, char *buf, size_t size) {
        usec_t since, now = now_usec(CLOCK_REALTIME);

        if (table_parse_timestamp(timestamp, &since) < 0)
                return NULL;
        return table_format_age(((int64_t) now - (int64_t) since) / (int64_t) USEC_PER_SEC, buf, size);
}

static int add_node_row(Table *t, const json_t *node, Output output) {
        _cleanup_free_ char *address = NULL;
        char sessions[64], streams[32], reconnects[32], age[TABLE_AGE_MAX];
        const char *state = json_str(node, "state");

        address = table_format_address(json_str(node, "address"), (unsigned) json_int(node, "port"));
        if (!address)
                return -ENOMEM;
        snprintf(sessions, sizeof(sessions), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 json_int(node, "sessions_up"), json_int(node, "sessions_total"));
        snprintf(streams, sizeof(streams), "%" JSON_INTEGER_FORMAT, json_int(node, "streams"));
        snprintf(reconnects, sizeof(reconnects), "%" JSON_INTEGER_FORMAT, json_int(node, "reconnects"));

        if (table_add_cell(t, json_str(node, "name"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, address, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, state, table_state_color(state)) < 0 ||
            table_add_cell(t, sessions, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, streams, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, age_since(json_str(node, "state_since"), age, sizeof(age)), TABLE_COLOR_NONE) < 0)
                return -ENOMEM;
        if (output == OUTPUT_WIDE &&
            (table_add_cell(t, json_str(node, "host_key"), TABLE_COLOR_NONE) < 0 ||
             table_add_cell(t, reconnects, TABLE_COLOR_NONE) < 0))
                return -ENOMEM;
        return table_add_cell(t, json_str(node, "last_error"), TABLE_COLOR_NONE);
}

static int print_node_table(const Ctl *ctl, const json_t *nodes) {
        static const char *const headers[] = { "NODE", "ADDRESS", "STATE", "SESSIONS", "STREAMS", "SINCE",
                                               "LAST ERROR" };
        static const char *const headers_wide[] = { "NODE", "ADDRESS", "STATE", "SESSIONS", "STREAMS",
                                                    "SINCE", "HOST KEY", "RECONNECTS", "LAST ERROR" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;
        const json_t *node;
        size_t i;
        int r;

        if (!json_is_array(nodes)) {
                fprintf(stderr, "sshtunctl: malformed reply from %s: no node list\n", ctl->socket);
                return EXIT_FAILURE;
        }
        if (json_array_size(nodes) == 0) {
                fprintf(stderr, "No nodes configured.\n");
                return 0;
        }

        if (ctl->output == OUTPUT_WIDE)
                r = table_new(headers_wide, ELEMENTSOF(headers_wide), &t);
        else
                r = table_new(headers, ELEMENTSOF(headers), &t);
        if (r < 0)
                goto oom;
        json_array_foreach(nodes, i, node)
                if (add_node_row(t, node, ctl->output) < 0)
                        goto oom;
        if (table_format(t, ctl->color, &text) < 0)
                goto oom;
        fputs(text, stdout);
        return 0;
oom:
        fprintf(stderr, "sshtunctl: out of memory\n");
        return EXIT_FAILURE;
}

static int print_json(const json_t *v) {
        _cleanup_free_ char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (!s) {
                fprintf(stderr, "sshtunctl: out of memory\n");
                return EXIT_FAILURE;
        }
        printf("%s\n", s);
        return 0;
}

static int cmd_nodes(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(v);
        return print_node_table(ctl, json_object_get(v, "nodes"));
}

static int cmd_status(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *status = NULL, *nodes = NULL;
        int r;

        r = ctl_get_json(ctl, "/v1/status", &status);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(status);

        printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " nodes up, %" JSON_INTEGER_FORMAT
               " degraded, %" JSON_INTEGER_FORMAT " streams\n",
               json_int(status, "nodes_up"), json_int(status, "nodes_total"),
               json_int(json_object_get(status, "states"), "degraded"), json_int(status, "streams"));

        r = ctl_get_json(ctl, "/v1/nodes", &nodes);
        if (r != 0)
                return r;
        if (json_array_size(json_object_get(nodes, "nodes")) > 0)
                putchar('\n');
        return print_node_table(ctl, json_object_get(nodes, "nodes"));
}

/* One field of 'node NAME': strings as they are, null as "-", the rest as JSON. */
static char *field_text(const json_t *v) {
        if (json_is_string(v))
                return table_escape(json_string_value(v));
        if (!v || json_is_null(v))
                return strdup("-");
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

static int cmd_node(const Ctl *ctl, const char *name) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *escaped = NULL, *target = NULL;
        const char *key;
        json_t *value;
        int r, width = 0;

        if (strlen(name) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: node name too long\n");
                return EXIT_USAGE;
        }
        escaped = path_escape(name);
        if (!escaped || asprintf(&target, "/v1/nodes/%s", escaped) < 0) {
                target = NULL;
                fprintf(stderr, "sshtunctl: out of memory\n");
                return EXIT_FAILURE;
        }
        r = ctl_get_json(ctl, target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(v);
        if (!json_is_object(v)) {
                fprintf(stderr, "sshtunctl: malformed reply from %s\n", ctl->socket);
                return EXIT_FAILURE;
        }

        json_object_foreach(v, key, value)
                width = MAX(width, (int) strlen(key) + 1);
        json_object_foreach(v, key, value) {
                _cleanup_free_ char *text = field_text(value);
                TableColor color = TABLE_COLOR_NONE;
                char age[TABLE_AGE_MAX];
                const char *ago = NULL;

                if (!text) {
                        fprintf(stderr, "sshtunctl: out of memory\n");
                        return EXIT_FAILURE;
                }
                if (streq(key, "state") && ctl->color)
                        color = table_state_color(json_string_value(value));
                if (streq(key, "state_since"))
                        ago = age_since(json_string_value(value), age, sizeof(age));
                printf("%s:%*s %s%s%s%s%s%s\n", key, width - (int) strlen(key) - 1, "",
                       table_color_code(color), text, color != TABLE_COLOR_NONE ? TABLE_COLOR_RESET : "",
                       ago ? " (" : "", ago ?: "", ago ? " ago)" : "");
        }
        return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void help(void) {
        printf("Usage: sshtunctl [-s SOCKET] [-o table|json|wide] COMMAND [ARG]\n"
               "\n"
               "Commands:\n"
               "  status         summary and the node table\n"
               "  nodes          the node table\n"
               "  node NAME      every field of one node\n"
               "\n"
               "Options:\n"
               "  -s, --socket SOCKET   admin socket (default $SSHTUND_ADMIN_SOCKET, then %s)\n"
               "  -o, --output FORMAT   table (default), wide or json\n"
               "  -h, --help            show this help\n"
               "      --version         show the version\n",
               DEFAULT_SOCKET);
}

static int usage_error(const char *message, const char *arg) {
        fprintf(stderr, "sshtunctl: %s%s%s\nTry 'sshtunctl --help'.\n", message, arg ? ": " : "", arg ?: "");
        return EXIT_USAGE;
}

static bool want_color(void) {
        const char *term = getenv("TERM");

        return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !streq_ptr(term, "dumb");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        static const char *const later[] = {
                "check", "reload", "reconnect", "drain", "undrain", "migration", "hostkeys",
        };
        Ctl ctl = { .output = OUTPUT_TABLE };
        const char *command;
        int c, r, n_args;

        ctl.socket = getenv("SSHTUND_ADMIN_SOCKET");
        if (!ctl.socket || !*ctl.socket)
                ctl.socket = DEFAULT_SOCKET;

        while ((c = getopt_long(argc, argv, "s:o:h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        ctl.socket = optarg;
                        break;
                case 'o':
                        if (streq(optarg, "table"))
                                ctl.output = OUTPUT_TABLE;
                        else if (streq(optarg, "wide"))
                                ctl.output = OUTPUT_WIDE;
                        else if (streq(optarg, "json"))
                                ctl.output = OUTPUT_JSON;
                        else
                                return usage_error("unknown output format", optarg);
                        break;
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
        n_args = argc - optind - 1;

        for (size_t i = 0; i < ELEMENTSOF(later); i++)
                if (streq(command, later[i])) {
                        fprintf(stderr, "sshtunctl: %s: not supported by this version\n", command);
                        return EXIT_USAGE;
                }

        ctl.color = ctl.output != OUTPUT_JSON && want_color();
        ctl.deadline = now_usec(CLOCK_MONOTONIC) + CTL_TIMEOUT_USEC;

        if (streq(command, "status") || streq(command, "nodes")) {
                if (n_args != 0)
                        return usage_error("too many arguments", command);
                r = streq(command, "status") ? cmd_status(&ctl) : cmd_nodes(&ctl);
        } else if (streq(command, "node")) {
                if (n_args != 1)
                        return usage_error("expected one node name", command);
                r = cmd_node(&ctl, argv[optind + 1]);
        } else
                return usage_error("unknown command", command);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "sshtunctl: failed to write the output: %m\n");
                return EXIT_FAILURE;
        }
        return r;
}
