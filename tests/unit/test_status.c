/* Status text and JSON. */
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

#define T0 1795705445 /* 2026-11-26T15:04:05Z */

static const char fresh[] =
	"phase Pending\n"
	"name web\n"
	"node -\n"
	"uuid -\n"
	"accel -\n"
	"cpus 0\n"
	"memory 0\n"
	"disk 0\n"
	"pid -\n"
	"started -\n"
	"vnc -\n"
	"console -\n"
	"operation -\n"
	"restarts 0\n"
	"nextRestart -\n"
	"carbon.intensity -\n"
	"carbon.zone -\n"
	"carbon.provider -\n"
	"carbon.readingTime -\n"
	"carbon.waitingSince -\n"
	"carbon.deadline -\n"
	"carbon.nextWindow -\n"
	"carbon.lastDelay 0\n"
	"condition.Ready false\n"
	"condition.Ready.reason -\n"
	"condition.Ready.message -\n"
	"condition.Ready.since -\n"
	"condition.DiskReady false\n"
	"condition.DiskReady.reason -\n"
	"condition.DiskReady.message -\n"
	"condition.DiskReady.since -\n"
	"condition.NetworkReady false\n"
	"condition.NetworkReady.reason -\n"
	"condition.NetworkReady.message -\n"
	"condition.NetworkReady.since -\n"
	"condition.AgentConnected false\n"
	"condition.AgentConnected.reason -\n"
	"condition.AgentConnected.message -\n"
	"condition.AgentConnected.since -\n"
	"condition.RestartRequired false\n"
	"condition.RestartRequired.reason -\n"
	"condition.RestartRequired.message -\n"
	"condition.RestartRequired.since -\n"
	"condition.CarbonDelayed false\n"
	"condition.CarbonDelayed.reason -\n"
	"condition.CarbonDelayed.message -\n"
	"condition.CarbonDelayed.since -\n";

static const char running[] =
	"phase Running\n"
	"name web\n"
	"node node-1\n"
	"uuid 6f1c2a3e-0000-4000-8000-000000000001\n"
	"accel kvm\n"
	"cpus 4\n"
	"memory 8Gi\n"
	"disk 50Gi\n"
	"pid 4242\n"
	"started 2026-11-26T15:04:05Z\n"
	"vnc 127.0.0.1:5900\n"
	"console /dev/pts/3\n"
	"operation migrate\n"
	"restarts 3\n"
	"nextRestart 2026-11-26T15:04:15Z\n"
	"carbon.intensity -\n"
	"carbon.zone -\n"
	"carbon.provider -\n"
	"carbon.readingTime -\n"
	"carbon.waitingSince -\n"
	"carbon.deadline -\n"
	"carbon.nextWindow -\n"
	"carbon.lastDelay 0\n"
	"condition.Ready true\n"
	"condition.Ready.reason Started\n"
	"condition.Ready.message domain is running\n"
	"condition.Ready.since 2026-11-26T15:04:05Z\n"
	"condition.DiskReady true\n"
	"condition.DiskReady.reason Allocated\n"
	"condition.DiskReady.message -\n"
	"condition.DiskReady.since 2026-11-26T15:04:05Z\n"
	"condition.NetworkReady false\n"
	"condition.NetworkReady.reason -\n"
	"condition.NetworkReady.message -\n"
	"condition.NetworkReady.since -\n"
	"condition.AgentConnected false\n"
	"condition.AgentConnected.reason NoAgent\n"
	"condition.AgentConnected.message line one line two\n"
	"condition.AgentConnected.since 2026-11-26T15:04:06Z\n"
	"condition.RestartRequired false\n"
	"condition.RestartRequired.reason -\n"
	"condition.RestartRequired.message -\n"
	"condition.RestartRequired.since -\n"
	"condition.CarbonDelayed false\n"
	"condition.CarbonDelayed.reason -\n"
	"condition.CarbonDelayed.message -\n"
	"condition.CarbonDelayed.since -\n";

static void fill(struct core_status *st)
{
	core_status_init(st);
	st->phase = CORE_PHASE_RUNNING;
	snprintf(st->node, sizeof(st->node), "node-1");
	snprintf(st->uuid, sizeof(st->uuid),
		 "6f1c2a3e-0000-4000-8000-000000000001");
	snprintf(st->accel, sizeof(st->accel), "kvm");
	st->cpus = 4;
	st->memory = 8ull << 30;
	st->disk_bytes = 50ull << 30;
	st->qemu_pid = 4242;
	st->start_time = T0;
	st->vnc_port = 5900;
	snprintf(st->console, sizeof(st->console), "/dev/pts/3");
	snprintf(st->operation, sizeof(st->operation), "migrate");
	st->restarts = 3;
	st->next_restart = T0 + 10;
	core_status_cond(st, CORE_COND_READY, true, "Started",
			 "domain is running", T0);
	core_status_cond(st, CORE_COND_DISK_READY, true, "Allocated", NULL, T0);
	core_status_cond(st, CORE_COND_AGENT_CONNECTED, false, "NoAgent",
			 "line one\nline two", T0 + 1);
}

static void test_render_fresh(void **state)
{
	struct core_status st;
	char buf[4096];
	int n;

	core_status_init(&st);
	n = core_status_render(&st, "web", buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(fresh));
	assert_string_equal(buf, fresh);
	assert_int_equal(st.vnc_port, -1);
}

static void test_render_running(void **state)
{
	struct core_status st;
	char buf[4096];
	int n;

	fill(&st);
	n = core_status_render(&st, "web", buf, sizeof(buf));
	assert_string_equal(buf, running);
	assert_int_equal(n, (int)strlen(running));
	/* Exactly enough room, and one byte too few. */
	assert_int_equal(core_status_render(&st, "web", buf, (size_t)n + 1), n);
	assert_int_equal(core_status_render(&st, "web", buf, (size_t)n),
			 -ENOSPC);
	assert_int_equal(core_status_render(&st, "web", buf, 0), -ENOSPC);
}

static void test_render_vnc(void **state)
{
	struct core_status st;
	char buf[4096];

	core_status_init(&st);
	st.vnc_port = 5901;
	snprintf(st.vnc_address, sizeof(st.vnc_address), "::1");
	core_status_render(&st, "x", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nvnc [::1]:5901\n"));
	snprintf(st.vnc_address, sizeof(st.vnc_address), "0.0.0.0");
	core_status_render(&st, "x", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nvnc 0.0.0.0:5901\n"));
}

static void test_cond_transition(void **state)
{
	struct core_status st;

	core_status_init(&st);
	core_status_cond(&st, CORE_COND_READY, false, "Stopped", "", 100);
	assert_true(st.cond[CORE_COND_READY].last_transition == 100);
	core_status_cond(&st, CORE_COND_READY, false, "StillStopped", "", 200);
	assert_true(st.cond[CORE_COND_READY].last_transition == 100);
	assert_string_equal(st.cond[CORE_COND_READY].reason, "StillStopped");
	core_status_cond(&st, CORE_COND_READY, true, "Started", "", 300);
	assert_true(st.cond[CORE_COND_READY].last_transition == 300);
	core_status_cond(&st, CORE_COND_COUNT, true, "x", "", 1);
}

static void test_names(void **state)
{
	static const char *const ph[] = { "Pending", "Creating", "Running",
					  "Stopped", "Paused", "Migrating",
					  "Failed", "Unknown" };
	enum core_phase p;

	for (int i = 0; i < 8; i++) {
		assert_string_equal(core_phase_name((enum core_phase)i), ph[i]);
		assert_int_equal(core_phase_parse(ph[i], &p), 0);
		assert_int_equal(p, i);
	}
	assert_int_equal(core_phase_parse("running", &p), -EINVAL);
	assert_int_equal(core_phase_parse(NULL, &p), -EINVAL);
	assert_string_equal(core_phase_name((enum core_phase)42), "Unknown");
	assert_string_equal(core_cond_name(CORE_COND_READY), "Ready");
	assert_string_equal(core_cond_name(CORE_COND_AGENT_CONNECTED),
			    "AgentConnected");
	assert_string_equal(core_cond_name(CORE_COND_COUNT), "Unknown");
}

static void test_json_round_trip(void **state)
{
	struct core_status a, b;
	json_object *o, *c;
	char ta[4096], tb[4096];

	fill(&a);
	o = core_status_to_json(&a);
	assert_string_equal(json_object_get_string(
				    json_object_object_get(o, "phase")),
			    "Running");
	assert_string_equal(json_object_get_string(
				    json_object_object_get(o, "nodeName")),
			    "node-1");
	assert_string_equal(json_object_get_string(json_object_object_get(
				    json_object_object_get(o, "resources"), "memory")),
			    "8Gi");
	assert_non_null(json_object_object_get(o, "vnc"));
	c = json_object_array_get_idx(json_object_object_get(o, "conditions"),
				      0);
	assert_string_equal(json_object_get_string(
				    json_object_object_get(c, "status")),
			    "True");
	assert_int_equal(core_status_from_json(o, &b), 0);
	core_status_render(&a, "web", ta, sizeof(ta));
	core_status_render(&b, "web", tb, sizeof(tb));
	assert_string_equal(ta, tb);
	json_object_put(o);
	core_status_init(&a);
	o = core_status_to_json(&a);
	assert_int_equal(json_object_array_length(
				 json_object_object_get(o, "conditions")),
			 0);
	assert_int_equal(core_status_from_json(o, &b), 0);
	assert_int_equal(b.vnc_port, -1);
	json_object_put(o);
}

/* A start that waits for the grid survives the trip through the API. */
static void test_carbon_round_trip(void **state)
{
	struct core_status a, b;
	json_object *o, *c;
	char ta[4096], tb[4096];

	fill(&a);
	a.carbon.intensity = 302;
	snprintf(a.carbon.zone, sizeof(a.carbon.zone), "DE");
	snprintf(a.carbon.provider, sizeof(a.carbon.provider), "electricitymaps");
	a.carbon.reading_at = T0;
	a.carbon.since = T0 + 5;
	a.carbon.deadline = T0 + 3600;
	a.carbon.next_window = T0 + 1800;
	a.carbon.last_delay_s = 42;
	core_status_cond(&a, CORE_COND_CARBON_DELAYED, true, "IntensityAbove",
			 "302 > 200", T0 + 5);
	o = core_status_to_json(&a);
	c = json_object_object_get(o, "carbon");
	assert_int_equal(json_object_get_int(json_object_object_get(c,
			 "intensity")), 302);
	assert_string_equal(json_object_get_string(json_object_object_get(c,
			    "deadline")), "2026-11-26T16:04:05Z");
	assert_int_equal(core_status_from_json(o, &b), 0);
	core_status_render(&a, "web", ta, sizeof(ta));
	core_status_render(&b, "web", tb, sizeof(tb));
	assert_string_equal(ta, tb);
	assert_non_null(strstr(ta, "\ncarbon.intensity 302\n"));
	assert_non_null(strstr(ta, "\ncondition.CarbonDelayed.reason "
			       "IntensityAbove\n"));
	json_object_put(o);
}

static void test_from_json_errors(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"phase\": \"Exploded\"}",
		"{\"phase\": 3}",
		"{\"resources\": {\"cpus\": \"four\"}}",
		"{\"resources\": {\"memory\": \"lots\"}}",
		"{\"resources\": 1}",
		"{\"vnc\": {\"port\": \"x\"}}",
		"{\"startTime\": \"yesterday\"}",
		"{\"restarts\": -1}",
		"{\"restarts\": \"3\"}",
		"{\"nextRestart\": \"soon\"}",
		"{\"carbon\": 1}",
		"{\"carbon\": {\"intensity\": \"high\"}}",
		"{\"carbon\": {\"intensity\": -5}}",
		"{\"carbon\": {\"deadline\": \"later\"}}",
		"{\"carbon\": {\"lastDelaySeconds\": -1}}",
		"{\"conditions\": {}}",
		"{\"conditions\": [1]}",
		("{\"conditions\": [{\"type\": \"Ready\", "
		 "\"lastTransitionTime\": \"2026-13-99\"}]}"),
	};
	struct core_status st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object *o = json_tokener_parse(bad[i]);

		assert_non_null(o);
		assert_int_equal(core_status_from_json(o, &st), -EINVAL);
		json_object_put(o);
	}
	assert_int_equal(core_status_from_json(NULL, &st), 0);
	assert_int_equal(st.phase, CORE_PHASE_PENDING);
}

static void test_from_json_foreign(void **state)
{
	json_object *o = json_tokener_parse(
		"{\"phase\": \"Stopped\", \"extra\": 1, \"conditions\": ["
		"{\"type\": \"SomeoneElses\", \"status\": \"True\"},"
		"{\"type\": \"Ready\", \"status\": \"False\", \"reason\": \"R\"}]}");
	struct core_status st;

	assert_int_equal(core_status_from_json(o, &st), 0);
	assert_int_equal(st.phase, CORE_PHASE_STOPPED);
	assert_false(st.cond[CORE_COND_READY].status);
	assert_string_equal(st.cond[CORE_COND_READY].reason, "R");
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_fresh),
		cmocka_unit_test(test_carbon_round_trip),
		cmocka_unit_test(test_render_running),
		cmocka_unit_test(test_render_vnc),
		cmocka_unit_test(test_cond_transition),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_from_json_errors),
		cmocka_unit_test(test_from_json_foreign),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
