/* The dir storage pool, disk volumes and the cloud-init seed image. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/priv.h"

extern char **environ;

/* ---- the pool ------------------------------------------------------- */

/* Equal as directories: "/a/b/" and "/a/b" and symlinked spellings. */
static bool same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	if (la == lb && memcmp(a, b, la) == 0)
		return true;
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static virStoragePoolPtr pool_define(virConnectPtr vc, const char *name,
				     const char *dir)
{
	struct be_sb b = { 0 };
	virStoragePoolPtr p = NULL;
	char *xml;

	be_sb_printf(&b, "<pool type='dir'>\n  <name>");
	be_sb_esc(&b, name);
	be_sb_printf(&b, "</name>\n  <target>\n    <path>");
	be_sb_esc(&b, dir);
	/* QEMU runs as libvirt-qemu and must traverse the directory. */
	be_sb_printf(&b, "</path>\n    <permissions><mode>0711</mode>"
		     "</permissions>\n  </target>\n</pool>\n");
	xml = be_sb_take(&b);
	if (xml)
		p = virStoragePoolDefineXML(vc, xml, 0);
	free(xml);
	return p;
}

/* The pool of our name must be at our directory; anything else would
 * put disks where the operator does not expect them.  Volume paths come
 * back in libvirt's spelling of the directory, so adopt it (*dir). */
static int pool_check_path(virStoragePoolPtr p, const char *name, char **dir,
			   bool fresh, char *err, size_t errlen)
{
	char *xml = virStoragePoolGetXMLDesc(p, 0);
	const char *end, *el;
	char *path = NULL;
	int rc = 0;

	if (!xml)
		return be_err(err, errlen, "storage pool", name);
	end = xml + strlen(xml);
	el = be_xml_next(be_xml_next(xml, end, "target"), end, "path");
	if (el)
		path = be_xml_text(el, end, "path");
	if (!path || (!fresh && !same_dir(path, *dir))) {
		rc = core_errf(err, errlen, -EEXIST, "storage pool %s exists "
			     "with path %s, not %s", name,
			     path ? path : "(none)", *dir);
		goto out;
	}
	/* Others read the directory without the lock; replace it only when
	 * the spelling differs, which happens at most once, in be_open. */
	if (strcmp(path, *dir) != 0) {
		free(*dir);
		*dir = path;
		path = NULL;
	}
out:
	free(path);
	free(xml);
	return rc;
}

static int pool_ensure(virConnectPtr vc, const char *name, char **dir,
		       char *err, size_t errlen)
{
	virStoragePoolPtr p;
	bool defined = false;
	int rc = 0, autostart = 0;

	p = virStoragePoolLookupByName(vc, name);
	if (!p) {
		virResetLastError();
		p = pool_define(vc, name, *dir);
		if (!p)
			return be_err(err, errlen, "storage pool", name);
		defined = true;
	}
	rc = pool_check_path(p, name, dir, defined, err, errlen);
	if (rc < 0)
		goto out;
	if (virStoragePoolIsActive(p) != 1) {
		/* Build is mkdir for a dir pool; harmless when it exists. */
		if (virStoragePoolBuild(p, 0) < 0 || virStoragePoolCreate(p, 0) < 0) {
			rc = be_err(err, errlen, "storage pool", name);
			goto out;
		}
	}
	if (virStoragePoolGetAutostart(p, &autostart) == 0 && !autostart &&
	    virStoragePoolSetAutostart(p, 1) < 0)
		rc = be_err(err, errlen, "storage pool", name);
out:
	if (rc < 0 && defined) {
		virStoragePoolUndefine(p);
		virResetLastError();
	}
	virStoragePoolFree(p);
	return rc;
}

int be_pool_ensure(struct be_conn *c, virConnectPtr vc, char *err,
		   size_t errlen)
{
	int rc = pool_ensure(vc, c->pool_name, &c->pool_dir, err, errlen);

	for (size_t i = 0; rc == 0 && i < c->nclasses; i++)
		rc = pool_ensure(vc, c->classes[i].name, &c->classes[i].dir,
				 err, errlen);
	return rc;
}

const char *be_disk_dir(const struct be_conn *c, const struct core_disk *d)
{
	const struct be_pool *p = be_class_pool(c, d->storage_class);

	return p ? p->dir : c->pool_dir;
}

const char *be_folder(const struct be_conn *c, const char *klass)
{
	const struct be_pool *p;

	if (!klass || !*klass)
		return c->pool_dir;
	p = be_class_pool(c, klass);
	return p ? p->dir : NULL;
}

const struct be_pool *be_class_pool(const struct be_conn *c, const char *klass)
{
	for (size_t i = 0; klass && i < c->nclasses; i++)
		if (!strcmp(c->classes[i].klass, klass))
			return &c->classes[i];
	return NULL;
}

/* ---- names ---------------------------------------------------------- */

int be_vol_name(char *out, size_t len, const char *vm, const char *disk)
{
	int n = snprintf(out, len, "%s_%s.qcow2", vm, disk);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int be_seed_path(const struct be_conn *c, char *out, size_t len,
		 const char *vm)
{
	int n = snprintf(out, len, "%s/%s_cidata.iso", c->pool_dir, vm);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- volumes -------------------------------------------------------- */

static virStorageVolPtr vol_create(virStoragePoolPtr p, const char *vol,
				   uint64_t size)
{
	struct be_sb b = { 0 };
	virStorageVolPtr v = NULL;
	char *xml;

	be_sb_printf(&b, "<volume>\n  <name>");
	be_sb_esc(&b, vol);
	/* allocation 0: sparse, the image grows as the guest writes. */
	be_sb_printf(&b, "</name>\n  <capacity unit='bytes'>%" PRIu64
		     "</capacity>\n  <allocation unit='bytes'>0</allocation>\n"
		     "  <target>\n    <format type='qcow2'/>\n"
		     "    <permissions><mode>0600</mode></permissions>\n"
		     "  </target>\n</volume>\n", size);
	xml = be_sb_take(&b);
	if (xml)
		v = virStorageVolCreateXML(p, xml, 0);
	free(xml);
	return v;
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int disk_prepare(virStoragePoolPtr p, const char *name,
			const struct core_disk *d, struct be_made *m,
			char *err, size_t errlen)
{
	virStorageVolPtr v;
	char vol[256], *path;
	bool made;
	int rc;

	if (!be_name_ok(d->name))
		return core_errf(err, errlen, -EINVAL, "define %s: bad disk name "
			       "\"%s\"", name, d->name ? d->name : "");
	if (be_vol_name(vol, sizeof(vol), name, d->name) < 0)
		return core_errf(err, errlen, -EINVAL, "define %s: disk name too "
			       "long", name);
	v = virStorageVolLookupByName(p, vol);
	made = !v;
	if (!v) {
		virResetLastError();
		if (d->size == 0)
			return core_errf(err, errlen, -EINVAL, "define %s: disk %s "
				       "has no size", name, d->name);
		v = vol_create(p, vol, d->size);
		if (!v)
			return be_err(err, errlen, "define", name);
	}
	path = virStorageVolGetPath(v);
	rc = path ? strv_add(&m->paths, &m->npaths, path)
		  : be_err(err, errlen, "define", name);
	if (made && (rc < 0 || strv_add(&m->vols, &m->nvols, path) < 0)) {
		virStorageVolDelete(v, 0);
		rc = rc < 0 ? rc : core_errf(err, errlen, -ENOMEM, "out of memory");
	}
	free(path);
	virStorageVolFree(v);
	return rc;
}

/* The pool of a disk: its storage class's, else the node's own.  A pool
 * on shared storage is refreshed first: another node may have made the
 * volume, and it must be found, not made again. */
static int disk_pool(struct be_conn *c, virConnectPtr vc, const char *name,
		     const struct core_disk *d, virStoragePoolPtr *out,
		     char *err, size_t errlen)
{
	const struct be_pool *bp = NULL;
	int rc;

	*out = NULL;
	if (d->storage_class && *d->storage_class) {
		bp = be_class_pool(c, d->storage_class);
		if (!bp)
			return core_errf(err, errlen, -EINVAL, "define %s: disk "
				       "%s: no storage class %s on node %s "
				       "(--storage-class %s=DIR)", name, d->name,
				       d->storage_class, c->node,
				       d->storage_class);
	}
	*out = virStoragePoolLookupByName(vc, bp ? bp->name : c->pool_name);
	if (!*out)
		return be_err(err, errlen, "define", name);
	if (bp && bp->shared && virStoragePoolRefresh(*out, 0) < 0) {
		rc = be_err(err, errlen, "define", name);
		virStoragePoolFree(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

/* ---- the NoCloud seed ---------------------------------------------- */

int be_commit_file(const char *part, const char *path, const char *dir)
{
	int fd = open(part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(part, path) < 0)
		rc = -errno;
	fd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return rc;
}

/* Made 0600 before xorriso writes into it: cloud-init user data holds
 * passwords and keys. */
static int seed_part(const char *part)
{
	int fd;

	unlink(part);
	fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int write_file(const char *dir, const char *file, const char *data)
{
	char path[PATH_MAX];
	size_t len = strlen(data), off = 0;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* xorriso ends with "aborting : -abort_on 'FAILURE' ..."; the line that
 * names the problem is the last "FAILURE : " (or "SORRY : ") before it. */
static void xorriso_reason(char *buf, size_t len, const char *data, size_t n)
{
	const char *p = data, *end = data + n, *m;
	const char *fail = NULL, *fail_e = NULL, *sorry = NULL, *sorry_e = NULL;

	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));

		if (!e)
			e = end;
		if ((m = memmem(p, (size_t)(e - p), "FAILURE : ", 10)))
			fail = m + 10, fail_e = e;
		else if ((m = memmem(p, (size_t)(e - p), "SORRY : ", 8)))
			sorry = m + 8, sorry_e = e;
		p = e + 1;
	}
	if (fail)
		snprintf(buf, len, "%.*s", (int)(fail_e - fail), fail);
	else if (sorry)
		snprintf(buf, len, "%.*s", (int)(sorry_e - sorry), sorry);
	else
		snprintf(buf, len, "xorriso failed");
}

static int run_xorriso(const char *dir, const char *out, const char *tag,
		       char *why, size_t whylen)
{
	char *argv[] = { "xorriso", "-as", "mkisofs", "-V", "cidata", "-J",
			 "-r", "-A", (char *)tag, "-o", (char *)out,
			 (char *)dir, NULL };
	posix_spawn_file_actions_t fa;
	char tail[2048];
	size_t n = 0;
	int pfd[2], status = 0, rc;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	rc = -posix_spawnp(&pid, "xorriso", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc < 0) {
		snprintf(why, whylen, "cannot run xorriso: %s", strerror(-rc));
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (n == sizeof(tail)) {
			memmove(tail, tail + n / 2, n - n / 2);
			n -= n / 2;
		}
		r = read(pfd[0], tail + n, sizeof(tail) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		xorriso_reason(why, whylen, tail, n);
		rc = -EIO;
	}
out:
	close(pfd[0]);
	return rc;
}

/* The user's meta-data, or ours in buf. */
static const char *seed_meta(char *buf, size_t len, const char *name,
			     const char *uid, const struct core_spec *s)
{
	if (s->meta_data && *s->meta_data)
		return s->meta_data;
	snprintf(buf, len, "instance-id: %s\nlocal-hostname: %s\n",
		 uid && *uid ? uid : name, name);
	return buf;
}

/* The files cloud-init's NoCloud source reads from a volume labelled
 * cidata. */
static int seed_files(const char *dir, const char *meta,
		      const struct core_spec *s)
{
	int rc;

	rc = write_file(dir, "user-data", s->user_data ? s->user_data : "");
	if (rc == 0)
		rc = write_file(dir, "meta-data", meta);
	if (rc == 0 && s->network_data && *s->network_data)
		rc = write_file(dir, "network-config", s->network_data);
	return rc;
}

static void fnv(uint64_t *h, const char *s)
{
	do {
		*h ^= (unsigned char)*s;
		*h *= 0x100000001b3ULL;
	} while (*s++);
}

/* A digest of the seed's content, stored as the ISO's application id so
 * a redefine with the same cloud-init skips xorriso (~0.1 s). */
static void seed_tag(char *tag, size_t len, const char *meta,
		     const struct core_spec *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	fnv(&h, s->user_data ? s->user_data : "");
	fnv(&h, meta);
	fnv(&h, s->network_data ? s->network_data : "");
	snprintf(tag, len, "HSDK-%016" PRIX64, h);
}

/* ISO 9660: the primary volume descriptor is at 32 KiB; its application
 * identifier field at offset 574. */
static bool seed_current(const char *seed, const char *tag)
{
	char buf[64];
	size_t n = strlen(tag);
	ssize_t r;
	int fd = open(seed, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	r = pread(fd, buf, sizeof(buf), 32768 + 574);
	close(fd);
	return r >= (ssize_t)n + 1 && memcmp(buf, tag, n) == 0 && buf[n] == ' ';
}

static void seed_cleanup_dir(const char *dir)
{
	static const char *const files[] = { "user-data", "meta-data",
					     "network-config" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* Built beside the final name and renamed, so a running guest or a
 * concurrent pool refresh never sees half an image.  1 when built, 0
 * when the existing image already has this content. */
static int seed_build(struct be_conn *c, const char *name, const char *uid,
		      const struct core_spec *s, const char *seed, char *err,
		      size_t errlen)
{
	char dir[] = "/tmp/hypersdk-seed-XXXXXX";
	char part[PATH_MAX], why[256] = "", buf[256], tag[32];
	const char *meta = seed_meta(buf, sizeof(buf), name, uid, s);
	int rc;

	seed_tag(tag, sizeof(tag), meta, s);
	if (seed_current(seed, tag))
		return 0;
	if ((size_t)snprintf(part, sizeof(part), "%s.part", seed) >= sizeof(part))
		return core_errf(err, errlen, -ENAMETOOLONG, "define %s: seed "
			       "path too long", name);
	if (!mkdtemp(dir))
		return core_errf(err, errlen, -errno, "define %s: seed: %s", name,
			       strerror(errno));
	rc = seed_files(dir, meta, s);
	if (rc < 0) {
		core_errf(err, errlen, rc, "define %s: seed: %s", name,
			strerror(-rc));
		goto out;
	}
	rc = seed_part(part);
	if (rc == 0)
		rc = run_xorriso(dir, part, tag, why, sizeof(why));
	if (rc == 0)
		rc = be_commit_file(part, seed, c->pool_dir);
	if (rc < 0) {
		unlink(part);
		core_errf(err, errlen, rc, "define %s: seed image: %s", name,
			*why ? why : strerror(-rc));
	}
out:
	seed_cleanup_dir(dir);
	return rc < 0 ? rc : 1;
}

static bool wants_seed(const struct core_spec *s)
{
	return (s->user_data && *s->user_data) ||
	       (s->network_data && *s->network_data) ||
	       (s->meta_data && *s->meta_data);
}

int be_storage_prepare(struct be_conn *c, virConnectPtr vc, const char *name,
		       const char *uid, const struct core_spec *spec,
		       struct be_made *m, char *err, size_t errlen)
{
	virStoragePoolPtr p;
	char seed[PATH_MAX];
	size_t i;
	int rc = 0;

	for (i = 0; i < spec->ndisks && rc == 0; i++) {
		rc = disk_pool(c, vc, name, &spec->disks[i], &p, err, errlen);
		if (rc == 0)
			rc = disk_prepare(p, name, &spec->disks[i], m, err,
					  errlen);
		if (p)
			virStoragePoolFree(p);
	}
	if (rc < 0 || !wants_seed(spec))
		return rc;
	p = virStoragePoolLookupByName(vc, c->pool_name);
	if (!p)
		return be_err(err, errlen, "define", name);
	if (be_seed_path(c, seed, sizeof(seed), name) < 0) {
		rc = core_errf(err, errlen, -ENAMETOOLONG, "define %s: name too "
			     "long", name);
		goto out;
	}
	m->seed_created = access(seed, F_OK) != 0;
	rc = seed_build(c, name, uid, spec, seed, err, errlen);
	if (rc < 0) {
		m->seed_created = false;
		goto out;
	}
	m->seed = strdup(seed);
	if (!m->seed)
		rc = core_errf(err, errlen, -ENOMEM, "out of memory");
	/* libvirt only learns of files made behind its back on refresh. */
	else if (rc == 1 && virStoragePoolRefresh(p, 0) < 0)
		rc = be_err(err, errlen, "define", name);
	else
		rc = 0;
out:
	virStoragePoolFree(p);
	return rc;
}

static int vol_delete_path(virConnectPtr vc, const char *path);

void be_storage_undo(struct be_conn *c, virConnectPtr vc, const char *name,
		     struct be_made *m)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(vc, c->pool_name);
	size_t i;

	(void)name;
	for (i = 0; i < m->nvols; i++)
		vol_delete_path(vc, m->vols[i]);
	if (m->seed_created && m->seed) {
		unlink(m->seed);
		if (p)
			virStoragePoolRefresh(p, 0);
	}
	if (p)
		virStoragePoolFree(p);
	virResetLastError();
}

void be_made_free(struct be_made *m)
{
	size_t i;

	for (i = 0; i < m->nvols; i++)
		free(m->vols[i]);
	for (i = 0; i < m->npaths; i++)
		free(m->paths[i]);
	free(m->vols);
	free(m->paths);
	free(m->seed);
	memset(m, 0, sizeof(*m));
}

static bool in_dir_of(const char *dir, const char *vm, const char *path)
{
	size_t dl = strlen(dir), vl = strlen(vm);

	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	return strncmp(path, dir, dl) == 0 && path[dl] == '/' &&
	       !strchr(path + dl + 1, '/') &&
	       strncmp(path + dl + 1, vm, vl) == 0 && path[dl + 1 + vl] == '_';
}

/* Only <pool>/<vm>_*, in the node's pool or a storage class's: a disk
 * attached from elsewhere (a template image, a shared volume) is never
 * ours to delete.  '_' is in no DNS label, so VM "web" never claims
 * "web-x_root.qcow2". */
bool be_owned_path(const struct be_conn *c, const char *vm,
		   const char *path)
{
	if (in_dir_of(c->pool_dir, vm, path))
		return true;
	for (size_t i = 0; i < c->nclasses; i++)
		if (in_dir_of(c->classes[i].dir, vm, path))
			return true;
	return false;
}

static int vol_delete_path(virConnectPtr vc, const char *path)
{
	virStorageVolPtr v = virStorageVolLookupByPath(vc, path);
	int rc = 0;

	if (!v) {
		/* Not known to libvirt (yet): the file may still exist. */
		virResetLastError();
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	}
	if (virStorageVolDelete(v, 0) < 0)
		rc = -EIO;
	virStorageVolFree(v);
	return rc;
}

int be_storage_remove(struct be_conn *c, virConnectPtr vc, const char *vm,
		      char *const *paths, size_t npaths, char *err,
		      size_t errlen)
{
	char seed[PATH_MAX];
	size_t i;
	int rc = 0;

	for (i = 0; i < npaths; i++) {
		if (!be_owned_path(c, vm, paths[i]))
			continue;
		if (vol_delete_path(vc, paths[i]) < 0 && rc == 0)
			rc = be_err(err, errlen, "delete", vm);
	}
	if (be_seed_path(c, seed, sizeof(seed), vm) == 0 &&
	    access(seed, F_OK) == 0 && vol_delete_path(vc, seed) < 0 && rc == 0)
		rc = be_err(err, errlen, "delete", vm);
	return rc;
}

uint64_t be_storage_capacity(virConnectPtr vc, char *const *paths,
			     size_t npaths)
{
	virStorageVolInfo info;
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < npaths; i++) {
		virStorageVolPtr v = virStorageVolLookupByPath(vc, paths[i]);

		if (!v) {
			virResetLastError();
			continue;
		}
		if (virStorageVolGetInfo(v, &info) == 0)
			sum += info.capacity;
		virStorageVolFree(v);
	}
	return sum;
}
