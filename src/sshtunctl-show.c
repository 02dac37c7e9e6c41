/* sshtunctl's views: the status summary, the node table (wide too, or
 * names only), one node's fields, the monitoring check line and the
 * migration report. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "macro.h"
#include "sshtunctl-internal.h"
#include "table.h"

/* Names listed per kind in one `check` line; the rest are counted. */
#define CHECK_NAMES_MAX 10

DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* ---- rendering ------------------------------------------------------------ */

const char *json_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

json_int_t json_int(const json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

const char *plural(json_int_t n) {
        return n == 1 ? "" : "s";
}

static const char *age_since(const char *timestamp, char *buf, size_t size) {
        usec_t since, now = now_usec(CLOCK_REALTIME);

        if (table_parse_timestamp(timestamp, &since) < 0)
                return NULL;
        return table_format_age(((int64_t) now - (int64_t) since) / (int64_t) USEC_PER_SEC, buf, size);
}

/* The PROBE cell: "ok 3.2ms", "ok 12ms", "fail", or NULL ("-") before the
 * first probe. */
static const char *probe_cell(const json_t *probe, char *buf, size_t size) {
        const json_t *ok = json_object_get(probe, "ok");
        double ms = json_number_value(json_object_get(probe, "latency_ms"));

        if (!json_is_boolean(ok))
                return NULL;
        if (!json_is_true(ok))
                return "fail";
        if (!json_is_number(json_object_get(probe, "latency_ms")) || ms < 0)
                return "ok";
        snprintf(buf, size, ms < 10 ? "ok %.1fms" : "ok %.0fms", ms);
        return buf;
}

/* The LAST ERROR cell. -o wide: the whole text, with its hint; the table:
 * the daemon's short "reason" when it sends one, else one derived here. */
static const char *last_error_cell(const json_t *node, Output output, const char *last_error, char *buf,
                                   size_t size) {
        const char *reason = json_str(node, "reason");

        if (output == OUTPUT_WIDE)
                return last_error;
        if (reason && *reason)
                return table_ellipsize(reason, TABLE_REASON_MAX, buf, size);
        return table_format_reason(json_str(node, "state"), last_error, buf, size);
}

static int add_node_row(Table *t, const json_t *node, Output output) {
        _cleanup_free_ char *address = NULL, *probe_error = NULL;
        char sessions[64], streams[32], reconnects[32], probe[32], age[TABLE_AGE_MAX], reason[TABLE_REASON_SIZE];
        const char *state = json_str(node, "state"), *last_error = json_str(node, "last_error");
        const json_t *p = json_object_get(node, "probe");

        address = table_format_address(json_str(node, "address"), (unsigned) json_int(node, "port"));
        if (!address)
                return -ENOMEM;
        snprintf(sessions, sizeof(sessions), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 json_int(node, "sessions_up"), json_int(node, "sessions_total"));
        snprintf(streams, sizeof(streams), "%" JSON_INTEGER_FORMAT, json_int(node, "streams"));
        snprintf(reconnects, sizeof(reconnects), "%" JSON_INTEGER_FORMAT, json_int(node, "reconnects"));
        /* SSH is fine but the kubelet is not: that is the error to show */
        if (!last_error && json_is_false(json_object_get(p, "ok")) && json_str(p, "error")) {
                if (asprintf(&probe_error, "probe: %s", json_str(p, "error")) < 0) {
                        probe_error = NULL;
                        return -ENOMEM;
                }
                last_error = probe_error;
        }

        if (table_add_cell(t, json_str(node, "name"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, address, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, state, table_state_color(state)) < 0 ||
            table_add_cell(t, json_str(node, "route"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, sessions, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, streams, TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(p, probe, sizeof(probe)), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, age_since(json_str(node, "state_since"), age, sizeof(age)),
                           TABLE_COLOR_NONE) < 0)
                return -ENOMEM;
        if (output == OUTPUT_WIDE &&
            (table_add_cell(t, json_str(node, "host_key"), TABLE_COLOR_NONE) < 0 ||
             table_add_cell(t, reconnects, TABLE_COLOR_NONE) < 0))
                return -ENOMEM;
        return table_add_cell(t, last_error_cell(node, output, last_error, reason, sizeof(reason)),
                              TABLE_COLOR_NONE);
}

/* One row per node of 'nodes' (an array) under 'headers' (unless
 * --no-headers), to ctl->out. */
static int print_rows(const Ctl *ctl, const json_t *nodes, const char *const *headers, size_t n_headers,
                      int (*add_row)(Table *t, const json_t *node, Output output)) {
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *text = NULL;
        const json_t *node;
        size_t i;

        if (table_new(headers, n_headers, &t) < 0)
                return ctl_oom(ctl);
        table_set_header(t, !ctl->no_headers);
        json_array_foreach(nodes, i, node)
                if (add_row(t, node, ctl->output) < 0)
                        return ctl_oom(ctl);
        if (table_format(t, ctl->color, &text) < 0)
                return ctl_oom(ctl);
        fputs(text, ctl->out);
        return 0;
}

/* -o name: the name of each node of 'nodes', one a line, for shell loops. */
static int print_names(const Ctl *ctl, const json_t *nodes) {
        const json_t *node;
        size_t i;

        json_array_foreach(nodes, i, node) {
                _cleanup_free_ char *name = NULL;

                if (!json_str(node, "name"))
                        continue;
                name = table_escape(json_str(node, "name"));
                if (!name)
                        return ctl_oom(ctl);
                fprintf(ctl->out, "%s\n", name);
        }
        return 0;
}

static int print_node_table(const Ctl *ctl, const json_t *nodes) {
        static const char *const headers[] = { "NODE",    "ADDRESS", "STATE", "ROUTE",     "SESSIONS",
                                               "STREAMS", "PROBE",   "SINCE", "LAST ERROR" };
        static const char *const headers_wide[] = { "NODE",  "ADDRESS", "STATE",    "ROUTE",
                                                    "SESSIONS", "STREAMS", "PROBE", "SINCE",
                                                    "HOST KEY", "RECONNECTS", "LAST ERROR" };
        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);
        if (json_array_size(nodes) == 0) {
                fprintf(ctl->err, "No nodes configured.\n");
                return 0;
        }
        if (ctl->output == OUTPUT_NAME)
                return print_names(ctl, nodes);
        if (ctl->output == OUTPUT_WIDE)
                return print_rows(ctl, nodes, headers_wide, ELEMENTSOF(headers_wide), add_node_row);
        return print_rows(ctl, nodes, headers, ELEMENTSOF(headers), add_node_row);
}

int print_json(const Ctl *ctl, const json_t *v) {
        _cleanup_free_ char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));

        if (!s)
                return ctl_oom(ctl);
        fprintf(ctl->out, "%s\n", s);
        return 0;
}

int cmd_nodes(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);
        return print_node_table(ctl, json_object_get(v, "nodes"));
}

int cmd_status(const Ctl *ctl) {
        _cleanup_(json_decrefp) json_t *status = NULL, *nodes = NULL;
        json_int_t draining;
        int r;

        if (ctl->output == OUTPUT_NAME) /* the names alone, as for `nodes` */
                return cmd_nodes(ctl);
        r = ctl_get_json(ctl, "/v1/status", &status);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, status);

        fprintf(ctl->out,
                "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " nodes up, %" JSON_INTEGER_FORMAT " degraded, ",
                json_int(status, "nodes_up"), json_int(status, "nodes_total"),
                json_int(json_object_get(status, "states"), "degraded"));
        draining = json_int(json_object_get(status, "states"), "draining");
        if (draining > 0)
                fprintf(ctl->out, "%" JSON_INTEGER_FORMAT " draining, ", draining);
        fprintf(ctl->out, "%" JSON_INTEGER_FORMAT " streams\n", json_int(status, "streams"));

        r = ctl_get_json(ctl, "/v1/nodes", &nodes);
        if (r != 0)
                return r;
        if (json_array_size(json_object_get(nodes, "nodes")) > 0)
                fputc('\n', ctl->out);
        return print_node_table(ctl, json_object_get(nodes, "nodes"));
}

/* One field of 'node NAME': strings as they are, null as "-", the rest as JSON. */
static char *field_text(const json_t *v) {
        if (json_is_string(v))
                return table_escape(json_string_value(v));
        if (!v || json_is_null(v))
                return strdup("-");
        /* the daemon's 9 digits, not the binary noise of 17 */
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
}

int cmd_node(const Ctl *ctl, const char *name) {
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *target = NULL;
        const char *key;
        json_t *value;
        int r, width = 0;

        if (strlen(name) > CTL_NAME_MAX) {
                fprintf(stderr, "sshtunctl: node name too long\n");
                return EXIT_USAGE;
        }
        target = node_path(name, "");
        if (!target)
                return ctl_oom(ctl);
        r = ctl_get_json(ctl, target, &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);
        if (ctl->output == OUTPUT_NAME) {
                _cleanup_free_ char *shown = table_escape(json_str(v, "name") ?: name);

                if (!shown)
                        return ctl_oom(ctl);
                fprintf(ctl->out, "%s\n", shown);
                return 0;
        }

        json_object_foreach(v, key, value)
                width = MAX(width, (int) strlen(key) + 1);
        json_object_foreach(v, key, value) {
                _cleanup_free_ char *text = field_text(value);
                TableColor color = TABLE_COLOR_NONE;
                char age[TABLE_AGE_MAX];
                const char *ago = NULL;

                if (!text)
                        return ctl_oom(ctl);
                if (streq(key, "state") && ctl->color)
                        color = table_state_color(json_string_value(value));
                if (streq(key, "state_since"))
                        ago = age_since(json_string_value(value), age, sizeof(age));
                fprintf(ctl->out, "%s:%*s %s%s%s%s%s%s\n", key, width - (int) strlen(key) - 1, "",
                       table_color_code(color), text, color != TABLE_COLOR_NONE ? TABLE_COLOR_RESET : "",
                       ago ? " (" : "", ago ?: "", ago ? " ago)" : "");
        }
        return 0;
}

/* ---- check: one line for Nagios and its kin ------------------------------- */

typedef enum CheckLevel {
        CHECK_OK,
        CHECK_WARNING,
        CHECK_CRITICAL,
} CheckLevel;

/* Up is fine; degraded and draining nodes still carry streams (or finish
 * them); every other state carries nothing. */
static CheckLevel check_level(const char *state) {
        if (streq_ptr(state, "up"))
                return CHECK_OK;
        if (streq_ptr(state, "degraded") || streq_ptr(state, "draining"))
                return CHECK_WARNING;
        return CHECK_CRITICAL;
}

/* Append "; LABEL: a, b (x), ... (N more)" for the nodes in 'level' (and,
 * when 'state' is set, in that state). */
static void check_list(FILE *f, const json_t *nodes, CheckLevel level, const char *state, const char *label,
                       bool with_state) {
        const json_t *node;
        size_t i, n = 0;

        json_array_foreach(nodes, i, node) {
                const char *st = json_str(node, "state");
                _cleanup_free_ char *name = NULL;

                if (check_level(st) != level || (state && !streq_ptr(st, state)))
                        continue;
                if (n++ >= CHECK_NAMES_MAX)
                        continue;
                name = table_escape(json_str(node, "name"));
                /* '|' starts the performance data */
                for (char *p = name; p && *p; p++)
                        if (*p == '|')
                                *p = '?';
                if (n == 1)
                        fprintf(f, "; %s: ", label);
                else
                        fputs(", ", f);
                fputs(name ?: "?", f);
                if (with_state)
                        fprintf(f, " (%s)", strna(st));
        }
        if (n > CHECK_NAMES_MAX)
                fprintf(f, " and %zu more", n - CHECK_NAMES_MAX);
}

int cmd_check(const Ctl *ctl) {
        static const char *const level_names[] = { "OK", "WARNING", "CRITICAL" };
        _cleanup_(json_decrefp) json_t *v = NULL;
        _cleanup_free_ char *text = NULL;
        CheckLevel level = CHECK_OK;
        json_int_t streams = 0;
        const json_t *nodes, *node;
        size_t i, total, up = 0, size = 0;
        FILE *f;
        int r;

        r = ctl_get_json(ctl, "/v1/nodes", &v);
        if (r != 0)
                return r;
        nodes = json_object_get(v, "nodes");
        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);

        total = json_array_size(nodes);
        json_array_foreach(nodes, i, node) {
                CheckLevel l = check_level(json_str(node, "state"));

                if (l == CHECK_OK)
                        up++;
                level = MAX(level, l);
                streams += json_int(node, "streams");
        }

        f = open_memstream(&text, &size);
        if (!f)
                return ctl_oom(ctl);
        if (total == 0) {
                /* a daemon with nothing to reach: worth a look, not a page */
                level = CHECK_WARNING;
                fputs("no nodes configured", f);
        } else {
                fprintf(f, "%zu/%zu nodes up", up, total);
                if (level == CHECK_OK)
                        fprintf(f, ", %" JSON_INTEGER_FORMAT " stream%s", streams, plural(streams));
                check_list(f, nodes, CHECK_CRITICAL, NULL, "down", true);
                check_list(f, nodes, CHECK_WARNING, "degraded", "degraded", false);
                check_list(f, nodes, CHECK_WARNING, "draining", "draining", false);
        }
        fprintf(f, " | nodes_up=%zu;;;0;%zu streams=%" JSON_INTEGER_FORMAT, up, total, streams);
        if (ferror(f) | fclose(f))
                return ctl_oom(ctl);

        fprintf(ctl->out, "SSHTUND %s - %s\n", level_names[level], text);
        return (int) level;
}

/* ---- migration -------------------------------------------------------------- */

static int add_migration_row(Table *t, const json_t *node, Output output) {
        char upstream[32], probe[32];
        const json_t *up = json_object_get(node, "upstream_probe");
        bool ready = json_is_true(json_object_get(node, "ready"));

        if (table_add_cell(t, json_str(node, "name"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, json_str(node, "route"), TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(up, upstream, sizeof(upstream)),
                           json_is_false(json_object_get(up, "ok")) ? TABLE_COLOR_RED : TABLE_COLOR_NONE) < 0 ||
            table_add_cell(t, probe_cell(json_object_get(node, "probe"), probe, sizeof(probe)), TABLE_COLOR_NONE) <
                    0 ||
            table_add_cell(t, ready ? "yes" : "no", ready ? TABLE_COLOR_GREEN : TABLE_COLOR_NONE) < 0)
                return -ENOMEM;
        if (output == OUTPUT_WIDE &&
            (table_add_cell(t, json_is_true(json_object_get(node, "migrated")) ? "yes" : "no", TABLE_COLOR_NONE) <
                     0 ||
             table_add_cell(t, json_str(up, "error"), TABLE_COLOR_NONE) < 0))
                return -ENOMEM;
        return 0;
}

/* Print text from the daemon line by line, each line as a table cell shows
 * it (control characters as '?'), so that it cannot drive the terminal. */
static int print_lines(FILE *out, const char *text) {
        while (text && *text) {
                size_t n = strcspn(text, "\n");
                _cleanup_free_ char *line = strndup(text, n), *shown = NULL;

                if (!line || !(shown = table_escape(line)))
                        return -ENOMEM;
                fprintf(out, "%s\n", shown);
                text += n + (text[n] == '\n');
        }
        return 0;
}

/* The final switch: printed only when the daemon says every node is on
 * Konnectivity and its upstream path passes. */
static int print_final_switch(const Ctl *ctl, const json_t *fs) {
        _cleanup_free_ char *flags = table_escape(json_str(fs, "konnectivity_server_flags"));

        if (!flags)
                return ctl_oom(ctl);
        fprintf(ctl->out,
                "\nEvery node is on Konnectivity and its upstream path passes: ready for the final switch.\n"
                "kube-apiserver's EgressSelectorConfiguration (--egress-selector-config-file):\n\n");
        if (print_lines(ctl->out, json_str(fs, "egress_selector_configuration")) < 0)
                return ctl_oom(ctl);
        fprintf(ctl->out, "\nkonnectivity-server's flags to match:\n\n%s\n", flags);
        return 0;
}

int cmd_migration(const Ctl *ctl) {
        static const char *const headers[] = { "NODE", "ROUTE", "UPSTREAM", "SSH PROBE", "READY" };
        static const char *const headers_wide[] = { "NODE",  "ROUTE",    "UPSTREAM",      "SSH PROBE",
                                                    "READY", "MIGRATED", "UPSTREAM ERROR" };
        _cleanup_(json_decrefp) json_t *v = NULL;
        const json_t *nodes, *fs;
        int r;

        r = ctl_get_json(ctl, "/v1/migration", &v);
        if (r != 0)
                return r;
        if (ctl->output == OUTPUT_JSON)
                return print_json(ctl, v);

        nodes = json_object_get(v, "nodes");
        if (!json_is_array(nodes))
                return ctl_fail(ctl, EXIT_FAILURE, "malformed reply from %s: no node list", ctl->socket);
        if (ctl->output == OUTPUT_NAME)
                return print_names(ctl, nodes);
        if (json_array_size(nodes) > 0) {
                if (ctl->output == OUTPUT_WIDE)
                        r = print_rows(ctl, nodes, headers_wide, ELEMENTSOF(headers_wide), add_migration_row);
                else
                        r = print_rows(ctl, nodes, headers, ELEMENTSOF(headers), add_migration_row);
                if (r != 0)
                        return r;
                fputc('\n', ctl->out);
        }

        fprintf(ctl->out,
                "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " nodes on konnectivity, %" JSON_INTEGER_FORMAT
                " ready%s\n",
                json_int(v, "nodes_on_konnectivity"), json_int(v, "nodes_total"), json_int(v, "nodes_ready"),
                json_is_string(json_object_get(v, "upstream")) ? "" : " (no konnectivity upstream configured)");
        fs = json_object_get(v, "final_switch");
        if (json_is_object(fs))
                return print_final_switch(ctl, fs);
        return 0;
}
