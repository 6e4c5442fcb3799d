/* libFuzzer: what another node's Lease publishes, as this node reads it
 * (mountd/host/classes.c): its storage folders (JSON, where a migration
 * copies disks to) and its class list (which VMs it may take).  A folder
 * that is taken must be a plain absolute path; a refusal says why. */
#include "mountd/priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_dirs(const char *s)
{
	struct md_dest_dirs d;
	char err[CORE_ERR_MAX] = "";
	int r = md_dest_dirs_parse(s, &d, err, sizeof(err));

	if (r == -EINVAL && !err[0])
		abort();
	for (size_t i = 0; r == 0 && i < d.n; i++) {
		const char *p = d.v[i].dir;
		size_t n = strlen(p);

		if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") ||
		    strstr(p, "//") || (n >= 3 && !strcmp(p + n - 3, "/..")))
			abort();
	}
	md_dest_dirs_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[] = "root", klass[] = "fast", data_[] = "data", san[] = "san";
	struct core_disk disks[2] = {
		{ .name = root, .storage_class = klass },
		{ .name = data_, .storage_class = san },
	};
	struct core_spec spec = { .disks = disks, .ndisks = 2 };
	char *s;

	if (size > 8192)
		return 0;
	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	check_dirs(s);
	(void)md_classes_in(s, &spec);
	free(s);
	return 0;
}
