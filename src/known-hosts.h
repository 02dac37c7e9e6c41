/* The OpenSSH known_hosts file: plain, [host]:port, hashed |1|, wildcard
 * and negated patterns, @revoked; what sshtund makes of the key a node
 * presents, read from one file or several together (ssh.known_hosts and
 * ssh.learned_hosts), and the atomic rewrites that record keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct KnownHosts KnownHosts;

/* Files one set reads together. */
#define KNOWN_HOSTS_FILES_MAX 4

typedef enum HostKeyCheck {
        HOSTKEY_OK,       /* a line for this host holds this key */
        HOSTKEY_UNKNOWN,  /* no line for this host at all */
        HOSTKEY_MISMATCH, /* lines for this host exist, none holds this key */
        HOSTKEY_REVOKED,  /* the key is listed under @revoked */
} HostKeyCheck;

/* Read known_hosts files (1 to KNOWN_HOSTS_FILES_MAX, none NULL or empty)
 * into one set; file i is index i below. A missing file is empty (returns
 * 0). Lines that do not parse are skipped and counted, as OpenSSH does.
 * Other read errors: -errno. */
int known_hosts_load_files(const char *const *paths, size_t n, KnownHosts **ret);
/* One file. */
int known_hosts_load(const char *path, KnownHosts **ret);
KnownHosts *known_hosts_free(KnownHosts *kh);
/* Lines skipped, every file. */
size_t known_hosts_bad_lines(const KnownHosts *kh);
size_t known_hosts_entries(const KnownHosts *kh);
size_t known_hosts_files(const KnownHosts *kh);
/* File 'file''s path (NULL past the last), and its skipped lines: how
 * many, and the number of the first. */
const char *known_hosts_file(const KnownHosts *kh, size_t file, size_t *ret_bad_lines, unsigned *ret_first_bad);

/* True if a file changed (inode, size or mtime) since it was loaded, or
 * appeared or vanished: the caller then loads the set again. */
bool known_hosts_is_stale(const KnownHosts *kh);

/* Check 'blob' (the SSH wire-format public key the server sent) for 'host'
 * at 'port'. The name looked up is "host" for port 22 and "[host]:port"
 * otherwise, as OpenSSH does. A host with keys of other types only is
 * HOSTKEY_MISMATCH: a server offering a different key type is not a new
 * host. */
HostKeyCheck known_hosts_check(const KnownHosts *kh, const char *host, uint16_t port,
                               const void *blob, size_t blob_len);
/* known_hosts_check() over several files: @revoked in any file wins; a
 * file that holds other keys of the presented key's type for the host
 * refuses it (MISMATCH) whatever the other files say; else a file holding
 * the key accepts it. *ret_path and *ret_line (may be NULL) name the line
 * that decided (path NULL for UNKNOWN; line 0 for a key added in memory). */
HostKeyCheck known_hosts_verify(const KnownHosts *kh, const char *host, uint16_t port, const void *blob,
                                size_t blob_len, const char **ret_path, unsigned *ret_line);

/* A key the set holds for a host, as known_hosts_keys() lists it; the
 * pointers are into the set. */
typedef struct KnownHostsKey {
        const char *type;
        const uint8_t *blob;
        size_t blob_len;
        bool revoked;
        const char *path; /* the file */
        unsigned line;    /* 0: added in memory */
        size_t index;     /* order in the set */
} KnownHostsKey;

/* Every line for host:port (revoked ones too), in file order: *ret
 * malloc'd (NULL when none). -EIO if a hashed line could not be checked. */
int known_hosts_keys(const KnownHosts *kh, const char *host, uint16_t port, KnownHostsKey **ret, size_t *ret_n);

/* Add a key for host:port to the set in memory, as if file 'file' held it
 * (a key recorded on disk later): checks find it at once. */
int known_hosts_add(KnownHosts *kh, size_t file, const char *host, uint16_t port, const void *blob,
                    size_t blob_len);

/* The key types ("ssh-ed25519", ...) known for host:port, in file order,
 * without duplicates, as a malloc'd comma-separated string (empty string if
 * none): fed to the SSH library's host-key algorithm preference so that the
 * server picks a type we can verify. NULL on allocation failure. */
char *known_hosts_types(const KnownHosts *kh, const char *host, uint16_t port);

/* A key to record for host:port; 'replace': the lines that name this host
 * alone with another key of the same type go (a rotation). 'forget': no
 * key is recorded (blob unused) and every plain line naming this host
 * alone goes; @revoked lines and lines naming other hosts too stay. */
typedef struct KnownHostsEdit {
        const char *host;
        uint16_t port;
        const void *blob;
        size_t blob_len;
        bool replace;
        bool forget;
} KnownHostsEdit;

/* Record keys in the file 'path' (a symlink is followed): a plain line per
 * key not there yet. The file is written anew beside itself, fsync'd and
 * renamed over the old one, so that a crash leaves the old file or the new
 * one; its mode is kept (0644 when created), and nothing is written when
 * nothing changes (*ret_changed false). A file with a line that does not
 * parse is left alone: -EBADMSG, *ret_bad_line its number. Not a regular
 * file: -EINVAL. Others -errno (the directory must be writable). */
int known_hosts_update(const char *path, const KnownHostsEdit *edits, size_t n, bool *ret_changed,
                       unsigned *ret_bad_line);
/* known_hosts_update() with one key, no replacing. */
int known_hosts_append(const char *path, const char *host, uint16_t port, const void *blob,
                       size_t blob_len);

/* Remove what an interrupted known_hosts_update() of 'path' left behind (the
 * process died between writing its new file and renaming it): files named
 * ".FILE.XXXXXX" beside it, regular and unchanged for 'min_age_sec'.
 * *ret_removed: how many went. 0, or -errno for the first failure (the
 * directory unreadable, a file that could not be removed). */
int known_hosts_remove_temporaries(const char *path, unsigned min_age_sec, unsigned *ret_removed);

/* "host KEYTYPE BASE64" (or "[host]:port ...") for this key, malloc'd. */
char *known_hosts_line(const char *host, uint16_t port, const void *blob, size_t blob_len);
