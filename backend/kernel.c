/* kernelBoot: QEMU reads the kernel and initrd a spec names, and libvirt
 * hands them to QEMU's user first.  A path anywhere on the host would turn
 * "create a VM" into "read (and have chowned) any file", so only root's
 * files in the node's kernel folder are accepted. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend/priv.h"

static int resolve(const struct be_conn *c, const char *field,
		   const char *path, char *out, size_t outlen, char *err,
		   size_t errlen)
{
	char why[CORE_ERR_MAX / 2];
	int rc;

	if (!c->kernel_dir)
		return core_errf(err, errlen, -EACCES, "%s: kernelBoot is off on "
			       "node %s (the node allows it with --kernel-dir)",
			       field, c->node);
	rc = core_file_under(c->kernel_dir, path, out, outlen, why,
			     sizeof(why));
	if (rc < 0)
		return core_errf(err, errlen, rc == -EACCES ? rc : -EINVAL,
			       "%s: %s (--kernel-dir)", field, why);
	return 0;
}

int be_boot_check(const struct be_conn *c, const struct core_spec *spec,
		  char *err, size_t errlen)
{
	struct be_xml_params p = { .spec = spec };
	struct be_boot_files f;

	return be_boot_fill(c, &p, &f, err, errlen);
}

int be_boot_fill(const struct be_conn *c, struct be_xml_params *p,
		 struct be_boot_files *f, char *err, size_t errlen)
{
	const struct core_spec *s = p->spec;
	int rc;

	p->kernel = p->initrd = NULL;
	if (!s->kernel || !*s->kernel)
		return 0;
	rc = resolve(c, "spec.kernelBoot.kernel", s->kernel, f->kernel,
		     sizeof(f->kernel), err, errlen);
	if (rc == 0 && s->initrd && *s->initrd)
		rc = resolve(c, "spec.kernelBoot.initrd", s->initrd, f->initrd,
			     sizeof(f->initrd), err, errlen);
	if (rc < 0)
		return rc;
	p->kernel = f->kernel;
	p->initrd = s->initrd && *s->initrd ? f->initrd : NULL;
	return 0;
}
