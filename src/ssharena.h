/* The memory one libssh2 session takes, on a list of its own, so that what
 * libssh2 forgets to free when a session ends mid key exchange goes too. */
#pragma once

#include <stddef.h>

/* libssh2 1.10 frees its curve25519/ECDH key pair only when the exchange
 * completes: a session freed while waiting for the node's reply (a node that
 * stalls the key exchange, or connect_timeout) leaks 64 bytes each time. An
 * SshArena is handed to libssh2 as its allocator; after
 * libssh2_session_free() whatever is left on it is released. */
typedef struct SshArena {
        struct SshBlock *blocks;
        size_t n_blocks;
        size_t bytes;
} SshArena;

/* malloc/realloc/free for libssh2, tracked on 'a'. realloc(NULL) allocates,
 * free(NULL) does nothing. */
void *ssh_arena_alloc(SshArena *a, size_t size);
void *ssh_arena_realloc(SshArena *a, void *p, size_t size);
void ssh_arena_free(SshArena *a, void *p);

/* Free every block still on 'a' (after libssh2_session_free); returns how
 * many there were, and their size in *ret_bytes when not NULL. */
size_t ssh_arena_release(SshArena *a, size_t *ret_bytes);
