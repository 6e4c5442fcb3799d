/* create NAME [cpus=N] [memory=Q] [disk=Q] [template=T] [running=B] on
 * vms/ctl (and the dashboard's create, and mkdir): the spec is the plain
 * defaults, or a template's, with what the message says on top.  The VM
 * appears marked "create" and is defined before the write returns. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

static json_object *create_spec(const struct core_ctl *msg)
{
	json_object *spec = core_spec_default(), *disks, *d0;
	char q[32];

	if (msg->cpus)
		core_spec_set_int(spec, "cpus", msg->cpus);
	if (msg->memory) {
		core_qty_format(msg->memory, q, sizeof(q));
		core_spec_set_string(spec, "memory", q);
	}
	if (msg->disk && json_object_object_get_ex(spec, "disks", &disks) &&
	    (d0 = json_object_array_get_idx(disks, 0))) {
		core_qty_format(msg->disk, q, sizeof(q));
		core_spec_set_string(d0, "size", q);
	}
	return spec;
}

/* create template=T: the template's defaults, then what the message
 * says; the disk follows the template's size unless disk= was given. */
static int template_spec(struct mountd *md, const struct core_ctl *msg,
			 json_object **spec, char *err, size_t errlen)
{
	json_object *s = json_object_new_object(), *given = *spec, *d;
	char q[32];
	int rc;

	json_object_object_add(s, "running",
			       json_object_new_boolean(msg->running == 1));
	if (msg->cpus)
		core_spec_set_int(s, "cpus", msg->cpus);
	if (msg->memory) {
		core_qty_format(msg->memory, q, sizeof(q));
		core_spec_set_string(s, "memory", q);
	}
	if (msg->disk && json_object_object_get_ex(given, "disks", &d))
		json_object_object_add(s, "disks", json_object_get(d));
	rc = md_template_apply(md, msg->template_name, s, err, errlen);
	/* What neither gave comes from the plain defaults. */
	json_object_object_foreach(given, k, v)
		if (!json_object_object_get_ex(s, k, NULL))
			json_object_object_add(s, k, json_object_get(v));
	json_object_put(given);
	*spec = s;
	return rc;
}

int md_create_spec(struct mountd *md, const struct core_ctl *msg,
		   json_object **spec, char *err, size_t errlen)
{
	int rc = 0;

	*spec = create_spec(msg);
	if (msg->template_name[0])
		rc = template_spec(md, msg, spec, err, errlen);
	if (rc < 0) {
		json_object_put(*spec);
		*spec = NULL;
	}
	return rc;
}

static int add_vm(struct mountd *md, const char *name, json_object *spec,
		  uid_t owner, struct md_mark m, char *err, size_t errlen)
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
		md_mark_set(md, vm, m);
		core_model_event(md->m, vm, "Created", "on node %s", md->node);
	}
	core_model_unlock(md->m);
	core_model_flush(md->m);
	return rc;
}

/* The object goes too: a VM this node made and could not finish. */
void md_drop_vm(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];

	md_cluster_delete(md, name, err, sizeof(err));
	md_forget(md, name);
}

int md_run_create(struct mountd *md, const struct md_job *j, char *err,
		  size_t errlen)
{
	const struct core_ctl *msg = j->msg;
	struct md_mark m = md_mark_verb(CORE_V_CREATE, false);
	const char *name = msg->arg;
	json_object *spec;
	int rc;

	if (!md->sync && md_cordoned(md)) {
		snprintf(err, errlen, "create: node %s is cordoned (echo "
			 "uncordon > nodes/%s/ctl)", md->node, md->node);
		return -EBUSY;
	}
	rc = md_create_spec(md, msg, &spec, err, errlen);
	if (rc < 0)
		return rc;
	if (md->sync) {
		/* On failure the name is someone else's: leave it alone. */
		rc = md_cluster_create(md, name, spec, msg->owner, m, err, errlen);
		json_object_put(spec);
		spec = NULL;
		if (rc == 1)
			return 0;       /* it runs on the node that claimed it */
	} else {
		rc = add_vm(md, name, spec, msg->owner, m, err, errlen);
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
		md_drop_vm(md, name);
		return rc;
	}
	md_release(md, name, m);
	md_refresh(md, name);
	if (msg->template_name[0])
		md_template_usage_tick(md);
	md_log(LOG_INFO_, "created vm %s", name);
	if (msg->running != 1)
		return 0;
	return md_start_marked(md, name, err, errlen);
}

/* A VM whose domain an operation makes (a clone): in the model, the
 * store and, in a cluster, the API, marked busy with m. */
int md_add_vm(struct mountd *md, const char *name, json_object *spec,
	      uid_t owner, struct md_mark m, char *err, size_t errlen)
{
	int rc;

	if (md->sync) {
		rc = md_cluster_create(md, name, spec, owner, m, err, errlen);
		json_object_put(spec);
		if (rc == 1) {
			snprintf(err, errlen, "%s: another node claimed %s",
				 md_mark_name(m), name);
			return -EBUSY;
		}
	} else {
		rc = add_vm(md, name, spec, owner, m, err, errlen);
		if (rc < 0)
			json_object_put(spec);
	}
	return rc < 0 ? rc : md_persist(md, name);
}
