/* This node's storage classes (--storage-class NAME=DIR[:shared]): which
 * a spec may name, what nodes/ and the Lease say of them, and whether a
 * VM's disks are all on shared storage (then another node can run it
 * from the same files: migration without copying, failover). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
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
