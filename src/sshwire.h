/* The SSH wire format (RFC 4251 section 5): uint32, string and mpint, read
 * from and written to caller-owned memory with every length checked. The
 * one codec for key blobs (identity, hostkey), signatures, and the
 * direct-tcpip open message (channel). No allocation, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Contracts, as OpenSSH's sshbuf.h states its own:
 *  - A reader never reads outside the 'len' bytes it was given; a writer
 *    never writes outside its 'size' bytes.
 *  - Getters return 0, or -EBADMSG when the data ends early or is malformed;
 *    on failure nothing is written to the ret_* arguments and the cursor
 *    does not move, so a caller may try another reading.
 *  - Putters return 0, or -ENOBUFS when the value does not fit; a writer
 *    that overflowed once stays failed (every later put fails too), so a
 *    sequence of puts can be checked once, at sshwire_writer_finish().
 *  - Strings returned by getters point into the reader's data: they live as
 *    long as that data and are not NUL-terminated. */

/* No string or mpint this codec accepts is longer: far above any SSH key
 * blob or signature, far below a length that could overflow size_t
 * arithmetic on any platform. */
#define SSHWIRE_STRING_MAX (256U * 1024U)

typedef struct SshWireReader {
        const uint8_t *p;
        size_t left;
} SshWireReader;

/* A cursor over data[0..len). */
void sshwire_reader_init(SshWireReader *r, const void *data, size_t len);
/* Bytes not read yet. */
size_t sshwire_reader_left(const SshWireReader *r);

int sshwire_get_u8(SshWireReader *r, uint8_t *ret);
int sshwire_get_u32(SshWireReader *r, uint32_t *ret);
/* A string: uint32 length, then that many bytes (at most SSHWIRE_STRING_MAX).
 * ret may be NULL to skip it. */
int sshwire_get_string(SshWireReader *r, const uint8_t **ret, size_t *ret_len);
/* A string that must be text without NUL bytes, copied NUL-terminated into
 * buf[0..size); -ENOBUFS (cursor unmoved) when it does not fit. */
int sshwire_get_cstring(SshWireReader *r, char *buf, size_t size);
/* A non-negative mpint: its magnitude, big-endian, leading zero bytes
 * dropped (*ret_len is 0 for zero). A negative value is -EBADMSG; needless
 * leading zeros are accepted and trimmed, as OpenSSH's sshbuf does. */
int sshwire_get_mpint(SshWireReader *r, const uint8_t **ret, size_t *ret_len);
/* n raw bytes (no length field). */
int sshwire_get_bytes(SshWireReader *r, size_t n, const uint8_t **ret);

/* True if the string s[0..n) is exactly 'text'. */
bool sshwire_string_is(const uint8_t *s, size_t n, const char *text);

typedef struct SshWireWriter {
        uint8_t *buf;
        size_t size, len;
        bool overflow;
} SshWireWriter;

/* A writer filling buf[0..size) from the start. */
void sshwire_writer_init(SshWireWriter *w, void *buf, size_t size);

int sshwire_put_u8(SshWireWriter *w, uint8_t v);
int sshwire_put_u32(SshWireWriter *w, uint32_t v);
int sshwire_put_string(SshWireWriter *w, const void *data, size_t len);
/* A string from NUL-terminated text (the NUL not included). */
int sshwire_put_cstring(SshWireWriter *w, const char *s);
/* A non-negative mpint from a big-endian magnitude: leading zero bytes are
 * dropped and a zero byte is prepended when the top bit is set. */
int sshwire_put_mpint(SshWireWriter *w, const uint8_t *magnitude, size_t len);
int sshwire_put_bytes(SshWireWriter *w, const void *data, size_t len);

/* 0 and the bytes written in *ret_len, or -ENOBUFS if any put overflowed. */
int sshwire_writer_finish(const SshWireWriter *w, size_t *ret_len);

/* The bytes sshwire_put_string() and sshwire_put_mpint() take for a value. */
static inline size_t sshwire_string_size(size_t len) {
        return 4 + len;
}
size_t sshwire_mpint_size(const uint8_t *magnitude, size_t len);

/* Bits of a magnitude as returned by sshwire_get_mpint() (ssh-keygen -l's
 * key size for RSA and DSA). */
unsigned sshwire_mpint_bits(const uint8_t *magnitude, size_t len);
