/* backend: libvirt/QEMU.  Domain XML from a spec, storage pool and volumes,
 * cloud-init seed images, lifecycle, stats and lifecycle events.  The only
 * module that includes <libvirt/...>.
 *
 * Every call is thread-safe (libvirt connections are), returns 0 or
 * -errno and puts a one-line reason for users into err.  Calls reconnect
 * once when libvirtd went away and came back. */
#ifndef HYPERSDK_BACKEND_H
#define HYPERSDK_BACKEND_H

#include "core/core.h"

enum be_accel {
	BE_ACCEL_AUTO,  /* kvm when /dev/kvm is usable by libvirt, else tcg */
	BE_ACCEL_KVM,
	BE_ACCEL_TCG,
};

/* A storage class: disks whose spec names it live in a libvirt dir pool
 * at dir ("<pool_name>-<name>"). */
#define BE_CLASSES_MAX 16
struct be_class {
	const char *name;
	const char *dir;
	bool shared;            /* the same storage on every node */
};

struct be_config {
	const char *uri;        /* qemu:///system */
	const char *pool_dir;   /* disk images, a libvirt dir pool */
	const char *pool_name;  /* default "hypersdk" */
	const struct be_class *classes; /* disks with a storageClass */
	size_t nclasses;
	const char *node;       /* written into each domain's metadata */
	enum be_accel accel;
	/* kernelBoot files must be root's regular files under this folder
	 * (after symlinks); NULL: kernelBoot is refused. */
	const char *kernel_dir;
};

struct be_conn;

/* Connect, check that libvirt answers, pick the accelerator, make sure
 * the dir pool exists and is active.  Fails with a one-line reason (for
 * example "libvirt at qemu:///system does not answer: ..."). */
int be_open(const struct be_config *cfg, struct be_conn **out, char *err,
	    size_t errlen);
void be_close(struct be_conn *c);
/* "kvm" or "tcg", as chosen by be_open. */
const char *be_accel_name(const struct be_conn *c);
/* Whether the connection to libvirtd is up now, without dialling: a
 * libvirtd that stopped answering is noticed by keepalive (~20 s). */
bool be_conn_alive(struct be_conn *c);

/* What libvirt says about a domain now. */
struct be_info {
	enum core_phase phase;  /* Running, Paused, Stopped, Failed (crashed) */
	char reason[32];        /* libvirt's state reason: booted, shutdown,
				 * destroyed, crashed, user, ... */
	char uuid[40];
	int pid;                /* QEMU pid, 0 when not running */
	int vnc_port;           /* -1 when none */
	char vnc_address[64];
	/* VNC's password (8 characters, the protocol's limit): QEMU never
	 * serves a screen without one.  For the VM's owner only. */
	char vnc_password[16];
	char console[256];      /* serial console pty path when running */
	int cpus;
	uint64_t memory;        /* bytes */
	uint64_t disk_bytes;    /* sum of volume capacities */
	bool has_agent_channel;
	bool agent_connected;
};

/* Create what does not exist yet: volumes <name>_<disk>.qcow2 in the pool,
 * the cloud-init NoCloud seed image when the spec has cloudInit, and the
 * persistent domain with a <hypersdk:vm> metadata element (namespace,
 * uid, node and the spec JSON).  Redefines the domain when it exists (the
 * new XML applies at next start).  Idempotent; on failure removes what
 * this call created.  A disk whose file is an overlay made by a linked
 * clone of the running VM (<name>_<disk>.<unixtime>.qcow2) keeps it. */
int be_define(struct be_conn *c, const char *name, const char *ns,
	      const char *uid, const struct core_spec *spec,
	      json_object *spec_json, char *err, size_t errlen);

/* 0 when this node lets spec's kernelBoot files be used (be_define
 * checks again); -EACCES naming the rule otherwise.  Lets a spec write be
 * refused before anything is redefined. */
int be_boot_check(const struct be_conn *c, const struct core_spec *spec,
		  char *err, size_t errlen);

int be_start(struct be_conn *c, const char *name, char *err, size_t errlen);
/* Ask the guest to power off (ACPI); returns at once. */
int be_shutdown(struct be_conn *c, const char *name, char *err,
		size_t errlen);
/* Pull the plug. */
int be_destroy(struct be_conn *c, const char *name, char *err,
	       size_t errlen);
int be_suspend(struct be_conn *c, const char *name, char *err,
	       size_t errlen);
int be_resume(struct be_conn *c, const char *name, char *err, size_t errlen);
/* Undefine the domain and remove its volumes and seed image.  -EBUSY
 * while it runs. */
int be_undefine(struct be_conn *c, const char *name, char *err,
		size_t errlen);
/* Destroy (if it runs) and undefine the domain, keeping its volumes:
 * another node owns the VM now and runs it from the same shared files. */
int be_forget(struct be_conn *c, const char *name, char *err, size_t errlen);

/* -ENOENT when there is no such domain. */
int be_info(struct be_conn *c, const char *name, struct be_info *out,
	    char *err, size_t errlen);

/* Call fn for each domain with hypersdk metadata (others are skipped).
 * spec_json is borrowed for the call; NULL when the metadata has none. */
int be_list(struct be_conn *c,
	    int (*fn)(const char *name, const char *ns, const char *uid,
		      json_object *spec_json, void *arg),
	    void *arg);

/* Stats of every running hypersdk domain in one libvirt call, rendered as
 * flat "key value" lines (cpu.time_ns, vcpus, memory.actual_bytes,
 * memory.rss_bytes, block.<dev>.rd_bytes, ..., net.<dev>.rx_bytes, ...). */
int be_stats_all(struct be_conn *c,
		 void (*fn)(const char *name, const char *txt, size_t len,
			    void *arg),
		 void *arg);

/* Register for lifecycle events and run libvirt's event loop in a thread
 * of the backend.  fn is called from that thread whenever a domain
 * changed state (started, stopped, paused, crashed, undefined, ...); the
 * receiver re-reads be_info.  now is the phase the event says the domain
 * is in (Running once started or resumed, Paused, Stopped, Failed after a
 * crash), CORE_PHASE_UNKNOWN when it does not say (defined, undefined,
 * the guest agent, a migration away): a receiver whose status shows that
 * phase already may skip the re-read.  Also called with name NULL after
 * a reconnect, meaning "re-read everything". */
typedef void (*be_watch_fn)(void *arg, const char *name, enum core_phase now);
int be_watch(struct be_conn *c, be_watch_fn fn, void *arg);

/* ---- long operations (clone, snapshots, resize, migration, images) ----
 *
 * Long calls report progress through a be_progress and stop early when
 * *cancel becomes true (then they undo what they made and return
 * -ECANCELED).  fn may be NULL; it is called from the calling thread or a
 * backend thread, never with a lock of the caller held by the backend. */
struct be_progress {
	void (*fn)(void *arg, int percent, const char *msg);
	void *arg;
	const volatile int *cancel;     /* may be NULL */
};

/* Clone the stopped-or-running domain src into a new persistent domain
 * dst (stopped): full copies every disk into <dst>_<disk>.qcow2 (progress
 * from bytes copied; a running src is paused for the copy), linked makes
 * qcow2 overlays backed by src's disk files: a stopped src's files are the
 * clones' base from then on; a running src keeps running, its current
 * files are frozen as the base by an external disk-only snapshot and it
 * goes on writing new overlays <src>_<disk>.<unixtime>.qcow2 (-EBUSY when
 * a running src has snapshots).
 * dst gets a new UUID (from uid when it is one), new MAC addresses, its
 * own seed image, metadata (ns, uid, node, spec_json).  -EEXIST when dst
 * exists (domain or any volume); on any failure nothing of dst is left. */
int be_clone(struct be_conn *c, const char *src, const char *dst,
	     const char *ns, const char *uid, json_object *spec_json,
	     bool linked, const struct be_progress *p, char *err,
	     size_t errlen);
/* The domains whose disks' backing chains reach one of name's files (its
 * disks and the frozen bases under them), as "a b c" in out ("" when
 * none).  be_undefine refuses (-EBUSY, naming
 * them) while there are any. */
int be_linked_dependents(struct be_conn *c, const char *name, char *out,
			 size_t outlen);

struct be_snap_info {
	char name[CORE_NAME_MAX + 1];
	char parent[CORE_NAME_MAX + 1]; /* "" for a root snapshot */
	enum core_phase vm_phase;       /* the domain's state when taken */
	bool memory;                    /* has memory state */
	bool current;
	int64_t created;                /* unix seconds */
	uint64_t size_bytes;            /* disk + memory the snapshot holds,
					 * best effort (0 when unknown) */
};
/* Snapshot of the domain's disks, with memory when memory is true and the
 * domain runs (internal qcow2 snapshots; without memory on a running
 * domain it is taken alike but reverts like a disk-only one).  quiesce asks the guest agent to freeze file systems; when
 * no agent answers within a few seconds the snapshot is taken crash-
 * consistent and *quiesced is false (never a hang).  -EEXIST when taken. */
int be_snapshot_create(struct be_conn *c, const char *vm, const char *snap,
		       bool memory, bool quiesce, bool *quiesced,
		       struct be_snap_info *out, char *err, size_t errlen);
/* Back to the snapshot: a memory snapshot resumes running from its saved
 * state; a disk-only one leaves the domain stopped with those disks. */
int be_snapshot_revert(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen);
/* Delete one snapshot; its children are re-parented (libvirt's merge). */
int be_snapshot_delete(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen);
/* -ENOENT when there is no such snapshot. */
int be_snapshot_info(struct be_conn *c, const char *vm, const char *snap,
		     struct be_snap_info *out, char *err, size_t errlen);
/* All snapshots of vm, oldest first; caller frees *out. */
int be_snapshot_list(struct be_conn *c, const char *vm,
		     struct be_snap_info **out, size_t *n, char *err,
		     size_t errlen);

/* Set vCPUs and/or memory (0 = leave as is).  On a running domain the
 * change is made live when it fits the domain's maximum (vCPU hotplug,
 * DIMM hotplug; memory only grows live) and also in the persistent
 * config; *live tells which.  When it
 * cannot be made live, only the persistent config changes (*live false:
 * the caller reports RestartRequired).  Over the maximum: -EINVAL with
 * the limit in err ("cpus=9: the maximum of this VM is 8"). */
int be_resize(struct be_conn *c, const char *vm, int cpus, uint64_t memory,
	      bool *live, char *err, size_t errlen);
/* Maximum vCPUs and memory the domain was defined with. */
int be_limits(struct be_conn *c, const char *vm, int *max_cpus,
	      uint64_t *max_memory, char *err, size_t errlen);

/* The folder of a storage class ("" or NULL: the node's pool), in
 * libvirt's spelling; NULL for a class the node lacks. */
const char *be_folder(const struct be_conn *c, const char *klass);

/* A target node's folder for a storage class ("" for its --pool-dir). */
struct be_dest_dir {
	const char *klass;
	const char *dir;
};

struct be_migrate_opts {
	const char *dest_uri;           /* libvirt URI of the target node,
					 * e.g. qemu+tls://node2/system;
					 * qemu+tls:// migrates over TLS
					 * (VIR_MIGRATE_TLS) */
	const char *migrate_uri;        /* data channel, e.g. tcp://127.0.0.2;
					 * NULL: libvirt's default */
	const char *dest_node;          /* written into the metadata there */
	bool offline;                   /* move the definition only */
	bool nonlive;                   /* the guest is paused while its
					 * memory moves (no VIR_MIGRATE_LIVE):
					 * shorter and sure to converge */
	bool autoconverge, postcopy;    /* live only */
	bool copy_storage;              /* target does not see our pool */
	/* The target's folders (a cluster node publishes them in its
	 * Lease).  Given, disks on shared classes stay where they are and
	 * the others are copied into the target's folder of their class
	 * (copy-storage, the copies here removed once the guest runs
	 * there; an ISO is ejected).  NULL: the target sees our paths, and
	 * copy_storage copies every disk to the same paths there. */
	const struct be_dest_dir *dest_dirs;
	size_t ndest_dirs;
	uint64_t bandwidth;             /* bits/s, 0 unlimited */
};
/* Peer-to-peer migration; progress from the job (data processed and
 * remaining).  Returns when the guest runs on the target (or, offline,
 * is defined there) and is undefined here.  *cancel aborts the job
 * (-ECANCELED, the domain keeps running here; 0 when it had already
 * moved).  postcopy where QEMU cannot (no userfaultfd): -EOPNOTSUPP.
 * Without copy_storage or dest_dirs the target must see the same disk
 * paths.  An offline migration copies no disk: local disks with
 * dest_dirs are -EINVAL. */
int be_migrate(struct be_conn *c, const char *vm,
	       const struct be_migrate_opts *o, const struct be_progress *p,
	       char *err, size_t errlen);

/* What an import may read, and how much.  Without be_import_set: https://
 * only, no local files, the defaults below. */
struct be_import_policy {
	const char *const *allow;       /* URL prefixes besides https:// whose
					 * hosts may be private addresses */
	size_t nallow;
	const char *dir;                /* local files only under it; NULL:
					 * none */
	uint64_t max_bytes;             /* download and virtual size */
	int timeout_s;                  /* a whole import */
	int low_speed;                  /* bytes/s, under it for stall_s... */
	int stall_s;                    /* ...cuts a download; 0: never */
	int max_running;                /* imports at once on this node */
	bool need_checksum;             /* cluster mode */
};
#define BE_IMPORT_MAX_BYTES (64ULL << 30)
#define BE_IMPORT_TIMEOUT_S 3600
#define BE_IMPORT_LOW_SPEED 1024
#define BE_IMPORT_STALL_S 60
#define BE_IMPORT_MAX_RUNNING 2
/* Copied; call before imports start. */
int be_import_set(struct be_conn *c, const struct be_import_policy *p);

/* Make volume vol (a qcow2 in the pool, mode 0600) from an image at
 * source: https:// (libcurl, TLS verified), a URL under an allowed
 * prefix, or a path or file:// URL under the policy's dir.  Anything else
 * is -EACCES naming the rule; every redirect is checked likewise, and the
 * address connected must be public unless an allow prefix names the host.
 * checksum is "sha256:HEX", "sha512:HEX", "md5:HEX" or NULL; it is
 * checked before the volume is made (-EBADMSG "checksum mismatch: ...").
 * Only raw and qcow2 images (be_imgprobe) without references to other
 * files are taken (-EINVAL "only raw and qcow2").  -EFBIG past max_bytes,
 * -ETIMEDOUT past the time limits, -EBUSY past max_running.
 * *size_out gets the volume's virtual size.  On failure nothing is left. */
int be_image_import(struct be_conn *c, const char *source,
		    const char *checksum, const char *vol,
		    uint64_t *size_out, const struct be_progress *p,
		    char *err, size_t errlen);
/* source for messages: without user:password@ (which may be secret). */
void be_url_redact(const char *source, char *out, size_t len);

/* Pure: the format of an image from its first bytes (head, 4 KiB are
 * enough) and last ones (tail, 512, may be empty).  BE_IMG_REFUSED with
 * *why naming the format or the reason for anything QEMU would read as
 * another format or that names other files. */
enum be_imgfmt { BE_IMG_RAW, BE_IMG_QCOW2, BE_IMG_REFUSED };
enum be_imgfmt be_imgprobe(const unsigned char *head, size_t hlen,
			   const unsigned char *tail, size_t tlen,
			   const char **why);

/* Remove a volume made by be_image_import (-EBUSY naming the VMs whose
 * disks are backed by it). */
int be_image_delete(struct be_conn *c, const char *vol, char *err,
		    size_t errlen);

/* Make the volume <vm>_<disk>.qcow2 from a pool volume base_vol (an
 * imported template image) in the pool of storage class klass (NULL:
 * the node's): a qcow2 overlay when linked, else a full copy, grown to
 * size bytes when that is larger; on a shared class always a copy (the
 * image is this node's).  Called before be_define, which then finds the
 * disk present.  -EEXIST when the volume exists. */
int be_volume_from_image(struct be_conn *c, const char *vm, const char *disk,
			 const char *klass, const char *base_vol, bool linked,
			 uint64_t size, char *err, size_t errlen);

/* Pure: the domain XML for a spec (exposed for unit tests).  Caller
 * frees.  disk_paths[i] is the volume path of spec->disks[i]; seed_iso
 * may be NULL; network is the libvirt network name or NULL for user
 * networking. */
struct be_xml_params {
	const char *name;
	const char *ns;
	const char *uid;
	const char *node;
	const char *domain_type;        /* "kvm" or "qemu" */
	const struct core_spec *spec;
	const char *spec_json;          /* text stored in the metadata */
	const char *const *disk_paths;
	const char *seed_iso;
	const char *kernel, *initrd;    /* resolved kernelBoot files, or NULL */
	const char *vnc_password;       /* NULL: no VNC at all */
	const char *network;
	const char *uuid;               /* domain UUID to keep on redefine;
					 * NULL: uid when it is a UUID */
	int host_cpus;                  /* for the default max_cpus: 0 = 1 */
	uint64_t host_memory;           /* bytes, caps the default
					 * max_memory; 0 = no cap */
};
char *be_domain_xml(const struct be_xml_params *p);

#endif
