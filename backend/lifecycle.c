/* Defining, starting, stopping and inspecting domains. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/priv.h"

/* ---- our metadata --------------------------------------------------- */

static void meta_field(const char *xml, const char *end, const char *tag,
		       char *out, size_t len)
{
	const char *el = be_xml_next(xml, end, tag);
	char *t = el ? be_xml_text(el, end, tag) : NULL;

	snprintf(out, len, "%s", t ? t : "");
	free(t);
}

int be_dom_ours(const struct be_conn *c, virDomainPtr d, char *ns, char *uid,
		char **spec)
{
	char *xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
					 BE_NS_URI, 0);
	char node[BE_NAME_MAX + 1] = "";
	const char *end, *el;

	if (!xml) {
		virErrorPtr e = virGetLastError();

		if (e && e->code != VIR_ERR_NO_DOMAIN_METADATA)
			return -EIO;
		virResetLastError();
		return 0;
	}
	end = xml + strlen(xml);
	/* Daemons of several nodes may share one libvirtd (tests, two-node
	 * set-ups): a domain of another node is not ours to list or touch. */
	meta_field(xml, end, "node", node, sizeof(node));
	if (strcmp(node, c->node) != 0) {
		free(xml);
		return BE_OTHER_NODE;
	}
	if (ns)
		meta_field(xml, end, "namespace", ns, BE_NAME_MAX + 1);
	if (uid)
		meta_field(xml, end, "uid", uid, BE_NAME_MAX + 1);
	if (spec) {
		el = be_xml_next(xml, end, "spec");
		*spec = el ? be_xml_text(el, end, "spec") : NULL;
	}
	free(xml);
	return 1;
}

/* <disk device='disk'><source file='...'/> of a domain's XML. */
int be_disk_paths(const char *xml, char ***paths, size_t *n)
{
	const char *end = xml + strlen(xml), *el = xml;
	char dev[16], file[PATH_MAX];

	while ((el = be_xml_next(el, end, "disk"))) {
		const char *dend = be_xml_end(el, end, "disk");
		const char *src = be_xml_next(el, dend, "source");
		char **nv;

		if (be_xml_attr(el, "device", dev, sizeof(dev)) &&
		    strcmp(dev, "disk") == 0 && src &&
		    be_xml_attr(src, "file", file, sizeof(file))) {
			nv = realloc(*paths, (*n + 1) * sizeof(**paths));
			if (!nv)
				return -ENOMEM;
			*paths = nv;
			if (!(nv[*n] = strdup(file)))
				return -ENOMEM;
			(*n)++;
		}
		el = dend;
	}
	return 0;
}

void be_strv_free(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

/* ---- define --------------------------------------------------------- */

struct define_ctx {
	const char *name, *ns, *uid;
	const struct core_spec *spec;
	json_object *spec_json;
};

static const char *pick_network(virConnectPtr vc)
{
	virNetworkPtr n = virNetworkLookupByName(vc, "default");
	bool up = n && virNetworkIsActive(n) == 1;

	if (n)
		virNetworkFree(n);
	virResetLastError();
	return up ? "default" : NULL;
}

void be_xml_fill(const struct be_conn *c, virConnectPtr vc,
		 struct be_xml_params *p)
{
	virNodeInfo ni;

	p->node = c->node;
	p->domain_type = c->kvm ? "kvm" : "qemu";
	p->network = pick_network(vc);
	if (virNodeGetInfo(vc, &ni) == 0) {
		p->host_cpus = (int)ni.cpus;
		p->host_memory = (uint64_t)ni.memory * 1024;
	}
	virResetLastError();
}

/* The UUID of an existing domain of that name, so redefining keeps it;
 * a domain we did not make is refused rather than taken over. */
static int existing_uuid(struct be_conn *c, virConnectPtr vc,
			 const char *name, char *uuid,
			 char *err, size_t errlen)
{
	virDomainPtr d = virDomainLookupByName(vc, name);
	int rc = 0;

	*uuid = '\0';
	if (!d) {
		virErrorPtr e = virGetLastError();

		if (e && e->code == VIR_ERR_NO_DOMAIN) {
			virResetLastError();
			return 0;
		}
		return be_err(err, errlen, "define", name);
	}
	rc = be_dom_ours(c, d, NULL, NULL, NULL);
	if (rc < 0)
		rc = be_err(err, errlen, "define", name);
	else if (rc == BE_OTHER_NODE)
		rc = core_errf(err, errlen, -EEXIST, "define %s: a domain of that "
			     "name belongs to another hypersdk node", name);
	else if (rc == 0)
		rc = core_errf(err, errlen, -EEXIST, "define %s: a libvirt domain "
			     "of that name exists and is not hypersdk's", name);
	else if (virDomainGetUUIDString(d, uuid) < 0)
		rc = be_err(err, errlen, "define", name);
	else
		rc = 0;
	virDomainFree(d);
	return rc;
}

static int define_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	struct define_ctx *x = arg;
	struct be_made m = { 0 };
	struct be_xml_params p = { 0 };
	struct be_boot_files boot;
	char uuid[VIR_UUID_STRING_BUFLEN], vnc[BE_VNC_PASSWORD_LEN + 1];
	virDomainPtr d = NULL;
	char *xml = NULL;
	int rc;

	rc = existing_uuid(c, vc, x->name, uuid, err, errlen);
	if (rc < 0)
		goto out;
	rc = be_storage_prepare(c, vc, x->name, x->uid, x->spec, &m, err,
				errlen);
	if (rc == 0 && be_keep_tops(c, vc, x->name, x->spec, &m) < 0)
		rc = core_errf(err, errlen, -ENOMEM, "define %s: out of memory",
			     x->name);
	if (rc < 0)
		goto out;
	p.name = x->name;
	p.ns = x->ns;
	p.uid = x->uid;
	be_xml_fill(c, vc, &p);
	p.spec = x->spec;
	p.spec_json = x->spec_json ? json_object_to_json_string_ext(
		x->spec_json, JSON_C_TO_STRING_PLAIN) : "{}";
	p.disk_paths = (const char *const *)m.paths;
	p.seed_iso = m.seed;
	p.uuid = *uuid ? uuid : NULL;
	rc = be_boot_fill(c, &p, &boot, err, errlen);
	if (rc == 0 && be_vnc_password_keep(vc, x->name, vnc, sizeof(vnc)) < 0)
		rc = core_errf(err, errlen, -EIO, "define %s: no random bytes "
			     "for the VNC password", x->name);
	if (rc < 0)
		goto out;
	p.vnc_password = vnc;
	xml = be_domain_xml(&p);
	if (!xml) {
		rc = core_errf(err, errlen, -ENOMEM, "define %s: out of memory",
			     x->name);
		goto out;
	}
	d = virDomainDefineXML(vc, xml);
	if (!d)
		rc = be_err(err, errlen, "define", x->name);
out:
	if (rc < 0)
		be_storage_undo(c, vc, x->name, &m);
	if (d)
		virDomainFree(d);
	free(xml);
	be_made_free(&m);
	return rc;
}

int be_define(struct be_conn *c, const char *name, const char *ns,
	      const char *uid, const struct core_spec *spec,
	      json_object *spec_json, char *err, size_t errlen)
{
	struct define_ctx x = { name, ns, uid, spec, spec_json };

	if (!be_name_ok(name))
		return core_errf(err, errlen, -EINVAL, "define: bad name \"%s\"",
			       name ? name : "");
	return be_run(c, define_op, &x, err, errlen);
}

/* ---- simple state changes ------------------------------------------ */

struct dom_ctx {
	const char *name;
	const char *verb;
	int (*fn)(virDomainPtr d);
};

static int dom_op(struct be_conn *c, virConnectPtr vc, void *arg, char *err,
		  size_t errlen)
{
	struct dom_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->name);
	int rc = 0;

	if (!d)
		return be_err(err, errlen, x->verb, x->name);
	if (x->fn(d) < 0)
		rc = be_err(err, errlen, x->verb, x->name);
	virDomainFree(d);
	return rc;
}

static int run_dom(struct be_conn *c, const char *name, const char *verb,
		   int (*fn)(virDomainPtr), char *err, size_t errlen)
{
	struct dom_ctx x = { name, verb, fn };

	return be_run(c, dom_op, &x, err, errlen);
}

static int do_shutdown(virDomainPtr d)
{
	return virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
}

int be_start(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	return run_dom(c, name, "start", virDomainCreate, err, errlen);
}

int be_shutdown(struct be_conn *c, const char *name, char *err,
		size_t errlen)
{
	return run_dom(c, name, "stop", do_shutdown, err, errlen);
}

int be_destroy(struct be_conn *c, const char *name, char *err,
	       size_t errlen)
{
	return run_dom(c, name, "stop", virDomainDestroy, err, errlen);
}

int be_suspend(struct be_conn *c, const char *name, char *err,
	       size_t errlen)
{
	return run_dom(c, name, "pause", virDomainSuspend, err, errlen);
}

int be_resume(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	return run_dom(c, name, "resume", virDomainResume, err, errlen);
}

/* ---- undefine ------------------------------------------------------- */

static int undefine_dom(virDomainPtr d, const char *name, char *err,
			size_t errlen)
{
	unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
			 VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
			 VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
			 VIR_DOMAIN_UNDEFINE_NVRAM;

	if (virDomainUndefineFlags(d, flags) == 0)
		return 0;
	/* Older drivers reject flags they do not know. */
	flags &= ~(unsigned)VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
	if (virDomainUndefineFlags(d, flags) == 0)
		return 0;
	return be_err(err, errlen, "delete", name);
}

static int undefine_op(struct be_conn *c, virConnectPtr vc, void *arg,
		       char *err, size_t errlen)
{
	const char *name = arg;
	virDomainPtr d = virDomainLookupByName(vc, name);
	char **paths = NULL, *xml = NULL, deps[CORE_ERR_MAX / 2];
	size_t npaths = 0;
	int rc = 0;

	if (!d)
		return be_err(err, errlen, "delete", name);
	rc = be_dom_ours(c, d, NULL, NULL, NULL);
	if (rc <= 0 || rc == BE_OTHER_NODE) {
		rc = rc < 0 ? be_err(err, errlen, "delete", name)
			    : core_errf(err, errlen, -ENOENT, "delete %s: domain "
				      "is not hypersdk's", name);
		goto out;
	}
	rc = 0;
	if (virDomainIsActive(d) == 1) {
		rc = core_errf(err, errlen, -EBUSY, "delete %s: domain is running",
			     name);
		goto out;
	}
	xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	if (!xml) {
		rc = be_err(err, errlen, "delete", name);
		goto out;
	}
	/* With the frozen bases under its overlays: all are its files. */
	rc = be_disk_paths(xml, &paths, &npaths);
	if (rc == 0)
		rc = be_chain_expand(c, vc, name, &paths, &npaths);
	if (rc < 0) {
		core_errf(err, errlen, rc, "delete %s: out of memory", name);
		goto out;
	}
	/* Deleting the volumes under linked clones would break them. */
	rc = be_deps_of(c, vc, name, paths, npaths, deps, sizeof(deps));
	if (rc == 0 && deps[0])
		rc = core_errf(err, errlen, -EBUSY, "delete %s: linked clones "
			     "depend on its disks: %s", name, deps);
	else if (rc < 0)
		rc = be_err(err, errlen, "delete", name);
	if (rc < 0)
		goto out;
	rc = undefine_dom(d, name, err, errlen);
	if (rc == 0)
		rc = be_storage_remove(c, vc, name, paths, npaths, err, errlen);
out:
	be_strv_free(paths, npaths);
	free(xml);
	virDomainFree(d);
	return rc;
}

int be_undefine(struct be_conn *c, const char *name, char *err,
		size_t errlen)
{
	return be_run(c, undefine_op, (void *)name, err, errlen);
}

/* Another node runs it now from the same (shared) files: only the domain
 * and the node's own seed image go. */
static int forget_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	const char *name = arg;
	virDomainPtr d = virDomainLookupByName(vc, name);
	char seed[PATH_MAX];
	int rc;

	if (!d)
		return be_err(err, errlen, "forget", name);
	rc = be_dom_ours(c, d, NULL, NULL, NULL);
	if (rc <= 0) {
		rc = rc < 0 ? be_err(err, errlen, "forget", name) :
		     core_errf(err, errlen, -ENOENT, "forget %s: domain is not "
			     "hypersdk's", name);
		goto out;
	}
	if (virDomainIsActive(d) == 1 && virDomainDestroy(d) < 0) {
		rc = be_err(err, errlen, "forget", name);
		goto out;
	}
	rc = undefine_dom(d, name, err, errlen);
	if (rc == 0 && be_seed_path(c, seed, sizeof(seed), name) == 0)
		unlink(seed);
out:
	virDomainFree(d);
	return rc;
}

int be_forget(struct be_conn *c, const char *name, char *err, size_t errlen)
{
	return be_run(c, forget_op, (void *)name, err, errlen);
}

/* ---- info ----------------------------------------------------------- */

static const char *reason_name(int state, int reason)
{
	static const char *const running[] = { "unknown", "booted", "migrated",
		"restored", "from-snapshot", "unpaused", "migration-canceled",
		"save-canceled", "wakeup", "crashed", "postcopy",
		"postcopy-failed" };
	static const char *const paused[] = { "unknown", "user", "migration",
		"save", "dump", "ioerror", "watchdog", "from-snapshot",
		"shutting-down", "snapshot", "crashed", "starting-up",
		"postcopy", "postcopy-failed", "api-error" };
	static const char *const shutoff[] = { "unknown", "shutdown",
		"destroyed", "crashed", "migrated", "saved", "failed",
		"from-snapshot", "daemon" };
	static const char *const crashed[] = { "unknown", "panicked" };
	const char *const *t = NULL;
	size_t n = 0;

#define PICK(a) (t = (a), n = sizeof(a) / sizeof((a)[0]))
	switch (state) {
	case VIR_DOMAIN_RUNNING: PICK(running); break;
	case VIR_DOMAIN_PAUSED: PICK(paused); break;
	case VIR_DOMAIN_SHUTOFF: PICK(shutoff); break;
	case VIR_DOMAIN_CRASHED: PICK(crashed); break;
	case VIR_DOMAIN_SHUTDOWN: return "shutting-down";
	}
#undef PICK
	return t && reason >= 0 && (size_t)reason < n ? t[reason] : "unknown";
}

static enum core_phase phase_of(int state, int reason)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
	case VIR_DOMAIN_SHUTDOWN:
		return CORE_PHASE_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return CORE_PHASE_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return reason == VIR_DOMAIN_SHUTOFF_CRASHED ? CORE_PHASE_FAILED
							    : CORE_PHASE_STOPPED;
	case VIR_DOMAIN_CRASHED:
		return CORE_PHASE_FAILED;
	}
	return CORE_PHASE_UNKNOWN;
}

/* libvirt keeps QEMU's pid here; the live XML does not carry it. */
static int read_pid(const char *name)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/run/libvirt/qemu/%s.pid", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

/* Ports and ptys exist only while QEMU runs; the agent channel is part
 * of the definition. */
static void info_devices(const char *xml, bool active, struct be_info *o)
{
	const char *end = xml + strlen(xml), *el;
	char port[16], name[64], state[32];

	el = active ? be_xml_next(xml, end, "graphics") : NULL;
	if (el && be_xml_attr(el, "port", port, sizeof(port)))
		o->vnc_port = atoi(port);
	if (el && !be_xml_attr(el, "listen", o->vnc_address,
			       sizeof(o->vnc_address)))
		o->vnc_address[0] = '\0';
	if (el && !be_xml_attr(el, "passwd", o->vnc_password,
			       sizeof(o->vnc_password)))
		o->vnc_password[0] = '\0';
	el = active ? be_xml_next(xml, end, "console") : NULL;
	if (el && !be_xml_attr(el, "tty", o->console, sizeof(o->console)))
		o->console[0] = '\0';
	for (el = xml; (el = be_xml_next(el, end, "channel"));) {
		const char *cend = be_xml_end(el, end, "channel");
		const char *t = be_xml_next(el, cend, "target");

		if (t && be_xml_attr(t, "name", name, sizeof(name)) &&
		    strcmp(name, BE_AGENT_CHANNEL) == 0) {
			o->has_agent_channel = true;
			o->agent_connected = active &&
				be_xml_attr(t, "state", state, sizeof(state)) &&
				strcmp(state, "connected") == 0;
		}
		el = cend;
	}
}

static int info_xml(virConnectPtr vc, virDomainPtr d, bool active,
		    struct be_info *o)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_SECURE);
	char **paths = NULL;
	size_t npaths = 0;
	int rc;

	if (!xml)
		return -EIO;
	info_devices(xml, active, o);
	rc = be_disk_paths(xml, &paths, &npaths);
	if (rc == 0)
		o->disk_bytes = be_storage_capacity(vc, paths, npaths);
	be_strv_free(paths, npaths);
	free(xml);
	return rc;
}

static int info_op(struct be_conn *c, virConnectPtr vc, void *arg,
		   char *err, size_t errlen)
{
	struct { const char *name; struct be_info *o; } *x = arg;
	struct be_info *o = x->o;
	virDomainPtr d = virDomainLookupByName(vc, x->name);
	virDomainInfo di;
	int state, reason, rc = 0;
	bool active;

	if (!d)
		return be_err(err, errlen, "info", x->name);
	memset(o, 0, sizeof(*o));
	o->vnc_port = -1;
	if (virDomainGetState(d, &state, &reason, 0) < 0 ||
	    virDomainGetInfo(d, &di) < 0 ||
	    virDomainGetUUIDString(d, o->uuid) < 0) {
		rc = be_err(err, errlen, "info", x->name);
		goto out;
	}
	o->phase = phase_of(state, reason);
	snprintf(o->reason, sizeof(o->reason), "%s", reason_name(state, reason));
	o->cpus = di.nrVirtCpu;
	o->memory = (uint64_t)di.memory * 1024;
	active = state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_NOSTATE;
	if (active)
		o->pid = read_pid(x->name);
	if (info_xml(vc, d, active, o) < 0)
		rc = be_err(err, errlen, "info", x->name);
out:
	virDomainFree(d);
	return rc;
}

int be_info(struct be_conn *c, const char *name, struct be_info *out,
	    char *err, size_t errlen)
{
	struct { const char *name; struct be_info *o; } x = { name, out };

	return be_run(c, info_op, &x, err, errlen);
}

/* ---- list ----------------------------------------------------------- */

struct list_item {
	char name[BE_NAME_MAX + 1];
	char ns[BE_NAME_MAX + 1];
	char uid[BE_NAME_MAX + 1];
	char *spec;
};

struct list_ctx {
	struct list_item *items;
	size_t n;
};

static void list_clear(struct list_ctx *x)
{
	while (x->n > 0)
		free(x->items[--x->n].spec);
	free(x->items);
	x->items = NULL;
}

static int list_op(struct be_conn *c, virConnectPtr vc, void *arg,
		   char *err, size_t errlen)
{
	struct list_ctx *x = arg;
	virDomainPtr *doms = NULL;
	int i, n, rc = 0;

	list_clear(x);
	n = virConnectListAllDomains(vc, &doms, 0);
	if (n < 0)
		return be_err(err, errlen, "list", NULL);
	x->items = calloc((size_t)n + 1, sizeof(*x->items));
	if (!x->items)
		rc = -ENOMEM;
	for (i = 0; i < n; i++) {
		struct list_item *it = rc == 0 ? &x->items[x->n] : NULL;
		int ours = it ? be_dom_ours(c, doms[i], it->ns, it->uid,
					    &it->spec) : 0;

		/* A domain undefined meanwhile is simply not listed. */
		if (ours < 0 && virConnectIsAlive(vc) != 1)
			rc = be_err(err, errlen, "list", NULL);
		if (ours == 1) {
			snprintf(it->name, sizeof(it->name), "%s",
				 virDomainGetName(doms[i]));
			x->n++;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	return rc;
}

int be_list(struct be_conn *c,
	    int (*fn)(const char *name, const char *ns, const char *uid,
		      json_object *spec_json, void *arg),
	    void *arg)
{
	struct list_ctx x = { 0 };
	char err[CORE_ERR_MAX];
	size_t i;
	int rc;

	/* Collected first and reported after, so a retry after a reconnect
	 * cannot report a domain twice. */
	rc = be_run(c, list_op, &x, err, sizeof(err));
	for (i = 0; rc == 0 && i < x.n; i++) {
		json_object *j = x.items[i].spec ?
				 json_tokener_parse(x.items[i].spec) : NULL;

		rc = fn(x.items[i].name, x.items[i].ns, x.items[i].uid, j, arg);
		json_object_put(j);
	}
	list_clear(&x);
	return rc;
}
