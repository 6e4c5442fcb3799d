/* nodes/: this node's status, and in a cluster every node with a lease. */
#include <errno.h>
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

/* cordoned, cordon.by and the last drain's progress. */
static int render_maint(struct mountd *md, char *buf, size_t len)
{
	char by[16], started[32] = "", finished[32] = "";
	struct md_drain d;

	md_cordon_show(md, by, sizeof(by));
	pthread_mutex_lock(&md->maint_lock);
	d = md->drain;
	pthread_mutex_unlock(&md->maint_lock);
	if (d.started)
		core_rfc3339(d.started, started, sizeof(started));
	if (d.finished)
		core_rfc3339(d.finished, finished, sizeof(finished));
	return snprintf(buf, len, "cordoned %s\ncordon.by %s\ndrain %s\n"
			"drain.total %u\ndrain.moved %u\ndrain.stopped %u\n"
			"drain.failed %u\ndrain.started %s\ndrain.finished %s\n"
			"drain.message %s\n", by[0] ? "true" : "false",
			by[0] ? by : "-", d.phase[0] ? d.phase : "-", d.total,
			d.moved, d.stopped, d.failed, started[0] ? started : "-",
			finished[0] ? finished : "-", d.msg[0] ? d.msg : "-");
}

static int render_self(struct mountd *md, const struct tally *t, char *buf,
		       size_t len)
{
	char ts[32], host_mem[32], mem[32];
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	int n;

	core_rfc3339(time(NULL), ts, sizeof(ts));
	core_qty_format(pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0,
			host_mem, sizeof(host_mem));
	core_qty_format(t->mem, mem, sizeof(mem));
	n = snprintf(buf, len,
		     "name %s\nself true\nalive true\nheartbeat %s\n"
		     "mode %s\nnamespace %s\napiserver %s\noutbox %zu\n"
		     "libvirt %s\nlibvirt.connected %s\naccel %s\n"
		     "cpus %ld\nmemory %s\n"
		     "vms %u\nrunning %u\nvcpus.allocated %llu\n"
		     "memory.allocated %s\nmigrationURI %s\n",
		     md->node, ts, md->sync ? "cluster" : "standalone",
		     md->sync ? md->ns : "-",
		     !md->sync ? "-" : md->online ? "reachable" : "unreachable",
		     md->sync ? sync_outbox_len(md->sync) : (size_t)0,
		     md->uri, be_conn_alive(md->be) ? "true" : "false",
		     be_accel_name(md->be),
		     sysconf(_SC_NPROCESSORS_ONLN), host_mem, t->vms,
		     t->running, t->vcpus, mem,
		     md->cfg.migration_uri ? md->cfg.migration_uri : "-");
	if (n > 0 && (size_t)n < len)
		n += render_maint(md, buf + n, len - (size_t)n);
	if (n > 0 && (size_t)n < len)
		n += md_classes_render(md, buf + n, len - (size_t)n);
	if (n > 0 && (size_t)n < len)
		n += md_carbon_render(md, buf + n, len - (size_t)n);
	return n;
}

static int render_member(const struct md_member *m, char *buf, size_t len)
{
	char hb[32] = "";
	int n;

	if (m->renew > 0)
		core_rfc3339((time_t)m->renew, hb, sizeof(hb));
	n = snprintf(buf, len, "name %s\nself false\nalive %s\n"
		     "heartbeat %s\nmigrationURI %s\ncordoned %s\n"
		     "storageClasses %s\n", m->name,
		     m->alive ? "true" : "false", hb[0] ? hb : "-",
		     m->uri[0] ? m->uri : "-", m->cordoned ? "true" : "false",
		     m->classes[0] ? m->classes : "-");
	if (n > 0 && (size_t)n < len)
		n += md_carbon_render_member(m, buf + n, len - (size_t)n);
	return n;
}

struct seen {
	struct core_model *m;
	const char *self;
	struct md_member *v;
	size_t n;
};

static int drop_gone(struct core_node *n, void *arg)
{
	struct seen *s = arg;

	if (!strcmp(n->name, s->self))
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, n->name))
			return 0;
	core_model_remove_node(s->m, n->name);
	return 1;       /* the iteration's array changed: start again */
}

/* What the cluster asks of this node: its Lease (set by any node's tree)
 * and its Node object (kubectl cordon; the drain annotation). */
static void asked_of_self(struct mountd *md)
{
	struct sync_node_object no = { 0 };
	struct md_member self = { 0 };
	char err[CORE_ERR_MAX];
	static bool warned;
	time_t now = time(NULL);
	int rc = -EAGAIN;

	md_member_get(md, md->node, &self);
	/* The Node object every MD_NODE_OBJECT_S, not every tick: one GET
	 * per node and period is what kubectl cordon costs. */
	if (now - md->node_checked >= MD_NODE_OBJECT_S) {
		md->node_checked = now;
		rc = sync_node_object(md->sync, md->node, &no, err, sizeof(err));
		md->node_object_ok = rc == 0;
		md->node_unschedulable_seen = rc == 0 && no.unschedulable;
	} else {
		no.unschedulable = md->node_unschedulable_seen;
	}
	if (rc == -EACCES && !warned) {
		warned = true;
		md_log(LOG_WARN_, "cannot read the Node object %s (%s): kubectl "
		       "cordon is not seen", md->node, err);
	}
	md_cordon_seen(md, self.cordoned, md->node_object_ok && no.unschedulable);
	if (strcmp(self.drain, self.drain_done))
		md_drain_asked(md, self.drain, false);
	if (rc == 0 && strcmp(no.drain, self.drain_done_node))
		md_drain_asked(md, no.drain, true);
}

/* nodes/ of every node with a Lease, from a fresh look at the Leases. */
static void update_peers(struct mountd *md)
{
	struct seen s = { .m = md->m, .self = md->node };
	char buf[2048];
	int n;

	if (md_members_refresh(md) < 0 || md_members_copy(md, &s.v, &s.n) < 0)
		return;
	asked_of_self(md);
	core_model_wrlock(md->m);
	for (size_t i = 0; i < s.n; i++) {
		if (!strcmp(s.v[i].name, md->node))
			continue;
		n = render_member(&s.v[i], buf, sizeof(buf));
		if (n < 0 || (size_t)n >= sizeof(buf))
			n = (int)strlen(buf);
		core_model_set_node(md->m, s.v[i].name, buf, (size_t)n);
		core_model_set_node_grid(md->m, s.v[i].name, &s.v[i].grid);
	}
	while (core_model_each_node(md->m, drop_gone, &s))
		;
	core_model_unlock(md->m);
	free(s.v);
}

void md_update_nodes(struct mountd *md, bool peers)
{
	struct tally t = { .md = md };
	struct core_grid_reading g;
	char buf[4096];
	int n;

	md->nodes_dirty = false;
	core_model_rdlock(md->m);
	core_model_each(md->m, count_vm, &t);
	core_model_unlock(md->m);
	n = render_self(md, &t, buf, sizeof(buf));
	md_carbon_self(md, &g);
	core_model_wrlock(md->m);
	core_model_set_node(md->m, md->node, buf, (size_t)n);
	core_model_set_node_grid(md->m, md->node, &g);
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
