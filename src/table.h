/* Text tables for sshtunctl in the manner of `kubectl get`, and the small
 * formatters its columns need (ages, addresses, RFC 3339 timestamps, short
 * error reasons). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef enum TableColor {
        TABLE_COLOR_NONE,
        TABLE_COLOR_GREEN,
        TABLE_COLOR_YELLOW,
        TABLE_COLOR_RED,
        _TABLE_COLOR_MAX,
} TableColor;

typedef struct Table Table;

/* Room for any table_format_age() result. */
#define TABLE_AGE_MAX 32

/* A table with these column headers (copied as given; n_columns >= 1). */
int table_new(const char *const *headers, size_t n_columns, Table **ret);
Table *table_free(Table *t);

/* Append one cell, filling rows left to right. NULL shows as "-"; control
 * characters (C0, DEL, C1) show as '?' so peer text cannot drive the
 * terminal. Returns 0 or -ENOMEM. */
int table_add_cell(Table *t, const char *text, TableColor color);
/* 'text' as a cell shows it (NULL as "-", control characters as '?'), for
 * output that is not a table; malloc'd, NULL on allocation failure. */
char *table_escape(const char *text);
/* Rows completed so far. */
size_t table_n_rows(const Table *t);
/* Whether table_format() prints the header line (it does unless told not
 * to; without it, the columns are as wide as their widest row). */
void table_set_header(Table *t, bool show);

/* The header line and the rows, each ending in "\n": columns left-aligned
 * to their widest cell (in characters), three spaces apart, the last column
 * unpadded, a partial last row completed with "-". Colour escapes only if
 * 'color'. *ret is malloc'd. Returns 0 or -ENOMEM. */
int table_format(const Table *t, bool color, char **ret);

/* An age as kubectl prints it ("45s", "2m30s", "12m", "3h", "2d5h", "2y3d");
 * "0s" for a slightly negative one (clock skew), "<invalid>" below -1 s. */
const char *table_format_age(int64_t seconds, char *buf, size_t size);

/* The most characters a reason takes (table_format_reason()), and the
 * bytes that many UTF-8 characters and the NUL can take. */
#define TABLE_REASON_MAX 40
#define TABLE_REASON_SIZE (TABLE_REASON_MAX * 4 + 1)

/* 'text' cut to at most 'max_chars' characters (max_chars >= 4), ending in
 * "..." when it was cut; at a UTF-8 character boundary, into buf. Returns
 * buf, or NULL for a NULL 'text'. */
const char *table_ellipsize(const char *text, size_t max_chars, char *buf, size_t size);

/* A node's last error in a few words for the LAST ERROR column, at most
 * TABLE_REASON_MAX characters: from its 'state' for the refusals
 * ("host key unknown", "host key mismatch", "auth refused"), else the
 * essential part of 'error' ("connect to 10.0.0.7:22: Connection refused"
 * -> "connection refused", "cannot resolve n1.example: Name or service not
 * known" -> "DNS: name not found"); "probe: WHY" keeps its prefix. Cut
 * with "..." as a last resort. NULL when there is nothing to say (no error
 * and not a refusal state); else buf (TABLE_REASON_SIZE bytes suffice). */
const char *table_format_reason(const char *state, const char *error, char *buf, size_t size);

/* "address" or, when port is not 22, "address:port" ("[v6]:port"); malloc'd,
 * NULL on allocation failure. A NULL address gives "-". */
char *table_format_address(const char *address, unsigned port);

/* Parse an RFC 3339 timestamp ("2026-11-29T15:45:10.123Z", any fraction,
 * "Z" or a "+HH:MM" offset) into microseconds since the epoch. -EINVAL when
 * malformed or before 1970. */
int table_parse_timestamp(const char *s, usec_t *ret);

/* The escape sequence that starts 'color' ("" for none), and the reset. */
const char *table_color_code(TableColor color);
#define TABLE_COLOR_RESET "\033[0m"

/* The colour of a node state's cell: green up; yellow for the passing
 * states; red for the refusals (hostkey-*, auth-failed); none otherwise. */
TableColor table_state_color(const char *state);
