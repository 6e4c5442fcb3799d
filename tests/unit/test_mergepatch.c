#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static void diff_is(const char *from, const char *to, const char *want)
{
	json_object *a = json_tokener_parse(from), *b = json_tokener_parse(to);
	json_object *p = core_json_merge_diff(a, b);
	json_object *w = json_tokener_parse(want);

	assert_true(json_object_equal(p, w));
	json_object_put(a);
	json_object_put(b);
	json_object_put(p);
	json_object_put(w);
}

static void test_diffs(void **state)
{
	diff_is("{\"a\":1}", "{\"a\":1}", "{}");
	diff_is("{\"a\":1}", "{\"a\":2}", "{\"a\":2}");
	diff_is("{\"a\":1,\"b\":2}", "{\"a\":1}", "{\"b\":null}");
	diff_is("{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":{\"x\":1,\"y\":3}}",
		"{\"a\":{\"y\":3}}");
	diff_is("{\"a\":{\"x\":1}}", "{\"a\":{}}", "{\"a\":{\"x\":null}}");
	diff_is("{\"l\":[1,2]}", "{\"l\":[1]}", "{\"l\":[1]}");
	diff_is("{\"a\":null}", "{\"a\":1}", "{\"a\":1}");
	diff_is("{}", "{\"n\":{\"k\":\"v\"}}", "{\"n\":{\"k\":\"v\"}}");
}

/* Applying the diff as a merge patch gives back `to`. */
static json_object *apply(json_object *target, json_object *patch)
{
	json_object *t = NULL;

	if (!json_object_is_type(patch, json_type_object))
		return json_object_get(patch);
	if (!json_object_is_type(target, json_type_object))
		t = json_object_new_object();
	else
		json_object_deep_copy(target, &t, NULL);
	json_object_object_foreach(patch, k, v) {
		if (!v) {
			json_object_object_del(t, k);
		} else {
			json_object *cur = json_object_object_get(t, k);

			json_object_object_add(t, k, apply(cur, v));
		}
	}
	return t;
}

static void test_round_trip(void **state)
{
	const char *from = "{\"cpus\":1,\"memory\":\"64Mi\",\"disks\":[{\"name\":"
			   "\"root\"}],\"x\":{\"y\":1,\"z\":2},\"gone\":true}";
	const char *to = "{\"cpus\":2,\"memory\":\"64Mi\",\"disks\":[],\"x\":"
			 "{\"y\":1},\"new\":\"v\"}";
	json_object *a = json_tokener_parse(from), *b = json_tokener_parse(to);
	json_object *p = core_json_merge_diff(a, b), *r = apply(a, p);

	assert_true(json_object_equal(r, b));
	json_object_put(a);
	json_object_put(b);
	json_object_put(p);
	json_object_put(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diffs),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
