/* The outbox: merge patches written while the API server was unreachable,
 * kept on disk until the server has acknowledged them.
 *
 * One file per entry, <state_dir>/outbox/<20-digit sequence>.json, holding
 * {"kind", "name", "subresource" ("status" or absent), "body", "queued"};
 * an Event of events.k8s.io (sync/report.c) has kind "Event" and
 * "method" POST (the Event) or PATCH (its series).
 * Written as a temporary file, fsynced, renamed, directory fsynced: after a
 * crash an entry is whole or absent.  Files are replayed in sequence order.
 *
 * Conflicts, the rule:
 * - Spec (and metadata) patches are replayed as they are, in order: the
 *   last writer wins per field.  They carry no resourceVersion, so a
 *   change made meanwhile by kubectl to another field survives, and one
 *   to the same field is overwritten by ours (we wrote later in wall
 *   time only if our queue is older, which is the usual case of a node
 *   cut off from the server; there is no better arbiter for spec).
 * - Status patches are coalesced per object: a new one is merged over the
 *   queued one (RFC 7386 composition, so the newest value of each field
 *   wins and fields only the older one set survive), and the old entry
 *   is removed.  The owner node is the authority on status, so its newest
 *   view is the one to keep, and a node that was offline for hours sends
 *   one patch per object rather than thousands.
 * - An Event's series patches are coalesced the same way.  An Event that
 *   exists already (409 on its POST: a crash replayed it) is done.
 * - 404 on replay drops the entry (the object was deleted meanwhile) and
 *   logs it; 400/422 (the server will never accept it) likewise.
 * - Nothing is applied twice: an entry is removed only after the server
 *   acknowledged it.  A crash between the acknowledgement and the removal
 *   replays it once more, which a merge patch makes harmless (idempotent).
 * - Anything else (unreachable, 5xx, 401/403, 409 after retries) keeps the
 *   entry at the head and retries with backoff, so order is never broken.
 */
#include "sync/priv.h"

#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds the disk and the replay time of a very long outage. */
#define OUTBOX_MAX 100000
#define ENTRY_MAX (4 * 1024 * 1024)
#define SEQ_DIGITS 20
#define PUSH_CONFLICT_TRIES 3

struct ob_entry {
	uint64_t seq;
	enum sync_kind k;       /* not for an Event */
	bool status;
	bool event, create;     /* an Event; its POST (else its series) */
	time_t queued;  /* the oldest change it carries */
	char *name;
	char owner[CORE_NAME_MAX + 1];  /* status applied only while
					 * status.nodeName is this ("": any) */
};

struct sync_outbox {
	char *dir;
	int dfd;
	pthread_mutex_t mu;
	struct ob_entry *v;     /* in sequence order */
	size_t n, cap;
	uint64_t next;
};


static bool seq_name(const char *f, uint64_t *seq)
{
	char *end;

	if (strlen(f) != SEQ_DIGITS + 5 || strcmp(f + SEQ_DIGITS, ".json") ||
	    strspn(f, "0123456789") != SEQ_DIGITS)
		return false;
	*seq = strtoull(f, &end, 10);
	return end == f + SEQ_DIGITS;
}

static int kind_parse(const char *name, enum sync_kind *k, bool *event)
{
	*event = name && strcmp(name, "Event") == 0;
	if (*event)
		return 0;
	for (int i = 0; i < SYNC_KIND_COUNT; i++) {
		if (name && strcmp(name, sync_kind_name(i)) == 0) {
			*k = (enum sync_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* An Event's method: POST makes it, PATCH adds to its series. */
static int method_parse(json_object *m, bool event, bool *create)
{
	const char *v = m ? json_object_get_string(m) : NULL;

	*create = v && strcmp(v, "POST") == 0;
	if (!event)
		return m ? -EINVAL : 0;
	return *create || (v && strcmp(v, "PATCH") == 0) ? 0 : -EINVAL;
}

/* Read an entry file: its object (new reference) and its fields. */
static int read_entry(struct sync_outbox *ob, uint64_t seq,
		      struct ob_entry *e, json_object **body)
{
	char f[SEQ_DIGITS + 8], path[PATH_MAX];
	json_object *o = NULL, *b, *sub;
	const char *name;
	size_t len;
	char *txt;
	int r;

	snprintf(f, sizeof(f), "%0*" PRIu64 ".json", SEQ_DIGITS, seq);
	snprintf(path, sizeof(path), "%s/%s", ob->dir, f);
	r = sync_read_file(path, ENTRY_MAX, &txt, &len);
	if (r < 0)
		return r;
	r = sync_json_parse(txt, len, &o);
	free(txt);
	if (r < 0)
		return r;
	name = json_object_get_string(json_object_object_get(o, "name"));
	sub = json_object_object_get(o, "subresource");
	e->k = SYNC_KIND_COUNT;
	if (kind_parse(json_object_get_string(json_object_object_get(o,
			"kind")), &e->k, &e->event) < 0 ||
	    method_parse(json_object_object_get(o, "method"), e->event,
			 &e->create) < 0 || !sync_name_ok(name) ||
	    !json_object_object_get_ex(o, "body", &b) ||
	    !json_object_is_type(b, json_type_object) ||
	    (sub && (e->event ||
		     strcmp(json_object_get_string(sub), "status") != 0))) {
		json_object_put(o);
		return -EINVAL;
	}
	e->seq = seq;
	e->status = sub != NULL;
	snprintf(e->owner, sizeof(e->owner), "%s", json_object_get_string(
		json_object_object_get(o, "owner")) ?: "");
	/* An entry of an older version without the field counts from now. */
	if (core_rfc3339_parse(json_object_get_string(
			json_object_object_get(o, "queued")), &e->queued) < 0)
		e->queued = time(NULL);
	e->name = strdup(name);
	if (body)
		*body = json_object_get(b);
	json_object_put(o);
	return e->name ? 0 : -ENOMEM;
}

static int push_entry(struct sync_outbox *ob, const struct ob_entry *e)
{
	struct ob_entry *nv;
	size_t cap;

	if (ob->n == ob->cap) {
		cap = ob->cap ? ob->cap * 2 : 64;
		nv = realloc(ob->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		ob->v = nv;
		ob->cap = cap;
	}
	ob->v[ob->n++] = *e;
	return 0;
}

static int cmp_seq(const void *a, const void *b)
{
	const struct ob_entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A file we cannot read must neither block the queue nor vanish. */
static void set_aside(struct sync_outbox *ob, const char *f)
{
	char bad[SEQ_DIGITS + 16];

	snprintf(bad, sizeof(bad), "%s.bad", f);
	sync_log("outbox %s/%s: unreadable, renamed to %s", ob->dir, f, bad);
	renameat(ob->dfd, f, ob->dfd, bad);
}

static int load(struct sync_outbox *ob)
{
	struct ob_entry e;
	struct dirent *de;
	uint64_t seq;
	int dfd = dup(ob->dfd), r = 0;
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);

	if (!d) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp")) {
			unlinkat(ob->dfd, de->d_name, 0); /* a crash's leftover */
			continue;
		}
		if (!seq_name(de->d_name, &seq))
			continue;
		if (seq >= ob->next)
			ob->next = seq + 1;
		r = read_entry(ob, seq, &e, NULL);
		if (r == -EINVAL || r == -EFBIG) {
			set_aside(ob, de->d_name);
			r = 0;
			continue;
		}
		if (r == 0 && (r = push_entry(ob, &e)) < 0)
			free(e.name);
	}
	closedir(d);
	if (ob->n)
		qsort(ob->v, ob->n, sizeof(*ob->v), cmp_seq);
	return r;
}

int sync_outbox_open(const char *dir, struct sync_outbox **out, char *err,
		     size_t errlen)
{
	struct sync_outbox *ob = calloc(1, sizeof(*ob));
	int r = -ENOMEM;

	*out = NULL;
	if (!ob || !(ob->dir = strdup(dir)))
		goto out;
	ob->dfd = -1;
	ob->next = 1;
	r = -pthread_mutex_init(&ob->mu, NULL);
	if (r < 0) {
		free(ob->dir);
		free(ob);
		ob = NULL;
		goto out;
	}
	r = core_mkdir_p(dir, 0700);
	if (r == 0) {
		ob->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = ob->dfd < 0 ? -errno : 0;
	}
	r = r ? r : load(ob);
out:
	if (r < 0) {
		snprintf(err, errlen, "outbox %s: %s", dir, strerror(-r));
		sync_outbox_close(ob);
		return r;
	}
	if (ob->n)
		sync_log("outbox %s: entries to push: %zu", dir, ob->n);
	*out = ob;
	return 0;
}

void sync_outbox_close(struct sync_outbox *ob)
{
	if (!ob)
		return;
	for (size_t i = 0; i < ob->n; i++)
		free(ob->v[i].name);
	free(ob->v);
	if (ob->dfd >= 0)
		close(ob->dfd);
	pthread_mutex_destroy(&ob->mu);
	free(ob->dir);
	free(ob);
}

size_t sync_outbox_count(struct sync_outbox *ob)
{
	size_t n;

	pthread_mutex_lock(&ob->mu);
	n = ob->n;
	pthread_mutex_unlock(&ob->mu);
	return n;
}

time_t sync_outbox_since(struct sync_outbox *ob)
{
	time_t t = 0;

	pthread_mutex_lock(&ob->mu);
	for (size_t i = 0; i < ob->n; i++)
		if (t == 0 || ob->v[i].queued < t)
			t = ob->v[i].queued;
	pthread_mutex_unlock(&ob->mu);
	return t;
}

/* temp, fsync, rename, fsync of the directory. */
static int write_file(struct sync_outbox *ob, uint64_t seq, const char *txt)
{
	char f[SEQ_DIGITS + 8], tmp[SEQ_DIGITS + 16];

	snprintf(f, sizeof(f), "%0*" PRIu64 ".json", SEQ_DIGITS, seq);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", f);
	return core_write_atomic(ob->dfd, f, tmp, txt, strlen(txt));
}

static void unlink_seq(struct sync_outbox *ob, uint64_t seq)
{
	char f[SEQ_DIGITS + 8];

	snprintf(f, sizeof(f), "%0*" PRIu64 ".json", SEQ_DIGITS, seq);
	if (unlinkat(ob->dfd, f, 0) == 0)
		fsync(ob->dfd);
}

static void forget(struct sync_outbox *ob, size_t i)
{
	free(ob->v[i].name);
	memmove(&ob->v[i], &ob->v[i + 1], (ob->n - i - 1) * sizeof(*ob->v));
	ob->n--;
}

/* Entries that a newer one of the same object replaces, merged: a
 * status patch, an Event's series patch. */
static bool coalesces(const struct ob_entry *e)
{
	return e->status || (e->event && !e->create);
}

/* The queued entry that e coalesces with, or -1. */
static long find_coalesced(struct sync_outbox *ob, const struct ob_entry *e)
{
	if (!coalesces(e))
		return -1;
	for (size_t i = ob->n; i-- > 0;)
		if (coalesces(&ob->v[i]) && ob->v[i].event == e->event &&
		    ob->v[i].k == e->k && strcmp(ob->v[i].name, e->name) == 0 &&
		    strcmp(ob->v[i].owner, e->owner) == 0)
			return (long)i;
	return -1;
}

static json_object *entry_doc(const struct ob_entry *e, json_object *body)
{
	json_object *o = json_object_new_object();
	char now[40];

	core_rfc3339(e->queued, now, sizeof(now));
	json_object_object_add(o, "kind", json_object_new_string(
		e->event ? "Event" : sync_kind_name(e->k)));
	json_object_object_add(o, "name", json_object_new_string(e->name));
	if (e->status)
		json_object_object_add(o, "subresource",
				       json_object_new_string("status"));
	if (e->owner[0])
		json_object_object_add(o, "owner",
				       json_object_new_string(e->owner));
	if (e->event)
		json_object_object_add(o, "method", json_object_new_string(
			e->create ? "POST" : "PATCH"));
	json_object_object_add(o, "body", json_object_get(body));
	json_object_object_add(o, "queued", json_object_new_string(now));
	return o;
}

/* Status: the queued body of the same object merged under the new one. */
static json_object *coalesce(struct sync_outbox *ob, long old,
			     json_object *body)
{
	struct ob_entry e;
	json_object *prev = NULL, *c;

	if (old < 0 || read_entry(ob, ob->v[old].seq, &e, &prev) < 0)
		return json_object_get(body);
	free(e.name);
	c = sync_merge_compose(prev, body);
	json_object_put(prev);
	return c;
}

static int add(struct sync_outbox *ob, struct ob_entry *e, json_object *body,
	       char *err, size_t errlen)
{
	json_object *b = NULL, *doc = NULL;
	long old;
	int r;

	pthread_mutex_lock(&ob->mu);
	old = find_coalesced(ob, e);
	r = ob->n >= OUTBOX_MAX && old < 0 ? -ENOSPC : 0;
	/* A coalesced entry is as old as the change it first carried: the
	 * server has been missing that one since then. */
	if (old >= 0)
		e->queued = ob->v[old].queued;
	if (r == 0 && (!(b = coalesce(ob, old, body)) ||
		       !(doc = entry_doc(e, b))))
		r = -ENOMEM;
	if (r < 0)
		goto out;
	e->seq = ob->next++;
	r = write_file(ob, e->seq, json_object_to_json_string_ext(doc,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	r = r ? r : push_entry(ob, e);
	if (r < 0)
		goto out;
	e->name = NULL;
	/* The new file exists before the old one goes: a crash in between
	 * replays both, old then new, to the same end. */
	if (old >= 0) {
		unlink_seq(ob, ob->v[old].seq);
		forget(ob, (size_t)old);
	}
out:
	pthread_mutex_unlock(&ob->mu);
	if (r < 0)
		snprintf(err, errlen, "outbox %s: %s", ob->dir,
			 r == -ENOSPC ? "full" : strerror(-r));
	free(e->name);
	json_object_put(b);
	json_object_put(doc);
	return r;
}

/* e's name set from name (checked), then queued. */
static int add_named(struct sync_outbox *ob, struct ob_entry *e,
		     const char *name, json_object *body, char *err,
		     size_t errlen)
{
	if (!sync_name_ok(name)) {
		snprintf(err, errlen, "bad name");
		return -EINVAL;
	}
	e->queued = time(NULL);
	e->name = strdup(name);
	if (!e->name) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return add(ob, e, body, err, errlen);
}

int sync_outbox_add(struct sync_outbox *ob, enum sync_kind k,
		    const char *name, bool status, json_object *body,
		    char *err, size_t errlen)
{
	struct ob_entry e = { .k = k, .status = status };

	if ((unsigned)k >= SYNC_KIND_COUNT) {
		snprintf(err, errlen, "bad kind");
		return -EINVAL;
	}
	return add_named(ob, &e, name, body, err, errlen);
}

int sync_outbox_add_owned(struct sync_outbox *ob, enum sync_kind k,
			  const char *name, const char *owner,
			  json_object *body, char *err, size_t errlen)
{
	struct ob_entry e = { .k = k, .status = true };

	if ((unsigned)k >= SYNC_KIND_COUNT || !sync_name_ok(owner) ||
	    strlen(owner) > CORE_NAME_MAX) {
		snprintf(err, errlen, "bad kind or owner");
		return -EINVAL;
	}
	snprintf(e.owner, sizeof(e.owner), "%s", owner);
	return add_named(ob, &e, name, body, err, errlen);
}

int sync_outbox_add_event(struct sync_outbox *ob, const char *name,
			  bool create, json_object *body, char *err,
			  size_t errlen)
{
	struct ob_entry e = { .k = SYNC_KIND_COUNT, .event = true,
			      .create = create };

	return add_named(ob, &e, name, body, err, errlen);
}

int sync_outbox_peek(struct sync_outbox *ob, struct sync_outbox_entry *out)
{
	struct ob_entry e;
	char f[SEQ_DIGITS + 8];
	int r = -ENOENT;

	pthread_mutex_lock(&ob->mu);
	while (ob->n > 0) {
		r = read_entry(ob, ob->v[0].seq, &e, &out->body);
		if (r == 0 || r == -ENOMEM)
			break;
		/* Vanished or damaged since load: skip it, keep the rest. */
		snprintf(f, sizeof(f), "%0*" PRIu64 ".json", SEQ_DIGITS,
			 ob->v[0].seq);
		if (r != -ENOENT)
			set_aside(ob, f);
		forget(ob, 0);
		r = -ENOENT;
	}
	pthread_mutex_unlock(&ob->mu);
	if (r < 0)
		return r;
	out->seq = e.seq;
	out->k = e.k;
	out->status = e.status;
	out->event = e.event;
	out->create = e.create;
	snprintf(out->owner, sizeof(out->owner), "%s", e.owner);
	snprintf(out->name, sizeof(out->name), "%s", e.name);
	free(e.name);
	return 0;
}

void sync_outbox_done(struct sync_outbox *ob, uint64_t seq)
{
	pthread_mutex_lock(&ob->mu);
	for (size_t i = 0; i < ob->n; i++) {
		if (ob->v[i].seq == seq) {
			forget(ob, i);
			break;
		}
	}
	unlink_seq(ob, seq);
	pthread_mutex_unlock(&ob->mu);
}

/* ---- the pusher -------------------------------------------------------- */

static void dropped(const struct sync_outbox_entry *e, int r, const char *err)
{
	const char *what = e->event ? (e->create ? "Event" : "Event series") :
			   e->status ? "status patch" : "spec patch";

	if (r == -EINVAL && e->owner[0])
		sync_log("outbox: dropped the %s of %s %s: node %s no longer "
			 "owns it (%s)", what, sync_kind_name(e->k), e->name,
			 e->owner, err);
	else
		sync_log("outbox: dropped the %s of %s %s: %s", what,
			 e->event ? "Event" : sync_kind_name(e->k), e->name,
			 r == -ENOENT ? "the object was deleted meanwhile" : err);
}

/* 0: the entry is finished with (applied or dropped); < 0: keep it. */
static int push_one(struct sync *s, struct sync_http *h,
		    struct sync_outbox_entry *e)
{
	char path[512], err[CORE_ERR_MAX] = "";
	json_object *got = NULL, *ops = NULL;
	int r = -EBUSY;

	/* An owned status patch applies only while the VM is still the
	 * owner's: after an outage another node may have taken it over. */
	if (e->owner[0])
		ops = sync_owned_patch(e->body, e->owner);
	if (e->event)
		r = sync_report_push(s, h, e->name, e->create, e->body, err,
				     sizeof(err));
	else if (sync_path(s, e->k, e->name, e->status, path, sizeof(path)) < 0)
		return 0; /* cannot happen: names were checked when queued */
	for (int i = 0; !e->event && i < PUSH_CONFLICT_TRIES && r == -EBUSY; i++) {
		json_object_put(got);
		got = NULL;
		r = sync_request_on(s, h, "PATCH", path, ops ? ops : e->body,
				    ops ? SYNC_JSON_PATCH : SYNC_MERGE_PATCH,
				    &got, err, sizeof(err));
	}
	json_object_put(ops);
	/* Told before the entry leaves the outbox: who waits for an empty
	 * outbox then knows the revision to wait for. */
	if (r == 0 && !e->event && !e->status && s->h.replayed &&
	    sync_meta_str(got, "resourceVersion"))
		s->h.replayed(s->arg, e->k, e->name,
			      sync_meta_str(got, "resourceVersion"));
	json_object_put(got);
	if (r == -EEXIST && e->event && e->create)
		return 0;       /* replayed after a crash: it is there */
	if (r == -ENOENT || r == -EINVAL) {
		dropped(e, r, err);
		return 0;
	}
	if (r < 0 && r != SYNC_UNREACHABLE && r != -ECANCELED)
		sync_log("outbox: %s %s: %s (will retry)", e->event ? "Event" :
			 sync_kind_name(e->k), e->name, err);
	return r;
}

void *sync_push_main(void *arg)
{
	struct sync *s = arg;
	struct sync_backoff b = { 0 };
	struct sync_outbox_entry e;
	struct sync_http *h = NULL;
	char err[CORE_ERR_MAX];
	unsigned seen = 0;
	long wait_ms;
	int r;

	if (sync_http_new(&s->creds, &s->stop, &h, err, sizeof(err)) < 0) {
		sync_log("outbox: %s", err);
		return NULL;
	}
	while (!sync_stopping(s)) {
		r = sync_outbox_peek(s->ob, &e);
		if (r == -ENOENT) {
			/* Woken by additions; the timeout is only a guard. */
			sync_wait(s, &s->push_cv, 60000, &seen);
			continue;
		}
		if (r == 0) {
			r = push_one(s, h, &e);
			json_object_put(e.body);
		}
		if (r == 0) {
			sync_outbox_done(s->ob, e.seq);
			sync_backoff_reset(&b);
			continue;
		}
		wait_ms = sync_backoff_next(&b);
		sync_wait(s, &s->push_cv, wait_ms, &seen);
	}
	sync_http_free(h);
	return NULL;
}
