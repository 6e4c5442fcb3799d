/* Shared between the files of mountd/ only. */
#ifndef HYPERSDK_MOUNTD_H
#define HYPERSDK_MOUNTD_H

#include "backend/backend.h"
#include "core/core.h"
#include "fs/fs.h"

enum { LOG_ERR_, LOG_WARN_, LOG_INFO_, LOG_DEBUG_ };

/* queue.c: a set of VM names waiting for one worker thread. */
struct md_nq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char **names;
	size_t n, cap;
	bool all;               /* every VM needs a look */
	bool stopping;
};
void md_nq_init(struct md_nq *q);
void md_nq_destroy(struct md_nq *q);
void md_nq_put(struct md_nq *q, const char *name);
bool md_nq_take(struct md_nq *q, char ***batch, size_t *n, bool *all);
void md_nq_stop(struct md_nq *q);

#include "sync/sync.h"

struct mountd {
	struct core_model *m;
	struct core_store *store;
	struct be_conn *be;
	struct core_acl acl;    /* --group: who may use the tree */
	char node[CORE_NAME_MAX + 1];
	const char *uri;        /* libvirt */
	int stop_timeout_ms;    /* ACPI shutdown grace before destroy */
	int stats_interval_ms;

	struct md_nq work;      /* VMs to re-read from libvirt (and, in
				 * cluster mode, to claim and converge) */
	struct md_nq status;    /* cluster: VMs whose status to publish */
	struct md_nq drops;     /* cluster: VMs whose object was deleted */
	pthread_t dropper;
	bool dropper_started;
	pthread_mutex_t slock;  /* the stats thread's sleep */
	pthread_cond_t scond;
	bool stopping;
	pthread_t reconciler, stats, pusher;
	bool reconciler_started, stats_started, pusher_started;

	/* cluster mode (sync == NULL when standalone) */
	struct sync *sync;
	struct sync_creds creds;
	const char *state_dir;
	char ns[CORE_NAME_MAX + 1];
	uint64_t sync_epoch;    /* bumped after each complete list */
	_Atomic bool online, synced;
#define MD_CREATING_MAX 64
	char creating[MD_CREATING_MAX][CORE_NAME_MAX + 1]; /* under work.lock */
	size_t ncreating;

	/* --peer NODE=URI: libvirt URIs of nodes to migrate to */
	struct md_peer {
		char node[CORE_NAME_MAX + 1];
		char uri[512];
	} *peers;
	size_t npeers;
	bool migrate_copy_storage;      /* --migrate-copy-storage */

	/* operations running on this node (ops.c) */
	pthread_mutex_t runs_lock;
	/* Templates whose image is being imported (under runs_lock): one
	 * import per template at a time, they share the pool's files. */
#define MD_IMPORTING_MAX 16
	char importing[MD_IMPORTING_MAX][CORE_NAME_MAX + 1];
	size_t nimporting;
	pthread_cond_t runs_cond;
	struct md_run *runs;
	int nruns;
};

void md_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void md_set_log_level(int level);

/* actions.c: the fs_ops behind every ctl and spec write */
extern const struct fs_ops md_fs_ops;

/* Phases as masks of 1 << phase: the guest exists, or it does not run. */
#define MD_ACTIVE ((1u << CORE_PHASE_RUNNING) | (1u << CORE_PHASE_PAUSED))
#define MD_INACTIVE ((1u << CORE_PHASE_STOPPED) | (1u << CORE_PHASE_FAILED))
/* The VM's phase as the model holds it; false when there is no such VM. */
bool md_vm_phase(struct mountd *md, const char *name, enum core_phase *ph);
/* 0 when msg may run on a VM in phase ph; else -EBUSY with the owner's
 * text (delete without force refuses a running guest). */
int md_verb_check(const char *name, const struct core_ctl *msg,
		  enum core_phase ph, char *err, size_t errlen);

/* Record the desired power state in the spec and the store. */
int md_set_running(struct mountd *md, const char *name, bool running);
/* Drop a VM from the store and the model (its domain is already gone or
 * is another node's). */
void md_forget(struct mountd *md, const char *name);
/* Define (or redefine) the domain from the VM's current spec. */
int md_redefine(struct mountd *md, const char *name, char *err, size_t errlen);

/* Bring an owned VM to its spec: define it when missing or changed,
 * start or stop it as spec.running says. */
int md_converge_owned(struct mountd *md, const char *name, char *err,
		      size_t errlen);
/* Wait until the VM's phase is one of mask (1 << phase). */
int md_wait_phase(struct mountd *md, const char *name, unsigned mask,
		  int timeout_ms);

/* actions.c, for ops.c */
int md_begin_op(struct mountd *md, const char *name, const char *op,
		enum core_phase *phase, char *err, size_t errlen);
void md_end_op(struct mountd *md, const char *name, const char *op);
void md_event(struct mountd *md, const char *name, const char *reason,
	      const char *msg);
int md_start_vm(struct mountd *md, const char *name, char *err,
		size_t errlen);
/* owner: the uid the new VM belongs to (standalone; in a cluster the
 * object's annotation decides). */
int md_add_vm(struct mountd *md, const char *name, json_object *spec,
	      uid_t owner, const char *op, char *err, size_t errlen);
void md_drop_vm(struct mountd *md, const char *name);

/* ops.c: operations, snapshots and templates */
struct md_run;
/* clone, migrate, resize, snapshot, revert and cancel from a VM's ctl:
 * an object is made (VMOperation or VMSnapshot) and run here; the call
 * returns with its outcome. */
int md_op_ctl(struct mountd *md, const char *vm, const struct core_ctl *msg,
	      char *err, size_t errlen);
/* stop force, restart for another node's VM, as a VMOperation. */
int md_op_forward(struct mountd *md, const char *vm, const struct core_ctl *msg,
		  char *err, size_t errlen);
/* fs_ops.obj */
int md_obj(void *arg, enum core_kind kind, const char *vm, const char *name,
	   const char *verb, json_object *spec, char *err, size_t errlen);
/* Load stored objects; those a restart interrupted become Failed. */
int md_ops_load(struct mountd *md);
/* Retention: expire and delete snapshots; called now and then. */
void md_ops_sweep(struct mountd *md);
/* An object from the API server (cluster): mirror it, run it when it is
 * new and its VM is ours. */
void md_ops_upsert(struct mountd *md, enum core_kind kind, json_object *obj);
void md_ops_remove(struct mountd *md, enum core_kind kind, const char *name);
/* Put a spec back in the model after a write that failed (takes its own
 * reference to old); the domain, store and cluster are the caller's. */
void md_model_spec_put(struct mountd *md, const char *name, json_object *old);
/* create.c: the spec a create message asks for (a new reference in
 * *spec), with a template's defaults under it for template=T. */
int md_create_spec(struct mountd *md, const struct core_ctl *msg,
		   json_object **spec, char *err, size_t errlen);
/* Make a new VM's first disk from its template's image (create
 * template=T or spec.image.templateRef); fills the template's defaults
 * into spec first. */
int md_template_apply(struct mountd *md, const char *tmpl, json_object *spec,
		      char *err, size_t errlen);
/* The template's image into this node's pool, in a worker thread. */
void md_template_import_bg(struct mountd *md, const char *name);
int md_template_disk(struct mountd *md, const char *vm, char *err,
		     size_t errlen);
/* The template is gone from the API: drop this node's copy of its image. */
void md_template_forget(struct mountd *md, const char *name);
void md_ops_stop(struct mountd *md);
/* A deleted VM takes its snapshots along (libvirt dropped them). */
void md_ops_vm_gone(struct mountd *md, const char *vm);
/* Recount the VMs using each template. */
void md_template_usage_tick(struct mountd *md);
bool md_vm_active(struct mountd *md, const char *name);
/* After a migration: the VM is the target node's now. */
void md_migrated(struct mountd *md, const char *name, const char *node);

/* cluster.c (all no-ops or "owned" in standalone mode) */
int md_cluster_open(struct mountd *md, const char *kubeconfig, const char *ns,
		    char *err, size_t errlen);
int md_cluster_start(struct mountd *md);
void md_cluster_close(struct mountd *md);
bool md_owned(struct mountd *md, const char *name, char *owner, size_t len);
void md_cluster_reconcile(struct mountd *md, const char *name);
void md_push_status(struct mountd *md, const char *name);
int md_cluster_spec(struct mountd *md, const char *name, json_object *old,
		    json_object *new, char *err, size_t errlen);
/* 0: created and claimed here; 1: created, another node claimed it.
 * A VM for a uid other than root carries its user name in the
 * hypersdk.io/owner annotation; a uid without one is -EINVAL. */
int md_cluster_create(struct mountd *md, const char *name, json_object *spec,
		      uid_t owner, char *err, size_t errlen);
int md_cluster_delete(struct mountd *md, const char *name, char *err,
		      size_t errlen);

/* forward.c: writes for a VM another node owns (owner "" when none has
 * claimed it yet) become changes of its object; the owner acts. */
int md_cluster_forward(struct mountd *md, const char *name,
		       const struct core_ctl *msg, const char *owner,
		       char *err, size_t errlen);
/* A spec write: only the merge patch, then a wait for the power state
 * it asks for.  Consumes spec. */
int md_cluster_spec_forward(struct mountd *md, const char *name,
			    json_object *spec, const char *owner, char *err,
			    size_t errlen);

/* nodes.c: refresh nodes/: this node, and with peers the nodes holding
 * a lease (a request to the API server: the stats thread does that). */
void md_update_nodes(struct mountd *md, bool peers);

/* probe.c: --probe live|ready, for a pod's probes; err says why not. */
int md_probe(const char *mount, const char *what, char *err, size_t errlen);

/* reconcile.c */
/* Queue a VM for the reconciler (NULL: all of them). */
void md_queue(struct mountd *md, const char *name);
void md_queue_status(struct mountd *md, const char *name);
/* Load the store, adopt our domains, bring status up to date. */
int md_load(struct mountd *md, char *err, size_t errlen);
int md_start_threads(struct mountd *md);
void md_stop_threads(struct mountd *md);
/* Re-read a domain's state from libvirt into the model. */
void md_refresh(struct mountd *md, const char *name);
/* Persist a VM's object (spec and last status) to the store. */
int md_persist(struct mountd *md, const char *name);

#endif
