/* The validated configuration: what sshtund.conf (libconfig syntax) says,
 * after every key has been type-checked and every value parsed. Built by
 * config_load(), read-only afterwards, replaced whole on reload. The
 * header of config.c, config-nodes.c and config-parse.c: named conf.h
 * because config.h is autoconf's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "address.h"
#include "log.h"
#include "router.h"

/* The directories configure was given (Makefile.am passes them): packages
 * configure --sysconfdir=/etc --localstatedir=/var. The sockets stay in
 * /run/sshtund, systemd's RuntimeDirectory, whatever the prefix. */
#if !defined(SYSCONFDIR) || !defined(LOCALSTATEDIR)
#error "SYSCONFDIR and LOCALSTATEDIR come from Makefile.am"
#endif
#define CONFIG_DEFAULT_PATH SYSCONFDIR "/sshtund/sshtund.conf"
#define CONFIG_DEFAULT_IDENTITY SYSCONFDIR "/sshtund/id_ed25519"
#define CONFIG_DEFAULT_KNOWN_HOSTS SYSCONFDIR "/sshtund/known_hosts"
#define CONFIG_DEFAULT_LEARNED_HOSTS LOCALSTATEDIR "/lib/sshtund/known_hosts"

typedef enum HostKeyPolicy {
        HOST_KEY_POLICY_STRICT,
        HOST_KEY_POLICY_ACCEPT_NEW,
} HostKeyPolicy;

typedef enum Fallback {
        FALLBACK_ANY,
        FALLBACK_NONE,
} Fallback;

typedef enum ProbeType {
        PROBE_NONE,
        PROBE_TCP,
        PROBE_HTTP,
        PROBE_HTTPS,
} ProbeType;

/* What libssh2 runs fastest first (measured by `make bench`, see
 * bench/RESULTS.md): with libssh2 1.11.1 and OpenSSL 3.5 (Debian 13)
 * AES-GCM costs 15% less CPU per byte than AES-CTR with HMAC-SHA2-256; the
 * -etm MACs cost nothing measurable over the others and are the sounder
 * construction. Names the library does not know (GCM and -etm before 1.11,
 * so CTR on Debian 12) are skipped. */
#define CONFIG_DEFAULT_CIPHERS "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr,aes192-ctr"
#define CONFIG_DEFAULT_MACS                                                                       \
        "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512"

typedef struct ConfigSsh {
        char *user;                       /* default "sshtund" */
        char *identity;                   /* default CONFIG_DEFAULT_IDENTITY */
        char *known_hosts;                /* default CONFIG_DEFAULT_KNOWN_HOSTS; never written */
        char *learned_hosts;              /* default CONFIG_DEFAULT_LEARNED_HOSTS, "" (NULL here):
                                           * none; the only file sshtund writes */
        HostKeyPolicy host_key_policy;    /* default strict */
        uint16_t port;                    /* default 22 */
        double connect_timeout;           /* seconds, default 10 */
        double keepalive_interval;        /* seconds, default 5 */
        unsigned keepalive_count;         /* default 3 */
        unsigned pool_size;               /* default 1 */
        double backoff_max;               /* seconds: the longest wait between reconnects, default 60 */
        unsigned max_streams_per_session; /* default 256 */
        unsigned max_handshakes;          /* default 64 */
        char *ciphers;                    /* default CONFIG_DEFAULT_CIPHERS: the order offered */
        char *macs;                       /* default CONFIG_DEFAULT_MACS */
} ConfigSsh;

typedef struct ConfigProxy {
        ListenAddress *listen; /* default [ "unix:/run/sshtund/proxy.sock" ] */
        size_t n_listen;
        mode_t socket_mode;    /* default 0660 */
        char *socket_group;    /* default "" (NULL here): keep the process group */
        double open_timeout;   /* default 10 */
        double header_timeout; /* default 10 */
        AllowRule *allow;      /* default [ "nodes" ] */
        size_t n_allow;
        Fallback fallback;     /* default any */
        unsigned max_clients;  /* default 4096 */
} ConfigProxy;

typedef struct ConfigProbe {
        ProbeType type;       /* default http */
        char *target_host;    /* default "127.0.0.1" */
        uint16_t target_port; /* default 10248 */
        char *path;           /* default "/healthz" */
        double interval;      /* default 10 */
        double timeout;       /* default 5 */
        char *ca_file;        /* default "" (NULL here) */
} ConfigProbe;

typedef struct ConfigAdmin {
        char *socket;                 /* default "/run/sshtund/admin.sock" */
        char *readonly_socket;        /* default "" (NULL here): none; GET only */
        mode_t readonly_socket_mode;  /* default 0660 */
        char *readonly_socket_group;  /* default "" (NULL here): the process's group */
        bool has_metrics_listen;
        ListenAddress metrics_listen; /* default "": none */
        double ready_min_fraction;    /* default 0.5 */
        bool metrics_per_node;        /* default true: per-node series in /metrics */
} ConfigAdmin;

typedef struct ConfigLog {
        int level;        /* LOG_*; default LOG_INFO */
        LogTarget target; /* default auto */
} ConfigLog;

typedef struct ConfigNode {
        char *name;
        char *address;    /* IP literal or DNS name, as written */
        uint16_t port;    /* node's own "port", else ssh.port */
        char **hostnames; /* NULL-terminated, never NULL */
        bool has_pod_cidr;
        Cidr pod_cidr;
        const char *file; /* where it was defined (points into Config) */
        int line;
        bool from_nodes_file; /* read from nodes_file (or a file it includes) */
} ConfigNode;

typedef struct ConfigForward {
        ListenAddress listen;
        char *node;
        char *target_host;
        uint16_t target_port;
        int line;
} ConfigForward;

typedef struct ConfigKonnectivity {
        char *upstream; /* NULL when the section is absent */
        char **nodes;   /* NULL-terminated, never NULL; may hold "*" */
        bool fallback_to_ssh; /* default true */
        /* tcp upstreams: TLS when ca_file is set, as the API server's egress
         * TCP transport (caBundle, clientCert, clientKey); NULL when unset */
        char *ca_file;
        char *cert_file;
        char *key_file;
        char *server_name;  /* the name the certificate must carry; default the upstream host */
        uint16_t probe_port; /* the kubelet port the upstream path is checked with, default 10250 */
} ConfigKonnectivity;

typedef struct Config {
        char *path;
        char **files;     /* path, then each @include'd file nodes came from; NULL-terminated */
        ConfigSsh ssh;
        ConfigProxy proxy;
        ConfigProbe probe;
        ConfigAdmin admin;
        ConfigLog log;
        char *user;       /* default "" (NULL here): do not drop privileges */
        double drain_timeout; /* seconds streams may take to finish at SIGTERM, default 10 */
        ConfigNode *nodes;
        size_t n_nodes;
        char *nodes_file; /* default "" (NULL here) */
        bool nodes_file_missing; /* nodes_file is set but does not exist (yet) */
        ConfigForward *forwards;
        size_t n_forwards;
        ConfigKonnectivity konnectivity;
} Config;

/* Read and validate 'path'. On success returns 0 and a new Config. On failure
 * returns a negative errno (-EINVAL for content errors, -ENOENT/-EACCES/...
 * when the file cannot be read, -ENOMEM) and, if ret_error is not NULL,
 * stores one malloc'd message "FILE:LINE: KEY: what is wrong" (or
 * "FILE: strerror" when no line applies). Touches no network. */
int config_load(const char *path, Config **ret, char **ret_error);

/* The same for a reload: an identity file this process may no longer read
 * (privileges were dropped) is not an error, the key read at start stays. */
int config_load_for_reload(const char *path, Config **ret, char **ret_error);

/* What both `sshtund -t` and the start run, so that they cannot differ:
 * config_load(), then every check of what the file names on this host that
 * start would otherwise stumble on later (parser_check_host in
 * config-check.c: the accounts, the identity's permissions, known_hosts and
 * learned_hosts, the TLS files, the directories of the Unix sockets).
 * Binds, creates and dials nothing. Errors as config_load(). */
int config_load_for_start(const char *path, Config **ret, char **ret_error);

/* Write 'c' to 'f' as libconfig text that config_load() reads back to the
 * same configuration: every key with its value, defaults filled in (sshtund
 * -T). The nodes_file stays named, its nodes shown in comments. Returns 0
 * or -errno (a write error, -ENOMEM). */
int config_print(const Config *c, FILE *f);

/* Frees everything; accepts NULL; returns NULL. */
Config *config_free(Config *c);

/* The node called 'name', or NULL. */
const ConfigNode *config_find_node(const Config *c, const char *name);

/* True if the two nodes would connect the same way (address, port): used by
 * reload to keep unchanged nodes' sessions. */
bool config_node_same_endpoint(const ConfigNode *a, const ConfigNode *b);

/* A deep copy of 'src' into *dst (which owns it then, until
 * config_node_done()); its 'file' is not kept (it points into a Config). */
int config_node_copy(const ConfigNode *src, ConfigNode *dst);
void config_node_done(ConfigNode *c);

/* True if konnectivity.nodes lists 'name' (or "*") and an upstream is set. */
bool config_konnectivity_lists(const Config *c, const char *name);

/* Equal sections: a reload that leaves them alone keeps what was built from
 * them (the probes, the upstream). */
bool config_probe_equal(const ConfigProbe *a, const ConfigProbe *b);
bool config_konnectivity_equal(const ConfigKonnectivity *a, const ConfigKonnectivity *b);
