/* sshtunctl's table renderer: cells sanitised on entry, widths measured in
 * characters, colour added only at the end so it never counts as width. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "table.h"

#define TABLE_GAP "   "

typedef struct TableCell {
        char *text;
        size_t width; /* characters, not bytes */
        TableColor color;
} TableCell;

struct Table {
        size_t n_columns;
        bool no_header;
        TableCell *cells; /* row-major, the header row first */
        size_t n_cells;
        size_t n_alloc;
};

static const char *const color_on[_TABLE_COLOR_MAX] = {
        [TABLE_COLOR_NONE] = "",
        [TABLE_COLOR_GREEN] = "\033[32m",
        [TABLE_COLOR_YELLOW] = "\033[33m",
        [TABLE_COLOR_RED] = "\033[1;31m",
};

/* Copy 'text' with control characters replaced, and count its characters.
 * The JSON layer guarantees UTF-8, so a character is a lead byte; the C1
 * controls are U+0080..U+009F, encoded C2 80..C2 9F. */
static char *cell_text(const char *text, size_t *ret_width) {
        size_t width = 0;
        char *copy = strdup(text ? text : "-");

        if (!copy)
                return NULL;
        for (unsigned char *p = (unsigned char *) copy; *p; p++) {
                if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
                        p[0] = p[1] = '?';
                        width += 2;
                        p++;
                        continue;
                }
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
                if ((*p & 0xc0) != 0x80)
                        width++;
        }
        *ret_width = width;
        return copy;
}

char *table_escape(const char *text) {
        size_t width;

        return cell_text(text, &width);
}

static int table_append(Table *t, const char *text, TableColor color) {
        TableCell *c;

        if (t->n_cells == t->n_alloc) {
                size_t n = t->n_alloc ? t->n_alloc * 2 : 64;
                TableCell *cells = reallocarray(t->cells, n, sizeof(TableCell));
                if (!cells)
                        return -ENOMEM;
                t->cells = cells;
                t->n_alloc = n;
        }
        c = &t->cells[t->n_cells];
        c->text = cell_text(text, &c->width);
        if (!c->text)
                return -ENOMEM;
        c->color = color >= 0 && color < _TABLE_COLOR_MAX ? color : TABLE_COLOR_NONE;
        t->n_cells++;
        return 0;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i].text);
        free(t->cells);
        free(t);
        return NULL;
}

int table_new(const char *const *headers, size_t n_columns, Table **ret) {
        Table *t;

        assert(headers);
        assert(n_columns > 0);
        assert(ret);

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;
        for (size_t i = 0; i < n_columns; i++)
                if (table_append(t, headers[i], TABLE_COLOR_NONE) < 0) {
                        table_free(t);
                        return -ENOMEM;
                }
        *ret = t;
        return 0;
}

int table_add_cell(Table *t, const char *text, TableColor color) {
        assert(t);
        return table_append(t, text, color);
}

size_t table_n_rows(const Table *t) {
        assert(t);
        return t->n_cells / t->n_columns - 1;
}

void table_set_header(Table *t, bool show) {
        assert(t);
        t->no_header = !show;
}

int table_format(const Table *t, bool color, char **ret) {
        _cleanup_free_ size_t *widths = NULL;
        char *buf = NULL;
        size_t size = 0, n_rows, first;
        FILE *f;

        assert(t);
        assert(ret);

        n_rows = (t->n_cells + t->n_columns - 1) / t->n_columns;
        first = t->no_header ? 1 : 0;
        widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;
        for (size_t i = first * t->n_columns; i < n_rows * t->n_columns; i++) {
                size_t w = i < t->n_cells ? t->cells[i].width : 1;
                widths[i % t->n_columns] = MAX(widths[i % t->n_columns], w);
        }

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t row = first; row < n_rows; row++)
                for (size_t col = 0; col < t->n_columns; col++) {
                        size_t i = row * t->n_columns + col;
                        const TableCell *c = i < t->n_cells ? &t->cells[i] : NULL;
                        const char *text = c ? c->text : "-";
                        size_t width = c ? c->width : 1;
                        bool colored = color && c && c->color != TABLE_COLOR_NONE;

                        fprintf(f, "%s%s%s", colored ? color_on[c->color] : "", text,
                                colored ? TABLE_COLOR_RESET : "");
                        if (col + 1 == t->n_columns)
                                fputc('\n', f);
                        else
                                fprintf(f, "%*s" TABLE_GAP, (int) (widths[col] - width), "");
                }
        if (ferror(f) | fclose(f)) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* Follows kubectl's duration.HumanDuration, so the two tools read alike. */
const char *table_format_age(int64_t seconds, char *buf, size_t size) {
        int64_t minutes, hours, days;

        if (seconds < -1) {
                snprintf(buf, size, "<invalid>");
                return buf;
        }
        if (seconds < 0)
                seconds = 0;
        if (seconds < 60 * 2) {
                snprintf(buf, size, "%" PRId64 "s", seconds);
                return buf;
        }
        minutes = seconds / 60;
        if (minutes < 10) {
                if (seconds % 60 == 0)
                        snprintf(buf, size, "%" PRId64 "m", minutes);
                else
                        snprintf(buf, size, "%" PRId64 "m%" PRId64 "s", minutes, seconds % 60);
                return buf;
        }
        if (minutes < 60 * 3) {
                snprintf(buf, size, "%" PRId64 "m", minutes);
                return buf;
        }
        hours = minutes / 60;
        if (hours < 8) {
                if (minutes % 60 == 0)
                        snprintf(buf, size, "%" PRId64 "h", hours);
                else
                        snprintf(buf, size, "%" PRId64 "h%" PRId64 "m", hours, minutes % 60);
                return buf;
        }
        if (hours < 48) {
                snprintf(buf, size, "%" PRId64 "h", hours);
                return buf;
        }
        days = hours / 24;
        if (hours < 24 * 8) {
                if (hours % 24 == 0)
                        snprintf(buf, size, "%" PRId64 "d", days);
                else
                        snprintf(buf, size, "%" PRId64 "d%" PRId64 "h", days, hours % 24);
                return buf;
        }
        if (hours < 24 * 365 * 2) {
                snprintf(buf, size, "%" PRId64 "d", days);
                return buf;
        }
        if (hours < 24 * 365 * 8) {
                if (days % 365 == 0)
                        snprintf(buf, size, "%" PRId64 "y", days / 365);
                else
                        snprintf(buf, size, "%" PRId64 "y%" PRId64 "d", days / 365, days % 365);
                return buf;
        }
        snprintf(buf, size, "%" PRId64 "y", days / 365);
        return buf;
}

/* ---- short reasons -------------------------------------------------------- */

static bool utf8_continuation(char c) {
        return ((unsigned char) c & 0xc0) == 0x80;
}

static size_t utf8_chars(const char *s, size_t len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++)
                if (!utf8_continuation(s[i]))
                        n++;
        return n;
}

/* table_ellipsize() of the first 'len' bytes of 'text'. */
static const char *ellipsize_n(const char *text, size_t len, size_t max_chars, char *buf, size_t size) {
        size_t keep = 0, n = 0;

        assert(max_chars >= 4);
        assert(size >= 4);

        if (utf8_chars(text, len) <= max_chars && len < size) {
                memcpy(buf, text, len);
                buf[len] = 0;
                return buf;
        }
        /* whole characters, leaving room for "..." (and the NUL) */
        while (keep < len && n < max_chars - 3) {
                size_t next = keep + 1;

                while (next < len && utf8_continuation(text[next]))
                        next++;
                if (next + 4 > size)
                        break;
                keep = next;
                n++;
        }
        while (keep > 0 && strchr(" ,;:-(", text[keep - 1]))
                keep--;
        memcpy(buf, text, keep);
        memcpy(buf + keep, "...", 4);
        return buf;
}

const char *table_ellipsize(const char *text, size_t max_chars, char *buf, size_t size) {
        if (!text)
                return NULL;
        return ellipsize_n(text, strlen(text), max_chars, buf, size);
}

/* What the daemon's errors say, and the words the table uses for it: the
 * first entry that 'error' contains (in any case) wins. */
static const struct {
        const char *match, *reason;
} reason_phrases[] = {
        /* refusals, also under a state that does not say so */
        { "HOST KEY MISMATCH", "host key mismatch" },
        { "is revoked in", "host key revoked" },
        { "cannot record host key", "cannot record host key" },
        { "public key authentication", "auth refused" },
        /* the session's own words */
        { "liveness checks", "no answer to liveness checks" },
        { "connection closed during key exchange", "closed during key exchange" },
        { "key exchange failed", "key exchange failed" },
        { "connection closed during authentication", "closed during authentication" },
        { "authentication failed", "auth failed" },
        { "connection closed by the node", "closed by the node" },
        { "the node sent no host key", "no host key sent" },
        { "has no IPv4 or IPv6 address", "DNS: no IPv4 or IPv6 address" },
        /* gai_strerror(3) and strerror(3) */
        { "Name or service not known", "DNS: name not found" },
        { "No address associated with hostname", "DNS: no address for the name" },
        { "Temporary failure in name resolution", "DNS: temporary failure" },
        { "Connection refused", "connection refused" },
        { "Connection timed out", "timed out" },
        { "No route to host", "no route to host" },
        { "Network is unreachable", "network unreachable" },
        { "Connection reset by peer", "connection reset" },
        /* probes */
        { "timeout after", "timed out" },
        { "certificate verify failed", "certificate verify failed" },
        { "hostname mismatch", "certificate name mismatch" },
};

/* "Connection refused" -> "connection refused", but "HTTP 500" and "SSH" stay. */
static void lower_first(char *s) {
        if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z')
                s[0] = (char) (s[0] - 'A' + 'a');
}

/* The reason for an error no phrase matches: its last clause, the one after
 * the last ": " ("send to the node: Broken pipe" -> "broken pipe"), without
 * a trailing parenthesis ("(over 8192 bytes)"). */
static const char *reason_generic(const char *error, char *buf, size_t size) {
        const char *start = error, *end = error + strlen(error);

        if (end > start && end[-1] == ')') {
                const char *open = NULL;

                for (const char *p = start; p + 1 < end; p++)
                        if (p[0] == ' ' && p[1] == '(')
                                open = p;
                if (open && open > start)
                        end = open;
        }
        for (const char *p = start; p + 2 < end; p++)
                if (p[0] == ':' && p[1] == ' ')
                        start = p + 2;
        ellipsize_n(start, (size_t) (end - start), TABLE_REASON_MAX, buf, size);
        lower_first(buf);
        return buf;
}

const char *table_format_reason(const char *state, const char *error, char *buf, size_t size) {
        const char *phrase = NULL, *p;

        assert(buf);
        assert(size >= TABLE_REASON_SIZE);

        /* retrying cannot fix these: the state says it all */
        if (streq_ptr(state, "hostkey-unknown"))
                phrase = error && strcasestr(error, "cannot record host key") ? "cannot record host key"
                                                                             : "host key unknown";
        else if (streq_ptr(state, "hostkey-mismatch"))
                phrase = error && strcasestr(error, "revoked") ? "host key revoked" : "host key mismatch";
        else if (streq_ptr(state, "auth-failed"))
                phrase = "auth refused";
        if (phrase)
                return table_ellipsize(phrase, TABLE_REASON_MAX, buf, size);
        if (!error || !*error)
                return NULL;

        if (strncmp(error, "probe: ", 7) == 0) {
                char why[TABLE_REASON_SIZE], text[TABLE_REASON_SIZE + 8];

                if (!table_format_reason(NULL, error + 7, why, sizeof(why)))
                        return table_ellipsize("probe failed", TABLE_REASON_MAX, buf, size);
                snprintf(text, sizeof(text), "probe: %s", why);
                return table_ellipsize(text, TABLE_REASON_MAX, buf, size);
        }

        /* "no SSH session within connect_timeout (10.0 s) while handshaking" */
        if (strcasestr(error, "within connect_timeout")) {
                char text[TABLE_REASON_SIZE];

                p = strstr(error, " while ");
                snprintf(text, sizeof(text), "timed out%s%.*s", p ? " while " : "", p ? 20 : 0,
                         p ? p + 7 : "");
                return table_ellipsize(text, TABLE_REASON_MAX, buf, size);
        }
        for (size_t i = 0; i < ELEMENTSOF(reason_phrases); i++)
                if (strcasestr(error, reason_phrases[i].match))
                        return table_ellipsize(reason_phrases[i].reason, TABLE_REASON_MAX, buf, size);
        /* an HTTP status says it first: "HTTP 500 Internal Server Error: <body>" */
        if (strncmp(error, "HTTP ", 5) == 0 && strspn(error + 5, "0123456789") == 3) {
                p = strstr(error, ": ");
                return ellipsize_n(error, p ? (size_t) (p - error) : strlen(error), TABLE_REASON_MAX, buf, size);
        }
        /* "cannot resolve n1.example: <gai_strerror>" */
        if (strncmp(error, "cannot resolve ", 15) == 0) {
                char why[TABLE_REASON_SIZE], text[TABLE_REASON_SIZE + 8];

                snprintf(text, sizeof(text), "DNS: %s", reason_generic(error, why, sizeof(why)));
                return table_ellipsize(text, TABLE_REASON_MAX, buf, size);
        }
        return reason_generic(error, buf, size);
}

char *table_format_address(const char *address, unsigned port) {
        char *s;

        if (!address)
                return strdup("-");
        if (port == 22)
                return strdup(address);
        if (asprintf(&s, strchr(address, ':') ? "[%s]:%u" : "%s:%u", address, port) < 0)
                return NULL;
        return s;
}

/* Exactly 'n' digits at *p, advancing it. */
static int parse_digits(const char **p, int n, int *ret) {
        int v = 0;

        for (int i = 0; i < n; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int expect(const char **p, char c) {
        if (**p != c)
                return -EINVAL;
        (*p)++;
        return 0;
}

static int days_in_month(int year, int mon) {
        static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

        return days[mon - 1] + (mon == 2 && leap);
}

int table_parse_timestamp(const char *s, usec_t *ret) {
        struct tm tm = {};
        const char *p = s;
        int year, mon, day, hour, min, sec, off = 0;
        usec_t frac = 0, scale = USEC_PER_SEC;
        time_t t;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &year) < 0 || expect(&p, '-') < 0 || parse_digits(&p, 2, &mon) < 0 ||
            expect(&p, '-') < 0 || parse_digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
                return -EINVAL;
        p++;
        if (parse_digits(&p, 2, &hour) < 0 || expect(&p, ':') < 0 || parse_digits(&p, 2, &min) < 0 ||
            expect(&p, ':') < 0 || parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
            sec > 60)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                /* digits past the microsecond are read and dropped */
                for (; *p >= '0' && *p <= '9'; p++)
                        if (scale > 1) {
                                scale /= 10;
                                frac += (usec_t) (*p - '0') * scale;
                        }
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (parse_digits(&p, 2, &oh) < 0 || expect(&p, ':') < 0 || parse_digits(&p, 2, &om) < 0 ||
                    oh > 23 || om > 59)
                        return -EINVAL;
                off = sign * (oh * 3600 + om * 60);
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t) -1)
                return -EINVAL;
        t -= off;
        if (t < 0)
                return -EINVAL;
        *ret = (usec_t) t * USEC_PER_SEC + frac;
        return 0;
}

const char *table_color_code(TableColor color) {
        return color >= 0 && color < _TABLE_COLOR_MAX ? color_on[color] : "";
}

TableColor table_state_color(const char *state) {
        static const char *const yellow[] = {
                "degraded", "draining", "connecting", "handshaking", "authenticating", "backoff",
        };

        if (!state)
                return TABLE_COLOR_NONE;
        if (streq(state, "up"))
                return TABLE_COLOR_GREEN;
        for (size_t i = 0; i < ELEMENTSOF(yellow); i++)
                if (streq(state, yellow[i]))
                        return TABLE_COLOR_YELLOW;
        if (strncmp(state, "hostkey-", 8) == 0 || streq(state, "auth-failed"))
                return TABLE_COLOR_RED;
        return TABLE_COLOR_NONE;
}
