/* The Konnectivity upstream: where konnectivity-server is (unix, tcp, an
 * address to resolve) and the TLS context for tcp. Its tunnels are in
 * tunnel.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <systemd/sd-event.h>

#include "address.h"
#include "conf.h"
#include "macro.h"
#include "upstream-internal.h"


Upstream *upstream_unref(Upstream *u) {
        if (!u || --u->n_ref > 0)
                return NULL;
        SSL_CTX_free(u->ctx);
        iopoll_free(u->iopoll);
        sd_event_unref(u->event);
        free(u->address);
        free(u->host);
        free(u->verify_name);
        free(u);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Upstream *, upstream_unref);

Upstream *upstream_free(Upstream *u) {
        return upstream_unref(u);
}

_printf_(3, 4) static int fail_with(char **ret_error, int e, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return e;
}

/* A TLS file OpenSSL refused: which key, and why. */
static int tls_file_fail(char **ret_error, const char *key, const char *path) {
        unsigned long e = ERR_peek_last_error();
        const char *why = e ? ERR_reason_error_string(e) : NULL;

        ERR_clear_error();
        if (access(path, R_OK) < 0)
                return fail_with(ret_error, -errno, "konnectivity.%s \"%s\": %m", key, path);
        return fail_with(ret_error, -EINVAL, "konnectivity.%s \"%s\": %s", key, path, why ?: "unusable");
}

/* As the API server's egress TCP transport: TLS 1.2 or later, the server
 * checked against ca_file and the name, our certificate when configured. */
static int upstream_tls_new(Upstream *u, const ConfigKonnectivity *k, char **ret_error) {
        u->ctx = SSL_CTX_new(TLS_client_method());
        if (!u->ctx || SSL_CTX_set_min_proto_version(u->ctx, TLS1_2_VERSION) != 1) {
                ERR_clear_error();
                return fail_with(ret_error, -ENOMEM, "cannot set up TLS");
        }
        /* tx moves and goes out in pieces; idle tunnels keep no record buffers */
        SSL_CTX_set_mode(u->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                         SSL_MODE_RELEASE_BUFFERS);
        /* a FIN without close_notify ends the stream as a TCP EOF does: the
         * tunnelled protocol (TLS to the kubelet, mostly) has its own framing */
        SSL_CTX_set_options(u->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_verify(u->ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_load_verify_locations(u->ctx, k->ca_file, NULL) != 1)
                return tls_file_fail(ret_error, "ca_file", k->ca_file);
        if (!k->cert_file != !k->key_file)
                return fail_with(ret_error, -EINVAL, "konnectivity: cert_file and key_file go together");
        if (k->cert_file && SSL_CTX_use_certificate_chain_file(u->ctx, k->cert_file) != 1)
                return tls_file_fail(ret_error, "cert_file", k->cert_file);
        if (k->key_file && SSL_CTX_use_PrivateKey_file(u->ctx, k->key_file, SSL_FILETYPE_PEM) != 1)
                return tls_file_fail(ret_error, "key_file", k->key_file);
        if (k->key_file && SSL_CTX_check_private_key(u->ctx) != 1) {
                ERR_clear_error();
                return fail_with(ret_error, -EINVAL, "konnectivity.key_file \"%s\" does not match cert_file",
                                 k->key_file);
        }
        u->verify_name = strdup(k->server_name ?: u->host);
        return u->verify_name ? 0 : -ENOMEM;
}

int upstream_new(sd_event *e, const ConfigKonnectivity *k, Upstream **ret, char **ret_error) {
        _cleanup_(upstream_unrefp) Upstream *u = NULL;
        const char *a = k->upstream;
        int r;

        if (!a)
                return fail_with(ret_error, -EINVAL, "no konnectivity upstream configured");
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->n_ref = 1;
        u->event = sd_event_ref(e);
        r = iopoll_new(u->event, &u->iopoll);
        if (r < 0)
                return r;
        u->address = strdup(a);
        if (!u->address)
                return -ENOMEM;
        if (strncmp(a, "unix:", 5) == 0 && a[5] == '/' &&
            strlen(a + 5) < sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                struct sockaddr_un *sa = (struct sockaddr_un *) &u->addr;
                sa->sun_family = AF_UNIX;
                memcpy(sa->sun_path, a + 5, strlen(a + 5) + 1);
                u->addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(a + 5) + 1);
        } else if (strncmp(a, "tcp:", 4) == 0 && (r = hostport_split(a + 4, &u->host, &u->port)) != -EINVAL) {
                struct sockaddr_in *in = (struct sockaddr_in *) &u->addr;
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &u->addr;

                if (r < 0)
                        return r;
                if (inet_pton(AF_INET, u->host, &in->sin_addr) == 1) {
                        in->sin_family = AF_INET;
                        in->sin_port = htons(u->port);
                        u->addr_len = sizeof(*in);
                } else if (inet_pton(AF_INET6, u->host, &in6->sin6_addr) == 1) {
                        in6->sin6_family = AF_INET6;
                        in6->sin6_port = htons(u->port);
                        u->addr_len = sizeof(*in6);
                }
        } else
                return fail_with(ret_error, -EINVAL, "invalid upstream \"%s\"", a);
        if (k->ca_file) {
                if (!u->host)
                        return fail_with(ret_error, -EINVAL, "TLS needs a tcp: upstream, not \"%s\"", a);
                r = upstream_tls_new(u, k, ret_error);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(u);
        return 0;
}

const char *upstream_address(const Upstream *u) {
        return u->address;
}

unsigned upstream_conns(const Upstream *u) {
        return u->n_conns;
}
