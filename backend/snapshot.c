/* Internal qcow2 snapshots.  libvirt 9.0 reverts only internal snapshots
 * (external ones from 9.9 on), and an internal snapshot of a running
 * domain always holds its memory (QEMU's savevm).  So a "disk-only"
 * snapshot of a running domain is taken the same way and marked in its
 * description; reverting to it restores the disks and leaves the domain
 * stopped, as for a snapshot of a stopped domain (qemu-img snapshot). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/priv.h"

/* In the description of snapshots taken of a running domain whose
 * memory the user did not want. */
#define NOMEM_MARK "hypersdk:disk-only"
/* Seconds the agent gets to answer a freeze or thaw. */
#define AGENT_TIMEOUT 5

static bool snap_name_ok(const char *s)
{
	return be_name_ok(s) && strlen(s) <= CORE_NAME_MAX;
}

static enum core_phase phase_of_state(const char *st)
{
	if (!strcmp(st, "running") || !strcmp(st, "blocked"))
		return CORE_PHASE_RUNNING;
	if (!strcmp(st, "paused") || !strcmp(st, "pmsuspended"))
		return CORE_PHASE_PAUSED;
	if (!strcmp(st, "shutoff") || !strcmp(st, "disk-snapshot"))
		return CORE_PHASE_STOPPED;
	return CORE_PHASE_UNKNOWN;
}

static void text_of(const char *xml, const char *end, const char *tag,
		    char *out, size_t len)
{
	const char *el = be_xml_next(xml, end, tag);
	char *t = el ? be_xml_text(el, end, tag) : NULL;

	snprintf(out, len, "%s", t ? t : "");
	free(t);
}

/* The snapshot's own elements come before its embedded <domain>. */
static void info_of_xml(const char *xml, struct be_snap_info *o)
{
	const char *end = xml + strlen(xml), *dom = be_xml_next(xml, end,
								"domain");
	const char *head = dom ? dom : end, *par, *mem;
	char st[32], desc[256], created[32], kind[32] = "";

	text_of(xml, head, "name", o->name, sizeof(o->name));
	text_of(xml, head, "state", st, sizeof(st));
	text_of(xml, head, "description", desc, sizeof(desc));
	text_of(xml, head, "creationTime", created, sizeof(created));
	par = be_xml_next(xml, head, "parent");
	o->parent[0] = '\0';
	if (par)
		text_of(par, be_xml_end(par, head, "parent"), "name", o->parent,
			sizeof(o->parent));
	mem = be_xml_next(xml, head, "memory");
	if (mem)
		be_xml_attr(mem, "snapshot", kind, sizeof(kind));
	o->vm_phase = phase_of_state(st);
	o->memory = o->vm_phase != CORE_PHASE_STOPPED &&
		    strcmp(kind, "no") != 0 && !strstr(desc, NOMEM_MARK);
	o->created = strtoll(created, NULL, 10);
}

static int snap_info(virDomainSnapshotPtr s, struct be_snap_info *o)
{
	char *xml = virDomainSnapshotGetXMLDesc(s, 0);

	if (!xml)
		return -EIO;
	memset(o, 0, sizeof(*o));
	info_of_xml(xml, o);
	o->current = virDomainSnapshotIsCurrent(s, 0) == 1;
	free(xml);
	return 0;
}

/* ---- create --------------------------------------------------------- */

/* Read-only raw disks (the cloud-init seed) cannot hold an internal
 * snapshot and need none. */
static void skip_readonly(struct be_sb *b, virDomainPtr d)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	const char *end, *el, *dend, *t;
	char dev[32];

	if (!xml)
		return;
	end = xml + strlen(xml);
	be_sb_printf(b, "  <disks>\n");
	for (el = xml; (el = be_xml_next(el, end, "disk")); el = dend) {
		dend = be_xml_end(el, end, "disk");
		t = be_xml_next(el, dend, "target");
		if (!t || !be_xml_attr(t, "dev", dev, sizeof(dev)))
			continue;
		if (be_xml_next(el, dend, "readonly")) {
			be_sb_printf(b, "    <disk name='");
			be_sb_esc(b, dev);
			be_sb_printf(b, "' snapshot='no'/>\n");
		}
	}
	be_sb_printf(b, "  </disks>\n");
	free(xml);
}

static char *snap_xml(virDomainPtr d, const char *snap, bool nomem)
{
	struct be_sb b = { 0 };

	be_sb_printf(&b, "<domainsnapshot>\n  <name>");
	be_sb_esc(&b, snap);
	be_sb_printf(&b, "</name>\n");
	if (nomem)
		be_sb_printf(&b, "  <description>%s</description>\n",
			     NOMEM_MARK);
	skip_readonly(&b, d);
	be_sb_printf(&b, "</domainsnapshot>\n");
	return be_sb_take(&b);
}

/* A frozen guest file system is consistent on disk.  The agent's timeout
 * bounds the wait; an agent that is absent fails at once. */
static bool agent_freeze(virDomainPtr d)
{
	bool frozen;

	if (virDomainAgentSetResponseTimeout(d, AGENT_TIMEOUT, 0) < 0) {
		virResetLastError();
		return false;
	}
	frozen = virDomainFSFreeze(d, NULL, 0, 0) >= 0;
	virResetLastError();
	return frozen;
}

/* Also after a failed freeze: one that timed out here may still have
 * happened in the guest. */
static void agent_thaw(virDomainPtr d)
{
	virDomainFSThaw(d, NULL, 0, 0);
	virDomainAgentSetResponseTimeout(d,
		VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT, 0);
	virResetLastError();
}

struct create_ctx {
	const char *vm, *snap;
	bool memory, quiesce, *quiesced;
	struct be_snap_info *out;
};

static int take(virDomainPtr d, const struct create_ctx *x, bool active,
		char *err, size_t errlen)
{
	virDomainSnapshotPtr s;
	bool tried = false, frozen = false;
	char *xml = snap_xml(d, x->snap, active && !x->memory);
	int rc = 0;

	if (!xml)
		return core_errf(err, errlen, -ENOMEM, "snapshot %s: out of "
			       "memory", x->vm);
	if (active && x->quiesce) {
		tried = true;
		frozen = agent_freeze(d);
	}
	s = virDomainSnapshotCreateXML(d, xml, 0);
	if (!s)
		rc = be_err(err, errlen, "snapshot", x->vm);
	if (tried)
		agent_thaw(d);
	if (x->quiesced)
		*x->quiesced = frozen && s;
	if (s && x->out && snap_info(s, x->out) < 0)
		rc = be_err(err, errlen, "snapshot", x->vm);
	if (s)
		virDomainSnapshotFree(s);
	free(xml);
	return rc;
}

/* One image's share of a snapshot: its data now (the snapshot was just
 * taken) and the memory state saved in it (qemu-img's vm-state-size). */
static uint64_t image_snap_size(const char *path, const char *snap)
{
	char *argv[] = { "qemu-img", "info", "-U", "--output=json",
			 (char *)path, NULL };
	const size_t cap = 256 * 1024;
	char *out = malloc(cap);
	json_object *j = NULL, *arr, *e, *v;
	uint64_t sz = 0;

	if (!out || be_spawn(argv, out, cap, false, NULL, NULL, NULL) < 0 ||
	    !(j = json_tokener_parse(out)))
		goto out;
	if (json_object_object_get_ex(j, "actual-size", &v))
		sz += (uint64_t)json_object_get_int64(v);
	if (!json_object_object_get_ex(j, "snapshots", &arr))
		goto out;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		e = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(e, "name", &v) &&
		    !strcmp(json_object_get_string(v), snap) &&
		    json_object_object_get_ex(e, "vm-state-size", &v))
			sz += (uint64_t)json_object_get_int64(v);
	}
out:
	json_object_put(j);
	free(out);
	return sz;
}

/* What restoring the snapshot brings back, best effort: the disks' data
 * and the saved memory (0 when qemu-img cannot tell). */
static uint64_t snap_size(virDomainPtr d, const char *snap)
{
	char *xml = virDomainGetXMLDesc(d, 0), **paths = NULL;
	uint64_t total = 0;
	size_t n = 0;

	if (xml && be_disk_paths(xml, &paths, &n) == 0)
		for (size_t i = 0; i < n; i++)
			total += image_snap_size(paths[i], snap);
	be_strv_free(paths, n);
	free(xml);
	return total;
}

static int create_op(struct be_conn *c, virConnectPtr vc, void *arg,
		     char *err, size_t errlen)
{
	struct create_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	virDomainSnapshotPtr old;
	int rc;

	if (!d)
		return be_err(err, errlen, "snapshot", x->vm);
	old = virDomainSnapshotLookupByName(d, x->snap, 0);
	if (old) {
		virDomainSnapshotFree(old);
		rc = core_errf(err, errlen, -EEXIST, "snapshot %s: %s exists",
			     x->vm, x->snap);
		goto out;
	}
	virResetLastError();
	rc = take(d, x, virDomainIsActive(d) == 1, err, errlen);
	if (rc == 0 && x->out)
		x->out->size_bytes = snap_size(d, x->snap);
out:
	virDomainFree(d);
	return rc;
}

int be_snapshot_create(struct be_conn *c, const char *vm, const char *snap,
		       bool memory, bool quiesce, bool *quiesced,
		       struct be_snap_info *out, char *err, size_t errlen)
{
	struct create_ctx x = { vm, snap, memory, quiesce, quiesced, out };

	if (quiesced)
		*quiesced = false;
	if (!snap_name_ok(snap))
		return core_errf(err, errlen, -EINVAL, "snapshot %s: bad name "
			       "\"%s\"", vm, snap ? snap : "");
	return be_run(c, create_op, &x, err, errlen);
}

/* ---- one snapshot: revert, delete, info ----------------------------- */

struct one_ctx {
	const char *vm, *snap, *verb;
	int (*fn)(virDomainPtr d, virDomainSnapshotPtr s,
		  struct be_snap_info *o);
	struct be_snap_info *out;
};

static int do_revert(virDomainPtr d, virDomainSnapshotPtr s,
		     struct be_snap_info *o)
{
	unsigned flags = 0;
	int rc;

	if (snap_info(s, o) < 0)
		return -1;
	if (o->memory)
		flags = VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING;
	else if (o->vm_phase != CORE_PHASE_STOPPED)
		flags = VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED;
	rc = virDomainRevertToSnapshot(s, flags);
	if (rc < 0) {
		virErrorPtr e = virGetLastError();

		/* libvirt wants FORCE where reverting discards the running
		 * state; the user asked for exactly that. */
		if (!e || e->code != VIR_ERR_SNAPSHOT_REVERT_RISKY)
			return -1;
		rc = virDomainRevertToSnapshot(s, flags |
					       VIR_DOMAIN_SNAPSHOT_REVERT_FORCE);
	}
	/* Disk-only semantics: the disks as they were, the domain off. */
	if (rc == 0 && flags == VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED)
		rc = virDomainDestroy(d);
	return rc;
}

static int do_delete(virDomainPtr d, virDomainSnapshotPtr s,
		     struct be_snap_info *o)
{
	return virDomainSnapshotDelete(s, 0);
}

static int do_info(virDomainPtr d, virDomainSnapshotPtr s,
		   struct be_snap_info *o)
{
	return snap_info(s, o);
}

/* A snapshot from before the domain's disks were frozen for a linked
 * clone (backend/chain.c) names the frozen files: reverting it would put
 * the guest back on them and write into the clone's base. */
static bool predates_freeze(virDomainPtr d, virDomainSnapshotPtr s)
{
	char *sx = virDomainSnapshotGetXMLDesc(s, 0);
	char *dx = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	char **sp = NULL, **dp = NULL;
	size_t sn = 0, dn = 0;
	bool r = false;

	if (sx && dx && be_disk_paths(sx, &sp, &sn) == 0 &&
	    be_disk_paths(dx, &dp, &dn) == 0)
		for (size_t i = 0; i < sn && i < dn && !r; i++)
			r = strcmp(sp[i], dp[i]) != 0;
	be_strv_free(sp, sn);
	be_strv_free(dp, dn);
	free(sx);
	free(dx);
	return r;
}

static int one_op(struct be_conn *c, virConnectPtr vc, void *arg,
		  char *err, size_t errlen)
{
	struct one_ctx *x = arg;
	struct be_snap_info tmp;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	virDomainSnapshotPtr s;
	int rc = 0;

	if (!d)
		return be_err(err, errlen, x->verb, x->vm);
	s = virDomainSnapshotLookupByName(d, x->snap, 0);
	if (!s) {
		virErrorPtr e = virGetLastError();

		rc = e && e->code == VIR_ERR_NO_DOMAIN_SNAPSHOT ?
			core_errf(err, errlen, -ENOENT, "%s %s: no snapshot %s",
				x->verb, x->vm, x->snap) :
			be_err(err, errlen, x->verb, x->vm);
		goto out;
	}
	if (x->fn == do_revert && predates_freeze(d, s))
		rc = core_errf(err, errlen, -EBUSY, "revert %s: snapshot %s was "
			     "taken before the disks were frozen for a linked "
			     "clone; reverting it would write into the clone's "
			     "base", x->vm, x->snap);
	/* Its data lives in the frozen base, which libvirt will not touch:
	 * only the record goes (the base goes with the VM's files). */
	else if (x->fn == do_delete && predates_freeze(d, s))
		rc = virDomainSnapshotDelete(s, VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) < 0 ?
			be_err(err, errlen, x->verb, x->vm) : 0;
	else if (x->fn(d, s, x->out ? x->out : &tmp) < 0)
		rc = be_err(err, errlen, x->verb, x->vm);
	virDomainSnapshotFree(s);
out:
	virDomainFree(d);
	return rc;
}

static int run_one(struct be_conn *c, const char *vm, const char *snap,
		   const char *verb,
		   int (*fn)(virDomainPtr, virDomainSnapshotPtr,
			     struct be_snap_info *),
		   struct be_snap_info *out, char *err, size_t errlen)
{
	struct one_ctx x = { vm, snap, verb, fn, out };

	if (!snap_name_ok(snap))
		return core_errf(err, errlen, -EINVAL, "%s %s: bad snapshot name",
			       verb, vm);
	return be_run(c, one_op, &x, err, errlen);
}

int be_snapshot_revert(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen)
{
	return run_one(c, vm, snap, "revert", do_revert, NULL, err, errlen);
}

int be_snapshot_delete(struct be_conn *c, const char *vm, const char *snap,
		       char *err, size_t errlen)
{
	return run_one(c, vm, snap, "delete snapshot", do_delete, NULL, err,
		       errlen);
}

int be_snapshot_info(struct be_conn *c, const char *vm, const char *snap,
		     struct be_snap_info *out, char *err, size_t errlen)
{
	return run_one(c, vm, snap, "snapshot", do_info, out, err, errlen);
}

/* ---- list ----------------------------------------------------------- */

static bool placed(const struct be_snap_info *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return true;
	return false;
}

/* Oldest first, and a parent always before its children (creation times
 * have one-second resolution). */
static void order(struct be_snap_info *in, size_t n, struct be_snap_info *out)
{
	bool *used = calloc(n ? n : 1, sizeof(*used));
	size_t k, i, best;

	if (!used) {
		memcpy(out, in, n * sizeof(*in));
		return;
	}
	for (k = 0; k < n; k++) {
		best = n;
		for (i = 0; i < n; i++) {
			bool ready = !in[i].parent[0] ||
				     placed(out, k, in[i].parent) ||
				     !placed(in, n, in[i].parent);

			if (used[i] || !ready)
				continue;
			if (best == n || in[i].created < in[best].created)
				best = i;
		}
		/* A cycle cannot happen; be safe anyway. */
		for (i = 0; best == n && i < n; i++)
			if (!used[i])
				best = i;
		out[k] = in[best];
		used[best] = true;
	}
	free(used);
}

struct list_ctx {
	const char *vm;
	struct be_snap_info *v;
	size_t n;
};

static int list_op(struct be_conn *c, virConnectPtr vc, void *arg,
		   char *err, size_t errlen)
{
	struct list_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->vm);
	virDomainSnapshotPtr *snaps = NULL;
	struct be_snap_info *tmp = NULL;
	int i, n, rc = 0;

	free(x->v);     /* from an attempt before a reconnect */
	x->v = NULL;
	x->n = 0;
	if (!d)
		return be_err(err, errlen, "snapshots", x->vm);
	n = virDomainListAllSnapshots(d, &snaps, 0);
	if (n < 0) {
		rc = be_err(err, errlen, "snapshots", x->vm);
		goto out;
	}
	tmp = calloc((size_t)n + 1, sizeof(*tmp));
	x->v = calloc((size_t)n + 1, sizeof(*x->v));
	if (!tmp || !x->v)
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		if (rc == 0 && snap_info(snaps[i], &tmp[i]) < 0)
			rc = be_err(err, errlen, "snapshots", x->vm);
		virDomainSnapshotFree(snaps[i]);
	}
	if (rc == 0) {
		order(tmp, (size_t)n, x->v);
		x->n = (size_t)n;
	}
out:
	free(snaps);
	free(tmp);
	virDomainFree(d);
	return rc;
}

int be_snapshot_list(struct be_conn *c, const char *vm,
		     struct be_snap_info **out, size_t *n, char *err,
		     size_t errlen)
{
	struct list_ctx x = { vm, NULL, 0 };
	int rc;

	*out = NULL;
	*n = 0;
	rc = be_run(c, list_op, &x, err, errlen);
	if (rc < 0) {
		free(x.v);
		return rc;
	}
	*out = x.v;
	*n = x.n;
	return 0;
}
