/* The daemon's life: open (store, model, libvirt, cluster, what the store
 * and libvirt hold), start its threads, quiesce, close.  And its log. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

static int log_level = LOG_INFO_;

void md_set_log_level(int level)
{
	log_level = level;
}

void md_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char ts[32];
	va_list ap;

	if (level > log_level)
		return;
	core_rfc3339(time(NULL), ts, sizeof(ts));
	va_start(ap, fmt);
	fprintf(stderr, "%s hypersdk-mountd %s: ", ts, names[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void push_one(struct mountd *md, const char *name, enum core_phase now)
{
	md_push_status(md, name);
}

static void init(struct mountd *md, const struct md_config *c)
{
	md->cfg = *c;
	md_worker_init(&md->work, md, NULL);
	md_worker_init(&md->status, md, push_one);
	md_worker_init(&md->drops, md, NULL);
	md_follow_init(md);
	pthread_mutex_init(&md->slock, NULL);
	pthread_cond_init(&md->scond, NULL);
	snprintf(md->node, sizeof(md->node), "%s", c->node);
	md->uri = c->uri;
	md->acl = c->acl;
	md->stop_timeout_ms = c->stop_timeout_s * 1000;
	md->stats_interval_ms = (c->stats_interval_s ? c->stats_interval_s : 2) *
				1000;
	pthread_mutex_init(&md->runs_lock, NULL);
	pthread_cond_init(&md->runs_cond, NULL);
	pthread_mutex_init(&md->members_lock, NULL);
	pthread_mutex_init(&md->maint_lock, NULL);
	pthread_mutex_init(&md->carbon_lock, NULL);
	md->peers = calloc(c->npeers + 1, sizeof(*md->peers));
	for (size_t i = 0; md->peers && i < c->npeers; i++) {
		const char *eq = strchr(c->peers[i], '=');

		if (!eq)
			continue;
		snprintf(md->peers[md->npeers].node, sizeof(md->peers[0].node),
			 "%.*s", (int)(eq - c->peers[i]), c->peers[i]);
		snprintf(md->peers[md->npeers].uri, sizeof(md->peers[0].uri),
			 "%s", eq + 1);
		md->npeers++;
	}
}

/* Image sources and limits (docs/security.md, "Image server"); in a
 * cluster any node may import a VMTemplate, so it must carry a checksum. */
static int import_policy(struct mountd *md, char *err, size_t errlen)
{
	struct be_import_policy p = md->cfg.imp;
	int rc;

	p.need_checksum = md->sync != NULL;
	rc = be_import_set(md->be, &p);
	if (rc < 0)
		snprintf(err, errlen, "--import-dir %.300s: %s",
			 p.dir ? p.dir : "", strerror(-rc));
	return rc;
}

int md_open(const struct md_config *c, struct mountd **out, char *err,
	    size_t errlen)
{
	char pool[CORE_NAME_MAX + 16];
	struct be_config bc = { .uri = c->uri, .pool_dir = c->pool_dir,
				.pool_name = pool, .node = c->node,
				.accel = c->accel, .kernel_dir = c->kernel_dir,
				.classes = c->classes, .nclasses = c->nclasses };
	struct mountd *md = calloc(1, sizeof(*md));
	int rc;

	*out = NULL;
	if (!md)
		return -ENOMEM;
	init(md, c);
	/* One pool per node: daemons sharing a libvirtd never share a pool. */
	snprintf(pool, sizeof(pool), "hypersdk-%s", c->node);
	rc = core_store_open(c->state_dir, &md->store, err, errlen);
	if (rc == 0)
		rc = core_model_new(&md->m);
	if (rc == 0)
		core_model_set_priv(md->m, sizeof(struct md_vmx),
				    sizeof(struct md_objx));
	if (rc == 0)
		rc = be_open(&bc, &md->be, err, errlen);
	/* Cluster mode is known before the store is read: a stored VM of
	 * another node must not be taken for this node's. */
	if (rc == 0 && c->cluster)
		rc = md_cluster_open(md, c->kubeconfig, c->ns, err, errlen);
	if (rc == 0)
		rc = import_policy(md, err, errlen);
	if (rc == 0)
		rc = md_carbon_open(md, err, errlen);
	if (rc == 0)
		md_cordon_load(md);
	if (rc == 0)
		rc = md_load(md, err, errlen);
	if (rc == 0)
		rc = md_ops_load(md);
	if (rc < 0) {
		md_close(md);
		return rc;
	}
	*out = md;
	return 0;
}

/* Called on libvirt's event thread: queue only, never call back into
 * libvirt from there. */
static void on_domain_event(void *arg, const char *name, enum core_phase now)
{
	struct mountd *md = arg;

	md_nq_put_event(&md->work.q, name, now);
}

int md_start(struct mountd *md)
{
	int rc = be_watch(md->be, on_domain_event, md);

	if (rc < 0) {
		md_log(LOG_ERR_, "cannot follow libvirt events: %s", strerror(-rc));
		return rc;
	}
	rc = md_worker_start(&md->work);
	if (rc == 0)
		rc = md_stats_start(md);
	if (rc == 0)
		rc = md_carbon_start(md);
	if (rc == 0 && md->sync)
		rc = md_worker_start(&md->status);
	if (rc < 0)
		return rc;
	/* Events may have been missed between loading and watching. */
	md_queue(md, NULL);
	return md_cluster_start(md);
}

void md_quiesce(struct mountd *md)
{
	md_ops_stop(md);
}

/* Our threads use sync; sync's threads only queue work for ours. */
void md_close(struct mountd *md)
{
	if (!md)
		return;
	md_stats_stop(md);
	md_drain_join(md);
	md_worker_stop(&md->work);
	md_worker_stop(&md->status);
	/* After the reconciler: a VM that waits must not pass the gate as
	 * if no provider were configured. */
	md_carbon_close(md);
	md_cluster_close(md);
	if (md->be)
		be_close(md->be);
	if (md->m)
		core_model_free(md->m);
	if (md->store)
		core_store_close(md->store);
	free(md->peers);
	free(md->members);
	free(md->creating);
	/* be_close took the watcher away; a stopped queue takes no more. */
	free(md);
}

struct core_model *md_model(struct mountd *md)
{
	return md->m;
}

bool md_cluster_mode(const struct mountd *md)
{
	return md->sync != NULL;
}

void md_outbox(struct mountd *md, bool *online, size_t *queued, time_t *oldest)
{
	*online = md->sync ? sync_online(md->sync) : true;
	*queued = md->sync ? sync_outbox_len(md->sync) : 0;
	*oldest = md->sync ? sync_outbox_oldest(md->sync) : 0;
}

void md_describe(struct mountd *md, char *buf, size_t len)
{
	snprintf(buf, len, "node %s, libvirt %s, accel %s, %zu vms%s%s",
		 md->node, md->uri, be_accel_name(md->be),
		 core_model_count(md->m), md->sync ? ", namespace " : "",
		 md->sync ? md->ns : "");
}
