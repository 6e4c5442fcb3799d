/* What ctl and spec writes do.  Each action marks the VM busy
 * (status "operation"), talks to libvirt without holding the model lock,
 * and changes the model and the store only once libvirt agreed, so a
 * refused or failed action leaves everything as it was. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mountd/mountd.h"

#define PHASE_BIT(p) (1u << (p))
#define ACTIVE MD_ACTIVE
#define INACTIVE MD_INACTIVE

static void flush(struct mountd *md)
{
	core_model_flush(md->m);
}

/* Mark name busy with op.  A forced stop may overtake a graceful one. */
static int try_op(struct mountd *md, const char *name, const char *op,
		  enum core_phase *phase, uint64_t *ver, char *err,
		  size_t errlen)
{
	struct core_vm *vm;
	int rc = 0;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		*ver = vm->version;
	if (!vm) {
		snprintf(err, errlen, "vm %s does not exist", name);
		rc = -ENOENT;
	} else if (vm->st.operation[0] &&
		   !(strcmp(op, "stop force") == 0 &&
		     strcmp(vm->st.operation, "stop") == 0)) {
		snprintf(err, errlen, "%s: vm %s is busy (%s in progress)", op,
			 name, vm->st.operation);
		rc = -EBUSY;
	} else {
		if (phase)
			*phase = vm->st.phase;
		if (!vm->st.operation[0]) {
			snprintf(vm->st.operation, sizeof(vm->st.operation), "%s", op);
			core_model_status_changed(md->m, vm);
		}
	}
	core_model_unlock(md->m);
	flush(md);
	return rc;
}

/* Mark name busy with op; a user's verb waits out the reconciler's own
 * short "reconcile" rather than failing with EBUSY. */
static int begin_op(struct mountd *md, const char *name, const char *op,
		    enum core_phase *phase, char *err, size_t errlen)
{
	uint64_t ver = 0;
	int rc, tries = 0;

	while ((rc = try_op(md, name, op, phase, &ver, err, errlen)) == -EBUSY &&
	       strstr(err, "(reconcile in progress)") &&
	       strcmp(op, "reconcile") != 0 && tries++ < 100)
		core_model_wait(md->m, name, ver, NULL, 100);
	return rc;
}

static void end_op(struct mountd *md, const char *name, const char *op)
{
	struct core_vm *vm;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && !strcmp(vm->st.operation, op)) {
		vm->st.operation[0] = '\0';
		core_model_status_changed(md->m, vm);
	}
	core_model_unlock(md->m);
	flush(md);
}

static void event(struct mountd *md, const char *name, const char *reason,
		  const char *msg)
{
	struct core_vm *vm;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		core_model_event(md->m, vm, reason, "%s", msg);
	core_model_unlock(md->m);
	flush(md);
}

/* A private copy of the spec, so libvirt is called with no lock held. */
static int spec_copy(struct mountd *md, const char *name, json_object **json,
		     struct core_spec *spec, char *err, size_t errlen)
{
	struct core_vm *vm;
	json_object *j = NULL;
	int rc = -ENOENT;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && json_object_deep_copy(vm->spec_json, &j, NULL) == 0)
		rc = 0;
	core_model_unlock(md->m);
	if (rc == 0)
		rc = core_spec_from_json(j, spec, err, errlen);
	if (rc == 0 && json)
		*json = j;
	else
		json_object_put(j);
	return rc;
}

int md_redefine(struct mountd *md, const char *name, char *err,
		size_t errlen)
{
	char ns[CORE_NAME_MAX + 1] = "", uid[40] = "";
	struct core_spec spec;
	struct core_vm *vm;
	json_object *j = NULL;
	uint64_t gen = 0;
	int rc;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		snprintf(ns, sizeof(ns), "%s", vm->ns);
		snprintf(uid, sizeof(uid), "%s", vm->uid);
		gen = vm->spec_gen;
	}
	core_model_unlock(md->m);
	rc = md_template_disk(md, name, err, errlen);
	if (rc < 0)
		return rc;
	rc = spec_copy(md, name, &j, &spec, err, errlen);
	if (rc < 0)
		return rc;
	rc = be_define(md->be, name, ns, uid, &spec, j, err, errlen);
	core_spec_free(&spec);
	json_object_put(j);
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && rc == 0)
		vm->defined_gen = gen;
	core_model_unlock(md->m);
	return rc;
}

/* Define only when the spec moved since the last define, or the domain
 * went missing: a start then costs what virsh start costs. */
static int define_if_needed(struct mountd *md, const char *name, char *err,
			    size_t errlen)
{
	struct core_vm *vm;
	struct be_info in;
	bool stale;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	stale = !vm || vm->defined_gen != vm->spec_gen;
	core_model_unlock(md->m);
	if (!stale && be_info(md->be, name, &in, err, errlen) != -ENOENT)
		return 0;
	return md_redefine(md, name, err, errlen);
}

int md_set_running(struct mountd *md, const char *name, bool running)
{
	char err[CORE_ERR_MAX];
	struct core_vm *vm;
	json_object *j = NULL, *old = NULL;
	int rc = 0;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && vm->spec.running != running &&
	    json_object_deep_copy(vm->spec_json, &old, NULL) == 0 &&
	    json_object_deep_copy(vm->spec_json, &j, NULL) == 0) {
		core_spec_set_bool(j, "running", running);
		rc = core_model_set_spec(md->m, vm, json_object_get(j), err,
					 sizeof(err));
		if (rc < 0)
			json_object_put(j);
	}
	core_model_unlock(md->m);
	flush(md);
	if (rc == 0 && old)
		rc = md_cluster_spec(md, name, old, j, err, sizeof(err));
	json_object_put(old);
	json_object_put(j);
	if (rc < 0)
		md_log(LOG_WARN_, "vm %s: cannot publish spec.running: %s", name, err);
	return md_persist(md, name);
}

int md_wait_phase(struct mountd *md, const char *name, unsigned mask,
		      int timeout_ms)
{
	struct timespec t0, t;
	struct core_vm *vm;
	uint64_t ver;
	unsigned ph;
	int left, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		core_model_rdlock(md->m);
		vm = core_model_find(md->m, name);
		ph = vm ? PHASE_BIT(vm->st.phase) : 0;
		ver = vm ? vm->version : 0;
		core_model_unlock(md->m);
		if (!vm)
			return -ENOENT;
		if (ph & mask)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 +
					  (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		/* The reconciler may be the one waiting here (cluster mode):
		 * do not rely on it alone to notice libvirt's change. */
		rc = core_model_wait(md->m, name, ver, NULL, left < 250 ? left : 250);
		if (rc == -ETIMEDOUT)
			md_refresh(md, name);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int start_vm(struct mountd *md, const char *name, char *err,
		    size_t errlen)
{
	long t0 = now_ms(), t1, t2, t3;
	int rc = define_if_needed(md, name, err, errlen);

	t1 = now_ms();
	if (rc == 0)
		rc = be_start(md->be, name, err, errlen);
	t2 = now_ms();
	md_refresh(md, name);
	t3 = now_ms();
	if (rc < 0)
		return rc;
	event(md, name, "Started", "QEMU is running");
	rc = md_set_running(md, name, true);
	md_log(LOG_DEBUG_, "start %s: define %ld ms, start %ld ms, refresh %ld ms, persist %ld ms",
	       name, t1 - t0, t2 - t1, t3 - t2, now_ms() - t3);
	return rc;
}

static int stop_vm(struct mountd *md, const char *name, bool force,
		   enum core_phase phase, char *err, size_t errlen)
{
	char msg[128];
	int rc = 0;

	/* A paused guest cannot see the ACPI button: pull the plug. */
	if (phase != CORE_PHASE_RUNNING)
		force = true;
	if (!force) {
		rc = be_shutdown(md->be, name, err, errlen);
		if (rc == 0)
			rc = md_wait_phase(md, name, INACTIVE, md->stop_timeout_ms);
		if (rc == -ETIMEDOUT) {
			snprintf(msg, sizeof(msg), "guest did not power off within "
				 "%d s; destroying it", md->stop_timeout_ms / 1000);
			event(md, name, "StopTimeout", msg);
		}
		force = rc < 0;
	}
	if (force) {
		rc = be_destroy(md->be, name, err, errlen);
		if (rc == -EBUSY)       /* it stopped meanwhile */
			rc = 0;
	}
	md_refresh(md, name);
	if (rc < 0)
		return rc;
	event(md, name, "Stopped", force ? "powered off" : "shut down by the guest");
	return md_set_running(md, name, false);
}

static int state_error(const char *verb, const char *name,
		       enum core_phase phase, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: vm %s is %s", verb, name,
		 core_phase_name(phase));
	return -EBUSY;
}

static int vm_verb(struct mountd *md, const char *name,
		   const struct core_ctl *msg, char *err, size_t errlen);
static int create_vm(struct mountd *md, const struct core_ctl *msg,
		     char *err, size_t errlen);

static int md_ctl(void *arg, const char *vm, const struct core_ctl *msg,
		  char *err, size_t errlen)
{
	struct mountd *md = arg;
	char owner[CORE_NAME_MAX + 1];

	if (!vm)
		return create_vm(md, msg, err, errlen);
	switch (msg->verb) {
	case CORE_V_CLONE:
	case CORE_V_MIGRATE:
	case CORE_V_RESIZE:
	case CORE_V_SNAPSHOT:
	case CORE_V_REVERT:
	case CORE_V_CANCEL:
		/* Objects of their own: the owner runs them wherever the
		 * write came in. */
		return md_op_ctl(md, vm, msg, err, errlen);
	default:
		break;
	}
	if (!md_owned(md, vm, owner, sizeof(owner)))
		return md_cluster_forward(md, vm, msg, owner, err, errlen);
	return vm_verb(md, vm, msg, err, errlen);
}

static int delete_vm(struct mountd *md, const char *name, bool force,
		     enum core_phase phase, char *err, size_t errlen)
{
	int rc;

	/* md_verb_check refused a running guest without force.  In a
	 * cluster the object goes first: if the API server refuses, the
	 * domain and its disks are still there. */
	rc = md_cluster_delete(md, name, err, errlen);
	if (rc < 0)
		return rc;
	if (PHASE_BIT(phase) & ACTIVE)
		rc = be_destroy(md->be, name, err, errlen);
	if (rc == 0 || rc == -EBUSY)
		rc = be_undefine(md->be, name, err, errlen);
	if (rc == -ENOENT)
		rc = 0;
	if (rc < 0) {
		md_refresh(md, name);
		return rc;
	}
	md_forget(md, name);
	md_ops_vm_gone(md, name);
	md_log(LOG_INFO_, "deleted vm %s", name);
	return 0;
}

/* The phases each verb may start from; anything else is EBUSY. */
static bool verb_allowed(const struct core_ctl *msg, enum core_phase ph)
{
	unsigned bit = PHASE_BIT(ph);

	switch (msg->verb) {
	case CORE_V_START:
		return bit & INACTIVE;
	case CORE_V_STOP:
	case CORE_V_RESTART:
		return bit & ACTIVE;
	case CORE_V_PAUSE:
		return ph == CORE_PHASE_RUNNING;
	case CORE_V_RESUME:
		return ph == CORE_PHASE_PAUSED;
	case CORE_V_DELETE:
		/* A migrating guest runs too. */
		return msg->force || !(bit & (ACTIVE |
					      PHASE_BIT(CORE_PHASE_MIGRATING)));
	default:
		return true;
	}
}

bool md_vm_phase(struct mountd *md, const char *name, enum core_phase *ph)
{
	struct core_vm *vm;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	*ph = vm ? vm->st.phase : CORE_PHASE_UNKNOWN;
	core_model_unlock(md->m);
	return vm != NULL;
}

int md_verb_check(const char *name, const struct core_ctl *msg,
		  enum core_phase ph, char *err, size_t errlen)
{
	if (verb_allowed(msg, ph))
		return 0;
	if (msg->verb == CORE_V_DELETE) {
		snprintf(err, errlen, "delete: vm %s is %s (stop it first, or "
			 "delete force)", name, core_phase_name(ph));
		return -EBUSY;
	}
	return state_error(core_verb_name(msg->verb), name, ph, err, errlen);
}

static int run_verb(struct mountd *md, const char *name,
		    const struct core_ctl *msg, enum core_phase ph,
		    char *err, size_t errlen)
{
	int rc;

	switch (msg->verb) {
	case CORE_V_START:
		return start_vm(md, name, err, errlen);
	case CORE_V_STOP:
		return stop_vm(md, name, msg->force, ph, err, errlen);
	case CORE_V_RESTART:
		rc = stop_vm(md, name, false, ph, err, errlen);
		return rc < 0 ? rc : start_vm(md, name, err, errlen);
	case CORE_V_PAUSE:
		rc = be_suspend(md->be, name, err, errlen);
		break;
	case CORE_V_RESUME:
		rc = be_resume(md->be, name, err, errlen);
		break;
	case CORE_V_DELETE:
		return delete_vm(md, name, msg->force, ph, err, errlen);
	default:
		snprintf(err, errlen, "%s: not valid here", core_verb_name(msg->verb));
		return -EINVAL;
	}
	md_refresh(md, name);
	if (rc == 0)
		event(md, name, msg->verb == CORE_V_PAUSE ? "Paused" : "Resumed",
		      msg->verb == CORE_V_PAUSE ? "vCPUs paused" : "vCPUs resumed");
	return rc;
}

static int vm_verb(struct mountd *md, const char *name,
		   const struct core_ctl *msg, char *err, size_t errlen)
{
	const char *verb = core_verb_name(msg->verb);
	char op[32];
	enum core_phase ph;
	int rc;

	/* A verb refused for the phase leaves the status untouched. */
	if (md_vm_phase(md, name, &ph) &&
	    (rc = md_verb_check(name, msg, ph, err, errlen)) < 0)
		return rc;
	snprintf(op, sizeof(op), "%s%s", verb, msg->force ? " force" : "");
	rc = begin_op(md, name, op, &ph, err, errlen);
	if (rc < 0)
		return rc;
	/* The phase may have moved between the look and the mark. */
	rc = md_verb_check(name, msg, ph, err, errlen);
	if (rc == 0)
		rc = run_verb(md, name, msg, ph, err, errlen);
	end_op(md, name, op);
	return rc;
}

static int add_vm(struct mountd *md, const char *name, json_object *spec,
		  uid_t owner, char *err, size_t errlen)
{
	char uid[40], created[32];
	struct core_vm *vm;
	int rc;

	core_uuid(uid);
	core_rfc3339(time(NULL), created, sizeof(created));
	core_model_wrlock(md->m);
	rc = core_model_add(md->m, name, "default", uid, created, spec, &vm,
			    err, errlen);
	if (rc == -EEXIST)
		snprintf(err, errlen, "create: vm %s already exists", name);
	if (rc == 0) {
		vm->owner = owner;
		vm->st.phase = CORE_PHASE_CREATING;
		snprintf(vm->st.node, sizeof(vm->st.node), "%s", md->node);
		snprintf(vm->st.operation, sizeof(vm->st.operation), "create");
		core_model_status_changed(md->m, vm);
		core_model_event(md->m, vm, "Created", "on node %s", md->node);
	}
	core_model_unlock(md->m);
	flush(md);
	return rc;
}

void md_forget(struct mountd *md, const char *name)
{
	struct core_vm *vm;
	int rc = core_store_del(md->store, "vms", name);

	if (rc < 0 && rc != -ENOENT)
		md_log(LOG_WARN_, "delete %s from the store: %s", name, strerror(-rc));
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		core_model_remove(md->m, vm);
	core_model_unlock(md->m);
	flush(md);
	md_update_nodes(md, false);
}

static void forget_vm(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];

	md_cluster_delete(md, name, err, sizeof(err));
	md_forget(md, name);
}

static int create_vm(struct mountd *md, const struct core_ctl *msg,
		     char *err, size_t errlen)
{
	const char *name = msg->arg;
	json_object *spec;
	int rc;

	rc = md_create_spec(md, msg, &spec, err, errlen);
	if (rc < 0)
		return rc;
	if (md->sync) {
		/* On failure the name is someone else's: leave it alone. */
		rc = md_cluster_create(md, name, spec, msg->owner, err, errlen);
		json_object_put(spec);
		spec = NULL;
		if (rc == 1)
			return 0;       /* it runs on the node that claimed it */
	} else {
		rc = add_vm(md, name, spec, msg->owner, err, errlen);
	}
	if (rc < 0) {
		json_object_put(spec);
		return rc;
	}
	rc = md_persist(md, name);
	if (rc == 0)
		rc = md_redefine(md, name, err, errlen);
	if (rc < 0) {
		if (!err[0])
			snprintf(err, errlen, "create %s: %s", name, strerror(-rc));
		forget_vm(md, name);
		return rc;
	}
	end_op(md, name, "create");
	md_refresh(md, name);
	if (msg->template_name[0])
		md_template_usage_tick(md);
	md_log(LOG_INFO_, "created vm %s", name);
	if (msg->running != 1)
		return 0;
	rc = begin_op(md, name, "start", NULL, err, errlen);
	if (rc == 0) {
		rc = start_vm(md, name, err, errlen);
		end_op(md, name, "start");
	}
	return rc;
}

void md_model_spec_put(struct mountd *md, const char *name, json_object *old)
{
	char err[CORE_ERR_MAX];
	struct core_vm *vm;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && core_model_set_spec(md->m, vm, json_object_get(old), err,
				      sizeof(err)) < 0)
		json_object_put(old);
	core_model_unlock(md->m);
	flush(md);
}

/* Put back the spec that was there before a failed spec write: in the
 * model, the domain, the store and (when it was published) the cluster.
 * Takes its own reference to old. */
static void restore_spec(struct mountd *md, const char *name, json_object *old,
			 json_object *failed, bool published)
{
	char err[CORE_ERR_MAX];

	md_model_spec_put(md, name, old);
	md_redefine(md, name, err, sizeof(err));
	md_persist(md, name);
	if (published && md_cluster_spec(md, name, failed, old, err, sizeof(err)) < 0)
		md_log(LOG_WARN_, "vm %s: cannot publish the restored spec: %s",
		       name, err);
}

static int converge(struct mountd *md, const char *name, char *err,
		    size_t errlen)
{
	struct core_vm *vm;
	enum core_phase ph = CORE_PHASE_UNKNOWN;
	bool want = false;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		ph = vm->st.phase;
		want = vm->spec.running;
	}
	core_model_unlock(md->m);
	if (want && (PHASE_BIT(ph) & INACTIVE))
		return start_vm(md, name, err, errlen);
	if (!want && (PHASE_BIT(ph) & ACTIVE))
		return stop_vm(md, name, false, ph, err, errlen);
	return 0;
}

static bool needs_work(struct mountd *md, const char *name)
{
	struct core_vm *vm;
	bool r = false;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		r = vm->defined_gen != vm->spec_gen ||
		    (vm->spec.running && (PHASE_BIT(vm->st.phase) & INACTIVE)) ||
		    (!vm->spec.running && (PHASE_BIT(vm->st.phase) & ACTIVE));
	core_model_unlock(md->m);
	return r;
}

int md_converge_owned(struct mountd *md, const char *name, char *err,
		      size_t errlen)
{
	int rc;

	/* Most events need nothing: do not mark the VM busy for them. */
	if (!needs_work(md, name))
		return 0;
	rc = begin_op(md, name, "reconcile", NULL, err, errlen);
	if (rc < 0)
		return rc == -EBUSY ? 0 : rc;
	rc = define_if_needed(md, name, err, errlen);
	if (rc == 0) {
		md_refresh(md, name);
		rc = converge(md, name, err, errlen);
	}
	end_op(md, name, "reconcile");
	return rc;
}

/* The new spec is published first (in a cluster the API server may still
 * refuse it), then applied; a failure later puts the old one back
 * everywhere. */
static int apply_spec(struct mountd *md, const char *name, json_object *old,
		      json_object *new, char *err, size_t errlen)
{
	int rc = md_cluster_spec(md, name, old, new, err, errlen);
	bool published = rc == 0;

	if (rc == 0)
		rc = md_redefine(md, name, err, errlen);
	/* The new definition shows in status before the write returns. */
	if (rc == 0)
		md_refresh(md, name);
	if (rc == 0)
		rc = md_persist(md, name);
	if (rc == 0)
		rc = converge(md, name, err, errlen);
	if (rc < 0)
		restore_spec(md, name, old, new, published);
	return rc;
}

/* A spec whose kernelBoot this node refuses is refused whole, before the
 * domain is touched. */
static int boot_allowed(struct mountd *md, json_object *spec, char *err,
			size_t errlen)
{
	struct core_spec s;
	int rc = core_spec_from_json(spec, &s, err, errlen);

	if (rc == 0)
		rc = be_boot_check(md->be, &s, err, errlen);
	core_spec_free(&s);
	return rc;
}

static int md_spec(void *arg, const char *name, json_object *spec, char *err,
		   size_t errlen)
{
	struct mountd *md = arg;
	char owner[CORE_NAME_MAX + 1];
	json_object *old = NULL, *new;
	struct core_vm *vm;
	int rc;

	/* Only the owner defines, starts or stops the domain. */
	if (!md_owned(md, name, owner, sizeof(owner)))
		return md_cluster_spec_forward(md, name, spec, owner, err,
					       errlen);
	new = json_object_get(spec);
	rc = boot_allowed(md, spec, err, errlen);
	if (rc == 0)
		rc = begin_op(md, name, "spec", NULL, err, errlen);
	if (rc < 0)
		goto out;
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	rc = !vm ? -ENOENT :
	     json_object_deep_copy(vm->spec_json, &old, NULL) < 0 ? -ENOMEM : 0;
	if (rc == 0)
		rc = core_model_set_spec(md->m, vm, spec, err, errlen);
	if (rc == 0)
		spec = NULL;
	core_model_unlock(md->m);
	flush(md);
	if (rc == 0)
		rc = apply_spec(md, name, old, new, err, errlen);
	if (rc == 0)
		event(md, name, "SpecChanged", "spec replaced");
	end_op(md, name, "spec");
out:
	json_object_put(spec);
	json_object_put(new);
	json_object_put(old);
	return rc;
}

const struct fs_ops md_fs_ops = {
	.ctl = md_ctl,
	.spec = md_spec,
	.obj = md_obj,
};

/* ---- for the operations engine (ops.c) ---- */

int md_begin_op(struct mountd *md, const char *name, const char *op,
		enum core_phase *phase, char *err, size_t errlen)
{
	return begin_op(md, name, op, phase, err, errlen);
}

void md_end_op(struct mountd *md, const char *name, const char *op)
{
	end_op(md, name, op);
}

void md_event(struct mountd *md, const char *name, const char *reason,
	      const char *msg)
{
	event(md, name, reason, msg);
}

int md_start_vm(struct mountd *md, const char *name, char *err,
		size_t errlen)
{
	return start_vm(md, name, err, errlen);
}

/* A VM whose domain an operation makes (a clone): in the model, the
 * store and, in a cluster, the API, marked busy with op. */
int md_add_vm(struct mountd *md, const char *name, json_object *spec,
	      uid_t owner, const char *op, char *err, size_t errlen)
{
	int rc;

	if (md->sync) {
		rc = md_cluster_create(md, name, spec, owner, err, errlen);
		json_object_put(spec);
		if (rc == 1) {
			snprintf(err, errlen, "%s: another node claimed %s", op,
				 name);
			return -EBUSY;
		}
	} else {
		rc = add_vm(md, name, spec, owner, err, errlen);
		if (rc < 0)
			json_object_put(spec);
	}
	if (rc < 0)
		return rc;
	core_model_wrlock(md->m);
	{
		struct core_vm *vm = core_model_find(md->m, name);

		if (vm) {
			snprintf(vm->st.operation, sizeof(vm->st.operation),
				 "%s", op);
			core_model_status_changed(md->m, vm);
		}
	}
	core_model_unlock(md->m);
	flush(md);
	return md_persist(md, name);
}

void md_drop_vm(struct mountd *md, const char *name)
{
	forget_vm(md, name);
}
