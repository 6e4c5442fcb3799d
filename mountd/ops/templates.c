/* Templates: VMTemplate objects whose image is imported into this node's
 * pool as the volume "tmpl.NAME.qcow2" (a dot cannot occur in a VM name,
 * so it never meets a VM's "<vm>_<disk>.qcow2").  A VM made from a
 * template gets its defaults and a first disk backed by that volume. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountd/ops/ops.h"

static void vol_name(const char *tmpl, char *out, size_t len)
{
	snprintf(out, len, "tmpl.%s.qcow2", tmpl);
}

struct tmpl_src {
	char source[2048];
	char checksum[300];
	bool has_checksum;
};

static int read_src(struct mountd *md, const char *name, struct tmpl_src *t,
		    char *err, size_t errlen)
{
	struct core_obj *o;
	const char *src = NULL, *sum = NULL;
	int rc = -ENOENT;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_TEMPLATE, name);
	if (o) {
		src = core_obj_str(o, "spec.image.source");
		sum = core_obj_str(o, "spec.image.checksum");
		snprintf(t->source, sizeof(t->source), "%s", src ? src : "");
		snprintf(t->checksum, sizeof(t->checksum), "%s", sum ? sum : "");
		t->has_checksum = sum && *sum;
		rc = 0;
	}
	core_model_unlock(md->m);
	if (rc < 0)
		snprintf(err, errlen, "template %s does not exist", name);
	else if (!t->source[0]) {
		snprintf(err, errlen, "template %s: spec.image.source is missing",
			 name);
		rc = -EINVAL;
	}
	return rc;
}

static void set_ready(struct mountd *md, const char *name, bool ok,
		      const char *msg, uint64_t size)
{
	char q[32];

	core_qty_format(size, q, sizeof(q));
	ops_status(md, CORE_KIND_TEMPLATE, name, "phase",
		   ops_jstr(ok ? "Ready" : "Failed"), "message", ops_jstr(msg), NULL);
	if (ok)
		ops_status(md, CORE_KIND_TEMPLATE, name, "size", ops_jstr(q),
			   "progress", json_object_new_int(100), NULL);
	ops_condition(md, CORE_KIND_TEMPLATE, name, "Ready", ok,
		      ok ? "Imported" : "ImportFailed", msg);
	ops_publish(md, CORE_KIND_TEMPLATE, name);
}

struct waiting {
	struct mountd *md;
	const char *tmpl;
};

/* md_queue takes the queue's lock, never the model's: fine under it. */
static int collect(struct core_vm *vm, void *arg)
{
	struct waiting *w = arg;

	if (vm->spec.template_ref && !strcmp(vm->spec.template_ref, w->tmpl))
		md_queue(w->md, vm->name);
	return 0;
}

/* VMs that waited for this node's copy of the image converge now, every
 * one of them. */
static void wake_users(struct mountd *md, const char *tmpl)
{
	struct waiting w = { md, tmpl };

	core_model_rdlock(md->m);
	core_model_each(md->m, collect, &w);
	core_model_unlock(md->m);
}

/* Its own run, so that "cancel" on the template's ctl
 * stops it; the import policy's --import-timeout is its clock. */
static int import_run(struct mountd *md, const char *name,
		      const struct tmpl_src *t, const char *vol, uint64_t *size,
		      char *err, size_t errlen)
{
	struct md_run *run = ops_run_begin(md, name, "", 86400);
	struct progress_ctx *pc = NULL;
	struct be_progress bp;
	int rc;

	if (!run) {
		snprintf(err, errlen, "import: out of memory");
		return -ENOMEM;
	}
	ops_progress_init(&bp, &pc, md, CORE_KIND_TEMPLATE, name, run);
	rc = be_image_import(md->be, t->source,
			     t->has_checksum ? t->checksum : NULL, vol, size,
			     &bp, err, errlen);
	free(pc);
	ops_run_end(md, run);
	return rc;
}

/* One import of a template at a time: a second would share (and
 * truncate) the first's files and delete the volume it just made. */
static int claim(struct mountd *md, const char *name, char *err,
		 size_t errlen)
{
	bool running = false, full;

	pthread_mutex_lock(&md->runs_lock);
	for (size_t i = 0; i < md->nimporting; i++)
		running |= !strcmp(md->importing[i], name);
	full = md->nimporting == MD_IMPORTING_MAX;
	if (!running && !full)
		snprintf(md->importing[md->nimporting++], CORE_NAME_MAX + 1,
			 "%s", name);
	pthread_mutex_unlock(&md->runs_lock);
	if (running)
		snprintf(err, errlen, "template %s: an import is already "
			 "running", name);
	else if (full)
		snprintf(err, errlen, "template %s: %d imports are running on "
			 "this node; try again when one is done", name,
			 MD_IMPORTING_MAX);
	return running || full ? -EBUSY : 0;
}

static void unclaim(struct mountd *md, const char *name)
{
	pthread_mutex_lock(&md->runs_lock);
	for (size_t i = 0; i < md->nimporting; i++)
		if (!strcmp(md->importing[i], name)) {
			memcpy(md->importing[i],
			       md->importing[--md->nimporting],
			       sizeof(md->importing[i]));
			break;
		}
	pthread_mutex_unlock(&md->runs_lock);
}

static int import_claimed(struct mountd *md, const char *name, char *err,
			  size_t errlen);

int ops_template_import(struct mountd *md, const char *name, char *err,
			size_t errlen)
{
	int rc = claim(md, name, err, errlen);

	if (rc < 0)
		return rc;
	rc = import_claimed(md, name, err, errlen);
	unclaim(md, name);
	return rc;
}

static int import_claimed(struct mountd *md, const char *name, char *err,
			  size_t errlen)
{
	char vol[CORE_NAME_MAX + 16], msg[CORE_ERR_MAX + 2400], shown[2048];
	struct tmpl_src t;
	uint64_t size = 0;
	int rc = read_src(md, name, &t, err, errlen);

	if (rc < 0) {
		if (rc != -ENOENT)
			set_ready(md, name, false, err, 0);
		return rc;
	}
	vol_name(name, vol, sizeof(vol));
	/* user:password@ of a source stays in the spec, never in status. */
	be_url_redact(t.source, shown, sizeof(shown));
	ops_status(md, CORE_KIND_TEMPLATE, name, "phase", ops_jstr("Importing"),
		   "progress", json_object_new_int(0), "message",
		   ops_jstr(shown), NULL);
	ops_publish(md, CORE_KIND_TEMPLATE, name);
	/* A new import replaces the old image; VMs already made from it
	 * keep it (be_image_delete refuses while they use it). */
	if (be_image_delete(md->be, vol, err, errlen) == -EBUSY) {
		set_ready(md, name, false, err, 0);
		return -EBUSY;
	}
	rc = import_run(md, name, &t, vol, &size, err, errlen);
	if (rc < 0) {
		set_ready(md, name, false, err, 0);
		return rc;
	}
	snprintf(msg, sizeof(msg), "imported from %s%s", shown,
		 t.has_checksum ? " (checksum verified)" : "");
	set_ready(md, name, true, msg, size);
	md_log(LOG_INFO_, "template %s: %s", name, msg);
	wake_users(md, name);
	return 0;
}

struct users {
	const char *tmpl;
	char list[CORE_ERR_MAX / 2];
	int n;
};

static int count_user(struct core_vm *vm, void *arg)
{
	struct users *u = arg;
	size_t l = strlen(u->list);

	if (!vm->spec.template_ref || strcmp(vm->spec.template_ref, u->tmpl))
		return 0;
	u->n++;
	if (l + strlen(vm->name) + 2 < sizeof(u->list))
		snprintf(u->list + l, sizeof(u->list) - l, "%s%s",
			 l ? ", " : "", vm->name);
	return 0;
}

static int users_of(struct mountd *md, const char *tmpl, struct users *u)
{
	memset(u, 0, sizeof(*u));
	u->tmpl = tmpl;
	core_model_rdlock(md->m);
	core_model_each(md->m, count_user, u);
	core_model_unlock(md->m);
	return u->n;
}

int ops_template_delete(struct mountd *md, const char *name, char *err,
			size_t errlen)
{
	char vol[CORE_NAME_MAX + 16];
	struct users u;
	int rc;

	if (users_of(md, name, &u) > 0) {
		snprintf(err, errlen, "template %s is in use by %d vm%s: %s", name,
			 u.n, u.n == 1 ? "" : "s", u.list);
		return -EBUSY;
	}
	vol_name(name, vol, sizeof(vol));
	rc = be_image_delete(md->be, vol, err, errlen);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	ops_delete(md, CORE_KIND_TEMPLATE, name);
	md_log(LOG_INFO_, "deleted template %s", name);
	return 0;
}

/* Templates whose usageCount is behind; as many as there are. */
struct usage {
	struct mountd *md;
	struct stale_use {
		char name[CORE_NAME_MAX + 1];
		int count;
	} *v;
	size_t n, cap;
};

static int stale_usage(struct core_obj *o, void *arg)
{
	struct usage *us = arg;
	struct stale_use *v;
	struct users u;

	users_of(us->md, o->name, &u);      /* read lock is recursive */
	if (core_obj_int(o, "status.usageCount", -1) == u.n)
		return 0;
	if (us->n == us->cap) {
		v = realloc(us->v, (us->cap ? us->cap * 2 : 16) * sizeof(*v));
		if (!v)
			return 1;       /* the next tick counts the rest */
		us->v = v;
		us->cap = us->cap ? us->cap * 2 : 16;
	}
	snprintf(us->v[us->n].name, sizeof(us->v[0].name), "%s", o->name);
	us->v[us->n++].count = u.n;
	return 0;
}

/* usageCount follows the VMs that name a template. */
void ops_template_usage(struct mountd *md)
{
	struct usage us = { .md = md };

	core_model_rdlock(md->m);
	core_model_obj_each(md->m, CORE_KIND_TEMPLATE, stale_usage, &us);
	core_model_unlock(md->m);
	for (size_t i = 0; i < us.n; i++) {
		ops_status(md, CORE_KIND_TEMPLATE, us.v[i].name, "usageCount",
			   json_object_new_int(us.v[i].count), NULL);
		ops_publish(md, CORE_KIND_TEMPLATE, us.v[i].name);
	}
	free(us.v);
}

/* Fill what the VM's spec leaves out from the template's defaultSpec,
 * and name the template in spec.image.templateRef. */
int md_template_apply(struct mountd *md, const char *tmpl, json_object *spec,
		      char *err, size_t errlen)
{
	static const char *const keys[] = { "cpus", "memory", "disks",
					    "networks", NULL };
	struct core_obj *o;
	json_object *def, *v, *img, *ref, *copy;
	int rc = 0;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_TEMPLATE, tmpl);
	if (!o) {
		snprintf(err, errlen, "template %s does not exist", tmpl);
		rc = -ENOENT;
	} else if ((def = core_json_path(o->obj, "spec.defaultSpec"))) {
		for (int i = 0; keys[i]; i++) {
			copy = NULL;    /* deep_copy wants an empty target */
			if (json_object_object_get_ex(def, keys[i], &v) &&
			    !json_object_object_get_ex(spec, keys[i], NULL) &&
			    json_object_deep_copy(v, &copy, NULL) == 0)
				json_object_object_add(spec, keys[i], copy);
		}
	}
	core_model_unlock(md->m);
	if (rc < 0)
		return rc;
	if (!json_object_object_get_ex(spec, "image", &img)) {
		img = json_object_new_object();
		json_object_object_add(spec, "image", img);
	}
	ref = json_object_new_object();
	json_object_object_add(ref, "name", ops_jstr(tmpl));
	json_object_object_add(img, "templateRef", ref);
	return 0;
}

static bool may_block(struct mountd *md)
{
	return !md->work.started ||
	       !pthread_equal(pthread_self(), md->work.thread);
}

/* The first disk of a VM with a templateRef, from the template's image;
 * 0 when it exists already.  A template not Ready yet is EAGAIN with its
 * state in err (the reconciler tries again). */
int md_template_disk(struct mountd *md, const char *vm, char *err,
		     size_t errlen)
{
	char tmpl[CORE_NAME_MAX + 1] = "", disk[CORE_NAME_MAX + 1] = "root";
	char klass[CORE_NAME_MAX + 1] = "";
	char vol[CORE_NAME_MAX + 16], phase[16] = "";
	struct core_vm *v;
	struct core_obj *o;
	uint64_t size = 0;
	int rc;

	core_model_rdlock(md->m);
	v = core_model_find(md->m, vm);
	if (v && v->spec.template_ref) {
		snprintf(tmpl, sizeof(tmpl), "%s", v->spec.template_ref);
		if (v->spec.ndisks) {
			snprintf(disk, sizeof(disk), "%s", v->spec.disks[0].name);
			snprintf(klass, sizeof(klass), "%s",
				 v->spec.disks[0].storage_class ?
				 v->spec.disks[0].storage_class : "");
			size = v->spec.disks[0].size;
		}
	}
	o = tmpl[0] ? core_model_obj_find(md->m, CORE_KIND_TEMPLATE, tmpl) : NULL;
	if (o)
		snprintf(phase, sizeof(phase), "%s",
			 core_obj_str(o, "status.phase") ?: "Pending");
	core_model_unlock(md->m);
	if (!tmpl[0])
		return 0;
	if (!o) {
		snprintf(err, errlen, "template %s does not exist", tmpl);
		return -ENOENT;
	}
	if (strcmp(phase, "Ready")) {
		snprintf(err, errlen, "template %s is not Ready (%s)", tmpl, phase);
		return -EAGAIN;
	}
	vol_name(tmpl, vol, sizeof(vol));
	rc = be_volume_from_image(md->be, vm, disk, klass, vol, true, size, err,
				  errlen);
	/* Ready on another node (the status is shared) but never imported
	 * into this node's pool: import it now, in a worker when this is the
	 * reconciler, which must go on (the VM is queued again after). */
	if (rc == -ENOENT && !may_block(md)) {
		md_template_import_bg(md, tmpl);
		snprintf(err, errlen, "template %s: importing its image on this "
			 "node", tmpl);
		return -EAGAIN;
	}
	if (rc == -ENOENT && ops_template_import(md, tmpl, err, errlen) == 0)
		rc = be_volume_from_image(md->be, vm, disk, klass, vol, true,
					  size, err, errlen);
	return rc == -EEXIST ? 0 : rc;
}

void md_template_forget(struct mountd *md, const char *name)
{
	char vol[CORE_NAME_MAX + 16], err[CORE_ERR_MAX];
	int rc;

	vol_name(name, vol, sizeof(vol));
	rc = be_image_delete(md->be, vol, err, sizeof(err));
	if (rc < 0 && rc != -ENOENT)
		md_log(LOG_WARN_, "template %s: image kept: %s", name, err);
}

void md_template_usage_tick(struct mountd *md)
{
	ops_template_usage(md);
}
