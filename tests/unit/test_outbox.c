/* The outbox on disk: order, coalescing of status patches, durability
 * across a reopen, leftovers of a crash, damaged files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync/priv.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/hsdk-ob-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* a nested path: open creates it */
	strcat(dir, "/state/outbox");
	return 0;
}

static int count_files(const char *suffix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;
	size_t l, sl = strlen(suffix);

	assert_non_null(d);
	while ((de = readdir(d))) {
		l = strlen(de->d_name);
		if (de->d_name[0] != '.' && l > sl &&
		    strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int teardown(void **state)
{
	struct dirent *de;
	char p[512], top[64];
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	snprintf(top, sizeof(top), "%.*s", (int)(strlen(dir) - 13), dir);
	snprintf(p, sizeof(p), "%s/state", top);
	rmdir(p);
	rmdir(top);
	return 0;
}

static void add(struct sync_outbox *ob, enum sync_kind k, const char *name,
		bool status, const char *body)
{
	json_object *b = json_tokener_parse(body);
	char err[256] = "";

	assert_non_null(b);
	if (sync_outbox_add(ob, k, name, status, b, err, sizeof(err)) != 0)
		fail_msg("add: %s", err);
	json_object_put(b);
}

static void expect_head(struct sync_outbox *ob, const char *name,
			bool status, const char *body)
{
	struct sync_outbox_entry e;
	const char *got;

	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	assert_string_equal(e.name, name);
	assert_int_equal(e.status, status);
	got = json_object_to_json_string_ext(e.body, JSON_C_TO_STRING_PLAIN);
	if (strcmp(got, body) != 0)
		fail_msg("head %s: %s, want %s", name, got, body);
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
}

static void add_event(struct sync_outbox *ob, const char *name, bool create,
		      const char *body)
{
	json_object *b = json_tokener_parse(body);
	char err[256] = "";

	assert_non_null(b);
	if (sync_outbox_add_event(ob, name, create, b, err, sizeof(err)) != 0)
		fail_msg("add_event: %s", err);
	json_object_put(b);
}

/* Events wait in line with the patches; an Event's series patches are
 * coalesced as status ones are, and the kind and method survive a
 * restart. */
static void test_events(void **state)
{
	struct sync_outbox *ob;
	struct sync_outbox_entry e;
	json_object *b;
	char err[256];

	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	add(ob, SYNC_VM, "web", false, "{\"spec\":{\"running\":false}}");
	add_event(ob, "web.1", true, "{\"reason\":\"Stopped\"}");
	add_event(ob, "web.1", false, "{\"series\":{\"count\":2}}");
	add(ob, SYNC_VM, "web", true, "{\"status\":{\"phase\":\"Stopped\"}}");
	add_event(ob, "web.1", false, "{\"series\":{\"count\":3}}");
	assert_int_equal(sync_outbox_count(ob), 4);
	sync_outbox_close(ob);
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	expect_head(ob, "web", false, "{\"spec\":{\"running\":false}}");
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	assert_true(e.event && e.create);
	assert_string_equal(e.name, "web.1");
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	expect_head(ob, "web", true, "{\"status\":{\"phase\":\"Stopped\"}}");
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	assert_true(e.event && !e.create);
	assert_string_equal(json_object_to_json_string_ext(e.body,
			    JSON_C_TO_STRING_PLAIN), "{\"series\":{\"count\":3}}");
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	assert_int_equal(sync_outbox_peek(ob, &e), -ENOENT);
	b = json_object_new_object();
	assert_int_equal(sync_outbox_add_event(ob, "../x", true, b, err,
					       sizeof(err)), -EINVAL);
	json_object_put(b);
	sync_outbox_close(ob);
}

static void test_order_and_coalescing(void **state)
{
	struct sync_outbox *ob;
	struct sync_outbox_entry e;
	char err[256];

	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	add(ob, SYNC_VM, "web", false, "{\"spec\":{\"cpus\":2}}");
	add(ob, SYNC_VM, "web", true, "{\"status\":{\"phase\":\"Running\","
	    "\"nodeName\":\"n1\"}}");
	add(ob, SYNC_VM, "web", false, "{\"spec\":{\"cpus\":3}}");
	add(ob, SYNC_VM, "db", true, "{\"status\":{\"phase\":\"Running\"}}");
	/* the second status of web replaces the first, merged over it */
	add(ob, SYNC_VM, "web", true, "{\"status\":{\"phase\":\"Stopped\"}}");
	add(ob, SYNC_OPERATION, "web", true, "{\"status\":{\"progress\":5}}");
	assert_int_equal(sync_outbox_count(ob), 5);
	assert_int_equal(count_files(".json"), 5);
	sync_outbox_close(ob);

	/* everything survives a restart, in order */
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_count(ob), 5);
	expect_head(ob, "web", false, "{\"spec\":{\"cpus\":2}}");
	expect_head(ob, "web", false, "{\"spec\":{\"cpus\":3}}");
	expect_head(ob, "db", true, "{\"status\":{\"phase\":\"Running\"}}");
	expect_head(ob, "web", true, "{\"status\":{\"phase\":\"Stopped\","
		    "\"nodeName\":\"n1\"}}");
	expect_head(ob, "web", true, "{\"status\":{\"progress\":5}}");
	assert_int_equal(sync_outbox_peek(ob, &e), -ENOENT);
	assert_int_equal(count_files(".json"), 0);
	/* sequence numbers go on after a reopen: no reuse */
	add(ob, SYNC_VM, "web", false, "{\"spec\":{\"cpus\":4}}");
	sync_outbox_close(ob);
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	assert_true(e.seq > 5);
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	sync_outbox_close(ob);
}

static void put(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_damaged(void **state)
{
	struct sync_outbox *ob;
	char err[256];

	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	sync_outbox_close(ob);
	/* a crash before the rename, a damaged entry, a foreign file */
	put(".00000000000000000007.json.tmp", "{\"kind\":");
	put("00000000000000000008.json", "{\"kind\":\"VirtualMachine\"");
	put("00000000000000000009.json", "{\"kind\":\"VirtualMachine\","
	    "\"name\":\"ok\",\"body\":{\"spec\":{}}}");
	put("00000000000000000010.json", "{\"kind\":\"Pod\",\"name\":\"x\","
	    "\"body\":{}}");
	put("README", "not an entry");
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_count(ob), 1);
	expect_head(ob, "ok", false, "{\"spec\":{}}");
	/* damaged entries are kept aside, not lost and not in the way */
	assert_int_equal(count_files(".bad"), 2);
	assert_int_equal(count_files(".tmp"), 0);
	sync_outbox_close(ob);
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_count(ob), 0);
	/* new entries come after the damaged ones */
	add(ob, SYNC_VM, "next", false, "{}");
	sync_outbox_close(ob);
}

/* The lag metric: how long the oldest waiting change has waited. */
static void test_age(void **state)
{
	struct sync_outbox *ob;
	struct sync_outbox_entry e;
	char err[256];
	time_t jan1 = 1767225600, t0 = time(NULL); /* 2026-01-01T00:00:00Z */

	put("00000000000000000001.json", "{\"kind\":\"VirtualMachine\","
	    "\"name\":\"web\",\"subresource\":\"status\",\"body\":"
	    "{\"status\":{\"phase\":\"Running\"}},"
	    "\"queued\":\"2026-01-01T00:00:00Z\"}");
	put("00000000000000000002.json", "{\"kind\":\"VirtualMachine\","
	    "\"name\":\"db\",\"body\":{\"spec\":{}}}");
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_since(ob), jan1);
	/* coalesced over the old status: still waiting since January */
	add(ob, SYNC_VM, "web", true, "{\"status\":{\"phase\":\"Stopped\"}}");
	assert_int_equal(sync_outbox_count(ob), 2);
	assert_int_equal(sync_outbox_since(ob), jan1);
	sync_outbox_close(ob);
	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_since(ob), jan1);
	/* the head is db, from a file without "queued": it counts from now */
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	assert_int_equal(sync_outbox_since(ob), jan1);
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	assert_int_equal(sync_outbox_since(ob), 0);
	add(ob, SYNC_VM, "db", false, "{\"spec\":{\"cpus\":2}}");
	assert_true(sync_outbox_since(ob) >= t0);
	assert_true(sync_outbox_since(ob) <= time(NULL));
	assert_int_equal(sync_outbox_peek(ob, &e), 0);
	json_object_put(e.body);
	sync_outbox_done(ob, e.seq);
	sync_outbox_close(ob);
}

static void test_bad_input(void **state)
{
	struct sync_outbox *ob;
	json_object *b = json_object_new_object();
	char err[256];

	assert_int_equal(sync_outbox_open(dir, &ob, err, sizeof(err)), 0);
	assert_int_equal(sync_outbox_add(ob, SYNC_VM, "../x", false, b, err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(sync_outbox_add(ob, SYNC_KIND_COUNT, "x", false, b,
					 err, sizeof(err)), -EINVAL);
	json_object_put(b);
	sync_outbox_close(ob);
	assert_int_equal(sync_outbox_open("/dev/null/outbox", &ob, err,
					  sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "outbox /dev/null/outbox"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_coalescing),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
