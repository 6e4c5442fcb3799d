/* The spec of `create NAME [cpus=N] [memory=Q] [disk=Q] [template=T]
 * [running=B]` on vms/ctl (and of the dashboard's create): the plain
 * defaults, or a template's, with what the message says on top. */
#include <stdio.h>

#include "mountd/mountd.h"

static json_object *create_spec(const struct core_ctl *msg)
{
	json_object *spec = core_spec_default(), *disks, *d0;
	char q[32];

	if (msg->cpus)
		core_spec_set_int(spec, "cpus", msg->cpus);
	if (msg->memory) {
		core_qty_format(msg->memory, q, sizeof(q));
		core_spec_set_string(spec, "memory", q);
	}
	if (msg->disk && json_object_object_get_ex(spec, "disks", &disks) &&
	    (d0 = json_object_array_get_idx(disks, 0))) {
		core_qty_format(msg->disk, q, sizeof(q));
		core_spec_set_string(d0, "size", q);
	}
	return spec;
}

/* create template=T: the template's defaults, then what the message
 * says; the disk follows the template's size unless disk= was given. */
static int template_spec(struct mountd *md, const struct core_ctl *msg,
			 json_object **spec, char *err, size_t errlen)
{
	json_object *s = json_object_new_object(), *given = *spec, *d;
	char q[32];
	int rc;

	json_object_object_add(s, "running",
			       json_object_new_boolean(msg->running == 1));
	if (msg->cpus)
		core_spec_set_int(s, "cpus", msg->cpus);
	if (msg->memory) {
		core_qty_format(msg->memory, q, sizeof(q));
		core_spec_set_string(s, "memory", q);
	}
	if (msg->disk && json_object_object_get_ex(given, "disks", &d))
		json_object_object_add(s, "disks", json_object_get(d));
	rc = md_template_apply(md, msg->template_name, s, err, errlen);
	/* What neither gave comes from the plain defaults. */
	json_object_object_foreach(given, k, v)
		if (!json_object_object_get_ex(s, k, NULL))
			json_object_object_add(s, k, json_object_get(v));
	json_object_put(given);
	*spec = s;
	return rc;
}

int md_create_spec(struct mountd *md, const struct core_ctl *msg,
		   json_object **spec, char *err, size_t errlen)
{
	int rc = 0;

	*spec = create_spec(msg);
	if (msg->template_name[0])
		rc = template_spec(md, msg, spec, err, errlen);
	if (rc < 0) {
		json_object_put(*spec);
		*spec = NULL;
	}
	return rc;
}
