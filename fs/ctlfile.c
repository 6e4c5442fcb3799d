/* Writes (ctl messages, spec documents), mkdir and rmdir, and the blocking
 * read of wait.  Actions run in threads of their own so the FUSE loop is
 * never held; the request stays parked until the action ends or the
 * writer is interrupted (EINTR at once; the action goes on). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/internal.h"

enum act_kind { ACT_CTL, ACT_SPEC, ACT_MKDIR, ACT_RMDIR, ACT_REFUSE, ACT_OBJ,
		ACT_NODE };

struct action {
	struct fs *fs;
	uint64_t id;
	enum act_kind kind;
	char vm[CORE_NAME_MAX + 1];     /* "" for vms/ctl */
	struct core_ctl msg;
	json_object *spec;
	size_t written;
	int refuse_rc;                  /* ACT_REFUSE: the errno to answer */
	enum core_kind okind;           /* ACT_OBJ, and mkdir of an object */
	char oname[CORE_NAME_MAX + 1];
	char overb[16];
	enum core_node_verb nverb;      /* ACT_NODE, on node oname */
	bool obj;
	bool flush;             /* a spec applied at close: answers FLUSH */
	uid_t owner;            /* of the target VM (0: root's, templates) */
	char refuse_err[CORE_ERR_MAX];
};

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Every signal with a handler makes the kernel send INTERRUPT, including
 * the SIGCHLD a shell gets when a background job ends.  Only signals
 * meant to stop the caller (Ctrl-C, SIGTERM, ...) end the waiting; the
 * others are ignored and the request goes on. */
static bool pid_wants_interrupt(pid_t pid)
{
	const unsigned long long benign = 1ULL << (SIGCHLD - 1) |
		1ULL << (SIGWINCH - 1) | 1ULL << (SIGURG - 1) |
		1ULL << (SIGCONT - 1);
	unsigned long long pend = 0, v;
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return true;
	while (fgets(line, sizeof(line), f))
		if ((sscanf(line, "SigPnd: %llx", &v) == 1 ||
		     sscanf(line, "ShdPnd: %llx", &v) == 1))
			pend |= v;
	fclose(f);
	return !pend || (pend & ~benign) != 0;
}

static bool wants_interrupt(fuse_req_t req)
{
	return pid_wants_interrupt(fuse_req_ctx(req)->pid);
}

static bool still_pending(struct fs *fs, uint64_t id)
{
	bool found = false;

	pthread_mutex_lock(&fs->lock);
	for (struct pending *p = fs->pending; p && !found; p = p->next)
		found = p->id == id;
	pthread_mutex_unlock(&fs->lock);
	return found;
}

struct sigwatch {
	struct fs *fs;
	uint64_t id;
	pid_t pid;
};

/* The kernel sends INTERRUPT once per request: after ignoring a SIGCHLD,
 * a later Ctrl-C would go unnoticed, so keep an eye on the caller. */
static void *sigwatch_main(void *arg)
{
	struct sigwatch *w = arg;
	struct fs *fs = w->fs;
	struct pending *p;

	while (still_pending(fs, w->id)) {
		usleep(100 * 1000);
		if (!pid_wants_interrupt(w->pid))
			continue;
		p = fs_pending_take(fs, w->id);
		if (p) {
			fuse_reply_err(p->req, EINTR);
			free(p);
		}
		break;
	}
	free(w);
	pthread_mutex_lock(&fs->lock);
	fs->actions--;
	pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

static void watch_caller(fuse_req_t req, uint64_t id)
{
	struct sigwatch *w = malloc(sizeof(*w));
	struct fs *fs = req_fs(req);
	pthread_attr_t attr;
	pthread_t t;

	if (!w)
		return;
	w->fs = fs;
	w->id = id;
	w->pid = fuse_req_ctx(req)->pid;
	pthread_mutex_lock(&fs->lock);
	fs->actions++;
	pthread_mutex_unlock(&fs->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, sigwatch_main, w) != 0) {
		free(w);
		pthread_mutex_lock(&fs->lock);
		fs->actions--;
		pthread_mutex_unlock(&fs->lock);
	}
	pthread_attr_destroy(&attr);
}

static void interrupted(fuse_req_t req, void *data)
{
	struct fs *fs = req_fs(req);
	struct pending *p;

	if (!wants_interrupt(req)) {
		watch_caller(req, (uint64_t)(uintptr_t)data);
		return;
	}
	p = fs_pending_take(fs, (uint64_t)(uintptr_t)data);

	if (p) {
		fuse_reply_err(p->req, EINTR);
		free(p);
	}
}

/* Park req under a fresh id.  Returns the id, or 0 when the request was
 * already interrupted (and has been answered).  The caller may hold the
 * model lock (wait does, so that no change slips in before parking). */
static uint64_t park(struct fs *fs, fuse_req_t req, struct pending *p)
{
	uint64_t id;

	pthread_mutex_lock(&fs->lock);
	id = ++fs->next_id;
	pthread_mutex_unlock(&fs->lock);
	p->req = req;
	p->id = id;
	/* Registered before the request can be answered elsewhere; an
	 * interrupt that came earlier is caught by fuse_req_interrupted. */
	fuse_req_interrupt_func(req, interrupted, (void *)(uintptr_t)id);
	pthread_mutex_lock(&fs->lock);
	if (fuse_req_interrupted(req) && wants_interrupt(req)) {
		pthread_mutex_unlock(&fs->lock);
		free(p);
		fuse_reply_err(req, EINTR);
		return 0;
	}
	p->next = fs->pending;
	fs->pending = p;
	pthread_mutex_unlock(&fs->lock);
	/* An earlier, ignored interrupt found nothing parked to watch. */
	if (fuse_req_interrupted(req))
		watch_caller(req, id);
	return id;
}

static void answer(struct action *a, int rc)
{
	struct pending *p = fs_pending_take(a->fs, a->id);
	struct fuse_entry_param e;
	struct core_vm *vm;
	fuse_ino_t ino = 0;

	if (!p)
		return;         /* the writer was interrupted */
	if (rc < 0 || a->flush) {
		fuse_reply_err(p->req, rc < 0 ? -rc : 0);
	} else if (a->kind == ACT_MKDIR || (a->obj && !strcmp(a->overb, "create"))) {
		core_model_rdlock(a->fs->m);
		if (a->obj) {
			struct core_obj *o = core_model_obj_find(a->fs->m,
								 a->okind,
								 a->oname);
			if (o)
				ino = fs_obj_ino(o->slot, OF_DIR);
		} else if ((vm = core_model_find(a->fs->m, a->msg.arg))) {
			ino = fs_vm_ino(vm->slot, VF_DIR);
		}
		core_model_unlock(a->fs->m);
		if (ino && fs_fill_entry(a->fs, ino, &e) == 0)
			fuse_reply_entry(p->req, &e);
		else
			fuse_reply_err(p->req, ENOENT);
	} else if (a->kind == ACT_RMDIR ||
		   (a->obj && !strcmp(a->overb, "delete") && !a->written)) {
		fuse_reply_err(p->req, 0);
	} else {
		fuse_reply_write(p->req, a->written);
	}
	free(p);
}

static void *action_main(void *arg)
{
	struct action *a = arg;
	struct fs *fs = a->fs;
	char err[CORE_ERR_MAX] = "";
	const char *vm = a->vm[0] ? a->vm : NULL;
	uint64_t seq;
	int rc;

	if (a->kind == ACT_REFUSE) {
		rc = a->refuse_rc;
		snprintf(err, sizeof(err), "%s", a->refuse_err);
	} else if (a->kind == ACT_OBJ) {
		rc = fs->ops->obj(fs->arg, a->okind, vm, a->oname, a->overb,
				  a->spec, err, sizeof(err));
		a->spec = NULL;
	} else if (a->kind == ACT_SPEC) {
		rc = fs->ops->spec(fs->arg, a->vm, a->spec, err, sizeof(err));
		a->spec = NULL;
	} else if (a->kind == ACT_NODE) {
		rc = fs->ops->node ? fs->ops->node(fs->arg, a->oname, a->nverb,
						   err, sizeof(err)) :
		     -EOPNOTSUPP;
	} else {
		rc = fs->ops->ctl(fs->arg, vm, &a->msg, err, sizeof(err));
	}
	if (rc < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	/* err goes to the VM's err (or vms/err) and events; nothing else
	 * moves. */
	seq = core_model_record(fs->m, a->vm, rc, err);
	/* mkdir and rmdir hold the directory lock that invalidating an entry
	 * needs, so they must not wait for the notifier. */
	if (a->kind != ACT_MKDIR && a->kind != ACT_RMDIR &&
	    !(a->obj && !a->written && !a->flush))
		fs_wait_delivered(fs, seq);
	answer(a, rc);
	json_object_put(a->spec);
	free(a);
	pthread_mutex_lock(&fs->lock);
	fs->actions--;
	pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

static void start_action(fuse_req_t req, struct action *a)
{
	struct pending *p = calloc(1, sizeof(*p));
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	a->fs = req_fs(req);
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		goto fail;
	}
	p->slot = -1;
	a->id = park(a->fs, req, p);
	pthread_mutex_lock(&a->fs->lock);
	a->fs->actions++;
	pthread_mutex_unlock(&a->fs->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, action_main, a);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return;
	pthread_mutex_lock(&a->fs->lock);
	a->fs->actions--;
	pthread_mutex_unlock(&a->fs->lock);
	p = fs_pending_take(a->fs, a->id);
	if (p) {
		fuse_reply_err(req, EAGAIN);
		free(p);
	}
fail:
	json_object_put(a->spec);
	free(a);
}

/* Even a refusal waits for its err line to reach the kernel, and so is
 * answered from a thread of its own: a handler must never wait. */
static void refuse(fuse_req_t req, struct action *a, int rc, const char *err)
{
	json_object_put(a->spec);
	a->spec = NULL;
	a->kind = ACT_REFUSE;
	a->refuse_rc = rc;
	snprintf(a->refuse_err, sizeof(a->refuse_err), "%s", err);
	start_action(req, a);
}

/* ---- who may ------------------------------------------------------- */

/* Supplementary groups come from /proc/PID/status, not getgrouplist:
 * they are the ones the kernel checked for this very request (setpriv,
 * newgrp, a uid without a passwd entry), where the group database would
 * give those of a name.  A process that is gone, or whose ids no longer
 * match the request (pid reused), gets no supplementary groups. */
int fs_cred_of(pid_t pid, uid_t uid, gid_t gid, struct core_cred *out)
{
	unsigned long long id[4];
	char path[64], line[4096], *p, *end;
	bool ids_ok = false;
	int rc = -ESRCH;
	FILE *f;

	memset(out, 0, sizeof(*out));
	out->uid = uid;
	out->gid = gid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = pid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return rc;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %llu %llu %llu %llu", &id[0], &id[1],
			   &id[2], &id[3]) == 4)
			ids_ok = id[3] == uid;
		else if (sscanf(line, "Gid: %llu %llu %llu %llu", &id[0],
				&id[1], &id[2], &id[3]) == 4)
			ids_ok = ids_ok && id[3] == gid;
		else if (!strncmp(line, "Groups:", 7) && ids_ok)
			for (p = line + 7; out->ngroups < CORE_GROUPS_MAX; p = end) {
				unsigned long long g = strtoull(p, &end, 10);

				if (end == p)
					break;
				out->groups[out->ngroups++] = (gid_t)g;
			}
	}
	fclose(f);
	if (ids_ok)
		rc = 0;
	else
		out->ngroups = 0;
	return rc;
}

/* Checked again here, after the kernel's permission bits: an fd handed
 * to another process, or a race with a change of owner, must not let a
 * write through.  Root never pays for the /proc read. */
static int req_may(fuse_req_t req, uid_t owner, enum core_right r)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct core_cred c;

	if (ctx->uid == 0)
		return 0;
	fs_cred_of(ctx->pid, ctx->uid, ctx->gid, &c);
	return core_may(&req_fs(req)->acl, &c, owner, r);
}

/* A spec write may be the bare spec or a whole object with a spec. */
static int parse_spec(const char *buf, size_t size, json_object **out,
		      char *err, size_t errlen)
{
	struct core_spec typed;
	json_object *doc = NULL, *spec;
	int rc;

	if (size > FS_SPEC_WRITE_MAX) {
		snprintf(err, errlen, "spec too long (%zu bytes, at most %d)",
			 size, FS_SPEC_WRITE_MAX);
		return -EINVAL;
	}
	rc = core_yaml_parse(buf, size, &doc, err, errlen);
	if (rc < 0)
		return rc;
	if (!json_object_is_type(doc, json_type_object)) {
		snprintf(err, errlen, "spec: not a mapping");
		rc = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(doc, "spec", &spec) &&
	    json_object_object_get_ex(doc, "kind", NULL)) {
		json_object_get(spec);
		json_object_put(doc);
		doc = spec;
	}
	rc = core_spec_from_json(doc, &typed, err, errlen);
	if (rc == 0)
		core_spec_free(&typed);
out:
	if (rc < 0)
		json_object_put(doc);
	else
		*out = doc;
	return rc;
}

/* Which object a write goes to (gen: the one it was opened on). */
static int obj_target(struct fs *fs, fuse_ino_t ino, uint64_t gen,
		      struct action *a, enum core_right *right)
{
	struct fuse_entry_param e;
	struct core_obj *o;
	enum obj_file f;
	int slot, rc = -ENOENT;

	if (fs_fill_entry(fs, ino, &e) < 0 || e.generation != gen)
		return -ENOENT;
	fs_ino_obj(ino, &slot, &f);
	core_model_rdlock(fs->m);
	o = core_model_obj_slot(fs->m, slot);
	if (o) {
		a->okind = o->kind;
		a->owner = fs_obj_owner(fs, o);
		snprintf(a->oname, sizeof(a->oname), "%s", o->name);
		snprintf(a->vm, sizeof(a->vm), "%s", o->vm);
		rc = 0;
	}
	core_model_unlock(fs->m);
	a->kind = ACT_OBJ;
	a->obj = true;
	*right = a->okind == CORE_KIND_TEMPLATE ? CORE_R_ADMIN : CORE_R_CONTROL;
	return rc;
}

/* An object's ctl (one word) or a template's spec. */
static int obj_parse(fuse_ino_t ino, const char *buf, size_t size,
		     struct action *a, char *err, size_t errlen)
{
	static const char *const verbs[CORE_KIND_COUNT][4] = {
		[CORE_KIND_SNAPSHOT] = { "revert", "delete", NULL },
		[CORE_KIND_TEMPLATE] = { "import", "delete", "cancel", NULL },
	};
	enum obj_file f;
	size_t n = size;

	fs_ino_obj(ino, &(int){ 0 }, &f);
	if (f == OF_SPEC) {
		snprintf(a->overb, sizeof(a->overb), "spec");
		if (size > FS_SPEC_WRITE_MAX) {
			snprintf(err, errlen, "spec too long (%zu bytes, at "
				 "most %d)", size, FS_SPEC_WRITE_MAX);
			return -EINVAL;
		}
		return core_yaml_parse(buf, size, &a->spec, err, errlen);
	}
	if (n && buf[n - 1] == '\n')
		n--;
	for (int i = 0; verbs[a->okind][i]; i++)
		if (n == strlen(verbs[a->okind][i]) &&
		    !memcmp(buf, verbs[a->okind][i], n)) {
			snprintf(a->overb, sizeof(a->overb), "%s",
				 verbs[a->okind][i]);
			return 0;
		}
	snprintf(err, errlen, n ? "unknown control message \"%.*s\"" :
		 "empty control message", (int)(n > 64 ? 64 : n), buf);
	return -EINVAL;
}

/* nodes/NODE/ctl: root's (cordon and drain move every VM of a node). */
static int node_target(struct fs *fs, fuse_ino_t ino, struct action *a,
		       enum core_right *right)
{
	struct core_node *n;
	enum node_file nf;
	int slot, rc = -ENOENT;

	if (!fs_ino_node(ino, &slot, &nf) || nf != NF_CTL)
		return -EACCES;
	core_model_rdlock(fs->m);
	n = core_model_node_slot(fs->m, slot);
	if (n) {
		snprintf(a->oname, sizeof(a->oname), "%s", n->name);
		rc = 0;
	}
	core_model_unlock(fs->m);
	a->kind = ACT_NODE;
	a->owner = 0;
	*right = CORE_R_ADMIN;
	return rc;
}

/* gen is the generation of the VM the file was opened on: a slot
 * reused by another VM must not take writes meant for the old one. */
static int write_target(struct fs *fs, fuse_ino_t ino, uint64_t gen,
			struct action *a, enum core_right *right)
{
	struct core_vm *vm;
	enum vm_file f;
	int slot, rc = 0;

	if (ino == INO_VMS_CTL) {
		a->kind = ACT_CTL;
		*right = CORE_R_CREATE;
		return 0;
	}
	if (!fs_ino_vm(ino, &slot, &f) || (f != VF_CTL && f != VF_SPEC))
		return -EACCES;
	a->kind = f == VF_CTL ? ACT_CTL : ACT_SPEC;
	*right = CORE_R_CONTROL;
	core_model_rdlock(fs->m);
	vm = core_model_slot(fs->m, slot);
	if (vm && fs_vm_generation(vm) == gen) {
		snprintf(a->vm, sizeof(a->vm), "%s", vm->name);
		a->owner = vm->owner;
	} else {
		rc = -ENOENT;
	}
	core_model_unlock(fs->m);
	return rc;
}

bool fs_is_spec(fuse_ino_t ino)
{
	enum vm_file f;
	enum obj_file of;
	int slot;

	return (fs_ino_vm(ino, &slot, &f) && f == VF_SPEC) ||
	       (fs_ino_obj(ino, &slot, &of) && of == OF_SPEC);
}

struct spechandle *fs_spec_open(uint64_t gen)
{
	struct spechandle *h = calloc(1, sizeof(*h));

	if (h)
		h->gen = gen;
	return h;
}

static void action_free(struct action *a)
{
	if (a) {
		json_object_put(a->spec);
		free(a);
	}
}

void fs_spec_release(struct spechandle *h)
{
	if (h) {
		action_free(h->ready);
		free(h);
	}
}

/* The one write a spec handle takes; anything after it (another offset,
 * a second write at 0) spoils the handle, so that nothing applies. */
static bool spec_first_write(struct fs *fs, struct spechandle *h, off_t off)
{
	struct action *stale;
	bool first;

	pthread_mutex_lock(&fs->lock);
	first = !h->used && off == 0;
	h->used = true;
	stale = h->ready;
	h->ready = NULL;
	pthread_mutex_unlock(&fs->lock);
	action_free(stale);
	return first;
}

static int parse_write(fuse_ino_t ino, const char *buf, size_t size,
		       struct action *a, char *err, size_t errlen)
{
	if (a->obj)
		return obj_parse(ino, buf, size, a, err, errlen);
	if (a->kind == ACT_NODE)
		return core_node_ctl_parse(buf, size, &a->nverb, err, errlen);
	if (a->kind == ACT_CTL)
		return core_ctl_parse(buf, size, ino == INO_VMS_CTL, &a->msg,
				      err, errlen);
	return parse_spec(buf, size, &a->spec, err, errlen);
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	char err[CORE_ERR_MAX] = "";
	struct action *a = calloc(1, sizeof(*a));
	struct spechandle *h = NULL;
	enum core_right right;
	uint64_t gen = fi->fh;
	int rc;

	if (!a) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	a->written = size;
	ino = fs_ctl_real(ino);
	if (fs_is_spec(ino)) {
		h = (struct spechandle *)(uintptr_t)fi->fh;
		gen = h ? h->gen : 0;
	}
	if (fs_ino_obj(ino, &(int){ 0 }, &(enum obj_file){ 0 }))
		rc = obj_target(fs, ino, gen, a, &right);
	else if (fs_ino_node(ino, &(int){ 0 }, &(enum node_file){ 0 }))
		rc = node_target(fs, ino, a, &right);
	else
		rc = write_target(fs, ino, gen, a, &right);
	/* A refused caller leaves no trace in the VM's err or events. */
	if (rc == 0)
		rc = req_may(req, a->owner, right);
	if (rc == 0 && !h && fs_is_spec(ino))
		rc = -ENOMEM;   /* its handle could not be made at open */
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		free(a);
		return;
	}
	if (h && !spec_first_write(fs, h, off)) {
		snprintf(err, sizeof(err), "spec: a spec must arrive in one "
			 "write of at most %d bytes", FS_SPEC_WRITE_MAX);
		refuse(req, a, -EINVAL, err);
		return;
	}
	rc = parse_write(ino, buf, size, a, err, sizeof(err));
	if (rc < 0) {
		refuse(req, a, rc, err);
		return;
	}
	a->msg.owner = fuse_req_ctx(req)->uid;
	if (!h) {
		start_action(req, a);
		return;
	}
	/* Whole and valid: applied when the writer closes. */
	a->flush = true;
	pthread_mutex_lock(&fs->lock);
	h->ready = a;
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_write(req, size);
}

/* close(2) of a spec handle applies what its one write brought, and
 * answers with the outcome (the err line has it too). */
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct spechandle *h = NULL;
	struct fuse_entry_param e;
	struct action *a = NULL;

	ino = fs_ctl_real(ino);
	if (fs_is_spec(ino))
		h = (struct spechandle *)(uintptr_t)fi->fh;
	if (h) {
		pthread_mutex_lock(&fs->lock);
		a = h->ready;
		h->ready = NULL;
		pthread_mutex_unlock(&fs->lock);
	}
	if (!a) {
		fuse_reply_err(req, 0);
		return;
	}
	/* The VM or template may have been replaced since the write. */
	if (fs_fill_entry(fs, ino, &e) < 0 || e.generation != h->gen) {
		action_free(a);
		fuse_reply_err(req, ENOENT);
		return;
	}
	start_action(req, a);
}

/* mkdir and rmdir in templates/ and vms/VM/snapshots/. */
static bool obj_dir_op(fuse_req_t req, fuse_ino_t parent, const char *name,
		       const char *verb)
{
	struct fs *fs = req_fs(req);
	char err[CORE_ERR_MAX];
	struct action *a;
	struct core_vm *vm = NULL;
	enum vm_file f;
	int slot, rc;

	if (parent != INO_TEMPLATES &&
	    !(fs_ino_vm(parent, &slot, &f) && f == VF_SNAPSHOTS))
		return false;
	if (core_name_check(name, err, sizeof(err)) < 0) {
		fuse_reply_err(req, EINVAL);
		return true;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		fuse_reply_err(req, ENOMEM);
		return true;
	}
	a->kind = ACT_OBJ;
	a->obj = true;
	a->okind = parent == INO_TEMPLATES ? CORE_KIND_TEMPLATE :
					     CORE_KIND_SNAPSHOT;
	snprintf(a->oname, sizeof(a->oname), "%s", name);
	snprintf(a->overb, sizeof(a->overb), "%s", verb);
	a->msg.owner = fuse_req_ctx(req)->uid;
	if (parent != INO_TEMPLATES) {
		core_model_rdlock(fs->m);
		vm = core_model_slot(fs->m, slot);
		if (vm) {
			snprintf(a->vm, sizeof(a->vm), "%s", vm->name);
			a->owner = vm->owner;
		}
		core_model_unlock(fs->m);
		if (!vm) {
			free(a);
			fuse_reply_err(req, ENOENT);
			return true;
		}
	}
	rc = req_may(req, a->owner, parent == INO_TEMPLATES ? CORE_R_ADMIN :
							     CORE_R_CONTROL);
	if (rc < 0) {
		free(a);
		fuse_reply_err(req, -rc);
		return true;
	}
	start_action(req, a);
	return true;
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	char err[CORE_ERR_MAX];
	struct action *a;
	int rc;

	if (obj_dir_op(req, parent, name, "create"))
		return;
	if (parent != INO_VMS) {
		fuse_reply_err(req, parent == INO_ROOT ? EPERM : EOPNOTSUPP);
		return;
	}
	rc = req_may(req, 0, CORE_R_CREATE);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = core_name_check(name, err, sizeof(err));
	if (rc < 0) {
		core_model_record(req_fs(req)->m, NULL, -EINVAL, err);
		fuse_reply_err(req, -rc);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	a->kind = ACT_MKDIR;
	a->msg.verb = CORE_V_CREATE;
	a->msg.running = -1;
	a->msg.keep_days = a->msg.keep_count = -1;
	a->msg.owner = fuse_req_ctx(req)->uid;
	snprintf(a->msg.arg, sizeof(a->msg.arg), "%s", name);
	start_action(req, a);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct core_vm *vm;
	struct action *a;
	uid_t owner = 0;
	bool found;
	int rc;

	if (obj_dir_op(req, parent, name, "delete"))
		return;
	if (parent != INO_VMS) {
		fuse_reply_err(req, parent == INO_ROOT ? EPERM : EOPNOTSUPP);
		return;
	}
	core_model_rdlock(fs->m);
	vm = core_model_find(fs->m, name);
	found = vm != NULL;
	if (vm)
		owner = vm->owner;
	core_model_unlock(fs->m);
	/* Like the sticky vms/: another's VM is EPERM, a stranger EACCES. */
	rc = found ? req_may(req, owner, CORE_R_CONTROL) : 0;
	if (rc < 0 && req_may(req, 0, CORE_R_SEE) == 0)
		rc = -EPERM;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	a = found ? calloc(1, sizeof(*a)) : NULL;
	if (!a) {
		fuse_reply_err(req, found ? ENOMEM : ENOENT);
		return;
	}
	a->kind = ACT_RMDIR;
	a->msg.verb = CORE_V_DELETE;
	a->msg.running = -1;
	a->msg.keep_days = a->msg.keep_count = -1;
	snprintf(a->vm, sizeof(a->vm), "%s", name);
	start_action(req, a);
}

/* ---- wait ---------------------------------------------------------- */

void fs_wait_open(struct fs *fs, fuse_req_t req, int slot,
		  struct fuse_file_info *fi)
{
	struct waitfile *wf = calloc(1, sizeof(*wf));
	struct core_vm *vm;

	if (!wf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	core_model_rdlock(fs->m);
	vm = core_model_slot(fs->m, slot);
	if (vm) {
		snprintf(wf->uid, sizeof(wf->uid), "%s", vm->uid);
		wf->seen = malloc(vm->len_status + 1);
		if (wf->seen) {
			memcpy(wf->seen, vm->txt_status, vm->len_status);
			wf->seen_len = vm->len_status;
		}
	}
	core_model_unlock(fs->m);
	if (!vm || !wf->seen) {
		fuse_reply_err(req, vm ? ENOMEM : ENOENT);
		fs_wait_release(wf);
		return;
	}
	fi->fh = (uintptr_t)wf;
	fi->noflush = 1;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	fuse_reply_open(req, fi);
}

static void reply_answer(fuse_req_t req, struct waitfile *wf, size_t size,
			 off_t off)
{
	size_t o = off < 0 ? 0 : (size_t)off;

	if (o >= wf->answer_len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, wf->answer + o,
			       wf->answer_len - o < size ? wf->answer_len - o : size);
}

/* Model read lock held.  Returns true when the wait is over (answer set
 * or the VM gone, *gone then true). */
static bool wait_done(struct fs *fs, int slot, struct waitfile *wf, bool *gone)
{
	struct core_vm *vm = core_model_slot(fs->m, slot);

	*gone = !vm || strcmp(vm->uid, wf->uid) != 0;
	if (*gone)
		return true;
	if (vm->len_status == wf->seen_len &&
	    !memcmp(vm->txt_status, wf->seen, wf->seen_len))
		return false;
	wf->answer = malloc(vm->len_status + 1);
	if (!wf->answer)
		return false;
	memcpy(wf->answer, vm->txt_status, vm->len_status);
	wf->answer_len = vm->len_status;
	return true;
}

void fs_wait_read(struct fs *fs, fuse_req_t req, int slot, size_t size,
		  off_t off, struct fuse_file_info *fi)
{
	struct waitfile *wf = (struct waitfile *)(uintptr_t)fi->fh;
	struct pending *p;
	bool gone;

	/* fs->lock guards wf->answer: two reads of one open file may race,
	 * and the notifier sets it too. */
	core_model_rdlock(fs->m);
	pthread_mutex_lock(&fs->lock);
	if (wf->answer || wait_done(fs, slot, wf, &gone)) {
		pthread_mutex_unlock(&fs->lock);
		core_model_unlock(fs->m);
		if (!wf->answer)
			fuse_reply_err(req, ENOENT);
		else
			reply_answer(req, wf, size, off);
		return;
	}
	pthread_mutex_unlock(&fs->lock);
	p = calloc(1, sizeof(*p));
	if (p) {
		p->slot = slot;
		p->wf = wf;
		p->size = size;
		park(fs, req, p);
	}
	core_model_unlock(fs->m);
	if (!p)
		fuse_reply_err(req, ENOMEM);
}

/* Model read lock and fs->lock held (in that order). */
void fs_wake_waits(struct fs *fs, int slot)
{
	struct pending **pp = &fs->pending, *p;
	bool gone;

	while ((p = *pp)) {
		if (!p->wf || (slot >= 0 && p->slot != slot) ||
		    !wait_done(fs, p->slot, p->wf, &gone)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (gone)
			fuse_reply_err(p->req, ENOENT);
		else
			reply_answer(p->req, p->wf, p->size, 0);
		free(p);
	}
}

void fs_wait_release(struct waitfile *wf)
{
	free(wf->seen);
	free(wf->answer);
	free(wf);
}
