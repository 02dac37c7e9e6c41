/* Bounded byte queues for streams and the SSH output. Storage grows on
 * demand up to the limit and is freed whenever the queue runs empty. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "macro.h"

/* Smallest allocation: most streams carry small messages. */
#define BUFFER_MIN_ALLOC 4096

void buffer_init(Buffer *b, size_t limit) {
        *b = (Buffer) { .limit = limit };
}

void buffer_done(Buffer *b) {
        free(b->data);
        *b = (Buffer) { .limit = b->limit };
}

/* Ensure 'want' contiguous free bytes at the tail (want > 0). */
static int buffer_make_room(Buffer *b, size_t want) {
        size_t len = buffer_len(b);

        if (b->alloc - b->end >= want)
                return 0;
        /* slide the data to the front when that is enough */
        if (b->start > 0 && b->alloc - len >= want) {
                memmove(b->data, b->data + b->start, len);
                b->start = 0;
                b->end = len;
                return 0;
        }
        size_t n = MAX(b->alloc, (size_t) BUFFER_MIN_ALLOC);
        while (n - len < want)
                n *= 2;
        if (len + want <= b->limit && n > b->limit)
                n = MAX(b->limit, len + want);
        uint8_t *p = malloc(n);
        if (!p)
                return -ENOMEM;
        if (len)
                memcpy(p, b->data + b->start, len);
        free(b->data);
        b->data = p;
        b->alloc = n;
        b->start = 0;
        b->end = len;
        return 0;
}

ssize_t buffer_append(Buffer *b, const void *p, size_t len) {
        size_t n = MIN(len, buffer_room(b));
        if (n == 0)
                return 0;
        if (buffer_make_room(b, n) < 0)
                return -ENOMEM;
        memcpy(b->data + b->end, p, n);
        b->end += n;
        return (ssize_t) n;
}

int buffer_append_force(Buffer *b, const void *p, size_t len) {
        if (len == 0)
                return 0;
        if (buffer_make_room(b, len) < 0)
                return -ENOMEM;
        memcpy(b->data + b->end, p, len);
        b->end += len;
        return 0;
}

void buffer_consume(Buffer *b, size_t n) {
        if (n >= buffer_len(b)) {
                /* empty: give the memory back, idle streams hold none */
                free(b->data);
                b->data = NULL;
                b->start = b->end = b->alloc = 0;
                return;
        }
        b->start += n;
}

uint8_t *buffer_reserve(Buffer *b, size_t want, size_t *ret_size) {
        size_t n = MIN(want, buffer_room(b));
        if (n == 0)
                return NULL;
        if (buffer_make_room(b, n) < 0)
                return NULL;
        *ret_size = MIN(b->alloc - b->end, buffer_room(b));
        return b->data + b->end;
}

void buffer_commit(Buffer *b, size_t n) {
        b->end += n;
}

ssize_t buffer_read_fd(Buffer *b, int fd) {
        size_t size;
        uint8_t *p = buffer_reserve(b, buffer_room(b), &size);
        ssize_t n;

        if (!p)
                return buffer_room(b) == 0 ? -ENOBUFS : -ENOMEM;
        do
                n = read(fd, p, size);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int e = errno;
                if (buffer_empty(b))
                        buffer_consume(b, 0);
                return -e;
        }
        buffer_commit(b, (size_t) n);
        if (buffer_empty(b))
                buffer_consume(b, 0);
        return n;
}

ssize_t buffer_write_fd(Buffer *b, int fd) {
        ssize_t n;

        if (buffer_empty(b))
                return 0;
        /* an interrupted call moved nothing: ask again rather than report it */
        do
                n = send(fd, buffer_head(b), buffer_len(b), MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == ENOTSOCK)
                do
                        n = write(fd, buffer_head(b), buffer_len(b));
                while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        buffer_consume(b, (size_t) n);
        return n;
}
