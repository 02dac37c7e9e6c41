/* What config.c (the file, its sections, loading), config-nodes.c (nodes,
 * forwards, konnectivity) and config-parse.c (one setting) share. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/un.h>

#include <libconfig.h>

#include "conf.h"
#include "macro.h"

/* A config file is written by the administrator, but a typo must still not
 * become an allocation of gigabytes or a quadratic walk over a million
 * entries. These are far above any real cluster. */
#define STRING_MAX 4096
#define NODES_MAX 10000
#define LISTEN_MAX 64
#define ALLOW_MAX 1024
#define HOSTNAMES_MAX 64
#define FORWARDS_MAX 1024
#define SECONDS_MAX 3600.0
#define ACCOUNT_MAX 256
#define HTTP_PATH_MAX 1024
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *) NULL)->sun_path))

typedef struct NameIndex NameIndex;

typedef struct Parser {
        const char *path;        /* as given to config_load() */
        const char *include_dir; /* where libconfig resolves relative @include names */
        const config_t *lc;
        Config *config;
        char *error; /* the first error */
        NameIndex *by_name; /* the nodes sorted by name, once they are checked */
        size_t n_by_name;
        const config_setting_t **node_elems; /* each node's group, for messages */
        config_t *nodes_lc; /* the nodes_file, while it is checked */
        bool unreadable_identity_ok; /* reload after a privilege drop */
} Parser;

typedef struct Key Key;

/* Where -T writes (config-print.c): a stream, and how lines start. */
typedef struct Printer {
        FILE *f;
        const char *prefix; /* at the start of every line: "" or "# " */
        unsigned depth;     /* indentation, two spaces a level */
        bool one_line;      /* a group's settings on one line: "{ a = 1; b = 2; }" */
        int error;          /* the first failure to build a value (-ENOMEM) */
} Printer;

/* Read setting 's' into the field of 'base' that 'k' names. */
typedef int (*KeyParse)(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* Write that field back as the whole setting, "name = value;", in the
 * syntax KeyParse reads (printer_key() ... printer_end()); or, when the
 * key has no value to write (an absent section), a comment. */
typedef void (*KeyPrint)(Printer *w, const void *base, const Key *k);

/* How a kind of key is read and written: one pair, so that every key the
 * parser knows is printed the way it is read (sshtund -T). */
typedef struct KeyType {
        KeyParse parse;
        KeyPrint print;
} KeyType;

/* One key of a section: the tables of config.c and config-nodes.c drive
 * both parsing (parser_read_group) and printing (printer_group). */
struct Key {
        const char *name;
        const KeyType *type;
        size_t offset;       /* of the field in 'base' */
        long long min, max;  /* integer keys; see each type */
        const Key *keys;     /* a nested section's keys */
};

#define FIELD(base, k, type) ((type *) ((char *) (base) + (k)->offset))
#define CONST_FIELD(base, k, type) ((const __typeof__(type) *) ((const char *) (base) + (k)->offset))

/* libconfig's name of a source file (NULL: the main file) as it was opened. */
char *parser_file_name(const Parser *p, const char *file);
/* Store the first error, "FILE:LINE: KEY: message", naming 's'; returns -EINVAL (or -ENOMEM). */
_printf_(3, 4) int parser_fail(Parser *p, const config_setting_t *s, const char *format, ...);
/* As parser_fail(), naming 'key' at the location of 's' (NULL: the file). */
_printf_(4, 5) int parser_fail_key(Parser *p, const config_setting_t *s, const char *key,
                                   const char *format, ...);
/* Fail on the first of the NULL-terminated 'names' that group 'g' lacks. */
int parser_require_members(Parser *p, const config_setting_t *g, const char *const *names);

/* An RFC 1123 host name; 'lowercase': only as Kubernetes names nodes. */
bool dns_name_is_valid(const char *s, bool lowercase);
/* An IP literal, or a DNS name that is not a mistyped address. */
bool host_is_valid(const char *s);
/* Replace *field with a copy of 'v' ('empty_is_null': "" becomes NULL). */
int field_set_string(char **field, const char *v, bool empty_is_null);

/* A string of at most STRING_MAX bytes; *ret points into the setting. */
int parser_read_string(Parser *p, const config_setting_t *s, const char **ret);
/* The index of the string value in the NULL-terminated 'choices'. */
int parser_read_choice(Parser *p, const config_setting_t *s, const char *const *choices, int *ret);
/* An array or list of at most 'max' strings. */
int parser_check_string_array(Parser *p, const config_setting_t *s, int max);
/* Such an array, each string passing 'valid' (else "invalid WHAT"), replacing *ret. */
int parser_read_strv(Parser *p, const config_setting_t *s, int max, bool (*valid)(const char *),
                     const char *what, char ***ret);
/* "HOST:PORT" or "[IPV6]:PORT", replacing *ret_host. */
int parser_read_hostport(Parser *p, const config_setting_t *s, char **ret_host, uint16_t *ret_port);
/* Listen address 'v', the value of 's'. */
int parser_read_listen(Parser *p, const config_setting_t *s, const char *v, ListenAddress *ret);
/* Each member of group 'g' by its entry in 'keys' into 'base'; an unknown key fails. */
int parser_read_group(Parser *p, const config_setting_t *g, void *base, const Key *keys);

/* --- key types (config-parse.c) ----------------------------------------- */

/* A nested group with k->keys, at k->offset. */
extern const KeyType key_section;
/* char *: an IP address or a DNS name. */
extern const KeyType key_host;
/* char *: a user or group name; k->min > 0: "" is refused, else unset (NULL). */
extern const KeyType key_account;
/* char *: an absolute path of at most k->max bytes; k->min == 0: "" is unset (NULL). */
extern const KeyType key_path;
/* KeyParse: char *, an SSH algorithm list ("aes128-ctr,aes256-ctr"). */
extern const KeyType key_algorithms;
/* unsigned, in k->min..k->max. */
extern const KeyType key_unsigned;
/* uint16_t, a port 1..65535. */
extern const KeyType key_port;
/* double: seconds in (0, SECONDS_MAX]. */
extern const KeyType key_seconds;
/* double: in 0..1. */
extern const KeyType key_fraction;
/* bool. */
extern const KeyType key_bool;
/* mode_t: an octal string such as "0660" (libconfig has no octal literals). */
extern const KeyType key_mode;

/* Their halves, for key types that build on them. */
int parse_section(Parser *p, const config_setting_t *s, void *base, const Key *k);
int parse_host(Parser *p, const config_setting_t *s, void *base, const Key *k);
int parse_path(Parser *p, const config_setting_t *s, void *base, const Key *k);
void print_section(Printer *w, const void *base, const Key *k);
void print_string_field(Printer *w, const void *base, const Key *k);

/* --- config.c ------------------------------------------------------------ */

/* The top level of the file: its sections and keys, in the order -T prints them. */
extern const Key config_keys[];

/* --- config-nodes.c ------------------------------------------------------ */

/* "nodes" (base: the Config): appends to its nodes; -T prints those not from nodes_file. */
extern const KeyType key_nodes;
/* "nodes_file": a path; -T shows the file's nodes as comments under it. */
extern const KeyType key_nodes_file;
/* "forwards" (base: the Config). */
extern const KeyType key_forwards;
/* The "konnectivity" section. */
extern const KeyType key_konnectivity;

/* Add the nodes_file's nodes, if it is set and exists. */
int parser_read_nodes_file(Parser *p);
/* No node name, and no address and port, twice; sorts p->by_name. */
int parser_check_nodes(Parser *p);
/* Forwards and konnectivity name known nodes, forwards own their listen addresses. */
int parser_check_references(Parser *p);

/* --- config-check.c ------------------------------------------------------ */

/* What start would find wrong on this host with what the file names: the
 * accounts, the identity's permissions, the known_hosts files, the TLS
 * files, the directories of the Unix sockets. Creates, binds and dials
 * nothing. */
int parser_check_host(Parser *p);

/* --- config-print.c ------------------------------------------------------ */

/* Start the setting of 'k': the line's prefix and indentation (unless
 * one_line), then "name = ". */
void printer_key(Printer *w, const Key *k);
/* End it: ";" and a newline (or a space when one_line). */
void printer_end(Printer *w);
/* A string in libconfig's quotes and escapes; NULL is "". */
void printer_string(Printer *w, const char *s);
/* A listen address as a string, as parser_read_listen() reads it; NULL
 * (out of memory) sets w->error. */
void printer_listen(Printer *w, const ListenAddress *a);
/* "host:port" ("[v6]:port") as a string, as parser_read_hostport() reads it. */
void printer_hostport(Printer *w, const char *host, uint16_t port);
/* [ "a", "b" ], or [ ] */
void printer_strv(Printer *w, char *const *v);
/* A number that reads back as a float, to the same double. */
void printer_double(Printer *w, double v);
/* Each key of 'keys' over 'base': on lines of their own in "{ ... }", or
 * on one line with one_line. */
void printer_group(Printer *w, const void *base, const Key *keys);
/* A list of groups, "( { ... }, ... )", one a line: 'n' elements of 'size'
 * bytes at 'elems', those for which 'pick' (if not NULL) is true. */
void printer_list(Printer *w, const void *elems, size_t n, size_t size, const Key *keys,
                  bool (*pick)(const void *elem));
/* A line of text as it is (the prefix and indentation first). */
_printf_(2, 3) void printer_line(Printer *w, const char *format, ...);
/* Formatted text, where the current line is. */
_printf_(2, 3) void printer_printf(Printer *w, const char *format, ...);

