/* The TLS files a configuration names: CA bundles, a client certificate and
 * its key. Their users (probe, upstream) load them into their contexts with
 * these functions, and the configuration check loads them the same way into
 * a context it throws away: a file that passes the check loads at start. */
#pragma once

#include <openssl/types.h>

/* Which file of a certificate and key pair a failure is about. */
typedef enum TlsFile {
        TLS_FILE_CERT,
        TLS_FILE_KEY,
} TlsFile;

/* Load the CA certificates in 'path' into the verify store of 'ctx'. The
 * file must be a readable regular file holding at least one PEM
 * certificate (CRLs alone are not enough). Returns 0, or -errno (-EINVAL
 * for the contents, -ENOMEM) and, if ret_reason is not NULL, a malloc'd
 * reason without the file name: "Permission denied", "no usable CA
 * certificate (no certificate or crl found)". Leaves OpenSSL's error queue
 * empty. */
int tls_load_ca_file(SSL_CTX *ctx, const char *path, char **ret_reason);

/* Load the certificate chain in 'cert_file' (PEM, leaf first) and the
 * private key in 'key_file' (PEM, without a passphrase: nothing is
 * prompted for) into 'ctx'; the key must be the certificate's. Errors as
 * tls_load_ca_file(), and *ret_file (if not NULL) says which file is at
 * fault: a key that does not match is TLS_FILE_KEY. */
int tls_load_key_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, TlsFile *ret_file,
                      char **ret_reason);

/* The same two into a client context of their own, thrown away: for the
 * configuration check (sshtund -t, and start). Read the files. */
int tls_check_ca_file(const char *path, char **ret_reason);
int tls_check_key_pair(const char *cert_file, const char *key_file, TlsFile *ret_file, char **ret_reason);

/* "cert_file" or "key_file", as the configuration names them. */
const char *tls_file_to_string(TlsFile f);
