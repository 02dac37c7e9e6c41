/* Fuzzing the SSH wire codec: a script of getters, chosen by the input,
 * walks the rest of the input. Properties: a getter consumes exactly what
 * it reports (or nothing on failure), never more than is left; whatever
 * was read writes back to the same bytes (strings, u32) or to the same
 * value (mpints, whose encoding is canonicalised), and the writer never
 * overruns its buffer. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sshwire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        return 0;
}

/* One mpint read back from its own canonical encoding. */
static void check_mpint_roundtrip(const uint8_t *m, size_t n) {
        size_t size = sshwire_mpint_size(m, n), len = 0;
        uint8_t *buf = malloc(size + 1);
        const uint8_t *m2;
        size_t n2;
        SshWireWriter w;
        SshWireReader r;

        fuzz_check(buf);
        buf[size] = 0x5a;
        sshwire_writer_init(&w, buf, size);
        fuzz_check(sshwire_put_mpint(&w, m, n) == 0);
        fuzz_check(sshwire_writer_finish(&w, &len) == 0 && len == size);
        fuzz_check(buf[size] == 0x5a);
        sshwire_reader_init(&r, buf, len);
        fuzz_check(sshwire_get_mpint(&r, &m2, &n2) == 0);
        fuzz_check(n2 == n && (n == 0 || memcmp(m, m2, n) == 0));
        fuzz_check(sshwire_reader_left(&r) == 0);
        fuzz_check(n == 0 || m[0] != 0);
        fuzz_check(sshwire_mpint_bits(m, n) <= n * 8);
        free(buf);

        /* one byte short: the writer refuses and stays failed */
        if (size > 0) {
                uint8_t small[8];
                uint8_t *b = size - 1 <= sizeof small ? small : malloc(size - 1);
                fuzz_check(b);
                sshwire_writer_init(&w, b, size - 1);
                fuzz_check(sshwire_put_mpint(&w, m, n) == -ENOBUFS);
                fuzz_check(sshwire_put_u8(&w, 0) == -ENOBUFS);
                fuzz_check(sshwire_writer_finish(&w, &len) == -ENOBUFS);
                if (b != small)
                        free(b);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* the first byte: how many ops; then one byte per op */
        size_t n_ops = size > 0 ? data[0] % 16 : 0;
        const uint8_t *ops = data + (size > 0 ? 1 : 0);
        size_t skip;
        SshWireReader r;

        if (size < 1 + n_ops)
                return 0;
        skip = 1 + n_ops;
        sshwire_reader_init(&r, data + skip, size - skip);

        for (size_t i = 0; i < n_ops; i++) {
                size_t before = sshwire_reader_left(&r), after, n = 0;
                const uint8_t *at = data + size - before, *s = NULL;
                uint32_t v = 0;
                uint8_t b = 0;
                char text[64];
                int k;

                switch (ops[i] % 6) {
                case 0:
                        k = sshwire_get_u8(&r, &b);
                        after = sshwire_reader_left(&r);
                        fuzz_check(k == 0 ? after + 1 == before && b == at[0] : (k == -EBADMSG && after == before));
                        break;
                case 1:
                        k = sshwire_get_u32(&r, &v);
                        after = sshwire_reader_left(&r);
                        if (k == 0) {
                                uint8_t out[4];
                                SshWireWriter w;
                                fuzz_check(after + 4 == before);
                                sshwire_writer_init(&w, out, sizeof out);
                                fuzz_check(sshwire_put_u32(&w, v) == 0 && memcmp(out, at, 4) == 0);
                        } else
                                fuzz_check(k == -EBADMSG && after == before && before < 4);
                        break;
                case 2:
                        k = sshwire_get_string(&r, &s, &n);
                        after = sshwire_reader_left(&r);
                        if (k == 0) {
                                uint8_t *out = malloc(4 + n);
                                SshWireWriter w;
                                size_t len;
                                fuzz_check(out);
                                fuzz_check(after + 4 + n == before && s == at + 4 && n <= SSHWIRE_STRING_MAX);
                                sshwire_writer_init(&w, out, 4 + n);
                                fuzz_check(sshwire_put_string(&w, s, n) == 0);
                                fuzz_check(sshwire_writer_finish(&w, &len) == 0 && len == 4 + n);
                                fuzz_check(memcmp(out, at, 4 + n) == 0);
                                free(out);
                        } else
                                fuzz_check(k == -EBADMSG && after == before);
                        break;
                case 3:
                        k = sshwire_get_mpint(&r, &s, &n);
                        after = sshwire_reader_left(&r);
                        if (k == 0) {
                                fuzz_check(after < before && s >= at + 4 && s + n <= at + (before - after));
                                check_mpint_roundtrip(s, n);
                        } else
                                fuzz_check(k == -EBADMSG && after == before);
                        break;
                case 4:
                        k = sshwire_get_cstring(&r, text, sizeof text);
                        after = sshwire_reader_left(&r);
                        if (k == 0)
                                fuzz_check(after + 4 + strlen(text) == before &&
                                           memcmp(text, at + 4, strlen(text)) == 0);
                        else
                                fuzz_check((k == -EBADMSG || k == -ENOBUFS) && after == before);
                        break;
                default:
                        n = ops[i] / 6;
                        k = sshwire_get_bytes(&r, n, &s);
                        after = sshwire_reader_left(&r);
                        fuzz_check(k == 0 ? after + n == before && (n == 0 || s == at) : (n > before && after == before));
                        break;
                }
        }
        return 0;
}
