/* Running operations: from a ctl write, from kubectl, after a restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/ops/ops.h"

static const char *const terminal[] = { "Succeeded", "Failed", "Cancelled",
					NULL };

static bool is_terminal(const char *phase)
{
	for (int i = 0; phase && terminal[i]; i++)
		if (!strcmp(phase, terminal[i]))
			return true;
	return false;
}

static void finish(struct mountd *md, const char *name, const char *uid,
		   const char *vm, const char *type, int rc, int cancel,
		   const char *err)
{
	char now[32], msg[CORE_ERR_MAX + 64];
	const char *phase = rc == 0 ? "Succeeded" :
		cancel == OPS_CANCEL_USER ? "Cancelled" : "Failed";

	ops_now(now, sizeof(now));
	if (rc == 0)
		snprintf(msg, sizeof(msg), "%s done", type);
	else if (cancel == OPS_CANCEL_TIMEOUT)
		snprintf(msg, sizeof(msg), "%s timed out: %s", type, err);
	else
		snprintf(msg, sizeof(msg), "%s", err);
	ops_status(md, CORE_KIND_OPERATION, name, "phase", ops_jstr(phase),
		   "completionTime", ops_jstr(now), "message", ops_jstr(msg), NULL);
	if (rc == 0)
		ops_status(md, CORE_KIND_OPERATION, name, "progress",
			   json_object_new_int(100), NULL);
	ops_publish(md, CORE_KIND_OPERATION, name);
	md_event(md, vm, rc == 0 ? "OperationSucceeded" : "OperationFailed",
		 msg);
	md_report_op(md, name, uid, phase, msg);
}

/* The row of CORE_OPS names the run function; a verb of the tree's own
 * (start, stop, restart, pause, resume) runs as its ctl write does. */
static int dispatch(struct mountd *md, const char *name,
		    const struct core_op *op, const char *vm, json_object *o,
		    struct md_run *run, char *err, size_t errlen)
{
	struct core_ctl msg = { .verb = op->verb, .running = -1,
				.keep_days = -1, .keep_count = -1 };
	struct md_job j = { .vm = vm, .msg = &msg, .op = name, .obj = o,
			    .run = run };

	msg.force = json_object_get_boolean(core_json_path(o, "spec.force"));
	msg.now = op->verb == CORE_V_START &&
		  json_object_get_boolean(core_json_path(o, "spec.now"));
	if (!(op->flags & CORE_OPF_OBJECT))
		return md_do(md, vm, &msg, err, errlen);
	return md_run_of(op->verb)(md, &j, err, errlen);
}

static bool marks_vm(const struct core_op *op)
{
	return op && (op->flags & CORE_OPF_MARKS);
}

/* Run a VMOperation already in the model; run was registered by the
 * caller (so a watch echo does not start it twice). */
int ops_run(struct mountd *md, const char *name, struct md_run *run,
	    char *err, size_t errlen)
{
	json_object *o = NULL;
	const char *vm, *type, *uid;
	const struct core_op *op;
	struct md_mark m;
	char now[32], note[CORE_NAME_MAX * 2 + 64];
	struct core_obj *ob;
	int rc = -ENOENT, cancel;

	core_model_rdlock(md->m);
	ob = core_model_obj_find(md->m, CORE_KIND_OPERATION, name);
	if (ob && json_object_deep_copy(ob->obj, &o, NULL) == 0)
		rc = 0;
	core_model_unlock(md->m);
	if (rc < 0) {
		snprintf(err, errlen, "operation %s does not exist", name);
		return rc;
	}
	vm = json_object_get_string(core_json_path(o, "spec.vmRef.name"));
	type = json_object_get_string(core_json_path(o, "spec.operation"));
	ops_run_timeout(run, ops_duration_s(json_object_get_string(
				     core_json_path(o, "spec.timeout"))));
	ops_now(now, sizeof(now));
	ops_status(md, CORE_KIND_OPERATION, name, "phase", ops_jstr("Running"),
		   "startTime", ops_jstr(now), "nodeName", ops_jstr(md->node),
		   "progress", json_object_new_int(0), "message",
		   ops_jstr(type), NULL);
	ops_publish(md, CORE_KIND_OPERATION, name);
	uid = json_object_get_string(core_json_path(o, "metadata.uid"));
	snprintf(note, sizeof(note), "%s of vm %s on node %s",
		 type ? type : "?", vm ? vm : "?", md->node);
	md_report_op(md, name, uid, "Started", note);
	err[0] = '\0';
	op = core_op_by_operation(type);
	m = md_mark_verb(op ? op->verb : CORE_V_COUNT, false);
	rc = marks_vm(op) ? md_claim(md, vm, m, NULL, err, errlen) : 0;
	if (!op) {
		snprintf(err, errlen, "unknown operation \"%s\"", type ? type : "");
		rc = -EINVAL;
	}
	if (rc == 0) {
		rc = dispatch(md, name, op, vm, o, run, err, errlen);
		if (marks_vm(op)) {
			md_release(md, vm, m);
			md_refresh(md, vm);     /* Migrating is over */
		}
	}
	cancel = ops_cancel_reason(run);
	if (rc == -ECANCELED && !err[0])
		snprintf(err, errlen, "%s cancelled", type);
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s: %s", type, strerror(-rc));
	finish(md, name, uid, vm, type ? type : "?", rc, rc < 0 ? cancel : 0,
	       err);
	if (rc < 0 && cancel == OPS_CANCEL_TIMEOUT)
		rc = -ETIMEDOUT;
	json_object_put(o);
	return rc;
}

/* ---- from a VM's ctl ------------------------------------------------- */

static void op_name(struct mountd *md, const char *vm, const char *verb,
		    char *out, size_t len)
{
	char base[CORE_NAME_MAX - 3];
	long t = (long)time(NULL);

	snprintf(base, sizeof(base), "%.36s-%s-%ld", vm, verb, t);
	snprintf(out, len, "%s", base);
	core_model_rdlock(md->m);
	for (int i = 2; core_model_obj_find(md->m, CORE_KIND_OPERATION, out) &&
			i < 1000; i++)
		snprintf(out, len, "%s-%d", base, i);
	core_model_unlock(md->m);
}

static void add_bool(json_object *o, const char *k, bool v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

/* The VMOperation spec for a ctl message. */
static void op_spec(json_object *spec, const struct core_ctl *msg)
{
	json_object *sub = json_object_new_object();
	char q[32];

	switch (msg->verb) {
	case CORE_V_CLONE:
		json_object_object_add(sub, "targetName", ops_jstr(msg->arg));
		add_bool(sub, "linkedClone", msg->linked);
		add_bool(sub, "startAfterClone", msg->start);
		json_object_object_add(spec, "cloneSpec", sub);
		break;
	case CORE_V_MIGRATE:
		json_object_object_add(sub, "targetNode", ops_jstr(msg->arg));
		add_bool(sub, "live", !msg->offline);
		add_bool(sub, "offline", msg->offline);
		add_bool(sub, "autoConverge", msg->autoconverge);
		add_bool(sub, "postCopy", msg->postcopy);
		if (msg->bandwidth) {
			snprintf(q, sizeof(q), "%llubps",
				 (unsigned long long)msg->bandwidth);
			json_object_object_add(sub, "bandwidth", ops_jstr(q));
		}
		json_object_object_add(spec, "migrateSpec", sub);
		break;
	case CORE_V_RESIZE:
		if (msg->cpus)
			json_object_object_add(sub, "cpus",
					       json_object_new_int(msg->cpus));
		if (msg->memory) {
			core_qty_format(msg->memory, q, sizeof(q));
			json_object_object_add(sub, "memory", ops_jstr(q));
		}
		json_object_object_add(spec, "resizeSpec", sub);
		break;
	default:        /* revert: the CRD calls it restore */
		json_object_object_add(sub, "snapshotName", ops_jstr(msg->arg));
		json_object_object_add(spec, "snapshotSpec", sub);
		break;
	}
}

struct phase_wait {
	enum core_kind kind;
	const char *name;
	char phase[16];
	char msg[CORE_ERR_MAX];
};

static int phase_check(struct core_model *m, void *ctx)
{
	struct phase_wait *w = ctx;
	struct core_obj *o;
	const char *ph, *msg;
	int r = 1;

	core_model_rdlock(m);
	o = core_model_obj_find(m, w->kind, w->name);
	if (!o) {
		r = -ENOENT;
	} else {
		ph = core_obj_str(o, "status.phase");
		msg = core_obj_str(o, "status.message");
		if (is_terminal(ph) || (ph && w->kind == CORE_KIND_SNAPSHOT &&
					(!strcmp(ph, "Ready") ||
					 !strcmp(ph, "Failed")))) {
			snprintf(w->phase, sizeof(w->phase), "%s", ph);
			snprintf(w->msg, sizeof(w->msg), "%s", msg ? msg : "");
			r = 0;
		}
	}
	core_model_unlock(m);
	return r;
}

/* Another node owns the VM: its daemon runs what we made; wait for the
 * outcome the watch brings back. */
int ops_wait_remote(struct mountd *md, enum core_kind kind, const char *name,
		    int timeout_s, char *err, size_t errlen)
{
	struct phase_wait w = { .kind = kind, .name = name };
	int rc = core_model_wait_until(md->m, phase_check, &w, NULL,
				       (timeout_s + OPS_REMOTE_GRACE_S) * 1000);

	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "%s %s: no outcome from the VM's node in "
			 "%d s", core_kind_name(kind), name,
			 timeout_s + OPS_REMOTE_GRACE_S);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s %s was deleted", core_kind_name(kind),
			 name);
		return rc;
	}
	if (!strcmp(w.phase, "Succeeded") || !strcmp(w.phase, "Ready"))
		return 0;
	snprintf(err, errlen, "%s", w.msg[0] ? w.msg : w.phase);
	return !strcmp(w.phase, "Cancelled") ? -ECANCELED : -EIO;
}

static int vm_check(struct mountd *md, const char *vm, bool *owned,
		    char *err, size_t errlen)
{
	char owner[CORE_NAME_MAX + 1] = "";
	struct md_vm v;

	if (md_vm_get(md, vm, &v) < 0) {
		snprintf(err, errlen, "vm %s does not exist", vm);
		return -ENOENT;
	}
	*owned = md_owned(md, vm, owner, sizeof(owner));
	return 0;
}

struct running {
	const char *vm;
	char name[CORE_NAME_MAX + 1];
};

static int find_running(struct core_obj *o, void *arg)
{
	struct running *r = arg;
	const char *ph = core_obj_str(o, "status.phase");

	if (strcmp(o->vm, r->vm) || (ph && strcmp(ph, "Running") &&
				     strcmp(ph, "Pending")))
		return 0;
	snprintf(r->name, sizeof(r->name), "%s", o->name);
	return 0;
}

/* cancel for another node's VM: spec.cancel on the operation it runs,
 * then the outcome as the watch brings it. */
static int cancel_remote(struct mountd *md, const char *vm, char *err,
			 size_t errlen)
{
	struct running r = { .vm = vm };
	json_object *patch;
	int rc;

	core_model_rdlock(md->m);
	core_model_obj_each(md->m, CORE_KIND_OPERATION, find_running, &r);
	core_model_unlock(md->m);
	if (!r.name[0] || !md->sync) {
		snprintf(err, errlen, "cancel: no operation in progress on vm %s",
			 vm);
		return -ENOENT;
	}
	patch = json_object_new_object();
	json_object_object_add(patch, "spec", json_object_new_object());
	json_object_object_add(core_json_path(patch, "spec"), "cancel",
			       json_object_new_boolean(true));
	rc = sync_patch(md->sync, SYNC_OPERATION, r.name, patch, err, errlen);
	json_object_put(patch);
	if (rc < 0)
		return rc;
	rc = ops_wait_remote(md, CORE_KIND_OPERATION, r.name, OPS_CANCEL_WAIT_S,
			     err, errlen);
	/* The operation ending is what cancel asked for. */
	return rc == -ECANCELED || rc == -EIO ? 0 : rc;
}

int md_op_ctl(struct mountd *md, const char *vm, const struct core_ctl *msg,
	      char *err, size_t errlen)
{
	char name[CORE_NAME_MAX + 1];
	const char *verb = core_verb_name(msg->verb);
	struct md_run *run = NULL;
	json_object *o, *spec;
	bool owned;
	int rc;

	rc = vm_check(md, vm, &owned, err, errlen);
	if (rc < 0)
		return rc;
	if (msg->verb == CORE_V_CANCEL) {
		struct md_job j = { .vm = vm, .msg = msg };

		return md_run_cancel(md, &j, err, errlen);
	}
	/* A busy VM refuses at once, before any object is made. */
	rc = md_busy(md, vm, verb, err, errlen);
	if (rc < 0)
		return rc;
	if (msg->verb == CORE_V_SNAPSHOT)
		return ops_snapshot_ctl(md, vm, msg, owned, err, errlen);
	if (owned && (rc = ops_precheck(md, vm, msg, err, errlen)) < 0)
		return rc;
	op_name(md, vm, verb, name, sizeof(name));
	o = ops_new_object(md, CORE_KIND_OPERATION, name, vm);
	spec = core_json_path(o, "spec");
	json_object_object_add(spec, "operation",
			       ops_jstr(core_op(msg->verb)->operation));
	op_spec(spec, msg);
	core_owner_to_object(o, msg->owner);
	if (owned && !(run = ops_run_begin(md, name, vm, 0))) {
		json_object_put(o);
		return -ENOMEM;
	}
	rc = ops_create(md, CORE_KIND_OPERATION, o, owned, err, errlen);
	if (rc == 0 && owned)
		rc = ops_run(md, name, run, err, errlen);
	else if (rc == 0)
		rc = ops_wait_remote(md, CORE_KIND_OPERATION, name, OPS_TIMEOUT_S,
				     err, errlen);
	ops_run_end(md, run);
	return rc;
}

/* A verb for another node's VM that spec.running cannot carry (stop
 * force, restart, pause, resume): a VMOperation its owner runs. */
int md_op_forward(struct mountd *md, const char *vm, const struct core_ctl *msg,
		  char *err, size_t errlen)
{
	const char *verb = core_verb_name(msg->verb);
	char name[CORE_NAME_MAX + 1];
	json_object *o, *spec;
	int rc;

	op_name(md, vm, verb, name, sizeof(name));
	o = ops_new_object(md, CORE_KIND_OPERATION, name, vm);
	spec = core_json_path(o, "spec");
	json_object_object_add(spec, "operation", ops_jstr(verb));
	if (msg->force)
		json_object_object_add(spec, "force", json_object_new_boolean(true));
	if (msg->now)
		json_object_object_add(spec, "now", json_object_new_boolean(true));
	rc = ops_create(md, CORE_KIND_OPERATION, o, false, err, errlen);
	if (rc == 0)
		rc = ops_wait_remote(md, CORE_KIND_OPERATION, name,
				     md->stop_timeout_ms / 1000 + 120, err, errlen);
	return rc;
}

/* ---- the run functions of the verbs that are objects ------------------ */

int md_run_cancel(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	return md_owned(md, j->vm, NULL, 0) ? ops_cancel(md, j->vm, err, errlen) :
					      cancel_remote(md, j->vm, err, errlen);
}

int md_run_snapshot(struct mountd *md, const struct md_job *j, char *err,
		    size_t errlen)
{
	const char *snap = json_object_get_string(
		core_json_path(j->obj, "spec.snapshotSpec.snapshotName"));

	if (!snap) {
		snprintf(err, errlen, "snapshot: snapshotSpec.snapshotName is "
			 "missing");
		return -EINVAL;
	}
	return ops_snapshot_take(md, snap, err, errlen);
}
