/* operations/, templates/ and vms/VM/snapshots/ in the tree: objects of
 * the other kinds (core_obj), with status, spec and, for snapshots and
 * templates, ctl.  One slot space for the three kinds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/internal.h"

bool fs_ino_obj(fuse_ino_t ino, int *slot, enum obj_file *f)
{
	if (ino < INO_FIRST_OBJ || ino >= INO_FIRST_NODE)
		return false;
	*slot = (int)((ino - INO_FIRST_OBJ) / OF_STRIDE);
	*f = (enum obj_file)((ino - INO_FIRST_OBJ) % OF_STRIDE);
	return *f < OF_COUNT;
}

fuse_ino_t fs_obj_ino(int slot, enum obj_file f)
{
	return INO_FIRST_OBJ + (fuse_ino_t)slot * OF_STRIDE + f;
}

bool fs_obj_has(enum core_kind kind, enum obj_file f)
{
	return f != OF_CTL || kind != CORE_KIND_OPERATION;
}

static const char *const obj_file_names[OF_COUNT] = {
	[OF_DIR] = ".", [OF_STATUS] = "status", [OF_SPEC] = "spec",
	[OF_CTL] = "ctl",
};

/* An object is found by slot and checked to still be there. */
struct core_obj *fs_obj_at(struct fs *fs, fuse_ino_t ino,
			       enum obj_file *f)
{
	struct core_obj *o;
	int slot;

	if (!fs_ino_obj(ino, &slot, f))
		return NULL;
	o = core_model_obj_slot(fs->m, slot);
	return o && fs_obj_has(o->kind, *f) ? o : NULL;
}

/* Templates are root's, and the group reads their status (a member makes
 * VMs from them) but not their spec: its image source may carry
 * user:password@ and its defaults cloud-init.  Snapshots and operations
 * are their VM owner's alone, like the VM's spec. */
mode_t fs_obj_mode(enum core_kind kind, enum obj_file f)
{
	bool shared = kind == CORE_KIND_TEMPLATE;

	switch (f) {
	case OF_DIR:
		return S_IFDIR | (shared ? 0750 : 0700);
	case OF_CTL:
		return S_IFREG | 0200;
	case OF_SPEC:
		return S_IFREG | (shared ? 0600 : 0400);
	default:
		return S_IFREG | (shared ? 0440 : 0400);
	}
}

/* Model read lock held.  A VM that is gone leaves its objects to root. */
uid_t fs_obj_owner(struct fs *fs, const struct core_obj *o)
{
	struct core_vm *vm;

	if (o->kind == CORE_KIND_TEMPLATE || !o->vm[0])
		return 0;
	vm = core_model_find(fs->m, o->vm);
	return vm ? vm->owner : 0;
}

static enum core_kind dir_kind(fuse_ino_t ino)
{
	return ino == INO_OPERATIONS ? CORE_KIND_OPERATION :
	       ino == INO_TEMPLATES ? CORE_KIND_TEMPLATE : CORE_KIND_SNAPSHOT;
}

/* operations/X, templates/X, vms/VM/snapshots/X and their files. */
fuse_ino_t fs_obj_child(struct fs *fs, fuse_ino_t parent, const char *name)
{
	struct core_obj *o = NULL;
	struct core_vm *vm;
	enum obj_file of;
	fuse_ino_t ino = 0;
	int slot;

	core_model_rdlock(fs->m);
	if (parent == INO_OPERATIONS || parent == INO_TEMPLATES) {
		o = core_model_obj_find(fs->m, dir_kind(parent), name);
	} else if (fs_ino_obj(parent, &slot, &of) && of == OF_DIR) {
		o = core_model_obj_slot(fs->m, slot);
		for (int i = OF_STATUS; o && i < OF_COUNT; i++)
			if (!strcmp(name, obj_file_names[i]) &&
			    fs_obj_has(o->kind, (enum obj_file)i))
				ino = fs_obj_ino(slot, (enum obj_file)i);
		o = NULL;
	} else {
		vm = core_model_slot(fs->m, (int)((parent - INO_FIRST_VM) /
						  VF_STRIDE));
		o = core_model_obj_find(fs->m, CORE_KIND_SNAPSHOT, name);
		if (o && (!vm || strcmp(o->vm, vm->name)))
			o = NULL;
	}
	if (o)
		ino = fs_obj_ino(o->slot, OF_DIR);
	core_model_unlock(fs->m);
	return ino;
}

struct obj_name {
	char name[CORE_NAME_MAX + 1];
	int slot;
};

struct obj_list {
	struct obj_name *v;
	size_t n, cap;
	const char *vm;         /* snapshots of this VM only */
};

static int collect_obj(struct core_obj *o, void *arg)
{
	struct obj_list *l = arg;
	struct obj_name *nv;

	if (l->vm && strcmp(o->vm, l->vm))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		nv = realloc(l->v, l->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
	}
	snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", o->name);
	l->v[l->n++].slot = o->slot;
	return 0;
}

/* vm_slot >= 0: the snapshots of that VM. */
void fs_list_objs(struct dirbuf *d, enum core_kind kind, int vm_slot)
{
	struct obj_list l = { 0 };
	struct core_vm *vm = NULL;

	core_model_rdlock(d->fs->m);
	if (vm_slot >= 0) {
		vm = core_model_slot(d->fs->m, vm_slot);
		l.vm = vm ? vm->name : "";
	}
	core_model_obj_each(d->fs->m, kind, collect_obj, &l);
	core_model_unlock(d->fs->m);
	for (size_t i = 0; i < l.n; i++)
		fs_dir_add(d, l.v[i].name, fs_obj_ino(l.v[i].slot, OF_DIR));
	free(l.v);
}

void fs_list_obj_dir(struct dirbuf *d, int slot)
{
	struct core_obj *o;
	enum core_kind kind = CORE_KIND_COUNT;

	core_model_rdlock(d->fs->m);
	o = core_model_obj_slot(d->fs->m, slot);
	if (o)
		kind = o->kind;
	core_model_unlock(d->fs->m);
	for (int i = OF_STATUS; kind != CORE_KIND_COUNT && i < OF_COUNT; i++)
		if (fs_obj_has(kind, (enum obj_file)i))
			fs_dir_add(d, obj_file_names[i], fs_obj_ino(slot, (enum obj_file)i));
}
