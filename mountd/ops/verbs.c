/* What clone, migrate, resize and revert do, for ops_run.  Each runs
 * with the VM marked busy and leaves nothing half made: a failed clone
 * drops its target, a failed migration leaves the VM running here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/ops/ops.h"

static const char *get_str(json_object *o, const char *path)
{
	json_object *v = core_json_path(o, path);

	return json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : NULL;
}

static bool get_bool(json_object *o, const char *path)
{
	return json_object_get_boolean(core_json_path(o, path));
}

/* The source's spec for its clone: stopped unless asked to start. */
static json_object *clone_spec(struct mountd *md, const char *src,
			       char *uid, size_t uidlen)
{
	json_object *spec = NULL;

	md_spec_copy(md, src, &spec);
	if (spec)
		core_spec_set_bool(spec, "running", false);
	core_uuid(uid);
	return spec;
}

static int target_uid(struct mountd *md, const char *name, char *uid,
		      size_t len)
{
	struct md_vm v;
	int rc = md_vm_get(md, name, &v);

	if (rc == 0)
		snprintf(uid, len, "%s", v.uid);
	return rc;
}

/* Whose the clone is.  Standalone, whoever asked for it: the daemon
 * recorded the caller on the operation (md_op_ctl), and only it writes
 * operations.  In a cluster the operation came through the API, where
 * its author could write any annotation and uids differ between nodes:
 * the clone is the source VM's owner's, on this node. */
static uid_t clone_owner(struct mountd *md, json_object *o, const char *src)
{
	struct md_vm v;

	if (!md->sync)
		return core_owner_from_object(o);
	return md_vm_get(md, src, &v) == 0 ? v.owner : 0;
}

int md_run_clone(struct mountd *md, const struct md_job *j, char *err,
		 size_t errlen)
{
	const char *op = j->op;
	json_object *o = j->obj;
	struct md_run *run = j->run;
	const char *src = get_str(o, "spec.vmRef.name");
	const char *dst = get_str(o, "spec.cloneSpec.targetName");
	bool linked = get_bool(o, "spec.cloneSpec.linkedClone");
	bool start = get_bool(o, "spec.cloneSpec.startAfterClone");
	struct md_mark m = md_mark_verb(CORE_V_CLONE, false);
	struct progress_ctx *pc = NULL;
	struct be_progress bp;
	json_object *spec, *copy = NULL;
	char uid[40];
	int rc;

	if (!dst) {
		snprintf(err, errlen, "clone: cloneSpec.targetName is missing");
		return -EINVAL;
	}
	spec = clone_spec(md, src, uid, sizeof(uid));
	if (!spec) {
		snprintf(err, errlen, "clone: vm %s does not exist", src);
		return -ENOENT;
	}
	if (json_object_deep_copy(spec, &copy, NULL) != 0) {
		json_object_put(spec);
		return -ENOMEM;
	}
	rc = md_add_vm(md, dst, spec, clone_owner(md, o, src), m, err, errlen);
	if (rc == -EEXIST)
		snprintf(err, errlen, "clone: vm %s already exists", dst);
	if (rc < 0)
		goto out;
	ops_progress_init(&bp, &pc, md, CORE_KIND_OPERATION, op, run);
	target_uid(md, dst, uid, sizeof(uid));
	rc = be_clone(md->be, src, dst, md->ns[0] ? md->ns : "default", uid,
		      copy, linked, &bp, err, errlen);
	free(pc);
	if (rc < 0) {
		md_drop_vm(md, dst);
		goto out;
	}
	md_release(md, dst, m);
	md_refresh(md, dst);
	md_event(md, dst, "Cloned", linked ? "linked clone" : "full clone");
	if (start)
		rc = md_start_marked(md, dst, err, errlen);
out:
	json_object_put(copy);
	return rc;
}

/* The data channel goes to the same host as the control one. */
static void data_uri(const char *uri, char *data, size_t dlen)
{
	const char *host = strstr(uri, "://"), *end;

	if (host && host[3] && host[3] != '/') {
		host += 3;
		end = host + strcspn(host, ":/");
		snprintf(data, dlen, "tcp://%.*s", (int)(end - host), host);
	} else {
		/* A local socket: the peer is on this machine. */
		snprintf(data, dlen, "tcp://127.0.0.1");
	}
}

/* Where a node's libvirt takes migrations: in a cluster, what its Lease
 * publishes (--migration-uri) while it is alive; standalone, --peer. */
static int peer_uri(struct mountd *md, const char *node, char *uri,
		    size_t len, char *data, size_t dlen)
{
	struct md_member mb;
	int rc = -ENOENT;

	/* A node that came up since the last look at the Leases. */
	if (md->sync && md_member_get(md, node, &mb) < 0)
		md_members_refresh(md);
	if (md->sync && md_member_get(md, node, &mb) == 0 && mb.alive &&
	    mb.uri[0]) {
		snprintf(uri, len, "%s", mb.uri);
		rc = 0;
	}
	for (size_t i = 0; !md->sync && i < md->npeers && rc; i++) {
		if (strcmp(md->peers[i].node, node))
			continue;
		snprintf(uri, len, "%s", md->peers[i].uri);
		rc = 0;
	}
	if (rc == 0)
		data_uri(uri, data, dlen);
	return rc;
}

static void no_peer(struct mountd *md, const char *node, char *err,
		    size_t errlen)
{
	if (md->sync)
		snprintf(err, errlen, "migrate: node %s does not exist, is not "
			 "alive or takes no migrations (its Lease publishes no "
			 "--migration-uri)", node);
	else
		snprintf(err, errlen, "migrate: node %s does not exist (or has "
			 "no migration URI: --peer %s=URI)", node, node);
}

/* In a cluster the target publishes its folders: local disks are copied
 * into them.  0 with none published (an older node: same paths). */
static int dest_dirs(struct mountd *md, const char *node,
		     struct md_dest_dirs *d, char *err, size_t errlen)
{
	struct md_member m;
	int rc;

	memset(d, 0, sizeof(*d));
	if (!md->sync || md_member_get(md, node, &m) < 0)
		return 0;
	rc = md_dest_dirs_parse(m.dirs, d, err, errlen);
	if (rc == -EINVAL)
		snprintf(err + strlen(err), errlen - strlen(err), " (the Lease "
			 "of node %s)", node);
	return rc == -ENOENT ? 0 : rc;
}

int md_run_migrate(struct mountd *md, const struct md_job *j, char *err,
		   size_t errlen)
{
	struct md_dest_dirs dd;
	const char *op = j->op;
	json_object *o = j->obj;
	struct md_run *run = j->run;
	const char *vm = get_str(o, "spec.vmRef.name");
	const char *node = get_str(o, "spec.migrateSpec.targetNode");
	const char *bw = get_str(o, "spec.migrateSpec.bandwidth");
	struct be_migrate_opts mo = { 0 };
	struct progress_ctx *pc = NULL;
	struct be_progress bp;
	char uri[512], data[300];
	int rc;

	if (!node || !strcmp(node, md->node)) {
		snprintf(err, errlen, "migrate: vm %s already runs on node %s",
			 vm, md->node);
		return -EINVAL;
	}
	if (peer_uri(md, node, uri, sizeof(uri), data, sizeof(data)) < 0) {
		no_peer(md, node, err, errlen);
		return -ENOENT;
	}
	if (bw && core_rate_parse(bw, &mo.bandwidth, err, errlen) < 0)
		return -EINVAL;
	mo.dest_uri = uri;
	mo.migrate_uri = data[0] ? data : NULL;
	mo.dest_node = node;
	mo.offline = get_bool(o, "spec.migrateSpec.offline");
	/* The CRD defaults live to true; an object without it is live too. */
	mo.nonlive = core_json_path(o, "spec.migrateSpec.live") &&
		     !get_bool(o, "spec.migrateSpec.live");
	mo.autoconverge = get_bool(o, "spec.migrateSpec.autoConverge");
	mo.postcopy = get_bool(o, "spec.migrateSpec.postCopy");
	mo.copy_storage = md->cfg.copy_storage;
	rc = dest_dirs(md, node, &dd, err, errlen);
	if (rc < 0) {
		md_dest_dirs_free(&dd);
		return rc;
	}
	if (dd.j) {
		mo.dest_dirs = dd.v;
		mo.ndest_dirs = dd.n;
	}
	ops_progress_init(&bp, &pc, md, CORE_KIND_OPERATION, op, run);
	md_log(LOG_INFO_, "migrating vm %s to node %s (%s)", vm, node,
	       mo.offline ? "offline" : mo.nonlive ?
	       "not live: the guest is paused while its memory moves" : "live");
	md_event(md, vm, "Migrating", node);
	md_refresh(md, vm);     /* phase Migrating */
	rc = be_migrate(md->be, vm, &mo, &bp, err, errlen);
	md_dest_dirs_free(&dd);
	free(pc);
	if (rc < 0) {
		md_refresh(md, vm);
		return rc;
	}
	/* The guest runs there now; the VM is that node's. */
	md_event(md, vm, "Migrated", node);
	md_migrated(md, vm, node);
	return 0;
}

/* Put the new size into the spec (and the API), so the next define and
 * every reader agree with the domain. */
static int resize_spec(struct mountd *md, const char *vm, int cpus,
		       uint64_t mem, char *err, size_t errlen)
{
	struct core_vm *v;
	json_object *j = NULL, *old = NULL;
	char q[32];
	int rc = -ENOENT;

	core_model_wrlock(md->m);
	v = core_model_find(md->m, vm);
	if (v && json_object_deep_copy(v->spec_json, &old, NULL) == 0 &&
	    json_object_deep_copy(v->spec_json, &j, NULL) == 0) {
		if (cpus)
			core_spec_set_int(j, "cpus", cpus);
		if (mem) {
			core_qty_format(mem, q, sizeof(q));
			core_spec_set_string(j, "memory", q);
		}
		rc = core_model_set_spec(md->m, v, json_object_get(j), err,
					 errlen);
		if (rc < 0)
			json_object_put(j);
		else
			md_x(v)->defined_gen = v->spec_gen; /* be_resize did it */
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	if (rc == 0)
		rc = md_cluster_spec(md, vm, old, j, err, errlen);
	json_object_put(old);
	json_object_put(j);
	return rc < 0 ? rc : md_persist(md, vm);
}

static bool active(struct mountd *md, const char *vm)
{
	struct md_vm v;

	return md_vm_get(md, vm, &v) == 0 && ((1u << v.phase) & MD_ACTIVE);
}

static int restart_required_locked(struct mountd *md, struct core_vm *v,
				   void *arg)
{
	bool on = *(bool *)arg;

	core_status_cond(&v->st, CORE_COND_RESTART_REQUIRED, on,
			 on ? "ResizePending" : "Applied",
			 on ? "the new size applies at the next start" : "",
			 time(NULL));
	core_model_status_changed(md->m, v);
	return 0;
}

static void restart_required(struct mountd *md, const char *vm, bool on)
{
	md_vm_edit(md, vm, restart_required_locked, &on);
}

int md_run_resize(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	json_object *o = j->obj;
	const char *vm = get_str(o, "spec.vmRef.name");
	const char *mq = get_str(o, "spec.resizeSpec.memory");
	int cpus = json_object_get_int(core_json_path(o, "spec.resizeSpec.cpus"));
	uint64_t mem = 0;
	bool live = false;
	int rc;

	if (mq && core_qty_parse(mq, &mem, err, errlen) < 0)
		return -EINVAL;
	if (!cpus && !mem) {
		snprintf(err, errlen, "resize: give cpus=N and/or memory=Q");
		return -EINVAL;
	}
	rc = be_resize(md->be, vm, cpus, mem, &live, err, errlen);
	if (rc < 0)
		return rc;
	rc = resize_spec(md, vm, cpus, mem, err, errlen);
	md_refresh(md, vm);
	restart_required(md, vm, !live && active(md, vm));
	md_event(md, vm, "Resized", live ? "live" : "in the definition");
	return rc;
}

int md_run_revert(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	json_object *o = j->obj;
	const char *vm = get_str(o, "spec.vmRef.name");
	const char *snap = get_str(o, "spec.snapshotSpec.snapshotName");
	int rc;

	if (!snap) {
		snprintf(err, errlen, "restore: snapshotSpec.snapshotName is missing");
		return -EINVAL;
	}
	rc = be_snapshot_revert(md->be, vm, snap, err, errlen);
	if (rc < 0)
		return rc;
	md_refresh(md, vm);
	md_set_running(md, vm, active(md, vm));
	md_event(md, vm, "Reverted", snap);
	return 0;
}

/* Refusals a ctl write gets before any object is made, so that bad input
 * changes nothing (kubectl's objects meet the same checks when they run,
 * and end Failed). */
int ops_precheck(struct mountd *md, const char *vm, const struct core_ctl *msg,
		 char *err, size_t errlen)
{
	struct be_snap_info si;
	char uri[512], data[300];
	uint64_t maxmem = 0;
	int maxcpus = 0, rc = 0;
	struct md_vm v;

	switch (msg->verb) {
	case CORE_V_CLONE:
		if (md_vm_get(md, msg->arg, &v) == 0) {
			snprintf(err, errlen, "clone: vm %s already exists", msg->arg);
			rc = -EEXIST;
		}
		break;
	case CORE_V_MIGRATE:
		if (!strcmp(msg->arg, md->node)) {
			snprintf(err, errlen, "migrate: vm %s already runs on node %s",
				 vm, md->node);
			rc = -EINVAL;
		} else if (peer_uri(md, msg->arg, uri, sizeof(uri), data,
				    sizeof(data)) < 0) {
			no_peer(md, msg->arg, err, errlen);
			rc = -ENOENT;
		}
		break;
	case CORE_V_REVERT:
		rc = be_snapshot_info(md->be, vm, msg->arg, &si, err, errlen);
		break;
	case CORE_V_RESIZE:
		rc = be_limits(md->be, vm, &maxcpus, &maxmem, err, errlen);
		if (rc == 0 && msg->cpus > maxcpus) {
			snprintf(err, errlen, "resize: cpus=%d: the maximum of this VM "
				 "is %d", msg->cpus, maxcpus);
			rc = -EINVAL;
		} else if (rc == 0 && msg->memory > maxmem) {
			char q[32];

			core_qty_format(maxmem, q, sizeof(q));
			snprintf(err, errlen, "resize: memory: the maximum of this VM "
				 "is %s", q);
			rc = -EINVAL;
		}
		break;
	default:
		break;
	}
	return rc;
}
