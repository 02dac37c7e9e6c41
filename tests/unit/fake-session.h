/* Sessions a test drives by hand, behind SessionOps: what node.c (and
 * migration.c through it) sees of its pool, with no network. A test moves
 * a session through its states and the node hears it as from session.c. */
#pragma once

#include <stdbool.h>

#include "session.h"

extern const SessionOps fake_session_ops;

/* Every session made and not destroyed, in the order made. */
unsigned fake_session_count(void);
Session *fake_session_get(unsigned i);
/* Sessions connect()ed since the last call (and resets the count). */
unsigned fake_session_take_connects(void);

/* Move 's' to 'st' (READY, CONNECTING, ...) and tell its owner. */
void fake_session_set_state(Session *s, SessionState st);
/* End 's' with 'f' and 'error' after 'up' of being ready; the owner hears FAILED. */
void fake_session_fail(Session *s, SessionFailure f, const char *error, usec_t up);
/* Channels it reports as open. */
void fake_session_set_channels(Session *s, unsigned n);
/* Channel opens it reports as queued or in flight. */
void fake_session_set_opens_pending(Session *s, unsigned n);
/* Of its channels, those whose client has finished (not counted as load). */
void fake_session_set_ending(Session *s, unsigned n);
/* The host key it reports. */
void fake_session_set_host_key(Session *s, const char *fp);
/* Report a stream's open outcome, and an open stream's end, as channel.c does. */
void fake_session_stream_opened(Session *s, StreamResult r);
void fake_session_stream_closed(Session *s, uint64_t up, uint64_t down);
/* Channel opens asked of it (streams, probes). */
unsigned fake_session_opens(const Session *s, bool probe);
