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
#include "tls.h"
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

/* As the API server's egress TCP transport: TLS 1.2 or later, the server
 * checked against ca_file and the name, our certificate when configured. */
static int upstream_tls_new(Upstream *u, const ConfigKonnectivity *k, char **ret_error) {
        _cleanup_free_ char *why = NULL;
        TlsFile which;
        int r;

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
        r = tls_load_ca_file(u->ctx, k->ca_file, &why);
        if (r < 0)
                return fail_with(ret_error, r, "konnectivity.ca_file \"%s\": %s", k->ca_file, strna(why));
        if (!k->cert_file != !k->key_file)
                return fail_with(ret_error, -EINVAL, "konnectivity: cert_file and key_file go together");
        if (k->cert_file) {
                r = tls_load_key_pair(u->ctx, k->cert_file, k->key_file, &which, &why);
                if (r < 0)
                        return fail_with(ret_error, r, "konnectivity.%s \"%s\": %s", tls_file_to_string(which),
                                         which == TLS_FILE_CERT ? k->cert_file : k->key_file, strna(why));
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
                IpAddr ip;

                if (r < 0)
                        return r;
                if (ipaddr_parse(u->host, &ip) == 0)
                        u->addr_len = ipaddr_to_sockaddr(&ip, u->port, &u->addr);
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
