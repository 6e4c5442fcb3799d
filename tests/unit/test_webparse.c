/* The dashboard's request parsers: bodies become ctl messages of the same
 * grammar as the tree, paths become routes, and bad input is refused
 * with one err line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "web/web.h"

static char err[CORE_ERR_MAX];

static int action(const char *body, struct core_ctl *c)
{
	err[0] = '\0';
	return web_parse_action(body, strlen(body), c, err, sizeof(err));
}

static int create(const char *body, struct core_ctl *c)
{
	err[0] = '\0';
	return web_parse_create(body, strlen(body), c, err, sizeof(err));
}

static void test_action(void **state)
{
	struct core_ctl c;

	assert_int_equal(action("{\"action\":\"start\"}", &c), 0);
	assert_int_equal(c.verb, CORE_V_START);
	assert_int_equal(action(" {\"action\":\"stop\",\"force\":true}\n", &c), 0);
	assert_int_equal(c.verb, CORE_V_STOP);
	assert_true(c.force);
	assert_int_equal(action("{\"ctl\":\"clone web2 linked\"}", &c), 0);
	assert_int_equal(c.verb, CORE_V_CLONE);
	assert_string_equal(c.arg, "web2");
	assert_true(c.linked);
}

static void test_action_refused(void **state)
{
	static const struct { const char *body, *err; } bad[] = {
		{ "", "empty body" },
		{ "{\"action\":\"start\"", "bad JSON: unexpected end of data" },
		{ "{\"action\":\"start\"} x", NULL },
		{ "[\"start\"]", "bad JSON: expected an object" },
		{ "{}", "expected \"action\" or \"ctl\"" },
		{ "{\"action\":\"stop force\"}", "action: expected one word of at most 63 characters" },
		{ "{\"action\":7}", "action: expected a string" },
		{ "{\"action\":\"frob\"}", "unknown control message \"frob\"" },
		{ "{\"action\":\"stop\",\"x\":1}", "unknown field \"x\"" },
		{ "{\"action\":\"stop\",\"force\":1}", "force: expected true or false" },
		{ "{\"ctl\":\"start\",\"action\":\"stop\"}", "unknown field \"action (with ctl)\"" },
		{ "{\"ctl\":\"create x\"}", "unknown control message \"create x\"" },
		{ "{\"ctl\":\"start\\nstop\"}", NULL },
	};
	struct core_ctl c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(action(bad[i].body, &c), -EINVAL);
		if (bad[i].err && strcmp(err, bad[i].err) != 0)
			fail_msg("%s:\n got  %s\n want %s", bad[i].body, err, bad[i].err);
		assert_true(err[0] != '\0');
	}
}

static void test_create(void **state)
{
	struct core_ctl c;

	assert_int_equal(create("{\"name\":\"web\",\"cpus\":2,\"memory\":\"1Gi\","
				"\"disk\":\"10Gi\",\"running\":true}", &c), 0);
	assert_int_equal(c.verb, CORE_V_CREATE);
	assert_string_equal(c.arg, "web");
	assert_int_equal(c.cpus, 2);
	assert_int_equal(c.memory, 1ULL << 30);
	assert_int_equal(c.disk, 10ULL << 30);
	assert_int_equal(c.running, 1);
	assert_int_equal(create("{\"memory\":67108864,\"name\":\"db\"}", &c), 0);
	assert_string_equal(c.arg, "db");
	assert_int_equal(c.memory, 64ULL << 20);
	assert_int_equal(create("{\"ctl\":\"create db cpus=1\"}", &c), 0);
	assert_int_equal(c.cpus, 1);
	assert_int_equal(create("{\"cpus\":1}", &c), -EINVAL);
	assert_string_equal(err, "name: missing");
	assert_int_equal(create("{\"name\":\"a b\"}", &c), -EINVAL);
	assert_int_equal(create("{\"name\":\"a\",\"memory\":\"1Gi cpus=9\"}", &c), -EINVAL);
	assert_int_equal(create("{\"name\":\"a\",\"cpus\":\"2\"}", &c), -EINVAL);
	assert_string_equal(err, "cpus: expected an integer");
	assert_int_equal(create("{\"name\":\"a\",\"namespace\":\"x\"}", &c), -EINVAL);
	assert_string_equal(err, "unknown field \"namespace\"");
	assert_int_equal(create("{\"name\":\"Bad_Name\"}", &c), -EINVAL);
}

static void test_route(void **state)
{
	struct web_route r;

	assert_int_equal(web_route("/api/k8s/vms/default/web/actions", &r, err,
				   sizeof(err)), 0);
	assert_int_equal(r.kind, WEB_R_VM_ACTIONS);
	assert_string_equal(r.ns, "default");
	assert_string_equal(r.name, "web");
	web_route("/api/k8s/vms/default/web", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_VM);
	web_route("/api/k8s/vms/default/web/other", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_NONE);
	web_route("/k8s/vms", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_PAGE);
	web_route("/assets/app.js", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_ASSET);
	assert_string_equal(r.asset, "app.js");
	web_route("/assets/../etc/passwd", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_NONE);
	assert_int_equal(web_route("/api/k8s/vms/default/Bad_Name", &r, err,
				   sizeof(err)), -EINVAL);
	assert_true(web_method_ok(WEB_R_VM_ACTIONS, "POST"));
	assert_false(web_method_ok(WEB_R_VM_ACTIONS, "GET"));
	assert_false(web_method_ok(WEB_R_METRICS, "POST"));
	assert_true(web_method_ok(WEB_R_VMS, "POST"));
	assert_int_equal(web_route("/api/k8s/snapshots/default/s1/delete", &r,
				   err, sizeof(err)), 0);
	assert_int_equal(r.kind, WEB_R_SNAPSHOT_DELETE);
	assert_string_equal(r.name, "s1");
	web_route("/api/k8s/snapshots/default/s1", &r, err, sizeof(err));
	assert_int_equal(r.kind, WEB_R_NONE);
	assert_int_equal(web_route("/api/k8s/snapshots/default/S_1/delete", &r,
				   err, sizeof(err)), -EINVAL);
	assert_true(web_method_ok(WEB_R_SNAPSHOT_DELETE, "POST"));
	assert_false(web_method_ok(WEB_R_SNAPSHOT_DELETE, "GET"));
}

/* DNS rebinding: the whole host must be a loopback one. */
static void test_host(void **state)
{
	static const char *const yes[] = {
		"127.0.0.1:8080", "127.0.0.1", "127.1.2.3:80", "localhost",
		"LocalHost:8080", "[::1]:8080", "[::1]",
	};
	static const char *const no[] = {
		"localhost.attacker.example:8080", "127.0.0.1.attacker.example",
		"127.0.0.1:8080x", "127.0.0.1:", "localhost:99999",
		"[::1].evil:80", "[::1", "[::2]:80", "10.0.0.1:8080", "",
		"127.0.0.1:80:80", "example.com", "[]:80", ":8080",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!web_host_loopback(yes[i]))
			fail_msg("refused %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (web_host_loopback(no[i]))
			fail_msg("accepted %s", no[i]);
	assert_false(web_host_loopback(NULL));
}

static void test_token(void **state)
{
	char buf[WEB_TOKEN_MAX];
	char longt[WEB_TOKEN_MAX + 2];

	assert_int_equal(web_parse_token("  0123456789abcdef\r\n", "T", buf,
					 sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "0123456789abcdef");
	assert_int_equal(web_parse_token("short", "T", buf, sizeof(buf), err,
					 sizeof(err)), -EINVAL);
	assert_string_equal(err, "T: expected one line of 16 to 255 "
			    "printable characters");
	assert_int_equal(web_parse_token("0123456789 abcdef", "T", buf,
					 sizeof(buf), err, sizeof(err)), -EINVAL);
	assert_int_equal(web_parse_token("0123456789abcdef\nmore", "T", buf,
					 sizeof(buf), err, sizeof(err)), -EINVAL);
	memset(longt, 'x', sizeof(longt) - 1);
	longt[sizeof(longt) - 1] = '\0';
	assert_int_equal(web_parse_token(longt, "T", buf, sizeof(buf), err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(web_parse_token(NULL, "T", buf, sizeof(buf), err,
					 sizeof(err)), -EINVAL);
}

static void test_listen_and_status(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;
	bool lo;

	assert_int_equal(web_parse_listen("127.0.0.1:8080", &sa, &len, &lo, err,
					  sizeof(err)), 0);
	assert_true(lo);
	assert_int_equal(web_parse_listen("[::1]:0", &sa, &len, &lo, err,
					  sizeof(err)), 0);
	assert_true(lo);
	assert_int_equal(web_parse_listen("0.0.0.0:80", &sa, &len, &lo, err,
					  sizeof(err)), 0);
	assert_false(lo);
	assert_int_equal(web_parse_listen("example.com:80", &sa, &len, &lo, err,
					  sizeof(err)), -EINVAL);
	assert_int_equal(web_parse_listen("127.0.0.1:65536", &sa, &len, &lo, err,
					  sizeof(err)), -EINVAL);
	assert_int_equal(web_http_status(-EINVAL), 400);
	assert_int_equal(web_http_status(-ENOENT), 404);
	assert_int_equal(web_http_status(-EBUSY), 409);
	assert_int_equal(web_http_status(-EEXIST), 409);
	assert_int_equal(web_http_status(-EOPNOTSUPP), 501);
	assert_int_equal(web_http_status(-EIO), 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action),
		cmocka_unit_test(test_action_refused),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_listen_and_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
