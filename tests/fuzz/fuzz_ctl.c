/* libFuzzer: ctl messages.  The first byte picks vms/ctl or a VM's ctl
 * (bit 0), or a node's ctl (bit 1). */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err)
{
	/* An err line is one non-empty line of printable text. */
	if (!err[0] || strlen(err) >= CORE_ERR_MAX)
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CORE_ERR_MAX] = "";
	struct core_ctl c;
	bool on_dir;
	int r;

	if (size < 1)
		return 0;
	if (data[0] & 2) {
		enum core_node_verb nv = CORE_NV_COUNT;

		r = core_node_ctl_parse((const char *)data + 1, size - 1, &nv,
					err, sizeof(err));
		if (r < 0)
			check_err(err);
		else if (r != 0 || nv >= CORE_NV_COUNT ||
			 !strcmp(core_node_verb_name(nv), "unknown"))
			abort();
		return 0;
	}
	on_dir = data[0] & 1;
	r = core_ctl_parse((const char *)data + 1, size - 1, on_dir, &c, err,
			   sizeof(err));
	if (r < 0) {
		check_err(err);
		return 0;
	}
	if (r != 0 || (on_dir != (c.verb == CORE_V_CREATE)) ||
	    strlen(c.arg) > CORE_NAME_MAX ||
	    strlen(c.template_name) > CORE_NAME_MAX ||
	    (c.cpus && (c.cpus < 1 || c.cpus > 512)) ||
	    (c.memory && c.memory < 1024 * 1024))
		abort();
	if (strcmp(core_verb_name(c.verb), "unknown") == 0)
		abort();
	return 0;
}
