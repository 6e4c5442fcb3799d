/* Objects through the tree (mkdir, rmdir, ctl and spec of snapshots and
 * templates), from the store at start-up, and from the API server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/ops/ops.h"


/* mkdir templates/NAME: an empty template waiting for its spec. */
static int template_create(struct mountd *md, const char *name, char *err,
			   size_t errlen)
{
	json_object *o = ops_new_object(md, CORE_KIND_TEMPLATE, name, NULL);
	json_object *st = json_object_new_object();

	json_object_object_add(st, "phase", ops_jstr("Pending"));
	json_object_object_add(st, "message",
			       ops_jstr("write a spec with image.source to import"));
	json_object_object_add(st, "usageCount", json_object_new_int(0));
	json_object_object_add(o, "status", st);
	return ops_create(md, CORE_KIND_TEMPLATE, o, true, err, errlen);
}

/* A template's spec write: a whole VMTemplate or just its spec. */
static int template_spec(struct mountd *md, const char *name,
			 json_object *doc, char *err, size_t errlen)
{
	json_object *spec = doc, *src, *mine = NULL;
	struct md_run *run = NULL;
	struct core_obj *o;
	int rc = 0;

	if (json_object_object_get_ex(doc, "kind", NULL) &&
	    !json_object_object_get_ex(doc, "spec", &spec)) {
		snprintf(err, errlen, "template %s: the document has no spec", name);
		rc = -EINVAL;
	} else if (!json_object_is_type(spec, json_type_object)) {
		snprintf(err, errlen, "template %s: spec is not a mapping", name);
		rc = -EINVAL;
	} else if (!(src = core_json_path(spec, "image.source")) ||
		   !json_object_is_type(src, json_type_string)) {
		snprintf(err, errlen, "template %s: spec.image.source is "
			 "missing", name);
		rc = -EINVAL;
	}
	/* The model gets a copy of its own: reference counts of shared
	 * json are not to be touched outside the model lock.  The run,
	 * registered first, keeps the watch's echo from importing too. */
	if (rc < 0 || json_object_deep_copy(spec, &mine, NULL) != 0 ||
	    !(run = ops_run_begin(md, name, "", 0))) {
		rc = rc < 0 ? rc : -ENOMEM;
		goto out;
	}
	core_model_wrlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_TEMPLATE, name);
	if (o) {
		json_object_object_add(o->obj, "spec", mine);
		mine = NULL;
		md_ox(o)->mine = true;
		core_model_obj_status_set(md->m, o, "phase", ops_jstr("Pending"));
	} else {
		rc = -ENOENT;
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (rc < 0) {
		snprintf(err, errlen, "template %s does not exist", name);
		goto out;
	}
	if (md->sync) {
		json_object *patch = json_object_new_object();

		json_object_object_add(patch, "spec", json_object_get(spec));
		rc = sync_patch(md->sync, SYNC_TEMPLATE, name, patch, err, errlen);
		json_object_put(patch);
		if (rc < 0 && rc != -EHOSTUNREACH && rc != -EAGAIN)
			goto out;
	}
	ops_publish(md, CORE_KIND_TEMPLATE, name);
	rc = ops_template_import(md, name, err, errlen);
out:
	ops_run_end(md, run);
	json_object_put(mine);
	json_object_put(doc);
	return rc;
}

static int template_cancel(struct mountd *md, const char *name, char *err,
			   size_t errlen)
{
	if (!ops_run_exists(md, name)) {
		snprintf(err, errlen, "cancel: template %s is not importing here",
			 name);
		return -ENOENT;
	}
	ops_cancel_op(md, name);
	return 0;
}

int md_obj(void *arg, enum core_kind kind, const char *vm, const char *name,
	   const char *verb, json_object *spec, char *err, size_t errlen)
{
	struct mountd *md = arg;
	struct core_ctl msg = { .running = -1, .keep_days = -1,
				.keep_count = -1 };

	if (kind == CORE_KIND_TEMPLATE) {
		if (!strcmp(verb, "spec"))
			return template_spec(md, name, spec, err, errlen);
		json_object_put(spec);
		if (!strcmp(verb, "create"))
			return template_create(md, name, err, errlen);
		if (!strcmp(verb, "import"))
			return ops_template_import(md, name, err, errlen);
		if (!strcmp(verb, "cancel"))
			return template_cancel(md, name, err, errlen);
		return ops_template_delete(md, name, err, errlen);
	}
	json_object_put(spec);
	if (kind != CORE_KIND_SNAPSHOT || !vm) {
		snprintf(err, errlen, "%s: not supported here", verb);
		return -EOPNOTSUPP;
	}
	snprintf(msg.arg, sizeof(msg.arg), "%s", name);
	if (!strcmp(verb, "delete"))
		return ops_snapshot_delete(md, name, err, errlen);
	msg.verb = !strcmp(verb, "revert") ? CORE_V_REVERT : CORE_V_SNAPSHOT;
	return md_do(md, vm, &msg, err, errlen);
}

/* ---- start-up: what a restart interrupted ---------------------------- */

static int load_obj(const char *name, json_object *obj, void *arg)
{
	struct { struct mountd *md; enum core_kind kind; } *c = arg;
	char err[CORE_ERR_MAX];
	json_object *copy = NULL;
	int rc;

	if (json_object_deep_copy(obj, &copy, NULL) != 0)
		return 0;
	core_model_wrlock(c->md->m);
	rc = core_model_obj_put(c->md->m, c->kind, copy, NULL, err, sizeof(err));
	core_model_unlock(c->md->m);
	if (rc < 0) {
		json_object_put(copy);
		md_log(LOG_WARN_, "store: %s %s: %s; skipped",
		       core_kind_name(c->kind), name, err);
	}
	return 0;
}

/* Names collected under the model's lock, acted on after it: any number
 * of them (a VM may have thousands of snapshots). */
struct names {
	char (*v)[CORE_NAME_MAX + 1];
	size_t n, cap;
};

static void names_add(struct names *l, const char *name)
{
	char (*nv)[CORE_NAME_MAX + 1];
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 16;
		nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv) {
			md_log(LOG_WARN_, "out of memory; %s skipped", name);
			return;
		}
		l->v = nv;
		l->cap = cap;
	}
	snprintf(l->v[l->n++], CORE_NAME_MAX + 1, "%s", name);
}

static int find_interrupted(struct core_obj *o, void *arg)
{
	struct names *in = arg;
	const char *ph = core_obj_str(o, "status.phase");
	bool busy = o->kind == CORE_KIND_OPERATION ?
		(!ph || !strcmp(ph, "Pending") || !strcmp(ph, "Running")) :
		o->kind == CORE_KIND_SNAPSHOT ?
		(!ph || !strcmp(ph, "Pending") || !strcmp(ph, "Creating")) :
		(ph && !strcmp(ph, "Importing"));

	if (busy)
		names_add(in, o->name);
	return 0;
}

/* A clone cut short leaves no half-made VM behind. */
static void drop_clone_target(struct mountd *md, const char *op)
{
	struct core_ctl del = { .verb = CORE_V_DELETE, .force = true };
	char target[CORE_NAME_MAX + 1] = "", err[CORE_ERR_MAX];
	struct core_obj *o;
	const char *t;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_OPERATION, op);
	t = o ? core_obj_str(o, "spec.cloneSpec.targetName") : NULL;
	if (t && !strcmp(core_obj_str(o, "spec.operation") ?: "", "clone") &&
	    core_model_find(md->m, t))
		snprintf(target, sizeof(target), "%s", t);
	core_model_unlock(md->m);
	if (target[0] && md_do(md, target, &del, err, sizeof(err)) < 0)
		md_log(LOG_WARN_, "half-made clone %s: %s", target, err);
	else if (target[0])
		md_log(LOG_INFO_, "removed half-made clone %s", target);
}

/* An object a restart caught mid-way: a snapshot libvirt finished is
 * Ready after all; anything else failed. */
static void settle_one(struct mountd *md, enum core_kind kind,
		       const char *name, const char *vm)
{
	struct be_snap_info si;
	char err[CORE_ERR_MAX];

	if (kind == CORE_KIND_SNAPSHOT &&
	    be_snapshot_info(md->be, vm, name, &si, err, sizeof(err)) == 0)
		ops_status(md, kind, name, "phase", ops_jstr("Ready"),
			   "readyToRestore", json_object_new_boolean(true), NULL);
	else
		ops_status(md, kind, name, "phase", ops_jstr("Failed"), "message",
			   ops_jstr("interrupted: hypersdk-mountd restarted while "
				"it ran"), NULL);
	ops_publish(md, kind, name);
}

/* Nothing runs at start-up: an object caught mid-way gets a clear end,
 * and a clone cut short loses its half-made target. */
static void settle(struct mountd *md, enum core_kind kind)
{
	struct names in = { 0 };
	char vm[CORE_NAME_MAX + 1] = "";
	struct core_obj *o;

	core_model_rdlock(md->m);
	core_model_obj_each(md->m, kind, find_interrupted, &in);
	core_model_unlock(md->m);
	for (size_t i = 0; i < in.n; i++) {
		core_model_rdlock(md->m);
		o = core_model_obj_find(md->m, kind, in.v[i]);
		snprintf(vm, sizeof(vm), "%s", o ? o->vm : "");
		core_model_unlock(md->m);
		settle_one(md, kind, in.v[i], vm);
		if (kind == CORE_KIND_OPERATION)
			drop_clone_target(md, in.v[i]);
	}
	free(in.v);
}

int md_ops_load(struct mountd *md)
{
	struct { struct mountd *md; enum core_kind kind; } c = { md, 0 };

	/* In a cluster the API server has them; the watch brings them. */
	for (int k = 0; !md->sync && k < CORE_KIND_COUNT; k++) {
		c.kind = (enum core_kind)k;
		core_store_list(md->store, core_kind_dir(c.kind), load_obj, &c);
	}
	core_model_flush(md->m);
	for (int k = 0; !md->sync && k < CORE_KIND_COUNT; k++)
		settle(md, (enum core_kind)k);
	ops_template_usage(md);
	return 0;
}

/* ---- from the API server ------------------------------------------- */

struct job {
	struct mountd *md;
	enum core_kind kind;
	char name[CORE_NAME_MAX + 1];
	struct md_run *run;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	char err[CORE_ERR_MAX] = "";
	int rc;

	if (j->kind == CORE_KIND_OPERATION)
		rc = ops_run(j->md, j->name, j->run, err, sizeof(err));
	else if (j->kind == CORE_KIND_SNAPSHOT)
		rc = ops_snapshot_take(j->md, j->name, err, sizeof(err));
	else
		rc = ops_template_import(j->md, j->name, err, sizeof(err));
	if (rc < 0)
		md_log(LOG_WARN_, "%s %s: %s", core_kind_name(j->kind), j->name,
		       err);
	ops_run_end(j->md, j->run);
	free(j);
	return NULL;
}

static void spawn(struct mountd *md, enum core_kind kind, const char *name,
		  const char *vm, int timeout_s)
{
	struct job *j;
	pthread_attr_t a;
	pthread_t t;

	if (ops_run_exists(md, name))
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->md = md;
	j->kind = kind;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->run = ops_run_begin(md, name, vm ? vm : "", timeout_s);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (!j->run || pthread_create(&t, &a, job_main, j) != 0) {
		ops_run_end(md, j->run);
		free(j);
	}
	pthread_attr_destroy(&a);
}

void md_template_import_bg(struct mountd *md, const char *name)
{
	spawn(md, CORE_KIND_TEMPLATE, name, NULL, 0);
}

/* Which new objects this node acts on: operations and snapshots of the
 * VMs it owns, and every template (each node imports into its own pool). */
static bool wants_run(struct mountd *md, enum core_kind kind,
		      json_object *obj, const char *vm)
{
	json_object *ph = core_json_path(obj, "status.phase");
	const char *p = ph ? json_object_get_string(ph) : NULL;

	if (kind == CORE_KIND_TEMPLATE)
		return !p || !strcmp(p, "Pending");
	return (!p || !strcmp(p, "Pending")) && vm && md_owned(md, vm, NULL, 0);
}

/* Running here by another node's record, yet not in our runs: a restart
 * cut it short. */
static bool orphaned(struct mountd *md, enum core_kind kind, json_object *obj)
{
	json_object *ph = core_json_path(obj, "status.phase");
	json_object *node = core_json_path(obj, "status.nodeName");
	const char *name = json_object_get_string(
		core_json_path(obj, "metadata.name"));

	const char *p = ph ? json_object_get_string(ph) : "";

	if (kind == CORE_KIND_TEMPLATE || !node ||
	    strcmp(json_object_get_string(node), md->node) ||
	    ops_run_exists(md, name))
		return false;
	return kind == CORE_KIND_OPERATION ? !strcmp(p, "Running") :
					     !strcmp(p, "Creating");
}

/* spec.cancel on an operation that is not running here: if it is this
 * node's to run and has not started, it ends before it begins. */
static void cancel_pending(struct mountd *md, const char *name,
			   json_object *state, const char *vm)
{
	json_object *ph = core_json_path(state, "status.phase");
	const char *p = ph ? json_object_get_string(ph) : "Pending";

	if (strcmp(p, "Pending") || !vm[0] || !md_owned(md, vm, NULL, 0))
		return;
	ops_status(md, CORE_KIND_OPERATION, name, "phase", ops_jstr("Cancelled"),
		   "message", ops_jstr("cancelled before it started"), NULL);
	ops_publish(md, CORE_KIND_OPERATION, name);
}

/* Objects this node runs or made ("mine") keep the status it wrote: the
 * watch brings older states of it late (an ADDED without status after the
 * run ended), and taking one for news would run it again or call it
 * interrupted. */
static int merge_put(struct mountd *md, enum core_kind kind, json_object *copy,
		     char *name, char *vm, json_object **state, bool *mine,
		     char *err, size_t errlen)
{
	struct core_obj *o;
	json_object *st;
	const char *n = json_object_get_string(core_json_path(copy, "metadata.name"));
	int rc;

	core_model_wrlock(md->m);
	o = n ? core_model_obj_find(md->m, kind, n) : NULL;
	*mine = o && md_ox(o)->mine;
	/* A template whose image changed is news: import it again. */
	if (*mine && kind == CORE_KIND_TEMPLATE &&
	    !json_object_equal(core_json_path(o->obj, "spec.image"),
			       core_json_path(copy, "spec.image")))
		*mine = false, json_object_object_del(copy, "status");
	if (*mine && (st = core_json_path(o->obj, "status")))
		json_object_object_add(copy, "status", json_object_get(st));
	rc = core_model_obj_put(md->m, kind, copy, &o, err, errlen);
	if (rc == 0) {
		md_ox(o)->mine = *mine;
		snprintf(name, CORE_NAME_MAX + 1, "%s", o->name);
		snprintf(vm, CORE_NAME_MAX + 1, "%s", o->vm);
		json_object_deep_copy(o->obj, state, NULL);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	return rc;
}

void md_ops_upsert(struct mountd *md, enum core_kind kind, json_object *obj)
{
	char err[CORE_ERR_MAX], name[CORE_NAME_MAX + 1], vm[CORE_NAME_MAX + 1];
	json_object *copy = NULL, *state = NULL;
	bool mine = false;
	int rc;

	if (json_object_deep_copy(obj, &copy, NULL) != 0)
		return;
	rc = merge_put(md, kind, copy, name, vm, &state, &mine, err, sizeof(err));
	if (rc < 0) {
		json_object_put(copy);
		md_log(LOG_WARN_, "%s: %s; not mirrored", core_kind_name(kind), err);
		return;
	}
	if (kind == CORE_KIND_OPERATION &&
	    json_object_get_boolean(core_json_path(state, "spec.cancel"))) {
		if (ops_run_exists(md, name))
			ops_cancel_op(md, name);
		else
			cancel_pending(md, name, state, vm);
	} else if (!mine && orphaned(md, kind, state)) {
		settle_one(md, kind, name, vm);
	} else if (!mine && wants_run(md, kind, state, vm[0] ? vm : NULL)) {
		spawn(md, kind, name, vm, ops_duration_s(json_object_get_string(
			core_json_path(state, "spec.timeout"))));
	}
	json_object_put(state);
}

void md_ops_remove(struct mountd *md, enum core_kind kind, const char *name)
{
	char err[CORE_ERR_MAX], vm[CORE_NAME_MAX + 1] = "";
	struct core_obj *o;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, kind, name);
	if (o)
		snprintf(vm, sizeof(vm), "%s", o->vm);
	core_model_unlock(md->m);
	/* kubectl delete vmsnapshot: the owner removes it from libvirt. */
	if (kind == CORE_KIND_SNAPSHOT && vm[0] && md_owned(md, vm, NULL, 0)) {
		int rc = be_snapshot_delete(md->be, vm, name, err, sizeof(err));

		/* Gone already (libvirt dropped it with its domain) is fine. */
		if (rc < 0 && rc != -ENOENT)
			md_log(LOG_WARN_, "snapshot %s: %s", name, err);
	}
	/* kubectl delete vmtemplate: every node drops its own copy (a VM
	 * still built on it keeps it: EBUSY). */
	if (kind == CORE_KIND_TEMPLATE)
		md_template_forget(md, name);
	core_model_wrlock(md->m);
	o = core_model_obj_find(md->m, kind, name);
	if (o)
		core_model_obj_remove(md->m, o);
	core_model_unlock(md->m);
	core_model_flush(md->m);
	core_store_del(md->store, core_kind_dir(kind), name);
}

struct snaps_of {
	const char *vm;
	struct names l;
};

static int snaps_of(struct core_obj *o, void *arg)
{
	struct snaps_of *c = arg;

	if (!strcmp(o->vm, c->vm))
		names_add(&c->l, o->name);
	return 0;
}

void md_ops_vm_gone(struct mountd *md, const char *vm)
{
	struct snaps_of c = { .vm = vm };

	core_model_rdlock(md->m);
	core_model_obj_each(md->m, CORE_KIND_SNAPSHOT, snaps_of, &c);
	core_model_unlock(md->m);
	for (size_t i = 0; i < c.l.n; i++)
		ops_delete(md, CORE_KIND_SNAPSHOT, c.l.v[i]);
	free(c.l.v);
	/* Not on the stats clock: a template may be deleted right after. */
	ops_template_usage(md);
}
