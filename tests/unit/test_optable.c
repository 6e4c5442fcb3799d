/* The verb table (CORE_OPS) against what lives outside C: the CRD's enum
 * of spec.operation, the ctl grammar, and the names every door uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const char *crd_path;

static json_object *load_crd(void)
{
	char err[CORE_ERR_MAX], *buf;
	json_object *doc = NULL;
	FILE *f = fopen(crd_path, "re");
	size_t n;

	assert_non_null(f);
	buf = malloc(1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	if (core_yaml_parse(buf, n, &doc, err, sizeof(err)) < 0)
		fail_msg("%s: %s", crd_path, err);
	free(buf);
	return doc;
}

static json_object *operation_enum(json_object *crd)
{
	json_object *versions = core_json_path(crd, "spec.versions"), *e;

	assert_non_null(versions);
	e = core_json_path(json_object_array_get_idx(versions, 0),
			   "schema.openAPIV3Schema.properties.spec.properties."
			   "operation.enum");
	assert_non_null(e);
	return e;
}

static bool in_enum(json_object *e, const char *s)
{
	for (size_t i = 0; i < json_object_array_length(e); i++)
		if (!strcmp(json_object_get_string(
				json_object_array_get_idx(e, i)), s))
			return true;
	return false;
}

/* Every operation of the table is in the CRD's enum, and every value of
 * the enum is an operation of the table: a new verb cannot reach the
 * daemon without the CRD taking it, nor the CRD offer one it can't run. */
static void test_crd_enum_matches_table(void **state)
{
	json_object *crd = load_crd(), *e = operation_enum(crd);
	size_t n = 0;

	for (int v = 0; v < CORE_V_COUNT; v++) {
		const char *op = core_op(v)->operation;

		if (!op)
			continue;
		n++;
		if (!in_enum(e, op))
			fail_msg("operation %s is not in %s", op, crd_path);
	}
	for (size_t i = 0; i < json_object_array_length(e); i++) {
		const char *s = json_object_get_string(
			json_object_array_get_idx(e, i));

		if (!core_op_by_operation(s))
			fail_msg("the CRD's operation %s is not in CORE_OPS", s);
	}
	assert_int_equal(n, json_object_array_length(e));
	json_object_put(crd);
}

static void test_rows_are_indexed_by_verb(void **state)
{
	for (int v = 0; v < CORE_V_COUNT; v++) {
		const struct core_op *op = core_op(v);

		assert_int_equal(op->verb, v);
		assert_ptr_equal(core_op_by_verb(op->name), op);
		assert_string_equal(core_verb_name(v), op->name);
		if (op->operation)
			assert_ptr_equal(core_op_by_operation(op->operation), op);
		if (op->cli)
			assert_ptr_equal(core_op_by_cli(op->cli), op);
		/* A hyperctl verb makes a VMOperation: it needs an operation. */
		if (op->cli)
			assert_non_null(op->operation);
	}
	assert_null(core_op(CORE_V_COUNT));
	assert_null(core_op_by_verb("frobnicate"));
	assert_null(core_op_by_operation(NULL));
}

/* The grammar follows the flags: each verb parses where its row says. */
static void test_grammar_follows_rows(void **state)
{
	char msg[64], err[CORE_ERR_MAX];
	struct core_ctl c;

	for (int v = 0; v < CORE_V_COUNT; v++) {
		const struct core_op *op = core_op(v);
		bool dir = op->flags & CORE_OPF_DIR;

		if (v == CORE_V_RESIZE)
			snprintf(msg, sizeof(msg), "resize cpus=2");
		else
			snprintf(msg, sizeof(msg), "%s%s", op->name,
				 op->flags & CORE_OPF_ARG ? " x1" : "");
		if (core_ctl_parse(msg, strlen(msg), dir, &c, err, sizeof(err)))
			fail_msg("\"%s\": %s", msg, err);
		assert_int_equal(c.verb, v);
		assert_int_not_equal(core_ctl_parse(msg, strlen(msg), !dir, &c,
						    err, sizeof(err)), 0);
	}
}

/* revert is the API's restore: the only verb whose names differ. */
static void test_revert_is_restore(void **state)
{
	assert_string_equal(core_op(CORE_V_REVERT)->operation, "restore");
	assert_ptr_equal(core_op_by_operation("restore"), core_op(CORE_V_REVERT));
	assert_null(core_op_by_operation("revert"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crd_enum_matches_table),
		cmocka_unit_test(test_rows_are_indexed_by_verb),
		cmocka_unit_test(test_grammar_follows_rows),
		cmocka_unit_test(test_revert_is_restore),
	};

	/* The source tree's CRD, as built; a path given wins. */
	crd_path = argc > 1 ? argv[1] : OPERATION_CRD;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
