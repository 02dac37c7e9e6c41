/* The TLS files a configuration names, loaded into an OpenSSL context: CA
 * bundles, a certificate chain and its key; why one is unusable, in words. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "macro.h"
#include "tls.h"

const char *tls_file_to_string(TlsFile f) {
        return f == TLS_FILE_CERT ? "cert_file" : "key_file";
}

static int fail_with(char **ret_reason, int r, const char *what, const char *why) {
        if (ret_reason && asprintf(ret_reason, "%s%s%s%s", what, why ? " (" : "", why ?: "", why ? ")" : "") < 0)
                *ret_reason = NULL;
        return r;
}

static int fail_errno(char **ret_reason, int r) {
        if (ret_reason)
                *ret_reason = strdup(strerror(-r));
        return r;
}

/* OpenSSL's reason for the failure at hand, and the queue emptied. */
static const char *error_reason(void) {
        unsigned long e = ERR_peek_last_error();
        const char *s = e ? ERR_reason_error_string(e) : NULL;

        ERR_clear_error();
        return s;
}

/* What OpenSSL would only call "system lib": the file is missing, cannot be
 * read, or is a directory. A FIFO or a device is refused rather than
 * opened by OpenSSL, which would wait on it. */
static int check_readable(const char *path) {
        mode_t type;
        int r = fileio_check_readable(path, &type);

        if (r < 0)
                return r;
        return type == S_IFREG ? 0 : -EINVAL;
}

static int fail_unreadable(char **ret_reason, int r) {
        if (r == -EINVAL)
                return fail_with(ret_reason, r, "not a regular file", NULL);
        return fail_errno(ret_reason, r);
}

static bool store_has_certificate(X509_STORE *store) {
        STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(store);

        for (int i = 0; i < sk_X509_OBJECT_num(objects); i++)
                if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509)
                        return true;
        return false;
}

int tls_load_ca_file(SSL_CTX *ctx, const char *path, char **ret_reason) {
        int r;

        ERR_clear_error();
        r = check_readable(path);
        if (r < 0)
                return fail_unreadable(ret_reason, r);
        if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
                return fail_with(ret_reason, -EINVAL, "no usable CA certificate", error_reason() ?: "unknown error");
        if (!store_has_certificate(SSL_CTX_get_cert_store(ctx)))
                return fail_with(ret_reason, -EINVAL, "no usable CA certificate", "no certificate, only CRLs");
        return 0;
}

/* A daemon has no one to ask: an encrypted key fails instead of prompting
 * on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return 0;
}

int tls_load_key_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, TlsFile *ret_file,
                      char **ret_reason) {
        EVP_PKEY *key = NULL; /* ours; the context takes a reference of its own */
        TlsFile which = TLS_FILE_CERT;
        FILE *f;
        int r;

        ERR_clear_error();
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
        r = check_readable(cert_file);
        if (r < 0) {
                r = fail_unreadable(ret_reason, r);
                goto out;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
                r = fail_with(ret_reason, -EINVAL, "no usable certificate", error_reason() ?: "unknown error");
                goto out;
        }

        which = TLS_FILE_KEY;
        r = check_readable(key_file);
        if (r < 0) {
                r = fail_unreadable(ret_reason, r);
                goto out;
        }
        /* read apart from the certificate, so that a key that does not
         * match is told from one that does not parse */
        f = fopen(key_file, "re");
        if (!f) {
                r = fail_errno(ret_reason, -errno);
                goto out;
        }
        key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
        fclose(f);
        if (!key) {
                r = fail_with(ret_reason, -EINVAL, "no usable private key", error_reason() ?: "unknown error");
                goto out;
        }
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
                ERR_clear_error();
                r = fail_with(ret_reason, -EINVAL, "does not match the certificate in cert_file", NULL);
                goto out;
        }
        r = 0;
out:
        EVP_PKEY_free(key);
        if (r < 0 && ret_file)
                *ret_file = which;
        return r;
}

static SSL_CTX *client_context(void) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        if (!ctx)
                ERR_clear_error();
        return ctx;
}

int tls_check_ca_file(const char *path, char **ret_reason) {
        SSL_CTX *ctx = client_context();
        int r;

        if (!ctx)
                return -ENOMEM;
        r = tls_load_ca_file(ctx, path, ret_reason);
        SSL_CTX_free(ctx);
        return r;
}

int tls_check_key_pair(const char *cert_file, const char *key_file, TlsFile *ret_file, char **ret_reason) {
        SSL_CTX *ctx = client_context();
        int r;

        if (!ctx)
                return -ENOMEM;
        r = tls_load_key_pair(ctx, cert_file, key_file, ret_file, ret_reason);
        SSL_CTX_free(ctx);
        return r;
}
