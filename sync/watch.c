/* List+watch, one thread per kind.
 *
 * list (paged) -> upsert each item -> remove() what the previous list or
 * watch knew but this list lacks -> synced(); then watch from the list's
 * resourceVersion with bookmarks.  ADDED/MODIFIED upsert, DELETED removes,
 * BOOKMARK only moves the resourceVersion on.  An ERROR event (410 Expired
 * after compaction or an API server restart, or anything else) means the
 * events in between are lost: relist.  A stream that ends (timeoutSeconds)
 * or is cut resumes from the last resourceVersion without a relist.
 *
 * Never a busy loop: a stream that brought nothing and lasted under a
 * second counts as a failure, and failures back off 100 ms .. 10 s with
 * jitter.  timeoutSeconds (30-59 s, random so that kinds and nodes do not
 * reconnect in step) and a transfer timeout a little longer (the server
 * ends the stream first when it is alive) bound how long a dead
 * connection can pass for a quiet one: about 80 s at most. */
#include "sync/priv.h"

#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_LIMIT 500
#define PRODUCTIVE_MS 1000
#define LIST_TRIES 3

struct sync_watcher {
	struct sync *s;
	enum sync_kind k;
	json_object *known;     /* name -> the last state seen */
	char rv[128];
	bool relist;
	unsigned events;        /* applied in the current stream */
	unsigned stale;         /* 410s in a row with nothing in between */
	unsigned seed;
	char last_err[CORE_ERR_MAX]; /* logged once until it changes */
	struct sync_http *h;
};

int sync_watcher_new(struct sync *s, enum sync_kind k,
		     struct sync_watcher **out)
{
	struct sync_watcher *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w || !(w->known = json_object_new_object())) {
		free(w);
		return -ENOMEM;
	}
	w->s = s;
	w->k = k;
	w->seed = (unsigned)time(NULL) ^ ((unsigned)k * 7919u) ^
		  (unsigned)(uintptr_t)w;
	*out = w;
	return 0;
}

void sync_watcher_free(struct sync_watcher *w)
{
	if (!w)
		return;
	json_object_put(w->known);
	sync_http_free(w->h);
	free(w);
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Log a failure once, not on every retry; "" clears. */
static void report(struct sync_watcher *w, const char *what, const char *e)
{
	if (!*e && w->last_err[0])
		sync_log("%s %s: working again", what, sync_kind_plural(w->k));
	else if (*e && strcmp(e, w->last_err) != 0)
		sync_log("%s %s: %s", what, sync_kind_plural(w->k), e);
	snprintf(w->last_err, sizeof(w->last_err), "%s", e);
}

/* Continue tokens are opaque base64: escape what a query cannot hold. */
static void query_escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 < len; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static void fill_kind(struct sync_watcher *w, json_object *o)
{
	/* Built-in lists drop these from items; keep objects uniform. */
	if (!json_object_object_get_ex(o, "apiVersion", NULL))
		json_object_object_add(o, "apiVersion",
				       json_object_new_string(CORE_API_VERSION));
	if (!json_object_object_get_ex(o, "kind", NULL))
		json_object_object_add(o, "kind",
				       json_object_new_string(sync_kind_name(w->k)));
}

static void deliver_upsert(struct sync_watcher *w, json_object *o)
{
	const char *name = sync_meta_str(o, "name");

	if (!name)
		return;
	fill_kind(w, o);
	json_object_object_add(w->known, name, json_object_get(o));
	if (w->s->h.upsert)
		w->s->h.upsert(w->s->arg, w->k, o);
}

static void deliver_remove(struct sync_watcher *w, json_object *o)
{
	const char *name = sync_meta_str(o, "name");

	if (!name)
		return;
	fill_kind(w, o);
	if (w->s->h.remove)
		w->s->h.remove(w->s->arg, w->k, o);
	json_object_object_del(w->known, name);
}

/* One page: upsert its items, note their names in seen. */
static int list_page(struct sync_watcher *w, const char *cont,
		     json_object *seen, char **next, char *err, size_t errlen)
{
	char path[512], q[2048] = "", rv[128];
	json_object *list = NULL, *items, *it;
	const char *v, *name;
	size_t n;
	int r;

	*next = NULL;
	if (cont)
		query_escape(cont, q, sizeof(q));
	r = sync_path(w->s, w->k, NULL, false, path, sizeof(path));
	if (r == 0 && strlen(path) + strlen(q) + 40 > sizeof(path))
		r = -ENAMETOOLONG;
	if (r < 0)
		return r;
	snprintf(path + strlen(path), sizeof(path) - strlen(path),
		 "?limit=%d%s%s", PAGE_LIMIT, cont ? "&continue=" : "", q);
	r = sync_request_on(w->s, w->h, "GET", path, NULL, NULL, &list, err,
			    errlen);
	if (r < 0)
		goto out;
	if (!json_object_object_get_ex(list, "items", &items) ||
	    !json_object_is_type(items, json_type_array) ||
	    !(v = sync_meta_str(list, "resourceVersion")) ||
	    strlen(v) >= sizeof(rv)) {
		snprintf(err, errlen, "the list has no items or resourceVersion");
		r = -EIO;
		goto out;
	}
	snprintf(rv, sizeof(rv), "%s", v);
	n = json_object_array_length(items);
	for (size_t i = 0; i < n; i++) {
		it = json_object_array_get_idx(items, i);
		if (!(name = sync_meta_str(it, "name")))
			continue;
		json_object_object_add(seen, name, json_object_get(it));
		deliver_upsert(w, it);
	}
	/* Every page of a paged list carries the first page's snapshot. */
	memcpy(w->rv, rv, sizeof(rv));
	v = sync_meta_str(list, "continue");
	if (v && *v && !(*next = strdup(v)))
		r = -ENOMEM;
out:
	json_object_put(list);
	return r;
}

static int relist(struct sync_watcher *w, char *err, size_t errlen)
{
	json_object *seen = NULL;
	char *cont = NULL, *next = NULL;
	int r = -ESTALE;

	/* An expired continue token (410) restarts the list from scratch. */
	for (int t = 0; t < LIST_TRIES && r == -ESTALE; t++) {
		json_object_put(seen);
		seen = json_object_new_object();
		if (!seen)
			return -ENOMEM;
		do {
			r = list_page(w, cont, seen, &next, err, errlen);
			free(cont);
			cont = next;
		} while (r == 0 && cont && !sync_stopping(w->s));
		free(cont);
		cont = NULL;
	}
	if (r == 0 && sync_stopping(w->s))
		r = -ECANCELED;
	if (r == 0) {
		/* Gone while we were not watching: report them. */
		json_object_object_foreach(w->known, name, old) {
			if (!json_object_object_get_ex(seen, name, NULL) &&
			    w->s->h.remove)
				w->s->h.remove(w->s->arg, w->k, old);
		}
		json_object_put(w->known);
		w->known = json_object_get(seen);
		if (w->s->h.synced)
			w->s->h.synced(w->s->arg, w->k);
	}
	json_object_put(seen);
	return r;
}

static int on_open(void *arg)
{
	struct sync_watcher *w = arg;

	sync_note(w->s, true);
	return 0;
}

static int on_error_event(struct sync_watcher *w, json_object *st)
{
	json_object *m = NULL;
	int code = sync_status_code(st);

	json_object_object_get_ex(st, "message", &m);
	w->relist = true;
	if (code == 410)
		return -ESTALE;
	sync_log("watch %s: error event %d: %s", sync_kind_plural(w->k), code,
		 m ? json_object_get_string(m) : "");
	return -EPROTO;
}

static int on_line(void *arg, const char *line, size_t len)
{
	struct sync_watcher *w = arg;
	enum sync_event_type type;
	char e[CORE_ERR_MAX];
	json_object *obj = NULL;
	const char *rv;
	int r = 0;

	if (sync_stopping(w->s))
		return -ECANCELED;
	if (len == 0)
		return 0;
	if (sync_event_decode(line, len, &type, &obj, e, sizeof(e)) < 0) {
		sync_log("watch %s: %s", sync_kind_plural(w->k), e);
		return -EBADMSG; /* the stream is broken: re-watch */
	}
	rv = sync_meta_str(obj, "resourceVersion");
	if (type == SYNC_EV_ADDED || type == SYNC_EV_MODIFIED)
		deliver_upsert(w, obj);
	else if (type == SYNC_EV_DELETED)
		deliver_remove(w, obj);
	else if (type == SYNC_EV_ERROR)
		r = on_error_event(w, obj);
	if (r == 0 && rv && strlen(rv) < sizeof(w->rv)) {
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
		w->events++;
	}
	json_object_put(obj);
	return r;
}

static int watch_once(struct sync_watcher *w, char *err, size_t errlen)
{
	char path[512], *url = NULL;
	long t = w->s->watch_seconds ? w->s->watch_seconds :
		 30 + (long)(rand_r(&w->seed) % 30);
	struct sync_stream st = {
		.open = on_open, .line = on_line, .arg = w,
		.timeout_s = t + 5 + t / 4,
	};
	int r;

	r = sync_path(w->s, w->k, NULL, false, path, sizeof(path));
	if (r < 0)
		return r;
	if (asprintf(&url, "%s%s?watch=1&allowWatchBookmarks=true&"
		     "resourceVersion=%s&timeoutSeconds=%ld", w->s->base, path,
		     w->rv, t) < 0)
		return -ENOMEM;
	st.url = url;
	w->events = 0;
	r = sync_http_stream(w->h, &st, err, errlen);
	if (r == 0 && st.rs.code != 200) {
		r = sync_http_errno(&st.rs, err, errlen);
		if (r == 0) {
			snprintf(err, errlen, "HTTP %ld to a watch", st.rs.code);
			r = -EIO;
		}
		if (r != SYNC_UNREACHABLE)
			sync_note(w->s, true);
	}
	if (r == -ESTALE)
		w->relist = true;
	if (r == SYNC_UNREACHABLE)
		sync_note(w->s, false);
	sync_resp_free(&st.rs);
	free(url);
	return r;
}

/* Back off unless the stream was worth something: one that ended or was
 * cut after a while, or delivered events, resumes at once. */
static bool productive(struct sync_watcher *w, int r, long t0)
{
	if (r != 0 && r != SYNC_CUT && r != -ESTALE && r != -EBADMSG)
		return false;
	return w->events > 0 || mono_ms() - t0 >= PRODUCTIVE_MS;
}

void *sync_watch_main(void *arg)
{
	struct sync_watcher *w = arg;
	struct sync *s = w->s;
	struct sync_backoff b = { 0 };
	char e[CORE_ERR_MAX] = "";
	long t0;
	int r;

	r = sync_http_new(&s->creds, &s->stop, &w->h, e, sizeof(e));
	if (r < 0) {
		sync_log("watch %s: %s", sync_kind_plural(w->k), e);
		return NULL;
	}
	w->relist = true;
	while (!sync_stopping(s)) {
		if (w->relist) {
			r = relist(w, e, sizeof(e));
			if (r == -ECANCELED)
				break;
			report(w, "list", r < 0 ? e : "");
			if (r < 0) {
				if (sync_wait(s, &s->cv, sync_backoff_next(&b),
					      NULL))
					break;
				continue;
			}
			w->relist = false;
		}
		t0 = mono_ms();
		r = watch_once(w, e, sizeof(e));
		if (r == -ECANCELED)
			break;
		if (r == -ESTALE)
			sync_log("watch %s: resourceVersion %s expired (410 "
				 "Gone): relisting", sync_kind_plural(w->k),
				 w->rv);
		/* Expiry and cut streams are routine, not worth a line. */
		report(w, "watch", r == 0 || r == SYNC_CUT || r == -ESTALE ||
				   r == -EPROTO || r == -EBADMSG ? "" : e);
		if (productive(w, r, t0)) {
			sync_backoff_reset(&b);
			w->stale = 0;
			continue;
		}
		/* The first 410 after an outage relists at once (the relist is
		 * the cure; the backoff may stand at 10 s by then); a 410 right
		 * after a relist waits like any failure. */
		if (r == -ESTALE && w->stale++ == 0)
			continue;
		if (sync_wait(s, &s->cv, sync_backoff_next(&b), NULL))
			break;
	}
	return NULL;
}
