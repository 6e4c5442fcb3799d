/* vCPUs and memory of a defined domain: live where QEMU can (vCPU hotplug
 * up to <vcpu>, DIMM hotplug up to <maxMemory>), else in the persistent
 * definition for the next start. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/priv.h"

struct limits {
	int max_cpus;
	uint64_t max_kib;       /* <maxMemory>, else <memory> */
	bool dimms;             /* has <maxMemory>: grows by DIMM hotplug */
};

/* The first domain-level element tag (libvirt's output puts <metadata>
 * before the sizing elements, and its content may mention anything). */
static const char *dom_el(const char *xml, const char *end, const char *tag)
{
	const char *m = be_xml_next(xml, end, "metadata");
	const char *from = m ? be_xml_end(m, end, "metadata") : xml;

	return be_xml_next(from, end, tag);
}

static uint64_t el_num(const char *xml, const char *end, const char *tag)
{
	const char *el = dom_el(xml, end, tag);
	char *t = el ? be_xml_text(el, end, tag) : NULL;
	uint64_t v = t ? strtoull(t, NULL, 10) : 0;

	free(t);
	return v;
}

static void limits_of(const char *xml, struct limits *l)
{
	const char *end = xml + strlen(xml);
	uint64_t mm = el_num(xml, end, "maxMemory");

	l->max_cpus = (int)el_num(xml, end, "vcpu");
	l->dimms = mm > 0;
	l->max_kib = mm > 0 ? mm : el_num(xml, end, "memory");
}

static int read_limits(virDomainPtr d, const char *vm, struct limits *l,
		       char *err, size_t errlen)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);

	if (!xml)
		return be_err(err, errlen, "resize", vm);
	limits_of(xml, l);
	free(xml);
	return 0;
}

/* ---- editing the persistent definition ----------------------------- */

/* xml with [from, to) replaced by ins; frees xml. */
static char *splice(char *xml, const char *from, const char *to,
		    const char *ins)
{
	struct be_sb b = { 0 };

	be_sb_printf(&b, "%.*s%s%s", (int)(from - xml), xml, ins, to);
	free(xml);
	return be_sb_take(&b);
}

static char *set_text(char *xml, const char *tag, const char *val)
{
	const char *end = xml + strlen(xml), *el = dom_el(xml, end, tag);
	const char *gt, *close;

	if (!el || !(gt = strchr(el, '>')) || gt[-1] == '/')
		return xml;
	close = strstr(gt, "</");
	return close ? splice(xml, gt + 1, close, val) : xml;
}

static char *set_cell_memory(char *xml, const char *val)
{
	const char *end = xml + strlen(xml), *el = be_xml_next(xml, end, "cell");
	const char *gt = el ? strchr(el, '>') : NULL;
	const char *a = el ? strstr(el, " memory='") : NULL;
	const char *q;

	if (!a || a > gt)
		return xml;
	a += strlen(" memory='");
	q = strchr(a, '\'');
	return q ? splice(xml, a, q, val) : xml;
}

/* Hot-plugged DIMMs are folded into the NUMA cell: a restart gives the
 * guest the same memory as one plain block, and the slots free again. */
static char *drop_dimms(char *xml)
{
	const char *p = xml, *end, *el;
	char model[16];

	while (xml) {
		end = xml + strlen(xml);
		el = be_xml_next(p, end, "memory");
		if (!el)
			break;
		if (!be_xml_attr(el, "model", model, sizeof(model))) {
			p = el + 1;
			continue;
		}
		/* The text moved: scan the new one from its start. */
		xml = splice(xml, el, be_xml_end(el, end, "memory"), "");
		p = xml;
	}
	return xml;
}

/* The definition with memory kib (and no DIMMs), for the next start. */
static int config_memory(virConnectPtr vc, virDomainPtr d, const char *vm,
			 uint64_t kib, char *err, size_t errlen)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE |
					VIR_DOMAIN_XML_SECURE);
	char val[32];
	virDomainPtr nd;

	if (!xml)
		return be_err(err, errlen, "resize", vm);
	snprintf(val, sizeof(val), "%" PRIu64, kib);
	xml = drop_dimms(xml);
	if (xml)
		xml = set_text(xml, "memory", val);
	if (xml)
		xml = set_text(xml, "currentMemory", val);
	if (xml)
		xml = set_cell_memory(xml, val);
	if (!xml)
		return core_errf(err, errlen, -ENOMEM, "resize %s: out of memory",
			       vm);
	nd = virDomainDefineXML(vc, xml);
	free(xml);
	if (!nd)
		return be_err(err, errlen, "resize", vm);
	virDomainFree(nd);
	return 0;
}

/* ---- live ---------------------------------------------------------- */

static int add_dimm(virDomainPtr d, uint64_t kib)
{
	char xml[256];

	snprintf(xml, sizeof(xml), "<memory model='dimm'><target><size "
		 "unit='KiB'>%" PRIu64 "</size><node>0</node></target>"
		 "</memory>", kib);
	return virDomainAttachDeviceFlags(d, xml, VIR_DOMAIN_AFFECT_LIVE |
					  VIR_DOMAIN_AFFECT_CONFIG);
}

/* 1 when made live, 0 when only the definition changed. */
static int resize_memory(virConnectPtr vc, virDomainPtr d, const char *vm,
			 bool active, const struct limits *l, uint64_t kib,
			 char *err, size_t errlen)
{
	virDomainInfo di;
	unsigned live = VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG;

	if (virDomainGetInfo(d, &di) < 0)
		return be_err(err, errlen, "resize", vm);
	if (active && !l->dimms && virDomainSetMemoryFlags(d, kib, live) == 0)
		return 1;
	/* DIMMs only add; taking memory away needs the guest's consent
	 * (unplug or balloon), so that waits for a restart. */
	if (active && l->dimms && kib > di.maxMem &&
	    add_dimm(d, (kib - di.maxMem + 1023) / 1024 * 1024) == 0)
		return 1;
	if (active && kib == di.maxMem)
		return 1;
	virResetLastError();
	if (!l->dimms) {
		if (virDomainSetMemoryFlags(d, kib, VIR_DOMAIN_AFFECT_CONFIG |
					    VIR_DOMAIN_MEM_MAXIMUM) < 0 ||
		    virDomainSetMemoryFlags(d, kib, VIR_DOMAIN_AFFECT_CONFIG) < 0)
			return be_err(err, errlen, "resize", vm);
		return 0;
	}
	return config_memory(vc, d, vm, kib, err, errlen);
}

static int resize_cpus(virDomainPtr d, const char *vm, bool active,
		       int cpus, char *err, size_t errlen)
{
	if (active && virDomainSetVcpusFlags(d, (unsigned)cpus,
					     VIR_DOMAIN_AFFECT_LIVE |
					     VIR_DOMAIN_AFFECT_CONFIG) == 0)
		return 1;
	virResetLastError();
	if (virDomainSetVcpusFlags(d, (unsigned)cpus,
				   VIR_DOMAIN_AFFECT_CONFIG) < 0)
		return be_err(err, errlen, "resize", vm);
	return 0;
}

struct resize_ctx {
	const char *vm;
	int cpus;
	uint64_t memory;
	bool *live;
};

static int check_limits(const struct resize_ctx *x, const struct limits *l,
			char *err, size_t errlen)
{
	if (x->cpus > 0 && x->cpus > l->max_cpus)
		return core_errf(err, errlen, -EINVAL, "cpus=%d: the maximum of "
			       "this VM is %d", x->cpus, l->max_cpus);
	if (x->memory > l->max_kib * 1024)
		return core_errf(err, errlen, -EINVAL, "memory=%" PRIu64 "Mi: the "
			       "maximum of this VM is %" PRIu64 "Mi",
			       x->memory >> 20, l->max_kib >> 10);
	if (x->cpus < 0 || (x->memory > 0 && x->memory < (1ULL << 20)))
		return core_errf(err, errlen, -EINVAL, "resize %s: bad size",
			       x->vm);
	return 0;
}

static int resize_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	struct resize_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	struct limits l;
	bool active, live = true;
	int rc;

	if (!d)
		return be_err(err, errlen, "resize", x->vm);
	active = virDomainIsActive(d) == 1;
	rc = read_limits(d, x->vm, &l, err, errlen);
	if (rc == 0)
		rc = check_limits(x, &l, err, errlen);
	if (rc == 0 && x->cpus > 0) {
		rc = resize_cpus(d, x->vm, active, x->cpus, err, errlen);
		live = rc == 1;
	}
	if (rc >= 0 && x->memory > 0) {
		rc = resize_memory(vc, d, x->vm, active, &l,
				   (x->memory + 1023) / 1024, err, errlen);
		live = live && rc == 1;
	}
	if (x->live)
		*x->live = active && live;
	virDomainFree(d);
	return rc < 0 ? rc : 0;
}

int be_resize(struct be_conn *c, const char *vm, int cpus, uint64_t memory,
	      bool *live, char *err, size_t errlen)
{
	struct resize_ctx x = { vm, cpus, memory, live };

	if (live)
		*live = false;
	return be_run(c, resize_op, &x, err, errlen);
}

struct limits_ctx {
	const char *vm;
	struct limits l;
};

static int limits_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	struct limits_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	int rc;

	if (!d)
		return be_err(err, errlen, "limits", x->vm);
	rc = read_limits(d, x->vm, &x->l, err, errlen);
	virDomainFree(d);
	return rc;
}

int be_limits(struct be_conn *c, const char *vm, int *max_cpus,
	      uint64_t *max_memory, char *err, size_t errlen)
{
	struct limits_ctx x = { .vm = vm };
	int rc = be_run(c, limits_op, &x, err, errlen);

	if (rc == 0) {
		*max_cpus = x.l.max_cpus;
		*max_memory = x.l.max_kib * 1024;
	}
	return rc;
}
