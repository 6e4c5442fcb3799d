/* VMs that move between nodes from the same files on shared storage.
 * Node loss.  When a node's Lease has expired (plus a margin), every
 * other node looks at the VMs it owned:
 *   - a VM with highAvailability whose disks are all on shared storage
 *     classes is claimed by one eligible node (the claim is guarded by
 *     resourceVersion, so one of several racing nodes wins) and started
 *     there from the same files;
 *   - any other VM cannot move: the first alive node by name marks it
 *     Unknown with a NodeLost condition, and it stays on the lost node.
 * The lost node, for its part, destroys its own such VMs once it has not
 * renewed its Lease for the duration less the margin (self-fencing, the
 * watchdog below), so the two never run at once; libvirt's lock manager
 * (lockd) is the second guard.  Clocks are assumed in step within the
 * margin (NTP). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mountd/priv.h"

struct lost_vm {
	char name[CORE_NAME_MAX + 1];
	char owner[CORE_NAME_MAX + 1];
	char rv[32];
	bool movable;           /* HA, running wanted, all disks shared */
	bool may_here;          /* nodeSelector and classes allow this node */
	bool reported;          /* NodeLost said for this owner already */
};

static const struct md_member *member(const struct md_member *v, size_t n,
				      const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* Expired for more than the margin: a node that came back must not be
 * judged on a Lease it had no chance to renew (after an outage every
 * node's Lease is old until it renews). */
static bool gone(const struct md_member *m, double now)
{
	return m && !m->alive && m->renew > 0 &&
	       now > m->renew + m->duration_s + MD_FAILOVER_MARGIN_S;
}

struct scan {
	struct mountd *md;
	const struct md_member *v;
	size_t n;
	double now;
	struct lost_vm *out;
	size_t nout, cap;
};

static int look(struct core_vm *vm, void *arg)
{
	struct scan *s = arg;
	struct lost_vm *l;

	if (!vm->st.node[0] || !strcmp(vm->st.node, s->md->node) ||
	    !gone(member(s->v, s->n, vm->st.node), s->now) ||
	    md_x(vm)->mark.hold != MD_HOLD_NONE || s->nout == s->cap)
		return 0;
	l = &s->out[s->nout++];
	snprintf(l->name, sizeof(l->name), "%s", vm->name);
	snprintf(l->owner, sizeof(l->owner), "%s", vm->st.node);
	snprintf(l->rv, sizeof(l->rv), "%s", md_x(vm)->rv);
	l->movable = vm->spec.ha_enabled && vm->spec.running &&
		     md_classes_shared(s->md, &vm->spec);
	l->may_here = md_selector_allows(&vm->spec, s->md->node) &&
		      md_classes_check(s->md, &vm->spec, (char[CORE_ERR_MAX]){ 0 },
				       CORE_ERR_MAX) == 0;
	l->reported = !strcmp(md_x(vm)->lost_reported, vm->st.node);
	return 0;
}

/* This node speaks for the VMs that cannot move: the first alive node by
 * name, so that one node writes their status. */
static bool speaker(struct mountd *md, const struct md_member *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].alive && strcmp(v[i].name, md->node) < 0)
			return false;
	return true;
}

/* What the lost owner last said is not this node's: libvirt here tells
 * (a Running from there would read as a crash to restart after a wait). */
static int fresh_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	(void)md;
	(void)arg;
	vm->st.phase = CORE_PHASE_PENDING;
	vm->st.qemu_pid = 0;
	vm->st.start_time = 0;
	md_x(vm)->defined_gen = 0;
	md_x(vm)->keep_up = true;
	return 0;
}

static void take_over(struct mountd *md, const struct lost_vm *l,
		      const struct md_member *from, double now)
{
	char msg[CORE_ERR_MAX];

	if (md_cordoned(md) || !l->may_here ||
	    md_cluster_claim(md, l->name, l->rv) < 0)
		return;
	md_vm_edit(md, l->name, fresh_locked, NULL);

	snprintf(msg, sizeof(msg), "from %s after %.0fs (its Lease expired; "
		 "the disks are on shared storage)", l->owner, now - from->renew);
	md_event(md, l->name, "FailedOver", msg);
	md_log(LOG_WARN_, "vm %s: failed over from node %s after %.0f s",
	       l->name, l->owner, now - from->renew);
	md_queue(md, l->name);
}

static int reported_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	(void)md;
	snprintf(md_x(vm)->lost_reported, sizeof(md_x(vm)->lost_reported),
		 "%s", (const char *)arg);
	return 0;
}

/* Unknown, NodeLost: the status the lost owner can no longer write. */
static void node_lost(struct mountd *md, const struct lost_vm *l,
		      const struct md_member *from)
{
	char err[CORE_ERR_MAX], msg[CORE_ERR_MAX], since[32], now[32];
	json_object *st, *conds, *c;

	core_rfc3339((time_t)from->renew, since, sizeof(since));
	core_rfc3339(time(NULL), now, sizeof(now));
	snprintf(msg, sizeof(msg), "node %s has not renewed its Lease since %s; "
		 "the VM %s", l->owner, since, l->movable ?
		 "waits for a node that may run it" :
		 "cannot move (its disks are not all on shared storage, or it "
		 "has no highAvailability)");
	st = json_object_new_object();
	conds = json_object_new_array();
	c = json_object_new_object();
	json_object_object_add(c, "type", json_object_new_string("Ready"));
	json_object_object_add(c, "status", json_object_new_string("False"));
	json_object_object_add(c, "reason", json_object_new_string("NodeLost"));
	json_object_object_add(c, "message", json_object_new_string(msg));
	json_object_object_add(c, "lastTransitionTime",
			       json_object_new_string(now));
	json_object_array_add(conds, c);
	json_object_object_add(st, "phase", json_object_new_string("Unknown"));
	json_object_object_add(st, "conditions", conds);
	/* Still the lost node's: not over a node that took it meanwhile. */
	if (sync_patch_status_owned(md->sync, SYNC_VM, l->name, l->owner, st,
				    err, sizeof(err)) == 0) {
		md_vm_edit(md, l->name, reported_locked, (void *)l->owner);
		md_event(md, l->name, "NodeLost", msg);
	}
	json_object_put(st);
}

void md_failover_scan(struct mountd *md)
{
	struct scan s = { .md = md, .now = (double)time(NULL) };
	struct md_member *v = NULL;
	const struct md_member *from;
	int lease = sync_lease_seconds(md->sync);
	size_t i;

	/* Judge others only after a whole Lease period online: until then
	 * this node's own view of their Leases may be stale. */
	if (!md->online || !md->synced || s.now - md->online_since <
	    lease + MD_FAILOVER_MARGIN_S || md_members_copy(md, &v, &s.n) < 0)
		return;
	s.v = v;
	/* Most of the time no node is lost: no walk over every VM. */
	for (i = 0; i < s.n && !gone(&v[i], s.now); i++)
		;
	if (i == s.n) {
		free(v);
		return;
	}
	core_model_rdlock(md->m);
	s.cap = core_model_count(md->m);
	s.out = calloc(s.cap + 1, sizeof(*s.out));
	if (s.out)
		core_model_each(md->m, look, &s);
	core_model_unlock(md->m);
	for (i = 0; s.out && i < s.nout; i++) {
		from = member(v, s.n, s.out[i].owner);
		if (s.out[i].movable && s.out[i].may_here)
			take_over(md, &s.out[i], from, s.now);
		else if (!s.out[i].reported && speaker(md, v, s.n))
			node_lost(md, &s.out[i], from);
	}
	free(s.out);
	free(v);
}

/* ---- a drain's hand-over --------------------------------------------- */

int md_hand_over(struct mountd *md, const char *name, const char *to,
		 char *err, size_t errlen)
{
	const struct md_mark m = md_mark_of(MD_HOLD_HANDOVER);
	char msg[CORE_ERR_MAX];
	struct md_vm v;
	int rc = md_claim(md, name, m, NULL, err, errlen);

	if (rc < 0)
		return rc;
	rc = md_vm_get(md, name, &v);
	if (rc == 0 && (v.phase == CORE_PHASE_RUNNING ||
			v.phase == CORE_PHASE_PAUSED))
		rc = md_power_off(md, name, false, v.phase, err, errlen);
	/* Undefined before it is given: from the give on, the other node
	 * may start it, and this node's domain must be gone by then. */
	if (rc == 0) {
		rc = be_forget(md->be, name, err, errlen);
		if (rc == -ENOENT)
			rc = 0;
	}
	if (rc == 0)
		rc = md_cluster_give(md, name, to, err, errlen);
	md_release(md, name, m);
	if (rc < 0) {
		/* Still this node's: the reconciler defines and starts it
		 * again here. */
		md_queue(md, name);
		return rc;
	}
	snprintf(msg, sizeof(msg), "handed over to node %s: stopped here, it "
		 "starts there from the same disks (highAvailability on "
		 "shared storage)", to);
	md_event(md, name, "Drained", msg);
	md_nodes_dirty(md);
	return 0;
}

/* ---- self-fencing ------------------------------------------------------- */

static bool fence_pick(struct mountd *md, const struct core_vm *vm)
{
	bool active = vm->st.phase == CORE_PHASE_RUNNING ||
		      vm->st.phase == CORE_PHASE_PAUSED ||
		      vm->st.phase == CORE_PHASE_MIGRATING;

	return active && !strcmp(vm->st.node, md->node) && vm->spec.ha_enabled &&
	       md_classes_shared(md, &vm->spec);
}

/* This node could not renew its Lease for the duration less the margin:
 * the others may claim its movable VMs soon.  Destroy them here first. */
static void fence(struct mountd *md, double age)
{
	char err[CORE_ERR_MAX], msg[160];
	md_name *names = NULL;
	size_t n = 0;

	md_vm_names(md, fence_pick, &names, &n);
	for (size_t i = 0; i < n; i++) {
		/* Marked, so the stop is not taken for a crash to restart;
		 * destroyed even when an action holds it. */
		bool mine = md_claim(md, names[i], md_mark_of(MD_HOLD_FENCE),
				     NULL, err, sizeof(err)) == 0;

		if (be_destroy(md->be, names[i], err, sizeof(err)) < 0)
			md_log(LOG_ERR_, "fence %s: %s", names[i], err);
		md_refresh(md, names[i]);
		if (mine)
			md_release(md, names[i], md_mark_of(MD_HOLD_FENCE));
		snprintf(msg, sizeof(msg), "this node has not renewed its Lease "
			 "for %.0fs: the VM may fail over to another node, so it "
			 "stops here", age);
		md_event(md, names[i], "Fenced", msg);
		md_log(LOG_WARN_, "vm %s: fenced (Lease not renewed for %.0f s)",
		       names[i], age);
	}
	free(names);
}

static bool own_pick(struct mountd *md, const struct core_vm *vm)
{
	return !strcmp(vm->st.node, md->node);
}

/* The API server names another owner: this node lets go (lose), and
 * acts as that node's mirror from now on, before its watch says so. */
static int mark_lost_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	md_x(vm)->lost = true;
	snprintf(vm->st.node, sizeof(vm->st.node), "%s", (const char *)arg);
	core_model_status_changed(md->m, vm);
	return 0;
}

/* Still this node's, says the API server now (not the watch, which may
 * still be catching up on what happened while this node was away)? */
static bool still_mine(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];
	struct md_api_vm now;
	bool mine;

	if (md_cluster_get(md, name, &now, err, sizeof(err)) < 0)
		return false;
	mine = !strcmp(now.node, md->node);
	if (!mine)
		md_vm_edit(md, name, mark_lost_locked, now.node);
	return mine;
}

/* The Lease is renewed again: the reconciler looks at each VM this node
 * still owns, so the fenced ones start again if nobody took them; one
 * that another node took is let go (md_cluster_reconcile's lose). */
static void requeue_own(struct mountd *md)
{
	md_name *names = NULL;
	size_t n = 0;
	struct md_vm v;

	md_log(LOG_INFO_, "Lease renewed again: fencing over");
	md_vm_names(md, own_pick, &names, &n);
	for (size_t i = 0; i < n; i++)
		if (md_vm_get(md, names[i], &v) == 0 && v.movable)
			still_mine(md, names[i]);
	/* Only now may they start again. */
	md->fenced = false;
	for (size_t i = 0; i < n; i++)
		md_queue(md, names[i]);
	free(names);
}

/* Called every second (the fencer thread).  While fenced, the
 * node starts none of its movable VMs; once its Lease is renewed again,
 * the reconciler looks at every VM (those still its own run again). */
void md_fence_check(struct mountd *md)
{
	int lease;
	double age;
	bool was;

	if (!md->sync)
		return;
	lease = sync_lease_seconds(md->sync);
	age = sync_lease_age(md->sync);
	was = md->fenced;
	if (age > lease - MD_FAILOVER_MARGIN_S) {
		md->fenced = true;
		if (!was)
			md_log(LOG_WARN_, "Lease not renewed for %.0f s: fencing "
			       "this node's movable VMs", age);
		fence(md, age);
	} else if (was) {
		requeue_own(md);        /* it ends the fencing */
	}
}
