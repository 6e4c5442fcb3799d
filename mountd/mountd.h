/* Shared between the files of mountd/ only. */
#ifndef HYPERSDK_MOUNTD_H
#define HYPERSDK_MOUNTD_H

#include "backend/backend.h"
#include "core/core.h"
#include "fs/fs.h"

enum { LOG_ERR_, LOG_WARN_, LOG_INFO_, LOG_DEBUG_ };

struct mountd {
	struct core_model *m;
	struct core_store *store;
	struct be_conn *be;
	char node[CORE_NAME_MAX + 1];
	int stop_timeout_ms;    /* ACPI shutdown grace before destroy */
	int stats_interval_ms;

	/* reconciler: names of domains libvirt told us about */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	char **queue;
	size_t qlen, qcap;
	bool all_dirty;         /* re-read every domain */
	bool stopping;
	pthread_t reconciler, stats;
	bool reconciler_started, threads;
};

void md_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void md_set_log_level(int level);

/* actions.c: the fs_ops behind every ctl and spec write */
extern const struct fs_ops md_fs_ops;

/* Record the desired power state in the spec and the store. */
int md_set_running(struct mountd *md, const char *name, bool running);
/* Define (or redefine) the domain from the VM's current spec. */
int md_redefine(struct mountd *md, const char *name, char *err, size_t errlen);

/* reconcile.c */
/* Load the store, adopt our domains, bring status up to date. */
int md_load(struct mountd *md, char *err, size_t errlen);
int md_start_threads(struct mountd *md);
void md_stop_threads(struct mountd *md);
/* Re-read a domain's state from libvirt into the model. */
void md_refresh(struct mountd *md, const char *name);
/* Persist a VM's object (spec and last status) to the store. */
int md_persist(struct mountd *md, const char *name);

#endif
