/* A gate: at most 'limit' holders at once, the others wait their turn in
 * arrival order. ssh.max_handshakes is one: a start of 5,000 nodes does not
 * become 5,000 key exchanges at once. */
#pragma once

#include <stdbool.h>

typedef struct Gate Gate;

/* A waiter's turn came: it holds a place now. */
typedef void (*GateResume)(void *userdata);

/* 'what' names the limit in the one log line that says callers wait
 * ("ssh.max_handshakes"); at most one such line a minute. */
int gate_new(unsigned limit, const char *what, Gate **ret);
/* Accepts NULL, returns NULL. Waiters are dropped without a call. */
Gate *gate_free(Gate *g);

/* A new limit (reload): waiters go in at once if it grew. */
void gate_set_limit(Gate *g, unsigned limit);

/* True if the caller holds a place now; false if it was queued, and then
 * 'resume' runs with 'userdata' when its turn comes (never from inside
 * this call). A caller with a place gives it back with gate_release(). */
bool gate_acquire(Gate *g, GateResume resume, void *userdata);
/* Leave the queue (no-op for a caller not in it). */
void gate_cancel(Gate *g, void *userdata);
/* Give a place back; the first waiters in line get it. */
void gate_release(Gate *g);

unsigned gate_holders(const Gate *g);
unsigned gate_waiting(const Gate *g);
