/* The daemon's SSH identity: the private key file, read once at start (so
 * privileges can be dropped afterwards) and checked for a type the nodes
 * will accept. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Identity Identity;

/* Read the private key at 'path' (OpenSSH "openssh-key-v1" format, or the
 * PEM "EC PRIVATE KEY" form) and check it:
 *  - ed25519 and ECDSA (nistp256/384/521) are accepted;
 *  - RSA is refused: libssh2 1.10 signs only with SHA-1 "ssh-rsa", which
 *    OpenSSH >= 8.8 rejects by default;
 *  - DSA is refused (disabled in OpenSSH >= 7.0);
 *  - a passphrase-protected key is refused (a daemon cannot prompt).
 * On failure returns a negative errno (-EINVAL for a key we refuse) and, if
 * ret_error is not NULL, a malloc'd one-line reason without file name. */
int identity_load(const char *path, Identity **ret, char **ret_error);

/* Wipes the key material; accepts NULL; returns NULL. */
Identity *identity_free(Identity *id);

/* The key type as SSH names it: "ssh-ed25519", "ecdsa-sha2-nistp256", ... */
const char *identity_type(const Identity *id);
/* Room identity_sign() needs: an ECDSA nistp521 "mpint r, mpint s". */
#define IDENTITY_SIGNATURE_MAX 160

/* The SSH public key blob (RFC 4253 6.6), as authorized_keys holds it. */
const uint8_t *identity_public_blob(const Identity *id, size_t *ret_len);
/* Signs data as SSH public-key authentication wants it (RFC 4252 7): the
 * signature blob without its algorithm name, for libssh2's sign callback:
 * ed25519's 64 bytes, or ECDSA's "mpint r, mpint s". sig has room for
 * IDENTITY_SIGNATURE_MAX bytes. The key is parsed once at load, so a
 * signature costs no decoding (OpenSSL 3's PEM decoder takes ~0.7 ms). */
int identity_sign(const Identity *id, const uint8_t *data, size_t len, uint8_t *sig, size_t *ret_len);
/* The file's bytes. */
const char *identity_data(const Identity *id, size_t *ret_len);
/* "SHA256:..." of the public key. */
const char *identity_fingerprint(const Identity *id);
/* The path it was read from. */
const char *identity_path(const Identity *id);
/* True if anyone may read the file (st_mode & 004). */
bool identity_is_world_readable(const Identity *id);
/* True if group or others may read the file (st_mode & 077). */
bool identity_is_group_or_world_readable(const Identity *id);
