/* Shared between model.c and nodes.c only; the contract is core.h. */
#ifndef HYPERSDK_CORE_MODEL_PRIV_H
#define HYPERSDK_CORE_MODEL_PRIV_H

#include "core/core.h"

struct change {
	char name[CORE_NAME_MAX + 1];
	bool tree;              /* a tree-level change: name NULL, slot -1 */
	int slot;
	unsigned what;
	uint64_t seq;
};

struct watcher {
	core_watch_fn fn;
	void *arg;
};

struct core_model {
	pthread_rwlock_t lock;
	struct core_vm **vms;   /* sorted by name */
	size_t nvms, capvms;
	struct core_vm **slots; /* slot -> VM, NULL when free */
	size_t nslots, free_hint;
	char err[CORE_ERR_MAX];
	uint64_t version;

	pthread_mutex_t qlock;
	struct change *q;
	size_t nq, capq;
	uint64_t seq;

	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	uint64_t gen;

	pthread_mutex_t flock;
	struct watcher *w;
	size_t nw;
	uint64_t delivered;

	struct core_node **nodes;       /* slot -> node, NULL when free */
	size_t nnodes;

	struct core_obj **objs;         /* slot -> object, NULL when free */
	size_t nobjs;

	size_t vm_priv, obj_priv;       /* core_model_set_priv */

	core_event_fn on_event;         /* core_model_on_event */
	void *on_event_arg;
};

/* Queue a tree-level change (name NULL, slot -1) for the watchers. */
void core_model_notify_tree(struct core_model *m, unsigned what);
void core_nodes_free(struct core_model *m);
void core_objs_free(struct core_model *m);

#endif
