/* core: the VM model, quantities, spec <-> YAML/JSON, ctl messages, the
 * local store and the pure reconcile rules.  No I/O besides store files.
 *
 * Conventions: functions return 0 or -errno; user-facing error text goes
 * into a caller-provided buffer (err, errlen), short, lower case, no
 * trailing period (Plan 9 errstr style). */
#ifndef HYPERSDK_CORE_H
#define HYPERSDK_CORE_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CORE_NAME_MAX 63     /* Kubernetes object name (DNS label) */
#define CORE_ERR_MAX 512     /* one err line */
#define CORE_MSG_MAX 4096    /* one ctl message */
#define CORE_SPEC_MAX (256 * 1024)

/* ---- names -------------------------------------------------------- */

/* A lower-case RFC 1123 DNS label of at most 63 characters. */
int core_name_check(const char *name, char *err, size_t errlen);

/* Quote n bytes of s for error text: "abc"; control bytes become '?' and
 * a long string is cut to "abc...".  Always NUL-terminates buf. */
void core_quote(char *buf, size_t len, const char *s, size_t n);
/* Plan 9's errstr: the reason into the caller's err (may be NULL);
 * returns rc, so that `return core_errf(err, len, -EINVAL, ...)`. */
int core_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- quantities --------------------------------------------------- */

/* Kubernetes quantities for bytes: "64Mi", "8Gi", "1.5G", "512", "1e3".
 * Binary (Ki..Ei) and decimal (k, M, G, T, P, E) suffixes; fractions are
 * allowed when the result is a whole number of bytes.  Overflow of
 * uint64 is -ERANGE; anything else malformed is -EINVAL. */
int core_qty_parse(const char *s, uint64_t *bytes, char *err, size_t errlen);
/* Shortest exact rendering: 1073741824 -> "1Gi", 1500000000 -> "1500M". */
void core_qty_format(uint64_t bytes, char *buf, size_t len);
/* Bit rates: "100Mbps", "1Gbps", "500kbps", "10MiBps" (bytes) -> bits/s. */
int core_rate_parse(const char *s, uint64_t *bits_per_sec, char *err,
		    size_t errlen);
/* Durations as Kubernetes writes them, hours, minutes and seconds in that
 * order: "6h", "90m", "1h30m", "45s" -> seconds, at most max_s.  -EINVAL,
 * -ERANGE. */
#define CORE_DURATION_ERR "want e.g. 6h, 90m or 1h30m"
int core_duration_parse(const char *s, unsigned max_s, unsigned *secs,
			char *err, size_t errlen);

/* ---- spec --------------------------------------------------------- */

/* carbonAware's defaults, and the longest wait one may ask for. */
#define CORE_CARBON_MAX_INTENSITY 200
#define CORE_CARBON_DELAY_S (6 * 3600)
#define CORE_CARBON_DELAY_MAX_S (7 * 24 * 3600)

struct core_kv {
	char *key;
	char *value;
};

struct core_disk {
	char *name;
	uint64_t size;          /* bytes; 0 means "the image's size" */
	char *storage_class;
	int boot_order;         /* 0 = unset */
};

struct core_net {
	char *name;
	char *type;             /* pod-network, bridge, nat, user, ... */
};

/* The typed view of a VirtualMachine spec.  The JSON document it came
 * from stays the source of truth, so unknown fields survive a round trip;
 * this struct is what the daemon acts on. */
struct core_spec {
	int cpus;
	uint64_t memory;
	int max_cpus;           /* 0 = node default */
	uint64_t max_memory;    /* 0 = node default */
	bool running;
	struct core_disk *disks;
	size_t ndisks;
	struct core_net *nets;
	size_t nnets;
	char *template_ref;     /* image.templateRef.name */
	char *image_source;
	char *image_checksum;
	char *user_data;        /* cloudInit.userData */
	char *network_data;     /* cloudInit.networkData */
	char *meta_data;        /* cloudInit.metaData */
	bool carbon_aware;
	int carbon_max_intensity;       /* gCO2eq/kWh; 200 when not given */
	unsigned carbon_max_delay_s;    /* maxDelay; CORE_CARBON_DELAY_S */
	bool ha_enabled;
	char *ha_restart_policy;   /* Always, OnFailure, Never */
	char *ha_eviction;         /* LiveMigrate, Shutdown, None */
	char *machine_type;
	char *firmware;            /* bios or uefi */
	bool guest_agent;
	char *kernel;              /* kernelBoot.kernel (extension) */
	char *initrd;
	char *cmdline;
	struct core_kv *node_selector;
	size_t nnode_selector;
	struct core_kv *labels;
	size_t nlabels;
};

/* Validate a spec document and fill the typed view.  Every problem is
 * -EINVAL with the field named in err ("spec.cpus: must be >= 1"). */
int core_spec_from_json(json_object *spec, struct core_spec *out, char *err,
			size_t errlen);
void core_spec_free(struct core_spec *s);

/* The spec that mkdir and "create NAME" without arguments give. */
json_object *core_spec_default(void);

/* Set or replace one field of a spec document, e.g. "cpus" or "running". */
void core_spec_set_int(json_object *spec, const char *key, int64_t v);
void core_spec_set_bool(json_object *spec, const char *key, bool v);
void core_spec_set_string(json_object *spec, const char *key, const char *v);

/* ---- YAML <-> JSON ------------------------------------------------ */

/* Parse one YAML document (block or flow style) into JSON.  Plain scalars
 * become int, float, bool or null by YAML 1.2 core rules; quoted ones stay
 * strings.  Anchors/aliases and multiple documents are -EINVAL. */
int core_yaml_parse(const char *buf, size_t len, json_object **out, char *err,
		    size_t errlen);
/* Emit JSON as block YAML; strings that would read back as another type
 * are quoted; multi-line strings use literal style.  Caller frees. */
int core_yaml_emit(json_object *obj, char **out, size_t *outlen);

/* The RFC 7386 merge patch that turns `from` into `to` (new reference;
 * an empty object when they are equal).  Keys dropped become null. */
json_object *core_json_merge_diff(json_object *from, json_object *to);

/* ---- ctl messages ------------------------------------------------- */

/* Every verb in one table, the one place a new verb is added (see
 * docs/HACKING.md, "Adding a verb"):
 *   X(ID, verb, operation, flags, cli, from, to)
 * ID        CORE_V_<ID>
 * verb      what a ctl write says; the daemon runs it in md_run_<verb>
 * operation the VMOperation spec.operation value, and the operation's
 *           metrics label (NULL: no VMOperation carries this verb); the
 *           CRD's enum must list exactly these (a unit test checks)
 * flags     CORE_OPF_*: grammar and how the daemon runs it
 * cli       hyperctl's Kubernetes verb that makes such a VMOperation
 * from      the phases (CORE_PH_*) it may start from, 0 for any; others
 *           are EBUSY before anything changes
 * to        the phases it leaves the VM in, 0 when it does not say (a
 *           write forwarded to the owner waits for them) */
#define CORE_OPF_DIR 1u      /* vms/ctl, not a VM's ctl */
#define CORE_OPF_ARG 2u      /* takes one positional argument */
#define CORE_OPF_OBJECT 4u   /* runs as an object of its own (VMOperation,
			      * VMSnapshot) wherever the write came in */
#define CORE_OPF_MARKS 8u    /* the operations engine marks the VM busy
			      * around its run (the others mark it themselves
			      * or act on objects only) */
#define CORE_OPF_FORCE_ANY 16u /* with force, from any phase */
#define CORE_PH(p) (1u << CORE_PHASE_##p)
#define CORE_PH_ACTIVE (CORE_PH(RUNNING) | CORE_PH(PAUSED))
#define CORE_PH_INACTIVE (CORE_PH(STOPPED) | CORE_PH(FAILED))
#define CORE_PH_ALL ((CORE_PH(UNKNOWN) << 1) - 1)
#define CORE_OPS(X) \
	X(CREATE, create, NULL, CORE_OPF_DIR | CORE_OPF_ARG, NULL, 0, 0) \
	X(START, start, "start", 0, "vm-start", CORE_PH_INACTIVE | \
	  CORE_PH(PENDING), CORE_PH(RUNNING)) \
	X(STOP, stop, "stop", 0, "vm-stop", CORE_PH_ACTIVE, CORE_PH_INACTIVE) \
	X(RESTART, restart, "restart", 0, "vm-restart", CORE_PH_ACTIVE, \
	  CORE_PH(RUNNING)) \
	X(PAUSE, pause, "pause", 0, "vm-pause", CORE_PH(RUNNING), \
	  CORE_PH(PAUSED)) \
	X(RESUME, resume, "resume", 0, "vm-resume", CORE_PH(PAUSED), \
	  CORE_PH(RUNNING)) \
	X(DELETE, delete, NULL, CORE_OPF_FORCE_ANY, NULL, \
	  CORE_PH_ALL & ~(CORE_PH_ACTIVE | CORE_PH(MIGRATING)), 0) \
	X(CLONE, clone, "clone", CORE_OPF_ARG | CORE_OPF_OBJECT | \
	  CORE_OPF_MARKS, "vm-clone", 0, 0) \
	X(MIGRATE, migrate, "migrate", CORE_OPF_ARG | CORE_OPF_OBJECT | \
	  CORE_OPF_MARKS, "vm-migrate", 0, 0) \
	X(RESIZE, resize, "resize", CORE_OPF_OBJECT | CORE_OPF_MARKS, \
	  "vm-resize", 0, 0) \
	X(SNAPSHOT, snapshot, "snapshot", CORE_OPF_ARG | CORE_OPF_OBJECT, \
	  NULL, 0, 0) \
	X(REVERT, revert, "restore", CORE_OPF_ARG | CORE_OPF_OBJECT | \
	  CORE_OPF_MARKS, "vm-snapshot-restore", 0, 0) \
	X(CANCEL, cancel, NULL, CORE_OPF_OBJECT, NULL, 0, 0)

enum core_verb {
#define CORE_X_ENUM(id, verb, op, flags, cli, from, to) CORE_V_##id,
	CORE_OPS(CORE_X_ENUM)
#undef CORE_X_ENUM
	CORE_V_COUNT
};

struct core_op {
	enum core_verb verb;
	const char *name;       /* the ctl verb */
	const char *operation;  /* spec.operation and metrics label, or NULL */
	unsigned flags;
	const char *cli;        /* hyperctl verb, or NULL */
	unsigned from, to;      /* masks of 1 << enum core_phase */
};

/* The row of a verb; NULL for CORE_V_COUNT and beyond. */
const struct core_op *core_op(enum core_verb v);
/* The row whose ctl verb (spec.operation, hyperctl verb) is s; NULL when
 * none. */
const struct core_op *core_op_by_verb(const char *s);
const struct core_op *core_op_by_operation(const char *s);
const struct core_op *core_op_by_cli(const char *s);

struct core_ctl {
	enum core_verb verb;
	char arg[CORE_NAME_MAX + 1]; /* create NAME, clone TARGET, migrate NODE,
				      * snapshot SNAP, revert SNAP */
	bool force;             /* stop force, delete force */
	bool now;               /* start now: past a carbonAware wait */
	/* create, resize */
	int cpus;               /* 0 = not given */
	uint64_t memory;        /* 0 = not given */
	uint64_t disk;          /* 0 = not given */
	char template_name[CORE_NAME_MAX + 1];
	int running;            /* -1 not given, 0, 1 */
	/* clone */
	bool linked, start;
	/* migrate */
	bool offline, autoconverge, postcopy;
	uint64_t bandwidth;     /* bits/s, 0 = unlimited */
	/* snapshot */
	bool memory_state, quiesce;
	int keep_days;          /* -1 = not given */
	int keep_count;         /* -1 = not given */
	/* Not parsed: set by whoever takes the message (fs from the
	 * caller's uid) so a create or clone knows who will own the VM. */
	uid_t owner;
};

/* Parse one ctl message (one write).  One trailing newline is stripped;
 * an embedded newline, control bytes or more than CORE_MSG_MAX bytes are
 * -EINVAL.  on_dir selects the vms/ctl grammar (create only) rather than
 * a VM's ctl.  Errors use Plan 9 wording: "empty control message",
 * "unknown control message \"x\"", "wrong #args in control message". */
int core_ctl_parse(const char *buf, size_t len, bool on_dir,
		   struct core_ctl *out, char *err, size_t errlen);
const char *core_verb_name(enum core_verb v);

/* nodes/NODE/ctl: one word per write, the rules of a VM's ctl. */
enum core_node_verb {
	CORE_NV_CORDON,         /* take no new VMs */
	CORE_NV_UNCORDON,
	CORE_NV_DRAIN,          /* cordon, then move or stop every VM */
	CORE_NV_COUNT,
};
int core_node_ctl_parse(const char *buf, size_t len, enum core_node_verb *out,
			char *err, size_t errlen);
const char *core_node_verb_name(enum core_node_verb v);
/* Whether the verb of msg may start from phase ph (enum core_phase; its
 * row's from, and CORE_OPF_FORCE_ANY). */
bool core_op_allowed(const struct core_ctl *msg, int ph);

/* ---- status ------------------------------------------------------- */

enum core_phase {
	CORE_PHASE_PENDING,
	CORE_PHASE_CREATING,
	CORE_PHASE_RUNNING,
	CORE_PHASE_STOPPED,
	CORE_PHASE_PAUSED,
	CORE_PHASE_MIGRATING,
	CORE_PHASE_FAILED,
	CORE_PHASE_UNKNOWN,
};
const char *core_phase_name(enum core_phase p);
int core_phase_parse(const char *s, enum core_phase *out);

enum core_cond_type {
	CORE_COND_READY,
	CORE_COND_DISK_READY,
	CORE_COND_NETWORK_READY,
	CORE_COND_AGENT_CONNECTED,
	CORE_COND_RESTART_REQUIRED,     /* a resize waits for the next start */
	CORE_COND_CARBON_DELAYED,       /* a start waits for a greener grid */
	CORE_COND_COUNT,
};
const char *core_cond_name(enum core_cond_type t);

struct core_cond {
	bool status;
	char reason[64];
	char message[256];
	time_t last_transition;
};

struct core_status {
	enum core_phase phase;
	struct core_cond cond[CORE_COND_COUNT];
	char node[CORE_NAME_MAX + 1];
	char uuid[40];
	char accel[8];          /* kvm or tcg */
	time_t start_time;      /* 0 when not running */
	int qemu_pid;           /* 0 when not running */
	char vnc_address[64];
	int vnc_port;           /* -1 when none */
	char console[256];      /* serial console pty or log */
	int cpus;               /* what the domain has now */
	uint64_t memory;
	uint64_t disk_bytes;    /* sum of allocated disk sizes */
	char operation[32];     /* the action in flight, "" when none */
	unsigned restarts;      /* restarts after stops nobody asked for */
	time_t next_restart;    /* when the next one is due, 0 when none */
	/* carbonAware: the start that waits for a greener grid, and the
	 * reading it was last decided on (status.carbon). */
	struct core_carbon_status {
		time_t since;           /* a start waits since, 0 when none */
		time_t deadline;        /* ... and starts at the latest then */
		time_t next_window;     /* forecast under maxIntensity, 0 none */
		int intensity;          /* gCO2eq/kWh, -1 when none */
		time_t reading_at;      /* the reading's own time */
		char zone[64];
		char provider[16];
		unsigned last_delay_s;  /* how long the last start waited */
	} carbon;
};

void core_status_init(struct core_status *st);
/* Set a condition; the transition time moves only when status flips. */
void core_status_cond(struct core_status *st, enum core_cond_type t,
		      bool status, const char *reason, const char *message,
		      time_t now);
/* "phase Running\nnode n1\n..." with flat keys (see docs/status.md).
 * Returns the length, or -ENOSPC when len is too small. */
int core_status_render(const struct core_status *st, const char *name,
		       char *buf, size_t len);
json_object *core_status_to_json(const struct core_status *st);
int core_status_from_json(json_object *o, struct core_status *st);

/* ---- the in-memory model ------------------------------------------ */

#define CORE_EVENTS_KEEP 128

/* One VM as the tree and the reconciler see it.  Fields are protected by
 * the model lock; the rendered texts are kept current by the model so a
 * reader only copies them. */
struct core_vm {
	char name[CORE_NAME_MAX + 1];
	char ns[CORE_NAME_MAX + 1];
	char uid[40];
	char created[32];       /* RFC 3339 */
	uid_t owner;            /* who made it (root for the API's); the
				 * tree's modes and access checks follow it */
	json_object *spec_json; /* the spec document, unknown fields kept */
	struct core_spec spec;  /* typed view of spec_json */
	struct core_status st;
	char err[CORE_ERR_MAX];
	char *events[CORE_EVENTS_KEEP]; /* ring of event lines */
	unsigned nevents, events_head;
	uint64_t version;       /* bumps on every visible change */
	int slot;               /* stable small integer for inode numbers */
	uint64_t spec_gen;      /* bumps on every spec change */
	char vnc_password[16];  /* the running VNC server's; owner only */
	bool deleted;
	void *priv;             /* the daemon's own (core_model_set_priv) */
	/* rendered files, refreshed on each change */
	char *txt_status, *txt_spec, *txt_events, *txt_stats;
	size_t len_status, len_spec, len_events, len_stats;
	int refs;               /* the model's own + core_model_ref's */
};

struct core_model;

/* Called (without the model lock held) after each change of a VM, with
 * what changed; used by fs to invalidate caches and by sync to mirror.
 * name is NULL (slot -1) for tree-level changes: vms/err, the VM list. */
enum {
	CORE_CHG_STATUS = 1,
	CORE_CHG_SPEC = 2,
	CORE_CHG_ERR = 4,
	CORE_CHG_EVENTS = 8,
	CORE_CHG_ADDED = 16,
	CORE_CHG_REMOVED = 32,
	CORE_CHG_NODES = 128,   /* tree-level: a node came, went or changed */
	CORE_CHG_STATS = 64,    /* stats only: does not bump version */
};
typedef void (*core_watch_fn)(void *arg, const char *name, int slot,
			      unsigned what, uint64_t seq);

int core_model_new(struct core_model **m);
/* Every VM and object made from now on carries vm_size (obj_size) zeroed
 * bytes at ->priv for the model's user, freed with it: state that is the
 * daemon's, not core's, without a second lookup table.  Call before the
 * first add. */
void core_model_set_priv(struct core_model *m, size_t vm_size,
			 size_t obj_size);
void core_model_free(struct core_model *m);
void core_model_watch(struct core_model *m, core_watch_fn fn, void *arg);
/* Remove a watcher; after it returns, fn is not running and won't be. */
void core_model_unwatch(struct core_model *m, core_watch_fn fn, void *arg);

/* Lock for reading or writing; all core_vm fields and lookups below need
 * the lock held. */
void core_model_rdlock(struct core_model *m);
void core_model_wrlock(struct core_model *m);
void core_model_unlock(struct core_model *m);

struct core_vm *core_model_find(struct core_model *m, const char *name);
struct core_vm *core_model_slot(struct core_model *m, int slot);
/* Iterate VMs in name order; stop when fn returns non-zero. */
int core_model_each(struct core_model *m,
		    int (*fn)(struct core_vm *vm, void *arg), void *arg);
size_t core_model_count(struct core_model *m);

/* Insert a new VM (write lock held).  Takes ownership of spec_json when it
 * returns 0.  -EEXIST when the name is taken, -EINVAL for a bad name or
 * spec.  ns NULL means "default", uid NULL a new UUID, created NULL now.
 * The status starts as core_status_init's (phase Pending). */
int core_model_add(struct core_model *m, const char *name, const char *ns,
		   const char *uid, const char *created, json_object *spec_json,
		   struct core_vm **out, char *err, size_t errlen);
/* Remove (write lock held).  The VM is freed now, or when the last
 * core_model_unref drops it; until then it stays readable with deleted
 * set. */
void core_model_remove(struct core_model *m, struct core_vm *vm);
/* Keep a VM's memory valid beyond the model lock (take it with any model
 * lock held or while holding another reference; drop it holding none). */
void core_model_ref(struct core_model *m, struct core_vm *vm);
void core_model_unref(struct core_model *m, struct core_vm *vm);
/* Replace the spec (write lock held; validated; ownership as above).
 * spec_json may be vm->spec_json itself, edited in place. */
int core_model_set_spec(struct core_model *m, struct core_vm *vm,
			json_object *spec_json, char *err, size_t errlen);
/* Mark the status changed after editing vm->st (write lock held). */
void core_model_status_changed(struct core_model *m, struct core_vm *vm);
/* Set the err line (write lock held); vm NULL sets the tree's vms/err.
 * Control characters become spaces and a trailing newline is dropped. */
void core_model_set_err(struct core_model *m, struct core_vm *vm,
			const char *err);
/* Record a refused request: sets err (the VM's, or the tree's vms/err when
 * vm is NULL) and appends an event "Error <msg>".  Nothing else changes. */
void core_model_fail(struct core_model *m, struct core_vm *vm,
		     const char *msg);
/* Record how a write ended, for every door (the tree, the dashboard):
 * rc < 0 puts err in the VM's err (name NULL or "": vms/err) and an
 * Error event; success clears that err line.  Takes the lock itself and
 * flushes; returns core_model_flush's sequence number. */
uint64_t core_model_record(struct core_model *m, const char *name, int rc,
			   const char *err);
/* The tree-level err line and a version that bumps when it or the set of
 * VMs changes (read lock held). */
const char *core_model_err(struct core_model *m);
uint64_t core_model_version(struct core_model *m);
/* Replace the stats text (flat "key value" lines) of a VM (write lock
 * held).  Notifies CORE_CHG_STATS but leaves version alone, so a wait
 * does not wake up for every sample. */
void core_model_set_stats(struct core_model *m, struct core_vm *vm,
			  const char *txt, size_t len);
/* Append "<RFC3339> <reason> <message>" (write lock held), one line;
 * the last CORE_EVENTS_KEEP are kept.  Ignored when vm is NULL. */
void core_model_event(struct core_model *m, struct core_vm *vm,
		      const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* One listener of every event as it is recorded, typed (reason and
 * message as the line has them, one line each): called with the model
 * write lock held, so it must only copy and queue.  Set it before the
 * first event; fn NULL removes it. */
typedef void (*core_event_fn)(void *arg, const struct core_vm *vm,
			      time_t when, const char *reason,
			      const char *msg);
void core_model_on_event(struct core_model *m, core_event_fn fn, void *arg);

/* Deliver queued change notifications; call after core_model_unlock.
 * Returns the sequence number of the last change delivered.  Flushes are
 * serialized; a watcher may take the model lock but must not call
 * core_model_flush or core_model_watch. */
uint64_t core_model_flush(struct core_model *m);

/* Block (holding no lock) until the VM's version differs from `seen` or
 * *cancel becomes true (checked on each wake-up; set it with
 * __atomic_store_n, then call core_model_wake).  Returns 0 on change,
 * -ENOENT when the VM went away, -EINTR when cancelled, -ETIMEDOUT after
 * timeout_ms (<0: forever). */
int core_model_wait(struct core_model *m, const char *name, uint64_t seen,
		    volatile bool *cancel, int timeout_ms);
/* Wake every waiter (e.g. after setting a cancel flag). */
void core_model_wake(struct core_model *m);

/* Block until check(m, ctx) returns <= 0 (0: what it waits for
 * happened; -errno: it never will); 1 means "not yet".  check takes the
 * model lock itself.  -EINTR when *cancel, -ETIMEDOUT after timeout_ms. */
int core_model_wait_until(struct core_model *m,
			  int (*check)(struct core_model *m, void *ctx),
			  void *ctx, volatile bool *cancel, int timeout_ms);

/* ---- operations, snapshots, templates ------------------------------ */

/* The API group and version of every kind (VirtualMachine and the kinds
 * below), as objects, the store and the API server spell them. */
#define CORE_API_GROUP "hypersdk.io"
#define CORE_API_VERSION CORE_API_GROUP "/v1alpha1"

/* The other kinds of the API group live in the model as whole objects
 * ({apiVersion, kind, metadata, spec, status}); the daemon runs them and
 * fs shows them.  A snapshot belongs to the VM in spec.vmRef.name, an
 * operation to the VM in spec.vmRef.name; templates to none. */
enum core_kind {
	CORE_KIND_OPERATION,
	CORE_KIND_SNAPSHOT,
	CORE_KIND_TEMPLATE,
	CORE_KIND_COUNT,
};
/* "VMOperation", ...; "operations", ... (store folders and API plural
 * without the "vm" prefix). */
const char *core_kind_name(enum core_kind k);
const char *core_kind_dir(enum core_kind k);

/* Tree-level change bits for objects (name NULL, slot -1). */
enum {
	CORE_CHG_OBJECTS = 256,  /* an operation, snapshot or template */
};

struct core_obj {
	enum core_kind kind;
	char name[CORE_NAME_MAX + 1];
	char vm[CORE_NAME_MAX + 1];     /* spec.vmRef.name, "" for none */
	json_object *obj;               /* the whole object */
	char *txt_status, *txt_spec;    /* flat status, spec as YAML */
	size_t len_status, len_spec;
	uint64_t version;               /* bumps on every change */
	int slot;                       /* stable, for inode numbers */
	void *priv;                     /* core_model_set_priv */
};

/* Add or replace a whole object (write lock held); takes ownership of
 * obj on success.  metadata.name must be a valid name; operations and
 * snapshots need spec.vmRef.name.  The status is re-rendered. */
int core_model_obj_put(struct core_model *m, enum core_kind kind,
		       json_object *obj, struct core_obj **out, char *err,
		       size_t errlen);
/* Set one status field (write lock held); val ownership passes. */
void core_model_obj_status_set(struct core_model *m, struct core_obj *o,
			       const char *key, json_object *val);
void core_model_obj_remove(struct core_model *m, struct core_obj *o);
struct core_obj *core_model_obj_find(struct core_model *m,
				     enum core_kind kind, const char *name);
struct core_obj *core_model_obj_slot(struct core_model *m, int slot);
/* In name order within a kind; stop when fn returns non-zero. */
int core_model_obj_each(struct core_model *m, enum core_kind kind,
			int (*fn)(struct core_obj *o, void *arg), void *arg);
/* Read helpers on the object's JSON ("spec.vmRef.name" style paths);
 * NULL / def when missing or of another type. */
const char *core_obj_str(const struct core_obj *o, const char *path);
int64_t core_obj_int(const struct core_obj *o, const char *path,
		     int64_t def);
bool core_obj_bool(const struct core_obj *o, const char *path, bool def);
/* JSON at a dotted path inside any object, borrowed; NULL when missing. */
json_object *core_json_path(json_object *root, const char *path);
/* Flat "key value" lines of a status object, "phase" first, nested keys
 * dotted, conditions as condition.TYPE lines (see docs/operations.md).
 * Caller frees. */
char *core_obj_render_status(json_object *status, size_t *len);

/* ---- nodes ------------------------------------------------------- */

/* The nodes/ directory: this node, and in a cluster the nodes holding a
 * lease.  Protected by the model lock, like VMs. */
/* A node's grid, as its provider (or its Lease) last said. */
struct core_grid_reading {
	int intensity;          /* gCO2eq/kWh, -1 when none */
	time_t at;              /* the reading's own time */
	char zone[64];
	char provider[16];      /* "" when the node has none */
};

struct core_node {
	char name[CORE_NAME_MAX + 1];
	int slot;               /* stable small integer for inode numbers */
	char *txt;              /* its status file */
	size_t len;
	struct core_grid_reading grid;  /* the dashboard's badge, /metrics */
};

/* Add or update a node's status text (write lock held). */
int core_model_set_node(struct core_model *m, const char *name,
			const char *txt, size_t len);
void core_model_remove_node(struct core_model *m, const char *name);
/* The typed grid reading of a node set by core_model_set_node (write
 * lock held; its text carries the same, so the change is delivered with
 * the text's).  -ENOENT. */
int core_model_set_node_grid(struct core_model *m, const char *name,
			     const struct core_grid_reading *g);
struct core_node *core_model_node(struct core_model *m, const char *name);
struct core_node *core_model_node_slot(struct core_model *m, int slot);
int core_model_each_node(struct core_model *m,
			 int (*fn)(struct core_node *n, void *arg), void *arg);

/* ---- the local store ---------------------------------------------- */

/* Objects are JSON files: <dir>/<kind>/<name>.json, written atomically
 * (temp file, fsync, rename, fsync of the directory), so a kill -9 at any
 * moment keeps either the old or the new object whole. */
struct core_store;

int core_store_open(const char *dir, struct core_store **out, char *err,
		    size_t errlen);
void core_store_close(struct core_store *s);
int core_store_put(struct core_store *s, const char *kind, const char *name,
		   json_object *obj);
int core_store_get(struct core_store *s, const char *kind, const char *name,
		   json_object **out);
int core_store_del(struct core_store *s, const char *kind, const char *name);
/* Call fn for each object of a kind, in name order; skips (and logs to
 * stderr) files that do not parse rather than failing the whole load.
 * obj is borrowed: json_object_get() it to keep it.  A non-zero return
 * of fn stops the walk and is returned. */
int core_store_list(struct core_store *s, const char *kind,
		    int (*fn)(const char *name, json_object *obj, void *arg),
		    void *arg);

/* mkdir -p. */
int core_mkdir_p(const char *dir, mode_t mode);

/* 0 when dir, symlinks resolved, and every folder above it can be
 * changed by root only (ancestors may be sticky, like /tmp); the
 * resolved path, the one checked, goes to out and is what the caller
 * uses from then on (a link in a folder others can write could be
 * pointed elsewhere later).  -EPERM with the folder and the reason in
 * err otherwise (owner not root, group- or world-writable), -ENOTDIR,
 * -ENOENT. */
int core_dir_trusted(const char *dir, char *out, size_t outlen, char *err,
		     size_t errlen);
/* path resolved (symlinks included) into real (PATH_MAX bytes) when it
 * lies strictly inside dir, itself a resolved path; returns the part of
 * real below dir, else NULL. */
const char *core_path_under(const char *dir, const char *path, char *real);
/* Resolve path (symlinks included) into out when it names a regular file
 * inside dir that only root can write; else -EACCES with the reason in
 * err.  The caller uses out, never path, so a link cannot be swapped in
 * between. */
int core_file_under(const char *dir, const char *path, char *out,
		    size_t outlen, char *err, size_t errlen);
/* write(2) until all n bytes are out (EINTR retried); 0 or -errno. */
int core_write_all(int fd, const char *p, size_t n);
/* Write txt to dirfd/tmp, fsync, rename over dirfd/name, fsync the
 * directory: a crash leaves the old file or the new one, whole.  tmp must
 * be unique to the writer (a leftover is the caller's to clean). */
int core_write_atomic(int dirfd, const char *name, const char *tmp,
		      const char *txt, size_t len);

/* A VM as a stored object: {apiVersion, kind, metadata, spec, status}. */
json_object *core_vm_to_object(const struct core_vm *vm);

/* ---- access ------------------------------------------------------- */

/* Who asks: the caller's uid, primary gid and supplementary groups. */
#define CORE_GROUPS_MAX 64
struct core_cred {
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t groups[CORE_GROUPS_MAX];
};

/* The daemon's --group; has_group false when it does not exist (then
 * only root may do anything). */
struct core_acl {
	bool has_group;
	gid_t gid;
};

enum core_right {
	CORE_R_SEE,     /* list the tree, a VM's name and status, templates */
	CORE_R_READ,    /* a VM's spec, err, events, stats, snapshots, ops */
	CORE_R_CONTROL, /* ctl and spec writes, delete (rmdir) */
	CORE_R_CREATE,  /* a new VM (vms/ctl create, mkdir in vms/) */
	CORE_R_ADMIN,   /* everything else: templates, root only */
};

bool core_cred_in_group(const struct core_cred *c, gid_t gid);
/* 0 when c may exercise r on a VM owned by owner (or, for SEE, CREATE
 * and ADMIN, on the tree); -EACCES otherwise.  Root may do anything; a
 * member of acl's group has SEE and CREATE, and READ and CONTROL on the
 * VMs it owns; anyone else nothing.  The dashboard applies this too. */
int core_may(const struct core_acl *acl, const struct core_cred *c,
	     uid_t owner, enum core_right r);

/* metadata.annotations of a stored object: the owner's uid as the daemon
 * recorded it, and the user name a Kubernetes object may give. */
#define CORE_OWNER_UID_KEY CORE_API_GROUP "/owner-uid"
#define CORE_OWNER_KEY CORE_API_GROUP "/owner"
/* A label key: =true marks the node Leases; in a VM's nodeSelector its
 * value is the node the VM must run on. */
#define CORE_NODE_LABEL CORE_API_GROUP "/node"
/* 0 (root) when absent or malformed. */
uid_t core_owner_from_object(json_object *obj);
void core_owner_to_object(json_object *obj, uid_t owner);

/* ---- reconcile rules (pure) --------------------------------------- */

enum core_action {
	CORE_ACT_NONE,
	CORE_ACT_START,
	CORE_ACT_STOP,
	CORE_ACT_RESTART,
};

/* What to do when a domain stopped without being asked to. */
enum core_action core_on_unexpected_stop(const struct core_spec *spec,
					 bool crashed);

/* The kubelet's: 10 s, doubling to 5 min, reset by 10 min of running. */
#define CORE_BACKOFF_FIRST_S 10
#define CORE_BACKOFF_MAX_X 30
#define CORE_BACKOFF_STABLE_X 60
/* Seconds to wait before restarting a VM that stopped at now after it
 * started at started (0: unknown), the first wait being first seconds;
 * counts the failure in *failures. */
unsigned core_restart_delay(unsigned *failures, time_t started, time_t now,
			    unsigned first);

/* ---- time --------------------------------------------------------- */

void core_rfc3339(time_t t, char *buf, size_t len);
/* The date and time at the start of an RFC 3339 string, read as UTC
 * (what follows the seconds is not looked at); -EINVAL otherwise. */
int core_rfc3339_parse(const char *s, time_t *out);
/* Generate a random RFC 4122 version 4 UUID. */
void core_uuid(char out[40]);

#endif
