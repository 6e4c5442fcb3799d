/* This node's storage classes (--storage-class NAME=DIR[:shared]): which
 * a spec may name, what nodes/ and the Lease say of them, and whether a
 * VM's disks are all on shared storage (then another node can run it
 * from the same files: migration without copying, failover). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/statvfs.h>

#include "mountd/priv.h"

static const struct be_class *find(const struct mountd *md, const char *name)
{
	for (size_t i = 0; name && i < md->cfg.nclasses; i++)
		if (!strcmp(md->cfg.classes[i].name, name))
			return &md->cfg.classes[i];
	return NULL;
}

int md_classes_check(const struct mountd *md, const struct core_spec *s,
		     char *err, size_t errlen)
{
	for (size_t i = 0; i < s->ndisks; i++) {
		const char *k = s->disks[i].storage_class;

		if (!k || !*k || find(md, k))
			continue;
		snprintf(err, errlen, "spec.disks[%zu].storageClass: no storage "
			 "class %s on node %s (--storage-class %s=DIR)", i, k,
			 md->node, k);
		return -EINVAL;
	}
	return 0;
}

bool md_classes_shared(const struct mountd *md, const struct core_spec *s)
{
	const struct be_class *c;

	if (!s->ndisks)
		return false;
	for (size_t i = 0; i < s->ndisks; i++) {
		c = find(md, s->disks[i].storage_class);
		if (!c || !c->shared)
			return false;
	}
	return true;
}

/* "fast=shared,scratch=local": what the Lease says. */
void md_classes_published(const struct mountd *md, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < md->cfg.nclasses && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", i ? "," : "",
				      md->cfg.classes[i].name,
				      md->cfg.classes[i].shared ? "shared" :
				      "local");
}

static bool names(const char *published, const char *k)
{
	size_t kl = strlen(k);

	for (const char *p = published; p && *p;) {
		if (!strncmp(p, k, kl) && p[kl] == '=')
			return true;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

/* Whether a published list names every class s uses. */
bool md_classes_in(const char *published, const struct core_spec *s)
{
	for (size_t i = 0; i < s->ndisks; i++) {
		const char *k = s->disks[i].storage_class;

		if (k && *k && !names(published, k))
			return false;
	}
	return true;
}

/* nodes/NODE/status lines: class.NAME FOLDER shared|local AVAIL/SIZE. */
int md_classes_render(const struct mountd *md, char *buf, size_t len)
{
	char avail[32], size[32];
	struct statvfs sv;
	size_t n = 0;

	for (size_t i = 0; i < md->cfg.nclasses && n < len; i++) {
		const struct be_class *c = &md->cfg.classes[i];

		avail[0] = size[0] = '\0';
		if (statvfs(c->dir, &sv) == 0) {
			core_qty_format((uint64_t)sv.f_bavail * sv.f_frsize, avail,
					sizeof(avail));
			core_qty_format((uint64_t)sv.f_blocks * sv.f_frsize, size,
					sizeof(size));
		}
		n += (size_t)snprintf(buf + n, len - n, "class.%s %s %s %s/%s\n",
				      c->name, c->dir, c->shared ? "shared" :
				      "local", avail[0] ? avail : "?",
				      size[0] ? size : "?");
	}
	return (int)(n < len ? n : len - 1);
}

/* ---- folders, for migrations that copy disks ---------------------------- */

int md_classes_dirs_published(const struct mountd *md, char *buf, size_t len)
{
	json_object *o = json_object_new_object();
	const char *dir = be_folder(md->be, NULL);
	int rc = -ENOMEM;

	if (!o)
		return rc;
	if (dir)
		json_object_object_add(o, "", json_object_new_string(dir));
	for (size_t i = 0; i < md->cfg.nclasses; i++) {
		dir = be_folder(md->be, md->cfg.classes[i].name);
		if (dir)
			json_object_object_add(o, md->cfg.classes[i].name,
					       json_object_new_string(dir));
	}
	rc = snprintf(buf, len, "%s", json_object_to_json_string_ext(o,
		      JSON_C_TO_STRING_PLAIN)) < (int)len ? 0 : -ENAMETOOLONG;
	json_object_put(o);
	return rc;
}

/* Absolute, no "." or ".." component, no empty one, printable. */
static bool plain_path(const char *p)
{
	if (p[0] != '/' || strlen(p) >= PATH_MAX)
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	for (const char *c = p; *c; c++) {
		size_t n;

		if (*c != '/')
			continue;
		n = strcspn(c + 1, "/");
		if ((n == 0 && c[1]) || (n == 1 && c[1] == '.') ||
		    (n == 2 && c[1] == '.' && c[2] == '.'))
			return false;
	}
	return true;
}

int md_dest_dirs_parse(const char *published, struct md_dest_dirs *out,
		       char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!published || !*published)
		return -ENOENT;
	out->j = json_tokener_parse(published);
	if (!out->j || !json_object_is_type(out->j, json_type_object)) {
		snprintf(err, errlen, "%s is not a JSON object", MD_ANN_DIRS);
		return -EINVAL;
	}
	json_object_object_foreach(out->j, k, v) {
		const char *dir = json_object_get_string(v);

		if (out->n == BE_CLASSES_MAX + 1 ||
		    !json_object_is_type(v, json_type_string) ||
		    (*k && core_name_check(k, NULL, 0) < 0) || !plain_path(dir)) {
			snprintf(err, errlen, "%s: %.40s: not a class and a "
				 "plain absolute folder", MD_ANN_DIRS, k);
			return -EINVAL;
		}
		out->v[out->n++] = (struct be_dest_dir){ .klass = k, .dir = dir };
	}
	return 0;
}

void md_dest_dirs_free(struct md_dest_dirs *d)
{
	json_object_put(d->j);
	memset(d, 0, sizeof(*d));
}
