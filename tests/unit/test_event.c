/* Watch events, line splitting, merge patches, names, times, and the
 * mapping of API server answers to errnos. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/priv.h"

static int decode(const char *line, enum sync_event_type *t,
		  json_object **o, char *err)
{
	return sync_event_decode(line, strlen(line), t, o, err, 256);
}

static void test_kinds(void **state)
{
	assert_string_equal(sync_kind_name(SYNC_VM), "VirtualMachine");
	assert_string_equal(sync_kind_plural(SYNC_VM), "virtualmachines");
	assert_string_equal(sync_kind_plural(SYNC_OPERATION), "vmoperations");
	assert_string_equal(sync_kind_plural(SYNC_TEMPLATE), "vmtemplates");
	assert_string_equal(sync_kind_name(SYNC_SNAPSHOT), "VMSnapshot");
	assert_string_equal(sync_kind_name(SYNC_KIND_COUNT), "?");
}

/* Both ways, and the names agree, so a kind added to one enum and not
 * the other shows here. */
static void test_kind_mapping(void **state)
{
	for (int k = 0; k < CORE_KIND_COUNT; k++) {
		enum sync_kind s = sync_kind_of((enum core_kind)k);

		assert_int_not_equal(s, SYNC_KIND_COUNT);
		assert_int_not_equal(s, SYNC_VM);
		assert_int_equal(sync_core_kind(s), k);
		assert_string_equal(sync_kind_name(s),
				    core_kind_name((enum core_kind)k));
	}
	assert_int_equal(sync_kind_of(CORE_KIND_SNAPSHOT), SYNC_SNAPSHOT);
	assert_int_equal(sync_core_kind(SYNC_TEMPLATE), CORE_KIND_TEMPLATE);
	assert_int_equal(sync_core_kind(SYNC_VM), CORE_KIND_COUNT);
	assert_int_equal(sync_core_kind(SYNC_KIND_COUNT), CORE_KIND_COUNT);
	assert_int_equal(sync_kind_of(CORE_KIND_COUNT), SYNC_KIND_COUNT);
	assert_int_equal(sync_kind_of((enum core_kind)-1), SYNC_KIND_COUNT);
}

static void test_decode_ok(void **state)
{
	enum sync_event_type t;
	json_object *o = NULL;
	char err[256];

	assert_int_equal(decode("{\"type\":\"ADDED\",\"object\":{\"kind\":"
				"\"VirtualMachine\",\"metadata\":{\"name\":"
				"\"web\",\"resourceVersion\":\"12\"},\"spec\":"
				"{\"cpus\":2}}}", &t, &o, err), 0);
	assert_int_equal(t, SYNC_EV_ADDED);
	assert_string_equal(sync_meta_str(o, "name"), "web");
	assert_string_equal(sync_meta_str(o, "resourceVersion"), "12");
	json_object_put(o);

	assert_int_equal(decode("{\"type\":\"MODIFIED\",\"object\":{\"metadata\""
				":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}"
				" \r\n", &t, &o, err), 0);
	assert_int_equal(t, SYNC_EV_MODIFIED);
	json_object_put(o);
	assert_int_equal(decode("{\"type\":\"DELETED\",\"object\":{\"metadata\":"
				"{\"name\":\"a\",\"resourceVersion\":\"2\"}}}",
				&t, &o, err), 0);
	assert_int_equal(t, SYNC_EV_DELETED);
	json_object_put(o);
	/* a bookmark has only a resourceVersion */
	assert_int_equal(decode("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
				"\"VirtualMachine\",\"metadata\":{\"resource"
				"Version\":\"99\"}}}", &t, &o, err), 0);
	assert_int_equal(t, SYNC_EV_BOOKMARK);
	assert_string_equal(sync_meta_str(o, "resourceVersion"), "99");
	json_object_put(o);
	/* the API server's own 410 */
	assert_int_equal(decode("{\"type\":\"ERROR\",\"object\":{\"kind\":"
				"\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
				"\"status\":\"Failure\",\"message\":\"too old "
				"resource version: 1 (215)\",\"reason\":"
				"\"Expired\",\"code\":410}}", &t, &o, err), 0);
	assert_int_equal(t, SYNC_EV_ERROR);
	assert_int_equal(sync_status_code(o), 410);
	json_object_put(o);
}

/* Watch lines point into curl's buffer: nothing after them is ours. */
static void test_decode_unterminated(void **state)
{
	const char *txt = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
			  "{\"resourceVersion\":\"7\"}}}  ";
	size_t n = strlen(txt);
	char *exact = malloc(n), err[256];
	enum sync_event_type t;
	json_object *o;

	memcpy(exact, txt, n);
	assert_int_equal(sync_event_decode(exact, n, &t, &o, err, sizeof(err)),
			 0);
	json_object_put(o);
	assert_int_equal(sync_event_decode(exact, n - 3, &t, &o, err,
					   sizeof(err)), -EINVAL);
	free(exact);
}

static void bad(const char *line, const char *want)
{
	enum sync_event_type t;
	json_object *o = (json_object *)1;
	char err[256] = "";

	assert_int_equal(decode(line, &t, &o, err), -EINVAL);
	assert_null(o);
	if (!strstr(err, want))
		fail_msg("err \"%s\" lacks \"%s\"", err, want);
}

static void test_decode_bad(void **state)
{
	bad("", "not a JSON object");
	bad("[1,2]", "not a JSON object");
	bad("{\"type\":\"ADDED\"", "not a JSON object");
	bad("{\"type\":\"ADDED\",\"object\":{}} {}", "not a JSON object");
	bad("{\"object\":{}}", "no type");
	bad("{\"type\":5,\"object\":{}}", "no type");
	bad("{\"type\":\"ADDDED\",\"object\":{}}", "unknown type \"ADDDED\"");
	bad("{\"type\":\"ADDED\"}", "no object");
	bad("{\"type\":\"ADDED\",\"object\":[]}", "no object");
	bad("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
	    "no metadata.resourceVersion");
	bad("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
	    "no metadata.resourceVersion");
	bad("{\"type\":\"DELETED\",\"object\":{\"metadata\":"
	    "{\"resourceVersion\":\"3\"}}}", "no metadata.name");
	bad("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
	    "\"resourceVersion\":3}}}", "no metadata.resourceVersion");
}

struct collect {
	char lines[8][64];
	int n, stop_at;
};

static int collect(void *arg, const char *line, size_t len)
{
	struct collect *c = arg;

	assert_true(c->n < 8);
	snprintf(c->lines[c->n], sizeof(c->lines[0]), "%.*s", (int)len, line);
	c->n++;
	return c->n == c->stop_at ? 42 : 0;
}

static void test_lines(void **state)
{
	struct sync_lines l = { 0 };
	struct collect c = { 0 };
	const char *s = "one\ntw";

	assert_int_equal(sync_lines_feed(&l, s, strlen(s), collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(sync_lines_feed(&l, "o\r\nthr", 6, collect, &c), 0);
	assert_int_equal(sync_lines_feed(&l, "ee\n\nfour\n", 9, collect, &c), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.lines[0], "one");
	assert_string_equal(c.lines[1], "two");
	assert_string_equal(c.lines[2], "three");
	assert_string_equal(c.lines[3], "");
	assert_string_equal(c.lines[4], "four");
	/* a partial line is dropped by reset (a cut stream) */
	assert_int_equal(sync_lines_feed(&l, "half", 4, collect, &c), 0);
	sync_lines_reset(&l);
	assert_int_equal(sync_lines_feed(&l, "five\n", 5, collect, &c), 0);
	assert_string_equal(c.lines[5], "five");
	/* the callback's verdict stops the feed */
	c.stop_at = 7;
	assert_int_equal(sync_lines_feed(&l, "six\nseven\neight\n", 16, collect,
					 &c), 42);
	assert_int_equal(c.n, 7);
	sync_lines_free(&l);

	/* bounded */
	l.max = 8;
	assert_int_equal(sync_lines_feed(&l, "0123456789", 10, collect, &c),
			 -E2BIG);
	sync_lines_free(&l);
}

static json_object *J(const char *s)
{
	json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

static void compose_check(const char *t, const char *a, const char *b,
			  const char *want)
{
	json_object *T = J(t), *A = J(a), *B = J(b), *W = J(want);
	json_object *c = sync_merge_compose(A, B);
	json_object *one = sync_merge_apply(T, c);
	json_object *x = sync_merge_apply(T, A);
	json_object *two = sync_merge_apply(x, B);

	/* composing then applying == applying in turn */
	if (!json_object_equal(one, two) || !json_object_equal(one, W))
		fail_msg("compose %s %s on %s: %s vs %s", a, b, t,
			 json_object_to_json_string(one),
			 json_object_to_json_string(two));
	json_object_put(T);
	json_object_put(A);
	json_object_put(B);
	json_object_put(W);
	json_object_put(c);
	json_object_put(one);
	json_object_put(x);
	json_object_put(two);
}

static void test_merge(void **state)
{
	json_object *a, *b, *c;

	compose_check("{\"status\":{\"phase\":\"Pending\",\"x\":1}}",
		      "{\"status\":{\"phase\":\"Running\",\"nodeName\":\"n1\"}}",
		      "{\"status\":{\"phase\":\"Stopped\"}}",
		      "{\"status\":{\"phase\":\"Stopped\",\"x\":1,"
		      "\"nodeName\":\"n1\"}}");
	compose_check("{\"status\":{\"a\":1,\"b\":2}}",
		      "{\"status\":{\"a\":null}}", "{\"status\":{\"b\":3}}",
		      "{\"status\":{\"b\":3}}");
	compose_check("{\"status\":{\"a\":1}}", "{\"status\":{\"a\":5}}",
		      "{\"status\":{\"a\":null}}", "{\"status\":{}}");
	compose_check("{}", "{\"s\":{\"l\":[1,2]}}", "{\"s\":{\"l\":[3]}}",
		      "{\"s\":{\"l\":[3]}}");
	compose_check("{\"s\":5}", "{\"s\":{\"a\":{\"b\":1}}}",
		      "{\"s\":{\"a\":{\"c\":2}}}",
		      "{\"s\":{\"a\":{\"b\":1,\"c\":2}}}");
	/* inputs stay untouched */
	a = J("{\"s\":{\"a\":1}}");
	b = J("{\"s\":{\"b\":2}}");
	c = sync_merge_compose(a, b);
	assert_string_equal(json_object_to_json_string_ext(a,
			    JSON_C_TO_STRING_PLAIN), "{\"s\":{\"a\":1}}");
	assert_string_equal(json_object_to_json_string_ext(c,
			    JSON_C_TO_STRING_PLAIN), "{\"s\":{\"a\":1,\"b\":2}}");
	json_object_put(a);
	json_object_put(b);
	json_object_put(c);
}

static void test_names_times(void **state)
{
	char buf[64];
	double t, u;

	assert_true(sync_name_ok("web"));
	assert_true(sync_name_ok("a.b-c.0"));
	assert_false(sync_name_ok(""));
	assert_false(sync_name_ok(NULL));
	assert_false(sync_name_ok("Web"));
	assert_false(sync_name_ok("-a"));
	assert_false(sync_name_ok("a/b"));
	assert_false(sync_name_ok("a?watch=1"));
	memset(buf, 'a', 63);
	buf[63] = '\0';
	assert_true(sync_name_ok(buf));

	assert_int_equal(sync_parse_time("2026-11-26T15:04:05.000000Z", &t), 0);
	assert_true(t == 1795705445.0);
	assert_int_equal(sync_parse_time("2026-11-26T15:04:05.5Z", &t), 0);
	assert_true(t == 1795705445.5);
	assert_int_equal(sync_parse_time("2026-11-26T16:04:05+01:00", &t), 0);
	assert_true(t == 1795705445.0);
	assert_int_equal(sync_parse_time("2026-11-26T14:04:05-01:00", &t), 0);
	assert_true(t == 1795705445.0);
	assert_int_equal(sync_parse_time("2026-11-26 15:04:05Z", &t), -EINVAL);
	assert_int_equal(sync_parse_time("2026-11-26T15:04:05", &t), -EINVAL);
	assert_int_equal(sync_parse_time("2026-13-26T15:04:05Z", &t), -EINVAL);
	assert_int_equal(sync_parse_time("2026-11-26T15:04:05Zx", &t), -EINVAL);
	assert_int_equal(sync_parse_time("", &t), -EINVAL);

	sync_micro_time(buf, sizeof(buf));
	/* "2026-11-26T15:04:05.000000Z": 27 characters, micro seconds */
	assert_int_equal(strlen(buf), 27);
	assert_int_equal(buf[19], '.');
	assert_int_equal(buf[26], 'Z');
	assert_int_equal(sync_parse_time(buf, &u), 0);
	assert_true(u > 1.7e9);
}

static int code_of(long code, const char *body, char *err)
{
	struct sync_resp rs = {
		.code = code, .body = (char *)body, .len = strlen(body),
	};

	return sync_http_errno(&rs, err, 256);
}

static void test_http_errno(void **state)
{
	char err[256];

	assert_int_equal(code_of(200, "{}", err), 0);
	assert_int_equal(code_of(201, "{}", err), 0);
	assert_int_equal(code_of(404, "{\"kind\":\"Status\",\"message\":"
				 "\"virtualmachines.hypersdk.io \\\"x\\\" not "
				 "found\",\"reason\":\"NotFound\",\"code\":404}",
				 err), -ENOENT);
	assert_string_equal(err, "virtualmachines.hypersdk.io \"x\" not found");
	assert_int_equal(code_of(409, "{\"reason\":\"AlreadyExists\"}", err),
			 -EEXIST);
	assert_int_equal(code_of(409, "{\"reason\":\"Conflict\",\"message\":"
				 "\"the object has been modified\"}", err),
			 -EBUSY);
	assert_int_equal(code_of(410, "{}", err), -ESTALE);
	assert_int_equal(code_of(422, "{\"message\":\"spec.cpus: Invalid\"}",
				 err), -EINVAL);
	assert_string_equal(err, "spec.cpus: Invalid");
	assert_int_equal(code_of(400, "", err), -EINVAL);
	assert_string_equal(err, "HTTP 400");
	assert_int_equal(code_of(401, "{}", err), -EACCES);
	assert_int_equal(code_of(403, "{}", err), -EACCES);
	assert_int_equal(code_of(429, "{}", err), -EHOSTUNREACH);
	assert_int_equal(code_of(503, "{}", err), -EHOSTUNREACH);
	assert_int_equal(code_of(500, "oops\n", err), -EIO);
	assert_string_equal(err, "HTTP 500: \"oops?\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_kind_mapping),
		cmocka_unit_test(test_decode_ok),
		cmocka_unit_test(test_decode_bad),
		cmocka_unit_test(test_decode_unterminated),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_names_times),
		cmocka_unit_test(test_http_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
