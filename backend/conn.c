/* The libvirt connection: event loop, errors, reconnection, accelerator
 * choice and lifecycle events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/priv.h"

/* ---- process-wide set-up ------------------------------------------- */

static pthread_once_t ev_once = PTHREAD_ONCE_INIT;
static int ev_status;

/* libvirt prints every error to stderr by default; ours go to err. */
static void quiet(void *arg, virErrorPtr e)
{
}

/* Keepalive, close callbacks and domain events are all delivered by the
 * default event loop, which must be registered before the first
 * connection and then run forever: libvirt offers no way to unregister
 * it, and frees of closed connections' handles are deferred to it. */
static void *ev_loop(void *arg)
{
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			usleep(100 * 1000);
	return NULL;
}

static void ev_init(void)
{
	pthread_t t;

	virSetErrorFunc(NULL, quiet);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		ev_status = -EIO;
		return;
	}
	if (pthread_create(&t, NULL, ev_loop, NULL) != 0) {
		ev_status = -EAGAIN;
		return;
	}
	pthread_detach(t);
}

/* ---- errors --------------------------------------------------------- */

static int map_code(const virError *e)
{
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
	case VIR_ERR_NO_STORAGE_VOL:
	case VIR_ERR_NO_STORAGE_POOL:
	case VIR_ERR_NO_NETWORK:
	case VIR_ERR_NO_DOMAIN_METADATA:
		return -ENOENT;
	case VIR_ERR_OPERATION_INVALID:
		return -EBUSY;
	case VIR_ERR_DOM_EXIST:
	case VIR_ERR_STORAGE_VOL_EXIST:
		return -EEXIST;
	case VIR_ERR_OPERATION_TIMEOUT:
		return -ETIMEDOUT;
	case VIR_ERR_NO_SUPPORT:
		return -EOPNOTSUPP;
	}
	/* libvirt has no code for a full disk; qemu-img and the storage
	 * driver pass strerror(ENOSPC) through in the message. */
	if (e->message && strstr(e->message, "No space left on device"))
		return -ENOSPC;
	return -EIO;
}

int be_err(char *err, size_t errlen, const char *verb, const char *name)
{
	virErrorPtr e = virGetLastError();
	char msg[CORE_ERR_MAX];
	char *nl;

	if (!e)
		return core_errf(err, errlen, -EIO, "%s %s: libvirt failed",
			       verb, name ? name : "");
	snprintf(msg, sizeof(msg), "%s", e->message ? e->message : "error");
	/* err is one line; QEMU's messages carry their log's newlines. */
	while ((nl = strpbrk(msg, "\r\n")))
		*nl = ' ';
	if (name && *name)
		core_errf(err, errlen, 0, "%s %s: %s", verb, name, msg);
	else
		core_errf(err, errlen, 0, "%s: %s", verb, msg);
	return map_code(e);
}

bool be_name_ok(const char *name)
{
	size_t i, n = name ? strlen(name) : 0;

	if (n == 0 || n > BE_NAME_MAX || name[0] == '.' || name[0] == '-')
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

/* ---- events --------------------------------------------------------- */

static void on_domain_event(virDomainPtr d, enum core_phase now, void *arg)
{
	struct be_conn *c = arg;

	if (c->watch_fn)
		c->watch_fn(c->watch_arg, virDomainGetName(d), now);
}

/* The phase a lifecycle event leaves the domain in, as be_info's
 * phase_of would read it; Unknown where it does not say. */
static enum core_phase event_phase(int ev, int detail)
{
	switch (ev) {
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		return CORE_PHASE_RUNNING;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		return CORE_PHASE_PAUSED;
	case VIR_DOMAIN_EVENT_STOPPED:
		return detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ?
		       CORE_PHASE_FAILED :
		       detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ?
		       CORE_PHASE_UNKNOWN : CORE_PHASE_STOPPED;
	default:
		return CORE_PHASE_UNKNOWN;
	}
}

static void on_life(virConnectPtr vc, virDomainPtr d, int ev, int detail,
		    void *arg)
{
	on_domain_event(d, event_phase(ev, detail), arg);
}

/* The agent's state is in be_info, not in a phase. */
static void on_agent(virConnectPtr vc, virDomainPtr d, int state, int reason,
		     void *arg)
{
	on_domain_event(d, CORE_PHASE_UNKNOWN, arg);
}

/* c->lock held. */
static int events_register(struct be_conn *c, char *err, size_t errlen)
{
	c->cb_life = virConnectDomainEventRegisterAny(c->vc, NULL,
		VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_life), c, NULL);
	if (c->cb_life < 0)
		return be_err(err, errlen, "watch", NULL);
	c->cb_agent = virConnectDomainEventRegisterAny(c->vc, NULL,
		VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_agent), c, NULL);
	if (c->cb_agent < 0)
		return be_err(err, errlen, "watch", NULL);
	return 0;
}

/* c->lock held.  Failures are ignored: on a dead connection the
 * deregistration cannot reach libvirtd, but the local part is done. */
static void events_unregister(struct be_conn *c)
{
	if (c->cb_life >= 0)
		virConnectDomainEventDeregisterAny(c->vc, c->cb_life);
	if (c->cb_agent >= 0)
		virConnectDomainEventDeregisterAny(c->vc, c->cb_agent);
	c->cb_life = c->cb_agent = -1;
	virResetLastError();
}

/* ---- connecting ----------------------------------------------------- */

static void on_close(virConnectPtr vc, int reason, void *arg)
{
	struct be_conn *c = arg;

	atomic_store(&c->broken, true);
}

/* c->lock held. */
static void drop(struct be_conn *c)
{
	if (!c->vc)
		return;
	events_unregister(c);
	virConnectUnregisterCloseCallback(c->vc, on_close);
	virResetLastError();
	virConnectClose(c->vc);
	c->vc = NULL;
}

/* c->lock held. */
static int dial(struct be_conn *c, char *err, size_t errlen)
{
	c->vc = virConnectOpen(c->uri);
	if (!c->vc) {
		virErrorPtr e = virGetLastError();

		return core_errf(err, errlen, -EIO,
			       "libvirt at %s does not answer: %s", c->uri,
			       e && e->message ? e->message : "unknown error");
	}
	atomic_store(&c->broken, false);
	/* 5 s x 3 probes: a hung libvirtd is noticed within ~20 s. */
	virConnectSetKeepAlive(c->vc, 5, 3);
	virResetLastError();
	if (virConnectRegisterCloseCallback(c->vc, on_close, c, NULL) < 0)
		virResetLastError();
	return 0;
}

virConnectPtr be_conn_get(struct be_conn *c, char *err, size_t errlen)
{
	virConnectPtr vc = NULL;
	bool again = false;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (!c->vc || atomic_load(&c->broken) ||
	    virConnectIsAlive(c->vc) != 1) {
		bool watching = c->watch_fn != NULL;

		drop(c);
		rc = dial(c, err, errlen);
		/* A restarted libvirtd may have lost a transient pool state. */
		if (rc == 0)
			rc = be_pool_ensure(c, c->vc, err, errlen);
		if (rc == 0 && watching)
			rc = events_register(c, err, errlen);
		again = rc == 0 && watching;
	}
	if (rc == 0) {
		vc = c->vc;
		virConnectRef(vc);
	}
	pthread_mutex_unlock(&c->lock);
	/* Events may have been missed while disconnected. */
	if (again)
		c->watch_fn(c->watch_arg, NULL, CORE_PHASE_UNKNOWN);
	return vc;
}

int be_run(struct be_conn *c, be_op_fn op, void *ctx, char *err,
	   size_t errlen)
{
	int attempt, rc = -EIO;

	for (attempt = 0; attempt < 2; attempt++) {
		virConnectPtr vc = be_conn_get(c, err, errlen);
		bool lost;

		if (!vc)
			return -EIO;
		rc = op(c, vc, ctx, err, errlen);
		lost = rc == -EIO && virConnectIsAlive(vc) != 1;
		if (lost) {
			pthread_mutex_lock(&c->lock);
			if (c->vc == vc)
				atomic_store(&c->broken, true);
			pthread_mutex_unlock(&c->lock);
		}
		virConnectClose(vc);
		if (!lost)
			break;
	}
	return rc;
}

/* libvirt lists <domain type='kvm'/> in the capabilities only when its
 * QEMU user can open /dev/kvm, which is the test that matters. */
static int pick_accel(struct be_conn *c, enum be_accel want, char *err,
		      size_t errlen)
{
	char *caps;
	bool usable;

	if (want == BE_ACCEL_TCG) {
		c->kvm = false;
		return 0;
	}
	caps = virConnectGetCapabilities(c->vc);
	if (!caps)
		return be_err(err, errlen, "capabilities", NULL);
	usable = access("/dev/kvm", F_OK) == 0 &&
		 strstr(caps, "<domain type='kvm'") != NULL;
	free(caps);
	if (want == BE_ACCEL_KVM && !usable)
		return core_errf(err, errlen, -EOPNOTSUPP,
			       "kvm requested but /dev/kvm is not usable by "
			       "libvirt's qemu (see scripts/libvirt-up.sh)");
	c->kvm = usable;
	return 0;
}

/* Pool "<pool_name>-<class>" for each class. */
static int classes_init(struct be_conn *c, const struct be_config *cfg)
{
	if (cfg->nclasses > BE_CLASSES_MAX)
		return -E2BIG;
	for (size_t i = 0; i < cfg->nclasses; i++) {
		struct be_pool *p = &c->classes[c->nclasses++];

		if (asprintf(&p->name, "%s-%s", c->pool_name,
			     cfg->classes[i].name) < 0)
			p->name = NULL;
		p->klass = strdup(cfg->classes[i].name);
		p->dir = strdup(cfg->classes[i].dir);
		p->shared = cfg->classes[i].shared;
		if (!p->name || !p->klass || !p->dir)
			return -ENOMEM;
	}
	return 0;
}

static int conn_init(struct be_conn *c, const struct be_config *cfg)
{
	c->cb_life = c->cb_agent = -1;
	c->uri = strdup(cfg->uri ? cfg->uri : "qemu:///system");
	c->pool_name = strdup(cfg->pool_name && *cfg->pool_name ?
			      cfg->pool_name : "hypersdk");
	c->pool_dir = strdup(cfg->pool_dir ? cfg->pool_dir :
			     "/var/lib/hypersdk/images");
	c->node = strdup(cfg->node ? cfg->node : "");
	c->kernel_dir = cfg->kernel_dir ? strdup(cfg->kernel_dir) : NULL;
	if (cfg->kernel_dir && !c->kernel_dir)
		return -ENOMEM;
	if (!c->uri || !c->pool_name || !c->pool_dir || !c->node)
		return -ENOMEM;
	return classes_init(c, cfg);
}

int be_open(const struct be_config *cfg, struct be_conn **out, char *err,
	    size_t errlen)
{
	struct be_conn *c;
	int rc;

	*out = NULL;
	pthread_once(&ev_once, ev_init);
	if (ev_status < 0)
		return core_errf(err, errlen, ev_status,
			       "cannot start libvirt's event loop");
	c = calloc(1, sizeof(*c));
	if (!c)
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	}
	rc = conn_init(c, cfg);
	if (rc < 0) {
		core_errf(err, errlen, rc, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	rc = dial(c, err, errlen);
	if (rc == 0)
		rc = pick_accel(c, cfg->accel, err, errlen);
	if (rc == 0)
		rc = be_pool_ensure(c, c->vc, err, errlen);
	pthread_mutex_unlock(&c->lock);
out:
	if (rc < 0) {
		be_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void be_close(struct be_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	drop(c);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	free(c->uri);
	free(c->pool_name);
	free(c->pool_dir);
	for (size_t i = 0; i < c->nclasses; i++) {
		free(c->classes[i].name);
		free(c->classes[i].klass);
		free(c->classes[i].dir);
	}
	free(c->kernel_dir);
	free(c->node);
	free(c->owned);
	be_import_free(c->imp);
	free(c);
}

const char *be_accel_name(const struct be_conn *c)
{
	return c->kvm ? "kvm" : "tcg";
}

bool be_conn_alive(struct be_conn *c)
{
	bool alive;

	pthread_mutex_lock(&c->lock);
	alive = c->vc && !atomic_load(&c->broken) &&
		virConnectIsAlive(c->vc) == 1;
	pthread_mutex_unlock(&c->lock);
	return alive;
}

int be_watch(struct be_conn *c, be_watch_fn fn, void *arg)
{
	char err[CORE_ERR_MAX];
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (c->watch_fn) {
		rc = -EBUSY;
		goto out;
	}
	c->watch_fn = fn;
	c->watch_arg = arg;
	/* A broken connection registers on the next be_conn_get. */
	if (c->vc && !atomic_load(&c->broken))
		rc = events_register(c, err, sizeof(err));
	if (rc < 0) {
		events_unregister(c);
		c->watch_fn = NULL;
		c->watch_arg = NULL;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}
