/* A node's maintenance: cordon (take no new VMs), uncordon, and drain
 * (cordon, then move or stop every VM), from nodes/NODE/ctl on any node
 * or, in a cluster, from the Node object of the same name (`kubectl
 * cordon`, annotation hypersdk.io/drain).
 *
 * Where the state lives: standalone, in the state directory (store kind
 * "node"); in a cluster, in the node's Lease (annotation hypersdk.io/cordon,
 * which any node may set), so every node sees it.  A drain asked of
 * another node is the annotation hypersdk.io/drain=TOKEN on its Lease; the
 * node runs it once per token and publishes hypersdk.io/drain-done=TOKEN
 * and hypersdk.io/drain-result ("ok" or what failed), which the asking
 * tree waits for. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mountd/priv.h"

#define MD_ANN_DRAIN CORE_API_GROUP "/drain"
#define MD_ANN_DRAIN_DONE CORE_API_GROUP "/drain-done"
#define MD_ANN_DRAIN_DONE_NODE CORE_API_GROUP "/drain-done-node"
#define MD_ANN_DRAIN_RESULT CORE_API_GROUP "/drain-result"
/* How long a tree waits for another node's drain. */
#define MD_DRAIN_WAIT_S 3600

/* ---- cordon ----------------------------------------------------------- */

static void set_local(struct mountd *md, bool on, const char *by)
{
	bool was;

	pthread_mutex_lock(&md->maint_lock);
	was = md->cordoned;
	md->cordoned = on;
	snprintf(md->cordon_by, sizeof(md->cordon_by), "%s", on ? by : "");
	pthread_mutex_unlock(&md->maint_lock);
	if (was != on)
		md_log(LOG_INFO_, "node %s %s%s%s", md->node,
		       on ? "cordoned" : "uncordoned", on ? " by " : "",
		       on ? by : "");
	md_nodes_dirty(md);
}

bool md_cordoned(struct mountd *md)
{
	bool on;

	pthread_mutex_lock(&md->maint_lock);
	on = md->cordoned;
	pthread_mutex_unlock(&md->maint_lock);
	return on;
}

void md_cordon_show(struct mountd *md, char *by, size_t len)
{
	pthread_mutex_lock(&md->maint_lock);
	snprintf(by, len, "%s", md->cordoned ? md->cordon_by : "");
	pthread_mutex_unlock(&md->maint_lock);
}

static int save_standalone(struct mountd *md, bool on)
{
	json_object *o;
	int rc;

	if (!on) {
		rc = core_store_del(md->store, "node", md->node);
		return rc == -ENOENT ? 0 : rc;
	}
	o = json_object_new_object();
	json_object_object_add(o, "cordoned", json_object_new_boolean(1));
	rc = core_store_put(md->store, "node", md->node, o);
	json_object_put(o);
	return rc;
}

void md_cordon_load(struct mountd *md)
{
	json_object *o = NULL;

	if (!md->cfg.cluster &&
	    core_store_get(md->store, "node", md->node, &o) == 0 &&
	    json_object_get_boolean(json_object_object_get(o, "cordoned")))
		set_local(md, true, "tree");
	json_object_put(o);
}

void md_cordon_seen(struct mountd *md, bool lease, bool node_object)
{
	pthread_mutex_lock(&md->maint_lock);
	md->node_unschedulable = node_object;
	pthread_mutex_unlock(&md->maint_lock);
	if (node_object)
		set_local(md, true, "node-object");
	else
		set_local(md, lease, "lease");
}

static int cordon(struct mountd *md, const char *node, bool on, char *err,
		  size_t errlen)
{
	bool pinned;
	int rc;

	pthread_mutex_lock(&md->maint_lock);
	pinned = !on && !strcmp(node, md->node) && md->node_unschedulable;
	pthread_mutex_unlock(&md->maint_lock);
	if (pinned) {
		snprintf(err, errlen, "uncordon: the Node object %s is "
			 "unschedulable (kubectl uncordon %s)", node, node);
		return -EBUSY;
	}
	if (!md->sync) {
		rc = save_standalone(md, on);
		if (rc < 0)
			snprintf(err, errlen, "%s: cannot keep it in the state "
				 "directory: %s", on ? "cordon" : "uncordon",
				 strerror(-rc));
		else
			set_local(md, on, "tree");
		return rc;
	}
	rc = sync_lease_annotate(md->sync, node, MD_ANN_CORDON,
				 on ? "true" : NULL, err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "node %s has no Lease", node);
	if (rc == -EHOSTUNREACH)
		rc = -EIO;      /* err says the server is unreachable */
	if (rc == 0 && !strcmp(node, md->node))
		set_local(md, on, "lease");
	return rc;
}

/* ---- drain -------------------------------------------------------------- */

/* Running or paused here: what a drain moves. */
static bool active_here(struct mountd *md, const struct core_vm *vm)
{
	bool active = vm->st.phase == CORE_PHASE_RUNNING ||
		      vm->st.phase == CORE_PHASE_PAUSED;

	return active && (!vm->st.node[0] || !strcmp(vm->st.node, md->node));
}

static bool live_migrates(struct mountd *md, const char *name)
{
	struct core_vm *vm;
	bool r;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	r = vm && vm->spec.ha_eviction &&
	    !strcmp(vm->spec.ha_eviction, "LiveMigrate");
	core_model_unlock(md->m);
	return r;
}

/* HA on shared storage, in a cluster: another node can start it from the
 * same files. */
static bool movable(struct mountd *md, const char *name)
{
	struct md_vm v;

	return md->sync && md_vm_get(md, name, &v) == 0 && v.movable;
}

/* classes: what the node's Lease publishes (NULL standalone: unknown). */
static bool allowed_on(struct mountd *md, const char *name, const char *node,
		       const char *classes)
{
	struct core_vm *vm;
	bool r;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	r = vm && md_selector_allows(&vm->spec, node) &&
	    (!classes || md_classes_in(classes, &vm->spec));
	core_model_unlock(md->m);
	return r;
}

/* A node that takes the VM: alive, not cordoned, allowed by its
 * nodeSelector and with its storage classes, and for a live migration
 * with a migration URI.  Standalone: the first --peer. */
static int pick_target(struct mountd *md, const char *name, bool live,
		       char *out, size_t len)
{
	struct md_member *v = NULL;
	size_t n = 0;
	int rc = -ENOENT;

	if (!md->sync) {
		for (size_t i = 0; i < md->npeers && rc; i++)
			if (allowed_on(md, name, md->peers[i].node, NULL)) {
				snprintf(out, len, "%s", md->peers[i].node);
				rc = 0;
			}
		return rc;
	}
	if (md_members_copy(md, &v, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc; i++) {
		if (!strcmp(v[i].name, md->node) || !v[i].alive ||
		    v[i].cordoned || (live && !v[i].uri[0]) ||
		    !allowed_on(md, name, v[i].name, v[i].classes))
			continue;
		snprintf(out, len, "%s", v[i].name);
		rc = 0;
	}
	free(v);
	return rc;
}

static void progress(struct mountd *md, const char *phase, int moved,
		     int stopped, int failed, const char *msg)
{
	pthread_mutex_lock(&md->maint_lock);
	if (phase)
		snprintf(md->drain.phase, sizeof(md->drain.phase), "%s", phase);
	md->drain.moved += moved;
	md->drain.stopped += stopped;
	md->drain.failed += failed;
	if (msg)
		snprintf(md->drain.msg, sizeof(md->drain.msg), "%s", msg);
	pthread_mutex_unlock(&md->maint_lock);
	md_nodes_dirty(md);
	md_nodes_flush(md);
}

/* Move one VM away, or stop it: 0, or -errno with err. */
static int drain_one(struct mountd *md, const char *name, char *err,
		     size_t errlen)
{
	struct core_ctl msg = { .verb = CORE_V_STOP, .running = -1,
				.keep_days = -1, .keep_count = -1 };
	char to[CORE_NAME_MAX + 1];
	int rc;

	if (live_migrates(md, name)) {
		if (pick_target(md, name, true, to, sizeof(to)) < 0) {
			snprintf(err, errlen, "vm %s: no node to migrate it to "
				 "(alive, not cordoned, with a migration URI and "
				 "its storage classes, allowed by its "
				 "nodeSelector)", name);
			return -ENOENT;
		}
		msg.verb = CORE_V_MIGRATE;
		snprintf(msg.arg, sizeof(msg.arg), "%s", to);
		rc = md_do(md, name, &msg, err, errlen);
		if (rc == 0)
			progress(md, NULL, 1, 0, 0, NULL);
		return rc;
	}
	if (movable(md, name) && pick_target(md, name, false, to, sizeof(to)) == 0) {
		rc = md_hand_over(md, name, to, err, errlen);
		if (rc == 0)
			progress(md, NULL, 1, 0, 0, NULL);
		return rc;
	}
	rc = md_do(md, name, &msg, err, errlen);
	if (rc == 0) {
		progress(md, NULL, 0, 1, 0, NULL);
		md_event(md, name, "Drained", "stopped: node drained (its "
			 "evictionStrategy is not LiveMigrate)");
	}
	return rc;
}

static int drain_here(struct mountd *md, char *err, size_t errlen)
{
	md_name *names = NULL;
	size_t n = 0;
	char e[CORE_ERR_MAX] = "";
	int rc, failed = 0;

	pthread_mutex_lock(&md->maint_lock);
	rc = md->drain.running ? -EBUSY : 0;
	if (rc == 0) {
		memset(&md->drain, 0, sizeof(md->drain));
		md->drain.running = true;
		md->drain.started = time(NULL);
	}
	pthread_mutex_unlock(&md->maint_lock);
	if (rc < 0) {
		snprintf(err, errlen, "drain: node %s is draining already",
			 md->node);
		return rc;
	}
	rc = cordon(md, md->node, true, err, errlen);
	if (rc == 0 && (rc = md_vm_names(md, active_here, &names, &n)) < 0)
		snprintf(err, errlen, "drain: out of memory");
	pthread_mutex_lock(&md->maint_lock);
	md->drain.total = (unsigned)n;
	pthread_mutex_unlock(&md->maint_lock);
	progress(md, "Running", 0, 0, 0, "");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (drain_one(md, names[i], e, sizeof(e)) == 0)
			continue;
		failed++;
		progress(md, NULL, 0, 0, 1, e);
		md_log(LOG_WARN_, "drain: %s", e);
	}
	free(names);
	if (rc == 0 && failed) {
		snprintf(err, errlen, "drain: %d of %zu VMs are still here; the "
			 "last reason: %s", failed, n, e);
		rc = -EIO;
	}
	pthread_mutex_lock(&md->maint_lock);
	md->drain.running = false;
	md->drain.finished = time(NULL);
	pthread_mutex_unlock(&md->maint_lock);
	progress(md, rc == 0 ? "Succeeded" : "Failed", 0, 0, 0,
		 rc == 0 ? "every VM moved or stopped" : err);
	return rc;
}

/* Another node's drain: asked through its Lease, waited for. */
static int drain_there(struct mountd *md, const char *node, char *err,
		       size_t errlen)
{
	char token[64];
	struct md_member m;
	time_t end = time(NULL) + MD_DRAIN_WAIT_S;
	int rc;

	snprintf(token, sizeof(token), "%.40s-%ld", md->node, (long)time(NULL));
	rc = sync_lease_annotate(md->sync, node, MD_ANN_DRAIN, token, err,
				 errlen);
	if (rc == -EHOSTUNREACH)
		rc = -EIO;
	while (rc == 0 && time(NULL) < end) {
		sleep(1);
		if (md_members_refresh(md) < 0 || md_member_get(md, node, &m) < 0)
			continue;
		if (strcmp(m.drain_done, token))
			continue;
		if (!strcmp(m.drain_result, "ok"))
			return 0;
		snprintf(err, errlen, "%s", m.drain_result);
		return -EIO;
	}
	if (rc == 0) {
		snprintf(err, errlen, "drain: node %s did not finish within %d "
			 "s (is its daemon running?)", node, MD_DRAIN_WAIT_S);
		rc = -ETIMEDOUT;
	}
	return rc;
}

struct asked {
	struct mountd *md;
	char token[64];
	bool node_object;
};

static void *drain_asked(void *arg)
{
	struct asked *a = arg;
	struct mountd *md = a->md;
	char err[CORE_ERR_MAX] = "";
	int rc = drain_here(md, err, sizeof(err));

	sync_lease_set(md->sync, MD_ANN_DRAIN_RESULT, rc == 0 ? "ok" : err);
	sync_lease_set(md->sync, a->node_object ? MD_ANN_DRAIN_DONE_NODE :
		       MD_ANN_DRAIN_DONE, a->token);
	free(a);
	return NULL;
}

/* A drain asked of this node (its Lease, or its Node object), once per
 * token, on a thread of its own: the stats thread must not wait.  The
 * caller leaves out tokens the Lease says are done (a restart forgets
 * the ones in memory). */
void md_drain_asked(struct mountd *md, const char *token, bool node_object)
{
	char *last = md->drain_token[node_object];
	struct asked *a;
	bool fresh;

	if (!token[0])
		return;
	pthread_mutex_lock(&md->maint_lock);
	fresh = strcmp(last, token) != 0 && !md->drain.running;
	if (fresh)
		snprintf(last, sizeof(md->drain_token[0]), "%s", token);
	pthread_mutex_unlock(&md->maint_lock);
	a = fresh ? calloc(1, sizeof(*a)) : NULL;
	if (!a)
		return;
	a->md = md;
	a->node_object = node_object;
	snprintf(a->token, sizeof(a->token), "%s", token);
	md_log(LOG_INFO_, "drain asked (%s)", token);
	md_drain_join(md);      /* the one before, done by now */
	if (pthread_create(&md->drain_thread, NULL, drain_asked, a) != 0)
		free(a);
	else
		md->drain_thread_started = true;
}

void md_drain_join(struct mountd *md)
{
	if (md->drain_thread_started)
		pthread_join(md->drain_thread, NULL);
	md->drain_thread_started = false;
}

static int run_node_verb(struct mountd *md, const char *node,
			 enum core_node_verb v, char *err, size_t errlen)
{
	bool self = !strcmp(node, md->node);

	switch (v) {
	case CORE_NV_CORDON:
	case CORE_NV_UNCORDON:
		return cordon(md, node, v == CORE_NV_CORDON, err, errlen);
	case CORE_NV_DRAIN:
		return self ? drain_here(md, err, errlen) :
		       md->sync ? drain_there(md, node, err, errlen) : -ENOENT;
	default:
		snprintf(err, errlen, "unknown node verb");
		return -EINVAL;
	}
}

/* Its status says so before the write returns. */
int md_node_ctl(struct mountd *md, const char *node, enum core_node_verb v,
		char *err, size_t errlen)
{
	int rc = run_node_verb(md, node, v, err, errlen);

	md_nodes_flush(md);
	return rc;
}
