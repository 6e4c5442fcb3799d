/* A set of names waiting for work, drained by one thread: events about
 * the same VM that arrive while it waits collapse into one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/mountd.h"

void md_nq_init(struct md_nq *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
}

void md_nq_destroy(struct md_nq *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->names[i]);
	free(q->names);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

/* name NULL: everything needs a look. */
void md_nq_put(struct md_nq *q, const char *name)
{
	char **v, *dup;

	pthread_mutex_lock(&q->lock);
	if (q->stopping)
		goto out;       /* no worker will take it */
	if (!name)
		goto all;
	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->names[i], name))
			goto out;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;

		v = realloc(q->names, cap * sizeof(*v));
		if (!v)
			goto all;
		q->names = v;
		q->cap = cap;
	}
	dup = strdup(name);
	if (!dup)
		goto all;
	q->names[q->n++] = dup;
	goto out;
all:
	q->all = true;
out:
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Wait for work; returns false once stopped.  The caller frees batch[i]
 * and batch. */
bool md_nq_take(struct md_nq *q, char ***batch, size_t *n, bool *all)
{
	pthread_mutex_lock(&q->lock);
	while (!q->n && !q->all && !q->stopping)
		pthread_cond_wait(&q->cond, &q->lock);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	*batch = q->names;
	*n = q->n;
	*all = q->all;
	q->names = NULL;
	q->n = q->cap = 0;
	q->all = false;
	pthread_mutex_unlock(&q->lock);
	return true;
}

void md_nq_stop(struct md_nq *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->n)
		free(q->names[--q->n]);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}
