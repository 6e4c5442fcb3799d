/* Shared between the files of mountd/ only; the contract of the library
 * is mountd/mountd.h. */
#ifndef HYPERSDK_MOUNTD_PRIV_H
#define HYPERSDK_MOUNTD_PRIV_H

#include "backend/backend.h"
#include "core/core.h"
#include "fs/fs.h"

#include "mountd/mountd.h"
#include "sync/sync.h"

/* ---- worker.c: a set of VM names drained by one thread ---------------- */

/* now: the phase libvirt's events about it say (Unknown when they do
 * not, disagree, or it was not queued by an event). */
struct md_item {
	char *name;
	enum core_phase now;
};
/* A look that is due at a time (a restart after its backoff). */
struct md_later {
	char *name;
	time_t due;
};
struct md_nq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct md_item *items;
	size_t n, cap;
	struct md_later *later;
	size_t nlater, caplater;
	bool all;               /* every VM needs a look */
	bool stopping;
	bool working;           /* a taken batch is being worked on */
};
void md_nq_init(struct md_nq *q);
/* name NULL: everything needs a look. */
void md_nq_put(struct md_nq *q, const char *name);
void md_nq_put_event(struct md_nq *q, const char *name, enum core_phase now);
/* A look at name at due (wall clock); the earliest of several stands. */
void md_nq_put_at(struct md_nq *q, const char *name, time_t due);
bool md_nq_take(struct md_nq *q, struct md_item **batch, size_t *n,
		bool *all);
void md_nq_stop(struct md_nq *q);

struct mountd;
/* A thread that takes names from its queue: one for each of libvirt's
 * events (the reconciler), status to publish, objects deleted. */
struct md_worker {
	struct md_nq q;
	struct mountd *md;
	void (*one)(struct mountd *md, const char *name, enum core_phase now);
	void (*all)(struct mountd *md);         /* NULL: ignore "all" */
	void (*batch_done)(struct mountd *md);  /* NULL: nothing */
	pthread_t thread;
	bool started;
};
void md_worker_init(struct md_worker *w, struct mountd *md,
		    void (*one)(struct mountd *, const char *, enum core_phase));
int md_worker_start(struct md_worker *w);
/* Joins the thread; what is put after that is dropped. */
void md_worker_stop(struct md_worker *w);
/* Nothing queued and nothing being worked on (tests wait for it). */
bool md_worker_idle(struct md_worker *w);

/* ---- vm.c: the daemon's state of a VM, and the one way to it ---------- */

/* What holds a VM busy: a verb of the table, or the daemon's own work. */
enum md_hold {
	MD_HOLD_NONE,
	MD_HOLD_VERB,           /* verb (and force) say which */
	MD_HOLD_SPEC,           /* a spec write */
	MD_HOLD_RECONCILE,      /* the reconciler's converge */
	MD_HOLD_SNAPSHOT_DELETE,
	MD_HOLD_FENCE,          /* self-fencing destroys it */
	MD_HOLD_HANDOVER,       /* a drain hands it to another node */
};
struct md_mark {
	enum md_hold hold;
	enum core_verb verb;
	bool force;
};

/* At vm->priv of every VM (core_model_set_priv). */
struct md_vmx {
	struct md_mark mark;    /* the busy mark; status "operation" shows it */
	uint64_t defined_gen;   /* spec_gen the domain was last defined from */
	uint64_t refused_gen;   /* spec_gen the reconciler last failed on
				 * (its err and event are recorded once) */
	int refused_rc;         /* ... and how (another reason is news) */
	char rv[32];            /* cluster: metadata.resourceVersion */
	uint64_t epoch;         /* cluster: list epoch it was last seen in */
	uint64_t hold_rv;       /* cluster: ignore older specs from the watch */
	uint64_t pushed;        /* cluster: hash of the status published last */
	unsigned failures;      /* stops nobody asked for, in a row (backoff) */
	bool lost;              /* cluster: another node took it over */
	uint64_t info_seq;      /* the newest libvirt read applied (md_refresh) */
	bool keep_up;           /* its next start keeps it up (a failover):
				 * no carbon wait */
	char lost_reported[CORE_NAME_MAX + 1];  /* NodeLost said for this
						 * owner (failover.c) */
};
/* At o->priv of every object. */
struct md_objx {
	bool mine;              /* made or run by this node */
};
struct md_vmx *md_x(const struct core_vm *vm);
struct md_objx *md_ox(const struct core_obj *o);

/* A copy of what actions decide on, taken under the model lock. */
struct md_vm {
	enum core_phase phase;
	bool want_running;      /* spec.running */
	struct md_mark mark;
	uid_t owner;
	uint64_t version, spec_gen, defined_gen, refused_gen;
	int cpus;
	uint64_t memory;
	char node[CORE_NAME_MAX + 1];
	char ns[CORE_NAME_MAX + 1];
	char uid[40];
	char rv[32];
	time_t next_restart;    /* a restart waits for its backoff until then */
	bool movable;           /* HA with every disk on a shared class */
	bool carbon_aware;      /* spec.carbonAware.enabled */
	bool carbon_waits;      /* a start waits for a greener grid */
};
/* 0 with the copy, or -ENOENT. */
int md_vm_get(struct mountd *md, const char *name, struct md_vm *out);
/* fn on the VM under the write lock; changes are delivered after the
 * unlock.  fn's return, or -ENOENT when there is no such VM. */
typedef int (*md_edit_fn)(struct mountd *md, struct core_vm *vm, void *arg);
int md_vm_edit(struct mountd *md, const char *name, md_edit_fn fn, void *arg);
/* The spec document, a deep copy. */
int md_spec_copy(struct mountd *md, const char *name, json_object **out);
/* The names of the VMs pick() is true of, under the model's read lock,
 * so that the caller acts on each without it. *names is the caller's to
 * free; 0 or -ENOMEM. */
typedef bool (*md_pick_fn)(struct mountd *md, const struct core_vm *vm);
typedef char md_name[CORE_NAME_MAX + 1];
int md_vm_names(struct mountd *md, md_pick_fn pick, md_name **names, size_t *n);

struct md_mark md_mark_verb(enum core_verb v, bool force);
struct md_mark md_mark_of(enum md_hold h);
/* "start", "stop force", "restore", "spec", "" ... (status operation) */
const char *md_mark_name(struct md_mark m);
/* Model write lock held. */
void md_mark_set(struct mountd *md, struct core_vm *vm, struct md_mark m);
/* Mark name busy with m; out (may be NULL) gets the VM as it was.
 * -EBUSY when another action holds it (out->mark says which; err the
 * text), -ENOENT when there is no VM.  A user's verb waits out the
 * reconciler's short hold.  A forced stop overtakes a graceful one. */
int md_claim(struct mountd *md, const char *name, struct md_mark m,
	     struct md_vm *out, char *err, size_t errlen);
/* Drop the mark if it is still m. */
void md_release(struct mountd *md, const char *name, struct md_mark m);
/* -EBUSY with "VERB: vm NAME is busy (X in progress)" when marked. */
int md_busy(struct mountd *md, const char *name, const char *verb, char *err,
	    size_t errlen);

void md_event(struct mountd *md, const char *name, const char *reason,
	      const char *msg);
/* Persist a VM's object (spec and last status) to the store. */
int md_persist(struct mountd *md, const char *name);
/* Drop a VM from the store and the model (its domain is already gone or
 * is another node's). */
void md_forget(struct mountd *md, const char *name);

/* ---- verbs/: one run function per row of CORE_OPS --------------------- */

struct md_run;
struct md_job {
	const char *vm;                 /* NULL for create */
	const struct core_ctl *msg;
	enum core_phase phase;          /* when the VM was marked */
	/* A verb that runs as a VMOperation: */
	const char *op;                 /* its name */
	json_object *obj;               /* a private copy */
	struct md_run *run;             /* cancel and progress */
};
typedef int (*md_run_fn)(struct mountd *md, const struct md_job *j,
			 char *err, size_t errlen);
#define MD_X_RUN(id, verb, op, flags, cli, from, to) \
	int md_run_##verb(struct mountd *md, const struct md_job *j, \
			  char *err, size_t errlen);
CORE_OPS(MD_X_RUN)
#undef MD_X_RUN
md_run_fn md_run_of(enum core_verb v);

/* dispatch.c: every verb, wherever it came from. */
int md_do(struct mountd *md, const char *vm, const struct core_ctl *msg,
	  char *err, size_t errlen);
/* Phases as masks of 1 << phase: the guest exists, or it does not run. */
#define MD_ACTIVE CORE_PH_ACTIVE
#define MD_INACTIVE CORE_PH_INACTIVE
/* 0 when msg may run on a VM in phase ph; else -EBUSY with the owner's
 * text (delete without force refuses a running guest). */
int md_verb_check(const char *name, const struct core_ctl *msg,
		  enum core_phase ph, char *err, size_t errlen);

/* power.c */
int md_set_running(struct mountd *md, const char *name, bool running);
int md_redefine(struct mountd *md, const char *name, char *err, size_t errlen);
/* Shut the guest down (force: pull the plug; a guest that does not power
 * off within --stop-timeout is destroyed), spec untouched; the caller
 * holds the mark. */
int md_power_off(struct mountd *md, const char *name, bool force,
		 enum core_phase phase, char *err, size_t errlen);
/* Start or stop as spec.running says (the caller holds the mark). */
int md_converge(struct mountd *md, const char *name, char *err, size_t errlen);
/* Bring an owned VM to its spec under a reconcile mark. */
int md_converge_owned(struct mountd *md, const char *name, char *err,
		      size_t errlen);
int md_wait_phase(struct mountd *md, const char *name, unsigned mask,
		  int timeout_ms);
/* Start under a start mark of its own. */
int md_start_marked(struct mountd *md, const char *name, char *err,
		    size_t errlen);

/* create.c */
int md_create_spec(struct mountd *md, const struct core_ctl *msg,
		   json_object **spec, char *err, size_t errlen);
/* A VM an operation makes (a clone), marked m; consumes spec. */
int md_add_vm(struct mountd *md, const char *name, json_object *spec,
	      uid_t owner, struct md_mark m, char *err, size_t errlen);
/* Forget it here and delete its object. */
void md_drop_vm(struct mountd *md, const char *name);

/* spec.c */
int md_spec_write(struct mountd *md, const char *name, json_object *spec,
		  char *err, size_t errlen);
/* Put a spec back in the model after a write that failed (takes its own
 * reference to old); the domain, store and cluster are the caller's. */
void md_model_spec_put(struct mountd *md, const char *name, json_object *old);

/* ---- the daemon -------------------------------------------------------- */

struct mountd {
	struct md_config cfg;   /* as md_open got it */
	struct core_model *m;
	struct core_store *store;
	struct be_conn *be;
	struct core_acl acl;    /* --group: who may use the tree */
	char node[CORE_NAME_MAX + 1];
	const char *uri;        /* libvirt */
	int stop_timeout_ms;    /* ACPI shutdown grace before destroy */
	int stats_interval_ms;

	struct md_worker work;  /* VMs to re-read from libvirt (and, in
				 * cluster mode, to claim and converge) */
	struct md_worker status;/* cluster: VMs whose status to publish */
	struct md_worker drops; /* cluster: VMs whose object was deleted */
	_Atomic bool nodes_dirty;       /* nodes/NODE/status is behind */
	_Atomic uint64_t info_seq;      /* md_refresh's reads of libvirt */
	pthread_mutex_t slock;  /* the stats thread's sleep */
	pthread_cond_t scond;
	bool stopping;
	pthread_t stats;
	bool stats_started;
	pthread_t fencer;       /* cluster/failover.c, every second */
	bool fencer_started;

	/* cluster mode (sync == NULL when standalone) */
	struct sync *sync;
	struct sync_creds creds;
	char ns[CORE_NAME_MAX + 1];
	uint64_t sync_epoch;    /* bumped after each complete list */
	_Atomic bool online, synced;
	_Atomic double online_since;    /* when the API server came back */
	_Atomic bool fenced;    /* the Lease is too old: movable VMs stop */
	/* Names this node is creating, with the mark their creator holds
	 * (under work.q.lock). */
	struct md_creating {
		char name[CORE_NAME_MAX + 1];
		struct md_mark mark;
	} *creating;
	size_t ncreating, capcreating;

	/* host/maint.c: cordon and drain (under maint_lock) */
	pthread_mutex_t maint_lock;
	bool cordoned;
	char cordon_by[16];     /* tree, lease, node-object */
	bool node_unschedulable;        /* its Node object says so */
	/* The Node object, read by the stats thread alone. */
	time_t node_checked;
	bool node_object_ok, node_unschedulable_seen;
	struct md_drain {
		bool running;
		char phase[16];         /* "", Running, Succeeded, Failed */
		unsigned total, moved, stopped, failed;
		char msg[CORE_ERR_MAX];
		time_t started, finished;
	} drain;
	char drain_token[2][64];        /* the last drain started from the
					 * Lease [0] and the Node object [1] */
	pthread_t drain_thread;
	bool drain_thread_started;

	/* cluster/members.c: the nodes with a Lease, by the stats thread */
	pthread_mutex_t members_lock;
	struct md_member *members;
	size_t nmembers;

	/* host/carbon.c: the grid here (under carbon_lock) */
	struct carbon *carbon;          /* NULL: no --carbon-provider */
	pthread_mutex_t carbon_lock;
	struct md_grid {
		bool have;              /* a reading was had */
		struct carbon_reading r;
		time_t polled;          /* r's poll */
		struct carbon_forecast fc;      /* n 0 when none */
		time_t fc_polled;
		unsigned failures;      /* polls failed in a row */
		int last_rc;            /* the last poll's, for the log */
		char error[CORE_ERR_MAX];       /* the last one's, "" */
	} grid;
	char carbon_published[3][64];   /* what the Lease says (the thread's) */
	pthread_t carbon_thread;
	bool carbon_started;

	/* --peer NODE=URI (standalone): libvirt URIs of nodes to migrate to */
	struct md_peer {
		char node[CORE_NAME_MAX + 1];
		char uri[512];
	} *peers;
	size_t npeers;

	/* operations running on this node (ops/engine.c) */
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

/* ---- ops/: operations, snapshots and templates ------------------------ */

/* clone, migrate, resize, snapshot, revert and cancel from a VM's ctl:
 * an object is made (VMOperation or VMSnapshot) and run here, or by the
 * VM's owner; the call returns with its outcome. */
int md_op_ctl(struct mountd *md, const char *vm, const struct core_ctl *msg,
	      char *err, size_t errlen);
/* stop force, restart, pause, resume for another node's VM, as a
 * VMOperation its owner runs. */
int md_op_forward(struct mountd *md, const char *vm, const struct core_ctl *msg,
		  char *err, size_t errlen);
/* fs_ops.obj: mkdir, rmdir, ctl and spec of snapshots and templates. */
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
void md_ops_stop(struct mountd *md);
/* A deleted VM takes its snapshots along (libvirt dropped them). */
void md_ops_vm_gone(struct mountd *md, const char *vm);
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
/* Recount the VMs using each template. */
void md_template_usage_tick(struct mountd *md);
/* After a migration: the VM is the target node's now. */
void md_migrated(struct mountd *md, const char *name, const char *node);

/* ---- cluster/ (no-ops, or "owned", in standalone mode) ---------------- */

int md_cluster_open(struct mountd *md, const char *kubeconfig, const char *ns,
		    char *err, size_t errlen);
int md_cluster_start(struct mountd *md);
void md_cluster_close(struct mountd *md);
bool md_owned(struct mountd *md, const char *name, char *owner, size_t len);
void md_cluster_reconcile(struct mountd *md, const char *name);
void md_push_status(struct mountd *md, const char *name);
int md_cluster_spec(struct mountd *md, const char *name, json_object *old,
		    json_object *new, char *err, size_t errlen);
/* 0: created and claimed here (marked m); 1: created, another node
 * claimed it.  A VM for a uid other than root carries its user name in
 * the hypersdk.io/owner annotation; a uid without one is -EINVAL. */
int md_cluster_create(struct mountd *md, const char *name, json_object *spec,
		      uid_t owner, struct md_mark m, char *err, size_t errlen);
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

/* failover.c: node loss.  Claims wait this long past a Lease's expiry;
 * a node fences itself this long before its Lease expires. */
#define MD_FAILOVER_MARGIN_S 5
/* The stats thread, after a look at the Leases: take over the movable VMs
 * of lost nodes, or say NodeLost for the others. */
void md_failover_scan(struct mountd *md);
/* Every tick: destroy this node's movable VMs when its Lease is too old. */
void md_fence_check(struct mountd *md);
/* Claim an unowned (or lost) VM at resourceVersion rv for this node. */
int md_cluster_claim(struct mountd *md, const char *name, const char *rv);
/* A VM as the API server has it now, not as the watch told it so far. */
struct md_api_vm {
	char node[CORE_NAME_MAX + 1];   /* status.nodeName, "" for none */
	char rv[32];                    /* metadata.resourceVersion */
};
int md_cluster_get(struct mountd *md, const char *name, struct md_api_vm *out,
		   char *err, size_t errlen);
/* Give this node's VM to node to (phase Pending there), guarded by its
 * resourceVersion; this node stops acting on it. */
int md_cluster_give(struct mountd *md, const char *name, const char *to,
		    char *err, size_t errlen);
/* A drain's move of an HA VM on shared storage (the caller checked it
 * may run on to): shut down here, domain dropped (the disks stay), given
 * to node to, which starts it from the same files. */
int md_hand_over(struct mountd *md, const char *name, const char *to,
		 char *err, size_t errlen);

/* members.c: the cluster's nodes as their Leases say. */
#define MD_ANN_MIGRATION_URI CORE_API_GROUP "/migration-uri"
struct md_member {
	char name[CORE_NAME_MAX + 1];
	double renew;           /* last renewal, seconds since the epoch */
	int duration_s;
	bool alive;
	char uri[512];          /* its --migration-uri, "" when none */
	bool cordoned;          /* its Lease says hypersdk.io/cordon */
	char classes[512];      /* hypersdk.io/storage-classes */
	char dirs[2048];        /* hypersdk.io/storage-dirs (JSON) */
	char drain[64];         /* hypersdk.io/drain: a drain asked of it */
	char drain_done[64];    /* the last one it finished */
	char drain_done_node[64];       /* ... asked by its Node object */
	char drain_result[CORE_ERR_MAX];        /* "ok" or what failed */
	struct core_grid_reading grid;  /* hypersdk.io/carbon-* */
};
/* A new table from the Leases (a request to the API server). */
int md_members_refresh(struct mountd *md);
int md_member_get(struct mountd *md, const char *name, struct md_member *out);
/* A copy of the table (free it). */
int md_members_copy(struct mountd *md, struct md_member **out, size_t *n);
/* What this node tells the others in its Lease. */
int md_members_publish(struct mountd *md);

/* ---- host/classes.c: storage classes ----------------------------------- */

#define MD_ANN_CLASSES CORE_API_GROUP "/storage-classes"
/* -EINVAL naming the first disk whose class this node lacks. */
int md_classes_check(const struct mountd *md, const struct core_spec *s,
		     char *err, size_t errlen);
/* Every disk on a shared class: another node runs it from the same files. */
bool md_classes_shared(const struct mountd *md, const struct core_spec *s);
/* "fast=shared,scratch=local", as this node's Lease publishes it. */
void md_classes_published(const struct mountd *md, char *buf, size_t len);
bool md_classes_in(const char *published, const struct core_spec *s);
#define MD_ANN_DIRS CORE_API_GROUP "/storage-dirs"
/* {"": POOL, "fast": DIR}: this node's folder of each class, published
 * so that a migration to it copies local disks into them. */
int md_classes_dirs_published(const struct mountd *md, char *buf,
			      size_t len);
struct md_dest_dirs {
	json_object *j;                 /* holds the strings of v */
	struct be_dest_dir v[BE_CLASSES_MAX + 1];
	size_t n;
};
/* A target's published folders: -EINVAL for one that is not a plain
 * absolute path (a Lease is not trusted with "..").  Free with
 * md_dest_dirs_free, also after an error. */
int md_dest_dirs_parse(const char *published, struct md_dest_dirs *out,
		       char *err, size_t errlen);
void md_dest_dirs_free(struct md_dest_dirs *d);
/* nodes/NODE/status: "class.NAME DIR shared|local AVAIL/SIZE" lines. */
int md_classes_render(const struct mountd *md, char *buf, size_t len);

/* ---- host/maint.c: cordon and drain ------------------------------------ */

#define MD_ANN_CORDON CORE_API_GROUP "/cordon"
/* How often the Node object of this node is read (kubectl cordon). */
#define MD_NODE_OBJECT_S 10
bool md_cordoned(struct mountd *md);
/* Who cordoned this node ("" when it is not). */
void md_cordon_show(struct mountd *md, char *by, size_t len);
/* Standalone: the cordon the state directory kept. */
void md_cordon_load(struct mountd *md);
/* Cluster: what this node's Lease and its Node object say now. */
void md_cordon_seen(struct mountd *md, bool lease, bool node_object);
/* nodes/NODE/ctl. */
int md_node_ctl(struct mountd *md, const char *node, enum core_node_verb v,
		char *err, size_t errlen);
/* A drain asked through the API: token from the node's Lease, or from
 * its Node object; each token runs once. */
void md_drain_asked(struct mountd *md, const char *token, bool node_object);
/* Wait for a drain that runs (md_close). */
void md_drain_join(struct mountd *md);
/* cluster/mirror.c: whether spec's nodeSelector lets it run on node. */
bool md_selector_allows(const struct core_spec *s, const char *node);

/* report.c: Kubernetes Events of VMs (every line of their events) and
 * of operations (start and end). */
void md_report_init(struct mountd *md);
void md_report_op(struct mountd *md, const char *op, const char *uid,
		  const char *reason, const char *note);

/* ---- host/: libvirt's side --------------------------------------------- */

/* host/nodes.c: nodes/: this node, and with peers the nodes holding a lease
 * (a request to the API server: the stats thread does that). */
void md_update_nodes(struct mountd *md, bool peers);
/* This node's counts changed: md_nodes_flush renders them once, after a
 * verb or a batch of events, rather than a walk over every VM per
 * change. */
void md_nodes_dirty(struct mountd *md);
void md_nodes_flush(struct mountd *md);

/* host/restart.c: restarts after stops nobody asked for, with backoff.
 * Model lock held: plans the next one for a VM that stopped at now after
 * running since started (0: unknown); returns when it is due. */
time_t md_restart_plan(struct mountd *md, struct core_vm *vm, time_t started,
		       time_t now);
/* Model lock held: the Ready condition of a VM that waits says so. */
void md_restart_show(struct core_vm *vm, time_t now);
/* The reconciler's look: restart name if its time has come. */
void md_restart_if_due(struct mountd *md, const char *name);
/* A stop of a VM that waits: no restart, spec.running false.  false
 * when nothing waited. */
bool md_restart_cancel(struct mountd *md, const char *name);
bool md_restart_waiting(const struct md_vm *v, time_t now);

/* host/carbon.c: carbonAware starts wait for a greener grid. */
/* How long a carbonAware VM is left to a greener node (Leases). */
#define MD_GREENER_WAIT_S 20
#define MD_ANN_CARBON_ZONE CORE_API_GROUP "/carbon-zone"
#define MD_ANN_CARBON_INTENSITY CORE_API_GROUP "/carbon-intensity"
#define MD_ANN_CARBON_UPDATED CORE_API_GROUP "/carbon-updated"
int md_carbon_open(struct mountd *md, char *err, size_t errlen);
int md_carbon_start(struct mountd *md);
/* After md->stopping (md_stats_stop). */
void md_carbon_close(struct mountd *md);
/* The gate of a start: *wait when the VM waits (Pending, CarbonDelayed,
 * a look queued at its deadline); now is `start now`. */
int md_carbon_gate(struct mountd *md, const char *name, bool now, bool *wait);
/* Model lock held: a refresh of a VM that waits keeps it Pending. */
void md_carbon_show(struct core_vm *vm, time_t now);
/* The reconciler's look: start a VM that waits if its time has come. */
void md_carbon_if_due(struct mountd *md, const char *name);
/* A stop of a VM that waits: no start, spec.running false.  false when
 * nothing waited. */
bool md_carbon_cancel(struct mountd *md, const char *name);
/* This node's reading into its Lease (when it changed). */
void md_carbon_publish(struct mountd *md);
/* nodes/NODE/status lines of this node's grid, and of a member's. */
int md_carbon_render(struct mountd *md, char *buf, size_t len);
int md_carbon_render_member(const struct md_member *m, char *buf, size_t len);
/* A fresh reading of a member's Lease (a node's own time rules). */
bool md_carbon_member_fresh(const struct md_member *m, time_t now);
/* The grid of this node as a member's would read, for placement. */
int md_carbon_self(struct mountd *md, struct core_grid_reading *out);

/* host/follow.c */
/* The reconciler's work: one VM's events, all VMs, nodes/ after a batch. */
void md_follow_init(struct mountd *md);
/* Queue a VM for the reconciler (NULL: all of them). */
void md_queue(struct mountd *md, const char *name);
void md_queue_status(struct mountd *md, const char *name);
/* Load the store, adopt our domains, bring status up to date. */
int md_load(struct mountd *md, char *err, size_t errlen);
/* Re-read a domain's state from libvirt into the model. */
void md_refresh(struct mountd *md, const char *name);
/* stats.c: the stats thread, which also ticks retention and usage. */
int md_stats_start(struct mountd *md);
void md_stats_stop(struct mountd *md);

#endif
