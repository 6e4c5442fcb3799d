/* The power verbs (start, stop, restart, pause, resume) and what brings
 * an owned VM to its spec.  Each runs with the VM marked busy, talks to
 * libvirt without the model lock, and records the desired power state
 * only once libvirt agreed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

static unsigned phase_bit(enum core_phase p)
{
	return 1u << p;
}

/* After libvirt did a verb: read the domain back, unless the reconciler
 * did already for the event the verb caused (status shows where the verb
 * leads).  One lookup either way. */
static void read_back(struct mountd *md, const char *name, unsigned to, int rc)
{
	struct md_vm v;

	if (rc < 0 || md_vm_get(md, name, &v) < 0 || !(phase_bit(v.phase) & to))
		md_refresh(md, name);
}

static int set_defined(struct mountd *md, struct core_vm *vm, void *arg)
{
	md_x(vm)->defined_gen = *(const uint64_t *)arg;
	return 0;
}

int md_redefine(struct mountd *md, const char *name, char *err,
		size_t errlen)
{
	struct core_spec spec;
	json_object *j = NULL;
	struct md_vm v;
	int rc = md_vm_get(md, name, &v);

	if (rc == 0)
		rc = md_template_disk(md, name, err, errlen);
	if (rc == 0)
		rc = md_spec_copy(md, name, &j);
	if (rc < 0)
		goto out;
	rc = core_spec_from_json(j, &spec, err, errlen);
	if (rc < 0)
		goto out;
	rc = be_define(md->be, name, v.ns, v.uid, &spec, j, err, errlen);
	core_spec_free(&spec);
	if (rc == 0)
		md_vm_edit(md, name, set_defined, &v.spec_gen);
out:
	json_object_put(j);
	return rc;
}

struct running {
	bool want;
	json_object *old, *new;
};

static int set_running_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct running *r = arg;
	char err[CORE_ERR_MAX];
	json_object *j = NULL;

	if (vm->spec.running == r->want ||
	    json_object_deep_copy(vm->spec_json, &r->old, NULL) != 0 ||
	    json_object_deep_copy(vm->spec_json, &j, NULL) != 0)
		return 0;
	core_spec_set_bool(j, "running", r->want);
	if (core_model_set_spec(md->m, vm, json_object_get(j), err,
				sizeof(err)) < 0) {
		json_object_put(j);
		json_object_put(j);
		return 0;
	}
	r->new = j;
	return 0;
}

int md_set_running(struct mountd *md, const char *name, bool running)
{
	struct running r = { .want = running };
	char err[CORE_ERR_MAX];
	int rc = md_vm_edit(md, name, set_running_locked, &r);

	if (rc == 0 && r.old && r.new)
		rc = md_cluster_spec(md, name, r.old, r.new, err, sizeof(err));
	json_object_put(r.old);
	json_object_put(r.new);
	if (rc < 0 && rc != -ENOENT)
		md_log(LOG_WARN_, "vm %s: cannot publish spec.running: %s", name, err);
	return md_persist(md, name);
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int md_wait_phase(struct mountd *md, const char *name, unsigned mask,
		  int timeout_ms)
{
	long t0 = now_ms();
	struct md_vm v;
	int left, rc;

	for (;;) {
		if (md_vm_get(md, name, &v) < 0)
			return -ENOENT;
		if (phase_bit(v.phase) & mask)
			return 0;
		left = timeout_ms - (int)(now_ms() - t0);
		if (left <= 0)
			return -ETIMEDOUT;
		/* The reconciler may be the one waiting here (cluster mode):
		 * do not rely on it alone to notice libvirt's change. */
		rc = core_model_wait(md->m, name, v.version, NULL,
				     left < 250 ? left : 250);
		if (rc == -ETIMEDOUT)
			md_refresh(md, name);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
}

/* Define only when the spec moved since the last define; a domain that
 * went missing shows as ENOENT from the start itself.  So a start costs
 * one libvirt lookup, as virsh start does.  A start asked for (not a
 * restart of a running guest, nor an HA restart) passes the carbon gate
 * first: a carbonAware VM may wait there, Pending, for a greener grid,
 * and what was asked for is recorded (spec.running). */
enum gate { GATE_ASK, GATE_SKIP };

static int start_vm(struct mountd *md, const char *name, enum gate gate,
		    char *err, size_t errlen)
{
	long t0 = now_ms(), t1, t2;
	struct md_vm v;
	bool wait = false;
	int rc = md_vm_get(md, name, &v);

	if (rc == 0 && gate == GATE_ASK)
		rc = md_carbon_gate(md, name, false, &wait);
	if (rc == 0 && wait)
		return md_set_running(md, name, true);

	/* Fenced: another node may be taking it over right now. */
	if (rc == 0 && md->fenced && v.movable) {
		snprintf(err, errlen, "start: vm %s: this node has not renewed "
			 "its Lease in time and starts no VM that may fail over "
			 "(fenced)", name);
		return -EBUSY;
	}
	if (rc == 0 && v.defined_gen != v.spec_gen)
		rc = md_redefine(md, name, err, errlen);
	if (rc == 0)
		rc = be_start(md->be, name, err, errlen);
	if (rc == -ENOENT) {
		rc = md_redefine(md, name, err, errlen);
		if (rc == 0)
			rc = be_start(md->be, name, err, errlen);
	}
	t1 = now_ms();
	read_back(md, name, CORE_PH(RUNNING), rc);
	t2 = now_ms();
	if (rc < 0)
		return rc;
	md_event(md, name, "Started", "QEMU is running");
	rc = md_set_running(md, name, true);
	md_log(LOG_DEBUG_, "start %s: define and start %ld ms, refresh %ld ms, "
	       "persist %ld ms", name, t1 - t0, t2 - t1, now_ms() - t2);
	return rc;
}

int md_power_off(struct mountd *md, const char *name, bool force,
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
			rc = md_wait_phase(md, name, MD_INACTIVE,
					   md->stop_timeout_ms);
		if (rc == -ETIMEDOUT) {
			snprintf(msg, sizeof(msg), "guest did not power off within "
				 "%d s; destroying it", md->stop_timeout_ms / 1000);
			md_event(md, name, "StopTimeout", msg);
		}
		force = rc < 0;
	}
	if (force) {
		rc = be_destroy(md->be, name, err, errlen);
		if (rc == -EBUSY)       /* it stopped meanwhile */
			rc = 0;
	}
	read_back(md, name, MD_INACTIVE, rc);
	if (rc == 0)
		md_event(md, name, "Stopped", force ? "powered off" :
			 "shut down by the guest");
	return rc;
}

static int stop_vm(struct mountd *md, const char *name, bool force,
		   enum core_phase phase, char *err, size_t errlen)
{
	int rc = md_power_off(md, name, force, phase, err, errlen);

	return rc < 0 ? rc : md_set_running(md, name, false);
}

int md_run_start(struct mountd *md, const struct md_job *j, char *err,
		 size_t errlen)
{
	bool wait;

	/* start now: past the wait, which the gate ends and records. */
	if (j->msg->now && md_carbon_gate(md, j->vm, true, &wait) == 0)
		return start_vm(md, j->vm, GATE_SKIP, err, errlen);
	return start_vm(md, j->vm, GATE_ASK, err, errlen);
}

int md_run_stop(struct mountd *md, const struct md_job *j, char *err,
		size_t errlen)
{
	return stop_vm(md, j->vm, j->msg->force, j->phase, err, errlen);
}

int md_run_restart(struct mountd *md, const struct md_job *j, char *err,
		   size_t errlen)
{
	int rc = stop_vm(md, j->vm, false, j->phase, err, errlen);

	return rc < 0 ? rc : start_vm(md, j->vm, GATE_SKIP, err, errlen);
}

static int vcpus(struct mountd *md, const char *name, bool pause, char *err,
		 size_t errlen)
{
	int rc = pause ? be_suspend(md->be, name, err, errlen) :
			 be_resume(md->be, name, err, errlen);

	read_back(md, name, pause ? CORE_PH(PAUSED) : CORE_PH(RUNNING), rc);
	if (rc == 0)
		md_event(md, name, pause ? "Paused" : "Resumed",
			 pause ? "vCPUs paused" : "vCPUs resumed");
	return rc;
}

int md_run_pause(struct mountd *md, const struct md_job *j, char *err,
		 size_t errlen)
{
	return vcpus(md, j->vm, true, err, errlen);
}

int md_run_resume(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	return vcpus(md, j->vm, false, err, errlen);
}

/* Start a VM this node marked busy for its own reasons (a create with
 * running=true, a clone with start): under a start mark of its own. */
int md_start_marked(struct mountd *md, const char *name, char *err,
		    size_t errlen)
{
	struct md_mark m = md_mark_verb(CORE_V_START, false);
	int rc = md_claim(md, name, m, NULL, err, errlen);

	if (rc == 0) {
		rc = start_vm(md, name, GATE_ASK, err, errlen);
		md_release(md, name, m);
	}
	return rc;
}

/* ---- converging an owned VM to its spec ------------------------------- */

int md_converge(struct mountd *md, const char *name, char *err, size_t errlen)
{
	struct md_vm v;

	if (md_vm_get(md, name, &v) < 0)
		return 0;
	/* A restart waiting for its backoff comes from the queue. */
	if (v.want_running && (phase_bit(v.phase) & MD_INACTIVE) &&
	    !md_restart_waiting(&v, time(NULL)))
		return start_vm(md, name, GATE_ASK, err, errlen);
	if (!v.want_running && (phase_bit(v.phase) & MD_ACTIVE))
		return stop_vm(md, name, false, v.phase, err, errlen);
	return 0;
}

static bool needs_work(const struct md_vm *v)
{
	unsigned bit = phase_bit(v->phase);

	return v->defined_gen != v->spec_gen ||
	       (v->want_running && (bit & MD_INACTIVE) &&
		!md_restart_waiting(v, time(NULL))) ||
	       (!v->want_running && (bit & MD_ACTIVE));
}

int md_converge_owned(struct mountd *md, const char *name, char *err,
		      size_t errlen)
{
	struct md_mark m = md_mark_of(MD_HOLD_RECONCILE);
	struct md_vm v;
	int rc;

	/* Most events need nothing: do not mark the VM busy for them. */
	if (md_vm_get(md, name, &v) < 0 || !needs_work(&v))
		return 0;
	rc = md_claim(md, name, m, &v, err, errlen);
	if (rc < 0)
		return rc == -EBUSY ? 0 : rc;
	if (v.defined_gen != v.spec_gen)
		rc = md_redefine(md, name, err, errlen);
	if (rc == 0) {
		md_refresh(md, name);
		rc = md_converge(md, name, err, errlen);
	}
	md_release(md, name, m);
	return rc;
}
