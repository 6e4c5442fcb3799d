/* The shape of the tree: lookups, attributes, directory listings, opens
 * and reads.  Every answer comes from the in-memory model. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/internal.h"

static time_t boot_time;

static const char *const vm_file_names[VF_COUNT] = {
	[VF_DIR] = ".",        [VF_CTL] = "ctl",     [VF_STATUS] = "status",
	[VF_SPEC] = "spec",    [VF_ERR] = "err",     [VF_EVENTS] = "events",
	[VF_WAIT] = "wait",    [VF_STATS] = "stats", [VF_SNAPSHOTS] = "snapshots",
	[VF_CONSOLE] = "console",
};

static const struct {
	const char *name;
	fuse_ino_t ino;
} top_dirs[] = {
	{ "vms", INO_VMS },
	{ "templates", INO_TEMPLATES },
	{ "operations", INO_OPERATIONS },
	{ "nodes", INO_NODES },
};

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

bool fs_ino_vm(fuse_ino_t ino, int *slot, enum vm_file *f)
{
	if (ino < INO_FIRST_VM || ino >= INO_FIRST_OBJ)
		return false;
	*slot = (int)((ino - INO_FIRST_VM) / VF_STRIDE);
	*f = (enum vm_file)((ino - INO_FIRST_VM) % VF_STRIDE);
	return *f < VF_COUNT;
}

fuse_ino_t fs_vm_ino(int slot, enum vm_file f)
{
	return INO_FIRST_VM + (fuse_ino_t)slot * VF_STRIDE + f;
}


bool fs_ino_node(fuse_ino_t ino, int *slot, enum node_file *f)
{
	if (ino < INO_FIRST_NODE || ino >= INO_FIRST_DYN)
		return false;
	*slot = (int)((ino - INO_FIRST_NODE) / NF_STRIDE);
	*f = (enum node_file)((ino - INO_FIRST_NODE) % NF_STRIDE);
	return *f < NF_COUNT;
}

fuse_ino_t fs_node_ino(int slot, enum node_file f)
{
	return INO_FIRST_NODE + (fuse_ino_t)slot * NF_STRIDE + f;
}

/* A reused slot must not look like the same inode to the kernel, so each
 * VM incarnation gets its own generation, derived from its uid. */
static uint64_t uid_generation(const char *uid)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *uid; uid++)
		h = (h ^ (unsigned char)*uid) * 1099511628211ULL;
	return h;
}

uint64_t fs_vm_generation(const struct core_vm *vm)
{
	return uid_generation(vm->uid);
}

/* Plan 9 style ownership, enforced by the kernel (default_permissions):
 * a VM's files belong to its owner with the daemon's group; the group
 * may enter the directory and read status (and wait on it), the rest is
 * the owner's.  Root passes every check.  See docs/security.md. */
static mode_t vm_file_mode(enum vm_file f)
{
	switch (f) {
	case VF_DIR:
		return S_IFDIR | 0750;
	case VF_SNAPSHOTS:
		return S_IFDIR | 0700;
	case VF_CTL:
		return S_IFREG | 0200;
	case VF_SPEC:
		return S_IFREG | 0600;
	case VF_STATUS:
	case VF_WAIT:
		return S_IFREG | 0440;
	default:
		return S_IFREG | 0400;
	}
}

/* vms/ is root's and the group's, sticky like /tmp: members make VMs in
 * it and the kernel lets each remove only its own (EPERM otherwise). */
static mode_t top_mode(fuse_ino_t ino)
{
	switch (ino) {
	case INO_ROOT:
		return S_IFDIR | 0755;
	case INO_VMS_CTL:
		return S_IFREG | 0220;
	case INO_VMS_ERR:
		return S_IFREG | 0440;
	case INO_VMS:
		return S_IFDIR | S_ISVTX | 0770;
	default:
		return S_IFDIR | 0550;
	}
}

/* How the owner reaches the VM's screen and serial line (its mode keeps
 * it the owner's): the VNC password never shows in status. */
static size_t console_text(const struct core_vm *vm, char *tmp, size_t tmplen)
{
	const struct core_status *st = &vm->st;
	int n = 0;

	if (st->vnc_port >= 0 && vm->vnc_password[0])
		n = snprintf(tmp, tmplen, strchr(st->vnc_address, ':') ?
			     "vnc [%s]:%d\nvnc.password %s\n" :
			     "vnc %s:%d\nvnc.password %s\n",
			     st->vnc_address[0] ? st->vnc_address : "127.0.0.1",
			     st->vnc_port, vm->vnc_password);
	if (n >= 0 && (size_t)n < tmplen && st->console[0])
		n += snprintf(tmp + n, tmplen - (size_t)n, "serial %s\n",
			      st->console);
	if (n < 0)
		n = 0;
	return (size_t)n < tmplen ? (size_t)n : tmplen - 1;
}

/* The text behind a readable file; err lines get their newline in tmp.
 * Model read lock held by the caller. */
int fs_text(struct fs *fs, fuse_ino_t ino, const char **txt, size_t *len,
	    char *tmp, size_t tmplen)
{
	const char *line = NULL;
	struct core_node *node;
	struct core_obj *o;
	struct core_vm *vm;
	enum node_file nf;
	enum obj_file of;
	enum vm_file f;
	int slot;

	*txt = "";
	*len = 0;
	if (fs_ino_obj(ino, &slot, &of)) {
		o = fs_obj_at(fs, ino, &of);
		if (!o)
			return -ENOENT;
		if (of == OF_STATUS && o->txt_status)
			*txt = o->txt_status, *len = o->len_status;
		else if (of == OF_SPEC && o->txt_spec)
			*txt = o->txt_spec, *len = o->len_spec;
		return 0;
	}
	if (ino == INO_VMS_ERR) {
		line = core_model_err(fs->m);
		goto line;
	}
	if (fs_ino_node(ino, &slot, &nf)) {
		node = core_model_node_slot(fs->m, slot);
		if (!node)
			return -ENOENT;
		if (nf == NF_STATUS)
			*txt = node->txt, *len = node->len;
		return 0;
	}
	if (!fs_ino_vm(ino, &slot, &f))
		return 0;
	vm = core_model_slot(fs->m, slot);
	if (!vm)
		return -ENOENT;
	switch (f) {
	case VF_STATUS:
		*txt = vm->txt_status, *len = vm->len_status;
		break;
	case VF_SPEC:
		*txt = vm->txt_spec, *len = vm->len_spec;
		break;
	case VF_EVENTS:
		*txt = vm->txt_events, *len = vm->len_events;
		break;
	case VF_STATS:
		*txt = vm->txt_stats, *len = vm->len_stats;
		break;
	case VF_ERR:
		line = vm->err;
		goto line;
	case VF_CONSOLE:
		*len = console_text(vm, tmp, tmplen);
		*txt = tmp;
		return 0;
	default:
		break;
	}
	if (!*txt)
		*txt = "", *len = 0;
	return 0;
line:
	if (line && *line) {
		*len = (size_t)snprintf(tmp, tmplen, "%s\n", line);
		if (*len >= tmplen)
			*len = tmplen - 1;
		*txt = tmp;
	}
	return 0;
}

/* Everything is in the daemon's group; without one (it does not exist)
 * the group bits go and only root and owners' own bits are left, which
 * the closed vms/ makes root only. */
static void fill_stat(struct fs *fs, fuse_ino_t ino, mode_t mode, uid_t owner,
		      off_t size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = fs->acl.has_group ? mode : mode & ~(mode_t)070;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_size = size;
	st->st_uid = owner;
	st->st_gid = fs->acl.has_group ? fs->acl.gid : 0;
	st->st_blksize = 4096;
	st->st_blocks = (size + 511) / 512;
	st->st_atime = st->st_mtime = st->st_ctime = boot_time;
}

/* Model read lock held by the caller. */
static int inode_stat(struct fs *fs, fuse_ino_t ino, struct stat *st,
		      uint64_t *gen)
{
	char tmp[CORE_ERR_MAX + 2];
	const char *txt;
	size_t len = 0;
	struct core_obj *o;
	struct core_vm *vm;
	enum node_file nf;
	enum obj_file of;
	enum vm_file f;
	int slot;

	*gen = 0;
	if (fs_ino_obj(ino, &slot, &of)) {
		o = fs_obj_at(fs, ino, &of);
		if (!o)
			return -ENOENT;
		*gen = uid_generation(o->name) + o->kind;
		fs_text(fs, ino, &txt, &len, tmp, sizeof(tmp));
		fill_stat(fs, ino, fs_obj_mode(o->kind, of), fs_obj_owner(fs, o),
			  (off_t)len, st);
		return 0;
	}
	if (fs_ino_vm(ino, &slot, &f)) {
		vm = core_model_slot(fs->m, slot);
		if (!vm)
			return -ENOENT;
		*gen = uid_generation(vm->uid);
		fs_text(fs, ino, &txt, &len, tmp, sizeof(tmp));
		fill_stat(fs, ino, vm_file_mode(f), vm->owner, (off_t)len, st);
		return 0;
	}
	if (fs_ino_node(ino, &slot, &nf)) {
		if (!core_model_node_slot(fs->m, slot))
			return -ENOENT;
		fs_text(fs, ino, &txt, &len, tmp, sizeof(tmp));
		/* ctl: cordon and drain are root's (docs/security.md). */
		fill_stat(fs, ino, nf == NF_DIR ? S_IFDIR | 0550 :
			  nf == NF_CTL ? S_IFREG | 0200 : S_IFREG | 0440,
			  0, (off_t)len, st);
		return 0;
	}
	if (ino < INO_FIRST_VM && ino >= INO_ROOT && ino <= INO_NODES) {
		if (ino == INO_VMS_ERR)
			fs_text(fs, ino, &txt, &len, tmp, sizeof(tmp));
		fill_stat(fs, ino, top_mode(ino), 0, (off_t)len, st);
		return 0;
	}
	return -ENOENT;
}

int fs_fill_entry(struct fs *fs, fuse_ino_t ino, struct fuse_entry_param *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	core_model_rdlock(fs->m);
	rc = inode_stat(fs, ino, &e->attr, &e->generation);
	core_model_unlock(fs->m);
	e->ino = ino;
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
	return rc;
}

static fuse_ino_t child_ino(struct fs *fs, fuse_ino_t parent, const char *name)
{
	struct core_node *node;
	struct core_vm *vm;
	enum node_file nf;
	enum vm_file f;
	fuse_ino_t ino = 0;
	int slot;

	if (parent == INO_ROOT) {
		for (size_t i = 0; i < sizeof(top_dirs) / sizeof(top_dirs[0]); i++)
			if (!strcmp(name, top_dirs[i].name))
				return top_dirs[i].ino;
	} else if (parent == INO_OPERATIONS || parent == INO_TEMPLATES ||
		   fs_ino_obj(parent, &slot, &(enum obj_file){ 0 }) ||
		   (fs_ino_vm(parent, &slot, &f) && f == VF_SNAPSHOTS)) {
		return fs_obj_child(fs, parent, name);
	} else if (parent == INO_VMS) {
		if (!strcmp(name, "ctl"))
			return INO_VMS_CTL;
		if (!strcmp(name, "err"))
			return INO_VMS_ERR;
		core_model_rdlock(fs->m);
		vm = core_model_find(fs->m, name);
		if (vm)
			ino = fs_vm_ino(vm->slot, VF_DIR);
		core_model_unlock(fs->m);
	} else if (fs_ino_vm(parent, &slot, &f) && f == VF_DIR) {
		for (int i = VF_CTL; i < VF_COUNT; i++)
			if (!strcmp(name, vm_file_names[i]))
				return fs_vm_ino(slot, (enum vm_file)i);
	} else if (parent == INO_NODES) {
		core_model_rdlock(fs->m);
		node = core_model_node(fs->m, name);
		if (node)
			ino = fs_node_ino(node->slot, NF_DIR);
		core_model_unlock(fs->m);
	} else if (fs_ino_node(parent, &slot, &nf) && nf == NF_DIR) {
		if (!strcmp(name, "status"))
			return fs_node_ino(slot, NF_STATUS);
		if (!strcmp(name, "ctl"))
			return fs_node_ino(slot, NF_CTL);
	}
	return ino;
}

static bool is_ctl(fuse_ino_t ino)
{
	enum vm_file f;
	enum obj_file of;
	int slot;

	enum node_file nf;

	return ino == INO_VMS_CTL ||
	       (fs_ino_vm(ino, &slot, &f) && f == VF_CTL) ||
	       (fs_ino_node(ino, &slot, &nf) && nf == NF_CTL) ||
	       (fs_ino_obj(ino, &slot, &of) && of == OF_CTL);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	fuse_ino_t ino = child_ino(fs, parent, name);

	if (!ino || fs_fill_entry(fs, ino, &e) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* ctl: a new inode each time, looked up again next time. */
	if (is_ctl(ino) && (e.ino = fs_ctl_clone(ino))) {
		e.attr.st_ino = e.ino;
		e.entry_timeout = 0;
		e.attr_timeout = 0;
	}
	fuse_reply_entry(req, &e);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_ctl_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_ctl_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	fuse_ino_t shown = ino;

	ino = fs_ctl_real(ino);
	if (fs_fill_entry(req_fs(req), ino, &e) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.attr.st_ino = shown;
	fuse_reply_attr(req, &e.attr, shown == ino ? ATTR_TIMEOUT : 0);
}

static bool e_writable_obj(struct fs *fs, fuse_ino_t ino)
{
	struct fuse_entry_param e;

	return fs_ino_obj(ino, &(int){ 0 }, &(enum obj_file){ 0 }) &&
	       fs_fill_entry(fs, ino, &e) == 0 && (e.attr.st_mode & 0200) &&
	       S_ISREG(e.attr.st_mode);
}

/* O_TRUNC on ctl and spec arrives as a size change; there is nothing to
 * truncate, so accept it and change nothing. */
static void ll_setattr(fuse_req_t req, fuse_ino_t shown, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	fuse_ino_t ino = fs_ctl_real(shown);
	struct fuse_entry_param e;
	enum vm_file f;
	int slot;
	bool writable = ino == INO_VMS_CTL ||
		(fs_ino_vm(ino, &slot, &f) && (f == VF_CTL || f == VF_SPEC)) ||
		(e_writable_obj(req_fs(req), ino));

	if (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
		       FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		       FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && (!writable || attr->st_size != 0)) {
		fuse_reply_err(req, writable ? EINVAL : EACCES);
		return;
	}
	if (fs_fill_entry(req_fs(req), ino, &e) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.attr.st_ino = shown;
	fuse_reply_attr(req, &e.attr, shown == ino ? ATTR_TIMEOUT : 0);
}


/* Append one entry when its index is at or past the requested offset. */
void fs_dir_add(struct dirbuf *d, const char *name, fuse_ino_t ino)
{
	struct fuse_entry_param e;
	size_t n;

	if (d->full || d->index++ < d->off)
		return;
	if (d->plus) {
		if (!strcmp(name, ".") || !strcmp(name, "..") ||
		    fs_fill_entry(d->fs, ino, &e) < 0) {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
		}
		/* A path walk must look ctl up for its own inode. */
		if (is_ctl(ino))
			e.entry_timeout = 0;
		n = fuse_add_direntry_plus(d->req, d->buf + d->used,
					   d->size - d->used, name, &e, d->index);
	} else {
		struct stat st = { .st_ino = ino, .st_mode = S_IFREG };

		n = fuse_add_direntry(d->req, d->buf + d->used,
				      d->size - d->used, name, &st, d->index);
	}
	if (n > d->size - d->used) {
		d->full = true;
		return;
	}
	d->used += n;
}

struct vm_name {
	char name[CORE_NAME_MAX + 1];
	int slot;
};

static int collect_vm(struct core_vm *vm, void *arg)
{
	struct vm_name **p = arg;

	snprintf((*p)->name, sizeof((*p)->name), "%s", vm->name);
	(*p)->slot = vm->slot;
	(*p)++;
	return 0;
}

/* Names are copied out first so that fs_fill_entry may take the lock. */
static void list_vms(struct dirbuf *d)
{
	struct vm_name *names, *p;
	size_t n;

	core_model_rdlock(d->fs->m);
	n = core_model_count(d->fs->m);
	names = calloc(n ? n : 1, sizeof(*names));
	p = names;
	if (names)
		core_model_each(d->fs->m, collect_vm, &p);
	core_model_unlock(d->fs->m);
	if (!names)
		return;
	for (struct vm_name *q = names; q < p; q++)
		fs_dir_add(d, q->name, fs_vm_ino(q->slot, VF_DIR));
	free(names);
}

static int count_node(struct core_node *n, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int collect_node(struct core_node *n, void *arg)
{
	struct vm_name **p = arg;

	snprintf((*p)->name, sizeof((*p)->name), "%s", n->name);
	(*p)->slot = n->slot;
	(*p)++;
	return 0;
}

/* As many as the model holds (mountd bounds how many peers it shows). */
static void list_nodes(struct dirbuf *d)
{
	struct vm_name *names = NULL, *p = NULL;
	int n = 0;

	core_model_rdlock(d->fs->m);
	core_model_each_node(d->fs->m, count_node, &n);
	names = calloc((size_t)n + 1, sizeof(*names));
	p = names;
	if (names)
		core_model_each_node(d->fs->m, collect_node, &p);
	core_model_unlock(d->fs->m);
	for (struct vm_name *q = names; q && q < p; q++)
		fs_dir_add(d, q->name, fs_node_ino(q->slot, NF_DIR));
	free(names);
}

static void list_dir(struct dirbuf *d, fuse_ino_t ino)
{
	enum obj_file of;
	enum node_file nf;
	enum vm_file f;
	int slot;

	fs_dir_add(d, ".", ino);
	fs_dir_add(d, "..", fs_ino_vm(ino, &slot, &f) ?
		(f == VF_DIR ? INO_VMS : fs_vm_ino(slot, VF_DIR)) : INO_ROOT);
	if (ino == INO_ROOT) {
		for (size_t i = 0; i < sizeof(top_dirs) / sizeof(top_dirs[0]); i++)
			fs_dir_add(d, top_dirs[i].name, top_dirs[i].ino);
	} else if (ino == INO_VMS) {
		fs_dir_add(d, "ctl", INO_VMS_CTL);
		fs_dir_add(d, "err", INO_VMS_ERR);
		list_vms(d);
	} else if (fs_ino_vm(ino, &slot, &f) && f == VF_DIR) {
		for (int i = VF_CTL; i < VF_COUNT; i++)
			fs_dir_add(d, vm_file_names[i], fs_vm_ino(slot, (enum vm_file)i));
	} else if (fs_ino_vm(ino, &slot, &f) && f == VF_SNAPSHOTS) {
		fs_list_objs(d, CORE_KIND_SNAPSHOT, slot);
	} else if (ino == INO_OPERATIONS || ino == INO_TEMPLATES) {
		fs_list_objs(d, ino == INO_OPERATIONS ? CORE_KIND_OPERATION :
				 CORE_KIND_TEMPLATE, -1);
	} else if (fs_ino_obj(ino, &slot, &of) && of == OF_DIR) {
		fs_list_obj_dir(d, slot);
	} else if (ino == INO_NODES) {
		list_nodes(d);
	} else if (fs_ino_node(ino, &slot, &nf) && nf == NF_DIR) {
		fs_dir_add(d, "ctl", fs_node_ino(slot, NF_CTL));
		fs_dir_add(d, "status", fs_node_ino(slot, NF_STATUS));
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, bool plus)
{
	struct dirbuf d = { .req = req, .fs = req_fs(req), .size = size,
			    .off = off, .plus = plus };

	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	list_dir(&d, ino);
	fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;

	if (fs_fill_entry(req_fs(req), ino, &e) < 0)
		fuse_reply_err(req, ENOENT);
	else if (!S_ISDIR(e.attr.st_mode))
		fuse_reply_err(req, ENOTDIR);
	else
		fuse_reply_open(req, fi);
}

/* Text files live in the page cache with their real size; fs.c
 * invalidates them on every change.  While a change is still on its way
 * to the kernel, this open bypasses the cache so it cannot read stale or
 * truncated text. */
static bool change_in_flight(struct fs *fs, int slot)
{
	bool r;

	pthread_mutex_lock(&fs->lock);
	if (slot < 0)
		r = fs->tree_seq > fs->delivered;
	else
		r = (size_t)slot < fs->nslot_seq &&
		    fs->slot_seq[slot] > fs->delivered;
	pthread_mutex_unlock(&fs->lock);
	return r;
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	enum vm_file f = VF_COUNT;
	enum node_file nf = NF_COUNT;
	int slot = -1;
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;

	ino = fs_ctl_real(ino);

	if (fs_fill_entry(fs, ino, &e) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (S_ISDIR(e.attr.st_mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* Only a spec written through this open has use for FLUSH. */
	fi->noflush = !(wr && fs_is_spec(ino));
	if (fs_ino_obj(ino, &slot, &(enum obj_file){ 0 })) {
		/* Objects change rarely and are read rarely: no caching. */
		if (wr && !(e.attr.st_mode & 0200)) {
			fuse_reply_err(req, EACCES);
			return;
		}
		fi->direct_io = 1;
		fi->fh = e.generation;
		if (fs_is_spec(ino) &&
		    !(fi->fh = (uintptr_t)fs_spec_open(e.generation))) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fuse_reply_open(req, fi);
		return;
	}
	if (!fs_ino_vm(ino, &slot, &f))
		fs_ino_node(ino, &(int){ 0 }, &nf);
	/* root passes the permission bits; read-only files stay read-only. */
	if (wr && ino != INO_VMS_CTL && f != VF_CTL && f != VF_SPEC &&
	    nf != NF_CTL) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (f == VF_WAIT) {
		fs_wait_open(fs, req, slot, fi);
		return;
	}
	if (wr || ino == INO_VMS_CTL || f == VF_CTL || nf == NF_CTL ||
	    change_in_flight(fs, slot))
		fi->direct_io = 1;
	else
		fi->keep_cache = 1;
	if (f == VF_CTL)
		fi->fh = e.generation;
	if (f == VF_SPEC &&
	    !(fi->fh = (uintptr_t)fs_spec_open(e.generation))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fuse_reply_open(req, fi);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	char tmp[CORE_ERR_MAX + 2];
	const char *txt;
	size_t len;
	enum vm_file f;
	int slot;

	ino = fs_ctl_real(ino);

	if (fs_ino_vm(ino, &slot, &f) && f == VF_WAIT) {
		fs_wait_read(fs, req, slot, size, off, fi);
		return;
	}
	core_model_rdlock(fs->m);
	if (fs_text(fs, ino, &txt, &len, tmp, sizeof(tmp)) < 0) {
		core_model_unlock(fs->m);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (off < 0 || (size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, txt + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
	core_model_unlock(fs->m);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	enum vm_file f;
	int slot;

	ino = fs_ctl_real(ino);

	if (fs_ino_vm(ino, &slot, &f) && f == VF_WAIT && fi->fh)
		fs_wait_release((struct waitfile *)(uintptr_t)fi->fh);
	if (fs_is_spec(ino))
		fs_spec_release((struct spechandle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st = { .f_bsize = 4096, .f_frsize = 4096,
			      .f_namemax = CORE_NAME_MAX };

	fuse_reply_statfs(req, &st);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	boot_time = time(NULL);
	/* A spec is one message: let a whole one arrive in a single write. */
	conn->max_write = 1024 * 1024;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Each write is one message: no kernel-side merging. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

/* Nothing may be renamed: names are the VMs' and objects' identity. */
static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, EPERM);
}

/* A spec is applied at its writer's close (ctlfile.c), so FLUSH must
 * come; every other open says noflush and saves the round trip. */
const struct fuse_lowlevel_ops fs_ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.open = ll_open,
	.read = ll_read,
	.write = fs_write,
	.release = ll_release,
	.flush = fs_flush,
	.rename = ll_rename,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.statfs = ll_statfs,
};
