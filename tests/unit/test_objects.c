/* Operations, snapshots and templates in the model: validation, flat
 * status rendering, lookups by kind and name, order, and removal. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static json_object *obj(const char *json)
{
	json_object *o = json_tokener_parse(json);

	assert_non_null(o);
	return o;
}

static void test_render(void **state)
{
	json_object *st = obj("{\"progress\":40,\"phase\":\"Running\","
			      "\"message\":\"copy\\nline\",\"snapshotChain\":[\"a\",\"b\"],"
			      "\"conditions\":[{\"type\":\"Quiesced\",\"status\":\"False\","
			      "\"reason\":\"AgentNotResponding\",\"message\":\"m\"}],"
			      "\"empty\":\"\",\"nested\":{\"x\":1}}");
	const char *want =
		"phase Running\n"
		"progress 40\n"
		"message copy line\n"
		"snapshotChain a b\n"
		"condition.Quiesced false\n"
		"condition.Quiesced.reason AgentNotResponding\n"
		"condition.Quiesced.message m\n"
		"condition.Quiesced.since -\n"
		"empty -\n"
		"nested.x 1\n";
	size_t len = 0;
	char *txt = core_obj_render_status(st, &len);

	assert_string_equal(txt, want);
	assert_int_equal(len, strlen(want));
	free(txt);
	/* Anyone who may patch status may send nulls: no crash, "-". */
	json_object *bad = obj("{\"conditions\":[{\"type\":\"A\",\"status\":null},"
			       "{\"type\":null},{\"type\":7}]}");
	txt = core_obj_render_status(bad, &len);
	assert_non_null(strstr(txt, "condition.A -\n"));
	free(txt);
	json_object_put(bad);
	txt = core_obj_render_status(NULL, &len);
	assert_string_equal(txt, "phase Pending\n");
	free(txt);
	json_object_put(st);
}

static void test_put_find(void **state)
{
	struct core_model *m;
	struct core_obj *o = NULL;
	char err[256] = "";

	assert_int_equal(core_model_new(&m), 0);
	core_model_wrlock(m);
	assert_int_equal(core_model_obj_put(m, CORE_KIND_SNAPSHOT,
		obj("{\"metadata\":{\"name\":\"s1\"},\"spec\":{\"vmRef\":{\"name\":\"web\"}}}"),
		&o, err, sizeof(err)), 0);
	assert_string_equal(o->vm, "web");
	assert_string_equal(o->txt_status, "phase Pending\n");
	assert_non_null(strstr(o->txt_spec, "vmRef"));
	/* A snapshot needs its VM; a template does not. */
	json_object *bad = obj("{\"metadata\":{\"name\":\"s2\"},\"spec\":{}}");
	assert_int_equal(core_model_obj_put(m, CORE_KIND_SNAPSHOT, bad, NULL,
					    err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vmRef"));
	json_object_put(bad);
	bad = obj("{\"metadata\":{\"name\":\"Bad_Name\"}}");
	assert_int_equal(core_model_obj_put(m, CORE_KIND_TEMPLATE, bad, NULL,
					    err, sizeof(err)), -EINVAL);
	json_object_put(bad);
	assert_int_equal(core_model_obj_put(m, CORE_KIND_TEMPLATE,
		obj("{\"metadata\":{\"name\":\"s1\"},\"spec\":{\"version\":\"1\"}}"),
		NULL, err, sizeof(err)), 0);
	/* Same name, other kind: two objects. */
	assert_ptr_equal(core_model_obj_find(m, CORE_KIND_SNAPSHOT, "s1"), o);
	assert_ptr_not_equal(core_model_obj_find(m, CORE_KIND_TEMPLATE, "s1"), o);
	assert_null(core_model_obj_find(m, CORE_KIND_OPERATION, "s1"));
	uint64_t v = o->version;
	core_model_obj_status_set(m, o, "phase", json_object_new_string("Ready"));
	assert_true(o->version > v);
	assert_string_equal(o->txt_status, "phase Ready\n");
	assert_string_equal(core_obj_str(o, "status.phase"), "Ready");
	assert_int_equal(core_obj_int(o, "status.nope", 7), 7);
	assert_ptr_equal(core_model_obj_slot(m, o->slot), o);
	core_model_obj_remove(m, o);
	assert_null(core_model_obj_find(m, CORE_KIND_SNAPSHOT, "s1"));
	core_model_unlock(m);
	core_model_free(m);
}

static int names(struct core_obj *o, void *arg)
{
	strcat(arg, o->name);
	strcat(arg, " ");
	return 0;
}

static void test_each_order(void **state)
{
	struct core_model *m;
	char err[256], got[64] = "";
	const char *n[] = { "c", "a", "b" };

	assert_int_equal(core_model_new(&m), 0);
	core_model_wrlock(m);
	for (int i = 0; i < 3; i++) {
		char j[128];

		snprintf(j, sizeof(j), "{\"metadata\":{\"name\":\"%s\"},"
			 "\"spec\":{\"vmRef\":{\"name\":\"v\"}}}", n[i]);
		assert_int_equal(core_model_obj_put(m, CORE_KIND_OPERATION,
						    obj(j), NULL, err,
						    sizeof(err)), 0);
	}
	core_model_obj_each(m, CORE_KIND_OPERATION, names, got);
	assert_string_equal(got, "a b c ");
	core_model_unlock(m);
	core_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_put_find),
		cmocka_unit_test(test_each_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
