/* A write of a VM's spec file: the whole document replaces the spec.  The
 * new spec is published first (in a cluster the API server may still
 * refuse it), then applied; a failure later puts the old one back
 * everywhere, so a refused write changes nothing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mountd/priv.h"

static int put_spec_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	json_object *old = arg;
	char err[CORE_ERR_MAX];

	if (core_model_set_spec(md->m, vm, json_object_get(old), err,
				sizeof(err)) < 0)
		json_object_put(old);
	return 0;
}

void md_model_spec_put(struct mountd *md, const char *name, json_object *old)
{
	md_vm_edit(md, name, put_spec_locked, old);
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
		rc = md_converge(md, name, err, errlen);
	if (rc < 0)
		restore_spec(md, name, old, new, published);
	return rc;
}

static bool same_class(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* A disk that exists keeps its storage class: another one would make a
 * new, empty volume and leave the data behind. */
static int classes_kept(struct mountd *md, const char *name,
			const struct core_spec *s, char *err, size_t errlen)
{
	const struct core_spec *old;
	struct core_vm *vm;
	int rc = 0;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	old = vm ? &vm->spec : NULL;
	for (size_t i = 0; old && i < s->ndisks && rc == 0; i++)
		for (size_t j = 0; j < old->ndisks && rc == 0; j++)
			if (!strcmp(s->disks[i].name, old->disks[j].name) &&
			    !same_class(s->disks[i].storage_class,
					old->disks[j].storage_class)) {
				snprintf(err, errlen, "spec.disks[%zu].storageClass: "
					 "disk %s exists on class %s; it keeps it "
					 "(another would start empty)", i,
					 s->disks[i].name,
					 old->disks[j].storage_class ?
					 old->disks[j].storage_class : "(none)");
				rc = -EINVAL;
			}
	core_model_unlock(md->m);
	return rc;
}

/* A spec this node cannot run (a kernelBoot it refuses, a storage class
 * it lacks, a disk moved to another class) is refused whole, before the
 * domain is touched. */
static int node_allows(struct mountd *md, const char *name, json_object *spec,
		       char *err, size_t errlen)
{
	struct core_spec s;
	int rc = core_spec_from_json(spec, &s, err, errlen);

	if (rc == 0)
		rc = be_boot_check(md->be, &s, err, errlen);
	if (rc == 0)
		rc = md_classes_check(md, &s, err, errlen);
	if (rc == 0)
		rc = classes_kept(md, name, &s, err, errlen);
	core_spec_free(&s);
	return rc;
}

struct swap {
	json_object *spec, *old;
	char *err;
	size_t errlen;
};

/* The model takes spec (consumed on success); the old one comes back. */
static int swap_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct swap *s = arg;
	int rc;

	if (json_object_deep_copy(vm->spec_json, &s->old, NULL) < 0)
		return -ENOMEM;
	rc = core_model_set_spec(md->m, vm, s->spec, s->err, s->errlen);
	if (rc == 0)
		s->spec = NULL;
	return rc;
}

int md_spec_write(struct mountd *md, const char *name, json_object *spec,
		  char *err, size_t errlen)
{
	struct md_mark m = md_mark_of(MD_HOLD_SPEC);
	struct swap s = { .spec = spec, .err = err, .errlen = errlen };
	char owner[CORE_NAME_MAX + 1];
	json_object *new;
	int rc;

	/* Only the owner defines, starts or stops the domain. */
	if (!md_owned(md, name, owner, sizeof(owner)))
		return md_cluster_spec_forward(md, name, spec, owner, err,
					       errlen);
	new = json_object_get(spec);
	rc = node_allows(md, name, spec, err, errlen);
	if (rc == 0)
		rc = md_claim(md, name, m, NULL, err, errlen);
	if (rc < 0)
		goto out;
	rc = md_vm_edit(md, name, swap_locked, &s);
	if (rc == 0)
		rc = apply_spec(md, name, s.old, new, err, errlen);
	if (rc == 0)
		md_event(md, name, "SpecChanged", "spec replaced");
	md_release(md, name, m);
	md_nodes_flush(md);
out:
	json_object_put(s.spec);
	json_object_put(new);
	json_object_put(s.old);
	return rc;
}
