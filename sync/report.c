/* Kubernetes Events (events.k8s.io/v1) about this node's objects, made as
 * client-go's event recorder makes them: the first occurrence is a new
 * Event; the same one again (same object, type, reason and note) within
 * 6 minutes counts in that Event's series, which is patched at most every
 * few seconds, not once per repeat.  Callers only queue (sync_report may
 * be called with other locks held); one thread talks to the server.
 * While the server is unreachable, or the outbox holds anything, the
 * requests go to the outbox, behind what waits there. */
#include "sync/priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS "/apis/events.k8s.io/v1/namespaces/%s/events"
#define QUEUE_MAX 1024          /* beyond: dropped, and counted */
#define CACHE_MAX 256           /* Events whose series may still grow */
#define SERIES_WINDOW_S 360     /* client-go's isomorphic window */
#define SERIES_PATCH_S 5        /* one series patch per Event at most */
#define NOTE_MAX 1024           /* the API server's limit */
#define FIELD_MAX 128           /* reason, action, reportingInstance */

struct item {
	enum sync_kind kind;
	char *name, *uid, *reason, *note;
	bool warning;
	time_t when;
};

/* An Event on the server (or on its way). */
struct rec {
	char *id;               /* kind, name, type, reason and note */
	char ev[SYNC_NAME_MAX + 1];
	unsigned count, sent;   /* occurrences; what the server has */
	time_t last, patched;
};

struct sync_reporter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct item *q;
	size_t n, cap;
	unsigned long dropped;
	struct rec cache[CACHE_MAX];    /* used by the thread only */
	size_t ncache;
	unsigned long long made;
};

static void item_free(struct item *it)
{
	free(it->name);
	free(it->uid);
	free(it->reason);
	free(it->note);
}

/* A field of an Event: one line, cut at max bytes. */
static char *field(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max) : 0;
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	memcpy(d, s ? s : "", n);
	d[n] = '\0';
	for (char *p = d; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return d;
}

int sync_report(struct sync *s, const struct sync_report *r)
{
	struct sync_reporter *rp = s ? s->rep : NULL;
	struct item it = { .kind = r->kind, .warning = r->warning,
			   .when = r->when ? r->when : time(NULL) };
	int rc = 0;

	if (!rp || (unsigned)r->kind >= SYNC_KIND_COUNT ||
	    !sync_name_ok(r->name) || !r->reason || !*r->reason)
		return -EINVAL;
	it.name = field(r->name, SYNC_NAME_MAX);
	it.uid = field(r->uid, 64);
	it.reason = field(r->reason, FIELD_MAX);
	it.note = field(r->note, NOTE_MAX);
	if (!it.name || !it.uid || !it.reason || !it.note) {
		item_free(&it);
		return -ENOMEM;
	}
	pthread_mutex_lock(&rp->mu);
	if (rp->n == rp->cap && rp->cap < QUEUE_MAX) {
		size_t cap = rp->cap ? rp->cap * 2 : 32;
		struct item *v = realloc(rp->q, cap * sizeof(*v));

		if (v) {
			rp->q = v;
			rp->cap = cap;
		}
	}
	if (rp->n < rp->cap) {
		rp->q[rp->n++] = it;
		pthread_cond_signal(&rp->cv);
	} else {
		rp->dropped++;
		rc = -ENOSPC;
	}
	pthread_mutex_unlock(&rp->mu);
	if (rc < 0)
		item_free(&it);
	return rc;
}

int sync_reporter_new(struct sync *s)
{
	struct sync_reporter *rp = calloc(1, sizeof(*rp));

	if (!rp)
		return -ENOMEM;
	pthread_mutex_init(&rp->mu, NULL);
	pthread_cond_init(&rp->cv, NULL);
	s->rep = rp;
	return 0;
}

void sync_reporter_free(struct sync *s)
{
	struct sync_reporter *rp = s->rep;

	if (!rp)
		return;
	for (size_t i = 0; i < rp->n; i++)
		item_free(&rp->q[i]);
	for (size_t i = 0; i < rp->ncache; i++)
		free(rp->cache[i].id);
	free(rp->q);
	pthread_mutex_destroy(&rp->mu);
	pthread_cond_destroy(&rp->cv);
	free(rp);
	s->rep = NULL;
}

/* Wake the thread (sync_close's stop). */
void sync_reporter_wake(struct sync *s)
{
	if (!s->rep)
		return;
	pthread_mutex_lock(&s->rep->mu);
	pthread_cond_broadcast(&s->rep->cv);
	pthread_mutex_unlock(&s->rep->mu);
}

/* ---- the requests ------------------------------------------------------ */

static void micro(time_t t, char *buf, size_t len)
{
	char b[32];

	core_rfc3339(t, b, sizeof(b));
	/* 2026-11-26T15:04:05Z -> 2026-11-26T15:04:05.000000Z */
	snprintf(buf, len, "%.19s.000000Z", b);
}

static json_object *regarding(struct sync *s, const struct item *it)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "apiVersion",
			       json_object_new_string(CORE_API_VERSION));
	json_object_object_add(o, "kind",
			       json_object_new_string(sync_kind_name(it->kind)));
	json_object_object_add(o, "name", json_object_new_string(it->name));
	json_object_object_add(o, "namespace", json_object_new_string(s->ns));
	if (it->uid[0])
		json_object_object_add(o, "uid", json_object_new_string(it->uid));
	return o;
}

static json_object *event_doc(struct sync *s, const struct item *it,
			      const char *ev)
{
	json_object *o = json_object_new_object(), *md = json_object_new_object();
	char t[40];

	micro(it->when, t, sizeof(t));
	json_object_object_add(md, "name", json_object_new_string(ev));
	json_object_object_add(md, "namespace", json_object_new_string(s->ns));
	json_object_object_add(o, "apiVersion",
			       json_object_new_string("events.k8s.io/v1"));
	json_object_object_add(o, "kind", json_object_new_string("Event"));
	json_object_object_add(o, "metadata", md);
	json_object_object_add(o, "eventTime", json_object_new_string(t));
	json_object_object_add(o, "reportingController",
			       json_object_new_string(SYNC_REPORTER));
	json_object_object_add(o, "reportingInstance",
			       json_object_new_string(s->node));
	json_object_object_add(o, "action", json_object_new_string(it->reason));
	json_object_object_add(o, "reason", json_object_new_string(it->reason));
	json_object_object_add(o, "type", json_object_new_string(
		it->warning ? "Warning" : "Normal"));
	json_object_object_add(o, "note", json_object_new_string(it->note));
	json_object_object_add(o, "regarding", regarding(s, it));
	return o;
}

static json_object *series_doc(const struct rec *r)
{
	json_object *o = json_object_new_object(), *se = json_object_new_object();
	char t[40];

	micro(r->last, t, sizeof(t));
	json_object_object_add(se, "count", json_object_new_int64(r->count));
	json_object_object_add(se, "lastObservedTime", json_object_new_string(t));
	json_object_object_add(o, "series", se);
	return o;
}

int sync_report_push(struct sync *s, struct sync_http *h, const char *ev,
		     bool create, json_object *body, char *err, size_t errlen)
{
	char path[512];

	if (create) {
		snprintf(path, sizeof(path), EVENTS, s->ns);
		return sync_request_on(s, h, "POST", path, body, SYNC_JSON,
				       NULL, err, errlen);
	}
	snprintf(path, sizeof(path), EVENTS "/%s", s->ns, ev);
	return sync_request_on(s, h, "PATCH", path, body, SYNC_MERGE_PATCH,
			       NULL, err, errlen);
}

/* Send now, or queue behind what waits in the outbox.  0 when the server
 * has it or the outbox does; -ENOENT for a series of an Event that is
 * gone (it expired); other errors are logged and dropped. */
static int deliver(struct sync *s, struct sync_http *h, const char *ev,
		bool create, json_object *body)
{
	char err[CORE_ERR_MAX] = "";
	int r = SYNC_UNREACHABLE;

	if (__atomic_load_n(&s->online, __ATOMIC_ACQUIRE) &&
	    sync_outbox_count(s->ob) == 0)
		r = sync_report_push(s, h, ev, create, body, err, sizeof(err));
	if (r == SYNC_UNREACHABLE) {
		r = sync_outbox_add_event(s->ob, ev, create, body, err,
					  sizeof(err));
		if (r == 0)
			sync_kick(s);
	}
	if (r == -EEXIST && create)
		r = 0;
	if (r < 0 && r != -ENOENT && r != -ECANCELED)
		sync_log("event %s: %s (dropped)", ev, err);
	return r == -ENOENT ? r : 0;
}

/* ---- the thread ---------------------------------------------------------- */

static char *id_of(const struct item *it)
{
	char *id;

	if (asprintf(&id, "%d\n%s\n%d\n%s\n%s", (int)it->kind, it->name,
		     (int)it->warning, it->reason, it->note) < 0)
		return NULL;
	return id;
}

static struct rec *find(struct sync_reporter *rp, const char *id, time_t when)
{
	for (size_t i = 0; i < rp->ncache; i++) {
		struct rec *r = &rp->cache[i];

		if (!strcmp(r->id, id) && when - r->last < SERIES_WINDOW_S)
			return r;
	}
	return NULL;
}

/* A place for a new Event: a free one, else the one seen longest ago
 * (its unsent count is sent first). */
static struct rec *room(struct sync *s, struct sync_http *h)
{
	struct sync_reporter *rp = s->rep;
	struct rec *old = &rp->cache[0];
	json_object *b;

	if (rp->ncache < CACHE_MAX)
		return &rp->cache[rp->ncache++];
	for (size_t i = 1; i < rp->ncache; i++)
		if (rp->cache[i].last < old->last)
			old = &rp->cache[i];
	if (old->count > old->sent) {
		b = series_doc(old);
		deliver(s, h, old->ev, false, b);
		json_object_put(b);
	}
	free(old->id);
	memset(old, 0, sizeof(*old));
	return old;
}

static void occur(struct sync *s, struct sync_http *h, const struct item *it)
{
	struct sync_reporter *rp = s->rep;
	char *id = id_of(it);
	struct rec *r;
	json_object *b;

	if (!id)
		return;
	r = find(rp, id, it->when);
	if (r) {
		r->count++;
		if (it->when > r->last)
			r->last = it->when;
		free(id);
		return;
	}
	r = room(s, h);
	r->id = id;
	/* Names as client-go's: the object's name and a unique suffix. */
	snprintf(r->ev, sizeof(r->ev), "%.200s.%llx%04llx", it->name,
		 (unsigned long long)it->when, rp->made++ & 0xffff);
	r->count = r->sent = 1;
	r->last = r->patched = it->when;
	b = event_doc(s, it, r->ev);
	deliver(s, h, r->ev, true, b);
	json_object_put(b);
}

/* Series patches that are due; returns the seconds until the next one
 * (0: none waits). */
static long flush_series(struct sync *s, struct sync_http *h, time_t now)
{
	struct sync_reporter *rp = s->rep;
	long next = 0;

	for (size_t i = 0; i < rp->ncache; i++) {
		struct rec *r = &rp->cache[i];
		json_object *b;
		long wait;

		if (r->count <= r->sent)
			continue;
		wait = (long)(r->patched + SERIES_PATCH_S - now);
		if (wait > 0) {
			next = next && next < wait ? next : wait;
			continue;
		}
		b = series_doc(r);
		if (deliver(s, h, r->ev, false, b) == -ENOENT)
			r->last = 0;    /* expired: the next one is new */
		json_object_put(b);
		r->sent = r->count;
		r->patched = now;
	}
	return next;
}

/* Take what was queued; wait up to wait_s when nothing is. */
static size_t take(struct sync *s, struct item **batch, long wait_s)
{
	struct sync_reporter *rp = s->rep;
	struct timespec ts;
	size_t n;

	pthread_mutex_lock(&rp->mu);
	if (!rp->n && !sync_stopping(s)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_s > 0 ? wait_s : 60;
		pthread_cond_timedwait(&rp->cv, &rp->mu, &ts);
	}
	*batch = rp->q;
	n = rp->n;
	rp->q = NULL;
	rp->n = rp->cap = 0;
	if (rp->dropped) {
		sync_log("events: %lu dropped (more than %d waiting)",
			 rp->dropped, QUEUE_MAX);
		rp->dropped = 0;
	}
	pthread_mutex_unlock(&rp->mu);
	return n;
}

void *sync_report_main(void *arg)
{
	struct sync *s = arg;
	struct sync_http *h = NULL;
	char err[CORE_ERR_MAX];
	struct item *batch;
	long wait_s = 0;
	size_t n;

	if (sync_http_new(&s->creds, &s->stop, &h, err, sizeof(err)) < 0) {
		sync_log("events: %s", err);
		return NULL;
	}
	while (!sync_stopping(s)) {
		n = take(s, &batch, wait_s);
		for (size_t i = 0; i < n; i++) {
			if (!sync_stopping(s))
				occur(s, h, &batch[i]);
			item_free(&batch[i]);
		}
		free(batch);
		wait_s = flush_series(s, h, time(NULL));
	}
	sync_http_free(h);
	return NULL;
}
