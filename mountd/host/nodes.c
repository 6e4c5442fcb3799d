/* nodes/: this node's status, and in a cluster every node with a lease. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mountd/priv.h"

struct tally {
	struct mountd *md;
	unsigned vms, running;
	unsigned long long vcpus, mem;
};

static int count_vm(struct core_vm *vm, void *arg)
{
	struct tally *t = arg;
	bool active = vm->st.phase == CORE_PHASE_RUNNING ||
		vm->st.phase == CORE_PHASE_PAUSED;

	if (t->md->sync && strcmp(vm->st.node, t->md->node) != 0)
		return 0;
	t->vms++;
	if (active) {
		t->running++;
		t->vcpus += (unsigned long long)vm->spec.cpus;
		t->mem += vm->spec.memory;
	}
	return 0;
}

static int render_self(struct mountd *md, const struct tally *t, char *buf,
		       size_t len)
{
	char ts[32], host_mem[32], mem[32];
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	core_rfc3339(time(NULL), ts, sizeof(ts));
	core_qty_format(pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0,
			host_mem, sizeof(host_mem));
	core_qty_format(t->mem, mem, sizeof(mem));
	return snprintf(buf, len,
			"name %s\nself true\nalive true\nheartbeat %s\n"
			"mode %s\nnamespace %s\napiserver %s\noutbox %zu\n"
			"libvirt %s\nlibvirt.connected %s\naccel %s\n"
			"cpus %ld\nmemory %s\n"
			"vms %u\nrunning %u\nvcpus.allocated %llu\n"
			"memory.allocated %s\n",
			md->node, ts, md->sync ? "cluster" : "standalone",
			md->sync ? md->ns : "-",
			!md->sync ? "-" : md->online ? "reachable" : "unreachable",
			md->sync ? sync_outbox_len(md->sync) : (size_t)0,
			md->uri, be_conn_alive(md->be) ? "true" : "false",
			be_accel_name(md->be),
			sysconf(_SC_NPROCESSORS_ONLN), host_mem, t->vms,
			t->running, t->vcpus, mem);
}

/* Peers shown under nodes/; more are left out with a warning (the
 * lease list is bounded by sync too). */
#define MD_PEERS_SHOWN 1024

struct peers {
	struct mountd *md;
	char (*seen)[CORE_NAME_MAX + 1];
	int n;
	bool cut;
};

static void got_lease(void *arg, const char *node, const char *renew,
		      bool alive)
{
	struct peers *p = arg;
	char buf[512];
	int n;

	if (!strcmp(node, p->md->node) || !p->seen)
		return;
	if (p->n >= MD_PEERS_SHOWN) {
		p->cut = true;
		return;
	}
	snprintf(p->seen[p->n++], CORE_NAME_MAX + 1, "%s", node);
	n = snprintf(buf, sizeof(buf), "name %s\nself false\nalive %s\n"
		     "heartbeat %s\n", node, alive ? "true" : "false", renew);
	core_model_wrlock(p->md->m);
	core_model_set_node(p->md->m, node, buf, (size_t)n);
	core_model_unlock(p->md->m);
}

static int drop_gone(struct core_node *n, void *arg)
{
	struct peers *p = arg;

	if (!strcmp(n->name, p->md->node))
		return 0;
	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->seen[i], n->name))
			return 0;
	core_model_remove_node(p->md->m, n->name);
	return 1;       /* the iteration's array changed: start again */
}

static void update_peers(struct mountd *md)
{
	struct peers p = { .md = md };
	char err[CORE_ERR_MAX];
	static bool warned;

	p.seen = calloc(MD_PEERS_SHOWN, sizeof(*p.seen));
	if (p.seen && sync_nodes(md->sync, got_lease, &p, err, sizeof(err)) == 0) {
		core_model_wrlock(md->m);
		while (core_model_each_node(md->m, drop_gone, &p))
			;
		core_model_unlock(md->m);
	}
	if (p.cut && !warned) {
		warned = true;
		md_log(LOG_WARN_, "more than %d nodes hold a lease: nodes/ shows "
		       "%d of them", MD_PEERS_SHOWN, MD_PEERS_SHOWN);
	}
	free(p.seen);
}

void md_update_nodes(struct mountd *md, bool peers)
{
	struct tally t = { .md = md };
	char buf[1024];
	int n;

	md->nodes_dirty = false;
	core_model_rdlock(md->m);
	core_model_each(md->m, count_vm, &t);
	core_model_unlock(md->m);
	n = render_self(md, &t, buf, sizeof(buf));
	core_model_wrlock(md->m);
	core_model_set_node(md->m, md->node, buf, (size_t)n);
	core_model_unlock(md->m);
	if (peers && md->sync && md->online)
		update_peers(md);
	core_model_flush(md->m);
}

void md_nodes_dirty(struct mountd *md)
{
	md->nodes_dirty = true;
}

void md_nodes_flush(struct mountd *md)
{
	if (md->nodes_dirty)
		md_update_nodes(md, false);
}
