/* fs: the FUSE low-level file system.  Inode table, the tree, ctl parsing
 * and dispatch, blocking wait, cache invalidation.  Reads only from the
 * in-memory model; actions go through the fs_ops the daemon provides. */
#ifndef HYPERSDK_FS_H
#define HYPERSDK_FS_H

#include "core/core.h"

/* Actions, called from a thread of fs's own (never a FUSE request
 * handler), and allowed to block until the action is done.  They return
 * 0 or -errno with a reason in err; fs records failures in err/events.
 * A reader's Ctrl-C answers EINTR at once while the action goes on. */
struct fs_ops {
	/* vm is NULL for vms/ctl (create). */
	int (*ctl)(void *arg, const char *vm, const struct core_ctl *msg,
		   char *err, size_t errlen);
	/* A validated spec document replaces the VM's spec (ownership of
	 * spec passes to the callee). */
	int (*spec)(void *arg, const char *vm, json_object *spec, char *err,
		    size_t errlen);
	/* An operation, snapshot or template: verb "create" (mkdir),
	 * "delete" (rmdir or ctl), "revert" or "import" (ctl), or "spec"
	 * (a spec write; spec ownership passes).  vm is the snapshot's VM,
	 * NULL for the other kinds. */
	int (*obj)(void *arg, enum core_kind kind, const char *vm,
		   const char *name, const char *verb, json_object *spec,
		   char *err, size_t errlen);
	/* nodes/NODE/ctl (root only). */
	int (*node)(void *arg, const char *node, enum core_node_verb verb,
		    char *err, size_t errlen);
};

struct fs_config {
	const char *mountpoint;
	struct core_model *model;
	const struct fs_ops *ops;
	void *arg;
	bool debug;             /* libfuse debug output */
	struct core_acl acl;    /* the daemon's --group (core_may) */
};

struct fs;

/* Mount (lazily unmounting a stale mount left by a crashed daemon first).
 * -EBUSY with a reason when something else is mounted there, -ENODEV
 * when /dev/fuse is missing. */
int fs_mount(const struct fs_config *cfg, struct fs **out, char *err,
	     size_t errlen);
/* The checks fs_mount makes first, for a daemon that wants to refuse
 * before it sets anything else up. */
int fs_check(const char *mountpoint, char *err, size_t errlen);
/* What is mounted at DIR: 0 for a FUSE file system that answers,
 * -EMEDIUMTYPE for anything else (a plain folder, a bind mount), or
 * statfs's -errno (-ENOTCONN or -ECONNABORTED: a dead daemon's mount). */
int fs_mounted(const char *dir);
/* Serve requests until SIGTERM, SIGINT or SIGHUP, or an unmount;
 * returns 0 or -errno.  It unblocks those signals in the calling thread;
 * the caller blocks them before making any other thread, since a signal
 * taken by another thread would not wake the loop. */
int fs_run(struct fs *fs);
/* Unmount and free. */
void fs_free(struct fs *fs);

/* ---- who asks ------------------------------------------------------ */

/* The credentials of a caller the kernel names by pid, uid and gid (a
 * FUSE request, a unix socket peer's SO_PEERCRED): supplementary groups
 * from /proc/PID/status.  -ESRCH, with no supplementary groups, when the
 * process is gone or its fsuid/fsgid differ from uid/gid.  With
 * core_may and the daemon's --group (fs_config.acl) this is the rule
 * the tree applies; the dashboard applies the same. */
int fs_cred_of(pid_t pid, uid_t uid, gid_t gid, struct core_cred *out);

/* ---- request statistics (for /metrics) ---------------------------- */

/* Process-wide counters of FUSE requests by kind: lock-free (relaxed
 * atomic adds), so the read fast path pays two vDSO clock reads and
 * three adds.  The time is the handler's: for a write, mkdir or rmdir
 * it is the dispatch to the action thread, not the action. */
enum fs_op {
	FS_OP_LOOKUP, FS_OP_GETATTR, FS_OP_SETATTR, FS_OP_READDIR,
	FS_OP_OPEN, FS_OP_READ, FS_OP_WRITE, FS_OP_RELEASE, FS_OP_MKDIR,
	FS_OP_RMDIR, FS_OP_STATFS, FS_OP_COUNT,
};
#define FS_STATS_BUCKETS 12
/* Upper bounds in seconds of the histogram buckets (le), ascending. */
extern const double fs_stats_le[FS_STATS_BUCKETS];

struct fs_op_stats {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t bucket[FS_STATS_BUCKETS];  /* not cumulative; the rest
					      * of count is above the last */
};

const char *fs_op_name(enum fs_op op);
/* A snapshot of every op's counters (each read atomically; the set is
 * not one instant, which a scrape does not need). */
void fs_stats(struct fs_op_stats out[FS_OP_COUNT]);

#endif
