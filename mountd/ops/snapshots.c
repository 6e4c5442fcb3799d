/* Snapshots: VMSnapshot objects made by `snapshot SNAP ...`, by mkdir in
 * vms/VM/snapshots/ or by kubectl, taken by the VM's owner; retention
 * moves them to Expired and, with autoDelete, deletes them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/ops/ops.h"

/* 0 when missing or unreadable: no time, no expiry by it. */
static time_t parse_time(const char *s)
{
	time_t t = 0;

	return core_rfc3339_parse(s, &t) == 0 ? t : 0;
}

static int snap_obj(struct mountd *md, const char *snap, char *vm,
		    bool *memory, bool *quiesce)
{
	struct core_obj *o;
	int rc = -ENOENT;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_SNAPSHOT, snap);
	if (o) {
		snprintf(vm, CORE_NAME_MAX + 1, "%s", o->vm);
		*memory = core_obj_bool(o, "spec.includeMemory", false);
		*quiesce = core_obj_bool(o, "spec.quiesce", false);
		rc = 0;
	}
	core_model_unlock(md->m);
	return rc;
}

/* The chain root..parent, from libvirt's tree. */
static json_object *chain_of(struct mountd *md, const char *vm,
			     const char *parent)
{
	json_object *arr = json_object_new_array();
	struct be_snap_info *all = NULL;
	char err[CORE_ERR_MAX];
	const char *cur = parent, **path = NULL;
	size_t n = 0, depth = 0, i;

	if (be_snapshot_list(md->be, vm, &all, &n, err, sizeof(err)) < 0)
		return arr;
	path = calloc(n + 1, sizeof(*path));
	while (path && cur && *cur && depth < n) {
		for (i = 0; i < n && strcmp(all[i].name, cur); i++)
			;
		if (i == n)
			break;
		path[depth++] = all[i].name;
		cur = all[i].parent;
	}
	while (path && depth > 0)
		json_object_array_add(arr, ops_jstr(path[--depth]));
	free(path);
	free(all);
	return arr;
}

static void ready(struct mountd *md, const char *snap, const char *vm,
		  const struct be_snap_info *in, bool asked_quiesce,
		  bool quiesced)
{
	char when[32], size[32];

	core_rfc3339(in->created ? in->created : time(NULL), when, sizeof(when));
	core_qty_format(in->size_bytes, size, sizeof(size));
	ops_status(md, CORE_KIND_SNAPSHOT, snap, "phase", ops_jstr("Ready"),
		   "readyToRestore", json_object_new_boolean(true),
		   "size", ops_jstr(size), "parentSnapshot", ops_jstr(in->parent),
		   "snapshotChain", chain_of(md, vm, in->parent),
		   "vmState", ops_jstr(core_phase_name(in->vm_phase)),
		   "creationTime", ops_jstr(when), "nodeName", ops_jstr(md->node),
		   "message", ops_jstr(in->memory ? "disks and memory" : "disks"),
		   NULL);
	if (asked_quiesce)
		ops_condition(md, CORE_KIND_SNAPSHOT, snap, "Quiesced", quiesced,
			      quiesced ? "AgentFroze" : "AgentNotResponding",
			      quiesced ? "file systems frozen by the guest agent" :
			      "no guest agent answered: crash-consistent snapshot");
}

static void failed(struct mountd *md, const char *snap, const char *err)
{
	ops_status(md, CORE_KIND_SNAPSHOT, snap, "phase", ops_jstr("Failed"),
		   "readyToRestore", json_object_new_boolean(false),
		   "message", ops_jstr(err), "nodeName", ops_jstr(md->node), NULL);
}

int ops_snapshot_take(struct mountd *md, const char *snap, char *err,
		      size_t errlen)
{
	char vm[CORE_NAME_MAX + 1], msg[CORE_ERR_MAX + 64];
	struct be_snap_info in = { 0 };
	bool memory, quiesce, quiesced = false;
	int rc = snap_obj(md, snap, vm, &memory, &quiesce);

	if (rc < 0) {
		snprintf(err, errlen, "snapshot %s does not exist", snap);
		return rc;
	}
	rc = md_claim(md, vm, md_mark_verb(CORE_V_SNAPSHOT, false), NULL, err,
		      errlen);
	if (rc == 0) {
		ops_status(md, CORE_KIND_SNAPSHOT, snap, "phase",
			   ops_jstr("Creating"), NULL);
		ops_publish(md, CORE_KIND_SNAPSHOT, snap);
		rc = be_snapshot_create(md->be, vm, snap, memory, quiesce,
					&quiesced, &in, err, errlen);
		md_release(md, vm, md_mark_verb(CORE_V_SNAPSHOT, false));
		md_refresh(md, vm);
	}
	if (rc < 0) {
		failed(md, snap, err);
	} else {
		ready(md, snap, vm, &in, quiesce, quiesced);
		snprintf(msg, sizeof(msg), "snapshot %s%s", snap,
			 in.memory ? " with memory" : "");
		md_event(md, vm, "SnapshotCreated", msg);
	}
	ops_publish(md, CORE_KIND_SNAPSHOT, snap);
	if (rc == 0)
		md_ops_sweep(md);
	return rc;
}

/* A ctl `snapshot SNAP [memory] [quiesce] [keep=Nd] [count=N]`. */
int ops_snapshot_ctl(struct mountd *md, const char *vm,
		     const struct core_ctl *msg, bool owned, char *err,
		     size_t errlen)
{
	json_object *o = ops_new_object(md, CORE_KIND_SNAPSHOT, msg->arg, vm);
	json_object *spec = core_json_path(o, "spec"), *ret;
	struct md_run *run = NULL;
	int rc;

	json_object_object_add(spec, "includeMemory",
			       json_object_new_boolean(msg->memory_state));
	json_object_object_add(spec, "quiesce",
			       json_object_new_boolean(msg->quiesce));
	if (msg->keep_days >= 0 || msg->keep_count >= 0) {
		ret = json_object_new_object();
		if (msg->keep_days >= 0)
			json_object_object_add(ret, "keepDays",
					       json_object_new_int(msg->keep_days));
		if (msg->keep_count >= 0)
			json_object_object_add(ret, "keepCount",
					       json_object_new_int(msg->keep_count));
		json_object_object_add(ret, "autoDelete",
				       json_object_new_boolean(true));
		json_object_object_add(spec, "retention", ret);
	}
	/* Registered first: the watch's echo of the create must not start
	 * a second run. */
	if (owned && !(run = ops_run_begin(md, msg->arg, vm, 0))) {
		json_object_put(o);
		return -ENOMEM;
	}
	rc = ops_create(md, CORE_KIND_SNAPSHOT, o, owned, err, errlen);
	if (rc == 0 && owned)
		rc = ops_snapshot_take(md, msg->arg, err, errlen);
	else if (rc == 0)
		rc = ops_wait_remote(md, CORE_KIND_SNAPSHOT, msg->arg, 600, err,
				     errlen);
	ops_run_end(md, run);
	return rc;
}

int ops_snapshot_delete(struct mountd *md, const char *snap, char *err,
			size_t errlen)
{
	char vm[CORE_NAME_MAX + 1];
	bool memory, quiesce;
	int rc = snap_obj(md, snap, vm, &memory, &quiesce);

	if (rc < 0) {
		snprintf(err, errlen, "snapshot %s does not exist", snap);
		return rc;
	}
	if (md_owned(md, vm, NULL, 0)) {
		rc = md_claim(md, vm, md_mark_of(MD_HOLD_SNAPSHOT_DELETE), NULL,
			      err, errlen);
		if (rc < 0)
			return rc;
		rc = be_snapshot_delete(md->be, vm, snap, err, errlen);
		md_release(md, vm, md_mark_of(MD_HOLD_SNAPSHOT_DELETE));
		if (rc == -ENOENT)
			rc = 0;         /* never taken, or gone already */
		if (rc < 0)
			return rc;
	}
	ops_delete(md, CORE_KIND_SNAPSHOT, snap);
	md_event(md, vm, "SnapshotDeleted", snap);
	return 0;
}

/* ---- retention ------------------------------------------------------ */

struct expiry {
	struct mountd *md;
	time_t now;
	char (*names)[CORE_NAME_MAX + 1];
	bool *del;
	size_t n, cap;
};

struct newer {
	const struct core_obj *o;
	time_t t;
	int n;
};

static int count_newer(struct core_obj *x, void *arg)
{
	struct newer *w = arg;
	const char *ph = core_obj_str(x, "status.phase");

	time_t t;

	if (x == w->o || strcmp(x->vm, w->o->vm) || !ph || strcmp(ph, "Ready"))
		return 0;
	/* Made in the same second: the later name counts as newer. */
	t = parse_time(core_obj_str(x, "status.creationTime"));
	if (t > w->t || (t == w->t && strcmp(x->name, w->o->name) > 0))
		w->n++;
	return 0;
}

/* Ready snapshots of the same VM made at or after t, o aside. */
static int newer_than(struct core_model *m, const struct core_obj *o,
		      time_t t)
{
	struct newer w = { o, t, 0 };

	core_model_obj_each(m, CORE_KIND_SNAPSHOT, count_newer, &w);
	return w.n;
}

static bool expired(struct core_model *m, const struct core_obj *o,
		    time_t now)
{
	time_t made = parse_time(core_obj_str(o, "status.creationTime"));
	int64_t days = core_obj_int(o, "spec.retention.keepDays", -1);
	int64_t count = core_obj_int(o, "spec.retention.keepCount", -1);
	time_t until = parse_time(core_obj_str(o, "spec.retention.expiresAt"));

	if (days >= 0 && made && made + days * 86400 <= now)
		return true;
	if (until && until <= now)
		return true;
	return count >= 0 && newer_than(m, o, made) >= count;
}

static int collect_expired(struct core_obj *o, void *arg)
{
	struct expiry *e = arg;
	const char *ph = core_obj_str(o, "status.phase");

	/* Expired ones come back only to retry their delete. */
	if (!ph || (strcmp(ph, "Ready") && (strcmp(ph, "Expired") ||
		    !core_obj_bool(o, "spec.retention.autoDelete", false))) ||
	    !md_owned(e->md, o->vm, NULL, 0))
		return 0;
	if (strcmp(ph, "Expired") && !expired(e->md->m, o, e->now))
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		void *nn = realloc(e->names, cap * sizeof(*e->names));
		void *nd = nn ? realloc(e->del, cap * sizeof(*e->del)) : NULL;

		if (!nn || !nd) {
			if (nn)
				e->names = nn;
			return -ENOMEM;
		}
		e->names = nn;
		e->del = nd;
		e->cap = cap;
	}
	snprintf(e->names[e->n], CORE_NAME_MAX + 1, "%s", o->name);
	e->del[e->n++] = core_obj_bool(o, "spec.retention.autoDelete", false);
	return 0;
}

void md_ops_sweep(struct mountd *md)
{
	struct expiry e = { .md = md, .now = time(NULL) };
	char err[CORE_ERR_MAX];

	core_model_rdlock(md->m);
	core_model_obj_each(md->m, CORE_KIND_SNAPSHOT, collect_expired, &e);
	core_model_unlock(md->m);
	for (size_t i = 0; i < e.n; i++) {
		ops_status(md, CORE_KIND_SNAPSHOT, e.names[i], "phase",
			   ops_jstr("Expired"), "readyToRestore",
			   json_object_new_boolean(!e.del[i]), "message",
			   ops_jstr("retention expired"), NULL);
		ops_publish(md, CORE_KIND_SNAPSHOT, e.names[i]);
		if (e.del[i] && ops_snapshot_delete(md, e.names[i], err,
						    sizeof(err)) < 0)
			md_log(LOG_WARN_, "expired snapshot %s: %s", e.names[i],
			       err);
	}
	free(e.names);
	free(e.del);
}
