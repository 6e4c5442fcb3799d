/* fakebe: the in-memory backend answers as the real one does (errno and
 * err text), delivers events from its own thread, injects failures,
 * counts calls and migrates between two fake hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakebe.h"

#define N1 "fake:///n1"
#define N2 "fake:///n2"
#define SPEC_ONE "{\"cpus\": 2, \"memory\": \"512Mi\", \"guestAgent\": true," \
	" \"disks\": [{\"name\": \"root\", \"size\": \"1Gi\"}]}"
#define SPEC_TWO "{\"cpus\": 4, \"memory\": \"512Mi\"," \
	" \"disks\": [{\"name\": \"root\", \"size\": \"1Gi\"}]}"

struct vmspec {
	json_object *j;
	struct core_spec s;
};

static void spec_load(struct vmspec *v, const char *text)
{
	char err[CORE_ERR_MAX];

	v->j = json_tokener_parse(text);
	assert_non_null(v->j);
	assert_int_equal(core_spec_from_json(v->j, &v->s, err, sizeof(err)), 0);
}

static void spec_free(struct vmspec *v)
{
	core_spec_free(&v->s);
	json_object_put(v->j);
}

static struct be_conn *open_node(const char *uri, const char *node)
{
	struct be_config cfg = { .uri = uri, .pool_dir = "/fake/pool",
				 .node = node };
	struct be_conn *c = NULL;
	char err[CORE_ERR_MAX];

	assert_int_equal(be_open(&cfg, &c, err, sizeof(err)), 0);
	assert_non_null(c);
	return c;
}

static void define(struct be_conn *c, const char *name, const char *text)
{
	struct vmspec v;
	char err[CORE_ERR_MAX];

	spec_load(&v, text);
	assert_int_equal(be_define(c, name, "default", name, &v.s, v.j, err,
				   sizeof(err)), 0);
	spec_free(&v);
}

static struct be_info info_of(struct be_conn *c, const char *name)
{
	struct be_info in;
	char err[CORE_ERR_MAX];

	assert_int_equal(be_info(c, name, &in, err, sizeof(err)), 0);
	return in;
}

/* What a watcher saw, and from which thread. */
struct seen {
	pthread_mutex_t lock;
	pthread_t test;
	char names[64][64];
	enum core_phase now[64];        /* what each event said */
	size_t n;
	int nulls;
	bool off_thread;
};

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->test = pthread_self();
	s->off_thread = true;
}

static void on_event(void *arg, const char *name, enum core_phase now)
{
	struct seen *s = arg;

	pthread_mutex_lock(&s->lock);
	if (pthread_equal(s->test, pthread_self()))
		s->off_thread = false;
	if (!name) {
		s->nulls++;
	} else if (s->n < 64) {
		s->now[s->n] = now;
		snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
	}
	pthread_mutex_unlock(&s->lock);
}

static size_t seen_count(struct seen *s, const char *name)
{
	size_t i, k = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n; i++)
		k += !strcmp(s->names[i], name);
	pthread_mutex_unlock(&s->lock);
	return k;
}

static int setup(void **state)
{
	fakebe_reset();
	return 0;
}

/* Ends the fake's event thread, so leak checkers see nothing left. */
static int teardown_all(void **state)
{
	fakebe_reset();
	return 0;
}

/* ---- lifecycle ------------------------------------------------------- */

static void test_lifecycle_errnos(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	struct be_info in;
	struct vmspec v;

	assert_int_equal(be_info(c, "nope", &in, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "info nope: Domain not found: no domain with "
			    "matching name 'nope'");
	spec_load(&v, SPEC_ONE);
	assert_int_equal(be_define(c, "-bad", "default", "u", &v.s, v.j, err,
				   sizeof(err)), -EINVAL);
	assert_string_equal(err, "define: bad name \"-bad\"");
	spec_free(&v);
	define(c, "a", SPEC_ONE);
	in = info_of(c, "a");
	assert_int_equal(in.phase, CORE_PHASE_STOPPED);
	assert_int_equal(in.pid, 0);
	assert_int_equal(in.vnc_port, -1);

	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	in = info_of(c, "a");
	assert_int_equal(in.phase, CORE_PHASE_RUNNING);
	assert_string_equal(in.reason, "booted");
	assert_true(in.pid > 0);
	assert_true(in.vnc_port >= 5900);
	assert_int_equal(strlen(in.vnc_password), 8);
	assert_true(in.has_agent_channel && in.agent_connected);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "start a: Requested operation is not valid: "
			    "domain is already running");

	assert_int_equal(be_suspend(c, "a", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_PAUSED);
	assert_string_equal(info_of(c, "a").reason, "user");
	/* libvirt's QEMU driver: pausing a paused domain is a no-op. */
	assert_int_equal(be_suspend(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_shutdown(c, "a", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "stop a: Requested operation is not valid: "
			    "domain is not running");
	assert_int_equal(be_resume(c, "a", err, sizeof(err)), 0);
	assert_string_equal(info_of(c, "a").reason, "unpaused");
	assert_int_equal(be_resume(c, "a", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "resume a: Requested operation is not valid: "
			    "domain is already running");

	assert_int_equal(be_undefine(c, "a", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "delete a: domain is running");
	assert_int_equal(be_destroy(c, "a", err, sizeof(err)), 0);
	in = info_of(c, "a");
	assert_int_equal(in.phase, CORE_PHASE_STOPPED);
	assert_string_equal(in.reason, "destroyed");
	assert_int_equal(be_destroy(c, "a", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "stop a: Requested operation is not valid: "
			    "domain is not running");
	assert_int_equal(be_suspend(c, "a", err, sizeof(err)), -EBUSY);
	assert_int_equal(be_resume(c, "a", err, sizeof(err)), -EBUSY);
	assert_int_equal(be_start(c, "nope", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "start nope: Domain not found: no domain with "
			    "matching name 'nope'");

	assert_int_equal(fakebe_volume(N1, "a_root.qcow2", NULL, NULL, 0), 0);
	assert_int_equal(be_undefine(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_info(c, "a", &in, err, sizeof(err)), -ENOENT);
	assert_int_equal(fakebe_volume(N1, "a_root.qcow2", NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(be_undefine(c, "a", err, sizeof(err)), -ENOENT);
	be_close(c);
}

static int list_one(const char *name, const char *ns, const char *uid,
		    json_object *spec, void *arg)
{
	json_object *cpus;

	assert_string_equal(ns, "default");
	assert_string_equal(uid, name);
	assert_true(json_object_object_get_ex(spec, "cpus", &cpus));
	*(int *)arg = json_object_get_int(cpus);
	return 0;
}

static int list_names(const char *name, const char *ns, const char *uid,
		      json_object *spec, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "[%s]", name);
	return 0;
}

static void test_definition(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	struct be_info in;
	uint64_t maxm;
	int cpus = 0, maxc;
	struct vmspec v;

	define(c, "a", SPEC_ONE);
	in = info_of(c, "a");
	assert_int_equal(in.cpus, 2);
	assert_int_equal(in.memory, 512ULL << 20);
	assert_int_equal(in.disk_bytes, 1ULL << 30);
	assert_int_equal(be_list(c, list_one, &cpus), 0);
	assert_int_equal(cpus, 2);
	/* xml.c's defaults: min(host CPUs, 8) and twice the memory. */
	assert_int_equal(be_limits(c, "a", &maxc, &maxm, err, sizeof(err)), 0);
	assert_int_equal(maxc, 8);
	assert_int_equal(maxm, 1ULL << 30);

	/* A redefine applies at the next start; libvirt reads the live
	 * definition (metadata included) while the domain runs. */
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	define(c, "a", SPEC_TWO);
	assert_int_equal(info_of(c, "a").cpus, 2);
	assert_int_equal(be_list(c, list_one, &cpus), 0);
	assert_int_equal(cpus, 2);
	assert_int_equal(be_destroy(c, "a", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").cpus, 4);
	assert_int_equal(be_list(c, list_one, &cpus), 0);
	assert_int_equal(cpus, 4);

	/* Someone else's domain is never taken over, nor listed. */
	assert_int_equal(fakebe_add_foreign(N1, "theirs"), 0);
	spec_load(&v, SPEC_ONE);
	assert_int_equal(be_define(c, "theirs", "default", "u", &v.s, v.j, err,
				   sizeof(err)), -EEXIST);
	assert_string_equal(err, "define theirs: a libvirt domain of that name "
			    "exists and is not hypersdk's");
	spec_free(&v);
	assert_int_equal(be_undefine(c, "theirs", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "delete theirs: domain is not hypersdk's");

	/* kernelBoot without --kernel-dir: refused before anything. */
	spec_load(&v, "{\"cpus\": 1, \"memory\": \"256Mi\", \"kernelBoot\":"
		  " {\"kernel\": \"/boot/vmlinuz\"}}");
	assert_int_equal(be_boot_check(c, &v.s, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "spec.kernelBoot.kernel: kernelBoot is off on "
			    "node n1 (the node allows it with --kernel-dir)");
	assert_int_equal(be_define(c, "k", "default", "u", &v.s, v.j, err,
				   sizeof(err)), -EACCES);
	assert_int_equal(be_info(c, "k", &in, err, sizeof(err)), -ENOENT);
	spec_free(&v);
	be_close(c);
}

/* ---- events ------------------------------------------------------------ */

static void test_events_off_thread(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	struct seen s;

	seen_init(&s);
	assert_int_equal(be_watch(c, on_event, &s), 0);
	assert_int_equal(be_watch(c, on_event, &s), -EBUSY);
	define(c, "a", SPEC_ONE);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	fakebe_settle();
	assert_int_equal(seen_count(&s, "a"), 2);       /* defined, started */
	assert_true(s.off_thread);
	/* A definition says no phase; a start says Running. */
	assert_int_equal(s.now[0], CORE_PHASE_UNKNOWN);
	assert_int_equal(s.now[1], CORE_PHASE_RUNNING);

	/* ACPI: be_shutdown returns at once; the guest goes off later. */
	assert_int_equal(be_shutdown(c, "a", err, sizeof(err)), 0);
	fakebe_settle();
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_STOPPED);
	assert_string_equal(info_of(c, "a").reason, "shutdown");
	assert_int_equal(seen_count(&s, "a"), 3);

	/* A guest that ignores the power button keeps running. */
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(fakebe_ignore_acpi(N1, "a", true), 0);
	assert_int_equal(be_shutdown(c, "a", err, sizeof(err)), 0);
	fakebe_settle();
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_RUNNING);

	/* Stops nobody asked for. */
	assert_int_equal(fakebe_crash(N1, "a"), 0);
	fakebe_settle();
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_FAILED);
	assert_string_equal(info_of(c, "a").reason, "crashed");
	assert_int_equal(s.now[s.n - 1], CORE_PHASE_FAILED);
	assert_int_equal(fakebe_crash(N1, "a"), -EBUSY);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(fakebe_poweroff(N1, "a"), 0);
	fakebe_settle();
	assert_string_equal(info_of(c, "a").reason, "shutdown");
	assert_int_equal(seen_count(&s, "a"), 7);
	assert_int_equal(fakebe_notified(), 7);
	assert_int_equal(fakebe_crash(N1, "nope"), -ENOENT);
	be_close(c);
	pthread_mutex_destroy(&s.lock);
}

/* A power-off queued for one run does not stop the next. */
static void test_shutdown_then_restart(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	int i;

	define(c, "a", SPEC_ONE);
	for (i = 0; i < 20; i++) {
		assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
		assert_int_equal(be_shutdown(c, "a", err, sizeof(err)), 0);
		/* Already off when the power-off ran, or still on. */
		if (be_destroy(c, "a", err, sizeof(err)) < 0)
			assert_int_equal(info_of(c, "a").phase,
					 CORE_PHASE_STOPPED);
		assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
		fakebe_settle();
		assert_int_equal(info_of(c, "a").phase, CORE_PHASE_RUNNING);
		assert_int_equal(be_destroy(c, "a", err, sizeof(err)), 0);
	}
	be_close(c);
}

static void test_host_down_reconnect(void **state)
{
	struct be_conn *c = open_node(N1, "n1"), *c2;
	struct be_config cfg = { .uri = N1 };
	char err[CORE_ERR_MAX];
	struct be_info in;
	struct seen s;

	seen_init(&s);
	assert_int_equal(be_watch(c, on_event, &s), 0);
	assert_true(be_conn_alive(c));
	assert_int_equal(fakebe_set_down(N1, true), 0);
	assert_false(be_conn_alive(c));
	assert_int_equal(be_info(c, "a", &in, err, sizeof(err)), -EIO);
	assert_string_equal(err, "libvirt at fake:///n1 does not answer: the "
			    "fake host is down");
	assert_int_equal(be_open(&cfg, &c2, err, sizeof(err)), -EIO);
	assert_null(c2);
	assert_int_equal(fakebe_set_down(N1, false), 0);
	/* Noticed by the next call, which reconnects. */
	assert_false(be_conn_alive(c));
	assert_int_equal(be_info(c, "a", &in, err, sizeof(err)), -ENOENT);
	assert_true(be_conn_alive(c));
	fakebe_settle();
	assert_int_equal(s.nulls, 1);
	be_close(c);
	pthread_mutex_destroy(&s.lock);
}

/* ---- failures and counts ----------------------------------------------- */

static void test_failure_injection(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	struct be_info in;
	int cpus = 0;

	define(c, "a", SPEC_ONE);
	assert_int_equal(fakebe_fail(FAKEBE_OP_START, -EIO,
				     "start a: internal error: qemu died"), 0);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), -EIO);
	assert_string_equal(err, "start a: internal error: qemu died");
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_STOPPED);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);

	assert_int_equal(fakebe_fail(FAKEBE_OP_INFO, -ETIMEDOUT, NULL), 0);
	assert_int_equal(be_info(c, "a", &in, err, sizeof(err)), -ETIMEDOUT);
	assert_string_equal(err, "be_info: injected failure");
	assert_int_equal(fakebe_fail(FAKEBE_OP_LIST, -EIO, NULL), 0);
	assert_int_equal(be_list(c, list_one, &cpus), -EIO);
	assert_int_equal(cpus, 0);
	assert_int_equal(be_list(c, list_one, &cpus), 0);

	assert_int_equal(fakebe_fail(FAKEBE_OP_CLOSE, -EIO, NULL), -EINVAL);
	assert_int_equal(fakebe_fail(FAKEBE_OP_START, 0, NULL), -EINVAL);
	assert_string_equal(fakebe_op_name(FAKEBE_OP_MIGRATE), "be_migrate");
	be_close(c);
}

static void test_call_counting(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];

	define(c, "a", SPEC_ONE);
	assert_int_equal(fakebe_calls(FAKEBE_OP_OPEN), 1);
	assert_int_equal(fakebe_calls(FAKEBE_OP_DEFINE), 1);
	assert_int_equal(fakebe_calls(FAKEBE_OP_INFO), 0);
	(void)info_of(c, "a");
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), -EBUSY);
	assert_int_equal(fakebe_calls(FAKEBE_OP_INFO), 1);
	assert_int_equal(fakebe_calls(FAKEBE_OP_START), 2);
	be_close(c);
	assert_int_equal(fakebe_calls(FAKEBE_OP_CLOSE), 1);
	fakebe_reset();
	assert_int_equal(fakebe_calls(FAKEBE_OP_START), 0);
}

/* ---- snapshots --------------------------------------------------------- */

static void test_snapshots(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	struct be_snap_info si, *v;
	char err[CORE_ERR_MAX];
	bool q = true;
	size_t n;

	define(c, "a", SPEC_ONE);
	assert_int_equal(be_snapshot_create(c, "a", "Bad/", false, false, &q,
					    &si, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "snapshot a: bad name \"Bad/\"");
	assert_false(q);
	assert_int_equal(be_snapshot_create(c, "nope", "s1", false, false,
					    NULL, NULL, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(be_snapshot_create(c, "a", "s1", true, false, NULL,
					    &si, err, sizeof(err)), 0);
	assert_false(si.memory);        /* stopped: no memory to keep */
	assert_int_equal(si.vm_phase, CORE_PHASE_STOPPED);
	assert_true(si.current);
	assert_int_equal(be_snapshot_create(c, "a", "s1", false, false, NULL,
					    NULL, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "snapshot a: s1 exists");

	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_snapshot_create(c, "a", "s2", true, true, &q, &si,
					    err, sizeof(err)), 0);
	assert_true(si.memory && q);
	assert_string_equal(si.parent, "s1");
	assert_int_equal(fakebe_set_agent(N1, "a", false), 0);
	assert_int_equal(be_snapshot_create(c, "a", "s3", false, true, &q, &si,
					    err, sizeof(err)), 0);
	assert_false(si.memory || q);
	assert_int_equal(si.vm_phase, CORE_PHASE_RUNNING);

	assert_int_equal(be_snapshot_list(c, "a", &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "s1");
	assert_string_equal(v[2].name, "s3");
	assert_true(v[2].current && !v[0].current);
	free(v);

	/* Disk-only of a stopped domain: it stays (or goes) off. */
	assert_int_equal(be_snapshot_revert(c, "a", "s1", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_STOPPED);
	assert_string_equal(info_of(c, "a").reason, "from-snapshot");
	/* With memory: running from the saved state. */
	assert_int_equal(be_snapshot_revert(c, "a", "s2", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_RUNNING);
	assert_string_equal(info_of(c, "a").reason, "from-snapshot");
	/* Without memory, taken running: disks back, the domain off. */
	assert_int_equal(be_snapshot_revert(c, "a", "s3", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").phase, CORE_PHASE_STOPPED);
	assert_string_equal(info_of(c, "a").reason, "destroyed");

	assert_int_equal(be_snapshot_info(c, "a", "nope", &si, err,
					  sizeof(err)), -ENOENT);
	assert_string_equal(err, "snapshot a: no snapshot nope");
	assert_int_equal(be_snapshot_revert(c, "a", "-x", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "revert a: bad snapshot name");
	assert_int_equal(be_snapshot_delete(c, "a", "s9", err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "delete snapshot a: no snapshot s9");
	/* libvirt's merge: s2 and s3 move up to the root. */
	assert_int_equal(be_snapshot_delete(c, "a", "s1", err, sizeof(err)), 0);
	assert_int_equal(be_snapshot_info(c, "a", "s2", &si, err, sizeof(err)),
			 0);
	assert_string_equal(si.parent, "");
	assert_int_equal(be_snapshot_info(c, "a", "s3", &si, err, sizeof(err)),
			 0);
	assert_true(si.current);
	assert_int_equal(be_snapshot_delete(c, "a", "s3", err, sizeof(err)), 0);
	assert_int_equal(be_snapshot_info(c, "a", "s2", &si, err, sizeof(err)),
			 0);
	assert_string_equal(si.parent, "");
	be_close(c);
}

/* ---- resize ------------------------------------------------------------ */

static void test_resize(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	bool live = true;

	define(c, "a", SPEC_ONE);
	assert_int_equal(be_resize(c, "a", 9, 0, &live, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "cpus=9: the maximum of this VM is 8");
	assert_int_equal(be_resize(c, "a", 0, 2ULL << 30, &live, err,
				   sizeof(err)), -EINVAL);
	assert_string_equal(err, "memory=2048Mi: the maximum of this VM is "
			    "1024Mi");
	/* Stopped: the definition only. */
	assert_int_equal(be_resize(c, "a", 3, 0, &live, err, sizeof(err)), 0);
	assert_false(live);
	assert_int_equal(info_of(c, "a").cpus, 3);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_resize(c, "a", 4, 768ULL << 20, &live, err,
				   sizeof(err)), 0);
	assert_true(live);
	assert_int_equal(info_of(c, "a").cpus, 4);
	assert_int_equal(info_of(c, "a").memory, 768ULL << 20);
	/* DIMMs only add: shrinking waits for a restart. */
	assert_int_equal(be_resize(c, "a", 0, 256ULL << 20, &live, err,
				   sizeof(err)), 0);
	assert_false(live);
	assert_int_equal(info_of(c, "a").memory, 768ULL << 20);
	assert_int_equal(be_destroy(c, "a", err, sizeof(err)), 0);
	assert_int_equal(info_of(c, "a").memory, 256ULL << 20);
	assert_int_equal(be_resize(c, "nope", 1, 0, &live, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "resize nope: Domain not found: no domain "
			    "with matching name 'nope'");
	be_close(c);
}

/* ---- clones ------------------------------------------------------------ */

static void cancel_at_copy(void *arg, int pct, const char *msg)
{
	if (!strcmp(msg, "copying disk"))
		*(volatile int *)arg = 1;
}

static void test_clone(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX], deps[256], backing[256];
	volatile int cancel = 0;
	struct be_progress p = { cancel_at_copy, (void *)&cancel, &cancel };
	struct be_info in;
	uint64_t cap;

	define(c, "src", SPEC_ONE);
	assert_int_equal(be_clone(c, "src", "full", "default", "u1", NULL,
				  false, NULL, err, sizeof(err)), 0);
	in = info_of(c, "full");
	assert_int_equal(in.phase, CORE_PHASE_STOPPED);
	assert_int_equal(in.cpus, 2);
	assert_int_not_equal(strcmp(in.uuid, info_of(c, "src").uuid), 0);
	assert_int_equal(fakebe_volume(N1, "full_root.qcow2", &cap, backing,
				       sizeof(backing)), 0);
	assert_int_equal(cap, 1ULL << 30);
	assert_string_equal(backing, "");
	assert_int_equal(be_clone(c, "src", "full", "default", "u1", NULL,
				  false, NULL, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "clone src: domain full exists");
	assert_int_equal(be_clone(c, "nope", "x", "default", "u", NULL, false,
				  NULL, err, sizeof(err)), -ENOENT);

	/* A cancelled copy leaves nothing of the clone. */
	assert_int_equal(be_clone(c, "src", "gone", "default", "u2", NULL,
				  false, &p, err, sizeof(err)), -ECANCELED);
	assert_string_equal(err, "clone src: cancelled");
	assert_int_equal(fakebe_volume(N1, "gone_root.qcow2", NULL, NULL, 0),
			 -ENOENT);

	/* Linked, of a running source: its disk is frozen under an
	 * overlay, and the clone is backed by the frozen file. */
	assert_int_equal(be_start(c, "src", err, sizeof(err)), 0);
	assert_int_equal(be_clone(c, "src", "lc", "default", "u3", NULL, true,
				  NULL, err, sizeof(err)), 0);
	assert_int_equal(fakebe_volume(N1, "lc_root.qcow2", NULL, backing,
				       sizeof(backing)), 0);
	assert_string_equal(backing, "/fake/pool/src_root.qcow2");
	assert_int_equal(info_of(c, "src").phase, CORE_PHASE_RUNNING);
	assert_int_equal(be_linked_dependents(c, "src", deps, sizeof(deps)), 0);
	assert_string_equal(deps, "lc");
	assert_int_equal(be_destroy(c, "src", err, sizeof(err)), 0);
	assert_int_equal(be_undefine(c, "src", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "delete src: linked clones depend on its "
			    "disks: lc");
	/* A running source with snapshots is not frozen. */
	assert_int_equal(be_start(c, "full", err, sizeof(err)), 0);
	assert_int_equal(be_snapshot_create(c, "full", "s", false, false,
					    NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(be_clone(c, "full", "lc2", "default", "u4", NULL,
				  true, NULL, err, sizeof(err)), -EBUSY);
	assert_int_equal(be_undefine(c, "lc", err, sizeof(err)), 0);
	assert_int_equal(be_undefine(c, "src", err, sizeof(err)), 0);
	assert_int_equal(fakebe_volume(N1, "src_root.qcow2", NULL, NULL, 0),
			 -ENOENT);
	be_close(c);
}

/* ---- migration --------------------------------------------------------- */

static void test_migrate(void **state)
{
	struct be_conn *c1 = open_node(N1, "n1"), *c2 = open_node(N2, "n2");
	struct be_migrate_opts o = { .dest_uri = N2, .dest_node = "n2" };
	char err[CORE_ERR_MAX], node[64], names[256] = "", uuid[40];
	struct seen s1, s2;
	struct be_info in;

	seen_init(&s1);
	seen_init(&s2);
	assert_int_equal(be_watch(c1, on_event, &s1), 0);
	assert_int_equal(be_watch(c2, on_event, &s2), 0);
	/* Separate hosts: the same name on both is no conflict. */
	define(c1, "a", SPEC_ONE);
	define(c2, "b", SPEC_TWO);
	assert_int_equal(be_info(c2, "a", &in, err, sizeof(err)), -ENOENT);

	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)),
			 -EBUSY);
	assert_string_equal(err, "migrate a: Requested operation is not valid: "
			    "domain is not running");
	assert_int_equal(be_start(c1, "a", err, sizeof(err)), 0);
	o.dest_uri = "fake:///n9";
	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)), -EIO);
	assert_string_equal(err, "migrate a: operation failed: Failed to "
			    "connect to remote libvirt URI fake:///n9: no fake "
			    "host at that URI");
	o.dest_uri = N2;
	o.dest_node = NULL;
	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "migrate a: no target node name");
	o.dest_node = "n2";

	in = info_of(c1, "a");
	snprintf(uuid, sizeof(uuid), "%s", in.uuid);
	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)), 0);
	assert_int_equal(be_info(c1, "a", &in, err, sizeof(err)), -ENOENT);
	in = info_of(c2, "a");
	assert_string_equal(in.uuid, uuid);
	assert_int_equal(in.phase, CORE_PHASE_RUNNING);
	assert_string_equal(in.reason, "migrated");
	assert_int_equal(fakebe_domain_node(N2, "a", node, sizeof(node)), 0);
	assert_string_equal(node, "n2");
	assert_int_equal(be_list(c2, list_names, names), 0);
	assert_non_null(strstr(names, "[a]"));
	assert_non_null(strstr(names, "[b]"));
	fakebe_settle();
	assert_int_equal(seen_count(&s1, "a"), 3);     /* define start gone */
	assert_int_equal(seen_count(&s2, "a"), 1);     /* arrived */
	assert_int_equal(fakebe_volume(N2, "/fake/pool/a_root.qcow2", NULL,
				       NULL, 0), 0);

	/* Back, offline: only a stopped domain, definition only. */
	assert_int_equal(be_destroy(c2, "a", err, sizeof(err)), 0);
	o.dest_uri = N1;
	o.dest_node = "n1";
	o.offline = true;
	assert_int_equal(be_migrate(c2, "a", &o, NULL, err, sizeof(err)), 0);
	assert_int_equal(info_of(c1, "a").phase, CORE_PHASE_STOPPED);
	/* It left n2. */
	assert_int_equal(be_migrate(c2, "a", &o, NULL, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(be_snapshot_create(c1, "a", "s", false, false, NULL,
					    NULL, err, sizeof(err)), 0);
	o.dest_uri = N2;
	o.dest_node = "n2";
	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)),
			 -EBUSY);
	assert_string_equal(err, "migrate a: Requested operation is not valid: "
			    "cannot migrate domain with 1 snapshots");
	be_close(c1);
	be_close(c2);
	pthread_mutex_destroy(&s1.lock);
	pthread_mutex_destroy(&s2.lock);
}

/* A peer added without a connection is a target; one node's daemon
 * sees only its own domains on a shared host. */
static void test_peers_and_nodes(void **state)
{
	struct be_conn *c1 = open_node(N1, "n1"), *c1b = open_node(N1, "other");
	struct be_migrate_opts o = { .dest_uri = "fake:///peer",
				     .dest_node = "p" };
	struct be_config cfg = { .uri = N1, .pool_dir = "/elsewhere" };
	char err[CORE_ERR_MAX], node[64];
	struct be_conn *bad = NULL;
	struct be_info in;
	int cpus = 0;

	assert_int_equal(be_open(&cfg, &bad, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "storage pool hypersdk exists with path "
			    "/fake/pool, not /elsewhere");
	define(c1, "a", SPEC_ONE);
	assert_int_equal(be_list(c1b, list_one, &cpus), 0);
	assert_int_equal(cpus, 0);
	assert_int_equal(be_info(c1b, "a", &in, err, sizeof(err)), 0);
	assert_int_equal(be_start(c1, "a", err, sizeof(err)), 0);
	assert_int_equal(fakebe_add_host("fake:///peer"), 0);
	assert_int_equal(be_migrate(c1, "a", &o, NULL, err, sizeof(err)), 0);
	assert_int_equal(fakebe_domain_node("fake:///peer", "a", node,
					    sizeof(node)), 0);
	assert_string_equal(node, "p");
	be_close(c1);
	be_close(c1b);
}

/* ---- images and stats -------------------------------------------------- */

static void test_images(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	const char *url = "https://img.example/base.qcow2";
	const char *const allow[] = { "http://mirror.lan/" };
	struct be_import_policy pol = {
		.allow = allow, .nallow = 1, .dir = "/srv/img",
		.max_bytes = 1 << 30, .max_running = 1, .need_checksum = true,
	};
	char err[CORE_ERR_MAX], backing[256];
	uint64_t size = 0;

	assert_int_equal(fakebe_add_image(url, 2ULL << 30, "sha256:abcd"), 0);
	assert_int_equal(be_image_import(c, "http://img.example/x", NULL,
					 "base", &size, NULL, err,
					 sizeof(err)), -EACCES);
	assert_string_equal(err, "import: http://img.example/x: refused: only "
			    "https:// or a URL under an --import-allow prefix");
	assert_int_equal(be_image_import(c, "https://img.example/none", NULL,
					 "base", &size, NULL, err,
					 sizeof(err)), -ENOENT);
	assert_string_equal(err, "import https://img.example/none: HTTP 404");
	assert_int_equal(be_image_import(c, url, "sha256:ff", "base", &size,
					 NULL, err, sizeof(err)), -EBADMSG);
	assert_string_equal(err, "checksum mismatch: expected sha256:ff got "
			    "sha256:abcd");
	assert_int_equal(be_image_import(c, url, "sha256:ABCD", "base", &size,
					 NULL, err, sizeof(err)), 0);
	assert_int_equal(size, 2ULL << 30);
	assert_int_equal(be_image_import(c, url, NULL, "base", &size, NULL,
					 err, sizeof(err)), -EEXIST);

	assert_int_equal(be_volume_from_image(c, "vm", "root", NULL, "base", true,
					      1ULL << 30, err, sizeof(err)), 0);
	assert_int_equal(fakebe_volume(N1, "vm_root.qcow2", &size, backing,
				       sizeof(backing)), 0);
	assert_int_equal(size, 2ULL << 30);
	assert_string_equal(backing, "/fake/pool/base");
	assert_int_equal(be_volume_from_image(c, "vm", "root", NULL, "base", true, 0,
					      err, sizeof(err)), -EEXIST);
	assert_int_equal(be_volume_from_image(c, "vm", "data", NULL, "nope", true, 0,
					      err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "volume vm_data.qcow2: no image nope in pool "
			    "hypersdk");
	/* be_define finds the disk present. */
	define(c, "vm", SPEC_ONE);
	assert_int_equal(info_of(c, "vm").disk_bytes, 2ULL << 30);
	assert_int_equal(be_image_delete(c, "base", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "delete image base: VMs use it as their base: "
			    "vm");
	assert_int_equal(be_undefine(c, "vm", err, sizeof(err)), 0);
	assert_int_equal(be_image_delete(c, "base", err, sizeof(err)), 0);
	assert_int_equal(be_image_delete(c, "base", err, sizeof(err)), -ENOENT);

	/* The policy: a named prefix, local files under one folder, and a
	 * checksum required in cluster mode. */
	assert_int_equal(be_import_set(c, &pol), 0);
	assert_int_equal(fakebe_add_image("http://mirror.lan/i.raw", 1 << 20,
					  "md5:00"), 0);
	assert_int_equal(fakebe_add_image("/srv/img/l.raw", 2 << 20,
					  "md5:11"), 0);
	assert_int_equal(be_image_import(c, "http://mirror.lan/i.raw", NULL,
					 "i", &size, NULL, err, sizeof(err)),
			 -EACCES);
	assert_string_equal(err, "import http://mirror.lan/i.raw: refused: a "
			    "checksum is required in cluster mode "
			    "(spec.image.checksum)");
	assert_int_equal(be_image_import(c, "http://mirror.lan/i.raw",
					 "md5:00", "i", &size, NULL, err,
					 sizeof(err)), 0);
	assert_int_equal(be_image_import(c, "file:///srv/img/l.raw",
					 "md5:11", "l", &size, NULL, err,
					 sizeof(err)), 0);
	assert_int_equal(size, 2 << 20);
	assert_int_equal(be_image_import(c, "/etc/shadow", "md5:11", "s",
					 &size, NULL, err, sizeof(err)),
			 -EACCES);
	assert_string_equal(err, "import: /etc/shadow: refused: not a file "
			    "under --import-dir /srv/img");
	be_close(c);
}

static void on_stats(const char *name, const char *txt, size_t len,
		     void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 512 - strlen(out), "[%s]%.*s", name,
		 (int)len, txt);
}

static void test_stats_and_pure(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	unsigned char qcow[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	struct be_config kcfg = { .uri = N1, .pool_dir = "/fake/pool",
				  .accel = BE_ACCEL_KVM };
	struct be_conn *k = NULL;
	char err[CORE_ERR_MAX], out[512] = "", red[128];
	const char *why;

	define(c, "a", SPEC_ONE);
	define(c, "b", SPEC_ONE);
	assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
	assert_int_equal(be_stats_all(c, on_stats, out), 0);
	assert_non_null(strstr(out, "[a]cpu.time_ns "));
	assert_non_null(strstr(out, "vcpus 2\n"));
	assert_non_null(strstr(out, "block.vda.capacity_bytes 1073741824\n"));
	assert_null(strstr(out, "[b]"));
	assert_int_equal(fakebe_set_stats(N1, "a", "vcpus 7\n"), 0);
	out[0] = '\0';
	assert_int_equal(be_stats_all(c, on_stats, out), 0);
	assert_string_equal(out, "[a]vcpus 7\n");

	assert_string_equal(be_accel_name(c), "tcg");
	assert_int_equal(be_open(&kcfg, &k, err, sizeof(err)), -EOPNOTSUPP);
	assert_int_equal(fakebe_set_kvm(N1, true), 0);
	assert_int_equal(be_open(&kcfg, &k, err, sizeof(err)), 0);
	assert_string_equal(be_accel_name(k), "kvm");
	be_close(k);

	be_url_redact("https://u:pw@host/x", red, sizeof(red));
	assert_string_equal(red, "https://host/x");
	assert_int_equal(be_imgprobe(qcow, sizeof(qcow), NULL, 0, &why),
			 BE_IMG_QCOW2);
	be_close(c);
}

/* Closing a watched connection drops what was queued for it. */
static void test_close_with_events(void **state)
{
	struct be_conn *c = open_node(N1, "n1");
	char err[CORE_ERR_MAX];
	struct seen s;
	int i;

	seen_init(&s);
	assert_int_equal(be_watch(c, on_event, &s), 0);
	define(c, "a", SPEC_ONE);
	for (i = 0; i < 50; i++) {
		assert_int_equal(be_start(c, "a", err, sizeof(err)), 0);
		assert_int_equal(be_destroy(c, "a", err, sizeof(err)), 0);
	}
	be_close(c);
	fakebe_settle();
	assert_true(seen_count(&s, "a") <= 101);
	pthread_mutex_destroy(&s.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_lifecycle_errnos, setup),
		cmocka_unit_test_setup(test_definition, setup),
		cmocka_unit_test_setup(test_events_off_thread, setup),
		cmocka_unit_test_setup(test_shutdown_then_restart, setup),
		cmocka_unit_test_setup(test_host_down_reconnect, setup),
		cmocka_unit_test_setup(test_failure_injection, setup),
		cmocka_unit_test_setup(test_call_counting, setup),
		cmocka_unit_test_setup(test_snapshots, setup),
		cmocka_unit_test_setup(test_resize, setup),
		cmocka_unit_test_setup(test_clone, setup),
		cmocka_unit_test_setup(test_migrate, setup),
		cmocka_unit_test_setup(test_peers_and_nodes, setup),
		cmocka_unit_test_setup(test_images, setup),
		cmocka_unit_test_setup(test_stats_and_pure, setup),
		cmocka_unit_test_setup(test_close_with_events, setup),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
