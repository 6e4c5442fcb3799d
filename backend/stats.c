/* Usage counters of all running domains in one libvirt call. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/priv.h"

/* Whether each domain carries our metadata is asked once per domain and
 * remembered by UUID: asking on every stats round would cost one round
 * trip per VM, which is what the single bulk call is meant to avoid. */
static int owned_find(struct be_conn *c, const unsigned char *uuid)
{
	size_t i;

	for (i = 0; i < c->nowned; i++)
		if (memcmp(c->owned[i].uuid, uuid, VIR_UUID_BUFLEN) == 0)
			return (int)i;
	return -1;
}

static bool is_ours(struct be_conn *c, virDomainPtr d)
{
	unsigned char uuid[VIR_UUID_BUFLEN];
	struct be_owned *nv;
	bool ours;
	int i, rc;

	if (virDomainGetUUID(d, uuid) < 0)
		return false;
	pthread_mutex_lock(&c->lock);
	i = owned_find(c, uuid);
	if (i >= 0)
		c->owned[i].seen = true;
	ours = i >= 0 && c->owned[i].ours;
	pthread_mutex_unlock(&c->lock);
	if (i >= 0)
		return ours;
	rc = be_dom_ours(c, d, NULL, NULL, NULL);
	ours = rc == 1;
	/* Not knowing is not remembered: ask again next round. */
	if (rc < 0) {
		virResetLastError();
		return false;
	}
	pthread_mutex_lock(&c->lock);
	nv = realloc(c->owned, (c->nowned + 1) * sizeof(*nv));
	if (nv) {
		c->owned = nv;
		memcpy(nv[c->nowned].uuid, uuid, VIR_UUID_BUFLEN);
		nv[c->nowned].ours = ours;
		nv[c->nowned].seen = true;
		c->nowned++;
	}
	pthread_mutex_unlock(&c->lock);
	return ours;
}

/* Forget domains that did not show up, so the cache follows undefines
 * and a recreated domain of another owner is asked again. */
static void owned_sweep(struct be_conn *c)
{
	size_t i, k = 0;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->nowned; i++) {
		if (!c->owned[i].seen)
			continue;
		c->owned[i].seen = false;
		c->owned[k++] = c->owned[i];
	}
	c->nowned = k;
	pthread_mutex_unlock(&c->lock);
}

static uint64_t param_u64(const virTypedParameter *p)
{
	switch (p->type) {
	case VIR_TYPED_PARAM_INT: return (uint64_t)p->value.i;
	case VIR_TYPED_PARAM_UINT: return p->value.ui;
	case VIR_TYPED_PARAM_LLONG: return (uint64_t)p->value.l;
	case VIR_TYPED_PARAM_ULLONG: return p->value.ul;
	case VIR_TYPED_PARAM_DOUBLE: return (uint64_t)p->value.d;
	case VIR_TYPED_PARAM_BOOLEAN: return p->value.b;
	}
	return 0;
}

static const struct { const char *from, *to; uint64_t mul; } flat[] = {
	{ "cpu.time", "cpu.time_ns", 1 },
	{ "cpu.user", "cpu.user_ns", 1 },
	{ "cpu.system", "cpu.system_ns", 1 },
	{ "vcpu.current", "vcpus", 1 },
	{ "vcpu.maximum", "vcpus_max", 1 },
	{ "balloon.current", "memory.actual_bytes", 1024 },
	{ "balloon.maximum", "memory.max_bytes", 1024 },
	{ "balloon.rss", "memory.rss_bytes", 1024 },
	{ "balloon.available", "memory.available_bytes", 1024 },
	{ "balloon.unused", "memory.unused_bytes", 1024 },
	{ "balloon.usable", "memory.usable_bytes", 1024 },
};

/* Per-device counter suffixes: "rd.bytes" -> "rd_bytes" and so on. */
static const struct { const char *from, *to; } dev[] = {
	{ "rd.bytes", "rd_bytes" }, { "rd.reqs", "rd_reqs" },
	{ "rd.times", "rd_time_ns" }, { "wr.bytes", "wr_bytes" },
	{ "wr.reqs", "wr_reqs" }, { "wr.times", "wr_time_ns" },
	{ "fl.reqs", "flush_reqs" }, { "fl.times", "flush_time_ns" },
	{ "capacity", "capacity_bytes" }, { "allocation", "allocation_bytes" },
	{ "physical", "physical_bytes" },
	{ "rx.bytes", "rx_bytes" }, { "rx.pkts", "rx_packets" },
	{ "rx.errs", "rx_errors" }, { "rx.drop", "rx_drops" },
	{ "tx.bytes", "tx_bytes" }, { "tx.pkts", "tx_packets" },
	{ "tx.errs", "tx_errors" }, { "tx.drop", "tx_drops" },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The device name libvirt reports for "block.3.*": "block.3.name". */
static const char *dev_name(const virDomainStatsRecord *r, const char *kind,
			    unsigned long idx)
{
	char key[64];
	int i;

	snprintf(key, sizeof(key), "%s.%lu.name", kind, idx);
	for (i = 0; i < r->nparams; i++)
		if (r->params[i].type == VIR_TYPED_PARAM_STRING &&
		    strcmp(r->params[i].field, key) == 0)
			return r->params[i].value.s;
	return NULL;
}

static void render_dev(struct be_sb *b, const virDomainStatsRecord *r,
		       const virTypedParameter *p, const char *kind)
{
	const char *rest = p->field + strlen(kind) + 1, *name;
	unsigned long idx;
	char *end;
	size_t i;

	idx = strtoul(rest, &end, 10);
	if (end == rest || *end != '.')
		return;
	for (i = 0; i < N(dev); i++)
		if (strcmp(end + 1, dev[i].from) == 0)
			break;
	if (i == N(dev) || !(name = dev_name(r, kind, idx)))
		return;
	be_sb_printf(b, "%s.%s.%s %" PRIu64 "\n", kind, name, dev[i].to,
		     param_u64(p));
}

static char *render(const virDomainStatsRecord *r, size_t *len)
{
	struct be_sb b = { 0 };
	char *txt;
	size_t k;
	int i;

	for (i = 0; i < r->nparams; i++) {
		const virTypedParameter *p = &r->params[i];

		if (p->type == VIR_TYPED_PARAM_STRING)
			continue;
		if (!strncmp(p->field, "block.", 6)) {
			render_dev(&b, r, p, "block");
			continue;
		}
		if (!strncmp(p->field, "net.", 4)) {
			render_dev(&b, r, p, "net");
			continue;
		}
		for (k = 0; k < N(flat); k++)
			if (strcmp(p->field, flat[k].from) == 0)
				be_sb_printf(&b, "%s %" PRIu64 "\n", flat[k].to,
					     param_u64(p) * flat[k].mul);
	}
	*len = b.len;
	txt = be_sb_take(&b);
	return txt ? txt : strdup("");
}

struct stats_ctx {
	void (*fn)(const char *name, const char *txt, size_t len, void *arg);
	void *arg;
};

static int stats_op(struct be_conn *c, virConnectPtr vc, void *arg,
		    char *err, size_t errlen)
{
	struct stats_ctx *x = arg;
	virDomainStatsRecordPtr *recs = NULL;
	unsigned stats = VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BALLOON |
			 VIR_DOMAIN_STATS_VCPU | VIR_DOMAIN_STATS_INTERFACE |
			 VIR_DOMAIN_STATS_BLOCK;
	int i, n;

	n = virConnectGetAllDomainStats(vc, stats, &recs,
		VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
	if (n < 0)
		return be_err(err, errlen, "stats", NULL);
	for (i = 0; i < n; i++) {
		size_t len = 0;
		char *txt;

		if (!is_ours(c, recs[i]->dom))
			continue;
		txt = render(recs[i], &len);
		if (txt)
			x->fn(virDomainGetName(recs[i]->dom), txt, len, x->arg);
		free(txt);
	}
	owned_sweep(c);
	virDomainStatsRecordListFree(recs);
	return 0;
}

int be_stats_all(struct be_conn *c,
		 void (*fn)(const char *name, const char *txt, size_t len,
			    void *arg),
		 void *arg)
{
	struct stats_ctx x = { fn, arg };
	char err[CORE_ERR_MAX];

	return be_run(c, stats_op, &x, err, sizeof(err));
}
