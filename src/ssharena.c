/* An allocator for libssh2 that keeps each session's blocks on a list, so
 * that what libssh2 leaves behind when a session ends can be released. */

#include "ssharena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct SshBlock {
        struct SshBlock *next, *prev;
        size_t size;
} SshBlock;

/* the header keeps the caller's memory aligned as malloc's would be */
#define HEADER ((sizeof(SshBlock) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))

static SshBlock *block_of(void *p) {
        return (SshBlock *) (void *) ((char *) p - HEADER);
}

static void *payload_of(SshBlock *b) {
        return (char *) b + HEADER;
}

static void link_block(SshArena *a, SshBlock *b, size_t size) {
        b->size = size;
        b->prev = NULL;
        b->next = a->blocks;
        if (b->next)
                b->next->prev = b;
        a->blocks = b;
        a->n_blocks++;
        a->bytes += size;
}

static void unlink_block(SshArena *a, SshBlock *b) {
        if (b->prev)
                b->prev->next = b->next;
        else
                a->blocks = b->next;
        if (b->next)
                b->next->prev = b->prev;
        a->n_blocks--;
        a->bytes -= b->size;
}

void *ssh_arena_alloc(SshArena *a, size_t size) {
        SshBlock *b;

        if (size > SIZE_MAX - HEADER)
                return NULL;
        b = malloc(HEADER + size);
        if (!b)
                return NULL;
        link_block(a, b, size);
        return payload_of(b);
}

void *ssh_arena_realloc(SshArena *a, void *p, size_t size) {
        SshBlock *b, *nb;

        if (!p)
                return ssh_arena_alloc(a, size);
        if (size > SIZE_MAX - HEADER)
                return NULL;
        b = block_of(p);
        unlink_block(a, b);
        nb = realloc(b, HEADER + size);
        if (!nb) {
                link_block(a, b, b->size); /* realloc failed: the old block stays */
                return NULL;
        }
        link_block(a, nb, size);
        return payload_of(nb);
}

void ssh_arena_free(SshArena *a, void *p) {
        SshBlock *b;

        if (!p)
                return;
        b = block_of(p);
        unlink_block(a, b);
        free(b);
}

size_t ssh_arena_release(SshArena *a, size_t *ret_bytes) {
        size_t n = a->n_blocks;

        if (ret_bytes)
                *ret_bytes = a->bytes;
        while (a->blocks) {
                SshBlock *b = a->blocks;
                a->blocks = b->next;
                free(b);
        }
        a->n_blocks = 0;
        a->bytes = 0;
        return n;
}
