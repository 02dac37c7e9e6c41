/* What config.c (the file, its sections, loading), config-nodes.c (nodes,
 * forwards, konnectivity) and config-parse.c (one setting) share. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
typedef int (*KeyParse)(Parser *p, const config_setting_t *s, void *base, const Key *k);
struct Key {
        const char *name;
        KeyParse parse;
        size_t offset;       /* of the field in 'base' */
        long long min, max;  /* integer keys */
        const Key *keys;     /* a nested section's keys */
};

#define FIELD(base, k, type) ((type *) ((char *) (base) + (k)->offset))

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

/* KeyParse for the field at k->offset; a nested group with k->keys. */
int key_section(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: char *, an IP address or a DNS name. */
int key_host(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: char *, a user or group name; k->min > 0: "" is refused, else unset. */
int key_account(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: char *, an absolute path of at most k->max bytes; k->min == 0: "" is unset. */
int key_path(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: unsigned, in k->min..k->max. */
int key_unsigned(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: uint16_t, a port 1..65535. */
int key_port(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: double, seconds in (0, SECONDS_MAX]. */
int key_seconds(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: double, in 0..1. */
int key_fraction(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: bool. */
int key_bool(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse: mode_t, an octal string such as "0660". */
int key_mode(Parser *p, const config_setting_t *s, void *base, const Key *k);

/* KeyParse for "nodes" (base: the Config): appends to its nodes. */
int key_nodes(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse for "forwards" (base: the Config). */
int key_forwards(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* KeyParse for the "konnectivity" section. */
int key_konnectivity(Parser *p, const config_setting_t *s, void *base, const Key *k);
/* Add the nodes_file's nodes, if it is set and exists. */
int parser_read_nodes_file(Parser *p);
/* No node name, and no address and port, twice; sorts p->by_name. */
int parser_check_nodes(Parser *p);
/* Forwards and konnectivity name known nodes, forwards own their listen addresses. */
int parser_check_references(Parser *p);

/* 0 if 'path' opens for reading and is no directory, else -errno; *ret_type: its S_IFMT bits. */
int file_check_readable(const char *path, mode_t *ret_type);
