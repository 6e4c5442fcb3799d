/* ctl message parsing: every verb, every error. */
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

static char err[CORE_ERR_MAX];

static struct core_ctl parse(const char *msg, bool on_dir)
{
	struct core_ctl c;

	err[0] = '\0';
	if (core_ctl_parse(msg, strlen(msg), on_dir, &c, err, sizeof(err)))
		fail_msg("\"%s\": %s", msg, err);
	return c;
}

static void expect_err(const char *msg, bool on_dir, const char *want)
{
	struct core_ctl c;

	err[0] = '\0';
	assert_int_equal(core_ctl_parse(msg, strlen(msg), on_dir, &c, err,
					sizeof(err)),
			 -EINVAL);
	if (strcmp(err, want) != 0)
		fail_msg("\"%s\":\n got  %s\n want %s", msg, err, want);
}

static void test_create(void **state)
{
	struct core_ctl c = parse("create web\n", true);

	assert_int_equal(c.verb, CORE_V_CREATE);
	assert_string_equal(c.arg, "web");
	assert_int_equal(c.cpus, 0);
	assert_true(c.memory == 0 && c.disk == 0);
	assert_string_equal(c.template_name, "");
	assert_int_equal(c.running, -1);
	assert_int_equal(c.keep_days, -1);
	assert_int_equal(c.keep_count, -1);
	c = parse(" \tcreate\tdb  cpus=4 memory=8Gi disk=50Gi "
		  "template=ubuntu-22-04 running=true \t", true);
	assert_string_equal(c.arg, "db");
	assert_int_equal(c.cpus, 4);
	assert_true(c.memory == 8ull << 30);
	assert_true(c.disk == 50ull << 30);
	assert_string_equal(c.template_name, "ubuntu-22-04");
	assert_int_equal(c.running, 1);
	c = parse("create x running=false", true);
	assert_int_equal(c.running, 0);
}

static void test_simple_verbs(void **state)
{
	static const struct {
		const char *msg;
		enum core_verb v;
	} v[] = {
		{ "start", CORE_V_START },     { "stop", CORE_V_STOP },
		{ "restart", CORE_V_RESTART }, { "pause", CORE_V_PAUSE },
		{ "resume", CORE_V_RESUME },   { "delete", CORE_V_DELETE },
		{ "cancel", CORE_V_CANCEL },
	};

	char want[128];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct core_ctl c = parse(v[i].msg, false);

		assert_int_equal(c.verb, v[i].v);
		assert_false(c.force);
		assert_string_equal(core_verb_name(v[i].v), v[i].msg);
		snprintf(want, sizeof(want), "unknown control message \"%s\"",
			 v[i].msg);
		expect_err(v[i].msg, true, want);
	}
	assert_true(parse("stop force", false).force);
	assert_true(parse("delete force\n", false).force);
	assert_string_equal(core_verb_name(CORE_V_CREATE), "create");
	assert_string_equal(core_verb_name((enum core_verb)99), "unknown");
}

static void test_start_now(void **state)
{
	struct core_ctl c = parse("start", false);

	assert_int_equal(c.verb, CORE_V_START);
	assert_false(c.now);
	c = parse("start now", false);
	assert_true(c.now);
	expect_err("stop now", false, "bad argument \"now\": unknown option for stop");
	expect_err("start later", false,
		   "bad argument \"later\": unknown option for start");
}

static void test_clone(void **state)
{
	struct core_ctl c = parse("clone web-2", false);

	assert_int_equal(c.verb, CORE_V_CLONE);
	assert_string_equal(c.arg, "web-2");
	assert_false(c.linked || c.start);
	c = parse("clone web-3 start linked", false);
	assert_true(c.linked && c.start);
}

static void test_migrate(void **state)
{
	struct core_ctl c = parse("migrate node-2", false);

	assert_int_equal(c.verb, CORE_V_MIGRATE);
	assert_string_equal(c.arg, "node-2");
	assert_false(c.offline || c.autoconverge || c.postcopy);
	assert_true(c.bandwidth == 0);
	c = parse("migrate n1.example.com bandwidth=100Mbps autoconverge "
		  "postcopy",
		  false);
	assert_string_equal(c.arg, "n1.example.com");
	assert_true(c.bandwidth == 100000000ull);
	assert_true(c.autoconverge && c.postcopy && !c.offline);
	c = parse("migrate n1 offline", false);
	assert_true(c.offline);
}

static void test_resize(void **state)
{
	struct core_ctl c = parse("resize cpus=8", false);

	assert_int_equal(c.verb, CORE_V_RESIZE);
	assert_int_equal(c.cpus, 8);
	assert_true(c.memory == 0);
	c = parse("resize memory=1.5Gi", false);
	assert_true(c.memory == 3ull << 29);
	c = parse("resize memory=4Gi cpus=2", false);
	assert_true(c.memory == 4ull << 30 && c.cpus == 2);
}

static void test_snapshot(void **state)
{
	struct core_ctl c = parse("snapshot before-upgrade", false);

	assert_int_equal(c.verb, CORE_V_SNAPSHOT);
	assert_string_equal(c.arg, "before-upgrade");
	assert_false(c.memory_state || c.quiesce);
	assert_int_equal(c.keep_days, -1);
	assert_int_equal(c.keep_count, -1);
	c = parse("snapshot s1 memory quiesce keep=30d count=5", false);
	assert_true(c.memory_state && c.quiesce);
	assert_int_equal(c.keep_days, 30);
	assert_int_equal(c.keep_count, 5);
	c = parse("revert s1", false);
	assert_int_equal(c.verb, CORE_V_REVERT);
	assert_string_equal(c.arg, "s1");
}

static void test_message_errors(void **state)
{
	char big[CORE_MSG_MAX + 2];
	struct core_ctl c;

	expect_err("", false, "empty control message");
	expect_err("\n", false, "empty control message");
	expect_err(" \t ", false, "empty control message");
	expect_err("start\n\n", false, "control message has embedded newline");
	expect_err("stop\nstart", false,
		   "control message has embedded newline");
	expect_err("start\r\n", false,
		   "control message has control characters");
	expect_err("st\x01rt", false, "control message has control characters");
	expect_err("start\x7f", false, "control message has control characters");
	assert_int_equal(core_ctl_parse("start\0x", 7, false, &c, err,
					sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "control message has control characters");
	memset(big, 'a', sizeof(big));
	assert_int_equal(core_ctl_parse(big, CORE_MSG_MAX + 1, false, &c, err,
					sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "control message too long");
	/* Exactly the limit, plus the newline that gets stripped, is fine
	 * as far as length goes. */
	big[CORE_MSG_MAX] = '\n';
	assert_int_equal(core_ctl_parse(big, CORE_MSG_MAX + 1, false, &c, err,
					sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "unknown control message \"aaaaaaaaaaaaaaaaaaa"
				 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				 "...\"");
}

static void test_unknown(void **state)
{
	expect_err("frobnicate", false, "unknown control message \"frobnicate\"");
	expect_err("  frobnicate  now\n", false,
		   "unknown control message \"frobnicate  now\"");
	expect_err("START", false, "unknown control message \"START\"");
	expect_err("create web", false, "unknown control message \"create web\"");
	expect_err("start", true, "unknown control message \"start\"");
	expect_err("delete web", true, "unknown control message \"delete web\"");
}

static void test_wrong_args(void **state)
{
	static const char *const v[] = {
		"restart 1", "pause x", "resume x", "cancel all",
		"clone", "migrate", "snapshot", "revert", "revert a b",
		"resize", "clone cpus=2",
	};
	const char *want = "wrong #args in control message";
	char many[256] = "stop";

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		expect_err(v[i], false, want);
	expect_err("create", true, want);
	expect_err("create cpus=2", true, want);
	for (int i = 0; i < 20; i++)
		strcat(many, " force");
	expect_err(many, false, want);
}

static void test_bad_arguments(void **state)
{
	static const struct {
		const char *msg;
		bool dir;
		const char *err;
	} v[] = {
		{ "create Web", true, "bad name \"Web\": only lower case "
				      "letters, digits and '-' are allowed" },
		{ "create web cpus=0", true,
		  "bad argument \"cpus=0\": must be 1 to 512" },
		{ "create web cpus=513", true,
		  "bad argument \"cpus=513\": must be 1 to 512" },
		{ "create web cpus=99999999999999999999", true,
		  "bad argument \"cpus=99999999999999999999\": must be 1 to "
		  "512" },
		{ "create web cpus=x", true,
		  "bad argument \"cpus=x\": not a number" },
		{ "create web cpus=-1", true,
		  "bad argument \"cpus=-1\": not a number" },
		{ "create web cpus=", true, "bad argument \"cpus=\": not a number" },
		{ "create web memory=lots", true,
		  "bad argument \"memory=lots\": bad quantity \"lots\"" },
		{ "create web memory=1k", true,
		  "bad argument \"memory=1k\": must be at least 1Mi" },
		{ "create web memory=0", true,
		  "bad argument \"memory=0\": must be at least 1Mi" },
		{ "create web disk=99999999999Ei", true,
		  "bad argument \"disk=99999999999Ei\": bad quantity "
		  "\"99999999999Ei\": out of range" },
		{ "create web template=Ubuntu", true,
		  "bad argument \"template=Ubuntu\": bad name \"Ubuntu\": only "
		  "lower case letters, digits and '-' are allowed" },
		{ "create web running=yes", true,
		  "bad argument \"running=yes\": must be true or false" },
		{ "create web cpus=2 cpus=2", true,
		  "bad argument \"cpus=2\": given twice" },
		{ "create web colour=blue", true,
		  "bad argument \"colour=blue\": unknown option for create" },
		{ "create web running", true,
		  "bad argument \"running\": unknown option for create" },
		{ "stop now", false,
		  "bad argument \"now\": unknown option for stop" },
		{ "stop force force", false,
		  "bad argument \"force\": given twice" },
		{ "stop force=1", false,
		  "bad argument \"force=1\": unknown option for stop" },
		{ "clone Web", false, "bad name \"Web\": only lower case letters, "
				      "digits and '-' are allowed" },
		{ "clone web2 fast", false,
		  "bad argument \"fast\": unknown option for clone" },
		{ "migrate node..2", false, "bad node name \"node..2\"" },
		{ "migrate n1 bandwidth=fast", false,
		  "bad argument \"bandwidth=fast\": bad rate \"fast\": want "
		  "e.g. 100Mbps or 10MiBps" },
		{ "migrate n1 offline postcopy", false,
		  "bad argument \"postcopy\": needs a live migration, not "
		  "offline" },
		{ "migrate n1 autoconverge offline", false,
		  "bad argument \"autoconverge\": needs a live migration, not "
		  "offline" },
		{ "resize memory", false,
		  "bad argument \"memory\": unknown option for resize" },
		{ "resize disk=1Gi", false,
		  "bad argument \"disk=1Gi\": unknown option for resize" },
		{ "snapshot s1 keep=30", false,
		  "bad argument \"keep=30\": want a number of days, e.g. "
		  "keep=30d" },
		{ "snapshot s1 keep=-1d", false,
		  "bad argument \"keep=-1d\": not a number" },
		{ "snapshot s1 count=0", false,
		  "bad argument \"count=0\": must be 1 to 10000" },
		{ "snapshot s1 memory=1Gi", false,
		  "bad argument \"memory=1Gi\": unknown option for snapshot" },
		{ "snapshot s1 keep=1d keep=2d", false,
		  "bad argument \"keep=2d\": given twice" },
		{ "revert S1", false, "bad name \"S1\": only lower case letters, "
				      "digits and '-' are allowed" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		expect_err(v[i].msg, v[i].dir, v[i].err);
}

static void test_long_names(void **state)
{
	char msg[200], name[70];

	memset(name, 'a', 64);
	name[64] = '\0';
	snprintf(msg, sizeof(msg), "clone %s", name);
	expect_err(msg, false, "bad name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaa\": longer than 63 "
			       "characters");
	name[63] = '\0';
	snprintf(msg, sizeof(msg), "clone %s", name);
	assert_string_equal(parse(msg, false).arg, name);
}

/* nodes/NODE/ctl: one word, the same rules for bytes and newlines. */
static void test_node_ctl(void **state)
{
	static const struct { const char *msg; int rc; enum core_node_verb v;
			      const char *err; } cases[] = {
		{ "cordon", 0, CORE_NV_CORDON, NULL },
		{ "uncordon\n", 0, CORE_NV_UNCORDON, NULL },
		{ "  drain ", 0, CORE_NV_DRAIN, NULL },
		{ "", -EINVAL, 0, "empty control message" },
		{ "drain now", -EINVAL, 0, "wrong #args in control message" },
		{ "start", -EINVAL, 0, "unknown control message \"start\"" },
		{ "cordon\nuncordon", -EINVAL, 0,
		  "control message has embedded newline" },
	};
	enum core_node_verb v;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		v = CORE_NV_COUNT;
		assert_int_equal(core_node_ctl_parse(cases[i].msg,
						     strlen(cases[i].msg), &v,
						     err, sizeof(err)),
				 cases[i].rc);
		if (cases[i].rc == 0)
			assert_int_equal(v, cases[i].v);
		else
			assert_string_equal(err, cases[i].err);
	}
	assert_string_equal(core_node_verb_name(CORE_NV_DRAIN), "drain");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_ctl),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_simple_verbs),
		cmocka_unit_test(test_start_now),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_message_errors),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_wrong_args),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_long_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
