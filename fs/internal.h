/* Shared between the files of fs/ only; the module's contract is fs.h. */
#ifndef HYPERSDK_FS_INTERNAL_H
#define HYPERSDK_FS_INTERNAL_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include "fs/fs.h"

/* Inode numbers are computed, not allocated: fixed ones for the top of
 * the tree, then VF_STRIDE numbers per VM slot.  Nothing to free on
 * forget, and a lookup is a name -> slot search in the model. */
enum {
	INO_ROOT = 1,
	INO_VMS,
	INO_VMS_CTL,
	INO_VMS_ERR,
	INO_TEMPLATES,
	INO_OPERATIONS,
	INO_NODES,
	INO_FIRST_VM = 64,
};

enum vm_file {
	VF_DIR,
	VF_CTL,
	VF_STATUS,
	VF_SPEC,
	VF_ERR,
	VF_EVENTS,
	VF_WAIT,
	VF_STATS,
	VF_SNAPSHOTS,
	VF_CONSOLE,
	VF_COUNT,
	VF_STRIDE = 16,
};

/* operations/NAME/, templates/NAME/ and vms/VM/snapshots/NAME/: one
 * slot space for the three kinds, between VMs and nodes. */
#define INO_FIRST_OBJ (1ULL << 40)
enum obj_file { OF_DIR, OF_STATUS, OF_SPEC, OF_CTL, OF_COUNT, OF_STRIDE = 4 };

/* nodes/NODE/ and nodes/NODE/status, far above any VM inode. */
#define INO_FIRST_NODE (1ULL << 48)
/* Per-lookup inodes of ctl files (ctlino.c), above everything. */
#define INO_FIRST_DYN (1ULL << 56)
enum node_file { NF_DIR, NF_STATUS, NF_CTL, NF_COUNT, NF_STRIDE = 4 };

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

/* A request answered later, from another thread: a ctl or spec write, a
 * mkdir or rmdir, or a blocking read of wait.  Interrupts find it by id,
 * never by pointer, so a late interrupt cannot touch freed memory. */
struct pending {
	struct pending *next;
	uint64_t id;
	fuse_req_t req;
	int slot;               /* wait: the VM slot */
	struct waitfile *wf;    /* wait: the open file */
	size_t size;            /* wait: bytes asked for */
};

/* Per-open state of a wait file. */
struct waitfile {
	char uid[40];           /* the VM incarnation it waits on */
	char *seen;             /* status text when opened */
	size_t seen_len;
	char *answer;           /* status text returned */
	size_t answer_len;
};

struct change {
	int slot;
	unsigned what;
	uint64_t seq;
	char name[CORE_NAME_MAX + 1];
};

struct fs {
	struct fuse_session *se;
	struct core_model *m;
	const struct fs_ops *ops;
	void *arg;
	struct core_acl acl;
	char *mountpoint;
	bool mounted;

	pthread_mutex_t lock;           /* everything below */
	pthread_cond_t cond;            /* queue and delivery progress */
	struct change *q;
	size_t qlen, qcap;
	uint64_t delivered;             /* changes up to this seq are invalidated */
	uint64_t *slot_seq;             /* last change seq per slot */
	size_t nslot_seq;
	uint64_t tree_seq;              /* last tree-level change */
	struct pending *pending;
	uint64_t next_id;
	bool stopping;
	int actions;                    /* action threads running */
	pthread_t notifier;
	bool notifier_started;
};

/* tree.c */
extern const struct fuse_lowlevel_ops fs_ll_ops;
/* stats.c: fs_ll_ops with each request counted and timed */
extern const struct fuse_lowlevel_ops fs_ll_timed_ops;
bool fs_ino_vm(fuse_ino_t ino, int *slot, enum vm_file *f);
bool fs_ino_node(fuse_ino_t ino, int *slot, enum node_file *f);
fuse_ino_t fs_node_ino(int slot, enum node_file f);
fuse_ino_t fs_vm_ino(int slot, enum vm_file f);
bool fs_ino_obj(fuse_ino_t ino, int *slot, enum obj_file *f);
fuse_ino_t fs_obj_ino(int slot, enum obj_file f);
/* Which files an object of a kind has (OF_CTL: snapshots, templates). */
bool fs_obj_has(enum core_kind kind, enum obj_file f);

struct dirbuf {
	fuse_req_t req;
	struct fs *fs;
	char *buf;
	size_t size, used;
	off_t index, off;
	bool plus, full;
};
/* Append one entry when its index is at or past the requested offset. */
void fs_dir_add(struct dirbuf *d, const char *name, fuse_ino_t ino);

/* objtree.c (model read lock held for fs_obj_at) */
struct core_obj *fs_obj_at(struct fs *fs, fuse_ino_t ino, enum obj_file *f);
mode_t fs_obj_mode(enum core_kind kind, enum obj_file f);
uid_t fs_obj_owner(struct fs *fs, const struct core_obj *o);
fuse_ino_t fs_obj_child(struct fs *fs, fuse_ino_t parent, const char *name);
/* vm_slot >= 0: the snapshots of that VM. */
void fs_list_objs(struct dirbuf *d, enum core_kind kind, int vm_slot);
void fs_list_obj_dir(struct dirbuf *d, int slot);
/* Tells VM incarnations apart (a slot is reused after a delete). */
uint64_t fs_vm_generation(const struct core_vm *vm);
int fs_fill_entry(struct fs *fs, fuse_ino_t ino, struct fuse_entry_param *e);
int fs_text(struct fs *fs, fuse_ino_t ino, const char **txt, size_t *len,
	    char *tmp, size_t tmplen);

/* ctlino.c: a fresh inode per lookup of a ctl file */
fuse_ino_t fs_ctl_clone(fuse_ino_t real);
/* The ctl file a per-lookup inode stands for; other inodes as they are;
 * 0 when forgotten. */
fuse_ino_t fs_ctl_real(fuse_ino_t ino);
void fs_ctl_forget(fuse_ino_t ino, uint64_t n);
void fs_ctl_free_all(void);

/* An open spec file (a VM's or a template's).  A spec is one message:
 * the write at offset 0 is parsed and checked (its errors come back from
 * write(2)) and kept here; flush (close) applies it.  Any other write on
 * the handle is refused and drops what was kept, so a spec cut in two
 * never applies.  Fields under fs->lock. */
struct action;
/* What cat and cp write at once (128 KiB buffers), and within what one
 * FUSE write carries (ll_init's max_write): so a spec written by them is
 * one message.  Below CORE_SPEC_MAX. */
#define FS_SPEC_WRITE_MAX (128 * 1024)
struct spechandle {
	uint64_t gen;           /* the VM or object it was opened on */
	bool used;              /* a write came */
	struct action *ready;   /* parsed, waiting for flush */
};

/* ctlfile.c */
bool fs_is_spec(fuse_ino_t ino);
struct spechandle *fs_spec_open(uint64_t gen);
void fs_spec_release(struct spechandle *h);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_wait_open(struct fs *fs, fuse_req_t req, int slot,
		  struct fuse_file_info *fi);
void fs_wait_read(struct fs *fs, fuse_req_t req, int slot, size_t size,
		  off_t off, struct fuse_file_info *fi);
void fs_wait_release(struct waitfile *wf);

/* fs.c */
void fs_changed(void *arg, const char *name, int slot, unsigned what,
		uint64_t seq);
/* Wait until the kernel has been told about every change up to seq. */
void fs_wait_delivered(struct fs *fs, uint64_t seq);
/* Under fs->lock: answer parked waits of slot whose status moved. */
void fs_wake_waits(struct fs *fs, int slot);
struct pending *fs_pending_take(struct fs *fs, uint64_t id);

#endif
