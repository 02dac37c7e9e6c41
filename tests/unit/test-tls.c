/* Tests for tls.c: CA bundles that hold a certificate or do not, files that
 * cannot be read, certificate and key pairs that load, do not parse or do
 * not match; each failure with its reason and the file at fault. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "macro.h"
#include "tls.h"

typedef struct Fixture {
        bool ok; /* the openssl CLI made the files */
        char dir[64];
        char path[160];
} Fixture;

/* A CA, a server certificate signed by it with its key, another key, and
 * the server key encrypted with a passphrase. */
static int setup(void **state) {
        static const char script[] =
                "cd %s && "
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 2 "
                "  -subj /CN=test-ca -keyout ca.key -out ca.crt && "
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=server "
                "  -keyout server.key -out server.csr && "
                "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 2 "
                "  -out server.crt && "
                "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key && "
                "openssl pkey -in server.key -aes256 -passout pass:secret -out encrypted.key && "
                "cat ca.crt server.crt >bundle.crt && "
                "printf 'not a certificate\\n' >junk.pem && : >empty.pem && mkdir dir.pem && mkfifo fifo.pem";
        char cmd[sizeof(script) + 64 + 32];
        Fixture *fx = calloc(1, sizeof(Fixture));

        assert_non_null(fx);
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-tls-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(cmd, sizeof(cmd), "(");
        snprintf(cmd + 1, sizeof(cmd) - 1, script, fx->dir);
        strncat(cmd, ") >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
        fx->ok = system(cmd) == 0;
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        Fixture *fx = *state;
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

static const char *file(Fixture *fx, const char *name) {
        snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, name);
        return fx->path;
}

#define REQUIRE_FILES(fx)                                           \
        do {                                                        \
                if (!(fx)->ok)                                      \
                        skip(); /* no openssl CLI to make them */   \
        } while (0)

static void assert_ca_fails(Fixture *fx, const char *name, int error, const char *reason) {
        char *why = NULL;

        assert_int_equal(tls_check_ca_file(file(fx, name), &why), error);
        assert_non_null(why);
        if (!strstr(why, reason))
                fail_msg("%s: reason \"%s\", expected \"%s\" in it", name, why, reason);
        free(why);
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_ca_file(void **state) {
        Fixture *fx = *state;
        char *why = NULL;

        REQUIRE_FILES(fx);
        assert_int_equal(tls_check_ca_file(file(fx, "ca.crt"), &why), 0);
        assert_null(why);
        assert_int_equal(tls_check_ca_file(file(fx, "bundle.crt"), NULL), 0);

        assert_ca_fails(fx, "missing.pem", -ENOENT, "No such file or directory");
        assert_ca_fails(fx, "dir.pem", -EISDIR, "Is a directory");
        assert_ca_fails(fx, "fifo.pem", -EINVAL, "not a regular file");
        assert_ca_fails(fx, "junk.pem", -EINVAL, "no usable CA certificate (");
        assert_ca_fails(fx, "empty.pem", -EINVAL, "no usable CA certificate (");
        /* a private key is PEM too, but no certificate */
        assert_ca_fails(fx, "other.key", -EINVAL, "no usable CA certificate (");
        assert_int_equal(tls_check_ca_file(file(fx, "junk.pem"), NULL), -EINVAL);
}

/* What probe.c and upstream.c do: load into their own context, which then
 * verifies with it. */
static void test_ca_file_into_context(void **state) {
        Fixture *fx = *state;
        SSL_CTX *ctx;
        char *why = NULL;

        REQUIRE_FILES(fx);
        ctx = SSL_CTX_new(TLS_client_method());
        assert_non_null(ctx);
        assert_int_equal(tls_load_ca_file(ctx, file(fx, "ca.crt"), &why), 0);
        assert_null(why);
        assert_int_equal(sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx))), 1);
        SSL_CTX_free(ctx);
}

static void assert_pair_fails(Fixture *fx, const char *cert, const char *key, int error, TlsFile which,
                              const char *reason) {
        _cleanup_free_ char *c = strdup(file(fx, cert)), *k = strdup(file(fx, key));
        TlsFile got = which == TLS_FILE_CERT ? TLS_FILE_KEY : TLS_FILE_CERT;
        char *why = NULL;

        assert_int_equal(tls_check_key_pair(c, k, &got, &why), error);
        assert_int_equal(got, which);
        assert_non_null(why);
        if (!strstr(why, reason))
                fail_msg("%s, %s: reason \"%s\", expected \"%s\" in it", cert, key, why, reason);
        free(why);
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_key_pair(void **state) {
        Fixture *fx = *state;
        _cleanup_free_ char *c = NULL, *k = NULL;
        TlsFile which = TLS_FILE_KEY;
        char *why = NULL;

        REQUIRE_FILES(fx);
        c = strdup(file(fx, "server.crt"));
        k = strdup(file(fx, "server.key"));
        assert_int_equal(tls_check_key_pair(c, k, &which, &why), 0);
        assert_null(why);
        assert_int_equal(which, TLS_FILE_KEY); /* untouched */
        assert_int_equal(tls_check_key_pair(c, k, NULL, NULL), 0);

        assert_pair_fails(fx, "missing.crt", "server.key", -ENOENT, TLS_FILE_CERT, "No such file");
        assert_pair_fails(fx, "junk.pem", "server.key", -EINVAL, TLS_FILE_CERT, "no usable certificate (");
        assert_pair_fails(fx, "fifo.pem", "server.key", -EINVAL, TLS_FILE_CERT, "not a regular file");
        assert_pair_fails(fx, "server.crt", "missing.key", -ENOENT, TLS_FILE_KEY, "No such file");
        assert_pair_fails(fx, "server.crt", "dir.pem", -EISDIR, TLS_FILE_KEY, "Is a directory");
        assert_pair_fails(fx, "server.crt", "junk.pem", -EINVAL, TLS_FILE_KEY, "no usable private key (");
        assert_pair_fails(fx, "server.crt", "other.key", -EINVAL, TLS_FILE_KEY,
                          "does not match the certificate in cert_file");
        /* fails at once: nothing asks for the passphrase on the terminal */
        assert_pair_fails(fx, "server.crt", "encrypted.key", -EINVAL, TLS_FILE_KEY, "no usable private key (");
        assert_string_equal(tls_file_to_string(TLS_FILE_CERT), "cert_file");
        assert_string_equal(tls_file_to_string(TLS_FILE_KEY), "key_file");
}

/* Only a user other than root can be kept from reading a file. */
static void test_unreadable(void **state) {
        Fixture *fx = *state;
        _cleanup_free_ char *c = NULL, *k = NULL;
        char *why = NULL;
        TlsFile which;

        REQUIRE_FILES(fx);
        if (geteuid() == 0)
                skip(); /* root reads a mode 0000 file; the integration tests cover it with setpriv */
        c = strdup(file(fx, "server.crt"));
        k = strdup(file(fx, "server.key"));
        assert_int_equal(chmod(k, 0), 0);
        assert_int_equal(tls_check_key_pair(c, k, &which, &why), -EACCES);
        assert_int_equal(which, TLS_FILE_KEY);
        assert_string_equal(why, "Permission denied");
        free(why);
        assert_int_equal(chmod(k, 0600), 0);

        assert_int_equal(chmod(file(fx, "ca.crt"), 0), 0);
        assert_ca_fails(fx, "ca.crt", -EACCES, "Permission denied");
        assert_int_equal(chmod(file(fx, "ca.crt"), 0644), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ca_file),
                cmocka_unit_test(test_ca_file_into_context),
                cmocka_unit_test(test_key_pair),
                cmocka_unit_test(test_unreadable),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
