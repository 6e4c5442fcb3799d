/* Clones: full copies and linked (qcow2 overlay) volumes, the domains
 * that depend on another's volumes, and volumes made from images. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/priv.h"

/* ---- volumes -------------------------------------------------------- */

static char *vol_xml(const char *name, uint64_t cap, const char *backing)
{
	struct be_sb b = { 0 };

	be_sb_printf(&b, "<volume>\n  <name>");
	be_sb_esc(&b, name);
	be_sb_printf(&b, "</name>\n  <capacity unit='bytes'>%" PRIu64
		     "</capacity>\n  <allocation unit='bytes'>0</allocation>\n"
		     "  <target>\n    <format type='qcow2'/>\n"
		     "    <compat>1.1</compat>\n    <permissions><mode>0600</mode></permissions>\n"
		     "  </target>\n", cap);
	if (backing) {
		be_sb_printf(&b, "  <backingStore>\n    <path>");
		be_sb_esc(&b, backing);
		be_sb_printf(&b, "</path>\n    <format type='qcow2'/>\n"
			     "  </backingStore>\n");
	}
	be_sb_printf(&b, "</volume>\n");
	return be_sb_take(&b);
}

/* Copies are made by qemu-img here, not by libvirt's volume copy: that
 * one opens the source without -U and fails on a running domain's
 * image lock, cannot report progress and cannot be stopped.  The
 * source domain is paused meanwhile, and pausing flushes QEMU's qcow2
 * caches, so the file is consistent while it is read. */
static int copy_vol(const char *dir, virStoragePoolPtr pool,
		    const char *name, virStorageVolPtr base, const char *bpath,
		    const struct be_progress *p, int done, int share,
		    char *err, size_t errlen)
{
	char path[PATH_MAX], out[1024];
	char *argv[] = { "qemu-img", "convert", "-U", "-f", "qcow2", "-O",
			 "qcow2", "-o", "compat=1.1", (char *)bpath, path,
			 NULL };
	struct be_file_tick t = { .p = p, .path = path, .what = "copying disk",
				  .done = done, .share = share, .last = -1 };
	virStorageVolInfo bi;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (virStorageVolGetInfo(base, &bi) == 0)
		t.total = bi.allocation;
	/* Claim the name first: two copies must not write one file. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return core_errf(err, errlen, -errno, "volume %s: %s", name,
			       strerror(errno));
	close(fd);
	rc = be_spawn(argv, out, sizeof(out), true, p ? p->cancel : NULL,
		      be_file_tick, &t);
	if (rc < 0) {
		unlink(path);
		return rc == -ECANCELED ?
			core_errf(err, errlen, rc, "volume %s: cancelled", name) :
			core_errf(err, errlen, rc, "volume %s: qemu-img: %s",
				name, be_last_line(out));
	}
	if (virStoragePoolRefresh(pool, 0) < 0) {
		unlink(path);
		return be_err(err, errlen, "volume", name);
	}
	return 0;
}

/* True when path is a file right in dir. */
static bool in_dir(const char *dir, const char *path)
{
	size_t dl = strlen(dir);

	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	return !strncmp(path, dir, dl) && path[dl] == '/' &&
	       !strchr(path + dl + 1, '/');
}

int be_vol_derive(struct be_conn *c, virConnectPtr vc, const char *klass,
		  const char *name, virStorageVolPtr base, bool linked,
		  uint64_t capacity, const struct be_progress *p, int done,
		  int share, char *err, size_t errlen)
{
	const struct be_pool *to = be_class_pool(c, klass);
	virStoragePoolPtr pool;
	virStorageVolInfo bi;
	virStorageVolPtr v = NULL;
	char *xml = NULL, *bpath = NULL;
	int rc = 0;

	if (klass && *klass && !to)
		return core_errf(err, errlen, -EINVAL, "volume %s: no storage "
			       "class %s on node %s", name, klass, c->node);
	pool = virStoragePoolLookupByName(vc, to ? to->name : c->pool_name);
	if (!pool || virStorageVolGetInfo(base, &bi) < 0 ||
	    !(bpath = virStorageVolGetPath(base))) {
		rc = be_err(err, errlen, "volume", name);
		goto out;
	}
	/* On shared storage a disk must not lean on a file of this node's
	 * own: another node could not open it. */
	if (linked && to && to->shared && !in_dir(to->dir, bpath))
		linked = false;
	if (capacity < bi.capacity)
		capacity = bi.capacity;
	xml = vol_xml(name, linked ? capacity : bi.capacity,
		      linked ? bpath : NULL);
	if (!xml) {
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (linked) {
		v = virStorageVolCreateXML(pool, xml, 0);
	} else {
		rc = copy_vol(to ? to->dir : c->pool_dir, pool, name, base,
			      bpath, p, done, share, err, errlen);
		if (rc < 0)
			goto out;
		v = virStorageVolLookupByName(pool, name);
	}
	if (!v) {
		rc = be_err(err, errlen, "volume", name);
		goto out;
	}
	if (!linked && capacity > bi.capacity &&
	    virStorageVolResize(v, capacity, 0) < 0) {
		rc = be_err(err, errlen, "volume", name);
		virStorageVolDelete(v, 0);
	}
out:
	if (v)
		virStorageVolFree(v);
	if (pool)
		virStoragePoolFree(pool);
	free(xml);
	free(bpath);
	return rc;
}

/* ---- dependents ----------------------------------------------------- */

/* The whole chain of each disk is searched: a clone of a clone, or a VM
 * whose disk got an overlay from a freeze, still depends on the base. */
static bool dom_depends(virConnectPtr vc, virDomainPtr d,
			char *const *targets, size_t nt)
{
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	char **paths = NULL;
	size_t n = 0, i;
	bool hit = false;

	if (!xml) {
		virResetLastError();
		return false;
	}
	if (be_disk_paths(xml, &paths, &n) == 0)
		for (i = 0; i < n && !hit; i++)
			hit = be_chain_hits(vc, paths[i], targets, nt);
	be_strv_free(paths, n);
	free(xml);
	return hit;
}

int be_deps_of(struct be_conn *c, virConnectPtr vc, const char *self,
	       char *const *paths, size_t npaths, char *out, size_t outlen)
{
	virDomainPtr *doms = NULL;
	size_t len = 0;
	int i, n;

	out[0] = '\0';
	if (npaths == 0)
		return 0;
	n = virConnectListAllDomains(vc, &doms, 0);
	if (n < 0)
		return -EIO;
	for (i = 0; i < n; i++) {
		const char *nm = virDomainGetName(doms[i]);

		if ((!self || strcmp(nm, self) != 0) &&
		    dom_depends(vc, doms[i], paths, npaths) && len < outlen) {
			int k = snprintf(out + len, outlen - len, "%s%s",
					 len ? " " : "", nm);

			len += k > 0 ? (size_t)k : 0;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	return 0;
}

struct deps_ctx {
	const char *name;
	char *out;
	size_t outlen;
};

static int deps_op(struct be_conn *c, virConnectPtr vc, void *arg,
		   char *err, size_t errlen)
{
	struct deps_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->name);
	char *xml = d ? virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE) : NULL;
	char **paths = NULL;
	size_t n = 0;
	int rc;

	if (!xml) {
		rc = be_err(err, errlen, "dependents", x->name);
		goto out;
	}
	rc = be_disk_paths(xml, &paths, &n);
	if (rc == 0)
		rc = be_chain_expand(c, vc, x->name, &paths, &n);
	if (rc == 0)
		rc = be_deps_of(c, vc, x->name, paths, n, x->out, x->outlen);
	if (rc == -EIO)
		rc = be_err(err, errlen, "dependents", x->name);
out:
	be_strv_free(paths, n);
	free(xml);
	if (d)
		virDomainFree(d);
	return rc;
}

int be_linked_dependents(struct be_conn *c, const char *name, char *out,
			 size_t outlen)
{
	struct deps_ctx x = { name, out, outlen };
	char err[CORE_ERR_MAX];

	if (outlen)
		out[0] = '\0';
	return be_run(c, deps_op, &x, err, sizeof(err));
}

/* ---- cloning a domain ----------------------------------------------- */

struct clone_ctx {
	const char *src, *dst, *ns, *uid;
	json_object *spec_json;
	bool linked;
	const struct be_progress *p;
	struct core_spec spec;
	bool have_spec;
	json_object *own_json;          /* src's spec when none was given */
	char **made;                    /* dst volumes made so far */
	size_t nmade;
};

/* dst's spec: the one given, else src's from its metadata. */
static int clone_spec(struct be_conn *c, virDomainPtr d, struct clone_ctx *x,
		      char *err, size_t errlen)
{
	char *text = NULL;
	int rc;

	if (!x->spec_json) {
		rc = be_dom_ours(c, d, NULL, NULL, &text);
		if (rc != 1 || !text) {
			free(text);
			return core_errf(err, errlen, -ENOENT, "clone %s: not a "
				       "hypersdk VM of this node", x->src);
		}
		x->own_json = json_tokener_parse(text);
		free(text);
		x->spec_json = x->own_json;
	}
	rc = core_spec_from_json(x->spec_json, &x->spec, err, errlen);
	x->have_spec = rc == 0;
	return rc;
}

static int dst_free(struct be_conn *c, virConnectPtr vc, struct clone_ctx *x,
		    virStoragePoolPtr pool, char *err, size_t errlen)
{
	virDomainPtr d = virDomainLookupByName(vc, x->dst);
	char vol[256], seed[PATH_MAX];
	size_t i;

	if (d) {
		virDomainFree(d);
		return core_errf(err, errlen, -EEXIST, "clone %s: domain %s "
			       "exists", x->src, x->dst);
	}
	virResetLastError();
	for (i = 0; i < x->spec.ndisks; i++) {
		virStorageVolPtr v;

		if (be_vol_name(vol, sizeof(vol), x->dst, x->spec.disks[i].name))
			return core_errf(err, errlen, -ENAMETOOLONG, "clone %s: "
				       "name too long", x->src);
		v = virStorageVolLookupByName(pool, vol);
		if (v) {
			virStorageVolFree(v);
			return core_errf(err, errlen, -EEXIST, "clone %s: volume "
				       "%s exists", x->src, vol);
		}
		virResetLastError();
	}
	if (be_seed_path(c, seed, sizeof(seed), x->dst) == 0 &&
	    access(seed, F_OK) == 0)
		return core_errf(err, errlen, -EEXIST, "clone %s: %s exists",
			       x->src, seed);
	return 0;
}

/* bases[i] is the file dst's disk i is derived from: src's current top,
 * or for a linked clone of a running src the base be_freeze made. */
static int clone_disks(struct be_conn *c, virConnectPtr vc,
		       struct clone_ctx *x, char *const *bases, char *err,
		       size_t errlen)
{
	size_t i, n = x->spec.ndisks;
	char dv[256];
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		virStorageVolPtr base;
		char **nm;

		if (be_cancelled(x->p))
			return core_errf(err, errlen, -ECANCELED, "clone %s: "
				       "cancelled", x->src);
		be_vol_name(dv, sizeof(dv), x->dst, x->spec.disks[i].name);
		base = virStorageVolLookupByPath(vc, bases[i]);
		if (!base)
			return be_err(err, errlen, "clone", x->src);
		rc = be_vol_derive(c, vc, x->spec.disks[i].storage_class, dv,
				   base, x->linked, 0, x->p, (int)(i * 90 / n),
				   (int)(90 / n), err, errlen);
		virStorageVolFree(base);
		nm = rc == 0 ? realloc(x->made, (x->nmade + 1) * sizeof(*nm))
			     : NULL;
		if (nm) {
			x->made = nm;
			nm[x->nmade] = strdup(dv);
			x->nmade += nm[x->nmade] != NULL;
		}
	}
	return rc;
}

static int clone_define(struct be_conn *c, virConnectPtr vc,
			struct clone_ctx *x, struct be_made *m, char *err,
			size_t errlen)
{
	struct be_xml_params xp = { 0 };
	struct be_boot_files boot;
	char vnc[BE_VNC_PASSWORD_LEN + 1];
	virDomainPtr nd;
	char *xml;
	int rc;

	xp.name = x->dst;
	xp.ns = x->ns;
	xp.uid = x->uid;
	be_xml_fill(c, vc, &xp);
	xp.spec = &x->spec;
	xp.spec_json = json_object_to_json_string_ext(x->spec_json,
						      JSON_C_TO_STRING_PLAIN);
	xp.disk_paths = (const char *const *)m->paths;
	xp.seed_iso = m->seed;
	rc = be_boot_fill(c, &xp, &boot, err, errlen);
	if (rc < 0)
		return rc;
	/* The clone's screen is not the source's: a password of its own. */
	if (be_vnc_password_new(vnc, sizeof(vnc)) < 0)
		return core_errf(err, errlen, -EIO, "clone: no random bytes for "
			       "the VNC password");
	xp.vnc_password = vnc;
	/* No <uuid> (unless uid is one) and no <mac>: libvirt makes new. */
	xml = be_domain_xml(&xp);
	if (!xml)
		return core_errf(err, errlen, -ENOMEM, "out of memory");
	nd = virDomainDefineXML(vc, xml);
	free(xml);
	if (!nd)
		return be_err(err, errlen, "clone", x->src);
	virDomainFree(nd);
	return 0;
}

/* A linked clone of a running source cannot share the file the source
 * writes, so that file is frozen first and the source goes on in an
 * overlay.  Snapshots taken before stay in the frozen file and can no
 * longer be reverted to (be_snapshot_revert refuses: it would write into
 * the clone's base). */
static int clone_freeze(struct be_conn *c, virConnectPtr vc, virDomainPtr d,
			struct clone_ctx *x, char ***bases, char *err,
			size_t errlen)
{
	be_report(x->p, 0, "freezing the source's disks");
	return be_freeze(c, vc, d, x->src, &x->spec, bases, err, errlen);
}

/* A running source is paused while its disks are copied, so the copy is
 * of one moment (crash-consistent) and not torn by the guest's writes. */
static int clone_make(struct be_conn *c, virConnectPtr vc, virDomainPtr d,
		      struct clone_ctx *x, struct be_made *m, char *err,
		      size_t errlen)
{
	int state = VIR_DOMAIN_NOSTATE, rc;
	bool paused = false;
	char **bases = NULL;

	virDomainGetState(d, &state, NULL, 0);
	if (state != VIR_DOMAIN_SHUTOFF && x->linked) {
		rc = clone_freeze(c, vc, d, x, &bases, err, errlen);
	} else {
		rc = be_spec_tops(c, d, 0, x->src, &x->spec, &bases);
		if (rc < 0)
			core_errf(err, errlen, rc, "clone %s: out of memory",
				x->src);
	}
	if (rc == 0 && state == VIR_DOMAIN_RUNNING && !x->linked) {
		if (virDomainSuspend(d) < 0)
			rc = be_err(err, errlen, "clone", x->src);
		paused = rc == 0;
	}
	if (rc == 0)
		rc = clone_disks(c, vc, x, bases, err, errlen);
	if (paused && virDomainResume(d) < 0 && rc == 0)
		rc = be_err(err, errlen, "clone", x->src);
	if (rc == 0)
		rc = be_storage_prepare(c, vc, x->dst, x->uid, &x->spec, m, err,
					errlen);
	if (rc == 0 && be_cancelled(x->p))
		rc = core_errf(err, errlen, -ECANCELED, "clone %s: cancelled",
			     x->src);
	be_report(x->p, 95, "defining");
	if (rc == 0)
		rc = clone_define(c, vc, x, m, err, errlen);
	be_strv_free(bases, bases ? x->spec.ndisks : 0);
	return rc;
}

static void clone_undo(struct be_conn *c, virConnectPtr vc,
		       struct clone_ctx *x, virStoragePoolPtr pool,
		       struct be_made *m)
{
	size_t i;

	for (i = 0; i < x->nmade; i++) {
		virStorageVolPtr v = virStorageVolLookupByName(pool, x->made[i]);

		if (v) {
			virStorageVolDelete(v, 0);
			virStorageVolFree(v);
		}
	}
	be_storage_undo(c, vc, x->dst, m);
}

static int clone_op(struct be_conn *c, virConnectPtr vc, void *arg,
		    char *err, size_t errlen)
{
	struct clone_ctx *x = arg;
	virDomainPtr d = virDomainLookupByName(vc, x->src);
	virStoragePoolPtr pool = NULL;
	struct be_made m = { 0 };
	int rc;

	if (!d)
		return be_err(err, errlen, "clone", x->src);
	pool = virStoragePoolLookupByName(vc, c->pool_name);
	if (!pool) {
		rc = be_err(err, errlen, "clone", x->src);
		goto out;
	}
	rc = x->have_spec ? 0 : clone_spec(c, d, x, err, errlen);
	if (rc == 0)
		rc = dst_free(c, vc, x, pool, err, errlen);
	if (rc < 0)
		goto out;
	be_report(x->p, 0, x->linked ? "making overlays" : "copying disks");
	rc = clone_make(c, vc, d, x, &m, err, errlen);
	if (rc < 0)
		clone_undo(c, vc, x, pool, &m);
	else
		be_report(x->p, 100, "cloned");
out:
	be_made_free(&m);
	if (pool)
		virStoragePoolFree(pool);
	virDomainFree(d);
	return rc;
}

int be_clone(struct be_conn *c, const char *src, const char *dst,
	     const char *ns, const char *uid, json_object *spec_json,
	     bool linked, const struct be_progress *p, char *err,
	     size_t errlen)
{
	struct clone_ctx x = { .src = src, .dst = dst, .ns = ns, .uid = uid,
			       .spec_json = spec_json, .linked = linked,
			       .p = p };
	int rc;

	if (!be_name_ok(dst) || !be_name_ok(src))
		return core_errf(err, errlen, -EINVAL, "clone: bad name \"%s\"",
			       be_name_ok(src) ? dst : src);
	rc = be_run(c, clone_op, &x, err, errlen);
	be_strv_free(x.made, x.nmade);
	if (x.have_spec)
		core_spec_free(&x.spec);
	json_object_put(x.own_json);
	return rc;
}

/* ---- a VM's volume from an image ----------------------------------- */

struct vfi_ctx {
	const char *vm, *disk, *klass, *base;
	bool linked;
	uint64_t size;
};

static int vfi_op(struct be_conn *c, virConnectPtr vc, void *arg,
		  char *err, size_t errlen)
{
	struct vfi_ctx *x = arg;
	virStoragePoolPtr pool = virStoragePoolLookupByName(vc, c->pool_name);
	virStorageVolPtr base = NULL, v = NULL;
	char vol[256], path[PATH_MAX];
	int rc = 0;

	if (!pool)
		return be_err(err, errlen, "volume", x->vm);
	if (be_vol_name(vol, sizeof(vol), x->vm, x->disk) < 0) {
		rc = core_errf(err, errlen, -ENAMETOOLONG, "volume %s: name too "
			     "long", x->vm);
		goto out;
	}
	/* The disk's own folder (its class's) decides whether it exists. */
	snprintf(path, sizeof(path), "%s/%s",
		 be_disk_dir(c, &(struct core_disk){ .storage_class =
						     (char *)x->klass }), vol);
	if (access(path, F_OK) == 0 ||
	    (v = virStorageVolLookupByPath(vc, path))) {
		if (v)
			virStorageVolFree(v);
		rc = core_errf(err, errlen, -EEXIST, "volume %s exists", vol);
		goto out;
	}
	virResetLastError();
	base = virStorageVolLookupByName(pool, x->base);
	if (!base) {
		rc = core_errf(err, errlen, -ENOENT, "volume %s: no image %s in "
			     "pool %s", vol, x->base, c->pool_name);
		goto out;
	}
	rc = be_vol_derive(c, vc, x->klass, vol, base, x->linked, x->size, NULL,
			   0, 0, err, errlen);
out:
	if (base)
		virStorageVolFree(base);
	virStoragePoolFree(pool);
	return rc;
}

int be_volume_from_image(struct be_conn *c, const char *vm, const char *disk,
			 const char *klass, const char *base_vol, bool linked,
			 uint64_t size, char *err, size_t errlen)
{
	struct vfi_ctx x = { vm, disk, klass, base_vol, linked, size };

	if (!be_name_ok(vm) || !be_name_ok(disk) || !be_name_ok(base_vol))
		return core_errf(err, errlen, -EINVAL, "volume: bad name");
	return be_run(c, vfi_op, &x, err, errlen);
}
