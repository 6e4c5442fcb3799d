/* Peer-to-peer migration: our libvirtd talks to the target's directly,
 * so the daemon needs no connection (or credentials) to the target.  The
 * domain's metadata names its node; the XML sent along already names
 * the target, so the VM is the target node's from its first moment
 * there (no second step that could fail after the move). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/priv.h"

/* The XML with our metadata's <node> set to node. */
static char *with_node(char *xml, const char *node)
{
	const char *end = xml + strlen(xml);
	const char *vm = be_xml_next(xml, end, "vm");
	const char *vend = vm ? be_xml_end(vm, end, "vm") : NULL;
	const char *el = vm ? be_xml_next(vm, vend, "node") : NULL;
	const char *gt, *close;
	struct be_sb b = { 0 };

	if (!el || !(gt = strchr(el, '>')))
		return NULL;
	if (gt[-1] == '/') {
		/* <hypersdk:node/>: rewrite as an element with content. */
		be_sb_printf(&b, "%.*s>", (int)(gt - 1 - xml), xml);
		be_sb_esc(&b, node);
		be_sb_printf(&b, "</%.*s>%s", (int)strcspn(el + 1, " /"),
			     el + 1, gt + 1);
		return be_sb_take(&b);
	}
	close = strstr(gt, "</");
	if (!close)
		return NULL;
	be_sb_printf(&b, "%.*s", (int)(gt + 1 - xml), xml);
	be_sb_esc(&b, node);
	be_sb_printf(&b, "%s", close);
	return be_sb_take(&b);
}

static char *xml_for(virDomainPtr d, unsigned flags, const char *node)
{
	char *xml = virDomainGetXMLDesc(d, flags | VIR_DOMAIN_XML_MIGRATABLE |
					VIR_DOMAIN_XML_SECURE);
	char *out;

	if (!xml)
		return NULL;
	out = with_node(xml, node);
	free(xml);
	return out;
}

/* ---- progress ------------------------------------------------------- */

struct mwatch {
	pthread_t t;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, aborted, postcopy_started;
	virDomainPtr d;
	const struct be_progress *p;
	bool postcopy;
};

static void mwatch_poll(struct mwatch *w)
{
	virTypedParameterPtr par = NULL;
	unsigned long long done = 0, left = 0, iter = 0;
	int type, n = 0;

	if (virDomainGetJobStats(w->d, &type, &par, &n, 0) < 0) {
		virResetLastError();
		return;
	}
	virTypedParamsGetULLong(par, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &done);
	virTypedParamsGetULLong(par, n, VIR_DOMAIN_JOB_DATA_REMAINING, &left);
	virTypedParamsGetULLong(par, n, VIR_DOMAIN_JOB_MEMORY_ITERATION,
				&iter);
	virTypedParamsFree(par, n);
	if (type != VIR_DOMAIN_JOB_NONE && w->p && w->p->fn)
		w->p->fn(w->p->arg, done + left > 0 ?
			 (int)(done * 99 / (done + left)) : 0, "migrating");
	/* Until an abort is accepted: before the job starts there is
	 * nothing to abort yet. */
	if (w->p && w->p->cancel && *w->p->cancel && !w->aborted) {
		w->aborted = virDomainAbortJob(w->d) == 0;
		virResetLastError();
	}
	/* After one full pass of memory the rest is what the guest dirties;
	 * post-copy then moves the guest and fetches pages on demand. */
	if (w->postcopy && !w->postcopy_started && iter >= 2) {
		w->postcopy_started = true;
		if (virDomainMigrateStartPostCopy(w->d, 0) < 0)
			virResetLastError();
	}
}

static void *mwatch_run(void *arg)
{
	struct mwatch *w = arg;
	struct timespec dl;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		pthread_mutex_unlock(&w->lock);
		mwatch_poll(w);
		pthread_mutex_lock(&w->lock);
		/* Often: an idle guest moves in well under a second, and a
		 * cancel must reach the job while it is there. */
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 50 * 1000 * 1000;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (!w->stop)
			pthread_cond_timedwait(&w->cond, &w->lock, &dl);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static bool mwatch_start(struct mwatch *w)
{
	if (pthread_mutex_init(&w->lock, NULL) != 0)
		return false;
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->t, NULL, mwatch_run, w) == 0)
		return true;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	return false;
}

static void mwatch_stop(struct mwatch *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->t, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

/* ---- which disks move ------------------------------------------------ */

/* A disk of a local folder: copied to "to" on the target, or (an ISO,
 * which libvirt does not copy) ejected there: to NULL. */
struct mig_disk {
	char dev[32];
	char *from, *to;
};

struct mig_plan {
	struct mig_disk *v;
	size_t n, ncopy;
};

struct mig_ctx {
	const char *vm;
	const struct be_migrate_opts *o;
	const struct be_progress *p;
	struct mig_plan plan;
};

static void plan_free(struct mig_plan *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		free(pl->v[i].from);
		free(pl->v[i].to);
	}
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
}

/* The class whose folder dir is ("" the node's pool), or NULL. */
static const char *class_of(const struct be_conn *c, const char *dir,
			    size_t len, bool *shared)
{
	*shared = false;
	if (strlen(c->pool_dir) == len && !strncmp(c->pool_dir, dir, len))
		return "";
	for (size_t i = 0; i < c->nclasses; i++)
		if (strlen(c->classes[i].dir) == len &&
		    !strncmp(c->classes[i].dir, dir, len)) {
			*shared = c->classes[i].shared;
			return c->classes[i].klass;
		}
	return NULL;
}

static const char *dest_dir(const struct be_migrate_opts *o, const char *k)
{
	for (size_t i = 0; i < o->ndest_dirs; i++)
		if (!strcmp(o->dest_dirs[i].klass, k))
			return o->dest_dirs[i].dir;
	return NULL;
}

static int plan_add(struct mig_plan *pl, const char *dev, const char *from,
		    const char *dir, const char *base)
{
	struct mig_disk *nv = realloc(pl->v, (pl->n + 1) * sizeof(*nv));
	struct mig_disk *d;

	if (!nv)
		return -ENOMEM;
	pl->v = nv;
	d = &pl->v[pl->n];
	memset(d, 0, sizeof(*d));
	snprintf(d->dev, sizeof(d->dev), "%s", dev);
	d->from = strdup(from);
	if (dir && asprintf(&d->to, "%s/%s", dir, base) < 0)
		d->to = NULL;
	if (!d->from || (dir && !d->to)) {
		free(d->from);
		free(d->to);
		return -ENOMEM;
	}
	pl->n++;
	if (dir)
		pl->ncopy++;
	return 0;
}

/* One <disk> of the domain: what becomes of it on the target. */
static int plan_disk(const struct be_conn *c, const struct mig_ctx *x,
		     const char *el, const char *dend, struct mig_plan *pl,
		     char *err, size_t errlen)
{
	const char *src = be_xml_next(el, dend, "source");
	const char *tgt = be_xml_next(el, dend, "target");
	char file[PATH_MAX], dev[32], kind[16];
	const char *slash, *k, *to;
	bool shared;

	if (!src || !tgt || !be_xml_attr(src, "file", file, sizeof(file)) ||
	    !be_xml_attr(tgt, "dev", dev, sizeof(dev)) ||
	    !(slash = strrchr(file, '/')))
		return 0;
	k = class_of(c, file, (size_t)(slash - file), &shared);
	if (!k || shared)
		return 0;       /* not ours, or the target sees it */
	to = dest_dir(x->o, k);
	if (!to)
		return core_errf(err, errlen, -EINVAL, "migrate %s: node %s has "
			       "no folder for %s%s (its Lease names none)",
			       x->vm, x->o->dest_node, *k ? "storage class " :
			       "the node's pool", k);
	if (!be_xml_attr(el, "device", kind, sizeof(kind)))
		snprintf(kind, sizeof(kind), "disk");
	return plan_add(pl, dev, file, strcmp(kind, "disk") ? NULL : to,
			slash + 1) < 0 ? core_errf(err, errlen, -ENOMEM,
						 "migrate %s: out of memory",
						 x->vm) : 0;
}

static int plan_disks(const struct be_conn *c, const struct mig_ctx *x,
		      const char *xml, struct mig_plan *pl, char *err,
		      size_t errlen)
{
	const char *end = xml + strlen(xml), *el = xml, *dend;
	int rc = 0;

	if (!x->o->dest_dirs)
		return 0;
	while (rc == 0 && (el = be_xml_next(el, end, "disk"))) {
		dend = be_xml_end(el, end, "disk");
		rc = plan_disk(c, x, el, dend, pl, err, errlen);
		el = dend;
	}
	if (rc == 0 && pl->ncopy && x->o->offline)
		rc = core_errf(err, errlen, -EINVAL, "migrate %s: an offline "
			     "migration copies no disk, and %zu disk(s) are on "
			     "this node's own storage (start the VM first, or "
			     "put its disks on a shared storage class)", x->vm,
			     pl->ncopy);
	return rc;
}

/* The XML with each planned disk's source moved (or, an ISO, gone). */
static char *replan_xml(const char *xml, const struct mig_plan *pl)
{
	const char *end = xml + strlen(xml), *at = xml, *el = xml;
	struct be_sb b = { 0 };
	char file[PATH_MAX];

	while ((el = be_xml_next(el, end, "disk"))) {
		const char *dend = be_xml_end(el, end, "disk");
		const char *src = be_xml_next(el, dend, "source");
		const struct mig_disk *d = NULL;

		for (size_t i = 0; src && !d && i < pl->n; i++)
			if (be_xml_attr(src, "file", file, sizeof(file)) &&
			    !strcmp(file, pl->v[i].from))
				d = &pl->v[i];
		if (d) {
			be_sb_printf(&b, "%.*s", (int)(src - at), at);
			if (d->to) {
				be_sb_printf(&b, "<source file='");
				be_sb_esc(&b, d->to);
				be_sb_printf(&b, "'/>");
			}
			at = be_xml_end(src, dend, "source");
		}
		el = dend;
	}
	be_sb_printf(&b, "%s", at);
	return be_sb_take(&b);
}

/* After the move: the copies left here are stale; the target has its own. */
static void drop_copied(virConnectPtr vc, const struct mig_plan *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		virStorageVolPtr v;

		if (pl->v[i].to && !strcmp(pl->v[i].to, pl->v[i].from))
			continue;       /* the same path: maybe the same file */
		v = virStorageVolLookupByPath(vc, pl->v[i].from);
		if (v) {
			virStorageVolDelete(v, 0);
			virStorageVolFree(v);
		}
	}
}

/* ---- the migration ------------------------------------------------- */

/* Consumes xml. */
static char *replanned(char *xml, const struct mig_plan *pl)
{
	char *out = replan_xml(xml, pl);

	free(xml);
	return out;
}

/* A target reached over libvirt's TLS transport gets the guest's memory
 * (and, copying storage, its disks) over TLS as well: the stream is as
 * private as the control connection.  QEMU on both nodes then needs
 * the certificates of qemu.conf's migrate_tls_x509_cert_dir. */
static bool uri_is_tls(const char *uri)
{
	return strncmp(uri, "qemu+tls://", 11) == 0;
}

static unsigned mig_flags(const struct mig_ctx *x)
{
	const struct be_migrate_opts *o = x->o;
	unsigned f = VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
		     VIR_MIGRATE_UNDEFINE_SOURCE;

	if (o->offline)
		return f | VIR_MIGRATE_OFFLINE;
	/* Without LIVE, QEMU pauses the guest first and resumes it on the
	 * target: one pass over memory, nothing dirtied meanwhile. */
	if (!o->nonlive)
		f |= VIR_MIGRATE_LIVE;
	if (o->autoconverge)
		f |= VIR_MIGRATE_AUTO_CONVERGE;
	if (o->postcopy)
		f |= VIR_MIGRATE_POSTCOPY;
	/* Shared storage in a plain folder (not NFS, cache != none) makes
	 * libvirt refuse as "unsafe"; both nodes see the same files here,
	 * and QEMU hands the disks over with its own locking.  Copying
	 * some disks, the others (on shared classes) are not listed in
	 * MIGRATE_DISKS and stay. */
	if (x->plan.ncopy || (o->copy_storage && !o->dest_dirs))
		f |= VIR_MIGRATE_NON_SHARED_DISK;
	else
		f |= VIR_MIGRATE_UNSAFE;
	if (uri_is_tls(o->dest_uri))
		f |= VIR_MIGRATE_TLS;
	return f;
}

static int mig_params(virDomainPtr d, const struct mig_ctx *x,
		      virTypedParameterPtr *par, int *n, int *max)
{
	const struct be_migrate_opts *o = x->o;
	char *dx = NULL, *px = NULL;
	int rc = -ENOMEM;

	/* Offline, libvirt defines the target from DEST_XML and ignores
	 * PERSIST_XML; live, DEST_XML is the running guest's. */
	px = xml_for(d, VIR_DOMAIN_XML_INACTIVE, o->dest_node);
	dx = xml_for(d, o->offline ? VIR_DOMAIN_XML_INACTIVE : 0, o->dest_node);
	if (!px || !dx)
		goto out;
	if (x->plan.n && (!(px = replanned(px, &x->plan)) ||
			  !(dx = replanned(dx, &x->plan))))
		goto out;
	for (size_t i = 0; i < x->plan.n; i++)
		if (x->plan.v[i].to && virTypedParamsAddString(par, n, max,
				VIR_MIGRATE_PARAM_MIGRATE_DISKS,
				x->plan.v[i].dev) < 0)
			goto out;
	if (virTypedParamsAddString(par, n, max, VIR_MIGRATE_PARAM_PERSIST_XML,
				    px) < 0 ||
	    virTypedParamsAddString(par, n, max, VIR_MIGRATE_PARAM_DEST_XML,
				    dx) < 0)
		goto out;
	if (o->migrate_uri && !o->offline &&
	    virTypedParamsAddString(par, n, max, VIR_MIGRATE_PARAM_URI,
				    o->migrate_uri) < 0)
		goto out;
	/* libvirt's unit is MiB/s; anything set is at least 1. */
	if (o->bandwidth && virTypedParamsAddULLong(par, n, max,
			VIR_MIGRATE_PARAM_BANDWIDTH,
			o->bandwidth / 8 / 1048576 ? o->bandwidth / 8 / 1048576
						   : 1) < 0)
		goto out;
	rc = 0;
out:
	free(dx);
	free(px);
	return rc;
}

static int mig_run(virDomainPtr d, const struct mig_ctx *x,
		   virTypedParameterPtr par, int n, char *err, size_t errlen)
{
	struct mwatch w = { .d = d, .p = x->p, .postcopy = x->o->postcopy };
	bool watching = !x->o->offline && mwatch_start(&w);
	int rc = 0;

	if (virDomainMigrateToURI3(d, x->o->dest_uri, par, (unsigned)n,
				   mig_flags(x)) < 0)
		rc = be_err(err, errlen, "migrate", x->vm);
	/* QEMU needs userfaultfd for post-copy; containers often lack it. */
	if (rc < 0 && strstr(err, "Postcopy is not supported"))
		rc = core_errf(err, errlen, -EOPNOTSUPP, "migrate %s: post-copy "
			     "is not supported on this host (QEMU: no "
			     "userfaultfd); migrate without postcopy", x->vm);
	if (watching)
		mwatch_stop(&w);
	if (rc < 0 && (w.aborted || (x->p && x->p->cancel && *x->p->cancel)))
		rc = core_errf(err, errlen, -ECANCELED, "migrate %s: cancelled; "
			     "it keeps running here", x->vm);
	return rc;
}

static int mig_op(struct be_conn *c, virConnectPtr vc, void *arg,
		  char *err, size_t errlen)
{
	struct mig_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	virTypedParameterPtr par = NULL;
	int n = 0, max = 0, rc;
	char *xml = NULL;

	if (!d)
		return be_err(err, errlen, "migrate", x->vm);
	rc = be_dom_ours(c, d, NULL, NULL, NULL);
	if (rc != 1) {
		rc = rc < 0 ? be_err(err, errlen, "migrate", x->vm)
			    : core_errf(err, errlen, -ENOENT, "migrate %s: not a "
				      "hypersdk VM of this node", x->vm);
		goto out;
	}
	xml = virDomainGetXMLDesc(d, 0);
	if (!xml) {
		rc = be_err(err, errlen, "migrate", x->vm);
		goto out;
	}
	rc = plan_disks(c, x, xml, &x->plan, err, errlen);
	if (rc < 0)
		goto out;
	rc = mig_params(d, x, &par, &n, &max);
	if (rc < 0) {
		rc = be_err(err, errlen, "migrate", x->vm);
		goto out;
	}
	if (x->p && x->p->fn)
		x->p->fn(x->p->arg, 0, "starting migration");
	if (x->p && x->p->cancel && *x->p->cancel)
		rc = core_errf(err, errlen, -ECANCELED, "migrate %s: cancelled",
			     x->vm);
	else
		rc = mig_run(d, x, par, n, err, errlen);
	if (rc == 0)
		drop_copied(vc, &x->plan);
	if (rc == 0 && x->p && x->p->fn)
		x->p->fn(x->p->arg, 100, "migrated");
out:
	free(xml);
	plan_free(&x->plan);
	virTypedParamsFree(par, n);
	virDomainFree(d);
	return rc;
}

int be_migrate(struct be_conn *c, const char *vm,
	       const struct be_migrate_opts *o, const struct be_progress *p,
	       char *err, size_t errlen)
{
	struct mig_ctx x = { .vm = vm, .o = o, .p = p };
	virConnectPtr vc;
	int rc;

	if (!o || !o->dest_uri || !*o->dest_uri)
		return core_errf(err, errlen, -EINVAL, "migrate %s: no target",
			       vm);
	if (!o->dest_node || !*o->dest_node)
		return core_errf(err, errlen, -EINVAL, "migrate %s: no target "
			       "node name", vm);
	if (o->nonlive && !o->offline && (o->postcopy || o->autoconverge))
		return core_errf(err, errlen, -EINVAL, "migrate %s: %s needs a "
			       "live migration", vm, o->postcopy ?
			       "post-copy" : "auto-converge");
	/* Not be_run: a retry after a lost connection could start a second
	 * migration of a guest that already moved. */
	vc = be_conn_get(c, err, errlen);
	if (!vc)
		return -EIO;
	rc = mig_op(c, vc, &x, err, errlen);
	virConnectClose(vc);
	return rc;
}
