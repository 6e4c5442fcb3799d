/* The in-memory model every reader (fs, sync, dashboard) copies from.
 *
 * Locks, always taken in this order:
 *   lock   rwlock over the VMs and the tree-level fields
 *   qlock  the change queue; taken inside lock by every mutation
 *   wlock  the waiters' generation counter and condition variable
 *   flock  one flush at a time, so watchers see seq in order; taken
 *          holding no other lock
 * A condition variable cannot wait on an rwlock, hence wlock: a mutation
 * bumps gen under it and a waiter sleeps on it after sampling gen.
 *
 * A VM's refs counts the model's own reference plus core_model_ref's;
 * whoever drops the last one frees it, so removal needs no free list. */
#include "core/core.h"
#include "core/model_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MSG_MAX 1024

/* ---- lifetime ------------------------------------------------------- */

int core_model_new(struct core_model **out)
{
	struct core_model *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;
	int r = -ENOMEM;

	if (!m)
		goto out;
	pthread_rwlock_init(&m->lock, NULL);
	pthread_mutex_init(&m->qlock, NULL);
	pthread_mutex_init(&m->wlock, NULL);
	pthread_mutex_init(&m->flock, NULL);
	pthread_condattr_init(&ca);
	/* Timeouts must not jump with the wall clock. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wcond, &ca);
	pthread_condattr_destroy(&ca);
	m->version = 1;
	r = 0;
out:
	*out = m;
	return r;
}

static void free_vm(struct core_vm *vm)
{
	json_object_put(vm->spec_json);
	core_spec_free(&vm->spec);
	for (unsigned i = 0; i < CORE_EVENTS_KEEP; i++)
		free(vm->events[i]);
	free(vm->txt_status);
	free(vm->txt_spec);
	free(vm->txt_events);
	free(vm->txt_stats);
	free(vm);
}

void core_model_ref(struct core_model *m, struct core_vm *vm)
{
	__atomic_add_fetch(&vm->refs, 1, __ATOMIC_RELAXED);
}

void core_model_unref(struct core_model *m, struct core_vm *vm)
{
	if (vm && __atomic_sub_fetch(&vm->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free_vm(vm);
}

void core_model_free(struct core_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nvms; i++) {
		m->vms[i]->deleted = true;
		core_model_unref(m, m->vms[i]);
	}
	free(m->vms);
	free(m->slots);
	core_nodes_free(m);
	core_objs_free(m);
	free(m->q);
	free(m->w);
	pthread_rwlock_destroy(&m->lock);
	pthread_mutex_destroy(&m->qlock);
	pthread_mutex_destroy(&m->wlock);
	pthread_mutex_destroy(&m->flock);
	pthread_cond_destroy(&m->wcond);
	free(m);
}

void core_model_watch(struct core_model *m, core_watch_fn fn, void *arg)
{
	struct watcher *w;

	pthread_mutex_lock(&m->flock);
	w = realloc(m->w, (m->nw + 1) * sizeof(*w));
	if (w) {
		w[m->nw].fn = fn;
		w[m->nw].arg = arg;
		m->w = w;
		m->nw++;
	}
	pthread_mutex_unlock(&m->flock);
}

void core_model_on_event(struct core_model *m, core_event_fn fn, void *arg)
{
	core_model_wrlock(m);
	m->on_event = fn;
	m->on_event_arg = arg;
	core_model_unlock(m);
}

void core_model_unwatch(struct core_model *m, core_watch_fn fn, void *arg)
{
	pthread_mutex_lock(&m->flock);
	for (size_t i = 0; i < m->nw; i++) {
		if (m->w[i].fn == fn && m->w[i].arg == arg) {
			memmove(&m->w[i], &m->w[i + 1],
				(m->nw - i - 1) * sizeof(m->w[0]));
			m->nw--;
			break;
		}
	}
	pthread_mutex_unlock(&m->flock);
}

void core_model_rdlock(struct core_model *m)
{
	pthread_rwlock_rdlock(&m->lock);
}

void core_model_wrlock(struct core_model *m)
{
	pthread_rwlock_wrlock(&m->lock);
}

void core_model_unlock(struct core_model *m)
{
	pthread_rwlock_unlock(&m->lock);
}

/* ---- notifications -------------------------------------------------- */

static void wake(struct core_model *m)
{
	pthread_mutex_lock(&m->wlock);
	m->gen++;
	pthread_cond_broadcast(&m->wcond);
	pthread_mutex_unlock(&m->wlock);
}

static bool same_target(const struct change *c, const struct core_vm *vm)
{
	if (!vm)
		return c->tree;
	return !c->tree && c->slot == vm->slot && strcmp(c->name, vm->name) == 0;
}

static void push_change(struct core_model *m, const struct core_vm *vm,
			unsigned what)
{
	const unsigned life = CORE_CHG_ADDED | CORE_CHG_REMOVED;
	struct change *c = m->nq ? &m->q[m->nq - 1] : NULL;

	m->seq++;
	/* Merge bursts for one VM, but never across an add or a removal. */
	if (c && same_target(c, vm) && !((c->what | what) & life)) {
		c->what |= what;
		c->seq = m->seq;
		return;
	}
	if (m->nq == m->capq) {
		size_t cap = m->capq ? m->capq * 2 : 16;
		struct change *q = realloc(m->q, cap * sizeof(*q));

		if (!q)
			return;
		m->q = q;
		m->capq = cap;
	}
	c = &m->q[m->nq++];
	memset(c, 0, sizeof(*c));
	c->tree = !vm;
	c->slot = vm ? vm->slot : -1;
	if (vm)
		snprintf(c->name, sizeof(c->name), "%s", vm->name);
	c->what = what;
	c->seq = m->seq;
}

static void notify(struct core_model *m, const struct core_vm *vm,
		   unsigned what)
{
	pthread_mutex_lock(&m->qlock);
	push_change(m, vm, what);
	pthread_mutex_unlock(&m->qlock);
	if (what != CORE_CHG_STATS)
		wake(m);
}

void core_model_notify_tree(struct core_model *m, unsigned what)
{
	notify(m, NULL, what);
}

uint64_t core_model_flush(struct core_model *m)
{
	struct change *q;
	size_t nq;
	uint64_t last;

	pthread_mutex_lock(&m->flock);
	pthread_mutex_lock(&m->qlock);
	q = m->q;
	nq = m->nq;
	m->q = NULL;
	m->nq = m->capq = 0;
	pthread_mutex_unlock(&m->qlock);
	for (size_t i = 0; i < nq; i++) {
		for (size_t j = 0; j < m->nw; j++)
			m->w[j].fn(m->w[j].arg, q[i].tree ? NULL : q[i].name,
				   q[i].slot, q[i].what, q[i].seq);
		m->delivered = q[i].seq;
	}
	last = m->delivered;
	pthread_mutex_unlock(&m->flock);
	free(q);
	return last;
}

void core_model_wake(struct core_model *m)
{
	wake(m);
}

/* ---- rendering: a reader only ever copies these ---------------------- */

static void set_text(char **txt, size_t *len, char *s, size_t n)
{
	free(*txt);
	*txt = s;
	*len = n;
}

static int render_status(struct core_vm *vm)
{
	size_t cap = 1024;
	char *b = NULL, *nb;
	int n;

	for (;;) {
		nb = realloc(b, cap);
		if (!nb) {
			free(b);
			return -ENOMEM;
		}
		b = nb;
		n = core_status_render(&vm->st, vm->name, b, cap);
		if (n >= 0)
			break;
		cap *= 2;
	}
	set_text(&vm->txt_status, &vm->len_status, b, (size_t)n);
	return 0;
}

static int render_events(struct core_vm *vm)
{
	unsigned first = (vm->events_head + CORE_EVENTS_KEEP - vm->nevents) %
			 CORE_EVENTS_KEEP;
	size_t total = 0, o = 0;
	char *b;

	for (unsigned i = 0; i < vm->nevents; i++)
		total += strlen(vm->events[(first + i) % CORE_EVENTS_KEEP]) + 1;
	b = malloc(total + 1);
	if (!b)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->nevents; i++) {
		const char *e = vm->events[(first + i) % CORE_EVENTS_KEEP];
		size_t n = strlen(e);

		memcpy(b + o, e, n);
		o += n;
		b[o++] = '\n';
	}
	b[o] = '\0';
	set_text(&vm->txt_events, &vm->len_events, b, o);
	return 0;
}

/* Copies s into dst as one line: err and events are line oriented. */
static void one_line(char *dst, size_t len, const char *s)
{
	size_t n = 0;

	for (; s && *s && n + 1 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n' && s[1] == '\0')
			break;
		dst[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	if (len)
		dst[n] = '\0';
}

/* ---- lookups -------------------------------------------------------- */

/* Index of the first VM whose name is >= name. */
static size_t lower_bound(struct core_model *m, const char *name)
{
	size_t lo = 0, hi = m->nvms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(m->vms[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct core_vm *core_model_find(struct core_model *m, const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	i = lower_bound(m, name);
	if (i < m->nvms && strcmp(m->vms[i]->name, name) == 0)
		return m->vms[i];
	return NULL;
}

struct core_vm *core_model_slot(struct core_model *m, int slot)
{
	if (slot < 0 || (size_t)slot >= m->nslots)
		return NULL;
	return m->slots[slot];
}

int core_model_each(struct core_model *m,
		    int (*fn)(struct core_vm *vm, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nvms; i++) {
		int r = fn(m->vms[i], arg);

		if (r)
			return r;
	}
	return 0;
}

size_t core_model_count(struct core_model *m)
{
	return m->nvms;
}

const char *core_model_err(struct core_model *m)
{
	return m->err;
}

uint64_t core_model_version(struct core_model *m)
{
	return m->version;
}

/* ---- add and remove ------------------------------------------------- */

/* Makes room for one more VM and one more slot; nothing is committed. */
static int reserve(struct core_model *m)
{
	if (m->nvms == m->capvms) {
		size_t cap = m->capvms ? m->capvms * 2 : 64;
		struct core_vm **v = realloc(m->vms, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->vms = v;
		m->capvms = cap;
	}
	/* With the lowest free slot reused, nvms + 1 slots always suffice. */
	if (m->nslots <= m->nvms) {
		struct core_vm **s = realloc(m->slots,
					     m->capvms * sizeof(*s));

		if (!s)
			return -ENOMEM;
		for (size_t i = m->nslots; i < m->capvms; i++)
			s[i] = NULL;
		m->slots = s;
		m->nslots = m->capvms;
	}
	return 0;
}

/* The lowest free slot keeps inode numbers small. */
static int take_slot(struct core_model *m, struct core_vm *vm)
{
	size_t i = m->free_hint;

	while (i < m->nslots && m->slots[i])
		i++;
	m->slots[i] = vm;
	m->free_hint = i + 1;
	return (int)i;
}

static int render_new(struct core_vm *vm, char *err, size_t errlen)
{
	size_t n = 0;
	char *yaml = NULL;

	vm->txt_events = strdup("");
	vm->txt_stats = strdup("");
	if (!vm->txt_events || !vm->txt_stats || render_status(vm) < 0)
		goto nomem;
	if (core_yaml_emit(vm->spec_json, &yaml, &n) < 0) {
		snprintf(err, errlen, "spec: cannot be written as YAML "
			 "(invalid UTF-8?)");
		return -EINVAL;
	}
	set_text(&vm->txt_spec, &vm->len_spec, yaml, n);
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

static void fill_ids(struct core_vm *vm, const char *name, const char *ns,
		     const char *uid, const char *created)
{
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->ns, sizeof(vm->ns), "%s", ns && *ns ? ns : "default");
	if (uid && *uid)
		snprintf(vm->uid, sizeof(vm->uid), "%s", uid);
	else
		core_uuid(vm->uid);
	if (created && *created)
		snprintf(vm->created, sizeof(vm->created), "%s", created);
	else
		core_rfc3339(time(NULL), vm->created, sizeof(vm->created));
}

void core_model_set_priv(struct core_model *m, size_t vm_size,
			 size_t obj_size)
{
	/* Rounded so the area after the struct is aligned for any field. */
	m->vm_priv = (vm_size + 15) & ~(size_t)15;
	m->obj_priv = (obj_size + 15) & ~(size_t)15;
}

int core_model_add(struct core_model *m, const char *name, const char *ns,
		   const char *uid, const char *created, json_object *spec_json,
		   struct core_vm **out, char *err, size_t errlen)
{
	struct core_vm *vm = NULL;
	size_t at;
	int r;

	r = core_name_check(name, err, errlen);
	if (r < 0)
		goto out;
	if (core_model_find(m, name)) {
		snprintf(err, errlen, "vm %s already exists", name);
		r = -EEXIST;
		goto out;
	}
	r = -ENOMEM;
	vm = calloc(1, sizeof(*vm) + m->vm_priv);
	if (vm && m->vm_priv)
		vm->priv = vm + 1;
	if (!vm || reserve(m) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r = core_spec_from_json(spec_json, &vm->spec, err, errlen);
	if (r < 0)
		goto out;
	fill_ids(vm, name, ns, uid, created);
	core_status_init(&vm->st);
	vm->spec_json = spec_json;
	vm->spec_gen = 1;
	r = render_new(vm, err, errlen);
	if (r < 0) {
		vm->spec_json = NULL;
		goto out;
	}
	at = lower_bound(m, name);
	memmove(&m->vms[at + 1], &m->vms[at], (m->nvms - at) * sizeof(vm));
	m->vms[at] = vm;
	m->nvms++;
	vm->slot = take_slot(m, vm);
	vm->version = 1;
	vm->refs = 1;
	m->version++;
	notify(m, vm, CORE_CHG_ADDED);
	notify(m, NULL, CORE_CHG_ADDED);
	if (out)
		*out = vm;
	vm = NULL;
	r = 0;
out:
	if (vm)
		free_vm(vm);
	return r;
}

void core_model_remove(struct core_model *m, struct core_vm *vm)
{
	size_t at = lower_bound(m, vm->name);

	if (at >= m->nvms || m->vms[at] != vm)
		return;
	memmove(&m->vms[at], &m->vms[at + 1],
		(m->nvms - at - 1) * sizeof(vm));
	m->nvms--;
	m->slots[vm->slot] = NULL;
	if ((size_t)vm->slot < m->free_hint)
		m->free_hint = (size_t)vm->slot;
	vm->deleted = true;
	vm->version++;
	m->version++;
	notify(m, vm, CORE_CHG_REMOVED);
	notify(m, NULL, CORE_CHG_REMOVED);
	core_model_unref(m, vm);
}

/* ---- mutations ------------------------------------------------------ */

int core_model_set_spec(struct core_model *m, struct core_vm *vm,
			json_object *spec_json, char *err, size_t errlen)
{
	struct core_spec s;
	char *yaml = NULL;
	size_t n = 0;
	int r;

	r = core_spec_from_json(spec_json, &s, err, errlen);
	if (r < 0)
		return r;
	r = core_yaml_emit(spec_json, &yaml, &n);
	if (r < 0) {
		core_spec_free(&s);
		snprintf(err, errlen, "spec: cannot be written as YAML "
			 "(invalid UTF-8?)");
		return r == -ENOMEM ? r : -EINVAL;
	}
	core_spec_free(&vm->spec);
	vm->spec = s;
	/* Callers may edit vm->spec_json in place and pass it back. */
	if (vm->spec_json != spec_json)
		json_object_put(vm->spec_json);
	vm->spec_json = spec_json;
	set_text(&vm->txt_spec, &vm->len_spec, yaml, n);
	vm->spec_gen++;
	vm->version++;
	notify(m, vm, CORE_CHG_SPEC);
	return 0;
}

void core_model_status_changed(struct core_model *m, struct core_vm *vm)
{
	/* On ENOMEM the old text stays: stale beats empty. */
	render_status(vm);
	vm->version++;
	notify(m, vm, CORE_CHG_STATUS);
}

void core_model_set_err(struct core_model *m, struct core_vm *vm,
			const char *err)
{
	if (!vm) {
		one_line(m->err, sizeof(m->err), err);
		m->version++;
		notify(m, NULL, CORE_CHG_ERR);
		return;
	}
	one_line(vm->err, sizeof(vm->err), err);
	vm->version++;
	notify(m, vm, CORE_CHG_ERR);
}

void core_model_fail(struct core_model *m, struct core_vm *vm,
		     const char *msg)
{
	core_model_set_err(m, vm, msg);
	if (vm)
		core_model_event(m, vm, "Error", "%s", msg ? msg : "");
}

void core_model_set_stats(struct core_model *m, struct core_vm *vm,
			  const char *txt, size_t len)
{
	char *b = malloc(len + 1);

	if (!b)
		return;
	memcpy(b, txt, len);
	b[len] = '\0';
	set_text(&vm->txt_stats, &vm->len_stats, b, len);
	notify(m, vm, CORE_CHG_STATS);
}

void core_model_event(struct core_model *m, struct core_vm *vm,
		      const char *reason, const char *fmt, ...)
{
	char msg[EVENT_MSG_MAX], line[EVENT_MSG_MAX], why[64], ts[32];
	time_t now = time(NULL);
	unsigned slot;
	va_list ap;
	char *e;

	if (!vm)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	one_line(msg, sizeof(msg), line);
	one_line(why, sizeof(why), reason && *reason ? reason : "Event");
	core_rfc3339(now, ts, sizeof(ts));
	if (asprintf(&e, "%s %s%s%s", ts, why, msg[0] ? " " : "", msg) < 0)
		return;
	if (m->on_event)
		m->on_event(m->on_event_arg, vm, now, why, msg);
	slot = vm->events_head;
	free(vm->events[slot]);
	vm->events[slot] = e;
	vm->events_head = (slot + 1) % CORE_EVENTS_KEEP;
	if (vm->nevents < CORE_EVENTS_KEEP)
		vm->nevents++;
	render_events(vm);
	vm->version++;
	notify(m, vm, CORE_CHG_EVENTS);
}

/* ---- waiting -------------------------------------------------------- */

static void deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* 0 changed, 1 unchanged, -ENOENT gone. */
static int check_version(struct core_model *m, const char *name,
			 uint64_t seen)
{
	struct core_vm *vm;
	int r;

	pthread_rwlock_rdlock(&m->lock);
	vm = core_model_find(m, name);
	r = !vm ? -ENOENT : vm->version != seen ? 0 : 1;
	pthread_rwlock_unlock(&m->lock);
	return r;
}

/* The flag is set by another thread (fs's interrupt handler): read it as
 * an atomic so a setter using __atomic_store_n is race free. */
static bool cancelled(volatile bool *cancel)
{
	return cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE);
}

/* Block until check(m, ctx) is <= 0 (0 changed, -errno gone); 1 means
 * unchanged.  Sample gen first: a change after the check bumps it. */
int core_model_wait_until(struct core_model *m,
			  int (*check)(struct core_model *m, void *ctx),
			  void *ctx, volatile bool *cancel, int timeout_ms)
{
	struct timespec dl;
	uint64_t gen;
	int r;

	if (timeout_ms >= 0)
		deadline(&dl, timeout_ms);
	for (;;) {
		if (cancelled(cancel))
			return -EINTR;
		pthread_mutex_lock(&m->wlock);
		gen = m->gen;
		pthread_mutex_unlock(&m->wlock);
		r = check(m, ctx);
		if (r <= 0)
			return r;
		pthread_mutex_lock(&m->wlock);
		r = 0;
		while (m->gen == gen && r == 0 && !cancelled(cancel))
			r = timeout_ms < 0 ?
				    pthread_cond_wait(&m->wcond, &m->wlock) :
				    pthread_cond_timedwait(&m->wcond, &m->wlock,
							   &dl);
		pthread_mutex_unlock(&m->wlock);
		if (r == ETIMEDOUT)
			return check(m, ctx) == 0 ? 0 : -ETIMEDOUT;
	}
}

struct vm_seen {
	const char *name;
	uint64_t seen;
};

static int vm_check(struct core_model *m, void *ctx)
{
	struct vm_seen *v = ctx;

	return check_version(m, v->name, v->seen);
}

int core_model_wait(struct core_model *m, const char *name, uint64_t seen,
		    volatile bool *cancel, int timeout_ms)
{
	struct vm_seen v = { name, seen };

	return core_model_wait_until(m, vm_check, &v, cancel, timeout_ms);
}

uint64_t core_model_record(struct core_model *m, const char *name, int rc,
			   const char *err)
{
	struct core_vm *vm = NULL;
	bool tree = !name || !*name;

	core_model_wrlock(m);
	if (!tree)
		vm = core_model_find(m, name);
	if (rc < 0)
		core_model_fail(m, vm, err);
	else if (vm && vm->err[0])
		core_model_set_err(m, vm, "");
	else if (tree && *core_model_err(m))
		core_model_set_err(m, NULL, "");
	core_model_unlock(m);
	return core_model_flush(m);
}
