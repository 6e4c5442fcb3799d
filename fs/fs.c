/* Mounting, the FUSE session loop, and the notifier thread that turns
 * model changes into kernel cache invalidations and wakes blocked waits.
 * Invalidations are never sent from a request handler (that can
 * deadlock); writers wait for the notifier instead, so a ctl write
 * returns only once every reader sees its effect. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fs/internal.h"

struct pending *fs_pending_take(struct fs *fs, uint64_t id)
{
	struct pending **pp, *p = NULL;

	pthread_mutex_lock(&fs->lock);
	for (pp = &fs->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return p;
}

static int grow_slots(struct fs *fs, int slot)
{
	size_t n = fs->nslot_seq;
	uint64_t *s;

	if ((size_t)slot < n)
		return 0;
	while (n <= (size_t)slot)
		n = n ? n * 2 : 64;
	s = realloc(fs->slot_seq, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s + fs->nslot_seq, 0, (n - fs->nslot_seq) * sizeof(*s));
	fs->slot_seq = s;
	fs->nslot_seq = n;
	return 0;
}

/* The model's watcher: queue only, the notifier thread does the rest. */
void fs_changed(void *arg, const char *name, int slot, unsigned what,
		uint64_t seq)
{
	struct fs *fs = arg;
	struct change *c;

	pthread_mutex_lock(&fs->lock);
	if (fs->qlen == fs->qcap) {
		size_t n = fs->qcap ? fs->qcap * 2 : 64;

		c = realloc(fs->q, n * sizeof(*c));
		if (!c)
			goto out;
		fs->q = c;
		fs->qcap = n;
	}
	c = &fs->q[fs->qlen++];
	c->slot = slot;
	c->what = what;
	c->seq = seq;
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	if (slot >= 0 && grow_slots(fs, slot) == 0)
		fs->slot_seq[slot] = seq;
	else if (slot < 0)
		fs->tree_seq = seq;
	pthread_cond_broadcast(&fs->cond);
out:
	pthread_mutex_unlock(&fs->lock);
}

void fs_wait_delivered(struct fs *fs, uint64_t seq)
{
	pthread_mutex_lock(&fs->lock);
	while (fs->delivered < seq && !fs->stopping)
		pthread_cond_wait(&fs->cond, &fs->lock);
	pthread_mutex_unlock(&fs->lock);
}

static void inval(struct fs *fs, fuse_ino_t ino)
{
	/* -ENOENT: the kernel never looked it up, nothing cached. */
	fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

struct node_slots {
	int slot[256];
	int n;
};

static int node_slot(struct core_node *node, void *arg)
{
	struct node_slots *ns = arg;

	if (ns->n < 256)
		ns->slot[ns->n++] = node->slot;
	return 0;
}

/* Nodes are few: every status is invalidated, and the listing (outside
 * the model lock, like every other invalidation). */
static void invalidate_nodes(struct fs *fs)
{
	struct node_slots ns = { .n = 0 };

	core_model_rdlock(fs->m);
	core_model_each_node(fs->m, node_slot, &ns);
	core_model_unlock(fs->m);
	for (int i = 0; i < ns.n; i++)
		inval(fs, fs_node_ino(ns.slot[i], NF_STATUS));
	inval(fs, INO_NODES);
}

static void invalidate(struct fs *fs, const struct change *c)
{
	static const struct {
		unsigned bit;
		enum vm_file f;
	} map[] = {
		{ CORE_CHG_STATUS, VF_STATUS }, { CORE_CHG_SPEC, VF_SPEC },
		{ CORE_CHG_ERR, VF_ERR },       { CORE_CHG_EVENTS, VF_EVENTS },
		{ CORE_CHG_STATUS, VF_CONSOLE },
	};
	const unsigned known = CORE_CHG_STATUS | CORE_CHG_SPEC | CORE_CHG_ERR |
		CORE_CHG_EVENTS | CORE_CHG_ADDED | CORE_CHG_REMOVED;

	if (c->slot < 0) {
		/* Only what moved: a node heartbeat must not cost vms/ its
		 * cached attributes. */
		if (c->what & CORE_CHG_NODES)
			invalidate_nodes(fs);
		if (c->what & CORE_CHG_ERR)
			inval(fs, INO_VMS_ERR);
		if (c->what & (CORE_CHG_ADDED | CORE_CHG_REMOVED))
			inval(fs, INO_VMS);
		return;
	}
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (c->what & (map[i].bit | CORE_CHG_REMOVED))
			inval(fs, fs_vm_ino(c->slot, map[i].f));
	if ((c->what & ~known) || (c->what & CORE_CHG_REMOVED) || !c->what)
		inval(fs, fs_vm_ino(c->slot, VF_STATS));
	if (c->what & (CORE_CHG_ADDED | CORE_CHG_REMOVED))
		inval(fs, INO_VMS);
	if ((c->what & CORE_CHG_REMOVED) && c->name[0])
		fuse_lowlevel_notify_inval_entry(fs->se, INO_VMS, c->name,
						 strlen(c->name));
}

static void deliver(struct fs *fs, struct change *batch, size_t n)
{
	uint64_t top = 0;

	for (size_t i = 0; i < n; i++) {
		invalidate(fs, &batch[i]);
		if (batch[i].seq > top)
			top = batch[i].seq;
	}
	core_model_rdlock(fs->m);
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < n; i++)
		if (batch[i].slot >= 0 &&
		    (batch[i].what & (CORE_CHG_STATUS | CORE_CHG_REMOVED)))
			fs_wake_waits(fs, batch[i].slot);
	if (top > fs->delivered)
		fs->delivered = top;
	pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->lock);
	core_model_unlock(fs->m);
}

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;
	struct change *batch = NULL;
	size_t n;

	for (;;) {
		pthread_mutex_lock(&fs->lock);
		while (!fs->qlen && !fs->stopping)
			pthread_cond_wait(&fs->cond, &fs->lock);
		if (fs->stopping && !fs->qlen) {
			pthread_mutex_unlock(&fs->lock);
			break;
		}
		free(batch);
		batch = fs->q;
		n = fs->qlen;
		fs->q = NULL;
		fs->qlen = fs->qcap = 0;
		pthread_mutex_unlock(&fs->lock);
		deliver(fs, batch, n);
	}
	free(batch);
	return NULL;
}

#define FUSE_SUPER_MAGIC 0x65735546

/* statfs always reaches the daemon; stat may be answered from the
 * attribute cache. */
int fs_mounted(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) < 0)
		return -errno;
	return sf.f_type == FUSE_SUPER_MAGIC ? 0 : -EMEDIUMTYPE;
}

/* A daemon killed with -9 leaves a mount that answers ENOTCONN: detach
 * it.  A live mount of anything else is left alone. */
static int detach_stale(const char *mp, char *err, size_t errlen)
{
	int st = fs_mounted(mp);

	if (st != -ENOTCONN && st != -ECONNABORTED)
		return 0;
	if (umount2(mp, MNT_DETACH) < 0) {
		snprintf(err, errlen, "cannot detach stale mount %s: %s", mp,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

static int check_mountpoint(const char *mp, char *err, size_t errlen)
{
	struct stat st;
	int rc = detach_stale(mp, err, errlen);

	if (rc < 0)
		return rc;
	if (mkdir(mp, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", mp, strerror(-rc));
		return rc;
	}
	if (stat(mp, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat %s: %s", mp, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mount point %s is not a directory", mp);
		return -ENOTDIR;
	}
	/* Only another live FUSE file system (a second daemon) is refused:
	 * any other mount, such as the bind mount of a pod's hostPath
	 * volume, is mounted over. */
	if (fs_mounted(mp) == 0) {
		snprintf(err, errlen, "mount point %s is busy: another FUSE "
			 "file system is mounted there (a second daemon?)", mp);
		return -EBUSY;
	}
	return 0;
}

static int start_session(struct fs *fs, const struct fs_config *cfg,
			 char *err, size_t errlen)
{
	char *argv[] = { "hypersdk-mountd", "-o",
			 "fsname=hypersdk,subtype=vmfs,default_permissions,"
			 "allow_other", cfg->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(cfg->debug ? 4 : 3, argv);

	fs->se = fuse_session_new(&args, &fs_ll_timed_ops,
				  sizeof(fs_ll_timed_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		snprintf(err, errlen, "cannot create the FUSE session");
		return -EIO;
	}
	if (fuse_session_mount(fs->se, fs->mountpoint) != 0) {
		snprintf(err, errlen, "cannot mount %s (is fuse3 installed "
			 "and /dev/fuse usable?)", fs->mountpoint);
		return -EIO;
	}
	fs->mounted = true;
	return 0;
}

int fs_check(const char *mountpoint, char *err, size_t errlen)
{
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		snprintf(err, errlen, "/dev/fuse is missing or not usable: %s "
			 "(modprobe fuse?)", strerror(errno));
		return -ENODEV;
	}
	return check_mountpoint(mountpoint, err, errlen);
}

int fs_mount(const struct fs_config *cfg, struct fs **out, char *err,
	     size_t errlen)
{
	struct fs *fs;
	int rc = fs_check(cfg->mountpoint, err, errlen);

	if (rc < 0)
		return rc;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->m = cfg->model;
	fs->ops = cfg->ops;
	fs->arg = cfg->arg;
	fs->acl = cfg->acl;
	fs->mountpoint = strdup(cfg->mountpoint);
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->cond, NULL);
	rc = fs->mountpoint ? start_session(fs, cfg, err, errlen) : -ENOMEM;
	if (rc == 0 && pthread_create(&fs->notifier, NULL, notifier_main, fs))
		rc = -EAGAIN;
	if (rc < 0) {
		fs_free(fs);
		return rc;
	}
	fs->notifier_started = true;
	core_model_watch(fs->m, fs_changed, fs);
	*out = fs;
	return 0;
}

int fs_run(struct fs *fs)
{
	struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 16 };
	sigset_t stop;
	int rc;

	if (fuse_set_signal_handlers(fs->se) != 0)
		return -EIO;
	/* Only this thread can wake the loop: the stop signals go here. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
	rc = fuse_session_loop_mt(fs->se, &cfg);
	fuse_remove_signal_handlers(fs->se);
	return rc < 0 ? rc : 0;
}

/* Parked requests get EINTR so no reader stays blocked past unmount. */
static void drop_pending(struct fs *fs)
{
	struct pending *p;

	pthread_mutex_lock(&fs->lock);
	while ((p = fs->pending)) {
		fs->pending = p->next;
		fuse_reply_err(p->req, EINTR);
		free(p);
	}
	fs->stopping = true;
	pthread_cond_broadcast(&fs->cond);
	/* Actions still running hold fs; they end when the backend answers. */
	while (fs->actions > 0)
		pthread_cond_wait(&fs->cond, &fs->lock);
	pthread_mutex_unlock(&fs->lock);
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->notifier_started) {
		core_model_unwatch(fs->m, fs_changed, fs);
		drop_pending(fs);
		pthread_join(fs->notifier, NULL);
	}
	if (fs->se) {
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
		fs_ctl_free_all();
	}
	pthread_mutex_destroy(&fs->lock);
	pthread_cond_destroy(&fs->cond);
	free(fs->q);
	free(fs->slot_seq);
	free(fs->mountpoint);
	free(fs);
}
