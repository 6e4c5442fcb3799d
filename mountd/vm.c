/* One way to a VM: look it up under the model lock, copy out or edit,
 * unlock, deliver the change.  And the busy mark, the one lock an action
 * holds on a VM while it talks to libvirt without the model lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/priv.h"

struct md_vmx *md_x(const struct core_vm *vm)
{
	return vm->priv;
}

struct md_objx *md_ox(const struct core_obj *o)
{
	return o->priv;
}

static void copy_out(const struct mountd *md, const struct core_vm *vm,
		     struct md_vm *out)
{
	const struct md_vmx *x = vm->priv;

	out->phase = vm->st.phase;
	out->want_running = vm->spec.running;
	out->mark = x->mark;
	out->owner = vm->owner;
	out->version = vm->version;
	out->spec_gen = vm->spec_gen;
	out->defined_gen = x->defined_gen;
	out->refused_gen = x->refused_gen;
	out->cpus = vm->spec.cpus;
	out->memory = vm->spec.memory;
	snprintf(out->node, sizeof(out->node), "%s", vm->st.node);
	snprintf(out->ns, sizeof(out->ns), "%s", vm->ns);
	snprintf(out->uid, sizeof(out->uid), "%s", vm->uid);
	snprintf(out->rv, sizeof(out->rv), "%s", x->rv);
	out->next_restart = vm->st.next_restart;
	out->movable = vm->spec.ha_enabled && md_classes_shared(md, &vm->spec);
	out->carbon_aware = vm->spec.carbon_aware;
	out->carbon_waits = vm->st.carbon.since != 0;
}

int md_vm_get(struct mountd *md, const char *name, struct md_vm *out)
{
	struct core_vm *vm;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		copy_out(md, vm, out);
	core_model_unlock(md->m);
	return vm ? 0 : -ENOENT;
}

int md_vm_edit(struct mountd *md, const char *name, md_edit_fn fn, void *arg)
{
	struct core_vm *vm;
	int rc = -ENOENT;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		rc = fn(md, vm, arg);
	core_model_unlock(md->m);
	core_model_flush(md->m);
	return rc;
}

struct picked {
	struct mountd *md;
	md_pick_fn pick;
	md_name *names;
	size_t n, cap;
};

static int pick_one(struct core_vm *vm, void *arg)
{
	struct picked *p = arg;

	if (p->n < p->cap && p->pick(p->md, vm))
		snprintf(p->names[p->n++], sizeof(md_name), "%s", vm->name);
	return 0;
}

int md_vm_names(struct mountd *md, md_pick_fn pick, md_name **names, size_t *n)
{
	struct picked p = { .md = md, .pick = pick };

	core_model_rdlock(md->m);
	p.cap = core_model_count(md->m);
	p.names = calloc(p.cap + 1, sizeof(*p.names));
	if (p.names)
		core_model_each(md->m, pick_one, &p);
	core_model_unlock(md->m);
	*names = p.names;
	*n = p.n;
	return p.names ? 0 : -ENOMEM;
}

/* ---- the busy mark ---------------------------------------------------- */

const char *md_mark_name(struct md_mark m)
{
	const struct core_op *op;

	switch (m.hold) {
	case MD_HOLD_NONE:
		return "";
	case MD_HOLD_SPEC:
		return "spec";
	case MD_HOLD_RECONCILE:
		return "reconcile";
	case MD_HOLD_SNAPSHOT_DELETE:
		return "snapshot delete";
	case MD_HOLD_FENCE:
		return "fence";
	case MD_HOLD_HANDOVER:
		return "handover";
	case MD_HOLD_VERB:
		break;
	}
	op = core_op(m.verb);
	if (!op)
		return "?";
	if (m.force && m.verb == CORE_V_STOP)
		return "stop force";
	if (m.force && m.verb == CORE_V_DELETE)
		return "delete force";
	/* The API's name where there is one: revert shows as restore. */
	return op->operation ? op->operation : op->name;
}

struct md_mark md_mark_verb(enum core_verb v, bool force)
{
	return (struct md_mark){ .hold = MD_HOLD_VERB, .verb = v, .force = force };
}

struct md_mark md_mark_of(enum md_hold h)
{
	return (struct md_mark){ .hold = h };
}

static bool mark_eq(struct md_mark a, struct md_mark b)
{
	return a.hold == b.hold && (a.hold != MD_HOLD_VERB ||
				    (a.verb == b.verb && a.force == b.force));
}

/* Model write lock held: the mark, and the status line that shows it. */
void md_mark_set(struct mountd *md, struct core_vm *vm, struct md_mark m)
{
	md_x(vm)->mark = m;
	snprintf(vm->st.operation, sizeof(vm->st.operation), "%s",
		 md_mark_name(m));
	core_model_status_changed(md->m, vm);
}

/* A forced stop may overtake a graceful one: it runs under the graceful
 * one's mark, which its owner releases. */
static bool overtakes(struct md_mark want, struct md_mark held)
{
	return want.hold == MD_HOLD_VERB && want.verb == CORE_V_STOP &&
	       want.force && held.hold == MD_HOLD_VERB &&
	       held.verb == CORE_V_STOP && !held.force;
}

struct claim {
	struct md_mark want;
	struct md_vm *out;
};

static int claim_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct claim *c = arg;
	struct md_mark held = md_x(vm)->mark;

	copy_out(md, vm, c->out);
	if (held.hold == MD_HOLD_NONE) {
		md_mark_set(md, vm, c->want);
		return 0;
	}
	return overtakes(c->want, held) ? 0 : -EBUSY;
}

static int try_claim(struct mountd *md, const char *name, struct md_mark want,
		     struct md_vm *out, char *err, size_t errlen)
{
	struct claim c = { .want = want, .out = out };
	int rc = md_vm_edit(md, name, claim_locked, &c);

	if (rc == -ENOENT)
		snprintf(err, errlen, "vm %s does not exist", name);
	else if (rc == -EBUSY)
		snprintf(err, errlen, "%s: vm %s is busy (%s in progress)",
			 md_mark_name(want), name, md_mark_name(out->mark));
	return rc;
}

int md_claim(struct mountd *md, const char *name, struct md_mark want,
	     struct md_vm *out, char *err, size_t errlen)
{
	struct md_vm tmp;
	int rc, tries = 0;

	if (!out)
		out = &tmp;
	/* A user's verb waits out the reconciler's own short look rather
	 * than failing with EBUSY. */
	while ((rc = try_claim(md, name, want, out, err, errlen)) == -EBUSY &&
	       out->mark.hold == MD_HOLD_RECONCILE &&
	       want.hold != MD_HOLD_RECONCILE && tries++ < 100)
		core_model_wait(md->m, name, out->version, NULL, 100);
	return rc;
}

static int release_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	const struct md_mark *m = arg;

	if (mark_eq(md_x(vm)->mark, *m))
		md_mark_set(md, vm, md_mark_of(MD_HOLD_NONE));
	return 0;
}

void md_release(struct mountd *md, const char *name, struct md_mark m)
{
	md_vm_edit(md, name, release_locked, &m);
}

int md_busy(struct mountd *md, const char *name, const char *verb, char *err,
	    size_t errlen)
{
	struct md_vm v;

	if (md_vm_get(md, name, &v) < 0 || v.mark.hold == MD_HOLD_NONE)
		return 0;
	snprintf(err, errlen, "%s: vm %s is busy (%s in progress)", verb, name,
		 md_mark_name(v.mark));
	return -EBUSY;
}

/* ---- small edits ------------------------------------------------------ */

struct ev {
	const char *reason, *msg;
};

static int event_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	const struct ev *e = arg;

	core_model_event(md->m, vm, e->reason, "%s", e->msg);
	return 0;
}

void md_event(struct mountd *md, const char *name, const char *reason,
	      const char *msg)
{
	struct ev e = { reason, msg };

	md_vm_edit(md, name, event_locked, &e);
}

int md_persist(struct mountd *md, const char *name)
{
	struct core_vm *vm;
	json_object *obj = NULL;
	int rc;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		obj = core_vm_to_object(vm);
	core_model_unlock(md->m);
	if (!obj)
		return vm ? -ENOMEM : -ENOENT;
	rc = core_store_put(md->store, "vms", name, obj);
	json_object_put(obj);
	if (rc < 0)
		md_log(LOG_ERR_, "cannot store vm %s: %s", name, strerror(-rc));
	return rc;
}

static int remove_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	core_model_remove(md->m, vm);
	return 0;
}

void md_forget(struct mountd *md, const char *name)
{
	int rc = core_store_del(md->store, "vms", name);

	if (rc < 0 && rc != -ENOENT)
		md_log(LOG_WARN_, "delete %s from the store: %s", name, strerror(-rc));
	md_vm_edit(md, name, remove_locked, NULL);
	md_nodes_dirty(md);
}

int md_spec_copy(struct mountd *md, const char *name, json_object **out)
{
	struct core_vm *vm;
	int rc = -ENOENT;

	*out = NULL;
	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		rc = json_object_deep_copy(vm->spec_json, out, NULL) == 0 ?
		     0 : -ENOMEM;
	core_model_unlock(md->m);
	return rc;
}
