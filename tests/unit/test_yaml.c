/* YAML <-> JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "seed_manifests.h"

static json_object *parse_ok(const char *y)
{
	char err[CORE_ERR_MAX] = "";
	json_object *o = NULL;
	int r = core_yaml_parse(y, strlen(y), &o, err, sizeof(err));

	if (r != 0)
		fail_msg("parse of %s failed: %s", y, err);
	return o;
}

static int parse_err(const char *y, char *err, size_t errlen)
{
	json_object *o = (json_object *)1;
	int r = core_yaml_parse(y, strlen(y), &o, err, errlen);

	assert_null(o);
	return r;
}

static json_object *path(json_object *o, const char *dotted)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (char *t = strtok_r(buf, ".", &save); t && o;
	     t = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(t));
		else if (!json_object_object_get_ex(o, t, &o))
			return NULL;
	}
	return o;
}

/* YAML -> JSON -> YAML -> JSON gives equal JSON; returns the YAML. */
static char *round_trip(json_object *a)
{
	char err[CORE_ERR_MAX] = "", *y = NULL;
	json_object *b = NULL;
	size_t n = 0;

	assert_int_equal(core_yaml_emit(a, &y, &n), 0);
	assert_int_equal(strlen(y), n);
	if (core_yaml_parse(y, n, &b, err, sizeof(err)) != 0)
		fail_msg("re-parse failed: %s\n%s", err, y);
	if (!json_object_equal(a, b))
		fail_msg("round trip differs:\n%s\n%s\n%s",
			 json_object_to_json_string(a), y,
			 json_object_to_json_string(b));
	json_object_put(b);
	return y;
}

static void test_seed_manifests(void **state)
{
	const char *docs[] = { seed_from_template, seed_vm_spec };

	for (int i = 0; i < 2; i++) {
		json_object *o = parse_ok(docs[i]);
		json_object *spec = path(o, "spec");

		assert_true(json_object_is_type(path(spec, "cpus"),
						json_type_int));
		assert_int_equal(json_object_get_int(path(spec, "cpus")), 4);
		assert_string_equal(json_object_get_string(path(spec, "memory")),
				    "8Gi");
		assert_true(json_object_get_boolean(path(spec, "running")));
		assert_string_equal(
			json_object_get_string(path(spec, "disks.0.size")),
			"50Gi");
		assert_non_null(strstr(json_object_get_string(path(
					       spec, "cloudInit.userData")),
				       "#cloud-config\nhostname: my-vm\n"));
		free(round_trip(o));
		json_object_put(o);
	}
}

static void test_seed_details(void **state)
{
	json_object *o = parse_ok(seed_vm_spec);

	assert_int_equal(json_object_get_int(path(o, "spec.disks.0.bootOrder")),
			 1);
	assert_int_equal(json_object_get_int(path(
				 o, "spec.carbonAware.maxIntensity")),
			 200);
	assert_string_equal(json_object_get_string(path(
				    o, "spec.highAvailability.restartPolicy")),
			    "Always");
	assert_string_equal(json_object_get_string(path(
				    o, "spec.cloudInit.userData")),
			    "#cloud-config\nhostname: my-vm\n");
	json_object_put(o);
	o = parse_ok(seed_from_template);
	assert_string_equal(json_object_get_string(path(
				    o, "spec.image.templateRef.name")),
			    "ubuntu-22-04-template");
	assert_non_null(strstr(json_object_get_string(path(
				       o, "spec.cloudInit.userData")),
			       "sudo: ['ALL=(ALL) NOPASSWD:ALL']\n"));
	json_object_put(o);
}

static void test_scalar_typing(void **state)
{
	static const struct {
		const char *y;
		json_type t;
	} cases[] = {
		{ "v: 1", json_type_int },       { "v: -12", json_type_int },
		{ "v: +3", json_type_int },      { "v: 0x1F", json_type_int },
		{ "v: 0o17", json_type_int },    { "v: 1.5", json_type_double },
		{ "v: 1e3", json_type_double },  { "v: .5", json_type_double },
		{ "v: true", json_type_boolean }, { "v: False", json_type_boolean },
		{ "v: null", json_type_null },   { "v: ~", json_type_null },
		{ "v:", json_type_null },        { "v: '1'", json_type_string },
		{ "v: \"true\"", json_type_string }, { "v: yes", json_type_string },
		{ "v: .inf", json_type_string }, { "v: 8Gi", json_type_string },
		{ "v: 1.2.3", json_type_string }, { "v: !!str 12", json_type_string },
		{ "v: 0x", json_type_string },   { "v: 99999999999999999999999",
						   json_type_string },
		{ "v: 18446744073709551615", json_type_int },
		{ "v: [1, a]", json_type_array }, { "v: {a: 1}", json_type_object },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *o = parse_ok(cases[i].y);

		if (!json_object_is_type(path(o, "v"), cases[i].t))
			fail_msg("%s: type %d", cases[i].y,
				 json_object_get_type(path(o, "v")));
		json_object_put(o);
	}
}

static void test_values(void **state)
{
	json_object *o = parse_ok("a: 0x1F\nb: 0o17\nc: -0\nd: 2.5e-1\n"
				  "e: 9223372036854775807\n");

	assert_int_equal(json_object_get_int(path(o, "a")), 31);
	assert_int_equal(json_object_get_int(path(o, "b")), 15);
	assert_int_equal(json_object_get_int(path(o, "c")), 0);
	assert_true(json_object_get_double(path(o, "d")) == 0.25);
	assert_true(json_object_get_int64(path(o, "e")) == INT64_MAX);
	json_object_put(o);
	/* A document that is just null parses to NULL. */
	o = (json_object *)1;
	assert_int_equal(core_yaml_parse("~\n", 2, &o, NULL, 0), 0);
	assert_null(o);
}

static json_object *tricky_doc(void)
{
	static const char *const strings[] = {
		"",           "true",       "1",          "a: b",
		"- x",        "#c",         "multi\nline\n", "no newline\nat end",
		"trail \nx",  "  leading",  "trailing  ", "ünïcödé ✓",
		"tab\there",  "null",       "~",          "yes",
		"0x1F",       "1_000",      "1:30",       "quote\"s'",
		"back\\slash", "[x]",       "{y}",        "a, b",
		"%percent",   "@at",        "`tick",      "!bang",
		"&amp",       "*star",      "|pipe",      ">gt",
		"?q",         "-",          "---",        "...",
		".inf",       "-.5",        "1e5",        "=",
		"<<",         "\n",         "\n\nx\n\n",  "CRLF\r\nline",
	};
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();
	char key[2048];

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		json_object_array_add(a, json_object_new_string(strings[i]));
		snprintf(key, sizeof(key), "%s", strings[i]);
		json_object_object_add(o, key, json_object_new_int((int)i));
	}
	memset(key, 'k', 300);
	key[300] = '\0';
	json_object_object_add(o, key, json_object_new_string_len("a\0b", 3));
	json_object_object_add(o, "strings", a);
	return o;
}

static void test_round_trip_strings(void **state)
{
	json_object *o = tricky_doc();

	free(round_trip(o));
	json_object_put(o);
}

static void test_round_trip_numbers(void **state)
{
	json_object *o = json_object_new_object();
	json_object *e = json_object_new_object();

	json_object_object_add(o, "min", json_object_new_int64(INT64_MIN));
	json_object_object_add(o, "max", json_object_new_int64(INT64_MAX));
	json_object_object_add(o, "umax", json_object_new_uint64(UINT64_MAX));
	json_object_object_add(o, "half", json_object_new_double(1.5));
	json_object_object_add(o, "tenth", json_object_new_double(0.1));
	json_object_object_add(o, "one", json_object_new_double(1.0));
	json_object_object_add(o, "big", json_object_new_double(1e300));
	json_object_object_add(o, "tiny", json_object_new_double(-2.5e-300));
	json_object_object_add(o, "yes", json_object_new_boolean(1));
	json_object_object_add(o, "nil", NULL);
	json_object_object_add(o, "empty_map", e);
	json_object_object_add(o, "empty_list", json_object_new_array());
	free(round_trip(o));
	json_object_put(o);
}

static void test_emit_style(void **state)
{
	json_object *o = json_object_new_object();
	char *y = NULL;

	json_object_object_add(o, "b", json_object_new_string("true"));
	json_object_object_add(o, "n", json_object_new_string("123"));
	json_object_object_add(o, "y", json_object_new_string("yes"));
	json_object_object_add(o, "s", json_object_new_string("plain text"));
	json_object_object_add(o, "m", json_object_new_string("one\ntwo\n"));
	json_object_object_add(o, "i", json_object_new_int(4));
	json_object_object_add(o, "e", json_object_new_string(""));
	y = round_trip(o);
	assert_non_null(strstr(y, "b: \"true\"\n"));
	/* "n" and "y" are booleans to YAML 1.1 readers, keys included. */
	assert_non_null(strstr(y, "\"n\": \"123\"\n"));
	assert_non_null(strstr(y, "\"y\": \"yes\"\n"));
	assert_non_null(strstr(y, "s: plain text\n"));
	assert_non_null(strstr(y, "m: |\n  one\n  two\n"));
	assert_non_null(strstr(y, "i: 4\n"));
	assert_non_null(strstr(y, "e: \"\"\n"));
	assert_null(strstr(y, "---"));
	free(y);
	json_object_put(o);
}

static void test_unknown_fields_kept(void **state)
{
	const char *y = "cpus: 2\nmemory: 1Gi\nfutureField:\n  x: [1, 2]\n"
			"firmware: uefi\n";
	char err[CORE_ERR_MAX], *out = NULL;
	struct core_spec s;
	json_object *o = parse_ok(y);

	assert_int_equal(core_spec_from_json(o, &s, err, sizeof(err)), 0);
	assert_string_equal(s.firmware, "uefi");
	assert_non_null(path(o, "futureField.x.1"));
	assert_int_equal(core_yaml_emit(o, &out, NULL), 0);
	assert_non_null(strstr(out, "futureField:\n  x:\n  - 1\n  - 2\n"));
	free(out);
	core_spec_free(&s);
	json_object_put(o);
}

static void test_rejects(void **state)
{
	static const struct {
		const char *y;
		const char *msg;
	} bad[] = {
		{ "a: &x 1\nb: 2\n", "line 1: anchors are not supported" },
		{ "a: 1\nb: *x\n", "line 2: aliases are not supported" },
		{ "a: 1\n---\nb: 2\n", "line 2: multiple documents" },
		{ "a: 1\na: 2\n", "line 2: duplicate key \"a\"" },
		{ "? [a]\n: 1\n", "mapping keys must be scalars" },
		{ "a: !!binary aGk=\n", "unsupported tag" },
		{ "a: !foo {x: 1}\n", "unsupported tag" },
		{ "a: [1, 2\n", "yaml: line" },
		{ "a: b: c\n", "yaml: line 1:" },
		{ "\"unterminated\n", "yaml: line" },
		{ "a:\n\t- x\n", "yaml: line 2" },
		{ "", "yaml: empty document" },
		{ "# just a comment\n", "yaml: empty document" },
		{ "a: \"\\0\"\n\"k\\0\": 1\n", "NUL byte in key" },
	};
	char err[CORE_ERR_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse_err(bad[i].y, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].y, err,
				 bad[i].msg);
	}
}

static void test_rejects_binary_and_deep(void **state)
{
	char err[CORE_ERR_MAX], deep[512];
	const char bin[] = "a: 1\0b: 2\n";

	assert_int_equal(core_yaml_parse(bin, sizeof(bin) - 1,
					 &(json_object *){ NULL }, err,
					 sizeof(err)),
			 -EINVAL);
	memset(deep, '[', 300);
	deep[300] = '\0';
	assert_int_equal(parse_err(deep, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nesting too deep"));
	assert_int_equal(parse_err("\xff\xfe garbage", err, sizeof(err)),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_manifests),
		cmocka_unit_test(test_seed_details),
		cmocka_unit_test(test_scalar_typing),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_round_trip_strings),
		cmocka_unit_test(test_round_trip_numbers),
		cmocka_unit_test(test_emit_style),
		cmocka_unit_test(test_unknown_fields_kept),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_rejects_binary_and_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
