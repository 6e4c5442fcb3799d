/* Who may do what in the tree: the one rule set that fs (through the
 * kernel's permission bits and again on every write) and the dashboard
 * apply.  Root does everything; a member of the daemon's group creates
 * VMs, acts on and reads the ones it owns, and sees the others' names and
 * status; anyone else gets nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

bool core_cred_in_group(const struct core_cred *c, gid_t gid)
{
	if (c->gid == gid)
		return true;
	for (size_t i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

int core_may(const struct core_acl *acl, const struct core_cred *c,
	     uid_t owner, enum core_right r)
{
	if (c->uid == 0)
		return 0;
	if (!acl->has_group || !core_cred_in_group(c, acl->gid))
		return -EACCES;
	switch (r) {
	case CORE_R_SEE:
	case CORE_R_CREATE:
		return 0;
	case CORE_R_READ:
	case CORE_R_CONTROL:
		return c->uid == owner ? 0 : -EACCES;
	default:
		return -EACCES;
	}
}

/* The owner travels in stored objects as an annotation with the number,
 * written only by the daemon (a spec write replaces only the spec). */
uid_t core_owner_from_object(json_object *obj)
{
	json_object *v = core_json_path(obj, "metadata.annotations");
	const char *s;
	char *end;
	long long n;

	if (!v || !json_object_object_get_ex(v, CORE_OWNER_UID_KEY, &v))
		return 0;
	s = json_object_get_string(v);
	errno = 0;
	n = s ? strtoll(s, &end, 10) : -1;
	if (!s || errno || *end || end == s || n < 0 || n >= (uid_t)-1)
		return 0;
	return (uid_t)n;
}

void core_owner_to_object(json_object *obj, uid_t owner)
{
	json_object *md, *ann;
	char buf[24];

	if (!json_object_object_get_ex(obj, "metadata", &md))
		return;
	if (!json_object_object_get_ex(md, "annotations", &ann)) {
		ann = json_object_new_object();
		json_object_object_add(md, "annotations", ann);
	}
	snprintf(buf, sizeof(buf), "%u", (unsigned)owner);
	json_object_object_add(ann, CORE_OWNER_UID_KEY,
			       json_object_new_string(buf));
}
