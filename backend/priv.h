/* backend internals shared by its .c files; not part of the public API. */
#ifndef HYPERSDK_BACKEND_PRIV_H
#define HYPERSDK_BACKEND_PRIV_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "backend/backend.h"

#define BE_NS_URI "https://hypersdk.io/xmlns/vm/1"
#define BE_NS_PREFIX "hypersdk"
#define BE_AGENT_CHANNEL "org.qemu.guest_agent.0"

/* Memory hotplug slots of a domain (each live memory increase takes
 * one DIMM; QEMU's pc machines allow up to 256). */
#define BE_DIMM_SLOTS 16

/* A name that is safe as part of a file name in the pool directory. */
#define BE_NAME_MAX 63

struct be_owned {
	unsigned char uuid[VIR_UUID_BUFLEN];
	bool ours;
	bool seen;
};

struct be_conn {
	pthread_mutex_t lock;   /* vc, reconnection, owned cache */
	virConnectPtr vc;
	/* Set by libvirt's close callback (event thread); atomic because
	 * taking lock there could deadlock against our unregistering. */
	atomic_bool broken;
	char *uri;
	char *pool_name;
	char *pool_dir;         /* the pool's real target path */
	/* One more pool per storage class: its pool name, class name, real
	 * target path (same spelling rule as pool_dir). */
	struct be_pool {
		char *name, *klass, *dir;
		bool shared;
	} classes[BE_CLASSES_MAX];
	size_t nclasses;
	char *kernel_dir;       /* NULL: kernelBoot refused */
	char *node;
	bool kvm;
	be_watch_fn watch_fn;
	void *watch_arg;
	int cb_life, cb_agent;  /* event callback ids, -1 when none */
	struct be_owned *owned; /* which domains carry our metadata */
	size_t nowned;
	struct be_import_policy *imp;   /* NULL: the defaults */
	atomic_int imports;             /* running now */
};

/* ---- conn.c ---- */

/* A referenced connection (reconnecting first when the last one broke);
 * release with virConnectClose.  NULL with err set when libvirt does not
 * answer. */
virConnectPtr be_conn_get(struct be_conn *c, char *err, size_t errlen);

typedef int (*be_op_fn)(struct be_conn *c, virConnectPtr vc, void *ctx,
			char *err, size_t errlen);
/* Run op on a live connection; when it fails because libvirtd went away,
 * reconnect and run it once more. */
int be_run(struct be_conn *c, be_op_fn op, void *ctx, char *err,
	   size_t errlen);

/* Map libvirt's last error of this thread to -errno and write
 * "<verb> <name>: <message>" into err. */
int be_err(char *err, size_t errlen, const char *verb, const char *name);
/* True when name[0..len) may be used in a pool file name. */
bool be_name_ok(const char *name);

/* ---- xml.c ---- */

/* A growing string; on allocation failure it stays marked failed and
 * be_sb_take returns NULL. */
struct be_sb {
	char *p;
	size_t len, cap;
	bool failed;
};
void be_sb_printf(struct be_sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s with XML escaping (text and attribute safe). */
void be_sb_esc(struct be_sb *b, const char *s);
char *be_sb_take(struct be_sb *b);

/* Minimal scanning of libvirt's own XML output (well-formed, attributes
 * quoted).  be_xml_next finds the next element <[prefix:]tag ...> in
 * [p, end) and returns a pointer to its '<', or NULL. */
const char *be_xml_next(const char *p, const char *end, const char *tag);
/* The end of the element starting at el (after its close tag, or after
 * "/>" for an empty one); end when malformed. */
const char *be_xml_end(const char *el, const char *end, const char *tag);
/* Copy the unescaped value of attribute attr of the element at el.
 * Returns false when absent. */
bool be_xml_attr(const char *el, const char *attr, char *out, size_t len);
/* The unescaped text content of the element at el (malloc'd), or NULL. */
char *be_xml_text(const char *el, const char *end, const char *tag);

/* ---- storage.c ---- */

/* The folder of a disk's volumes: its class's pool's, else the node's. */
const char *be_disk_dir(const struct be_conn *c, const struct core_disk *d);
/* The pool of a storage class, or NULL. */
const struct be_pool *be_class_pool(const struct be_conn *c, const char *klass);
int be_pool_ensure(struct be_conn *c, virConnectPtr vc, char *err,
		   size_t errlen);
/* Volume name of a VM disk: <vm>_<disk>.qcow2. */
int be_vol_name(char *out, size_t len, const char *vm, const char *disk);
/* Path of the seed image: <pool_dir>/<vm>_cidata.iso. */
int be_seed_path(const struct be_conn *c, char *out, size_t len,
		 const char *vm);

/* What be_storage_prepare made, so a failure can undo exactly that. */
struct be_made {
	char **vols;            /* paths of the volumes this call created */
	size_t nvols;
	bool seed_created;
	char **paths;           /* disk path per spec disk */
	size_t npaths;
	char *seed;             /* seed path or NULL */
};
int be_storage_prepare(struct be_conn *c, virConnectPtr vc, const char *name,
		       const char *uid, const struct core_spec *spec,
		       struct be_made *m, char *err, size_t errlen);
void be_storage_undo(struct be_conn *c, virConnectPtr vc, const char *name,
		     struct be_made *m);
void be_made_free(struct be_made *m);
/* Delete the volumes at paths (only files in our pool named <vm>_*) and
 * the seed image of vm. */
int be_storage_remove(struct be_conn *c, virConnectPtr vc, const char *vm,
		      char *const *paths, size_t npaths, char *err,
		      size_t errlen);
/* True when path is <pool_dir>/<vm>_*, a file of vm's to delete. */
bool be_owned_path(const struct be_conn *c, const char *vm, const char *path);
/* Sum of capacities of the volumes at paths. */
uint64_t be_storage_capacity(virConnectPtr vc, char *const *paths,
			     size_t npaths);

/* ---- lifecycle.c ---- */

/* 1 when the domain carries our metadata with our node (filling ns, uid,
 * each BE_NAME_MAX+1, and *spec, malloc'd JSON text, when asked),
 * BE_OTHER_NODE when it is hypersdk's but another node's, 0 when not
 * hypersdk's, -EIO when libvirt could not say (last error set). */
#define BE_OTHER_NODE 2
/* Append the <disk device='disk'> source files of a domain XML. */
int be_disk_paths(const char *xml, char ***paths, size_t *n);
void be_strv_free(char **v, size_t n);

/* ---- storage.c ---- */

/* part becomes path: mode 0600 (libvirt's dynamic ownership gives QEMU
 * the file when a VM starts), on disk before the rename, the rename on
 * disk after (fsync of dir). */
int be_commit_file(const char *part, const char *path, const char *dir);

/* ---- spawn.c ---- */

/* Run argv (PATH lookup, no shell), its stdout (and stderr when
 * merge_err) into out.  tick(arg) runs about every 250 ms; *cancel kills
 * the child (-ECANCELED).  0 on exit status 0, -EIO otherwise, -errno
 * when it cannot start. */
int be_spawn(char *const argv[], char *out, size_t outlen, bool merge_err,
	     const volatile int *cancel, void (*tick)(void *arg), void *arg);
/* The last non-empty line of text (trailing newlines cut in place). */
const char *be_last_line(char *text);

/* Like be_spawn, stdout and stderr merged, the child under resource
 * limits (0: none) with umask 077; past deadline (0: none) it is killed
 * (-ETIMEDOUT), and so is a child killed for CPU time. */
struct be_limits {
	uint64_t as_bytes;      /* RLIMIT_AS */
	int cpu_s;              /* RLIMIT_CPU */
	uint64_t fsize;         /* RLIMIT_FSIZE */
	time_t deadline;
};
int be_spawn_lim(char *const argv[], const struct be_limits *lim, char *out,
		 size_t outlen, const volatile int *cancel,
		 void (*tick)(void *arg), void *arg);

/* ---- imgsource.c ---- */

const struct be_import_policy *be_import_policy(const struct be_conn *c);
void be_import_free(struct be_import_policy *p);
/* 0 when the policy lets url be fetched (*named: an --import-allow
 * prefix matched, so its host may be a private address), else -EACCES
 * (-EINVAL when it does not parse) naming the rule. */
int be_src_check_url(const struct be_conn *c, const char *url, bool *named,
		     char *err, size_t errlen);
/* NULL when a download may connect to sa, else the class that forbids it
 * ("loopback", "private", ...); text gets the address. */
const char *be_addr_refused(const struct sockaddr *sa, char *text,
			    size_t len);
bool be_src_is_local(const char *source);
/* A regular file under the policy's dir, opened without following any
 * symbolic link; -EACCES naming the rule otherwise. */
int be_src_open_local(const struct be_conn *c, const char *source, int *fd,
		      char *err, size_t errlen);

/* ---- clone.c ---- */

/* The domains (other than self, which may be NULL) with a disk whose
 * volume is backed by one of paths, as "a b c" in out.  0 or -errno. */
int be_deps_of(struct be_conn *c, virConnectPtr vc, const char *self,
	       char *const *paths, size_t npaths, char *out, size_t outlen);
/* Create volume name in the pool of storage class klass (NULL or "":
 * the node's): a qcow2 overlay on base when linked, else a full copy of
 * base (progress via p).  capacity 0 = base's.  On a shared class an
 * overlay needs its base in the same folder, else it is a full copy. */
int be_vol_derive(struct be_conn *c, virConnectPtr vc, const char *klass,
		  const char *name, virStorageVolPtr base, bool linked,
		  uint64_t capacity, const struct be_progress *p, int done,
		  int share, char *err, size_t errlen);

/* ---- progress.c ---- */

void be_report(const struct be_progress *p, int pct, const char *msg);
bool be_cancelled(const struct be_progress *p);
/* be_spawn's tick while a helper writes path: done + share * (allocated /
 * total) percent, reported as what when it moves. */
struct be_file_tick {
	const struct be_progress *p;
	const char *path, *what;
	uint64_t total;
	int done, share, last;
};
void be_file_tick(void *arg);

/* ---- chain.c ---- */

/* The backing file of the pool volume at path (malloc'd), NULL when it has
 * none or libvirt does not know the file. */
char *be_vol_backing(virConnectPtr vc, const char *path);
/* The current file of each of spec's disks in d's XML (flags: 0 live,
 * VIR_DOMAIN_XML_INACTIVE): <pool>/<vm>_<disk>.qcow2 or an overlay
 * <pool>/<vm>_<disk>.<digits>.qcow2 made by be_freeze; the former when
 * the XML has neither (or d is NULL).  *out has spec->ndisks strings. */
int be_spec_tops(struct be_conn *c, virDomainPtr d, unsigned flags,
		 const char *vm, const struct core_spec *spec, char ***out);
/* When domain vm exists, replace m->paths by its current disk files, so a
 * redefine from the spec keeps writing the top overlay, never a frozen
 * base under linked clones. */
int be_keep_tops(struct be_conn *c, virConnectPtr vc, const char *vm,
		 const struct core_spec *spec, struct be_made *m);
/* Append to paths the backing files of them that are vm's own
 * (be_owned_path): the frozen bases under its overlays. */
int be_chain_expand(struct be_conn *c, virConnectPtr vc, const char *vm,
		    char ***paths, size_t *n);
/* True when a file anywhere in path's backing chain is one of targets. */
bool be_chain_hits(virConnectPtr vc, const char *path, char *const *targets,
		   size_t nt);
/* External disk-only snapshot of the running domain d: each spec disk's
 * current file becomes a read-only base under a new overlay
 * <vm>_<disk>.<unixtime>.qcow2 that d writes from now on.  *bases gets
 * the frozen files (spec->ndisks strings). */
int be_freeze(struct be_conn *c, virConnectPtr vc, virDomainPtr d,
	      const char *vm, const struct core_spec *spec, char ***bases,
	      char *err, size_t errlen);

/* Node-side fields of p: node, domain type, network, host size. */
/* ---- console.c ---- */

#define BE_VNC_PASSWORD_LEN 8   /* what VNC's DES challenge uses */
/* A fresh random password into out (len > 8). */
int be_vnc_password_new(char *out, size_t len);
/* The password of the defined domain name, or a fresh one when there is
 * none (no domain, an older definition without one). */
int be_vnc_password_keep(virConnectPtr vc, const char *name, char *out,
			 size_t len);

/* ---- kernel.c ---- */

/* kernelBoot's files resolved under the node's kernel folder (storage
 * for the be_xml_params pointers). */
struct be_boot_files {
	char kernel[4096], initrd[4096];
};
/* Point p->kernel and p->initrd at the resolved files of p->spec's
 * kernelBoot (NULL without one); -EACCES with the rule in err when the
 * node does not allow them. */
int be_boot_fill(const struct be_conn *c, struct be_xml_params *p,
		 struct be_boot_files *f, char *err, size_t errlen);

void be_xml_fill(const struct be_conn *c, virConnectPtr vc,
		 struct be_xml_params *p);
int be_dom_ours(const struct be_conn *c, virDomainPtr d, char *ns, char *uid,
		char **spec);

#endif
