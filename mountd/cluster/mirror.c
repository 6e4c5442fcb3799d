/* Cluster mode: the model mirrors the VirtualMachine objects of one
 * namespace.  Objects arrive through sync's watch; a VM without an owner
 * is claimed (resourceVersion-guarded) when its nodeSelector allows this
 * node; the owner's reconciler acts and publishes status; writes through
 * the tree become merge patches; forward.c turns writes for a VM another
 * node owns into changes of its object. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>

#include "mountd/priv.h"
#include "sync/sync.h"

static const char *str_at(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (!json_object_object_get_ex(o, a, &v) || !v)
		return NULL;
	if (b && (!json_object_object_get_ex(v, b, &v) || !v))
		return NULL;
	return json_object_is_type(v, json_type_string) ?
	       json_object_get_string(v) : NULL;
}

bool md_owned(struct mountd *md, const char *name, char *owner, size_t len)
{
	struct md_vm v;
	bool found;

	if (!md->sync)
		return true;
	found = md_vm_get(md, name, &v) == 0;
	if (owner)
		snprintf(owner, len, "%s", found ? v.node : "");
	return found && !strcmp(v.node, md->node);
}

/* ---- objects from the API server ------------------------------------ */

/* A VM made through the API belongs to root, unless its annotation
 * hypersdk.io/owner names a user of this node (resolved here, on each
 * node: uids differ between machines).  *unknown tells a name that does
 * not resolve, which also gives root. */
static uid_t api_owner(json_object *obj, const char **name, bool *unknown)
{
	json_object *ann = core_json_path(obj, "metadata.annotations"), *v;
	struct passwd pw, *res = NULL;
	char buf[4096];

	*name = NULL;
	*unknown = false;
	if (!ann || !json_object_object_get_ex(ann, CORE_OWNER_KEY, &v) ||
	    !json_object_is_type(v, json_type_string))
		return 0;
	*name = json_object_get_string(v);
	if (getpwnam_r(*name, &pw, buf, sizeof(buf), &res) != 0 || !res) {
		*unknown = true;
		return 0;
	}
	return res->pw_uid;
}

/* Model write lock held. */
static void unknown_owner(struct mountd *md, struct core_vm *vm,
			  const char *who)
{
	char q[CORE_NAME_MAX + 8];

	core_quote(q, sizeof(q), who, strlen(who));
	md_log(LOG_WARN_, "vm %s: owner %s is not a user of this node; owned "
	       "by root", vm->name, q);
	core_model_event(md->m, vm, "Warning", "owner %s is not a user of "
			 "node %s; owned by root", q, md->node);
}

/* After this node wrote a spec, events older than its write (the watch
 * lags) must not put the old spec back: the reconciler would act on it.
 * resourceVersions are etcd revisions; comparing them within one object
 * is what the watch order guarantees anyway.  While the write waits in
 * the outbox (hold_rv UINT64_MAX), everything is held; once the outbox
 * applied it, until a revision at least the one the replay made (a
 * relist's pages are a snapshot that may predate the replay).  A write
 * the outbox dropped releases the hold when the outbox is empty. */
static bool holding(struct mountd *md, struct core_vm *vm, const char *rv)
{
	unsigned long long n = rv ? strtoull(rv, NULL, 10) : 0;
	struct md_vmx *x = md_x(vm);

	if (!x->hold_rv)
		return false;
	if (x->hold_rv == UINT64_MAX) {
		if (!md->online || sync_outbox_len(md->sync) > 0)
			return true;
	} else if (n < x->hold_rv) {
		return true;
	}
	x->hold_rv = 0;
	return false;
}

/* Model write lock held.  Takes what the object says; the status of a VM
 * this node owns stays ours (libvirt is the authority on it). */
static void merge_object(struct mountd *md, struct core_vm *vm,
			 json_object *obj, json_object *spec)
{
	char err[CORE_ERR_MAX];
	const char *rv = str_at(obj, "metadata", "resourceVersion");
	json_object *status = NULL, *copy = NULL;
	struct core_status st;

	if (rv)
		snprintf(md_x(vm)->rv, sizeof(md_x(vm)->rv), "%s", rv);
	md_x(vm)->epoch = md->sync_epoch;
	if (holding(md, vm, rv))
		spec = NULL;
	if (spec && !json_object_equal(spec, vm->spec_json) &&
	    json_object_deep_copy(spec, &copy, NULL) == 0 &&
	    core_model_set_spec(md->m, vm, copy, err, sizeof(err)) < 0) {
		json_object_put(copy);
		core_model_event(md->m, vm, "InvalidSpec", "%s", err);
	}
	/* Status is the owner's; while an action of this node runs on the VM
	 * (a create before its claim lands), the local status stands. */
	if (md_x(vm)->mark.hold != MD_HOLD_NONE)
		return;
	json_object_object_get_ex(obj, "status", &status);
	/* "operation" marks this node's own actions: the owner's is not. */
	if (core_status_from_json(status, &st) < 0)
		return;
	/* Ours, says this node; another's, says the API server: it failed
	 * over while this node could not renew its Lease.  The reconciler
	 * lets go of the domain (md_cluster_lose). */
	if (!strcmp(vm->st.node, md->node)) {
		if (!st.node[0] || !strcmp(st.node, md->node))
			return;
		md_x(vm)->lost = true;
	}
	st.operation[0] = '\0';
	if (memcmp(&st, &vm->st, sizeof(st)) != 0) {
		vm->st = st;
		core_model_status_changed(md->m, vm);
	}
}

/* Names this node is creating: their watch event may come before the
 * create's own answer, and the reconciler must leave them alone.  The
 * VM takes its creator's mark from the first sight, so the creator's
 * release (a clone's, say) is the one that frees it. */
static bool creating(struct mountd *md, const char *name, struct md_mark *m)
{
	bool r = false;

	pthread_mutex_lock(&md->work.q.lock);
	for (size_t i = 0; i < md->ncreating && !r; i++) {
		r = !strcmp(md->creating[i].name, name);
		if (r)
			*m = md->creating[i].mark;
	}
	pthread_mutex_unlock(&md->work.q.lock);
	return r;
}

static int grow_creating(struct mountd *md)
{
	size_t cap = md->capcreating ? md->capcreating * 2 : 16;
	struct md_creating *v;

	if (md->ncreating < md->capcreating)
		return 0;
	v = realloc(md->creating, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	md->creating = v;
	md->capcreating = cap;
	return 0;
}

/* As many as are in flight; -ENOMEM only when memory is out. */
static int start_creating(struct mountd *md, const char *name,
			  struct md_mark m)
{
	struct md_creating *c;
	int rc;

	pthread_mutex_lock(&md->work.q.lock);
	rc = grow_creating(md);
	if (rc == 0) {
		c = &md->creating[md->ncreating++];
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->mark = m;
	}
	pthread_mutex_unlock(&md->work.q.lock);
	return rc;
}

static void end_creating(struct mountd *md, const char *name)
{
	pthread_mutex_lock(&md->work.q.lock);
	for (size_t i = 0; i < md->ncreating; i++) {
		if (strcmp(md->creating[i].name, name))
			continue;
		md->creating[i] = md->creating[--md->ncreating];
		break;
	}
	pthread_mutex_unlock(&md->work.q.lock);
}

/* op, when given, marks the VM busy from the moment it appears, so the
 * reconciler leaves it to the action that made it. */
static void upsert(struct mountd *md, enum sync_kind k, json_object *obj,
		   const struct md_mark *op)
{
	const char *name = str_at(obj, "metadata", "name");
	const char *uid = str_at(obj, "metadata", "uid");
	const char *created = str_at(obj, "metadata", "creationTimestamp");
	char err[CORE_ERR_MAX];
	json_object *spec = NULL, *copy = NULL;
	struct md_mark created_by;
	struct core_vm *vm;
	bool unknown, added = false;
	const char *who;
	uid_t owner;

	if (k != SYNC_VM || !name)
		return;
	owner = api_owner(obj, &who, &unknown);
	json_object_object_get_ex(obj, "spec", &spec);
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (!vm && spec && json_object_deep_copy(spec, &copy, NULL) == 0) {
		if (core_model_add(md->m, name, md->ns, uid, created, copy, &vm,
				   err, sizeof(err)) < 0) {
			json_object_put(copy);
			md_log(LOG_WARN_, "vm %s: %s; not mirrored", name, err);
			vm = NULL;
		} else {
			added = true;
			vm->st.node[0] = '\0';
		}
	}
	if (!op && vm && creating(md, name, &created_by))
		op = &created_by;
	/* The watch may have brought it first. */
	if (vm && op && md_x(vm)->mark.hold == MD_HOLD_NONE)
		md_mark_set(md, vm, *op);
	/* Said once: when the VM comes, or when it loses a known owner. */
	if (vm && unknown && (added || vm->owner != 0))
		unknown_owner(md, vm, who);
	if (vm) {
		vm->owner = owner;
		merge_object(md, vm, obj, spec);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (vm) {
		md_persist(md, name);
		md_queue(md, name);
	}
}

static void on_upsert(void *arg, enum sync_kind k, json_object *obj)
{
	if (k != SYNC_VM)
		md_ops_upsert(arg, sync_core_kind(k), obj);
	else
		upsert(arg, k, obj, NULL);
}

/* The owner deletes the domain; an action in flight is waited out (a
 * delete of this node's own is already doing the work). */
static void drop_owned(struct mountd *md, const char *name)
{
	struct core_ctl msg = { .verb = CORE_V_DELETE, .force = true };
	char err[CORE_ERR_MAX] = "";
	struct md_vm v;
	int rc, tries = 0;

	while (md_vm_get(md, name, &v) == 0 &&
	       !(v.mark.hold == MD_HOLD_VERB && v.mark.verb == CORE_V_DELETE)) {
		rc = md_do(md, name, &msg, err, sizeof(err));
		if (rc != -EBUSY || ++tries > 600) {
			if (rc < 0 && rc != -ENOENT)
				md_log(LOG_WARN_, "delete %s: %s", name, err);
			return;
		}
		core_model_wait(md->m, name, v.version, NULL, 1000);
	}
}

static void drop_vm(struct mountd *md, const char *name, enum core_phase now)
{
	if (md_owned(md, name, NULL, 0))
		drop_owned(md, name);
	else
		md_forget(md, name);
}

/* Tearing a domain down takes seconds: not on the watch thread, which
 * would hold every other VM's events back meanwhile. */
static void on_remove(void *arg, enum sync_kind k, json_object *obj)
{
	struct mountd *md = arg;
	const char *name = str_at(obj, "metadata", "name");

	if (k == SYNC_VM && name)
		md_nq_put(&md->drops.q, name);
	else if (name)
		md_ops_remove(md, sync_core_kind(k), name);
}

struct stale {
	char **names;
	size_t n;
	uint64_t epoch;
};

static int collect_all(struct core_vm *vm, void *arg)
{
	struct stale *s = arg;
	char *dup = strdup(vm->name);

	if (dup)
		s->names[s->n++] = dup;
	return 0;
}

/* The first complete list: until now this node acted on no VM and
 * published no status (its store may say it owns VMs that another node
 * took while it was away); now every VM gets its look. */
static void first_sync(struct mountd *md)
{
	struct stale s = { 0 };

	core_model_rdlock(md->m);
	s.names = calloc(core_model_count(md->m) + 1, sizeof(char *));
	if (s.names)
		core_model_each(md->m, collect_all, &s);
	core_model_unlock(md->m);
	md->synced = true;
	for (size_t i = 0; i < s.n; i++) {
		md_queue(md, s.names[i]);
		md_queue_status(md, s.names[i]);
		free(s.names[i]);
	}
	free(s.names);
}

static int collect_stale(struct core_vm *vm, void *arg)
{
	struct stale *s = arg;
	char *dup;

	if (md_x(vm)->epoch >= s->epoch)
		return 0;
	dup = strdup(vm->name);
	if (dup)
		s->names[s->n++] = dup;
	return 0;
}

/* After a (re)list, a VM the list did not mention was deleted meanwhile. */
static void on_synced(void *arg, enum sync_kind k)
{
	struct mountd *md = arg;
	struct stale s = { .epoch = md->sync_epoch };

	if (k != SYNC_VM)
		return;
	core_model_rdlock(md->m);
	s.names = calloc(core_model_count(md->m) + 1, sizeof(char *));
	if (s.names)
		core_model_each(md->m, collect_stale, &s);
	core_model_unlock(md->m);
	md->sync_epoch++;
	for (size_t i = 0; i < s.n; i++) {
		md_log(LOG_INFO_, "vm %s is gone from the API server", s.names[i]);
		md_nq_put(&md->drops.q, s.names[i]);
		free(s.names[i]);
	}
	free(s.names);
	if (!md->synced)
		first_sync(md);
}

static void on_online(void *arg, bool up)
{
	struct mountd *md = arg;

	if (up && !md->online)
		md->online_since = (double)time(NULL);
	md->online = up;
	md_log(up ? LOG_INFO_ : LOG_WARN_, "API server %s", up ? "reachable" :
	       "unreachable; acting on own VMs, writes go to the outbox");
}

static int replayed_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	uint64_t rv = *(uint64_t *)arg, *h = &md_x(vm)->hold_rv;

	(void)md;
	if (*h == UINT64_MAX || *h < rv)
		*h = rv;
	return 0;
}

/* The outbox applied this node's spec patch: hold the spec until the
 * watch gets to that revision. */
static void on_replayed(void *arg, enum sync_kind k, const char *name,
			const char *rv)
{
	uint64_t n = strtoull(rv, NULL, 10);

	if (k == SYNC_VM && n)
		md_vm_edit(arg, name, replayed_locked, &n);
}

static const struct sync_handler handler = {
	.upsert = on_upsert,
	.remove = on_remove,
	.synced = on_synced,
	.online = on_online,
	.replayed = on_replayed,
};

/* ---- claiming and converging ---------------------------------------- */

/* nodeSelector keys this node answers to: its name under the usual
 * hostname labels.  Other keys need labels this node does not have. */
bool md_selector_allows(const struct core_spec *s, const char *node)
{
	for (size_t i = 0; i < s->nnode_selector; i++) {
		const char *k = s->node_selector[i].key;

		if (strcmp(k, "kubernetes.io/hostname") != 0 &&
		    strcmp(k, CORE_NODE_LABEL) != 0)
			return false;
		if (strcmp(s->node_selector[i].value, node) != 0)
			return false;
	}
	return true;
}

struct committed {
	const char *node;
	uint64_t memory;
};

static int add_committed(struct core_vm *vm, void *arg)
{
	struct committed *c = arg;

	if (!strcmp(vm->st.node, c->node) && vm->spec.running)
		c->memory += vm->spec.memory;
	return 0;
}

/* Capacity: the memory of the VMs this node is meant to run, plus this
 * one, must fit in the host's memory (vCPUs may be overcommitted, memory
 * is not).  Model read lock held. */
static bool capacity_fits(struct mountd *md, const struct core_vm *vm)
{
	struct committed c = { .node = md->node };
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || psz <= 0)
		return true;
	core_model_each(md->m, add_committed, &c);
	return c.memory + vm->spec.memory <= (uint64_t)pages * (uint64_t)psz;
}

int md_cluster_claim(struct mountd *md, const char *name, const char *rv)
{
	char err[CORE_ERR_MAX];
	struct core_vm *vm;
	int rc = sync_claim(md->sync, SYNC_VM, name, rv, err, sizeof(err));

	if (rc == -EBUSY) {
		md_log(LOG_DEBUG_, "claim %s: lost the race", name);
		return rc;
	}
	if (rc < 0) {
		md_log(LOG_WARN_, "claim %s: %s", name, err);
		return rc;
	}
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		snprintf(vm->st.node, sizeof(vm->st.node), "%s", md->node);
		core_model_event(md->m, vm, "Scheduled", "claimed by node %s",
				 md->node);
		core_model_status_changed(md->m, vm);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	md_log(LOG_INFO_, "claimed vm %s", name);
	return 0;
}

struct given {
	const char *to;
};

static int given_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	const struct given *g = arg;

	snprintf(vm->st.node, sizeof(vm->st.node), "%s", g->to);
	vm->st.phase = CORE_PHASE_PENDING;
	vm->st.qemu_pid = 0;
	vm->st.start_time = 0;
	md_x(vm)->defined_gen = 0;
	core_model_status_changed(md->m, vm);
	return 0;
}

int md_cluster_get(struct mountd *md, const char *name, struct md_api_vm *out,
		   char *err, size_t errlen)
{
	json_object *o = NULL;
	int rc = sync_get(md->sync, SYNC_VM, name, &o, err, errlen);

	if (rc == 0) {
		snprintf(out->node, sizeof(out->node), "%s",
			 str_at(o, "status", "nodeName") ?: "");
		snprintf(out->rv, sizeof(out->rv), "%s",
			 str_at(o, "metadata", "resourceVersion") ?: "");
	}
	json_object_put(o);
	return rc;
}

int md_cluster_give(struct mountd *md, const char *name, const char *to,
		    char *err, size_t errlen)
{
	struct md_api_vm now;
	int rc = -EBUSY;

	/* At the revision it has now, while the API server says it is this
	 * node's: this node's own status pushes move it on. */
	for (int i = 0; i < 3 && rc == -EBUSY; i++) {
		rc = md_cluster_get(md, name, &now, err, errlen);
		if (rc == 0 && strcmp(now.node, md->node)) {
			snprintf(err, errlen, "vm %s: not this node's on the API "
				 "server", name);
			rc = -EBUSY;
		} else if (rc == 0) {
			rc = sync_give(md->sync, SYNC_VM, name, now.rv, to, err,
				       errlen);
		}
	}
	if (rc == 0)
		md_vm_edit(md, name, given_locked, &(struct given){ .to = to });
	return rc;
}

/* Nobody wrote this spec to the tree, so nobody saw the refusal: the VM's
 * err and events carry it, once per spec (the reconciler retries). */
static void converge_failed(struct mountd *md, const char *name, int rc,
			    const char *err)
{
	struct core_vm *vm;
	bool first = false;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && (md_x(vm)->refused_gen != vm->spec_gen ||
		   md_x(vm)->refused_rc != rc)) {
		md_x(vm)->refused_gen = vm->spec_gen;
		md_x(vm)->refused_rc = rc;
		core_model_fail(md->m, vm, err);
		first = true;
	}
	/* kubectl shows conditions, not the tree's err. */
	if (vm && !md_x(vm)->defined_gen) {
		vm->st.phase = CORE_PHASE_FAILED;
		core_status_cond(&vm->st, CORE_COND_READY, false, "SpecRefused",
				 err, time(NULL));
		core_model_status_changed(md->m, vm);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (first)
		md_log(LOG_WARN_, "vm %s: %s", name, err);
}

/* A VM whose storage classes no node has: the alive node first by name
 * claims it anyway, so that its status says why it cannot run. */
static bool reports_missing_class(struct mountd *md, const struct core_spec *s)
{
	struct md_member *v = NULL;
	bool first = true, anywhere = false;
	size_t n = 0;

	if (md_members_copy(md, &v, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].alive)
			continue;
		anywhere |= md_classes_in(v[i].classes, s);
		first &= strcmp(v[i].name, md->node) >= 0;
	}
	free(v);
	return first && !anywhere;
}

/* The spec names a class this node lacks: DiskReady says so, once per
 * spec; nothing is defined. */
static void class_missing(struct mountd *md, const char *name, const char *err)
{
	struct core_vm *vm;
	bool first = false;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && md_x(vm)->refused_gen != vm->spec_gen) {
		md_x(vm)->refused_gen = vm->spec_gen;
		core_model_fail(md->m, vm, err);
		first = true;
	}
	if (vm) {
		if (!md_x(vm)->defined_gen)
			vm->st.phase = CORE_PHASE_PENDING;
		core_status_cond(&vm->st, CORE_COND_DISK_READY, false,
				 "UnknownStorageClass", err, time(NULL));
		core_model_status_changed(md->m, vm);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (first)
		md_log(LOG_WARN_, "vm %s: %s", name, err);
}

static int lost_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	bool *was = arg;

	(void)md;
	*was = md_x(vm)->lost;
	md_x(vm)->lost = false;
	return 0;
}

/* Another node took the VM over (the API server says so): its domain
 * here goes, its shared disks stay for the new owner. */
static bool lose(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];
	bool lost = false;

	if (md_vm_edit(md, name, lost_locked, &lost) < 0 || !lost)
		return false;
	if (be_forget(md->be, name, err, sizeof(err)) < 0 &&
	    be_info(md->be, name, &(struct be_info){ 0 }, err, sizeof(err)) != -ENOENT)
		md_log(LOG_ERR_, "vm %s: another node owns it, but its domain "
		       "here stays: %s", name, err);
	md_event(md, name, "Lost", "another node owns the VM now; this node "
		 "let go of its domain");
	md_log(LOG_WARN_, "vm %s: another node owns it now; domain dropped "
	       "here", name);
	md_nodes_dirty(md);
	return true;
}

/* Could a member take this VM, as far as its Lease tells? */
static bool member_may(const struct md_member *m, const struct core_spec *s)
{
	return m->alive && !m->cordoned && md_classes_in(m->classes, s) &&
	       md_selector_allows(s, m->name);
}

/* A carbonAware VM is left, for MD_GREENER_WAIT_S after its creation,
 * to a node that could take it and whose grid is greener by its Lease
 * (a node without a fresh reading counts as the dirtiest).  After that
 * any node that fits claims it: a greener node that cannot (its memory)
 * holds nothing up.  Model read lock held; *until is when to look
 * again. */
static bool greener_elsewhere(struct mountd *md, const struct core_vm *vm,
			      time_t *until)
{
	struct md_member *v = NULL;
	struct core_grid_reading self;
	time_t now = time(NULL), created = 0;
	bool greener = false;
	size_t n = 0;

	if (!vm->spec.carbon_aware ||
	    core_rfc3339_parse(vm->created, &created) < 0 ||
	    now >= created + MD_GREENER_WAIT_S ||
	    md_members_copy(md, &v, &n) < 0)
		return false;
	md_carbon_self(md, &self);
	for (size_t i = 0; i < n && !greener; i++)
		greener = strcmp(v[i].name, md->node) != 0 &&
			  md_carbon_member_fresh(&v[i], now) &&
			  (self.intensity < 0 ||
			   v[i].grid.intensity < self.intensity) &&
			  member_may(&v[i], &vm->spec);
	free(v);
	*until = created + MD_GREENER_WAIT_S;
	return greener;
}

void md_cluster_reconcile(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX] = "", rv[32] = "";
	struct core_vm *vm;
	struct md_vm v;
	bool unowned = false, mine = false, busy = false, fits = false;
	bool classes = true, greener = false;
	time_t until = 0;
	int rc;

	/* Nothing before the first complete list (first_sync). */
	if (!md->synced || lose(md, name))
		return;
	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		unowned = !vm->st.node[0];
		mine = !strcmp(vm->st.node, md->node);
		busy = md_x(vm)->mark.hold != MD_HOLD_NONE;
		classes = md_classes_check(md, &vm->spec, err, sizeof(err)) == 0;
		fits = md_selector_allows(&vm->spec, md->node) &&
		       (!unowned || (!md_cordoned(md) && capacity_fits(md, vm) &&
				     (classes || reports_missing_class(md, &vm->spec))));
		greener = unowned && fits && greener_elsewhere(md, vm, &until);
		snprintf(rv, sizeof(rv), "%s", md_x(vm)->rv);
	}
	core_model_unlock(md->m);
	if (greener) {
		md_nq_put_at(&md->work.q, name, until);
		return;
	}
	if (!vm || busy || (!mine && !(unowned && fits && md->online)))
		return;
	if (unowned && md_cluster_claim(md, name, rv) < 0)
		return;
	if (!classes) {
		class_missing(md, name, err);
	} else if ((rc = md_converge_owned(md, name, err, sizeof(err))) < 0) {
		converge_failed(md, name, rc, err);
		/* A VM that may fail over tries again: its disks may still be
		 * held by the node it came from (lockd), for a moment. */
		if (md_vm_get(md, name, &v) == 0 && v.movable && v.want_running)
			md_nq_put_at(&md->work.q, name, time(NULL) + 5);
	}
	/* The pusher publishes it: one thread, so the last status pushed
	 * is the one the API server has (md_push_status skips repeats). */
	md_queue_status(md, name);
}

/* ---- status to the API server --------------------------------------- */

/* FNV-1a of the status as JSON text: what was published last. */
static uint64_t status_hash(json_object *st)
{
	const char *p = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
	uint64_t h = 14695981039346656037ULL;

	for (; p && *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

struct pub {
	json_object *st;
	uint64_t hash;
};

/* The status of a VM this node owns, unless it is what was published
 * last: most changes of the model (events, the busy mark coming and
 * going within one write) leave the published status as it was. */
static int status_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct pub *p = arg;

	if (strcmp(vm->st.node, md->node))
		return -ENOENT;
	p->st = core_status_to_json(&vm->st);
	p->hash = status_hash(p->st);
	if (p->hash == md_x(vm)->pushed)
		return -EALREADY;
	return 0;
}

static int pushed_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	md_x(vm)->pushed = *(uint64_t *)arg;
	return 0;
}

/* Only on the pusher thread: pushes from two threads could land in the
 * other order than the hash of the last one says. */
void md_push_status(struct mountd *md, const char *name)
{
	struct pub p = { 0 };
	char err[CORE_ERR_MAX];
	int rc;

	/* Not before the first complete list: a status of a VM another node
	 * took meanwhile would name this node again. */
	if (!md->sync || !md->synced)
		return;
	rc = md_vm_edit(md, name, status_locked, &p);
	/* Only while the API server still says this node owns it: after an
	 * outage another node may have taken it over (failover). */
	if (rc == 0)
		rc = sync_patch_status_owned(md->sync, SYNC_VM, name, md->node,
					     p.st, err, sizeof(err));
	/* Queued in the outbox counts: the outbox delivers it. */
	if (p.st && (rc == 0 || rc == -EAGAIN))
		md_vm_edit(md, name, pushed_locked, &p.hash);
	else if (rc == -EINVAL) {
		/* A migration's own patch (nodeName) may still be on its way:
		 * the push again in a moment, nothing else (the watch tells
		 * soon if another node has it). */
		md_log(LOG_DEBUG_, "status of %s: not this node's on the API "
		       "server (%s)", name, err);
		md_nq_put_at(&md->status.q, name, time(NULL) + 2);
	}
	else if (p.st && rc != -ENOENT && rc != -EALREADY)
		md_log(LOG_WARN_, "status of %s: %s", name, err);
	json_object_put(p.st);
}

/* Status changes of owned VMs are pushed from the reconciler thread, so
 * the thread that changed the model never waits on the network. */
static void on_model_change(void *arg, const char *name, int slot,
			    unsigned what, uint64_t seq)
{
	struct mountd *md = arg;

	if (name && (what & CORE_CHG_STATUS))
		md_queue_status(md, name);
}

/* ---- writes from the tree -------------------------------------------- */

static int hold_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	md_x(vm)->hold_rv = *(uint64_t *)arg;
	return 0;
}

static void hold(struct mountd *md, const char *name, uint64_t rv)
{
	md_vm_edit(md, name, hold_locked, &rv);
}

/* The revision the object has now: our patch is in it. */
static uint64_t current_rv(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];
	struct md_api_vm now;

	if (md_cluster_get(md, name, &now, err, sizeof(err)) < 0)
		return 0;
	return strtoull(now.rv, NULL, 10);
}

int md_cluster_spec(struct mountd *md, const char *name, json_object *old,
		    json_object *new, char *err, size_t errlen)
{
	json_object *diff, *patch;
	int rc;

	if (!md->sync)
		return 0;
	diff = core_json_merge_diff(old, new);
	if (!diff)
		return -ENOMEM;
	if (!json_object_object_length(diff)) {
		json_object_put(diff);
		return 0;
	}
	patch = json_object_new_object();
	json_object_object_add(patch, "spec", diff);
	hold(md, name, UINT64_MAX);
	rc = sync_patch(md->sync, SYNC_VM, name, patch, err, errlen);
	json_object_put(patch);
	if (rc == 0)
		hold(md, name, current_rv(md, name));
	else if (rc != -EAGAIN)
		hold(md, name, 0);
	return rc == -EAGAIN ? 0 : rc;
}

/* The object is created first; its uid and resourceVersion come back
 * and the VM is claimed for this node before anything else happens.  It
 * appears in the model busy with "create", as add_vm does standalone. */
/* The object exists; another node claimed it first (it will run there:
 * the create itself worked, 1), or the claim failed (EIO). */
static int lost_claim(struct mountd *md, const char *name, int rc, char *err,
		      size_t errlen)
{
	struct core_vm *vm;

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		md_mark_set(md, vm, md_mark_of(MD_HOLD_NONE));
		core_model_event(md->m, vm, "Created", "claimed by another node");
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	md_queue(md, name);
	if (rc == -EBUSY)
		return 1;
	snprintf(err, errlen, "create: vm %s exists, but this node could not "
		 "claim it", name);
	return -EIO;
}

/* The API names owners by user name: every node resolves it to its own
 * uid (api_owner). */
static int owner_annotation(json_object *meta, uid_t owner, char *err,
			    size_t errlen)
{
	struct passwd pw, *res = NULL;
	json_object *ann;
	char buf[4096];

	if (owner == 0)
		return 0;
	if (getpwuid_r(owner, &pw, buf, sizeof(buf), &res) != 0 || !res) {
		snprintf(err, errlen, "create: uid %u has no user name here, "
			 "and a VM in a cluster names its owner",
			 (unsigned)owner);
		return -EINVAL;
	}
	ann = json_object_new_object();
	json_object_object_add(ann, CORE_OWNER_KEY,
			       json_object_new_string(res->pw_name));
	json_object_object_add(meta, "annotations", ann);
	return 0;
}

int md_cluster_create(struct mountd *md, const char *name, json_object *spec,
		      uid_t owner, struct md_mark m, char *err, size_t errlen)
{
	json_object *obj = json_object_new_object(), *meta, *created = NULL;
	const char *rv;
	int rc;

	meta = json_object_new_object();
	json_object_object_add(meta, "name", json_object_new_string(name));
	rc = owner_annotation(meta, owner, err, errlen);
	if (rc < 0) {
		json_object_put(meta);
		json_object_put(obj);
		return rc;
	}
	json_object_object_add(obj, "apiVersion",
			       json_object_new_string(CORE_API_VERSION));
	json_object_object_add(obj, "kind",
			       json_object_new_string("VirtualMachine"));
	json_object_object_add(obj, "metadata", meta);
	json_object_object_add(obj, "spec", json_object_get(spec));
	rc = start_creating(md, name, m);
	if (rc == 0)
		rc = sync_create(md->sync, SYNC_VM, obj, &created, err, errlen);
	else
		snprintf(err, errlen, "create %s: out of memory", name);
	json_object_put(obj);
	if (rc == -EEXIST)
		snprintf(err, errlen, "create: vm %s already exists", name);
	if (rc == -EHOSTUNREACH)
		rc = -EIO;      /* err says the server is unreachable */
	if (rc == 0) {
		upsert(md, SYNC_VM, created, &m);
		rv = str_at(created, "metadata", "resourceVersion");
		/* A cordoned node leaves its creates to the others. */
		rc = md_cordoned(md) ? -EBUSY :
		     md_cluster_claim(md, name, rv ? rv : "");
		json_object_put(created);
		if (rc < 0)
			rc = lost_claim(md, name, rc, err, errlen);
	}
	end_creating(md, name);
	return rc;
}

int md_cluster_delete(struct mountd *md, const char *name, char *err,
		      size_t errlen)
{
	int rc;

	if (!md->sync)
		return 0;
	/* When the object is what went away first, this is a 404. */
	rc = sync_delete(md->sync, SYNC_VM, name, err, errlen);
	if (rc == -EHOSTUNREACH)
		rc = -EIO;
	return rc == -ENOENT ? 0 : rc;
}

/* ---- life of the connection ------------------------------------------ */

static int load_creds(const char *kubeconfig, struct sync_creds *c,
		      char *err, size_t errlen)
{
	if (kubeconfig)
		return sync_kubeconfig_load(kubeconfig, NULL, c, err, errlen);
	return sync_incluster_load(c, err, errlen);
}

int md_cluster_open(struct mountd *md, const char *kubeconfig, const char *ns,
		    char *err, size_t errlen)
{
	struct sync_config cfg = { .creds = &md->creds, .node = md->node,
				   .state_dir = md->cfg.state_dir };
	int rc = load_creds(kubeconfig, &md->creds, err, errlen);

	if (rc < 0)
		return rc;
	snprintf(md->ns, sizeof(md->ns), "%s", ns ? ns :
		 md->creds.ns ? md->creds.ns : "default");
	if (core_name_check(md->ns, err, errlen) < 0)
		return -EINVAL;
	cfg.ns = md->ns;
	rc = sync_open(&cfg, &handler, md, &md->sync, err, errlen);
	if (rc == 0)
		md->online = sync_online(md->sync);
	md->online_since = (double)time(NULL);
	if (rc == 0 && !md->online)
		md_log(LOG_WARN_, "API server unreachable at start-up; serving "
		       "this node's VMs from the state directory");
	return rc;
}

int md_cluster_start(struct mountd *md)
{
	if (!md->sync)
		return 0;
	md->drops.one = drop_vm;
	if (md_worker_start(&md->drops) < 0)
		return -EAGAIN;
	core_model_watch(md->m, on_model_change, md);
	md_report_init(md);
	if (md_members_publish(md) < 0)
		md_log(LOG_WARN_, "cannot publish --migration-uri in the Lease");
	return sync_start(md->sync);
}

void md_cluster_close(struct mountd *md)
{
	if (!md->sync)
		return;
	core_model_unwatch(md->m, on_model_change, md);
	md_worker_stop(&md->drops);
	sync_close(md->sync);
	md->sync = NULL;
	sync_creds_free(&md->creds);
}

/* The guest runs on node now: standalone, the domain is that node's
 * daemon's to adopt; in a cluster, status.nodeName moves with it. */
void md_migrated(struct mountd *md, const char *name, const char *node)
{
	char err[CORE_ERR_MAX];
	struct core_vm *vm;
	json_object *st;
	int rc;

	if (!md->sync) {
		md_forget(md, name);
		return;
	}
	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm) {
		snprintf(vm->st.node, sizeof(vm->st.node), "%s", node);
		core_model_status_changed(md->m, vm);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	st = json_object_new_object();
	json_object_object_add(st, "nodeName", json_object_new_string(node));
	rc = sync_patch_status_owned(md->sync, SYNC_VM, name, md->node, st, err,
				     sizeof(err));
	json_object_put(st);
	if (rc < 0)
		md_log(LOG_WARN_, "vm %s moved to %s but the API was not told: %s",
		       name, node, err);
	md_persist(md, name);
}
