/* A byte queue with a hard capacity: append at the tail, consume from the
 * head. Storage is allocated on first use and released when the queue
 * empties, so an idle stream costs no buffer memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct Buffer {
        uint8_t *data;
        size_t start, end; /* bytes queued are data[start..end) */
        size_t alloc;      /* bytes allocated */
        size_t limit;      /* never hold more than this */
} Buffer;

/* An empty buffer that holds at most 'limit' bytes. */
void buffer_init(Buffer *b, size_t limit);
void buffer_done(Buffer *b);

static inline size_t buffer_len(const Buffer *b) {
        return b->end - b->start;
}
static inline bool buffer_empty(const Buffer *b) {
        return b->end == b->start;
}
static inline size_t buffer_room(const Buffer *b) {
        return b->limit - buffer_len(b);
}
static inline const uint8_t *buffer_head(const Buffer *b) {
        return b->data + b->start;
}

/* Append up to 'len' bytes (as many as fit); returns the count, or -ENOMEM. */
ssize_t buffer_append(Buffer *b, const void *p, size_t len);
/* Append all of it even beyond the limit (for queues the producer cannot
 * hold back, such as the SSH output); -ENOMEM on failure. */
int buffer_append_force(Buffer *b, const void *p, size_t len);
/* Drop 'n' bytes from the head. */
void buffer_consume(Buffer *b, size_t n);

/* Make at least min(want, room) contiguous bytes writable at the tail and
 * return a pointer to them (*ret_size receives how many); NULL on ENOMEM or
 * when the buffer is full. Call buffer_commit() with the count written. */
uint8_t *buffer_reserve(Buffer *b, size_t want, size_t *ret_size);
void buffer_commit(Buffer *b, size_t n);

/* read(2) into the buffer: returns bytes read, 0 on EOF, -errno (-EAGAIN
 * when nothing is there; -ENOBUFS when the buffer is full). EINTR is
 * retried, here and in buffer_write_fd(). */
ssize_t buffer_read_fd(Buffer *b, int fd);
/* send(2) from the buffer (MSG_NOSIGNAL; write(2) for non-sockets):
 * returns bytes written or -errno. */
ssize_t buffer_write_fd(Buffer *b, int fd);
