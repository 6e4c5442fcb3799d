/* Backing chains of a VM's disks.  A linked clone of a running VM freezes
 * the source's disk <vm>_<disk>.qcow2 as a read-only base by an external
 * disk-only snapshot: the source goes on writing into a new overlay
 * <vm>_<disk>.<unixtime>.qcow2.  So a VM disk's current file is no longer
 * always <vm>_<disk>.qcow2, and its owned files are a chain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/priv.h"

/* Chains deeper than this are not followed (a loop would be endless). */
#define CHAIN_MAX 64

char *be_vol_backing(virConnectPtr vc, const char *path)
{
	virStorageVolPtr v = virStorageVolLookupByPath(vc, path);
	const char *end, *bs, *pe;
	char *xml, *bp = NULL;

	if (!v) {
		virResetLastError();
		return NULL;
	}
	xml = virStorageVolGetXMLDesc(v, 0);
	virStorageVolFree(v);
	if (!xml) {
		virResetLastError();
		return NULL;
	}
	end = xml + strlen(xml);
	bs = be_xml_next(xml, end, "backingStore");
	pe = bs ? be_xml_next(bs, be_xml_end(bs, end, "backingStore"), "path")
		: NULL;
	if (pe)
		bp = be_xml_text(pe, end, "path");
	free(xml);
	return bp;
}

/* base is "<its pool's dir>/<vm>_<disk>." : is path base + "qcow2" (the
 * volume be_define made) or base + digits + ".qcow2" (an overlay made by
 * be_freeze)? */
static int top_kind(const char *path, const char *base)
{
	size_t bl = strlen(base);
	const char *p = path + bl;

	if (strncmp(path, base, bl) != 0)
		return 0;
	if (strcmp(p, "qcow2") == 0)
		return 1;
	while (*p >= '0' && *p <= '9')
		p++;
	return p > path + bl && strcmp(p, ".qcow2") == 0 ? 2 : 0;
}

/* True when path is the volume of another of spec's disks, so that disk
 * "root" never takes disk "root.5"'s <vm>_root.5.qcow2 for an overlay. */
static bool other_disk(const struct be_conn *c, const char *path,
		       const char *vm, const struct core_spec *spec, size_t i)
{
	char p[PATH_MAX];
	size_t k;

	for (k = 0; k < spec->ndisks; k++)
		if (k != i && snprintf(p, sizeof(p), "%s/%s_%s.qcow2",
				       be_disk_dir(c, &spec->disks[k]), vm,
				       spec->disks[k].name) > 0 &&
		    strcmp(p, path) == 0)
			return true;
	return false;
}

int be_spec_tops(struct be_conn *c, virDomainPtr d, unsigned flags,
		 const char *vm, const struct core_spec *spec, char ***out)
{
	char *xml = d ? virDomainGetXMLDesc(d, flags) : NULL;
	char **paths = NULL, **tops = NULL, base[PATH_MAX];
	size_t n = 0, i, k;
	int rc = 0;

	virResetLastError();
	if (xml)
		rc = be_disk_paths(xml, &paths, &n);
	tops = calloc(spec->ndisks + 1, sizeof(*tops));
	for (i = 0; rc == 0 && tops && i < spec->ndisks; i++) {
		const char *top = NULL;

		snprintf(base, sizeof(base), "%s/%s_%s.",
			 be_disk_dir(c, &spec->disks[i]), vm, spec->disks[i].name);
		for (k = 0; k < n && !top; k++)
			if (top_kind(paths[k], base) &&
			    !other_disk(c, paths[k], vm, spec, i))
				top = paths[k];
		if (!top)
			snprintf(base + strlen(base), sizeof(base) - strlen(base),
				 "qcow2");
		if (!(tops[i] = strdup(top ? top : base)))
			rc = -ENOMEM;
	}
	if (!tops)
		rc = -ENOMEM;
	if (rc < 0)
		be_strv_free(tops, tops ? spec->ndisks : 0);
	else
		*out = tops;
	be_strv_free(paths, n);
	free(xml);
	return rc;
}

int be_keep_tops(struct be_conn *c, virConnectPtr vc, const char *vm,
		 const struct core_spec *spec, struct be_made *m)
{
	virDomainPtr d = virDomainLookupByName(vc, vm);
	char **tops = NULL;
	size_t i;
	int rc;

	if (!d) {
		virResetLastError();
		return 0;
	}
	rc = be_spec_tops(c, d, VIR_DOMAIN_XML_INACTIVE, vm, spec, &tops);
	for (i = 0; rc == 0 && i < spec->ndisks && i < m->npaths; i++) {
		if (strcmp(tops[i], m->paths[i]) == 0)
			continue;
		free(m->paths[i]);
		m->paths[i] = tops[i];
		tops[i] = NULL;
	}
	if (rc == 0)
		be_strv_free(tops, spec->ndisks);
	virDomainFree(d);
	return rc;
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	while (n > 0)
		if (strcmp(v[--n], s) == 0)
			return true;
	return false;
}

int be_chain_expand(struct be_conn *c, virConnectPtr vc, const char *vm,
		    char ***paths, size_t *n)
{
	size_t i;

	for (i = 0; i < *n && *n < CHAIN_MAX; i++) {
		char *b = be_vol_backing(vc, (*paths)[i]), **nv;

		if (!b || !be_owned_path(c, vm, b) || in_list(*paths, *n, b)) {
			free(b);
			continue;
		}
		nv = realloc(*paths, (*n + 1) * sizeof(*nv));
		if (!nv) {
			free(b);
			return -ENOMEM;
		}
		*paths = nv;
		nv[(*n)++] = b;
	}
	return 0;
}

bool be_chain_hits(virConnectPtr vc, const char *path, char *const *targets,
		   size_t nt)
{
	char *p = be_vol_backing(vc, path), *next;
	bool hit = false;
	int depth;

	for (depth = 0; p && !hit && depth < CHAIN_MAX; depth++) {
		hit = in_list(targets, nt, p);
		next = hit ? NULL : be_vol_backing(vc, p);
		free(p);
		p = next;
	}
	free(p);
	return hit;
}

/* ---- freezing a running VM's disks ---------------------------------- */

/* A stamp for which no <pool>/<vm>_<disk>.<stamp>.qcow2 exists yet: two
 * freezes within one second must not collide. */
static long free_stamp(const struct be_conn *c, const char *vm,
		       const struct core_spec *spec)
{
	long t = (long)time(NULL);
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < spec->ndisks; i++) {
		snprintf(p, sizeof(p), "%s/%s_%s.%ld.qcow2",
			 be_disk_dir(c, &spec->disks[i]), vm,
			 spec->disks[i].name, t);
		if (access(p, F_OK) == 0) {
			t++;
			i = (size_t)-1;
		}
	}
	return t;
}

/* Every disk of the live XML is named: the tops of spec's disks get a new
 * external overlay, the rest (seed ISO, foreign disks) snapshot='no'. */
static char *freeze_xml(const struct be_conn *c, const char *dxml,
			const char *vm, const struct core_spec *spec,
			char *const *tops, long stamp)
{
	const char *end = dxml + strlen(dxml), *el = dxml;
	struct be_sb b = { 0 };
	char dev[32], file[PATH_MAX];

	be_sb_printf(&b, "<domainsnapshot>\n  <disks>\n");
	while ((el = be_xml_next(el, end, "disk"))) {
		const char *dend = be_xml_end(el, end, "disk");
		const char *src = be_xml_next(el, dend, "source");
		const char *tgt = be_xml_next(el, dend, "target");
		size_t i = spec->ndisks;

		if (src && be_xml_attr(src, "file", file, sizeof(file)))
			for (i = 0; i < spec->ndisks; i++)
				if (strcmp(tops[i], file) == 0)
					break;
		if (tgt && be_xml_attr(tgt, "dev", dev, sizeof(dev))) {
			be_sb_printf(&b, "    <disk name='");
			be_sb_esc(&b, dev);
			if (i == spec->ndisks) {
				be_sb_printf(&b, "' snapshot='no'/>\n");
			} else {
				be_sb_printf(&b, "' snapshot='external'>\n"
					     "      <driver type='qcow2'/>\n"
					     "      <source file='");
				snprintf(file, sizeof(file), "%s/%s_%s.%ld.qcow2",
					 be_disk_dir(c, &spec->disks[i]), vm,
					 spec->disks[i].name, stamp);
				be_sb_esc(&b, file);
				be_sb_printf(&b, "'/>\n    </disk>\n");
			}
		}
		el = dend;
	}
	be_sb_printf(&b, "  </disks>\n</domainsnapshot>\n");
	return be_sb_take(&b);
}

int be_freeze(struct be_conn *c, virConnectPtr vc, virDomainPtr d,
	      const char *vm, const struct core_spec *spec, char ***bases,
	      char *err, size_t errlen)
{
	unsigned flags = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
			 VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
			 VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
	virStoragePoolPtr pool = NULL;
	virDomainSnapshotPtr s = NULL;
	char *dxml = NULL, *sxml = NULL, **tops = NULL;
	int rc;

	rc = be_spec_tops(c, d, 0, vm, spec, &tops);
	if (rc < 0) {
		core_errf(err, errlen, rc, "clone %s: out of memory", vm);
		goto out;
	}
	dxml = virDomainGetXMLDesc(d, 0);
	sxml = dxml ? freeze_xml(c, dxml, vm, spec, tops,
				 free_stamp(c, vm, spec)) : NULL;
	if (sxml)
		s = virDomainSnapshotCreateXML(d, sxml, flags);
	pool = s ? virStoragePoolLookupByName(vc, c->pool_name) : NULL;
	/* libvirt only learns of the new overlays on a refresh. */
	if (!pool || virStoragePoolRefresh(pool, 0) < 0) {
		rc = be_err(err, errlen, "clone", vm);
		goto out;
	}
	*bases = tops;
	tops = NULL;
out:
	if (s)
		virDomainSnapshotFree(s);
	if (pool)
		virStoragePoolFree(pool);
	be_strv_free(tops, tops ? spec->ndisks : 0);
	free(sxml);
	free(dxml);
	return rc;
}
