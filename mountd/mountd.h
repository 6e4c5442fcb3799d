/* mountd: the daemon as a library.  main.c turns options into an
 * md_config and serves the tree with fs and web; the unit tests build a
 * config by hand and link an in-memory backend instead of libvirt's.
 *
 * Life: md_open (store, model, libvirt, cluster, load), md_start (its
 * threads), md_quiesce (operations cancelled and waited for, before fs
 * and web go), md_close. */
#ifndef HYPERSDK_MOUNTD_H
#define HYPERSDK_MOUNTD_H

#include "backend/backend.h"
#include "carbon/carbon.h"
#include "core/core.h"
#include "fs/fs.h"

struct md_config {
	const char *node;
	const char *uri;                /* libvirt */
	const char *state_dir;          /* trusted, resolved */
	const char *pool_dir;
	const char *kernel_dir;         /* NULL: kernelBoot off */
	bool cluster;                   /* --kubeconfig, or in a pod */
	const char *kubeconfig;         /* NULL in a pod */
	const char *ns;                 /* NULL: the kubeconfig's */
	enum be_accel accel;
	int stop_timeout_s;             /* ACPI grace before destroy */
	int stats_interval_s;           /* 0: 2 s */
	unsigned restart_backoff_s;     /* first HA restart's wait; 0: 10 s */
	const char *const *peers;       /* NODE=URI, for migrations
					 * (standalone) */
	const char *migration_uri;      /* cluster: published in the Lease */
	const struct be_class *classes; /* --storage-class */
	size_t nclasses;
	size_t npeers;
	bool copy_storage;              /* --migrate-copy-storage */
	struct be_import_policy imp;    /* image sources (allow filled in) */
	struct core_acl acl;            /* --group */
	struct carbon_cfg carbon;       /* --carbon-*: kind NONE when off */
	unsigned carbon_interval_s;     /* 0: MD_CARBON_INTERVAL_S */
};
#define MD_CARBON_INTERVAL_S 300

struct mountd;

int md_open(const struct md_config *c, struct mountd **out, char *err,
	    size_t errlen);
int md_start(struct mountd *md);
void md_quiesce(struct mountd *md);
void md_close(struct mountd *md);

/* What the tree's and the dashboard's writes call (arg: the mountd). */
extern const struct fs_ops md_fs_ops;
struct core_model *md_model(struct mountd *md);
/* Cluster mode: the API server's reachability and the outbox. */
bool md_cluster_mode(const struct mountd *md);
void md_outbox(struct mountd *md, bool *online, size_t *queued,
	       time_t *oldest);
/* This node's grid for /metrics: -ENOSYS without a provider, -ENODATA
 * before the first reading (provider and zone filled in). */
struct md_grid_view {
	char provider[16], zone[CARBON_ZONE_MAX];
	int intensity;          /* -1 when none */
	time_t at, polled;
	bool fresh;
	char error[CORE_ERR_MAX];       /* the last poll's failure, "" */
};
int md_grid_now(struct mountd *md, struct md_grid_view *out);
/* "node n1, libvirt test:///default, accel tcg, 3 vms" for the log. */
void md_describe(struct mountd *md, char *buf, size_t len);

/* probe.c: --probe live|ready, for a pod's probes; err says why not. */
int md_probe(const char *mount, const char *what, char *err, size_t errlen);

enum { LOG_ERR_, LOG_WARN_, LOG_INFO_, LOG_DEBUG_ };
void md_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void md_set_log_level(int level);

#endif
