/* /metrics for operations, snapshots and templates.  The model keeps
 * finished VMOperations, not a history of durations, so each scrape
 * adds the ones it has not seen yet to a histogram of our own: a name
 * is counted once, and remembered while the model still holds it (a
 * name has the time in it, so one that went away does not come back).
 * The set is bounded; operations beyond it wait for room. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web/priv.h"

static const double op_le[WEB_OP_LE] = { 1, 5, 15, 60, 300, 1800 };
/* The histograms are indexed by verb (CORE_OPS), "other" last: every
 * spec.operation of the table has one. */
static const char *op_label(int t)
{
	const struct core_op *op = core_op((enum core_verb)t);

	return t == WEB_OP_TYPES - 1 ? "other" : op ? op->operation : NULL;
}

struct finished {
	char name[CORE_NAME_MAX + 1];
	int type;
	double secs;
};

struct scan {
	struct finished *f;
	size_t n, cap;
};

static int op_type(const char *s)
{
	const struct core_op *op = core_op_by_operation(s);

	return op ? (int)op->verb : WEB_OP_TYPES - 1;
}

/* Model lock held: the finished operations with both times. */
static int scan_op(struct core_obj *o, void *arg)
{
	struct scan *s = arg;
	const char *ph = core_obj_str(o, "status.phase");
	time_t t0, t1;
	void *p;

	if (!ph || (strcmp(ph, "Succeeded") && strcmp(ph, "Failed") &&
		    strcmp(ph, "Cancelled")))
		return 0;
	if (core_rfc3339_parse(core_obj_str(o, "status.startTime"), &t0) < 0 ||
	    core_rfc3339_parse(core_obj_str(o, "status.completionTime"), &t1) < 0)
		return 0;
	if (s->n == s->cap) {
		p = realloc(s->f, (s->cap ? s->cap * 2 : 32) * sizeof(*s->f));
		if (!p)
			return 1;
		s->f = p;
		s->cap = s->cap ? s->cap * 2 : 32;
	}
	snprintf(s->f[s->n].name, sizeof(s->f[s->n].name), "%s", o->name);
	s->f[s->n].type = op_type(core_obj_str(o, "spec.operation"));
	s->f[s->n].secs = t1 > t0 ? difftime(t1, t0) : 0;
	s->n++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void observe(struct web_op_hist *h, double secs)
{
	h->count++;
	h->sum += secs;
	for (int i = 0; i < WEB_OP_LE; i++)
		if (secs <= op_le[i])
			h->bucket[i]++;
}

/* w->op_lock held.  The new seen set is the old one cut down to what the
 * model still holds, plus the newly counted. */
static void count_new(struct web *w, const struct scan *s)
{
	size_t n = 0;
	char (*seen)[CORE_NAME_MAX + 1] = calloc(s->n ? s->n : 1, sizeof(*seen));

	if (!seen)
		return;         /* counted on a later scrape */
	for (size_t i = 0; i < s->n; i++) {
		if (!w->op_seen || !bsearch(s->f[i].name, w->op_seen, w->nseen,
					    sizeof(*seen), by_name))
			observe(&w->op_hist[s->f[i].type], s->f[i].secs);
		memcpy(seen[n++], s->f[i].name, sizeof(*seen));
	}
	qsort(seen, n, sizeof(*seen), by_name);
	free(w->op_seen);
	w->op_seen = seen;
	w->nseen = n;
}

static void op_histogram(struct web *w, struct web_buf *b)
{
	struct scan s = { 0 };

	/* One scrape at a time from the scan on: two overlapping ones would
	 * each replace the seen set with their own view and count twice. */
	pthread_mutex_lock(&w->op_lock);
	core_model_rdlock(w->cfg.model);
	core_model_obj_each(w->cfg.model, CORE_KIND_OPERATION, scan_op, &s);
	core_model_unlock(w->cfg.model);
	count_new(w, &s);
	web_buf_printf(b, "# HELP hypersdk_operation_duration_seconds Duration of "
		       "finished VMOperations (completionTime - startTime), by "
		       "type.\n# TYPE hypersdk_operation_duration_seconds histogram\n");
	for (int t = 0; t < WEB_OP_TYPES; t++) {
		const struct web_op_hist *h = &w->op_hist[t];
		const char *label = op_label(t);

		if (!label)
			continue;
		for (int i = 0; i < WEB_OP_LE; i++)
			web_buf_printf(b, "hypersdk_operation_duration_seconds_bucket"
				       "{operation=\"%s\",le=\"%g\"} %" PRIu64 "\n",
				       label, op_le[i], h->bucket[i]);
		web_buf_printf(b, "hypersdk_operation_duration_seconds_bucket"
			       "{operation=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
			       "hypersdk_operation_duration_seconds_sum"
			       "{operation=\"%s\"} %g\n"
			       "hypersdk_operation_duration_seconds_count"
			       "{operation=\"%s\"} %" PRIu64 "\n", label,
			       h->count, label, h->sum, label, h->count);
	}
	pthread_mutex_unlock(&w->op_lock);
	free(s.f);
}

struct phases {
	const char *const *names;       /* NULL-terminated */
	unsigned n[8];
};

static int count_phase(struct core_obj *o, void *arg)
{
	struct phases *p = arg;
	const char *ph = core_obj_str(o, "status.phase");

	for (int i = 0; p->names[i]; i++)
		if (!strcmp(ph ? ph : "Pending", p->names[i]))
			p->n[i]++;
	return 0;
}

/* Known phases only: a phase is a label value, so it must not come from
 * whatever a client wrote into a status. */
static void phase_gauge(struct web *w, struct web_buf *b, enum core_kind k,
			const char *metric, const char *const *names)
{
	struct phases p = { .names = names };

	core_model_rdlock(w->cfg.model);
	core_model_obj_each(w->cfg.model, k, count_phase, &p);
	core_model_unlock(w->cfg.model);
	web_buf_printf(b, "# HELP %s %ss on this node's model by phase.\n"
		       "# TYPE %s gauge\n", metric, core_kind_name(k), metric);
	for (int i = 0; names[i]; i++)
		web_buf_printf(b, "%s{phase=\"%s\"} %u\n", metric, names[i], p.n[i]);
}

void web_object_metrics(struct web *w, struct web_buf *b)
{
	static const char *const snap[] = { "Pending", "Creating", "Ready",
					    "Failed", "Expired", NULL };
	static const char *const tmpl[] = { "Pending", "Importing", "Ready",
					    "Failed", NULL };

	op_histogram(w, b);
	phase_gauge(w, b, CORE_KIND_SNAPSHOT, "hypersdk_snapshots", snap);
	phase_gauge(w, b, CORE_KIND_TEMPLATE, "hypersdk_templates", tmpl);
}
