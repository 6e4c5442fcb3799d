/* GET /api/k8s/events: server-sent events.  A model watcher records the
 * last change; each stream's reader (a libmicrohttpd content callback,
 * run in its connection's own thread) sleeps on a condition variable
 * until the model moves, then sends one "change" event: bursts merge,
 * and the page refetches what it shows.  A comment every 15 s keeps
 * proxies and the browser from timing the stream out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web/priv.h"

#define KEEPALIVE_S 15
#define STREAMS_MAX 32          /* of the connection limit, at most */

struct stream {
	struct web *w;
	uint64_t seen;
	bool hello_sent;
	char buf[512];
	size_t len, off;
};

/* The model's watcher: cheap, takes only our lock. */
static void changed(void *arg, const char *name, int slot, unsigned what,
		    uint64_t seq)
{
	struct web *w = arg;

	pthread_mutex_lock(&w->lock);
	w->seq = seq;
	w->what = what;
	w->recent[seq % WEB_RECENT].seq = seq;
	w->recent[seq % WEB_RECENT].what = what;
	snprintf(w->last_vm, sizeof(w->last_vm), "%s", name ? name : "");
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void web_events_watch(struct web *w)
{
	uint64_t seq;

	core_model_watch(w->cfg.model, changed, w);
	w->watching = true;
	/* Count from the model's sequence, not from 0: the changes made
	 * before the dashboard started would otherwise read, at the first
	 * new one, as a burst past the ring ("everything changed"). */
	seq = core_model_flush(w->cfg.model);
	pthread_mutex_lock(&w->lock);
	if (w->seq < seq)
		w->seq = seq;
	pthread_mutex_unlock(&w->lock);
}

void web_events_unwatch(struct web *w)
{
	if (w->watching)
		core_model_unwatch(w->cfg.model, changed, w);
	w->watching = false;
}

static void what_names(unsigned what, char *buf, size_t len)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ CORE_CHG_STATUS, "status" }, { CORE_CHG_SPEC, "spec" },
		{ CORE_CHG_ERR, "err" }, { CORE_CHG_EVENTS, "events" },
		{ CORE_CHG_ADDED, "added" }, { CORE_CHG_REMOVED, "removed" },
		{ CORE_CHG_STATS, "stats" }, { CORE_CHG_NODES, "nodes" },
		{ CORE_CHG_OBJECTS, "objects" },
	};
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((what & names[i].bit) && n + 12 < len)
			n += (size_t)snprintf(buf + n, len - n, "%s\"%s\"",
					      n ? "," : "", names[i].name);
}

/* What changed since seen (w->lock held): a burst merged into one event
 * names every kind of change in it, not just the last (a snapshot ends
 * with an event line on its VM after the object's change).  Beyond the
 * ring, everything may have changed. */
static unsigned what_since(struct web *w, uint64_t seen)
{
	unsigned what = 0;

	if (w->seq - seen > WEB_RECENT)
		return ~0u;
	for (uint64_t q = seen + 1; q <= w->seq; q++)
		if (w->recent[q % WEB_RECENT].seq == q)
			what |= w->recent[q % WEB_RECENT].what;
	return what | w->what;
}

/* Wait for a change (or the keep-alive) and put the next message in
 * s->buf.  false when the server is stopping. */
static bool next_message(struct stream *s)
{
	struct web *w = s->w;
	char what[128];
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += KEEPALIVE_S;
	pthread_mutex_lock(&w->lock);
	while (!w->stopping && w->seq == s->seen && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&w->cond, &w->lock, &dl);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return false;
	}
	if (w->seq == s->seen) {
		s->len = (size_t)snprintf(s->buf, sizeof(s->buf), ": keep-alive\n\n");
	} else {
		what_names(what_since(w, s->seen), what, sizeof(what));
		s->seen = w->seq;
		s->len = (size_t)snprintf(s->buf, sizeof(s->buf),
			"event: change\nid: %" PRIu64 "\ndata: {\"seq\":%" PRIu64
			",\"vm\":\"%s\",\"what\":[%s]}\n\n",
			w->seq, w->seq, w->last_vm, what);
	}
	pthread_mutex_unlock(&w->lock);
	s->off = 0;
	return true;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	size_t n;

	if (!s->hello_sent) {
		pthread_mutex_lock(&s->w->lock);
		s->seen = s->w->seq;
		pthread_mutex_unlock(&s->w->lock);
		s->len = (size_t)snprintf(s->buf, sizeof(s->buf),
			"retry: 3000\nevent: hello\ndata: {\"seq\":%" PRIu64
			"}\n\n", s->seen);
		s->off = 0;
		s->hello_sent = true;
	} else if (s->off == s->len && !next_message(s)) {
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	pthread_mutex_lock(&s->w->lock);
	s->w->streams--;
	pthread_cond_broadcast(&s->w->cond);
	pthread_mutex_unlock(&s->w->lock);
	free(s);
}

/* NULL when too many streams are open (the caller answers 503). */
struct MHD_Response *web_events_response(struct web *w)
{
	struct stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	bool full;

	if (!s)
		return NULL;
	s->w = w;
	pthread_mutex_lock(&w->lock);
	full = w->streams >= STREAMS_MAX;
	if (!full)
		w->streams++;
	pthread_mutex_unlock(&w->lock);
	if (full) {
		free(s);
		return NULL;
	}
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, reader,
					      s, stream_free);
	if (!r)
		stream_free(s);
	return r;
}
