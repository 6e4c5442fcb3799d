/* Operations, snapshots and templates in the JSON API: the model's own
 * objects (VMOperation, VMSnapshot, VMTemplate), copied under the read
 * lock since the daemon edits their status in place under the write
 * lock, and serialized after.  Deleting a snapshot goes through the
 * daemon's obj callback, as rmdir of vms/VM/snapshots/SNAP does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/priv.h"

struct collect {
	struct web *w;
	const struct core_cred *who;
	json_object *items;
	const char *vm;         /* only this VM's; NULL: all */
};

/* As in the tree: templates are every member's to see, a VM's
 * operations and snapshots its owner's (root's when the VM is gone). */
static bool may_read(struct collect *c, const struct core_obj *o)
{
	struct core_vm *vm;

	if (o->kind == CORE_KIND_TEMPLATE)
		return web_may(c->w, c->who, 0, CORE_R_SEE) == 0;
	vm = o->vm[0] ? core_model_find(c->w->cfg.model, o->vm) : NULL;
	return web_may(c->w, c->who, vm ? vm->owner : 0, CORE_R_READ) == 0;
}

static void strip_secrets(json_object *tmpl)
{
	json_object *spec = NULL, *sub = NULL;

	if (!json_object_object_get_ex(tmpl, "spec", &spec))
		return;
	if (json_object_object_get_ex(spec, "image", &sub))
		json_object_object_del(sub, "source");
	if (json_object_object_get_ex(spec, "defaultSpec", &sub))
		json_object_object_del(sub, "cloudInit");
}

static int add_obj(struct core_obj *o, void *arg)
{
	struct collect *c = arg;
	json_object *copy = NULL;

	if ((c->vm && strcmp(o->vm, c->vm) != 0) || !may_read(c, o))
		return 0;
	if (json_object_deep_copy(o->obj, &copy, NULL) < 0)
		return 0;
	/* A template's spec file is root's in the tree: its image source
	 * may carry user:password@ and its defaults cloud-init.  Members
	 * get the rest (names, OS, default sizes) for the page. */
	if (o->kind == CORE_KIND_TEMPLATE &&
	    web_may(c->w, c->who, 0, CORE_R_ADMIN) < 0)
		strip_secrets(copy);
	json_object_array_add(c->items, copy);
	return 0;
}

static bool op_active(json_object *op, const char *vm)
{
	const char *ref = json_object_get_string(core_json_path(op, "spec.vmRef.name"));
	const char *ph = json_object_get_string(core_json_path(op, "status.phase"));

	return ref && !strcmp(ref, vm) &&
	       (!ph || !strcmp(ph, "Pending") || !strcmp(ph, "Running"));
}

/* A start, stop or other short action in flight is not a VMOperation,
 * only the VM's status.operation; the page shows it among the
 * operations, so it is listed as one (no uid, phase Running) unless a
 * VMOperation of that VM is running already. */
static int add_inflight(struct core_vm *vm, void *arg)
{
	struct collect *c = arg;
	json_object *items = c->items, *o, *md, *spec, *ref, *st;
	char name[CORE_NAME_MAX + 40];
	size_t n = json_object_array_length(items);

	if (!vm->st.operation[0] ||
	    web_may(c->w, c->who, vm->owner, CORE_R_READ) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (op_active(json_object_array_get_idx(items, i), vm->name))
			return 0;
	o = json_object_new_object();
	md = json_object_new_object();
	spec = json_object_new_object();
	ref = json_object_new_object();
	st = json_object_new_object();
	snprintf(name, sizeof(name), "%s-%s", vm->name, vm->st.operation);
	for (char *p = name; *p; p++)
		if (*p == ' ')
			*p = '-';
	json_object_object_add(md, "name", json_object_new_string(name));
	json_object_object_add(md, "namespace", json_object_new_string(vm->ns));
	json_object_object_add(ref, "name", json_object_new_string(vm->name));
	json_object_object_add(spec, "vmRef", ref);
	json_object_object_add(spec, "operation",
			       json_object_new_string(vm->st.operation));
	json_object_object_add(st, "phase", json_object_new_string("Running"));
	json_object_object_add(o, "kind", json_object_new_string("VMOperation"));
	json_object_object_add(o, "metadata", md);
	json_object_object_add(o, "spec", spec);
	json_object_object_add(o, "status", st);
	json_object_array_add(items, o);
	return 0;
}

unsigned web_objects_get(struct web *w, const struct web_route *r,
			 const struct core_cred *who, char **body)
{
	struct collect c = { .w = w, .who = who,
			     .items = json_object_new_array() };
	enum core_kind kind = r->kind == WEB_R_OPERATIONS ? CORE_KIND_OPERATION :
			      r->kind == WEB_R_SNAPSHOTS ? CORE_KIND_SNAPSHOT :
			      CORE_KIND_TEMPLATE;
	char lname[48];

	if (kind == CORE_KIND_SNAPSHOT && r->vm[0])
		c.vm = r->vm;
	core_model_rdlock(w->cfg.model);
	core_model_obj_each(w->cfg.model, kind, add_obj, &c);
	if (kind == CORE_KIND_OPERATION)
		core_model_each(w->cfg.model, add_inflight, &c);
	core_model_unlock(w->cfg.model);
	snprintf(lname, sizeof(lname), "%sList", core_kind_name(kind));
	*body = web_json_text(web_json_list(lname, c.items));
	return 200;
}

/* The snapshot's VM, when it exists in the route's namespace, and its
 * owner (root's when the VM is gone). */
static int snapshot_vm(struct web *w, const struct web_route *r, char *vm,
		       size_t len, uid_t *owner)
{
	struct core_obj *o;
	struct core_vm *v;
	const char *ns;
	int rc = -ENOENT;

	core_model_rdlock(w->cfg.model);
	o = core_model_obj_find(w->cfg.model, CORE_KIND_SNAPSHOT, r->name);
	if (o) {
		ns = core_obj_str(o, "metadata.namespace");
		if (!strcmp(ns && *ns ? ns : "default", r->ns) && o->vm[0]) {
			snprintf(vm, len, "%s", o->vm);
			v = core_model_find(w->cfg.model, o->vm);
			*owner = v ? v->owner : 0;
			rc = 0;
		}
	}
	core_model_unlock(w->cfg.model);
	return rc;
}

/* POST /api/k8s/snapshots/NS/NAME/delete (the body is not read). */
unsigned web_snapshot_delete(struct web *w, const struct web_route *r,
			     const struct core_cred *who, char **body)
{
	char vm[CORE_NAME_MAX + 1], err[CORE_ERR_MAX] = "";
	uid_t owner = 0;
	json_object *o;
	int rc;

	/* A snapshot its requester may not read does not exist for them. */
	if (snapshot_vm(w, r, vm, sizeof(vm), &owner) < 0 ||
	    web_may(w, who, owner, CORE_R_READ) < 0) {
		snprintf(err, sizeof(err), "snapshot %s/%s does not exist",
			 r->ns, r->name);
		*body = web_json_error(err);
		return 404;
	}
	if (web_may(w, who, owner, CORE_R_CONTROL) < 0) {
		*body = web_json_error("permission denied: only the VM's owner "
				       "and root delete its snapshots");
		return 403;
	}
	rc = w->cfg.obj(w->cfg.arg, CORE_KIND_SNAPSHOT, vm, r->name,
			"delete", NULL, err, sizeof(err));
	if (rc < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	core_model_record(w->cfg.model, vm, rc, err);
	if (rc < 0) {
		*body = web_json_error(err);
		return web_http_status(rc);
	}
	o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	*body = web_json_text(o);
	return 200;
}
