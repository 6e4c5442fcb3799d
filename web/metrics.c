/* GET /metrics: the Prometheus text format (version 0.0.4).  Every
 * metric is documented in docs/dashboard.md; the model is read under its
 * read lock, the FUSE counters without any lock. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs.h"
#include "web/priv.h"

void web_buf_put(struct web_buf *b, const char *s, size_t n)
{
	char *p;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void web_buf_printf(struct web_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		web_buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
			    sizeof(tmp) - 1);
}

static void help(struct web_buf *b, const char *name, const char *type,
		 const char *text)
{
	web_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static uint64_t stat_u64(const struct core_vm *vm, const char *key, bool *found)
{
	size_t kl = strlen(key);
	const char *p = vm->txt_stats, *end = p ? p + vm->len_stats : NULL;

	while (p && p + kl < end) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			*found = true;
			return strtoull(p + kl + 1, NULL, 10);
		}
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
	}
	*found = false;
	return 0;
}

struct vm_pass {
	struct web_buf *b;
	unsigned phases[CORE_PHASE_UNKNOWN + 1];
	int pass;               /* 0 count, 1 cpu, 2 memory */
};

/* VM and namespace names are DNS labels: nothing to escape in them. */
static int vm_line(struct core_vm *vm, void *arg)
{
	struct vm_pass *p = arg;
	bool found;
	uint64_t v;

	if (p->pass == 0) {
		if ((unsigned)vm->st.phase <= CORE_PHASE_UNKNOWN)
			p->phases[vm->st.phase]++;
		return 0;
	}
	v = stat_u64(vm, p->pass == 1 ? "cpu.time_ns" : "memory.rss_bytes",
		     &found);
	if (!found)
		return 0;
	if (p->pass == 1)
		web_buf_printf(p->b, "hypersdk_vm_cpu_seconds_total{vm=\"%s\","
			       "namespace=\"%s\"} %" PRIu64 ".%09" PRIu64 "\n",
			       vm->name, vm->ns, v / 1000000000u, v % 1000000000u);
	else
		web_buf_printf(p->b, "hypersdk_vm_memory_bytes{vm=\"%s\","
			       "namespace=\"%s\"} %" PRIu64 "\n", vm->name,
			       vm->ns, v);
	return 0;
}

static void vm_metrics(struct web *w, struct web_buf *b)
{
	struct vm_pass p = { .b = b };

	core_model_rdlock(w->cfg.model);
	core_model_each(w->cfg.model, vm_line, &p);
	help(b, "hypersdk_vms", "gauge", "VMs on this node's model by phase.");
	for (int i = 0; i <= CORE_PHASE_UNKNOWN; i++)
		web_buf_printf(b, "hypersdk_vms{phase=\"%s\"} %u\n",
			       core_phase_name(i), p.phases[i]);
	help(b, "hypersdk_vm_cpu_seconds_total", "counter",
	     "CPU time used by the VM's QEMU (libvirt cpu.time).");
	p.pass = 1;
	core_model_each(w->cfg.model, vm_line, &p);
	help(b, "hypersdk_vm_memory_bytes", "gauge",
	     "Resident memory of the VM's QEMU (libvirt balloon.rss).");
	p.pass = 2;
	core_model_each(w->cfg.model, vm_line, &p);
	core_model_unlock(w->cfg.model);
}

static void fuse_metrics(struct web_buf *b)
{
	struct fs_op_stats st[FS_OP_COUNT];

	fs_stats(st);
	help(b, "hypersdk_fuse_request_seconds", "histogram",
	     "Time the daemon spent handling FUSE requests, by kind.");
	for (int op = 0; op < FS_OP_COUNT; op++) {
		const char *name = fs_op_name(op);
		uint64_t cum = 0;

		for (int i = 0; i < FS_STATS_BUCKETS; i++) {
			cum += st[op].bucket[i];
			web_buf_printf(b, "hypersdk_fuse_request_seconds_bucket{op=\"%s\","
				       "le=\"%g\"} %" PRIu64 "\n", name,
				       fs_stats_le[i], cum);
		}
		web_buf_printf(b, "hypersdk_fuse_request_seconds_bucket{op=\"%s\","
			       "le=\"+Inf\"} %" PRIu64 "\n", name, st[op].count);
		web_buf_printf(b, "hypersdk_fuse_request_seconds_sum{op=\"%s\"} "
			       "%.9f\n", name, (double)st[op].sum_ns / 1e9);
		web_buf_printf(b, "hypersdk_fuse_request_seconds_count{op=\"%s\"} "
			       "%" PRIu64 "\n", name, st[op].count);
	}
}

/* Changes reach the API server synchronously while it answers; only
 * the outbox holds them back, so its oldest entry is the lag. */
static void sync_metrics(struct web *w, struct web_buf *b)
{
	struct web_sync_state st = { .online = true };
	time_t now = time(NULL);

	if (w->cfg.sync_state)
		w->cfg.sync_state(w->cfg.arg, &st);
	help(b, "hypersdk_sync_lag_seconds", "gauge",
	     "How long the API server has been missing the oldest change "
	     "waiting in the outbox (0 when none waits, or standalone).");
	web_buf_printf(b, "hypersdk_sync_lag_seconds %lld\n",
		       st.oldest && now > st.oldest ?
		       (long long)(now - st.oldest) : 0LL);
	if (!w->cfg.sync_state)
		return;
	help(b, "hypersdk_sync_online", "gauge",
	     "1 when the API server answered last time, 0 when it is away.");
	web_buf_printf(b, "hypersdk_sync_online %d\n", st.online ? 1 : 0);
	help(b, "hypersdk_sync_outbox_entries", "gauge",
	     "Changes waiting in the outbox for the API server.");
	web_buf_printf(b, "hypersdk_sync_outbox_entries %zu\n", st.queued);
}

/* This node's grid, and how long each carbonAware VM's start waits
 * (or, when it runs, waited last). */
static int carbon_vm_line(struct core_vm *vm, void *arg)
{
	struct web_buf *b = arg;
	const struct core_carbon_status *c = &vm->st.carbon;
	time_t now = time(NULL);

	if (!vm->spec.carbon_aware)
		return 0;
	web_buf_printf(b, "hypersdk_vm_carbon_delay_seconds{vm=\"%s\","
		       "namespace=\"%s\",waiting=\"%s\"} %lld\n", vm->name,
		       vm->ns, c->since ? "true" : "false",
		       c->since ? (long long)(now - c->since) :
				  (long long)c->last_delay_s);
	return 0;
}

static void carbon_metrics(struct web *w, struct web_buf *b)
{
	struct core_node *n;

	core_model_rdlock(w->cfg.model);
	n = w->cfg.node ? core_model_node(w->cfg.model, w->cfg.node) : NULL;
	if (n && n->grid.provider[0]) {
		help(b, "hypersdk_grid_carbon_intensity", "gauge",
		     "The grid's carbon intensity here (gCO2eq/kWh), as the "
		     "provider last said it; absent without a fresh reading.");
		if (n->grid.intensity >= 0)
			web_buf_printf(b, "hypersdk_grid_carbon_intensity{zone=\"%s\","
				       "provider=\"%s\"} %d\n", n->grid.zone,
				       n->grid.provider, n->grid.intensity);
	}
	help(b, "hypersdk_vm_carbon_delay_seconds", "gauge",
	     "How long a carbonAware VM's start has waited for a greener "
	     "grid (waiting=\"true\"), or its last start waited.");
	core_model_each(w->cfg.model, carbon_vm_line, b);
	core_model_unlock(w->cfg.model);
}

char *web_metrics(struct web *w, size_t *len)
{
	struct web_buf b = { 0 };

	vm_metrics(w, &b);
	carbon_metrics(w, &b);
	fuse_metrics(&b);
	sync_metrics(w, &b);
	web_object_metrics(w, &b);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
