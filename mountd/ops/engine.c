/* The operations engine: objects, their status and where it goes (model,
 * store, API), and the runs of this node with their cancel and timeout.
 * Every long action (clone, migrate, resize, revert, and the verbs a
 * VMOperation asks for) is an object with phases Pending, Running,
 * Succeeded, Failed or Cancelled, a progress, times and a message.  One
 * implementation serves the tree and kubectl: a ctl write makes the
 * object and runs it in the writer's action thread (run.c); an object
 * from the API server runs in a thread of its own on the VM's owner
 * (objects.c).  The VM's busy mark (vm.c) keeps a second conflicting
 * action out (EBUSY). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/ops/ops.h"



struct md_run {
	struct md_run *next;
	char op[CORE_NAME_MAX + 1];
	char vm[CORE_NAME_MAX + 1];
	int cancel;             /* OPS_CANCEL_USER or OPS_CANCEL_TIMEOUT */
	bool done;
	time_t deadline;
};

json_object *ops_jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

void ops_now(char *buf, size_t len)
{
	core_rfc3339(time(NULL), buf, len);
}

/* ---- objects: model, store, API ------------------------------------ */

json_object *ops_new_object(struct mountd *md, enum core_kind kind,
			    const char *name, const char *vm)
{
	json_object *o = json_object_new_object(), *meta, *spec, *ref;

	json_object_object_add(o, "apiVersion",
			       json_object_new_string(CORE_API_VERSION));
	json_object_object_add(o, "kind",
			       json_object_new_string(core_kind_name(kind)));
	meta = json_object_new_object();
	json_object_object_add(meta, "name", json_object_new_string(name));
	json_object_object_add(meta, "namespace",
			       json_object_new_string(md->ns[0] ? md->ns :
								  "default"));
	json_object_object_add(o, "metadata", meta);
	spec = json_object_new_object();
	if (vm) {
		ref = json_object_new_object();
		json_object_object_add(ref, "name", json_object_new_string(vm));
		json_object_object_add(spec, "vmRef", ref);
	}
	json_object_object_add(o, "spec", spec);
	return o;
}

/* The object as it is now, for the store or the API (a deep copy). */
static json_object *snapshot_of(struct mountd *md, enum core_kind kind,
				const char *name)
{
	struct core_obj *o;
	json_object *copy = NULL;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, kind, name);
	if (o && json_object_deep_copy(o->obj, &copy, NULL) != 0)
		copy = NULL;
	core_model_unlock(md->m);
	return copy;
}

/* Write an object's state through: the store always (a restart must find
 * what ran), and in a cluster its status through the status subresource. */
void ops_publish(struct mountd *md, enum core_kind kind, const char *name)
{
	char err[CORE_ERR_MAX];
	json_object *obj = snapshot_of(md, kind, name), *st = NULL;
	int rc;

	if (!obj)
		return;
	rc = core_store_put(md->store, core_kind_dir(kind), name, obj);
	if (rc < 0)
		md_log(LOG_WARN_, "cannot store %s %s: %s", core_kind_name(kind),
		       name, strerror(-rc));
	if (md->sync && json_object_object_get_ex(obj, "status", &st)) {
		rc = sync_patch_status(md->sync, sync_kind_of(kind), name, st, err,
				       sizeof(err));
		if (rc < 0 && rc != -EHOSTUNREACH)
			md_log(LOG_WARN_, "%s %s: status not published: %s",
			       core_kind_name(kind), name, err);
	}
	json_object_put(obj);
}

/* Put a new object in the model and the store, and in a cluster create it
 * in the API first (an existing name there is EEXIST). */
int ops_create(struct mountd *md, enum core_kind kind, json_object *obj,
	       bool run_here, char *err, size_t errlen)
{
	struct core_obj *o;
	char name[CORE_NAME_MAX + 1];
	json_object *created = NULL;
	int rc;

	/* A copy: obj may be replaced by what the server returns. */
	snprintf(name, sizeof(name), "%s", json_object_get_string(
			 core_json_path(obj, "metadata.name")));
	core_model_rdlock(md->m);
	rc = core_model_obj_find(md->m, kind, name) ? -EEXIST : 0;
	core_model_unlock(md->m);
	if (rc == 0 && md->sync) {
		rc = sync_create(md->sync, sync_kind_of(kind), obj, &created, err,
				 errlen);
		if (rc == 0 && created) {
			json_object_put(obj);
			obj = created;
		}
	}
	if (rc == -EEXIST)
		snprintf(err, errlen, "%s %s already exists",
			 core_kind_name(kind), name);
	if (rc < 0)
		goto out;
	core_model_wrlock(md->m);
	/* Standalone nothing else guards the name: check and put as one. */
	if (!md->sync && core_model_obj_find(md->m, kind, name)) {
		snprintf(err, errlen, "%s %s already exists",
			 core_kind_name(kind), name);
		rc = -EEXIST;
	} else {
		rc = core_model_obj_put(md->m, kind, obj, &o, err, errlen);
	}
	if (rc == 0) {
		/* Only a runner's status beats the watch's (merge_put). */
		md_ox(o)->mine = run_here;
		obj = NULL;
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (rc == 0)
		ops_publish(md, kind, name);
out:
	json_object_put(obj);
	return rc;
}

void ops_delete(struct mountd *md, enum core_kind kind, const char *name)
{
	char err[CORE_ERR_MAX];
	struct core_obj *o;

	if (md->sync)
		sync_delete(md->sync, sync_kind_of(kind), name, err, sizeof(err));
	core_store_del(md->store, core_kind_dir(kind), name);
	core_model_wrlock(md->m);
	o = core_model_obj_find(md->m, kind, name);
	if (o)
		core_model_obj_remove(md->m, o);
	core_model_unlock(md->m);
	core_model_flush(md->m);
}

/* Set status fields: pairs of key and json value (ownership passes),
 * ended by NULL. */
void ops_status(struct mountd *md, enum core_kind kind, const char *name, ...)
{
	struct core_obj *o;
	const char *key;
	json_object *v;
	va_list ap;

	va_start(ap, name);
	core_model_wrlock(md->m);
	o = core_model_obj_find(md->m, kind, name);
	if (o)
		md_ox(o)->mine = true;  /* its status is ours from now on */
	while ((key = va_arg(ap, const char *))) {
		v = va_arg(ap, json_object *);
		if (o)
			core_model_obj_status_set(md->m, o, key, v);
		else
			json_object_put(v);
	}
	core_model_unlock(md->m);
	va_end(ap);
	core_model_flush(md->m);
}

void ops_condition(struct mountd *md, enum core_kind kind, const char *name,
		   const char *type, bool status, const char *reason,
		   const char *msg)
{
	json_object *arr = json_object_new_array(), *c;
	char now[32];

	ops_now(now, sizeof(now));
	c = json_object_new_object();
	json_object_object_add(c, "type", json_object_new_string(type));
	json_object_object_add(c, "status",
			       json_object_new_string(status ? "True" : "False"));
	json_object_object_add(c, "reason", json_object_new_string(reason));
	json_object_object_add(c, "message", json_object_new_string(msg));
	json_object_object_add(c, "lastTransitionTime",
			       json_object_new_string(now));
	json_object_array_add(arr, c);
	ops_status(md, kind, name, "conditions", arr, NULL);
}

/* ---- runs: what executes here, for cancel and timeouts -------------- */

static struct md_run *run_find(struct mountd *md, const char *vm)
{
	for (struct md_run *r = md->runs; r; r = r->next)
		if (!strcmp(r->vm, vm) && !r->done)
			return r;
	return NULL;
}

struct md_run *ops_run_begin(struct mountd *md, const char *op,
			     const char *vm, int timeout_s)
{
	struct md_run *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	snprintf(r->op, sizeof(r->op), "%s", op);
	snprintf(r->vm, sizeof(r->vm), "%s", vm);
	r->deadline = time(NULL) + (timeout_s > 0 ? timeout_s : OPS_TIMEOUT_S);
	pthread_mutex_lock(&md->runs_lock);
	r->next = md->runs;
	md->runs = r;
	md->nruns++;
	pthread_cond_broadcast(&md->runs_cond);
	pthread_mutex_unlock(&md->runs_lock);
	return r;
}

void ops_run_end(struct mountd *md, struct md_run *run)
{
	struct md_run **p;

	if (!run)
		return;
	pthread_mutex_lock(&md->runs_lock);
	for (p = &md->runs; *p; p = &(*p)->next)
		if (*p == run) {
			*p = run->next;
			break;
		}
	md->nruns--;
	pthread_cond_broadcast(&md->runs_cond);
	pthread_mutex_unlock(&md->runs_lock);
	free(run);
}

/* Polled by the backend's progress callbacks and between steps; the
 * deadline turns into a cancel with its own reason. */
int ops_cancelled(struct md_run *run)
{
	if (!run)
		return 0;
	if (!__atomic_load_n(&run->cancel, __ATOMIC_ACQUIRE) &&
	    time(NULL) >= run->deadline)
		__atomic_store_n(&run->cancel, OPS_CANCEL_TIMEOUT,
				 __ATOMIC_RELEASE);
	return __atomic_load_n(&run->cancel, __ATOMIC_ACQUIRE);
}

/* What stopped a run, without looking at the clock: a failure after the
 * deadline is not a timeout. */
int ops_cancel_reason(struct md_run *run)
{
	return run ? __atomic_load_n(&run->cancel, __ATOMIC_ACQUIRE) : 0;
}

const int *ops_cancel_flag(struct md_run *run)
{
	return run ? &run->cancel : NULL;
}

/* cancel: stop the operation in flight on vm and wait for it to end. */
int ops_cancel(struct mountd *md, const char *vm, char *err, size_t errlen)
{
	struct md_run *r;
	char op[CORE_NAME_MAX + 1];
	struct timespec dl;

	pthread_mutex_lock(&md->runs_lock);
	r = run_find(md, vm);
	if (!r) {
		pthread_mutex_unlock(&md->runs_lock);
		snprintf(err, errlen, "cancel: no operation in progress on vm %s",
			 vm);
		return -ENOENT;
	}
	snprintf(op, sizeof(op), "%s", r->op);
	__atomic_store_n(&r->cancel, OPS_CANCEL_USER, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 60;
	while (run_find(md, vm) == r &&
	       pthread_cond_timedwait(&md->runs_cond, &md->runs_lock, &dl) == 0)
		;
	if (run_find(md, vm) == r) {
		pthread_mutex_unlock(&md->runs_lock);
		snprintf(err, errlen, "cancel: %s on vm %s has not stopped "
			 "after 60 s", op, vm);
		return -ETIMEDOUT;
	}
	pthread_mutex_unlock(&md->runs_lock);
	md_log(LOG_INFO_, "cancelled operation %s on vm %s", op, vm);
	return 0;
}

/* Progress from the backend: into status.progress when it moved. */
struct progress_ctx {
	struct mountd *md;
	enum core_kind kind;
	const char *name;
	struct md_run *run;
	int last;
	time_t last_push;
};

static void on_progress(void *arg, int percent, const char *msg)
{
	struct progress_ctx *p = arg;
	time_t now = time(NULL);

	/* The backend polls while it works: the deadline is checked here. */
	ops_cancelled(p->run);
	if (percent == p->last)
		return;
	p->last = percent;
	ops_status(p->md, p->kind, p->name, "progress",
		   json_object_new_int(percent), "message",
		   json_object_new_string(msg ? msg : ""), NULL);
	/* kubectl sees it too, at most once a second. */
	if (p->md->sync && now != p->last_push) {
		p->last_push = now;
		ops_publish(p->md, p->kind, p->name);
	}
}

void ops_progress_init(struct be_progress *bp, struct progress_ctx **ctx,
		       struct mountd *md, enum core_kind kind,
		       const char *name, struct md_run *run)
{
	struct progress_ctx *p = calloc(1, sizeof(*p));

	memset(bp, 0, sizeof(*bp));
	if (p) {
		p->md = md;
		p->kind = kind;
		p->name = name;
		p->run = run;
		p->last = -1;
		bp->fn = on_progress;
		bp->arg = p;
	}
	bp->cancel = ops_cancel_flag(run);
	*ctx = p;
}

/* Parse "30m", "1h30m", "45s" into seconds; 0 when absent or bad (the
 * CRD's pattern has refused bad ones already). */
int ops_duration_s(const char *s)
{
	double total = 0, v;
	char *end;

	if (!s)
		return 0;
	while (*s) {
		v = strtod(s, &end);
		if (end == s)
			return 0;
		s = end;
		if (!strncmp(s, "ms", 2))
			v /= 1000, s += 2;
		else if (!strncmp(s, "us", 2) || !strncmp(s, "ns", 2))
			v = 0, s += 2;
		else if (*s == 's')
			s++;
		else if (*s == 'm')
			v *= 60, s++;
		else if (*s == 'h')
			v *= 3600, s++;
		else
			return 0;
		total += v;
	}
	return total > 0 && total < 1 ? 1 : (int)total;
}

bool ops_run_exists(struct mountd *md, const char *op)
{
	bool r = false;

	pthread_mutex_lock(&md->runs_lock);
	for (struct md_run *x = md->runs; x && !r; x = x->next)
		r = !strcmp(x->op, op);
	pthread_mutex_unlock(&md->runs_lock);
	return r;
}

void ops_run_timeout(struct md_run *run, int timeout_s)
{
	if (run && timeout_s > 0)
		run->deadline = time(NULL) + timeout_s;
}

/* At shutdown: cancel what runs and wait (bounded) for it to end. */
void md_ops_stop(struct mountd *md)
{
	struct timespec dl;

	pthread_mutex_lock(&md->runs_lock);
	for (struct md_run *r = md->runs; r; r = r->next)
		__atomic_store_n(&r->cancel, OPS_CANCEL_USER, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	while (md->runs &&
	       pthread_cond_timedwait(&md->runs_cond, &md->runs_lock, &dl) == 0)
		;
	pthread_mutex_unlock(&md->runs_lock);
}

/* spec.cancel on a VMOperation this node runs (kubectl patch, or a cancel
 * written on another node's tree). */
void ops_cancel_op(struct mountd *md, const char *op)
{
	pthread_mutex_lock(&md->runs_lock);
	for (struct md_run *r = md->runs; r; r = r->next)
		if (!strcmp(r->op, op))
			__atomic_store_n(&r->cancel, OPS_CANCEL_USER,
					 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&md->runs_lock);
}
