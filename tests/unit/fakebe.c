/* The in-memory backend of fakebe.h.  Each rule below is the real
 * backend's (backend/ files) or the answer libvirt gives it, with err text
 * as be_err/core_errf render it; where the fake has to choose, the comment
 * says so.  One mutex (fakebe_st.lock) guards every host; events and guest
 * power-offs run on one thread of the fake (fakebe_q), never under that
 * lock. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tests/unit/fakebe.h"

#define FAKEBE_NAME_MAX 63                  /* the real BE_NAME_MAX */
#define FAKEBE_URI "qemu:///system"         /* be_open's defaults */
#define FAKEBE_POOL_NAME "hypersdk"
#define FAKEBE_POOL_DIR "/var/lib/hypersdk/images"
#define FAKEBE_HOST_CPUS 8
#define FAKEBE_HOST_MEMORY (16ULL << 30)
#define FAKEBE_DEFAULT_MAX_CPUS 8           /* xml.c's BE_DEFAULT_MAX_CPUS */
#define FAKEBE_DIMM_SLOTS 16                /* priv.h's BE_DIMM_SLOTS */
#define FAKEBE_VNC_LEN 8
#define FAKEBE_SEED_BYTES (1ULL << 20)
#define FAKEBE_CHAIN_MAX 64
/* Above any pid_max (2^22): a fake QEMU pid never names a real process
 * that a daemon under test might signal or inspect. */
#define FAKEBE_PID_BASE 5000000
#define FAKEBE_INVALID "Requested operation is not valid: "

static const char *const fakebe_op_names[FAKEBE_OP_COUNT] = {
	[FAKEBE_OP_OPEN] = "be_open",
	[FAKEBE_OP_CLOSE] = "be_close",
	[FAKEBE_OP_ACCEL_NAME] = "be_accel_name",
	[FAKEBE_OP_CONN_ALIVE] = "be_conn_alive",
	[FAKEBE_OP_DEFINE] = "be_define",
	[FAKEBE_OP_BOOT_CHECK] = "be_boot_check",
	[FAKEBE_OP_START] = "be_start",
	[FAKEBE_OP_SHUTDOWN] = "be_shutdown",
	[FAKEBE_OP_DESTROY] = "be_destroy",
	[FAKEBE_OP_SUSPEND] = "be_suspend",
	[FAKEBE_OP_RESUME] = "be_resume",
	[FAKEBE_OP_UNDEFINE] = "be_undefine",
	[FAKEBE_OP_FORGET] = "be_forget",
	[FAKEBE_OP_INFO] = "be_info",
	[FAKEBE_OP_LIST] = "be_list",
	[FAKEBE_OP_STATS_ALL] = "be_stats_all",
	[FAKEBE_OP_WATCH] = "be_watch",
	[FAKEBE_OP_CLONE] = "be_clone",
	[FAKEBE_OP_LINKED_DEPENDENTS] = "be_linked_dependents",
	[FAKEBE_OP_SNAPSHOT_CREATE] = "be_snapshot_create",
	[FAKEBE_OP_SNAPSHOT_REVERT] = "be_snapshot_revert",
	[FAKEBE_OP_SNAPSHOT_DELETE] = "be_snapshot_delete",
	[FAKEBE_OP_SNAPSHOT_INFO] = "be_snapshot_info",
	[FAKEBE_OP_SNAPSHOT_LIST] = "be_snapshot_list",
	[FAKEBE_OP_RESIZE] = "be_resize",
	[FAKEBE_OP_LIMITS] = "be_limits",
	[FAKEBE_OP_MIGRATE] = "be_migrate",
	[FAKEBE_OP_IMPORT_SET] = "be_import_set",
	[FAKEBE_OP_IMAGE_IMPORT] = "be_image_import",
	[FAKEBE_OP_IMAGE_DELETE] = "be_image_delete",
	[FAKEBE_OP_VOLUME_FROM_IMAGE] = "be_volume_from_image",
};

/* ---- the model ------------------------------------------------------ */

struct fakebe_disk {
	char name[FAKEBE_NAME_MAX + 1];
	char *path;                     /* its current top file */
};

/* What a domain XML holds that the backend reads back. */
struct fakebe_def {
	bool ours;                      /* has <hypersdk:vm> metadata */
	char ns[FAKEBE_NAME_MAX + 1], uid[FAKEBE_NAME_MAX + 1];
	char node[FAKEBE_NAME_MAX + 1];
	char *spec;                     /* metadata's spec JSON text */
	int cpus, max_cpus;             /* <vcpu current=>, <vcpu> */
	uint64_t mem_kib;               /* <memory>: base and DIMMs */
	uint64_t cur_kib;               /* <currentMemory> */
	uint64_t max_kib;               /* <maxMemory>; 0: no DIMM hotplug */
	int dimms;
	bool agent;
	struct fakebe_disk *disks;
	size_t ndisks;
	char *seed;                     /* cloud-init seed image or NULL */
	char vnc[FAKEBE_VNC_LEN + 1];
};

struct fakebe_snap {
	struct be_snap_info info;       /* .current is the domain's */
	struct fakebe_def def;          /* the domain as it was */
};

enum fakebe_state { FAKEBE_SHUTOFF, FAKEBE_RUNNING, FAKEBE_PAUSED };

struct fakebe_dom {
	char name[FAKEBE_NAME_MAX + 1];
	char uuid[40];
	struct fakebe_def def;          /* persistent */
	struct fakebe_def live;         /* while not shut off */
	enum fakebe_state state;
	char reason[32];                /* libvirt's state reason name */
	unsigned boots;                 /* which run a power-off is for */
	int pid, vnc_port, console;
	bool ignore_acpi, agent_off;
	struct fakebe_snap *snaps;      /* oldest first */
	size_t nsnaps;
	char current[FAKEBE_NAME_MAX + 1];
	char *stats;
	uint64_t cpu_ns;
	struct fakebe_dom *next;
};

struct fakebe_vol {
	char *path;
	uint64_t cap;
	char *backing;                  /* NULL: none */
	struct fakebe_vol *next;
};

struct fakebe_pool {
	char *name, *dir;
	struct fakebe_pool *next;
};

/* One libvirtd. */
struct fakebe_host {
	char *uri;
	bool down, kvm;
	bool orphan;                    /* dropped by fakebe_reset */
	int refs;                       /* connections and queued power-offs */
	struct fakebe_dom *doms;
	struct fakebe_vol *vols;
	struct fakebe_pool *pools;
	struct fakebe_host *next;
};

struct fakebe_image {
	char *source, *checksum;
	uint64_t vsize;
	struct fakebe_image *next;
};

struct be_conn {
	struct fakebe_host *h;
	char *uri, *pool_name, *pool_dir, *node, *kernel_dir;
	bool kvm;
	bool broken;                    /* the host was down since last call */
	be_watch_fn watch_fn;
	void *watch_arg;
	struct be_import_policy *imp;   /* NULL: the defaults */
	int imports;                    /* running now */
	struct be_conn *next;
};

static struct {
	pthread_mutex_t lock;
	struct fakebe_host *hosts;
	struct be_conn *conns;
	struct fakebe_image *images;
	unsigned long calls[FAKEBE_OP_COUNT];
	struct {
		bool armed;
		int rc;
		char err[CORE_ERR_MAX];
	} fail[FAKEBE_OP_COUNT];
	unsigned long seq;              /* uuids, pids, passwords, stamps */
} fakebe_st = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A notification for c (c set) or a guest power-off on h (c NULL). */
struct fakebe_item {
	struct be_conn *c;
	be_watch_fn fn;
	void *arg;
	char *name;                     /* NULL: re-read everything */
	enum core_phase now;            /* what the event says */
	struct fakebe_host *h;
	unsigned boots;
	struct fakebe_item *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* items queued, or one finished */
	struct fakebe_item *head, *tail;
	pthread_t thread;
	bool running, stop, busy;
	struct be_conn *delivering;
	unsigned long notified;
} fakebe_q = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .cond = PTHREAD_COND_INITIALIZER };

static const struct be_import_policy fakebe_import_defaults = {
	.max_bytes = BE_IMPORT_MAX_BYTES, .timeout_s = BE_IMPORT_TIMEOUT_S,
	.low_speed = BE_IMPORT_LOW_SPEED, .stall_s = BE_IMPORT_STALL_S,
	.max_running = BE_IMPORT_MAX_RUNNING,
};

/* ---- errors and names ---------------------------------------------- */

/* A libvirt error as be_err renders it: "<verb> <name>: <message>". */
__attribute__((format(printf, 6, 7)))
static int fakebe_virerr(char *err, size_t errlen, int rc, const char *verb,
			 const char *name, const char *fmt, ...)
{
	char msg[CORE_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (name && *name)
		return core_errf(err, errlen, rc, "%s %s: %s", verb, name,
				   msg);
	return core_errf(err, errlen, rc, "%s: %s", verb, msg);
}

/* VIR_ERR_NO_DOMAIN, which be_err maps to -ENOENT. */
static int fakebe_no_domain(char *err, size_t errlen, const char *verb,
			    const char *name)
{
	return fakebe_virerr(err, errlen, -ENOENT, verb, name, "Domain not "
			     "found: no domain with matching name '%s'",
			     name ? name : "");
}

/* VIR_ERR_OPERATION_INVALID, which be_err maps to -EBUSY. */
static int fakebe_invalid(char *err, size_t errlen, const char *verb,
			  const char *name, const char *why)
{
	return fakebe_virerr(err, errlen, -EBUSY, verb, name,
			     FAKEBE_INVALID "%s", why);
}

/* be_name_ok. */
static bool fakebe_name_ok(const char *name)
{
	size_t i, n = name ? strlen(name) : 0;

	if (n == 0 || n > FAKEBE_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_' &&
		    ch != '.')
			return false;
	}
	return true;
}

static bool fakebe_is_uuid(const char *s)
{
	static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (!s || strlen(s) != sizeof(pat) - 1)
		return false;
	for (i = 0; pat[i]; i++)
		if (pat[i] == '-' ? s[i] != '-' :
		    !((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

static const char *fakebe_uri(const char *uri)
{
	return uri && *uri ? uri : FAKEBE_URI;
}

static bool fakebe_cancelled(const struct be_progress *p)
{
	return p && p->cancel && *p->cancel;
}

/* Never with fakebe_st.lock held: the caller's fn may call the backend. */
static void fakebe_report(const struct be_progress *p, int pct,
			  const char *msg)
{
	if (p && p->fn)
		p->fn(p->arg, pct, msg);
}

/* ---- definitions ---------------------------------------------------- */

static void fakebe_def_free(struct fakebe_def *d)
{
	size_t i;

	for (i = 0; i < d->ndisks; i++)
		free(d->disks[i].path);
	free(d->disks);
	free(d->spec);
	free(d->seed);
	memset(d, 0, sizeof(*d));
}

static int fakebe_def_copy(struct fakebe_def *to, const struct fakebe_def *from)
{
	size_t i;
	int rc = 0;

	*to = *from;
	to->disks = NULL;
	to->ndisks = 0;
	to->spec = from->spec ? strdup(from->spec) : NULL;
	to->seed = from->seed ? strdup(from->seed) : NULL;
	if ((from->spec && !to->spec) || (from->seed && !to->seed))
		rc = -ENOMEM;
	if (rc == 0 && from->ndisks) {
		to->disks = calloc(from->ndisks, sizeof(*to->disks));
		if (!to->disks)
			rc = -ENOMEM;
	}
	for (i = 0; rc == 0 && i < from->ndisks; i++) {
		to->disks[i] = from->disks[i];
		to->disks[i].path = strdup(from->disks[i].path);
		if (!to->disks[i].path)
			rc = -ENOMEM;
		to->ndisks++;
	}
	if (rc < 0)
		fakebe_def_free(to);
	return rc;
}

static const char *fakebe_def_disk(const struct fakebe_def *d,
				   const char *disk)
{
	size_t i;

	for (i = 0; i < d->ndisks; i++)
		if (!strcmp(d->disks[i].name, disk))
			return d->disks[i].path;
	return NULL;
}

/* xml.c's sizing: maxima from the spec, else min(host CPUs, 8) vCPUs and
 * twice the memory (at most the host's); <maxMemory> only with room for
 * one whole-MiB DIMM. */
static void fakebe_sizing(const struct core_spec *s, struct fakebe_def *d)
{
	int cpus = s->cpus > 0 ? s->cpus : 1;
	int dflt = FAKEBE_HOST_CPUS < FAKEBE_DEFAULT_MAX_CPUS ? FAKEBE_HOST_CPUS
						      : FAKEBE_DEFAULT_MAX_CPUS;
	int maxc = s->max_cpus > 0 ? s->max_cpus : dflt;
	uint64_t cur = (s->memory + 1023) / 1024, m = s->max_memory, max;

	if (m == 0) {
		m = s->memory * 2;
		if (m > FAKEBE_HOST_MEMORY)
			m = FAKEBE_HOST_MEMORY;
	}
	if (m < s->memory)
		m = s->memory;
	max = (m + 1023) / 1024;
	max -= max % 1024;
	d->cpus = cpus;
	d->max_cpus = maxc > cpus ? maxc : cpus;
	d->mem_kib = d->cur_kib = cur;
	d->max_kib = max >= cur + 1024 ? max : 0;
	d->dimms = 0;
}

/* ---- hosts and volumes ---------------------------------------------- */

static void fakebe_dom_free(struct fakebe_dom *d)
{
	size_t i;

	fakebe_def_free(&d->def);
	fakebe_def_free(&d->live);
	for (i = 0; i < d->nsnaps; i++)
		fakebe_def_free(&d->snaps[i].def);
	free(d->snaps);
	free(d->stats);
	free(d);
}

static void fakebe_vol_free(struct fakebe_vol *v)
{
	free(v->path);
	free(v->backing);
	free(v);
}

static void fakebe_host_free(struct fakebe_host *h)
{
	while (h->doms) {
		struct fakebe_dom *d = h->doms;

		h->doms = d->next;
		fakebe_dom_free(d);
	}
	while (h->vols) {
		struct fakebe_vol *v = h->vols;

		h->vols = v->next;
		fakebe_vol_free(v);
	}
	while (h->pools) {
		struct fakebe_pool *p = h->pools;

		h->pools = p->next;
		free(p->name);
		free(p->dir);
		free(p);
	}
	free(h->uri);
	free(h);
}

/* fakebe_st.lock held. */
static void fakebe_host_unref(struct fakebe_host *h)
{
	if (--h->refs == 0 && h->orphan)
		fakebe_host_free(h);
}

static struct fakebe_host *fakebe_host_find(const char *uri)
{
	struct fakebe_host *h;

	for (h = fakebe_st.hosts; h; h = h->next)
		if (!strcmp(h->uri, fakebe_uri(uri)))
			return h;
	return NULL;
}

/* Found or made; NULL when out of memory. */
static struct fakebe_host *fakebe_host_get(const char *uri)
{
	struct fakebe_host *h = fakebe_host_find(uri);

	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->uri = strdup(fakebe_uri(uri)))) {
		free(h);
		return NULL;
	}
	h->next = fakebe_st.hosts;
	fakebe_st.hosts = h;
	return h;
}

static struct fakebe_dom *fakebe_dom_find(const struct fakebe_host *h,
					  const char *name)
{
	struct fakebe_dom *d;

	for (d = h->doms; name && d; d = d->next)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static void fakebe_dom_unlink(struct fakebe_host *h, struct fakebe_dom *d)
{
	struct fakebe_dom **pp;

	for (pp = &h->doms; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			return;
		}
}

static struct fakebe_vol *fakebe_vol_find(const struct fakebe_host *h,
					  const char *path)
{
	struct fakebe_vol *v;

	for (v = h->vols; path && v; v = v->next)
		if (!strcmp(v->path, path))
			return v;
	return NULL;
}

static int fakebe_vol_add(struct fakebe_host *h, const char *path,
			  uint64_t cap, const char *backing)
{
	struct fakebe_vol *v = calloc(1, sizeof(*v));

	if (!v || !(v->path = strdup(path)) ||
	    (backing && !(v->backing = strdup(backing)))) {
		if (v)
			fakebe_vol_free(v);
		return -ENOMEM;
	}
	v->cap = cap;
	v->next = h->vols;
	h->vols = v;
	return 0;
}

static void fakebe_vol_del(struct fakebe_host *h, const char *path)
{
	struct fakebe_vol **pp, *v;

	for (pp = &h->vols; (v = *pp); pp = &v->next)
		if (!strcmp(v->path, path)) {
			*pp = v->next;
			fakebe_vol_free(v);
			return;
		}
}

static const char *fakebe_backing(const struct fakebe_host *h,
				  const char *path)
{
	const struct fakebe_vol *v = fakebe_vol_find(h, path);

	return v ? v->backing : NULL;
}

static void fakebe_pool_path(const struct be_conn *c, char *out, size_t len,
			     const char *vol)
{
	snprintf(out, len, "%s/%s", c->pool_dir, vol);
}

/* No storage classes here: only the node's pool has a folder. */
const char *be_folder(const struct be_conn *c, const char *klass)
{
	return klass && *klass ? NULL : c->pool_dir;
}

/* be_owned_path: <pool_dir>/<vm>_*, a file of vm's to delete. */
static bool fakebe_owned_path(const struct be_conn *c, const char *vm,
			      const char *path)
{
	size_t dl = strlen(c->pool_dir), vl = strlen(vm);

	while (dl > 1 && c->pool_dir[dl - 1] == '/')
		dl--;
	return strncmp(path, c->pool_dir, dl) == 0 && path[dl] == '/' &&
	       !strchr(path + dl + 1, '/') &&
	       strncmp(path + dl + 1, vm, vl) == 0 && path[dl + 1 + vl] == '_';
}

/* ---- events --------------------------------------------------------- */

static void fakebe_ev_poweroff(struct fakebe_item *it);

static void *fakebe_ev_main(void *arg)
{
	pthread_mutex_lock(&fakebe_q.lock);
	for (;;) {
		struct fakebe_item *it;

		while (!fakebe_q.head && !fakebe_q.stop)
			pthread_cond_wait(&fakebe_q.cond, &fakebe_q.lock);
		if (!fakebe_q.head)
			break;
		it = fakebe_q.head;
		fakebe_q.head = it->next;
		if (!fakebe_q.head)
			fakebe_q.tail = NULL;
		fakebe_q.busy = true;
		fakebe_q.delivering = it->c;
		pthread_mutex_unlock(&fakebe_q.lock);
		if (it->c)
			it->fn(it->arg, it->name, it->now);
		else
			fakebe_ev_poweroff(it);
		pthread_mutex_lock(&fakebe_q.lock);
		if (it->c)
			fakebe_q.notified++;
		free(it->name);
		free(it);
		fakebe_q.busy = false;
		fakebe_q.delivering = NULL;
		pthread_cond_broadcast(&fakebe_q.cond);
	}
	fakebe_q.running = false;
	pthread_cond_broadcast(&fakebe_q.cond);
	pthread_mutex_unlock(&fakebe_q.lock);
	return NULL;
}

static bool fakebe_on_ev_thread(void)
{
	bool on;

	pthread_mutex_lock(&fakebe_q.lock);
	on = fakebe_q.running && pthread_equal(fakebe_q.thread, pthread_self());
	pthread_mutex_unlock(&fakebe_q.lock);
	return on;
}

/* Takes it; the thread starts with the first item after a reset. */
static void fakebe_ev_push(struct fakebe_item *it)
{
	pthread_mutex_lock(&fakebe_q.lock);
	if (fakebe_q.tail)
		fakebe_q.tail->next = it;
	else
		fakebe_q.head = it;
	fakebe_q.tail = it;
	if (!fakebe_q.running && !fakebe_q.stop &&
	    pthread_create(&fakebe_q.thread, NULL, fakebe_ev_main, NULL) == 0)
		fakebe_q.running = true;
	pthread_cond_broadcast(&fakebe_q.cond);
	pthread_mutex_unlock(&fakebe_q.lock);
}

/* fakebe_st.lock held.  Lost when out of memory, as an event can be. */
static void fakebe_notify_conn(struct be_conn *c, const char *name,
			       enum core_phase now)
{
	struct fakebe_item *it = calloc(1, sizeof(*it));

	if (!it)
		return;
	if (name && !(it->name = strdup(name))) {
		free(it);
		return;
	}
	it->c = c;
	it->now = now;
	it->fn = c->watch_fn;
	it->arg = c->watch_arg;
	fakebe_ev_push(it);
}

/* libvirt sends a domain's events to every connection of its libvirtd
 * that registered, whichever node's the domain is.  now: the phase a
 * lifecycle event says (started, stopped, ...), Unknown for the events
 * that say none (defined, undefined, migrated).  fakebe_st.lock held. */
static void fakebe_changed_to(struct fakebe_host *h, const char *name,
			      enum core_phase now)
{
	struct be_conn *c;

	for (c = fakebe_st.conns; c; c = c->next)
		if (c->h == h && c->watch_fn && !c->broken)
			fakebe_notify_conn(c, name, now);
}

static void fakebe_changed(struct fakebe_host *h, const char *name)
{
	fakebe_changed_to(h, name, CORE_PHASE_UNKNOWN);
}

/* fakebe_st.lock held. */
static void fakebe_queue_poweroff(struct fakebe_host *h,
				  const struct fakebe_dom *d)
{
	struct fakebe_item *it = calloc(1, sizeof(*it));

	if (!it || !(it->name = strdup(d->name))) {
		free(it);
		return;
	}
	it->h = h;
	it->boots = d->boots;
	h->refs++;
	fakebe_ev_push(it);
}

/* Drop c's queued notifications and wait out one being delivered, so c
 * can be freed (unless this is that delivery's own thread). */
static void fakebe_ev_forget(struct be_conn *c)
{
	struct fakebe_item **pp, *it;
	bool self = fakebe_on_ev_thread();

	pthread_mutex_lock(&fakebe_q.lock);
	fakebe_q.tail = NULL;
	for (pp = &fakebe_q.head; (it = *pp);) {
		if (it->c == c) {
			*pp = it->next;
			free(it->name);
			free(it);
			continue;
		}
		fakebe_q.tail = it;
		pp = &it->next;
	}
	while (!self && fakebe_q.delivering == c)
		pthread_cond_wait(&fakebe_q.cond, &fakebe_q.lock);
	pthread_mutex_unlock(&fakebe_q.lock);
}

void fakebe_settle(void)
{
	if (fakebe_on_ev_thread())
		return;
	pthread_mutex_lock(&fakebe_q.lock);
	while (fakebe_q.running && (fakebe_q.head || fakebe_q.busy))
		pthread_cond_wait(&fakebe_q.cond, &fakebe_q.lock);
	pthread_mutex_unlock(&fakebe_q.lock);
}

unsigned long fakebe_notified(void)
{
	unsigned long n;

	pthread_mutex_lock(&fakebe_q.lock);
	n = fakebe_q.notified;
	pthread_mutex_unlock(&fakebe_q.lock);
	return n;
}

/* ---- states --------------------------------------------------------- */

static int fakebe_free_vnc(const struct fakebe_host *h)
{
	const struct fakebe_dom *o;
	int port;

	for (port = 5900;; port++) {
		for (o = h->doms; o; o = o->next)
			if (o->state != FAKEBE_SHUTOFF && o->vnc_port == port)
				break;
		if (!o)
			return port;
	}
}

/* QEMU starts: the live definition is the persistent one. */
static int fakebe_boot(struct fakebe_host *h, struct fakebe_dom *d)
{
	int rc;

	fakebe_def_free(&d->live);
	rc = fakebe_def_copy(&d->live, &d->def);
	if (rc < 0)
		return rc;
	d->boots++;
	d->pid = FAKEBE_PID_BASE + (int)(++fakebe_st.seq % 1000000);
	d->vnc_port = fakebe_free_vnc(h);
	d->console = (int)(fakebe_st.seq % 1000);
	return 0;
}

/* fakebe_st.lock held; the domain is active (live set up) unless st is
 * FAKEBE_SHUTOFF. */
static enum core_phase fakebe_phase(const struct fakebe_dom *d);

static void fakebe_set_state(struct fakebe_host *h, struct fakebe_dom *d,
			     enum fakebe_state st, const char *reason)
{
	if (st == FAKEBE_SHUTOFF && d->state != FAKEBE_SHUTOFF) {
		fakebe_def_free(&d->live);
		d->pid = 0;
		d->vnc_port = -1;
	}
	d->state = st;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	fakebe_changed_to(h, d->name, fakebe_phase(d));
}

static void fakebe_ev_poweroff(struct fakebe_item *it)
{
	struct fakebe_dom *d;

	pthread_mutex_lock(&fakebe_st.lock);
	d = it->h->orphan ? NULL : fakebe_dom_find(it->h, it->name);
	/* Only the run that was asked to: a domain destroyed and started
	 * again meanwhile stays up. */
	if (d && d->state == FAKEBE_RUNNING && d->boots == it->boots &&
	    !d->ignore_acpi)
		fakebe_set_state(it->h, d, FAKEBE_SHUTOFF, "shutdown");
	fakebe_host_unref(it->h);
	pthread_mutex_unlock(&fakebe_st.lock);
}

/* The definition libvirt reads now: the live one while active. */
static const struct fakebe_def *fakebe_cur(const struct fakebe_dom *d)
{
	return d->state != FAKEBE_SHUTOFF ? &d->live : &d->def;
}

/* be_dom_ours: 1 ours, 2 (BE_OTHER_NODE) another node's, 0 not
 * hypersdk's. */
static int fakebe_ours(const struct be_conn *c, const struct fakebe_dom *d)
{
	const struct fakebe_def *x = fakebe_cur(d);

	if (!x->ours)
		return 0;
	return strcmp(x->node, c->node) == 0 ? 1 : 2;
}

static enum core_phase fakebe_phase(const struct fakebe_dom *d)
{
	switch (d->state) {
	case FAKEBE_RUNNING:
		return CORE_PHASE_RUNNING;
	case FAKEBE_PAUSED:
		return CORE_PHASE_PAUSED;
	case FAKEBE_SHUTOFF:
		break;
	}
	return strcmp(d->reason, "crashed") ? CORE_PHASE_STOPPED
					    : CORE_PHASE_FAILED;
}

/* ---- calls ---------------------------------------------------------- */

/* Count the call and take its armed failure.  fakebe_st.lock held. */
static int fakebe_enter(enum fakebe_op op, char *err, size_t errlen)
{
	fakebe_st.calls[op]++;
	if (!fakebe_st.fail[op].armed)
		return 0;
	fakebe_st.fail[op].armed = false;
	return core_errf(err, errlen, fakebe_st.fail[op].rc, "%s",
			   fakebe_st.fail[op].err);
}

/* be_conn_get: a host that is down does not answer; a connection that
 * lost it reconnects on the next call, and its watcher re-reads
 * everything (events were missed).  fakebe_st.lock held. */
static int fakebe_reach(struct be_conn *c, char *err, size_t errlen)
{
	if (c->h->down) {
		c->broken = true;
		return core_errf(err, errlen, -EIO, "libvirt at %s does not "
				   "answer: the fake host is down", c->uri);
	}
	if (c->broken) {
		c->broken = false;
		if (c->watch_fn)
			fakebe_notify_conn(c, NULL, CORE_PHASE_UNKNOWN);
	}
	return 0;
}

/* ---- connections ---------------------------------------------------- */

static void fakebe_import_free(struct be_import_policy *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nallow; i++)
		free((char *)p->allow[i]);
	free((void *)p->allow);
	free((char *)p->dir);
	free(p);
}

/* fakebe_st.lock held. */
static void fakebe_conn_free(struct be_conn *c)
{
	if (c->h)
		fakebe_host_unref(c->h);
	free(c->uri);
	free(c->pool_name);
	free(c->pool_dir);
	free(c->node);
	free(c->kernel_dir);
	fakebe_import_free(c->imp);
	free(c);
}

static int fakebe_conn_init(struct be_conn *c, const struct be_config *cfg)
{
	c->uri = strdup(fakebe_uri(cfg->uri));
	c->pool_name = strdup(cfg->pool_name && *cfg->pool_name ?
			      cfg->pool_name : FAKEBE_POOL_NAME);
	c->pool_dir = strdup(cfg->pool_dir ? cfg->pool_dir : FAKEBE_POOL_DIR);
	c->node = strdup(cfg->node ? cfg->node : "");
	c->kernel_dir = cfg->kernel_dir ? strdup(cfg->kernel_dir) : NULL;
	if (!c->uri || !c->pool_name || !c->pool_dir || !c->node ||
	    (cfg->kernel_dir && !c->kernel_dir))
		return -ENOMEM;
	return 0;
}

static bool fakebe_same_dir(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/* be_pool_ensure: the pool of our name must be at our directory. */
static int fakebe_pool_ensure(struct be_conn *c, char *err, size_t errlen)
{
	struct fakebe_pool *p;

	for (p = c->h->pools; p; p = p->next)
		if (!strcmp(p->name, c->pool_name))
			break;
	if (p && !fakebe_same_dir(p->dir, c->pool_dir))
		return core_errf(err, errlen, -EEXIST, "storage pool %s "
				   "exists with path %s, not %s", c->pool_name,
				   p->dir, c->pool_dir);
	if (p)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(c->pool_name)) ||
	    !(p->dir = strdup(c->pool_dir))) {
		if (p)
			free(p->name);
		free(p);
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	}
	p->next = c->h->pools;
	c->h->pools = p;
	return 0;
}

int be_open(const struct be_config *cfg, struct be_conn **out, char *err,
	    size_t errlen)
{
	struct be_conn *c = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_OPEN, err, errlen);
	if (rc < 0)
		goto out;
	c = calloc(1, sizeof(*c));
	if (!c || fakebe_conn_init(c, cfg) < 0 ||
	    !(c->h = fakebe_host_get(c->uri))) {
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	c->h->refs++;
	if (c->h->down)
		rc = core_errf(err, errlen, -EIO, "libvirt at %s does not "
				 "answer: the fake host is down", c->uri);
	else if (cfg->accel == BE_ACCEL_KVM && !c->h->kvm)
		rc = core_errf(err, errlen, -EOPNOTSUPP, "kvm requested but "
				 "/dev/kvm is not usable by libvirt's qemu "
				 "(see scripts/libvirt-up.sh)");
	else
		rc = fakebe_pool_ensure(c, err, errlen);
	if (rc < 0)
		goto out;
	c->kvm = cfg->accel != BE_ACCEL_TCG && c->h->kvm;
	c->next = fakebe_st.conns;
	fakebe_st.conns = c;
	*out = c;
out:
	if (rc < 0 && c)
		fakebe_conn_free(c);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

void be_close(struct be_conn *c)
{
	struct be_conn **pp;

	if (!c)
		return;
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_st.calls[FAKEBE_OP_CLOSE]++;
	for (pp = &fakebe_st.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_mutex_unlock(&fakebe_st.lock);
	/* Outside the lock: the delivery waited for may call the
	 * backend. */
	fakebe_ev_forget(c);
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_conn_free(c);
	pthread_mutex_unlock(&fakebe_st.lock);
}

const char *be_accel_name(const struct be_conn *c)
{
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_st.calls[FAKEBE_OP_ACCEL_NAME]++;
	pthread_mutex_unlock(&fakebe_st.lock);
	return c->kvm ? "kvm" : "tcg";
}

bool be_conn_alive(struct be_conn *c)
{
	bool alive;

	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_st.calls[FAKEBE_OP_CONN_ALIVE]++;
	alive = !c->h->down && !c->broken;
	pthread_mutex_unlock(&fakebe_st.lock);
	return alive;
}

int be_watch(struct be_conn *c, be_watch_fn fn, void *arg)
{
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_WATCH, NULL, 0);
	if (rc == 0 && c->watch_fn)
		rc = -EBUSY;
	if (rc == 0) {
		c->watch_fn = fn;
		c->watch_arg = arg;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- kernelBoot (kernel.c) ------------------------------------------ */

static int fakebe_resolve(const struct be_conn *c, const char *field,
			  const char *path, char *err, size_t errlen)
{
	char why[CORE_ERR_MAX / 2], out[PATH_MAX];
	int rc;

	if (!c->kernel_dir)
		return core_errf(err, errlen, -EACCES, "%s: kernelBoot is "
				   "off on node %s (the node allows it with "
				   "--kernel-dir)", field, c->node);
	rc = core_file_under(c->kernel_dir, path, out, sizeof(out), why,
			     sizeof(why));
	if (rc < 0)
		return core_errf(err, errlen, rc == -EACCES ? rc : -EINVAL,
				   "%s: %s (--kernel-dir)", field, why);
	return 0;
}

static int fakebe_boot_fill(const struct be_conn *c,
			    const struct core_spec *s, char *err,
			    size_t errlen)
{
	int rc;

	if (!s->kernel || !*s->kernel)
		return 0;
	rc = fakebe_resolve(c, "spec.kernelBoot.kernel", s->kernel, err,
			    errlen);
	if (rc == 0 && s->initrd && *s->initrd)
		rc = fakebe_resolve(c, "spec.kernelBoot.initrd", s->initrd, err,
				    errlen);
	return rc;
}

int be_boot_check(const struct be_conn *c, const struct core_spec *spec,
		  char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_BOOT_CHECK, err, errlen);
	if (rc == 0)
		rc = fakebe_boot_fill(c, spec, err, errlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- define --------------------------------------------------------- */

static void fakebe_vnc_new(char *out)
{
	static const char abc[] = "ABCDEFGHJKLMNPQRSTUVWXYZ"
				  "abcdefghijkmnpqrstuvwxyz23456789";
	unsigned long x = ++fakebe_st.seq * 2654435761UL;
	int i;

	for (i = 0; i < FAKEBE_VNC_LEN; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		out[i] = abc[(x >> 33) % (sizeof(abc) - 1)];
	}
	out[FAKEBE_VNC_LEN] = '\0';
}

static void fakebe_uuid_new(char *out, size_t len, const char *uid)
{
	if (fakebe_is_uuid(uid))
		snprintf(out, len, "%s", uid);
	else
		snprintf(out, len, "fa4eb0e0-0000-4000-8000-%012lx",
			 ++fakebe_st.seq);
}

static bool fakebe_wants_seed(const struct core_spec *s)
{
	return (s->user_data && *s->user_data) ||
	       (s->network_data && *s->network_data) ||
	       (s->meta_data && *s->meta_data);
}

/* What be_storage_prepare made, so a failure removes exactly that. */
struct fakebe_made {
	char **paths;                   /* volumes made */
	size_t n;
};

static int fakebe_made_add(struct fakebe_made *m, const char *path)
{
	char **nv = realloc(m->paths, (m->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	m->paths = nv;
	if (!(nv[m->n] = strdup(path)))
		return -ENOMEM;
	m->n++;
	return 0;
}

static void fakebe_made_undo(struct fakebe_host *h, struct fakebe_made *m,
			     bool undo)
{
	while (m->n > 0) {
		m->n--;
		if (undo)
			fakebe_vol_del(h, m->paths[m->n]);
		free(m->paths[m->n]);
	}
	free(m->paths);
	m->paths = NULL;
}

/* be_storage_prepare and be_keep_tops: the disks' volumes (made with the
 * spec's size when absent; a disk that already has a file, such as an
 * overlay of a freeze, keeps it) and the seed image, into x. */
static int fakebe_storage(struct be_conn *c, const char *name,
			  const struct core_spec *s,
			  const struct fakebe_def *old, struct fakebe_def *x,
			  struct fakebe_made *m, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t i;
	int rc = 0;

	x->disks = calloc(s->ndisks + 1, sizeof(*x->disks));
	if (!x->disks)
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	for (i = 0; i < s->ndisks; i++) {
		const struct core_disk *dk = &s->disks[i];
		const char *top = old ? fakebe_def_disk(old, dk->name) : NULL;

		if (!fakebe_name_ok(dk->name))
			return core_errf(err, errlen, -EINVAL, "define %s: "
					   "bad disk name \"%s\"", name,
					   dk->name ? dk->name : "");
		snprintf(path, sizeof(path), "%s/%s_%s.qcow2", c->pool_dir,
			 name, dk->name);
		if (top)
			snprintf(path, sizeof(path), "%s", top);
		if (!fakebe_vol_find(c->h, path)) {
			if (dk->size == 0)
				return core_errf(err, errlen, -EINVAL,
						   "define %s: disk %s has no "
						   "size", name, dk->name);
			if (fakebe_vol_add(c->h, path, dk->size, NULL) < 0 ||
			    fakebe_made_add(m, path) < 0)
				return core_errf(err, errlen, -ENOMEM,
						   "out of memory");
		}
		snprintf(x->disks[i].name, sizeof(x->disks[i].name), "%s",
			 dk->name);
		if (!(x->disks[i].path = strdup(path)))
			return core_errf(err, errlen, -ENOMEM,
					   "out of memory");
		x->ndisks++;
	}
	if (!fakebe_wants_seed(s))
		return 0;
	snprintf(path, sizeof(path), "%s/%s_cidata.iso", c->pool_dir, name);
	if (!fakebe_vol_find(c->h, path) &&
	    (fakebe_vol_add(c->h, path, FAKEBE_SEED_BYTES, NULL) < 0 ||
	     fakebe_made_add(m, path) < 0))
		rc = -ENOMEM;
	if (rc == 0 && !(x->seed = strdup(path)))
		rc = -ENOMEM;
	return rc < 0 ? core_errf(err, errlen, rc, "out of memory") : 0;
}

/* The definition of a spec, metadata included; fakebe_st.lock held. */
static int fakebe_def_make(struct be_conn *c, const char *name,
			   const char *ns, const char *uid,
			   const struct core_spec *s, const char *spec_text,
			   const struct fakebe_def *old, struct fakebe_def *x,
			   struct fakebe_made *m, char *err, size_t errlen)
{
	int rc = fakebe_storage(c, name, s, old, x, m, err, errlen);

	if (rc == 0)
		rc = fakebe_boot_fill(c, s, err, errlen);
	if (rc < 0)
		return rc;
	x->ours = true;
	snprintf(x->ns, sizeof(x->ns), "%s", ns ? ns : "");
	snprintf(x->uid, sizeof(x->uid), "%s", uid ? uid : "");
	snprintf(x->node, sizeof(x->node), "%s", c->node);
	if (!(x->spec = strdup(spec_text)))
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	fakebe_sizing(s, x);
	x->agent = s->guest_agent;
	/* be_vnc_password_keep: a redefine keeps the screen's password. */
	if (old && strlen(old->vnc) == FAKEBE_VNC_LEN)
		memcpy(x->vnc, old->vnc, sizeof(x->vnc));
	else
		fakebe_vnc_new(x->vnc);
	return 0;
}

static struct fakebe_dom *fakebe_dom_new(struct fakebe_host *h,
					 const char *name, const char *uid)
{
	struct fakebe_dom *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	snprintf(d->name, sizeof(d->name), "%s", name);
	fakebe_uuid_new(d->uuid, sizeof(d->uuid), uid);
	d->state = FAKEBE_SHUTOFF;
	snprintf(d->reason, sizeof(d->reason), "unknown");
	d->vnc_port = -1;
	d->next = h->doms;
	h->doms = d;
	return d;
}

static int fakebe_define_locked(struct be_conn *c, const char *name,
				const char *ns, const char *uid,
				const struct core_spec *spec,
				json_object *spec_json, char *err,
				size_t errlen)
{
	struct fakebe_dom *d = fakebe_dom_find(c->h, name);
	struct fakebe_made m = { 0 };
	struct fakebe_def x = { 0 };
	const char *text = spec_json ? json_object_to_json_string_ext(
		spec_json, JSON_C_TO_STRING_PLAIN) : "{}";
	int rc = 0;

	/* existing_uuid: a domain we did not make is not taken over. */
	if (d && fakebe_ours(c, d) == 2)
		rc = core_errf(err, errlen, -EEXIST, "define %s: a domain of "
				 "that name belongs to another hypersdk node",
				 name);
	else if (d && fakebe_ours(c, d) == 0)
		rc = core_errf(err, errlen, -EEXIST, "define %s: a libvirt "
				 "domain of that name exists and is not "
				 "hypersdk's", name);
	if (rc == 0)
		rc = fakebe_def_make(c, name, ns, uid, spec, text,
				     d ? &d->def : NULL, &x, &m, err, errlen);
	if (rc == 0 && !d && !(d = fakebe_dom_new(c->h, name, uid)))
		rc = core_errf(err, errlen, -ENOMEM, "define %s: out of "
				 "memory", name);
	if (rc < 0)
		goto out;
	/* A running domain goes on with its live definition; this one
	 * applies at the next start. */
	fakebe_def_free(&d->def);
	d->def = x;
	memset(&x, 0, sizeof(x));
	fakebe_changed(c->h, name);
out:
	fakebe_made_undo(c->h, &m, rc < 0);
	fakebe_def_free(&x);
	return rc;
}

int be_define(struct be_conn *c, const char *name, const char *ns,
	      const char *uid, const struct core_spec *spec,
	      json_object *spec_json, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_DEFINE, err, errlen);
	if (rc == 0 && !fakebe_name_ok(name))
		rc = core_errf(err, errlen, -EINVAL, "define: bad name "
				 "\"%s\"", name ? name : "");
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0)
		rc = fakebe_define_locked(c, name, ns, uid, spec, spec_json,
					  err, errlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- simple state changes (lifecycle.c's dom_op) ------------------- */

/* The answers of libvirt's QEMU driver: create on an active domain,
 * destroy, shutdown, suspend or resume on an inactive one, shutdown on
 * a paused one and resume on a running one are VIR_ERR_OPERATION_INVALID
 * (-EBUSY); suspending a paused domain does nothing and succeeds. */
static int fakebe_dom_op(struct be_conn *c, enum fakebe_op op,
			 const char *verb, const char *name, char *err,
			 size_t errlen)
{
	struct fakebe_dom *d = NULL;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(op, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, name)))
		rc = fakebe_no_domain(err, errlen, verb, name);
	if (rc < 0)
		goto out;
	if (op == FAKEBE_OP_START) {
		if (d->state != FAKEBE_SHUTOFF)
			rc = fakebe_invalid(err, errlen, verb, name,
					    "domain is already running");
		else if ((rc = fakebe_boot(c->h, d)) < 0)
			rc = fakebe_virerr(err, errlen, rc, verb, name,
					   "out of memory");
		else
			fakebe_set_state(c->h, d, FAKEBE_RUNNING, "booted");
	} else if (d->state == FAKEBE_SHUTOFF) {
		rc = fakebe_invalid(err, errlen, verb, name,
				    "domain is not running");
	} else if (op == FAKEBE_OP_SHUTDOWN) {
		if (d->state != FAKEBE_RUNNING)
			rc = fakebe_invalid(err, errlen, verb, name,
					    "domain is not running");
		else if (!d->ignore_acpi)
			fakebe_queue_poweroff(c->h, d);
	} else if (op == FAKEBE_OP_DESTROY) {
		fakebe_set_state(c->h, d, FAKEBE_SHUTOFF, "destroyed");
	} else if (op == FAKEBE_OP_SUSPEND) {
		if (d->state == FAKEBE_RUNNING)
			fakebe_set_state(c->h, d, FAKEBE_PAUSED, "user");
	} else if (d->state == FAKEBE_RUNNING) {
		rc = fakebe_invalid(err, errlen, verb, name,
				    "domain is already running");
	} else {
		fakebe_set_state(c->h, d, FAKEBE_RUNNING, "unpaused");
	}
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int be_start(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	return fakebe_dom_op(c, FAKEBE_OP_START, "start", name, err, errlen);
}

int be_shutdown(struct be_conn *c, const char *name, char *err,
		size_t errlen)
{
	return fakebe_dom_op(c, FAKEBE_OP_SHUTDOWN, "stop", name, err, errlen);
}

int be_destroy(struct be_conn *c, const char *name, char *err,
	       size_t errlen)
{
	return fakebe_dom_op(c, FAKEBE_OP_DESTROY, "stop", name, err, errlen);
}

int be_suspend(struct be_conn *c, const char *name, char *err,
	       size_t errlen)
{
	return fakebe_dom_op(c, FAKEBE_OP_SUSPEND, "pause", name, err, errlen);
}

int be_resume(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	return fakebe_dom_op(c, FAKEBE_OP_RESUME, "resume", name, err, errlen);
}

/* ---- chains and dependents (chain.c, clone.c) ---------------------- */

static bool fakebe_in_list(char *const *v, size_t n, const char *s)
{
	while (n > 0)
		if (strcmp(v[--n], s) == 0)
			return true;
	return false;
}

static int fakebe_strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void fakebe_strv_free(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

/* vm's files: its persistent disks and, below them, the frozen bases
 * that are vm's own (be_chain_expand). */
static int fakebe_files(const struct be_conn *c, const struct fakebe_dom *d,
			char ***paths, size_t *n)
{
	size_t i;

	for (i = 0; i < d->def.ndisks; i++)
		if (fakebe_strv_add(paths, n, d->def.disks[i].path) < 0)
			return -ENOMEM;
	for (i = 0; i < *n && *n < FAKEBE_CHAIN_MAX; i++) {
		const char *b = fakebe_backing(c->h, (*paths)[i]);

		if (b && fakebe_owned_path(c, d->name, b) &&
		    !fakebe_in_list(*paths, *n, b) &&
		    fakebe_strv_add(paths, n, b) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* be_chain_hits: a file below path (not path itself) is a target. */
static bool fakebe_chain_hits(const struct fakebe_host *h, const char *path,
			      char *const *t, size_t nt)
{
	const char *p = fakebe_backing(h, path);
	int depth;

	for (depth = 0; p && depth < FAKEBE_CHAIN_MAX; depth++) {
		if (fakebe_in_list(t, nt, p))
			return true;
		p = fakebe_backing(h, p);
	}
	return false;
}

/* be_deps_of: the domains other than self whose persistent disks'
 * chains reach one of t, as "a b c". */
static void fakebe_deps(const struct fakebe_host *h, const char *self,
			char *const *t, size_t nt, char *out, size_t outlen)
{
	const struct fakebe_dom *d;
	size_t len = 0, i;

	if (outlen)
		out[0] = '\0';
	for (d = h->doms; nt && d; d = d->next) {
		bool hit = false;

		if (self && !strcmp(d->name, self))
			continue;
		for (i = 0; i < d->def.ndisks && !hit; i++)
			hit = fakebe_chain_hits(h, d->def.disks[i].path, t, nt);
		if (hit && len < outlen) {
			int k = snprintf(out + len, outlen - len, "%s%s",
					 len ? " " : "", d->name);

			len += k > 0 ? (size_t)k : 0;
		}
	}
}

int be_linked_dependents(struct be_conn *c, const char *name, char *out,
			 size_t outlen)
{
	char **paths = NULL;
	size_t n = 0;
	struct fakebe_dom *d = NULL;
	int rc;

	if (outlen)
		out[0] = '\0';
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_LINKED_DEPENDENTS, NULL, 0);
	if (rc == 0)
		rc = fakebe_reach(c, NULL, 0);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, name)))
		rc = -ENOENT;
	if (rc == 0)
		rc = fakebe_files(c, d, &paths, &n);
	if (rc == 0)
		fakebe_deps(c->h, name, paths, n, out, outlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	fakebe_strv_free(paths, n);
	return rc;
}

/* ---- undefine ------------------------------------------------------- */

static int fakebe_undefine_locked(struct be_conn *c, const char *name,
				  char *err, size_t errlen)
{
	struct fakebe_dom *d = fakebe_dom_find(c->h, name);
	char **paths = NULL, deps[CORE_ERR_MAX / 2], seed[PATH_MAX];
	size_t n = 0, i;
	int rc = 0;

	if (!d)
		return fakebe_no_domain(err, errlen, "delete", name);
	if (fakebe_ours(c, d) != 1)
		return core_errf(err, errlen, -ENOENT, "delete %s: domain is "
				   "not hypersdk's", name);
	if (d->state != FAKEBE_SHUTOFF)
		return core_errf(err, errlen, -EBUSY, "delete %s: domain is "
				   "running", name);
	if (fakebe_files(c, d, &paths, &n) < 0) {
		rc = core_errf(err, errlen, -ENOMEM, "delete %s: out of "
				 "memory", name);
		goto out;
	}
	fakebe_deps(c->h, name, paths, n, deps, sizeof(deps));
	if (deps[0]) {
		rc = core_errf(err, errlen, -EBUSY, "delete %s: linked "
				 "clones depend on its disks: %s", name, deps);
		goto out;
	}
	/* Snapshots' metadata goes with it (UNDEFINE_SNAPSHOTS_METADATA). */
	fakebe_dom_unlink(c->h, d);
	fakebe_dom_free(d);
	for (i = 0; i < n; i++)
		if (fakebe_owned_path(c, name, paths[i]))
			fakebe_vol_del(c->h, paths[i]);
	snprintf(seed, sizeof(seed), "%s/%s_cidata.iso", c->pool_dir, name);
	fakebe_vol_del(c->h, seed);
	fakebe_changed(c->h, name);
out:
	fakebe_strv_free(paths, n);
	return rc;
}

int be_undefine(struct be_conn *c, const char *name, char *err,
		size_t errlen)
{
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_UNDEFINE, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0)
		rc = fakebe_undefine_locked(c, name, err, errlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* The domain goes (destroyed if it runs), its volumes stay. */
int be_forget(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	struct fakebe_dom *d;
	char seed[PATH_MAX];
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_FORGET, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	d = rc == 0 ? fakebe_dom_find(c->h, name) : NULL;
	if (rc == 0 && !d)
		rc = fakebe_no_domain(err, errlen, "forget", name);
	if (rc == 0 && fakebe_ours(c, d) != 1)
		rc = core_errf(err, errlen, -ENOENT, "forget %s: domain is "
				 "not hypersdk's", name);
	if (rc == 0) {
		fakebe_dom_unlink(c->h, d);
		fakebe_dom_free(d);
		snprintf(seed, sizeof(seed), "%s/%s_cidata.iso", c->pool_dir,
			 name);
		fakebe_vol_del(c->h, seed);
		fakebe_changed(c->h, name);
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- info, list, stats ---------------------------------------------- */

static uint64_t fakebe_capacity(const struct fakebe_host *h,
				const struct fakebe_def *x)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < x->ndisks; i++) {
		const struct fakebe_vol *v = fakebe_vol_find(h,
							     x->disks[i].path);

		sum += v ? v->cap : 0;
	}
	return sum;
}

int be_info(struct be_conn *c, const char *name, struct be_info *out,
	    char *err, size_t errlen)
{
	const struct fakebe_def *x;
	struct fakebe_dom *d = NULL;
	bool active;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_INFO, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, name)))
		rc = fakebe_no_domain(err, errlen, "info", name);
	if (rc < 0)
		goto out;
	x = fakebe_cur(d);
	active = d->state != FAKEBE_SHUTOFF;
	memset(out, 0, sizeof(*out));
	out->phase = fakebe_phase(d);
	snprintf(out->reason, sizeof(out->reason), "%s", d->reason);
	snprintf(out->uuid, sizeof(out->uuid), "%s", d->uuid);
	out->cpus = x->cpus;
	out->memory = x->cur_kib * 1024;
	out->disk_bytes = fakebe_capacity(c->h, x);
	out->has_agent_channel = x->agent;
	out->vnc_port = -1;
	if (active) {
		out->pid = d->pid;
		out->vnc_port = d->vnc_port;
		snprintf(out->vnc_address, sizeof(out->vnc_address),
			 "127.0.0.1");
		snprintf(out->vnc_password, sizeof(out->vnc_password), "%s",
			 x->vnc);
		/* Not /dev/pts/N: nothing may hand a real pty to anyone. */
		snprintf(out->console, sizeof(out->console),
			 "/dev/pts/fake%d", d->console);
		out->agent_connected = x->agent && !d->agent_off;
	}
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

struct fakebe_item_list {
	char (*names)[FAKEBE_NAME_MAX + 1];
	char (*ns)[FAKEBE_NAME_MAX + 1];
	char (*uids)[FAKEBE_NAME_MAX + 1];
	char **texts;
	size_t n;
};

static void fakebe_list_free(struct fakebe_item_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->texts[i]);
	free(l->names);
	free(l->ns);
	free(l->uids);
	free(l->texts);
}

static size_t fakebe_ndoms(const struct fakebe_host *h)
{
	const struct fakebe_dom *d;
	size_t n = 0;

	for (d = h->doms; d; d = d->next)
		n++;
	return n;
}

/* Collected under the lock and reported after it, as the real be_list
 * collects before it calls fn. */
int be_list(struct be_conn *c,
	    int (*fn)(const char *name, const char *ns, const char *uid,
		      json_object *spec_json, void *arg),
	    void *arg)
{
	struct fakebe_item_list l = { 0 };
	const struct fakebe_dom *d;
	size_t i, n;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_LIST, NULL, 0);
	if (rc == 0)
		rc = fakebe_reach(c, NULL, 0);
	n = rc == 0 ? fakebe_ndoms(c->h) + 1 : 0;
	if (rc == 0) {
		l.names = calloc(n, sizeof(*l.names));
		l.ns = calloc(n, sizeof(*l.ns));
		l.uids = calloc(n, sizeof(*l.uids));
		l.texts = calloc(n, sizeof(*l.texts));
		if (!l.names || !l.ns || !l.uids || !l.texts)
			rc = -ENOMEM;
	}
	for (d = rc == 0 ? c->h->doms : NULL; d; d = d->next) {
		const struct fakebe_def *x = fakebe_cur(d);

		if (fakebe_ours(c, d) != 1)
			continue;
		memcpy(l.names[l.n], d->name, sizeof(l.names[l.n]));
		memcpy(l.ns[l.n], x->ns, sizeof(l.ns[l.n]));
		memcpy(l.uids[l.n], x->uid, sizeof(l.uids[l.n]));
		l.texts[l.n] = x->spec ? strdup(x->spec) : NULL;
		l.n++;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	for (i = 0; rc == 0 && i < l.n; i++) {
		json_object *j = l.texts[i] ? json_tokener_parse(l.texts[i])
					    : NULL;

		rc = fn(l.names[i], l.ns[i], l.uids[i], j, arg);
		json_object_put(j);
	}
	fakebe_list_free(&l);
	return rc;
}

/* The default of be_stats_all: what the real one renders from libvirt's
 * cpu, vcpu, balloon and block groups, for disks vda, vdb, ... */
static char *fakebe_stats_text(const struct fakebe_host *h,
			       struct fakebe_dom *d)
{
	const struct fakebe_def *x = &d->live;
	size_t i, len = 0, cap = 256 + 64 * x->ndisks;
	char *t = malloc(cap);

	if (!t)
		return NULL;
	d->cpu_ns += 1000000000ULL;
	len += (size_t)snprintf(t + len, cap - len, "cpu.time_ns %" PRIu64
				"\nvcpus %d\nvcpus_max %d\n"
				"memory.actual_bytes %" PRIu64
				"\nmemory.max_bytes %" PRIu64 "\n",
				d->cpu_ns, x->cpus, x->max_cpus,
				x->cur_kib * 1024, x->mem_kib * 1024);
	for (i = 0; i < x->ndisks && i < 26 && len < cap; i++) {
		const struct fakebe_vol *v = fakebe_vol_find(h,
							     x->disks[i].path);

		len += (size_t)snprintf(t + len, cap - len, "block.vd%c."
					"capacity_bytes %" PRIu64 "\n",
					(char)('a' + i), v ? v->cap : 0);
	}
	return t;
}

int be_stats_all(struct be_conn *c,
		 void (*fn)(const char *name, const char *txt, size_t len,
			    void *arg),
		 void *arg)
{
	struct fakebe_item_list l = { 0 };
	struct fakebe_dom *d;
	size_t i, n;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_STATS_ALL, NULL, 0);
	if (rc == 0)
		rc = fakebe_reach(c, NULL, 0);
	n = rc == 0 ? fakebe_ndoms(c->h) + 1 : 0;
	if (rc == 0) {
		l.names = calloc(n, sizeof(*l.names));
		l.texts = calloc(n, sizeof(*l.texts));
		if (!l.names || !l.texts)
			rc = -ENOMEM;
	}
	/* Only active domains are in libvirt's answer, and only ours are
	 * reported. */
	for (d = rc == 0 ? c->h->doms : NULL; d; d = d->next) {
		if (d->state == FAKEBE_SHUTOFF || fakebe_ours(c, d) != 1)
			continue;
		l.texts[l.n] = d->stats ? strdup(d->stats)
					: fakebe_stats_text(c->h, d);
		if (!l.texts[l.n])
			continue;
		memcpy(l.names[l.n], d->name, sizeof(l.names[l.n]));
		l.n++;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	for (i = 0; i < l.n; i++)
		fn(l.names[i], l.texts[i], strlen(l.texts[i]), arg);
	fakebe_list_free(&l);
	return rc;
}

/* ---- snapshots (snapshot.c) ----------------------------------------- */

static bool fakebe_snap_name_ok(const char *s)
{
	return fakebe_name_ok(s) && strlen(s) <= CORE_NAME_MAX;
}

static struct fakebe_snap *fakebe_snap_find(struct fakebe_dom *d,
					    const char *snap)
{
	size_t i;

	for (i = 0; i < d->nsnaps; i++)
		if (!strcmp(d->snaps[i].info.name, snap))
			return &d->snaps[i];
	return NULL;
}

static void fakebe_snap_out(const struct fakebe_dom *d,
			    const struct fakebe_snap *s, struct be_snap_info *o)
{
	*o = s->info;
	o->current = !strcmp(d->current, s->info.name);
}

static int fakebe_snap_take(struct be_conn *c, struct fakebe_dom *d,
			    const char *snap, bool memory, bool quiesce,
			    bool *quiesced, struct be_snap_info *out)
{
	const struct fakebe_def *x = fakebe_cur(d);
	bool active = d->state != FAKEBE_SHUTOFF;
	struct fakebe_snap *nv, *s;

	nv = realloc(d->snaps, (d->nsnaps + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	d->snaps = nv;
	s = &nv[d->nsnaps];
	memset(s, 0, sizeof(*s));
	if (fakebe_def_copy(&s->def, x) < 0)
		return -ENOMEM;
	d->nsnaps++;
	snprintf(s->info.name, sizeof(s->info.name), "%s", snap);
	snprintf(s->info.parent, sizeof(s->info.parent), "%s", d->current);
	/* A crashed domain is shut off to libvirt: "shutoff", Stopped. */
	s->info.vm_phase = d->state == FAKEBE_RUNNING ? CORE_PHASE_RUNNING :
			   d->state == FAKEBE_PAUSED ? CORE_PHASE_PAUSED :
			   CORE_PHASE_STOPPED;
	s->info.memory = active && memory;
	s->info.created = (int64_t)time(NULL);
	s->info.size_bytes = fakebe_capacity(c->h, x) +
			     (s->info.memory ? x->cur_kib * 1024 : 0);
	snprintf(d->current, sizeof(d->current), "%s", snap);
	/* The agent is asked only for a running guest; no answer is a
	 * crash-consistent snapshot, never an error. */
	if (quiesced)
		*quiesced = active && quiesce && x->agent && !d->agent_off;
	if (out)
		fakebe_snap_out(d, s, out);
	return 0;
}

int be_snapshot_create(struct be_conn *c, const char *vm, const char *snap,
		       bool memory, bool quiesce, bool *quiesced,
		       struct be_snap_info *out, char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	int rc;

	if (quiesced)
		*quiesced = false;
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_SNAPSHOT_CREATE, err, errlen);
	if (rc == 0 && !fakebe_snap_name_ok(snap))
		rc = core_errf(err, errlen, -EINVAL, "snapshot %s: bad name "
				 "\"%s\"", vm, snap ? snap : "");
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, "snapshot", vm);
	if (rc == 0 && fakebe_snap_find(d, snap))
		rc = core_errf(err, errlen, -EEXIST, "snapshot %s: %s exists",
				 vm, snap);
	if (rc == 0 && fakebe_snap_take(c, d, snap, memory, quiesce, quiesced,
					out) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "snapshot %s: out of "
				 "memory", vm);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* The common part of revert, delete and info (snapshot.c's one_op). */
static int fakebe_snap_one(struct be_conn *c, enum fakebe_op op,
			   const char *verb, const char *vm, const char *snap,
			   struct fakebe_dom **dp, struct fakebe_snap **sp,
			   char *err, size_t errlen)
{
	int rc = fakebe_enter(op, err, errlen);

	if (rc == 0 && !fakebe_snap_name_ok(snap))
		rc = core_errf(err, errlen, -EINVAL, "%s %s: bad snapshot "
				 "name", verb, vm);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(*dp = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, verb, vm);
	if (rc == 0 && !(*sp = fakebe_snap_find(*dp, snap)))
		rc = core_errf(err, errlen, -ENOENT, "%s %s: no snapshot %s",
				 verb, vm, snap);
	return rc;
}

/* predates_freeze: the snapshot names other disk files than the
 * persistent definition: those were frozen under a linked clone. */
static bool fakebe_predates(const struct fakebe_dom *d,
			    const struct fakebe_snap *s)
{
	size_t i;

	for (i = 0; i < s->def.ndisks && i < d->def.ndisks; i++)
		if (strcmp(s->def.disks[i].path, d->def.disks[i].path))
			return true;
	return false;
}

/* libvirt restores the definition saved in the snapshot, and so does
 * the fake: cpus, memory and the metadata's spec go back too. */
static int fakebe_revert(struct fakebe_host *h, struct fakebe_dom *d,
			 const struct fakebe_snap *s)
{
	struct fakebe_def x;

	if (fakebe_def_copy(&x, &s->def) < 0)
		return -ENOMEM;
	fakebe_def_free(&d->def);
	d->def = x;
	snprintf(d->current, sizeof(d->current), "%s", s->info.name);
	if (!s->info.memory) {
		/* REVERT_PAUSED then destroy, in do_revert: disk-only
		 * semantics for a snapshot of a running domain. */
		fakebe_set_state(h, d, FAKEBE_SHUTOFF,
				 s->info.vm_phase == CORE_PHASE_STOPPED ?
				 "from-snapshot" : "destroyed");
		return 0;
	}
	if (d->state == FAKEBE_SHUTOFF) {
		if (fakebe_boot(h, d) < 0)
			return -ENOMEM;
	} else {
		fakebe_def_free(&d->live);
		if (fakebe_def_copy(&d->live, &d->def) < 0)
			return -ENOMEM;
		d->boots++;
	}
	fakebe_set_state(h, d, FAKEBE_RUNNING, "from-snapshot");
	return 0;
}

int be_snapshot_revert(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	struct fakebe_snap *s = NULL;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_snap_one(c, FAKEBE_OP_SNAPSHOT_REVERT, "revert", vm, snap,
			     &d, &s, err, errlen);
	if (rc == 0 && fakebe_predates(d, s))
		rc = core_errf(err, errlen, -EBUSY, "revert %s: snapshot %s "
				 "was taken before the disks were frozen for a "
				 "linked clone; reverting it would write into "
				 "the clone's base", vm, snap);
	if (rc == 0 && fakebe_revert(c->h, d, s) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "revert %s: out of "
				 "memory", vm);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int be_snapshot_delete(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	struct fakebe_snap *s = NULL;
	char parent[FAKEBE_NAME_MAX + 1];
	size_t i, k;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_snap_one(c, FAKEBE_OP_SNAPSHOT_DELETE, "delete snapshot",
			     vm, snap, &d, &s, err, errlen);
	if (rc < 0)
		goto out;
	/* libvirt's merge: children move up to the parent, which becomes
	 * current when the deleted one was. */
	snprintf(parent, sizeof(parent), "%s", s->info.parent);
	for (i = 0; i < d->nsnaps; i++)
		if (!strcmp(d->snaps[i].info.parent, snap))
			snprintf(d->snaps[i].info.parent,
				 sizeof(d->snaps[i].info.parent), "%s", parent);
	if (!strcmp(d->current, snap))
		snprintf(d->current, sizeof(d->current), "%s", parent);
	k = (size_t)(s - d->snaps);
	fakebe_def_free(&s->def);
	memmove(s, s + 1, (d->nsnaps - k - 1) * sizeof(*s));
	d->nsnaps--;
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int be_snapshot_info(struct be_conn *c, const char *vm, const char *snap,
		     struct be_snap_info *out, char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	struct fakebe_snap *s = NULL;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_snap_one(c, FAKEBE_OP_SNAPSHOT_INFO, "snapshot", vm, snap,
			     &d, &s, err, errlen);
	if (rc == 0 && out)
		fakebe_snap_out(d, s, out);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* Creation order is oldest first with every parent before its
 * children, which is the real list's order. */
int be_snapshot_list(struct be_conn *c, const char *vm,
		     struct be_snap_info **out, size_t *n, char *err,
		     size_t errlen)
{
	struct fakebe_dom *d = NULL;
	struct be_snap_info *v = NULL;
	size_t i;
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_SNAPSHOT_LIST, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, "snapshots", vm);
	if (rc == 0 && !(v = calloc(d->nsnaps + 1, sizeof(*v))))
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
	if (rc == 0) {
		for (i = 0; i < d->nsnaps; i++)
			fakebe_snap_out(d, &d->snaps[i], &v[i]);
		*out = v;
		*n = d->nsnaps;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- resize and limits (resize.c) ----------------------------------- */

/* 1 when made live, 0 when only the persistent definition changed. */
static int fakebe_resize_mem(struct fakebe_dom *d, bool active, bool dimms,
			     uint64_t kib)
{
	struct fakebe_def *l = &d->live, *p = &d->def;

	/* The balloon, within <memory>. */
	if (active && !dimms && kib <= l->mem_kib) {
		l->cur_kib = p->cur_kib = kib;
		return 1;
	}
	/* One DIMM of whole MiB, while there are slots and room. */
	if (active && dimms && kib > l->mem_kib) {
		uint64_t dimm = (kib - l->mem_kib + 1023) / 1024 * 1024;

		if (l->dimms < FAKEBE_DIMM_SLOTS && l->max_kib &&
		    l->mem_kib + dimm <= l->max_kib) {
			l->mem_kib += dimm;
			l->cur_kib = l->mem_kib;
			l->dimms++;
			p->mem_kib += dimm;
			p->cur_kib = p->mem_kib;
			p->dimms++;
			return 1;
		}
	}
	if (active && kib == l->mem_kib)
		return 1;
	/* config_memory folds DIMMs into the cell for the next start. */
	p->mem_kib = p->cur_kib = kib;
	if (dimms)
		p->dimms = 0;
	return 0;
}

int be_resize(struct be_conn *c, const char *vm, int cpus, uint64_t memory,
	      bool *live, char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	uint64_t max_kib;
	bool active, ok = true, dimms;
	int rc;

	if (live)
		*live = false;
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_RESIZE, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, "resize", vm);
	if (rc < 0)
		goto out;
	active = d->state != FAKEBE_SHUTOFF;
	dimms = d->def.max_kib > 0;
	max_kib = dimms ? d->def.max_kib : d->def.mem_kib;
	if (cpus > 0 && cpus > d->def.max_cpus)
		rc = core_errf(err, errlen, -EINVAL, "cpus=%d: the maximum "
				 "of this VM is %d", cpus, d->def.max_cpus);
	else if (memory > max_kib * 1024)
		rc = core_errf(err, errlen, -EINVAL, "memory=%" PRIu64 "Mi: "
				 "the maximum of this VM is %" PRIu64 "Mi",
				 memory >> 20, max_kib >> 10);
	else if (cpus < 0 || (memory > 0 && memory < (1ULL << 20)))
		rc = core_errf(err, errlen, -EINVAL, "resize %s: bad size",
				 vm);
	if (rc < 0)
		goto out;
	if (cpus > 0) {
		/* Hotplug reaches the live maximum, which a redefine
		 * while running may have left below the new one. */
		ok = active && cpus <= d->live.max_cpus;
		if (ok)
			d->live.cpus = cpus;
		d->def.cpus = cpus;
	}
	if (memory > 0)
		ok = fakebe_resize_mem(d, active, dimms,
				       (memory + 1023) / 1024) == 1 && ok;
	if (live)
		*live = active && ok;
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int be_limits(struct be_conn *c, const char *vm, int *max_cpus,
	      uint64_t *max_memory, char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_LIMITS, err, errlen);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, "limits", vm);
	if (rc == 0) {
		*max_cpus = d->def.max_cpus;
		*max_memory = (d->def.max_kib ? d->def.max_kib
					      : d->def.mem_kib) * 1024;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- clone (clone.c, chain.c) --------------------------------------- */

struct fakebe_clone {
	struct be_conn *c;
	const char *src, *dst, *ns, *uid;
	json_object *spec_json;
	bool linked;
	const struct be_progress *p;
	struct core_spec spec;
	bool have_spec;
	char *text;                     /* dst's spec JSON */
	char **bases;                   /* what dst's disk i derives from */
	size_t nbases;
	struct fakebe_made made;
	bool freeze, paused;
	char *err;
	size_t errlen;
};

/* dst's spec: the one given, else src's from its metadata. */
static int fakebe_clone_spec(struct fakebe_clone *x,
			     const struct fakebe_dom *d)
{
	const struct fakebe_def *cur = fakebe_cur(d);
	json_object *j;
	int rc;

	if (!x->spec_json && (fakebe_ours(x->c, d) != 1 || !cur->spec))
		return core_errf(x->err, x->errlen, -ENOENT, "clone %s: not "
				   "a hypersdk VM of this node", x->src);
	x->text = strdup(x->spec_json ? json_object_to_json_string_ext(
		x->spec_json, JSON_C_TO_STRING_PLAIN) : cur->spec);
	if (!x->text)
		return core_errf(x->err, x->errlen, -ENOMEM, "out of memory");
	j = x->spec_json ? x->spec_json : json_tokener_parse(x->text);
	rc = core_spec_from_json(j, &x->spec, x->err, x->errlen);
	if (!x->spec_json)
		json_object_put(j);
	x->have_spec = rc == 0;
	return rc;
}

/* dst_free: no domain, volume or seed image of dst yet. */
static int fakebe_clone_free(struct fakebe_clone *x)
{
	char path[PATH_MAX];
	size_t i;

	if (fakebe_dom_find(x->c->h, x->dst))
		return core_errf(x->err, x->errlen, -EEXIST, "clone %s: "
				   "domain %s exists", x->src, x->dst);
	for (i = 0; i < x->spec.ndisks; i++) {
		snprintf(path, sizeof(path), "%s/%s_%s.qcow2", x->c->pool_dir,
			 x->dst, x->spec.disks[i].name);
		if (fakebe_vol_find(x->c->h, path))
			return core_errf(x->err, x->errlen, -EEXIST,
					   "clone %s: volume %s_%s.qcow2 "
					   "exists", x->src, x->dst,
					   x->spec.disks[i].name);
	}
	snprintf(path, sizeof(path), "%s/%s_cidata.iso", x->c->pool_dir,
		 x->dst);
	if (fakebe_vol_find(x->c->h, path))
		return core_errf(x->err, x->errlen, -EEXIST, "clone %s: %s "
				   "exists", x->src, path);
	return 0;
}

/* fakebe_st.lock held. */
static int fakebe_clone_check(struct fakebe_clone *x)
{
	const char *bad = !fakebe_name_ok(x->src) ? x->src : x->dst;
	struct fakebe_dom *d = NULL;
	int rc = fakebe_enter(FAKEBE_OP_CLONE, x->err, x->errlen);

	if (rc == 0 && (!fakebe_name_ok(x->dst) || !fakebe_name_ok(x->src)))
		rc = core_errf(x->err, x->errlen, -EINVAL, "clone: bad name "
				 "\"%s\"", bad ? bad : "");
	if (rc == 0)
		rc = fakebe_reach(x->c, x->err, x->errlen);
	if (rc == 0 && !(d = fakebe_dom_find(x->c->h, x->src)))
		rc = fakebe_no_domain(x->err, x->errlen, "clone", x->src);
	if (rc == 0)
		rc = fakebe_clone_spec(x, d);
	if (rc == 0)
		rc = fakebe_clone_free(x);
	if (rc == 0)
		x->freeze = x->linked && d->state != FAKEBE_SHUTOFF;
	return rc;
}

static int fakebe_no_vol(char *err, size_t errlen, const char *verb,
			 const char *name, const char *path)
{
	return fakebe_virerr(err, errlen, -ENOENT, verb, name, "Storage volume "
			     "not found: no storage vol with matching path "
			     "'%s'", path);
}

static void fakebe_repoint(struct fakebe_def *x, const char *from,
			   const char *to)
{
	size_t i;
	char *p;

	for (i = 0; i < x->ndisks; i++)
		if (!strcmp(x->disks[i].path, from) && (p = strdup(to))) {
			free(x->disks[i].path);
			x->disks[i].path = p;
		}
}

/* be_freeze: each disk's current file becomes the read-only base under a
 * new overlay <src>_<disk>.<stamp>.qcow2 that the source writes from now
 * on, in its live and persistent definitions alike. */
static int fakebe_freeze(struct fakebe_clone *x, struct fakebe_dom *d)
{
	struct fakebe_host *h = x->c->h;
	char path[PATH_MAX];
	long stamp = (long)time(NULL);
	size_t i;

	/* The errno is backend.h's; the text is the fake's own. */
	if (d->nsnaps)
		return core_errf(x->err, x->errlen, -EBUSY, "clone %s: a "
				   "running source with snapshots cannot be "
				   "frozen for a linked clone", x->src);
	for (i = 0; i < x->nbases; i++) {
		if (!fakebe_vol_find(h, x->bases[i]))
			return fakebe_no_vol(x->err, x->errlen, "clone", x->src,
					     x->bases[i]);
		snprintf(path, sizeof(path), "%s/%s_%s.%ld.qcow2",
			 x->c->pool_dir, x->src, x->spec.disks[i].name, stamp);
		/* free_stamp: two freezes in one second must not collide. */
		if (fakebe_vol_find(h, path)) {
			stamp++;
			i = (size_t)-1;
		}
	}
	for (i = 0; i < x->nbases; i++) {
		const struct fakebe_vol *v = fakebe_vol_find(h, x->bases[i]);

		snprintf(path, sizeof(path), "%s/%s_%s.%ld.qcow2",
			 x->c->pool_dir, x->src, x->spec.disks[i].name, stamp);
		if (fakebe_vol_add(h, path, v->cap, v->path) < 0)
			return core_errf(x->err, x->errlen, -ENOMEM,
					   "clone %s: out of memory", x->src);
		fakebe_repoint(&d->live, x->bases[i], path);
		fakebe_repoint(&d->def, x->bases[i], path);
	}
	return 0;
}

/* clone_make up to the disks: bases (src's current tops), the freeze of
 * a running src for a linked clone, the pause of a running src for a full
 * copy.  fakebe_st.lock held. */
static int fakebe_clone_bases(struct fakebe_clone *x)
{
	struct fakebe_dom *d = fakebe_dom_find(x->c->h, x->src);
	char path[PATH_MAX];
	size_t i;

	if (!d)
		return fakebe_no_domain(x->err, x->errlen, "clone", x->src);
	for (i = 0; i < x->spec.ndisks; i++) {
		const char *top = fakebe_def_disk(fakebe_cur(d),
						  x->spec.disks[i].name);

		snprintf(path, sizeof(path), "%s/%s_%s.qcow2", x->c->pool_dir,
			 x->src, x->spec.disks[i].name);
		if (fakebe_strv_add(&x->bases, &x->nbases,
				    top ? top : path) < 0)
			return core_errf(x->err, x->errlen, -ENOMEM,
					   "clone %s: out of memory", x->src);
	}
	if (x->linked && d->state != FAKEBE_SHUTOFF)
		return fakebe_freeze(x, d);
	if (!x->linked && d->state == FAKEBE_RUNNING) {
		fakebe_set_state(x->c->h, d, FAKEBE_PAUSED, "user");
		x->paused = true;
	}
	return 0;
}

/* be_vol_derive: an overlay on the base, or a copy of it.  fakebe_st.lock
 * held. */
static int fakebe_clone_disk(struct fakebe_clone *x, size_t i)
{
	const struct fakebe_vol *base = fakebe_vol_find(x->c->h, x->bases[i]);
	char vol[2 * FAKEBE_NAME_MAX + 16], path[PATH_MAX];

	if (!base)
		return fakebe_no_vol(x->err, x->errlen, "clone", x->src,
				     x->bases[i]);
	snprintf(vol, sizeof(vol), "%s_%s.qcow2", x->dst,
		 x->spec.disks[i].name);
	fakebe_pool_path(x->c, path, sizeof(path), vol);
	if (fakebe_vol_find(x->c->h, path))
		return fakebe_virerr(x->err, x->errlen, -EEXIST, "volume", vol,
				     "storage volume name '%s' already in use",
				     vol);
	if (fakebe_vol_add(x->c->h, path, base->cap,
			   x->linked ? base->path : NULL) < 0 ||
	    fakebe_made_add(&x->made, path) < 0)
		return core_errf(x->err, x->errlen, -ENOMEM, "out of memory");
	return 0;
}

/* The source goes on after its copy, whatever became of the clone.
 * fakebe_st.lock held. */
static void fakebe_clone_resume(struct fakebe_clone *x)
{
	struct fakebe_dom *d = fakebe_dom_find(x->c->h, x->src);

	if (x->paused && d && d->state == FAKEBE_PAUSED)
		fakebe_set_state(x->c->h, d, FAKEBE_RUNNING, "unpaused");
	x->paused = false;
}

/* clone_define: dst stopped, with a new UUID (uid when it is one), its
 * own VNC password, seed image and metadata.  fakebe_st.lock held. */
static int fakebe_clone_define(struct fakebe_clone *x)
{
	struct fakebe_def def = { 0 };
	struct fakebe_dom *nd;
	int rc;

	if (fakebe_dom_find(x->c->h, x->dst))
		return core_errf(x->err, x->errlen, -EEXIST, "clone %s: "
				   "domain %s exists", x->src, x->dst);
	rc = fakebe_def_make(x->c, x->dst, x->ns, x->uid, &x->spec, x->text,
			     NULL, &def, &x->made, x->err, x->errlen);
	if (rc == 0 && !(nd = fakebe_dom_new(x->c->h, x->dst, x->uid)))
		rc = core_errf(x->err, x->errlen, -ENOMEM, "out of memory");
	if (rc < 0) {
		fakebe_def_free(&def);
		return rc;
	}
	nd->def = def;
	fakebe_changed(x->c->h, x->dst);
	return 0;
}

int be_clone(struct be_conn *c, const char *src, const char *dst,
	     const char *ns, const char *uid, json_object *spec_json,
	     bool linked, const struct be_progress *p, char *err,
	     size_t errlen)
{
	struct fakebe_clone x = { .c = c, .src = src, .dst = dst, .ns = ns,
				  .uid = uid, .spec_json = spec_json,
				  .linked = linked, .p = p, .err = err,
				  .errlen = errlen };
	size_t i, n;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_clone_check(&x);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc < 0)
		goto out;
	/* Progress and cancel checks as the real one has them, each
	 * outside the lock: the caller's fn may call the backend. */
	fakebe_report(p, 0, linked ? "making overlays" : "copying disks");
	if (x.freeze)
		fakebe_report(p, 0, "freezing the source's disks");
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_clone_bases(&x);
	pthread_mutex_unlock(&fakebe_st.lock);
	n = x.spec.ndisks;
	for (i = 0; rc == 0 && i < n; i++) {
		if (fakebe_cancelled(p)) {
			rc = core_errf(err, errlen, -ECANCELED, "clone %s: "
					 "cancelled", src);
			break;
		}
		pthread_mutex_lock(&fakebe_st.lock);
		rc = fakebe_clone_disk(&x, i);
		pthread_mutex_unlock(&fakebe_st.lock);
		if (rc == 0 && !linked)
			fakebe_report(p, (int)(i * 90 / n + 90 / n),
				      "copying disk");
	}
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_clone_resume(&x);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc == 0 && fakebe_cancelled(p))
		rc = core_errf(err, errlen, -ECANCELED, "clone %s: cancelled",
				 src);
	fakebe_report(p, 95, "defining");
	pthread_mutex_lock(&fakebe_st.lock);
	if (rc == 0)
		rc = fakebe_clone_define(&x);
	/* clone_undo: dst's volumes and seed; a freeze stays. */
	fakebe_made_undo(c->h, &x.made, rc < 0);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc == 0)
		fakebe_report(p, 100, "cloned");
out:
	fakebe_strv_free(x.bases, x.nbases);
	if (x.have_spec)
		core_spec_free(&x.spec);
	free(x.text);
	return rc;
}

/* ---- migration (migrate.c) ------------------------------------------ */

/* libvirt's checks in the order a peer-to-peer migration meets them.
 * fakebe_st.lock held. */
static int fakebe_mig_check(struct be_conn *c, const char *vm,
			    const struct be_migrate_opts *o,
			    struct fakebe_dom **dp, struct fakebe_host **tp,
			    char *err, size_t errlen)
{
	struct fakebe_dom *d = fakebe_dom_find(c->h, vm), *td;
	struct fakebe_host *t;

	if (!d)
		return fakebe_no_domain(err, errlen, "migrate", vm);
	if (fakebe_ours(c, d) != 1)
		return core_errf(err, errlen, -ENOENT, "migrate %s: not a "
				   "hypersdk VM of this node", vm);
	if (!o->offline && d->state == FAKEBE_SHUTOFF)
		return fakebe_invalid(err, errlen, "migrate", vm,
				      "domain is not running");
	/* The fake's choice: libvirt would move the definition and leave a
	 * transient guest running here, which the fake does not model. */
	if (o->offline && d->state != FAKEBE_SHUTOFF)
		return fakebe_invalid(err, errlen, "migrate", vm,
				      "domain is active");
	if (d->nsnaps) {
		char why[64];

		snprintf(why, sizeof(why), "cannot migrate domain with %zu "
			 "snapshots", d->nsnaps);
		return fakebe_invalid(err, errlen, "migrate", vm, why);
	}
	t = fakebe_host_find(o->dest_uri);
	if (!t || t->down)
		return fakebe_virerr(err, errlen, -EIO, "migrate", vm,
				     "operation failed: Failed to connect to "
				     "remote libvirt URI %s: %s", o->dest_uri,
				     t ? "the fake host is down"
				       : "no fake host at that URI");
	if (t == c->h)
		return fakebe_virerr(err, errlen, -EIO, "migrate", vm,
				     "internal error: Attempt to migrate guest "
				     "to the same host %s", t->uri);
	if (o->offline && o->copy_storage)
		return fakebe_invalid(err, errlen, "migrate", vm, "offline "
				      "migration cannot handle non-shared "
				      "storage");
	td = fakebe_dom_find(t, vm);
	if (td && strcmp(td->uuid, d->uuid))
		return fakebe_virerr(err, errlen, -EIO, "migrate", vm,
				     "operation failed: domain '%s' is already "
				     "defined with uuid %s", vm, td->uuid);
	if (td && td->state != FAKEBE_SHUTOFF) {
		char why[2 * FAKEBE_NAME_MAX];

		snprintf(why, sizeof(why), "domain '%s' is already active", vm);
		return fakebe_invalid(err, errlen, "migrate", vm, why);
	}
	*dp = d;
	*tp = t;
	return 0;
}

/* The target learns of d's files, chains included: shared storage (or
 * copy_storage's copies).  The source keeps its files, as libvirt does. */
static int fakebe_mig_files(struct fakebe_host *from, struct fakebe_host *to,
			    const struct fakebe_def *x)
{
	size_t i;

	for (i = 0; i <= x->ndisks; i++) {
		const char *p = i < x->ndisks ? x->disks[i].path : x->seed;
		int depth;

		for (depth = 0; p && depth < FAKEBE_CHAIN_MAX; depth++) {
			const struct fakebe_vol *v = fakebe_vol_find(from, p);

			if (!v)
				break;
			if (!fakebe_vol_find(to, p) &&
			    fakebe_vol_add(to, p, v->cap, v->backing) < 0)
				return -ENOMEM;
			p = v->backing;
		}
	}
	return 0;
}

/* The domain now is the target's, with the target's node in its
 * metadata from its first moment there, and is undefined here. */
static int fakebe_mig_move(struct be_conn *c, struct fakebe_dom *d,
			   struct fakebe_host *t,
			   const struct be_migrate_opts *o)
{
	struct fakebe_dom *td = fakebe_dom_find(t, d->name);
	struct fakebe_def x = { 0 }, lx = { 0 };
	bool active = d->state != FAKEBE_SHUTOFF;
	int rc;

	rc = fakebe_def_copy(&x, &d->def);
	if (rc == 0 && active)
		rc = fakebe_def_copy(&lx, &d->live);
	if (rc == 0)
		rc = fakebe_mig_files(c->h, t, &d->def);
	if (rc == 0 && active)
		rc = fakebe_mig_files(c->h, t, &d->live);
	if (rc == 0 && !td && !(td = fakebe_dom_new(t, d->name, d->uuid)))
		rc = -ENOMEM;
	if (rc < 0) {
		fakebe_def_free(&x);
		fakebe_def_free(&lx);
		return rc;
	}
	snprintf(x.node, sizeof(x.node), "%s", o->dest_node);
	snprintf(lx.node, sizeof(lx.node), "%s", o->dest_node);
	fakebe_def_free(&td->def);
	td->def = x;
	if (active) {
		td->live = lx;
		td->boots++;
		td->pid = FAKEBE_PID_BASE + (int)(++fakebe_st.seq % 1000000);
		td->vnc_port = fakebe_free_vnc(t);
		td->console = (int)(fakebe_st.seq % 1000);
		td->ignore_acpi = d->ignore_acpi;
		td->agent_off = d->agent_off;
	}
	td->state = d->state;
	snprintf(td->reason, sizeof(td->reason), "%s",
		 d->state == FAKEBE_RUNNING ? "migrated" :
		 d->state == FAKEBE_PAUSED ? "user" : "unknown");
	fakebe_changed(t, td->name);
	fakebe_dom_unlink(c->h, d);
	fakebe_changed(c->h, d->name);
	fakebe_dom_free(d);
	return 0;
}

int be_migrate(struct be_conn *c, const char *vm,
	       const struct be_migrate_opts *o, const struct be_progress *p,
	       char *err, size_t errlen)
{
	struct fakebe_dom *d = NULL;
	struct fakebe_host *t = NULL;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_MIGRATE, err, errlen);
	if (rc == 0 && (!o || !o->dest_uri || !*o->dest_uri))
		rc = core_errf(err, errlen, -EINVAL, "migrate %s: no target",
				 vm);
	else if (rc == 0 && (!o->dest_node || !*o->dest_node))
		rc = core_errf(err, errlen, -EINVAL, "migrate %s: no target "
				 "node name", vm);
	else if (rc == 0 && o->nonlive && !o->offline &&
		 (o->postcopy || o->autoconverge))
		rc = core_errf(err, errlen, -EINVAL, "migrate %s: %s needs a "
				 "live migration", vm, o->postcopy ?
				 "post-copy" : "auto-converge");
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc == 0 && !(d = fakebe_dom_find(c->h, vm)))
		rc = fakebe_no_domain(err, errlen, "migrate", vm);
	if (rc == 0 && fakebe_ours(c, d) != 1)
		rc = core_errf(err, errlen, -ENOENT, "migrate %s: not a "
				 "hypersdk VM of this node", vm);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc < 0)
		return rc;
	fakebe_report(p, 0, "starting migration");
	if (fakebe_cancelled(p))
		return core_errf(err, errlen, -ECANCELED, "migrate %s: "
				   "cancelled", vm);
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_mig_check(c, vm, o, &d, &t, err, errlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc < 0)
		return rc;
	/* The job runs: the watcher's poll reports and may abort it. */
	if (!o->offline)
		fakebe_report(p, 50, "migrating");
	if (fakebe_cancelled(p))
		return core_errf(err, errlen, -ECANCELED, "migrate %s: "
				   "cancelled; it keeps running here", vm);
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_mig_check(c, vm, o, &d, &t, err, errlen);
	if (rc == 0 && fakebe_mig_move(c, d, t, o) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "migrate %s: out of "
				 "memory", vm);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc == 0)
		fakebe_report(p, 100, "migrated");
	return rc;
}

/* ---- images (imgsource.c, image.c, clone.c) ------------------------ */

int be_import_set(struct be_conn *c, const struct be_import_policy *p)
{
	struct be_import_policy *n = calloc(1, sizeof(*n));
	char **allow = calloc(p->nallow + 1, sizeof(*allow));
	size_t i;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_IMPORT_SET, NULL, 0);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc < 0)
		goto out;
	if (!n || !allow) {
		rc = -ENOMEM;
		goto out;
	}
	*n = *p;
	n->allow = (const char *const *)allow;
	n->nallow = 0;
	n->dir = NULL;
	/* n owns allow from here, so one free undoes a partial copy. */
	for (i = 0; rc == 0 && i < p->nallow; i++) {
		if (!(allow[i] = strdup(p->allow[i])))
			rc = -ENOMEM;
		else
			n->nallow++;
	}
	allow = NULL;
	if (rc == 0 && p->dir && !(n->dir = strdup(p->dir)))
		rc = -ENOMEM;
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_import_free(c->imp);
	c->imp = n;
	n = NULL;
	pthread_mutex_unlock(&fakebe_st.lock);
out:
	fakebe_import_free(n);
	free(allow);
	return rc;
}

/* Copied from backend/imgsource.c: pure, and that file needs the real
 * struct be_conn. */
void be_url_redact(const char *source, char *out, size_t len)
{
	const char *s = strstr(source, "://");
	const char *host = s ? s + 3 : NULL;
	const char *end = host ? host + strcspn(host, "/?#") : NULL;
	const char *at = NULL;
	const char *q;

	for (q = host; q && q < end; q++)
		if (*q == '@')
			at = q;
	if (!at) {
		snprintf(out, len, "%s", source);
		return;
	}
	snprintf(out, len, "%.*s%s", (int)(host - source), source, at + 1);
}

static const struct be_import_policy *fakebe_policy(const struct be_conn *c)
{
	return c->imp ? c->imp : &fakebe_import_defaults;
}

static bool fakebe_is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static bool fakebe_is_local(const char *s)
{
	return s[0] == '/' || !strncmp(s, "file://", 7);
}

/* import_checks and be_src_check_url.  The real one matches prefixes
 * against curl's canonical URL; here the URL without credentials. */
static int fakebe_import_checks(const struct be_conn *c, const char *source,
				const char *checksum, const char *vol,
				char *err, size_t errlen)
{
	const struct be_import_policy *pol = fakebe_policy(c);
	char shown[1024];
	size_t i;

	if (!fakebe_name_ok(vol))
		return core_errf(err, errlen, -EINVAL, "import: bad volume "
				   "name \"%s\"", vol ? vol : "");
	if (!source || (!fakebe_is_local(source) && !fakebe_is_url(source)))
		return core_errf(err, errlen, -EINVAL, "import: source must "
				   "be an absolute path or a file://, http:// "
				   "or https:// URL");
	be_url_redact(source, shown, sizeof(shown));
	if (fakebe_is_url(source)) {
		bool ok = !strncmp(shown, "https://", 8);

		for (i = 0; !ok && i < pol->nallow; i++)
			ok = !strncmp(shown, pol->allow[i],
				      strlen(pol->allow[i]));
		if (!ok)
			return core_errf(err, errlen, -EACCES, "import: %s: "
					   "refused: only https:// or a URL "
					   "under an --import-allow prefix",
					   shown);
	}
	if (pol->need_checksum && (!checksum || !*checksum))
		return core_errf(err, errlen, -EACCES, "import %s: refused: "
				   "a checksum is required in cluster mode "
				   "(spec.image.checksum)", shown);
	return 0;
}

/* parse_sum and check_sum, against the checksum fakebe_add_image gave. */
static int fakebe_check_sum(const struct fakebe_image *im, const char *sum,
			    char *err, size_t errlen)
{
	const char *colon = strchr(sum, ':');
	char algo[16];
	size_t al;

	if (!colon || colon - sum >= (long)sizeof(algo) || !colon[1])
		return core_errf(err, errlen, -EINVAL, "checksum \"%s\": "
				   "want sha256:HEX, sha512:HEX or md5:HEX",
				   sum);
	al = (size_t)(colon - sum);
	snprintf(algo, sizeof(algo), "%.*s", (int)al, sum);
	if (strcmp(algo, "sha256") && strcmp(algo, "sha512") &&
	    strcmp(algo, "md5"))
		return core_errf(err, errlen, -EINVAL, "checksum: unknown "
				   "algorithm %s", algo);
	if (im->checksum && !strncmp(im->checksum, sum, al + 1) &&
	    !strcasecmp(im->checksum + al + 1, colon + 1))
		return 0;
	return core_errf(err, errlen, -EBADMSG, "checksum mismatch: "
			   "expected %s got %s:%s", sum, algo,
			   im->checksum && !strncmp(im->checksum, sum, al + 1) ?
			   im->checksum + al + 1 : "0");
}

static const struct fakebe_image *fakebe_image_find(const char *source)
{
	const struct fakebe_image *im;

	for (im = fakebe_st.images; im; im = im->next)
		if (!strcmp(im->source, source))
			return im;
	return NULL;
}

/* fetch, check_sum, probe: what the source holds, or why not.  fakebe_st.lock
 * held. */
static int fakebe_fetch(const struct be_conn *c, const char *source,
			const char *checksum, const struct fakebe_image **imp,
			char *err, size_t errlen)
{
	const struct be_import_policy *pol = fakebe_policy(c);
	const char *path = !strncmp(source, "file://", 7) ? source + 7 : source;
	const struct fakebe_image *im = fakebe_image_find(source);
	char shown[1024];
	size_t dl;

	be_url_redact(source, shown, sizeof(shown));
	if (fakebe_is_local(source)) {
		if (!im)
			im = fakebe_image_find(path);
		if (!pol->dir)
			return core_errf(err, errlen, -EACCES, "import: "
					   "%.200s: refused: local files need "
					   "--import-dir", path);
		dl = strlen(pol->dir);
		while (dl > 1 && pol->dir[dl - 1] == '/')
			dl--;
		if (path[0] != '/' || strncmp(path, pol->dir, dl) ||
		    path[dl] != '/' || !path[dl + 1])
			return core_errf(err, errlen, -EACCES, "import: "
					   "%.200s: refused: not a file under "
					   "--import-dir %.200s", path,
					   pol->dir);
		if (!im)
			return core_errf(err, errlen, -EACCES, "import: "
					   "%.200s: refused: cannot open it "
					   "under --import-dir: %s", path,
					   strerror(ENOENT));
	} else if (!im) {
		return core_errf(err, errlen, -ENOENT, "import %s: HTTP 404",
				   shown);
	}
	if (checksum && *checksum) {
		int rc = fakebe_check_sum(im, checksum, err, errlen);

		if (rc < 0)
			return rc;
	}
	if (im->vsize > pol->max_bytes)
		return core_errf(err, errlen, -EFBIG, "import: virtual size %"
				   PRIu64 " is larger than --import-max-size (%"
				   PRIu64 " bytes)", im->vsize, pol->max_bytes);
	*imp = im;
	return 0;
}

int be_image_import(struct be_conn *c, const char *source,
		    const char *checksum, const char *vol,
		    uint64_t *size_out, const struct be_progress *p,
		    char *err, size_t errlen)
{
	const struct fakebe_image *im = NULL;
	char path[PATH_MAX];
	bool counted = false;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_IMAGE_IMPORT, err, errlen);
	if (rc == 0)
		rc = fakebe_import_checks(c, source, checksum, vol, err,
					  errlen);
	if (rc == 0 && c->imports >= fakebe_policy(c)->max_running)
		rc = core_errf(err, errlen, -EBUSY, "import: %d imports "
				 "already running on this node (--import-max)",
				 fakebe_policy(c)->max_running);
	if (rc == 0) {
		c->imports++;
		counted = true;
		rc = fakebe_reach(c, err, errlen);
	}
	if (rc == 0) {
		fakebe_pool_path(c, path, sizeof(path), vol);
		if (fakebe_vol_find(c->h, path))
			rc = core_errf(err, errlen, -EEXIST, "import: "
					 "volume %s exists", vol);
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc < 0)
		goto out;
	fakebe_report(p, 0, "importing");
	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_fetch(c, source, checksum, &im, err, errlen);
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc == 0 && fakebe_cancelled(p))
		rc = core_errf(err, errlen, -ECANCELED, "import: cancelled");
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&fakebe_st.lock);
	if (fakebe_vol_find(c->h, path))
		rc = core_errf(err, errlen, -EEXIST, "import: volume %s "
				 "exists", vol);
	else if (fakebe_vol_add(c->h, path, im->vsize, NULL) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "import %s: %s", vol,
				 strerror(ENOMEM));
	else if (size_out)
		*size_out = im->vsize;
	pthread_mutex_unlock(&fakebe_st.lock);
	if (rc == 0)
		fakebe_report(p, 100, "imported");
out:
	if (counted) {
		pthread_mutex_lock(&fakebe_st.lock);
		c->imports--;
		pthread_mutex_unlock(&fakebe_st.lock);
	}
	return rc;
}

int be_image_delete(struct be_conn *c, const char *vol, char *err,
		    size_t errlen)
{
	char path[PATH_MAX], deps[CORE_ERR_MAX / 2], *t[1];
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_IMAGE_DELETE, err, errlen);
	if (rc == 0 && !fakebe_name_ok(vol))
		rc = core_errf(err, errlen, -EINVAL, "delete image: bad "
				 "name");
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc < 0)
		goto out;
	fakebe_pool_path(c, path, sizeof(path), vol);
	t[0] = path;
	if (!fakebe_vol_find(c->h, path)) {
		rc = fakebe_virerr(err, errlen, -ENOENT, "delete image", vol,
				   "Storage volume not found: no storage vol "
				   "with matching name '%s'", vol);
		goto out;
	}
	fakebe_deps(c->h, NULL, t, 1, deps, sizeof(deps));
	if (deps[0])
		rc = core_errf(err, errlen, -EBUSY, "delete image %s: VMs "
				 "use it as their base: %s", vol, deps);
	else
		fakebe_vol_del(c->h, path);
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int be_volume_from_image(struct be_conn *c, const char *vm, const char *disk,
			 const char *klass, const char *base_vol, bool linked,
			 uint64_t size, char *err, size_t errlen)
{
	char vol[2 * FAKEBE_NAME_MAX + 16], path[PATH_MAX], bpath[PATH_MAX];
	const struct fakebe_vol *base;
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_enter(FAKEBE_OP_VOLUME_FROM_IMAGE, err, errlen);
	if (rc == 0 && (!fakebe_name_ok(vm) || !fakebe_name_ok(disk) ||
			!fakebe_name_ok(base_vol)))
		rc = core_errf(err, errlen, -EINVAL, "volume: bad name");
	/* The fake has the node's pool only. */
	if (rc == 0 && klass && *klass)
		rc = core_errf(err, errlen, -EINVAL, "volume: no storage "
				 "class %s", klass);
	if (rc == 0)
		rc = fakebe_reach(c, err, errlen);
	if (rc < 0)
		goto out;
	snprintf(vol, sizeof(vol), "%s_%s.qcow2", vm, disk);
	fakebe_pool_path(c, path, sizeof(path), vol);
	fakebe_pool_path(c, bpath, sizeof(bpath), base_vol);
	base = fakebe_vol_find(c->h, bpath);
	if (fakebe_vol_find(c->h, path))
		rc = core_errf(err, errlen, -EEXIST, "volume %s exists", vol);
	else if (!base)
		rc = core_errf(err, errlen, -ENOENT, "volume %s: no image %s "
				 "in pool %s", vol, base_vol, c->pool_name);
	/* An overlay or a copy, grown to size when that is larger. */
	else if (fakebe_vol_add(c->h, path, size > base->cap ? size : base->cap,
				linked ? base->path : NULL) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* ---- test controls -------------------------------------------------- */

const char *fakebe_op_name(enum fakebe_op op)
{
	return op >= 0 && op < FAKEBE_OP_COUNT ? fakebe_op_names[op] : "?";
}

static void fakebe_images_free(void)
{
	while (fakebe_st.images) {
		struct fakebe_image *im = fakebe_st.images;

		fakebe_st.images = im->next;
		free(im->source);
		free(im->checksum);
		free(im);
	}
}

void fakebe_reset(void)
{
	bool join;

	fakebe_settle();
	pthread_mutex_lock(&fakebe_q.lock);
	join = fakebe_q.running &&
	       !pthread_equal(fakebe_q.thread, pthread_self());
	fakebe_q.stop = join;
	pthread_cond_broadcast(&fakebe_q.cond);
	pthread_mutex_unlock(&fakebe_q.lock);
	if (join)
		pthread_join(fakebe_q.thread, NULL);
	pthread_mutex_lock(&fakebe_q.lock);
	fakebe_q.stop = false;
	fakebe_q.notified = 0;
	/* Queued by another thread while this one stopped the old. */
	if (fakebe_q.head && !fakebe_q.running &&
	    pthread_create(&fakebe_q.thread, NULL, fakebe_ev_main, NULL) == 0)
		fakebe_q.running = true;
	pthread_mutex_unlock(&fakebe_q.lock);

	pthread_mutex_lock(&fakebe_st.lock);
	while (fakebe_st.hosts) {
		struct fakebe_host *h = fakebe_st.hosts;

		fakebe_st.hosts = h->next;
		h->orphan = true;
		if (h->refs == 0)
			fakebe_host_free(h);
	}
	fakebe_images_free();
	memset(fakebe_st.calls, 0, sizeof(fakebe_st.calls));
	memset(fakebe_st.fail, 0, sizeof(fakebe_st.fail));
	fakebe_st.seq = 0;
	pthread_mutex_unlock(&fakebe_st.lock);
}

int fakebe_fail(enum fakebe_op op, int rc, const char *err)
{
	if (op < 0 || op >= FAKEBE_OP_COUNT || rc >= 0 ||
	    op == FAKEBE_OP_CLOSE || op == FAKEBE_OP_ACCEL_NAME ||
	    op == FAKEBE_OP_CONN_ALIVE)
		return -EINVAL;
	pthread_mutex_lock(&fakebe_st.lock);
	fakebe_st.fail[op].armed = true;
	fakebe_st.fail[op].rc = rc;
	if (err)
		snprintf(fakebe_st.fail[op].err, CORE_ERR_MAX, "%s", err);
	else
		snprintf(fakebe_st.fail[op].err, CORE_ERR_MAX, "%s: injected "
			 "failure", fakebe_op_names[op]);
	pthread_mutex_unlock(&fakebe_st.lock);
	return 0;
}

unsigned long fakebe_calls(enum fakebe_op op)
{
	unsigned long n;

	if (op < 0 || op >= FAKEBE_OP_COUNT)
		return 0;
	pthread_mutex_lock(&fakebe_st.lock);
	n = fakebe_st.calls[op];
	pthread_mutex_unlock(&fakebe_st.lock);
	return n;
}

int fakebe_add_host(const char *uri)
{
	int rc;

	pthread_mutex_lock(&fakebe_st.lock);
	rc = fakebe_host_get(uri) ? 0 : -ENOMEM;
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_set_down(const char *uri, bool down)
{
	struct fakebe_host *h;
	struct be_conn *c;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	h = fakebe_host_find(uri);
	if (!h)
		rc = -ENOENT;
	else
		h->down = down;
	/* keepalive notices at once here. */
	for (c = fakebe_st.conns; h && down && c; c = c->next)
		if (c->h == h)
			c->broken = true;
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_set_kvm(const char *uri, bool usable)
{
	struct fakebe_host *h;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	h = fakebe_host_get(uri);
	if (!h)
		rc = -ENOMEM;
	else
		h->kvm = usable;
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

/* The domain of a control call; fakebe_st.lock held. */
static struct fakebe_dom *fakebe_ctl_dom(const char *uri, const char *name,
					 struct fakebe_host **hp)
{
	struct fakebe_host *h = fakebe_host_find(uri);

	if (hp)
		*hp = h;
	return h ? fakebe_dom_find(h, name) : NULL;
}

static int fakebe_guest_stop(const char *uri, const char *name,
			     const char *reason)
{
	struct fakebe_host *h;
	struct fakebe_dom *d;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	d = fakebe_ctl_dom(uri, name, &h);
	if (!d)
		rc = -ENOENT;
	else if (d->state == FAKEBE_SHUTOFF)
		rc = -EBUSY;
	else
		fakebe_set_state(h, d, FAKEBE_SHUTOFF, reason);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_crash(const char *uri, const char *name)
{
	return fakebe_guest_stop(uri, name, "crashed");
}

int fakebe_poweroff(const char *uri, const char *name)
{
	return fakebe_guest_stop(uri, name, "shutdown");
}

int fakebe_ignore_acpi(const char *uri, const char *name, bool ignore)
{
	struct fakebe_dom *d;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	d = fakebe_ctl_dom(uri, name, NULL);
	if (!d)
		rc = -ENOENT;
	else
		d->ignore_acpi = ignore;
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_set_agent(const char *uri, const char *name, bool connected)
{
	struct fakebe_host *h;
	struct fakebe_dom *d;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	d = fakebe_ctl_dom(uri, name, &h);
	if (!d) {
		rc = -ENOENT;
	} else if (d->agent_off != !connected) {
		d->agent_off = !connected;
		/* libvirt's agent lifecycle event, while it runs. */
		if (d->state != FAKEBE_SHUTOFF && fakebe_cur(d)->agent)
			fakebe_changed(h, name);
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_add_foreign(const char *uri, const char *name)
{
	struct fakebe_host *h;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	h = fakebe_host_get(uri);
	if (!h)
		rc = -ENOMEM;
	else if (!fakebe_name_ok(name))
		rc = -EINVAL;
	else if (fakebe_dom_find(h, name))
		rc = -EEXIST;
	else if (!fakebe_dom_new(h, name, NULL))
		rc = -ENOMEM;
	if (rc == 0) {
		struct fakebe_dom *d = fakebe_dom_find(h, name);

		d->def.cpus = d->def.max_cpus = 1;
		d->def.mem_kib = d->def.cur_kib = 1024 * 1024;
		fakebe_changed(h, name);
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_set_stats(const char *uri, const char *name, const char *txt)
{
	struct fakebe_dom *d;
	char *t = txt ? strdup(txt) : NULL;
	int rc = 0;

	if (txt && !t)
		return -ENOMEM;
	pthread_mutex_lock(&fakebe_st.lock);
	d = fakebe_ctl_dom(uri, name, NULL);
	if (!d) {
		rc = -ENOENT;
	} else {
		free(d->stats);
		d->stats = t;
		t = NULL;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	free(t);
	return rc;
}

int fakebe_add_image(const char *source, uint64_t vsize, const char *checksum)
{
	struct fakebe_image *im = calloc(1, sizeof(*im));

	if (!im || !(im->source = strdup(source)) ||
	    (checksum && !(im->checksum = strdup(checksum)))) {
		if (im)
			free(im->source);
		free(im);
		return -ENOMEM;
	}
	im->vsize = vsize;
	pthread_mutex_lock(&fakebe_st.lock);
	im->next = fakebe_st.images;
	fakebe_st.images = im;
	pthread_mutex_unlock(&fakebe_st.lock);
	return 0;
}

int fakebe_volume(const char *uri, const char *vol, uint64_t *capacity,
		  char *backing, size_t blen)
{
	const struct fakebe_host *h;
	const struct fakebe_vol *v = NULL;
	int rc = -ENOENT;

	pthread_mutex_lock(&fakebe_st.lock);
	h = fakebe_host_find(uri);
	for (v = h ? h->vols : NULL; v; v = v->next) {
		const char *base = strrchr(v->path, '/');

		if (!strcmp(v->path, vol) || (base && !strcmp(base + 1, vol)))
			break;
	}
	if (v) {
		if (capacity)
			*capacity = v->cap;
		if (backing && blen)
			snprintf(backing, blen, "%s",
				 v->backing ? v->backing : "");
		rc = 0;
	}
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}

int fakebe_domain_node(const char *uri, const char *name, char *node,
		       size_t len)
{
	struct fakebe_dom *d;
	int rc = 0;

	pthread_mutex_lock(&fakebe_st.lock);
	d = fakebe_ctl_dom(uri, name, NULL);
	if (!d)
		rc = -ENOENT;
	else
		snprintf(node, len, "%s", fakebe_cur(d)->node);
	pthread_mutex_unlock(&fakebe_st.lock);
	return rc;
}
