/* Writes on a node that does not own the VM (cluster mode).  Only the
 * owner's reconciler touches its domain (docs/HACKING.md), so a write here
 * changes the object on the API server (spec patch, DELETE, or a
 * VMOperation) and waits for the owner's status.  What the owner would
 * refuse for the phase it reported is refused here first, with the same
 * errno and text, so that a refused write changes nothing anywhere. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mountd/priv.h"
#include "sync/sync.h"

static int unreachable(const char *verb, const char *name, const char *owner,
		       char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: vm %s belongs to node %s and the API "
		 "server is unreachable", verb, name, owner[0] ? owner : "(none)");
	return -EIO;
}

static int patch_running(struct mountd *md, const char *name, bool running,
			 char *err, size_t errlen)
{
	json_object *patch = json_object_new_object();
	json_object *spec = json_object_new_object();
	int rc;

	json_object_object_add(spec, "running", json_object_new_boolean(running));
	json_object_object_add(patch, "spec", spec);
	rc = sync_patch(md->sync, SYNC_VM, name, patch, err, errlen);
	json_object_put(patch);
	return rc;
}

static int wait_gone(struct mountd *md, const char *name, int timeout_ms)
{
	struct md_vm v;
	int rc;

	for (;;) {
		if (md_vm_get(md, name, &v) < 0)
			return 0;
		rc = core_model_wait(md->m, name, v.version, NULL, timeout_ms);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
	}
}

static int wait_owner(struct mountd *md, const char *name, const char *verb,
		      const char *owner, unsigned want, char *err,
		      size_t errlen)
{
	int rc = md_wait_phase(md, name, want, md->stop_timeout_ms + 120000);

	if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "%s: node %s did not act on vm %s in time",
			 verb, owner[0] ? owner : "(none)", name);
	else if (rc == -ENOENT)
		snprintf(err, errlen, "%s: vm %s was deleted meanwhile", verb,
			 name);
	else if (rc < 0)
		snprintf(err, errlen, "%s: vm %s: %s", verb, name,
			 strerror(-rc));
	return rc;
}

/* The phase the owner last reported, as the watch brought it.  A refusal
 * is confirmed with the API server's copy: the watch may not have brought
 * the owner's newest status yet (after a migration or an operation of
 * its own, say), and a write must not be refused for a stale phase. */
static int check_phase(struct mountd *md, const char *name,
		       const struct core_ctl *msg, char *err, size_t errlen)
{
	char gerr[CORE_ERR_MAX];
	json_object *obj = NULL, *st = NULL;
	struct core_status s;
	struct md_vm v;
	int rc;

	if (md_vm_get(md, name, &v) < 0)
		return 0;       /* the API server answers 404 */
	/* A stop of a start that waits for a greener grid cancels it. */
	if (msg->verb == CORE_V_STOP && v.carbon_waits)
		return 0;
	rc = md_verb_check(name, msg, v.phase, err, errlen);
	if (rc == 0)
		goto out;
	if (sync_get(md->sync, SYNC_VM, name, &obj, gerr, sizeof(gerr)) == 0 &&
	    json_object_object_get_ex(obj, "status", &st) &&
	    core_status_from_json(st, &s) == 0 && s.phase != v.phase)
		rc = md_verb_check(name, msg, s.phase, err, errlen);
out:
	json_object_put(obj);
	if (rc == 0)
		err[0] = '\0';  /* a refusal the server's copy overruled */
	return rc;
}

static int forward_op(struct mountd *md, const char *name,
		      const struct core_ctl *msg, char *err, size_t errlen)
{
	int rc = md_op_forward(md, name, msg, err, errlen);

	/* The operation succeeded: the status only lags.  Do not fail it.
	 * The writer returns with this node's status showing the phase the
	 * verb leaves, as after an owner-local write. */
	if (rc == 0 && core_op(msg->verb)->to &&
	    md_wait_phase(md, name, core_op(msg->verb)->to, 30000) < 0)
		md_log(LOG_DEBUG_, "vm %s: %s done, status not seen yet", name,
		       core_verb_name(msg->verb));
	return rc;
}

/* Where the owner's status goes: a carbonAware start may wait, Pending,
 * for a greener grid (a stop that cancels such a wait leaves it
 * Stopped, which the verb's own phases have). */
static unsigned start_outcome(struct mountd *md, const char *name,
			      const struct core_ctl *msg)
{
	unsigned to = core_op(msg->verb)->to;
	struct md_vm v;

	if (msg->verb == CORE_V_START && md_vm_get(md, name, &v) == 0 &&
	    v.carbon_aware)
		to |= CORE_PH(PENDING);
	return to;
}

/* The owner does the work; the writer changes the object and waits for
 * the owner's status.  Verbs with no spec field to express them run on
 * the owner's tree only. */
int md_cluster_forward(struct mountd *md, const char *name,
		       const struct core_ctl *msg, const char *owner,
		       char *err, size_t errlen)
{
	const char *verb = core_verb_name(msg->verb);
	bool start = msg->verb == CORE_V_START;
	int rc;

	if (!md->online)
		return unreachable(verb, name, owner, err, errlen);
	/* An unowned VM has no phase of an owner's to go by yet. */
	if (owner[0] && (rc = check_phase(md, name, msg, err, errlen)) < 0)
		return rc;
	switch (msg->verb) {
	case CORE_V_START:
	case CORE_V_STOP:
		/* "force" and "now" have no spec field to travel in: a
		 * VMOperation carries them. */
		if (msg->force || msg->now)
			return forward_op(md, name, msg, err, errlen);
		rc = patch_running(md, name, start, err, errlen);
		if (rc == 0)
			rc = wait_owner(md, name, verb, owner,
					start_outcome(md, name, msg), err, errlen);
		return rc;
	case CORE_V_DELETE:
		/* With or without force: the owner destroys a running domain
		 * when its object goes (drop_owned). */
		rc = sync_delete(md->sync, SYNC_VM, name, err, errlen);
		if (rc == 0)
			rc = wait_gone(md, name, md->stop_timeout_ms + 120000);
		if (rc == -ETIMEDOUT)
			snprintf(err, errlen, "delete: node %s did not act on "
				 "vm %s in time", owner[0] ? owner : "(none)", name);
		return rc;
	default:
		/* Any other verb a VMOperation can carry travels as one. */
		if (core_op(msg->verb)->operation)
			return forward_op(md, name, msg, err, errlen);
		snprintf(err, errlen, "%s: vm %s runs on node %s; use that "
			 "node's tree", verb, name, owner[0] ? owner : "(none yet)");
		return -EOPNOTSUPP;
	}
}

/* What the owner's converge will do about the power state. */
static unsigned spec_outcome(const struct core_vm *vm)
{
	unsigned bit = 1u << vm->st.phase;

	if (vm->spec.running && (bit & MD_INACTIVE))
		return 1u << CORE_PHASE_RUNNING;
	if (!vm->spec.running && (bit & MD_ACTIVE))
		return MD_INACTIVE;
	return 0;
}

/* Model write lock not held.  The model takes spec (readers here see what
 * was written, and validation is the same as on the owner); the old one
 * comes back in *old.  Consumes spec. */
static int take_spec(struct mountd *md, const char *name, json_object *spec,
		     json_object **old, unsigned *want, char *err,
		     size_t errlen)
{
	struct core_vm *vm;
	int rc;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	rc = !vm ? -ENOENT :
	     json_object_deep_copy(vm->spec_json, old, NULL) < 0 ? -ENOMEM : 0;
	if (rc == -ENOENT)
		snprintf(err, errlen, "vm %s does not exist", name);
	else if (rc == -ENOMEM)
		snprintf(err, errlen, "spec %s: out of memory", name);
	if (rc == 0)
		rc = core_model_set_spec(md->m, vm, spec, err, errlen);
	if (rc == 0)
		*want = spec_outcome(vm);
	else
		json_object_put(spec);
	core_model_unlock(md->m);
	core_model_flush(md->m);
	return rc;
}

/* A spec written for another node's VM becomes only the merge patch; the
 * owner's reconciler defines the domain and starts or stops it.  Applying
 * it here too would define (and maybe start) the domain on this node's
 * libvirt while the owner runs it.  Consumes spec. */
int md_cluster_spec_forward(struct mountd *md, const char *name,
			    json_object *spec, const char *owner, char *err,
			    size_t errlen)
{
	json_object *old = NULL, *new = json_object_get(spec);
	unsigned want = 0;
	int rc;

	if (!md->online) {
		json_object_put(spec);
		rc = unreachable("spec", name, owner, err, errlen);
		goto out;
	}
	rc = take_spec(md, name, spec, &old, &want, err, errlen);
	if (rc < 0)
		goto out;
	rc = md_cluster_spec(md, name, old, new, err, errlen);
	if (rc < 0) {
		md_model_spec_put(md, name, old);
		goto out;
	}
	md_persist(md, name);
	md_event(md, name, "SpecChanged", "spec replaced; its owner applies it");
	if (want && owner[0])
		rc = wait_owner(md, name, "spec", owner, want, err, errlen);
out:
	json_object_put(new);
	json_object_put(old);
	return rc;
}
