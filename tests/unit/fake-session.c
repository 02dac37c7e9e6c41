/* The fake sessions: plain records in a list, state set by the test. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake-session.h"

struct Session {
        const SessionHooks *hooks;
        void *userdata;
        SessionState state;
        SessionFailure failure;
        char *last_error;
        char *reason;
        char *host_key;
        usec_t up;
        unsigned channels;
        unsigned opens[2];
        unsigned pending;
        unsigned ending;
};

static Session *sessions[256];
static unsigned n_sessions, connects;

static int fake_create(const SessionEnv *env, const SessionParams *p, Session **ret) {
        Session *s;

        if (n_sessions >= 256)
                return -ENOMEM;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->hooks = p->hooks;
        s->userdata = p->userdata;
        sessions[n_sessions++] = s;
        *ret = s;
        return 0;
}

static Session *fake_destroy(Session *s) {
        for (unsigned i = 0; i < n_sessions; i++)
                if (sessions[i] == s) {
                        memmove(&sessions[i], &sessions[i + 1], (n_sessions - i - 1) * sizeof(Session *));
                        n_sessions--;
                        break;
                }
        free(s->last_error);
        free(s->reason);
        free(s->host_key);
        free(s);
        return NULL;
}

void fake_session_set_state(Session *s, SessionState st) {
        s->state = st;
        s->hooks->changed(s, s->userdata);
}

static void fake_connect(Session *s) {
        if (s->state != SESSION_IDLE && s->state != SESSION_FAILED)
                return;
        connects++;
        fake_session_set_state(s, SESSION_CONNECTING);
}

static void set_error(Session *s, const char *error) {
        free(s->last_error);
        s->last_error = error ? strdup(error) : NULL;
        /* the reason: the error's first words, as session.c's are short */
        free(s->reason);
        s->reason = error ? strndup(error, 40) : NULL;
}

void fake_session_fail(Session *s, SessionFailure f, const char *error, usec_t up) {
        s->failure = f;
        s->up = up;
        s->channels = 0;
        set_error(s, error);
        fake_session_set_state(s, SESSION_FAILED);
}

static void fake_disconnect(Session *s, const char *why) {
        fake_session_fail(s, SESSION_FAILURE_CLOSED, why, 0);
}

static SessionState fake_state(const Session *s) {
        return s->state;
}

static SessionFailure fake_failure(const Session *s) {
        return s->failure;
}

static const char *fake_last_error(const Session *s) {
        return s->last_error;
}

static const char *fake_reason(const Session *s) {
        return s->reason;
}

static const char *fake_host_key(const Session *s) {
        return s->host_key;
}

static usec_t fake_up_duration(const Session *s) {
        return s->up;
}

static unsigned fake_channels(const Session *s) {
        return s->channels;
}

static unsigned fake_opens_pending(const Session *s) {
        return s->pending;
}

static unsigned fake_busy_streams(const Session *s) {
        return s->channels - s->ending;
}

static int fake_open_channel(Session *s, bool probe, const char *host, uint16_t port, const char *orig_host,
                             uint16_t orig_port, const ChannelCallbacks *cb, void *userdata, Channel **ret) {
        if (s->state != SESSION_READY)
                return -ENOTCONN;
        s->opens[probe]++;
        if (!probe)
                s->channels++;
        *ret = NULL;
        return 0;
}

const SessionOps fake_session_ops = {
        .create = fake_create,
        .destroy = fake_destroy,
        .connect = fake_connect,
        .disconnect = fake_disconnect,
        .state = fake_state,
        .failure = fake_failure,
        .last_error = fake_last_error,
        .reason = fake_reason,
        .host_key = fake_host_key,
        .up_duration = fake_up_duration,
        .channels = fake_channels,
        .opens_pending = fake_opens_pending,
        .busy_streams = fake_busy_streams,
        .open_channel = fake_open_channel,
};

unsigned fake_session_count(void) {
        return n_sessions;
}

Session *fake_session_get(unsigned i) {
        return i < n_sessions ? sessions[i] : NULL;
}

unsigned fake_session_take_connects(void) {
        unsigned n = connects;
        connects = 0;
        return n;
}

void fake_session_set_channels(Session *s, unsigned n) {
        s->channels = n;
}

void fake_session_set_opens_pending(Session *s, unsigned n) {
        s->pending = n;
}

void fake_session_set_ending(Session *s, unsigned n) {
        s->ending = n;
}

void fake_session_set_host_key(Session *s, const char *fp) {
        free(s->host_key);
        s->host_key = fp ? strdup(fp) : NULL;
}

unsigned fake_session_opens(const Session *s, bool probe) {
        return s->opens[probe];
}

void fake_session_stream_opened(Session *s, StreamResult r) {
        if (s->hooks->stream_opened)
                s->hooks->stream_opened(s, r, s->userdata);
}

void fake_session_stream_closed(Session *s, uint64_t up, uint64_t down) {
        if (s->hooks->stream_closed)
                s->hooks->stream_closed(s, up, down, s->userdata);
}
