/* JSON merge patches (RFC 7386): the difference between two documents,
 * so a spec written through the tree reaches the API server as a patch
 * that also removes the fields the writer dropped. */
#include <string.h>

#include "core/core.h"

static bool both_objects(json_object *a, json_object *b)
{
	return json_object_is_type(a, json_type_object) &&
	       json_object_is_type(b, json_type_object);
}

/* Keys of `from` missing in `to` become null; changed keys are replaced
 * (objects recursively); equal keys are left out. */
static json_object *object_diff(json_object *from, json_object *to)
{
	json_object *patch = json_object_new_object(), *v, *sub;

	json_object_object_foreach(from, k, fv) {
		if (!json_object_object_get_ex(to, k, NULL))
			json_object_object_add(patch, k, NULL);
		(void)fv;
	}
	json_object_object_foreach(to, key, tv) {
		if (!json_object_object_get_ex(from, key, &v)) {
			json_object_object_add(patch, key, json_object_get(tv));
		} else if (both_objects(v, tv)) {
			sub = object_diff(v, tv);
			if (json_object_object_length(sub))
				json_object_object_add(patch, key, sub);
			else
				json_object_put(sub);
		} else if (!json_object_equal(v, tv) || (!v) != (!tv)) {
			json_object_object_add(patch, key, json_object_get(tv));
		}
	}
	return patch;
}

json_object *core_json_merge_diff(json_object *from, json_object *to)
{
	if (!both_objects(from, to))
		return to ? json_object_get(to) : NULL;
	return object_diff(from, to);
}
