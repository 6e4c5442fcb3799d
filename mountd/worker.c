/* A set of names waiting for work, drained by one thread: events about
 * the same VM that arrive while it waits collapse into one.  The
 * reconciler, the status pusher and the dropper are such workers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

void md_nq_init(struct md_nq *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
}

/* Lock held.  false when memory ran out: then everything needs a look,
 * which loses nothing. */
static bool put_locked(struct md_nq *q, const char *name, enum core_phase now)
{
	struct md_item *v;
	char *dup;

	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->items[i].name, name)) {
			if (q->items[i].now != now)
				q->items[i].now = CORE_PHASE_UNKNOWN;
			return true;
		}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;

		v = realloc(q->items, cap * sizeof(*v));
		if (!v)
			return false;
		q->items = v;
		q->cap = cap;
	}
	dup = strdup(name);
	if (!dup)
		return false;
	q->items[q->n++] = (struct md_item){ dup, now };
	return true;
}

/* name NULL: everything needs a look.  Events that disagree about the
 * phase, or a put that is not an event, leave "look in any case". */
void md_nq_put_event(struct md_nq *q, const char *name, enum core_phase now)
{
	pthread_mutex_lock(&q->lock);
	if (!q->stopping && (!name || !put_locked(q, name, now)))
		q->all = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void md_nq_put(struct md_nq *q, const char *name)
{
	md_nq_put_event(q, name, CORE_PHASE_UNKNOWN);
}

static bool later_add(struct md_nq *q, const char *name, time_t due)
{
	struct md_later *v;
	char *dup;

	for (size_t i = 0; i < q->nlater; i++)
		if (!strcmp(q->later[i].name, name)) {
			if (due < q->later[i].due)
				q->later[i].due = due;
			return true;
		}
	if (q->nlater == q->caplater) {
		size_t cap = q->caplater ? q->caplater * 2 : 8;

		v = realloc(q->later, cap * sizeof(*v));
		if (!v)
			return false;
		q->later = v;
		q->caplater = cap;
	}
	dup = strdup(name);
	if (!dup)
		return false;
	q->later[q->nlater++] = (struct md_later){ dup, due };
	return true;
}

void md_nq_put_at(struct md_nq *q, const char *name, time_t due)
{
	pthread_mutex_lock(&q->lock);
	/* Without memory the look comes now: early is safe, the look
	 * schedules itself again. */
	if (!q->stopping && !later_add(q, name, due) && !put_locked(q, name,
								     CORE_PHASE_UNKNOWN))
		q->all = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Lock held.  Moves what is due to the items; returns the earliest time
 * still to come, 0 when none. */
static time_t later_due(struct md_nq *q, time_t now)
{
	time_t next = 0;

	for (size_t i = 0; i < q->nlater;) {
		struct md_later *l = &q->later[i];

		if (l->due > now) {
			if (!next || l->due < next)
				next = l->due;
			i++;
			continue;
		}
		if (!put_locked(q, l->name, CORE_PHASE_UNKNOWN))
			q->all = true;
		free(l->name);
		*l = q->later[--q->nlater];
	}
	return next;
}

static void wait_work(struct md_nq *q)
{
	struct timespec ts = { 0 };
	time_t next;

	while (!q->stopping) {
		next = later_due(q, time(NULL));
		if (q->n || q->all)
			return;
		if (!next) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		ts.tv_sec = next;
		pthread_cond_timedwait(&q->cond, &q->lock, &ts);
	}
}

/* Wait for work; returns false once stopped.  The caller frees each
 * item's name and batch. */
bool md_nq_take(struct md_nq *q, struct md_item **batch, size_t *n,
		bool *all)
{
	pthread_mutex_lock(&q->lock);
	wait_work(q);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	*batch = q->items;
	*n = q->n;
	*all = q->all;
	q->items = NULL;
	q->n = q->cap = 0;
	q->all = false;
	q->working = true;
	pthread_mutex_unlock(&q->lock);
	return true;
}

void md_nq_stop(struct md_nq *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->n)
		free(q->items[--q->n].name);
	while (q->nlater)
		free(q->later[--q->nlater].name);
	free(q->items);
	free(q->later);
	q->items = NULL;
	q->later = NULL;
	q->cap = q->caplater = 0;
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void md_worker_init(struct md_worker *w, struct mountd *md,
		    void (*one)(struct mountd *, const char *, enum core_phase))
{
	md_nq_init(&w->q);
	w->md = md;
	w->one = one;
}

static void *worker_main(void *arg)
{
	struct md_worker *w = arg;
	struct md_item *batch;
	size_t n;
	bool all;

	while (md_nq_take(&w->q, &batch, &n, &all)) {
		for (size_t i = 0; i < n; i++) {
			if (!all || !w->all)
				w->one(w->md, batch[i].name, batch[i].now);
			free(batch[i].name);
		}
		free(batch);
		if (all && w->all)
			w->all(w->md);
		if (w->batch_done)
			w->batch_done(w->md);
		pthread_mutex_lock(&w->q.lock);
		w->q.working = false;
		pthread_mutex_unlock(&w->q.lock);
	}
	return NULL;
}

int md_worker_start(struct md_worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w))
		return -EAGAIN;
	w->started = true;
	return 0;
}

bool md_worker_idle(struct md_worker *w)
{
	bool idle;

	pthread_mutex_lock(&w->q.lock);
	idle = !w->q.n && !w->q.all && !w->q.working;
	pthread_mutex_unlock(&w->q.lock);
	return idle;
}

void md_worker_stop(struct md_worker *w)
{
	md_nq_stop(&w->q);
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}
