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
};

struct fs_config {
	const char *mountpoint;
	struct core_model *model;
	const struct fs_ops *ops;
	void *arg;
	bool debug;             /* libfuse debug output */
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
/* Serve requests until SIGTERM, SIGINT or SIGHUP, or an unmount;
 * returns 0 or -errno.  It unblocks those signals in the calling thread;
 * the caller blocks them before making any other thread, since a signal
 * taken by another thread would not wake the loop. */
int fs_run(struct fs *fs);
/* Unmount and free. */
void fs_free(struct fs *fs);

#endif
