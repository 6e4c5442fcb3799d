/* The daemon's rules without root, libvirt or QEMU: mountd linked with
 * the in-memory backend (fakebe), driven through the same fs_ops a ctl
 * or spec write takes.  Verb rules, the busy mark, round trips to
 * libvirt, HA decisions, interrupted operations, refused writes that
 * change nothing, and a write for another node's VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakebe.h"
#include "mountd/priv.h"

#define URI "fake:///unit"

static char err[CORE_ERR_MAX];

struct t {
	char dir[64];
	struct mountd *md;
};

static int rm_rf(const char *dir)
{
	char *argv[] = { "rm", "-rf", (char *)dir, NULL };
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid > 0 && waitpid(pid, &st, 0) == pid && st == 0 ? 0 : -1;
}

static void open_md_as(struct t *t, const char *const *peers, size_t npeers,
		       const char *kubeconfig)
{
	char pool[128];
	struct md_config c = {
		.node = "n1", .uri = URI, .state_dir = t->dir,
		.pool_dir = pool, .stop_timeout_s = 1, .stats_interval_s = 1,
		.restart_backoff_s = 1,
		.peers = peers, .npeers = npeers,
		.cluster = kubeconfig != NULL, .kubeconfig = kubeconfig,
		.ns = kubeconfig ? "default" : NULL,
	};

	snprintf(pool, sizeof(pool), "%s/pool", t->dir);
	mkdir(pool, 0755);
	md_set_log_level(LOG_ERR_);
	if (md_open(&c, &t->md, err, sizeof(err)) < 0)
		fail_msg("md_open: %s", err);
	assert_int_equal(md_start(t->md), 0);
}

static void open_md(struct t *t, const char *const *peers, size_t npeers)
{
	open_md_as(t, peers, npeers, NULL);
}

static void close_md(struct t *t)
{
	if (!t->md)
		return;
	md_quiesce(t->md);
	md_close(t->md);
	t->md = NULL;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/hsdk-unit.XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	fakebe_reset();
	open_md(t, NULL, 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	close_md(t);
	fakebe_reset();
	rm_rf(t->dir);
	free(t);
	return 0;
}

/* Until libvirt's events and the reconciler's work on them are done. */
static void drain(struct mountd *md)
{
	for (int i = 0; i < 3; i++) {
		fakebe_settle();
		while (!md_worker_idle(&md->work))
			usleep(1000);
	}
}

/* One ctl write, as fs hands it over; vm NULL is vms/ctl. */
static int ctl(struct mountd *md, const char *vm, const char *msg)
{
	struct core_ctl c;
	int rc;

	err[0] = '\0';
	rc = core_ctl_parse(msg, strlen(msg), vm == NULL, &c, err, sizeof(err));
	if (rc < 0)
		fail_msg("\"%s\": %s", msg, err);
	c.owner = 0;
	return md_fs_ops.ctl(md, vm, &c, err, sizeof(err));
}

static void ok(struct mountd *md, const char *vm, const char *msg)
{
	if (ctl(md, vm, msg) < 0)
		fail_msg("%s: \"%s\": %s", vm ? vm : "vms/ctl", msg, err);
}

static enum core_phase phase(struct mountd *md, const char *name)
{
	struct md_vm v;

	if (md_vm_get(md, name, &v) < 0)
		return CORE_PHASE_UNKNOWN;
	return v.phase;
}

static bool want_running(struct mountd *md, const char *name)
{
	struct md_vm v;

	return md_vm_get(md, name, &v) == 0 && v.want_running;
}

static bool has_event(struct mountd *md, const char *name, const char *what)
{
	struct core_vm *vm;
	bool r = false;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	r = vm && vm->txt_events && strstr(vm->txt_events, what);
	core_model_unlock(md->m);
	return r;
}

static const char *operation(struct mountd *md, const char *name)
{
	static char op[32];
	struct core_vm *vm;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	snprintf(op, sizeof(op), "%s", vm ? vm->st.operation : "?");
	core_model_unlock(md->m);
	return op;
}

/* ---- the verbs and their phases --------------------------------------- */

static void test_lifecycle(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	char path[128];
	struct stat sb;

	ok(md, NULL, "create a1 cpus=1 memory=64Mi disk=64Mi");
	assert_int_equal(phase(md, "a1"), CORE_PHASE_STOPPED);
	assert_string_equal(operation(md, "a1"), "");
	ok(md, "a1", "start");
	assert_int_equal(phase(md, "a1"), CORE_PHASE_RUNNING);
	assert_true(want_running(md, "a1"));
	assert_true(has_event(md, "a1", "Started"));
	ok(md, "a1", "pause");
	assert_int_equal(phase(md, "a1"), CORE_PHASE_PAUSED);
	ok(md, "a1", "resume");
	assert_int_equal(phase(md, "a1"), CORE_PHASE_RUNNING);
	ok(md, "a1", "stop");
	assert_int_equal(phase(md, "a1"), CORE_PHASE_STOPPED);
	assert_false(want_running(md, "a1"));
	snprintf(path, sizeof(path), "%s/vms/a1.json", ((struct t *)*state)->dir);
	assert_int_equal(stat(path, &sb), 0);
	ok(md, "a1", "delete");
	assert_int_equal(md_vm_get(md, "a1", &(struct md_vm){ 0 }), -ENOENT);
	assert_int_not_equal(stat(path, &sb), 0);
}

static void expect_busy(struct mountd *md, const char *vm, const char *msg,
			const char *text)
{
	assert_int_equal(ctl(md, vm, msg), -EBUSY);
	assert_string_equal(err, text);
}

static void test_verb_rules(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ok(md, NULL, "create b1");
	expect_busy(md, "b1", "stop", "stop: vm b1 is Stopped");
	expect_busy(md, "b1", "pause", "pause: vm b1 is Stopped");
	expect_busy(md, "b1", "resume", "resume: vm b1 is Stopped");
	expect_busy(md, "b1", "restart", "restart: vm b1 is Stopped");
	ok(md, "b1", "start");
	expect_busy(md, "b1", "start", "start: vm b1 is Running");
	expect_busy(md, "b1", "resume", "resume: vm b1 is Running");
	expect_busy(md, "b1", "delete", "delete: vm b1 is Running (stop it "
		    "first, or delete force)");
	/* Refusals leave the status alone: no mark, same phase. */
	assert_string_equal(operation(md, "b1"), "");
	assert_int_equal(phase(md, "b1"), CORE_PHASE_RUNNING);
	ok(md, "b1", "delete force");
	assert_int_equal(phase(md, "b1"), CORE_PHASE_UNKNOWN);
	assert_int_equal(ctl(md, "b1", "start"), -ENOENT);
	assert_string_equal(err, "vm b1 does not exist");
}

/* The table's phase rules, verb by verb, without a daemon. */
static void test_phase_table(void **state)
{
	struct core_ctl c = { .verb = CORE_V_DELETE };

	assert_false(core_op_allowed(&c, CORE_PHASE_RUNNING));
	assert_false(core_op_allowed(&c, CORE_PHASE_MIGRATING));
	assert_true(core_op_allowed(&c, CORE_PHASE_STOPPED));
	c.force = true;
	assert_true(core_op_allowed(&c, CORE_PHASE_MIGRATING));
	c = (struct core_ctl){ .verb = CORE_V_START };
	assert_true(core_op_allowed(&c, CORE_PHASE_FAILED));
	assert_false(core_op_allowed(&c, CORE_PHASE_PAUSED));
	c.verb = CORE_V_CLONE;
	for (int ph = 0; ph <= CORE_PHASE_UNKNOWN; ph++)
		assert_true(core_op_allowed(&c, ph));
}

/* ---- the busy mark ----------------------------------------------------- */

static void test_mark_is_typed(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	struct md_mark clone = md_mark_verb(CORE_V_CLONE, false);
	struct md_vm v;

	ok(md, NULL, "create c1");
	assert_int_equal(md_claim(md, "c1", clone, NULL, err, sizeof(err)), 0);
	assert_string_equal(operation(md, "c1"), "clone");
	assert_int_equal(md_claim(md, "c1", md_mark_verb(CORE_V_START, false),
				  &v, err, sizeof(err)), -EBUSY);
	assert_int_equal(v.mark.hold, MD_HOLD_VERB);
	assert_int_equal(v.mark.verb, CORE_V_CLONE);
	expect_busy(md, "c1", "start", "start: vm c1 is busy (clone in progress)");
	/* Releasing another mark is a no-op; the holder's frees it. */
	md_release(md, "c1", md_mark_verb(CORE_V_START, false));
	assert_string_equal(operation(md, "c1"), "clone");
	md_release(md, "c1", clone);
	assert_string_equal(operation(md, "c1"), "");
	/* The API's name shows: revert is restore. */
	assert_string_equal(md_mark_name(md_mark_verb(CORE_V_REVERT, false)),
			    "restore");
	assert_string_equal(md_mark_name(md_mark_verb(CORE_V_STOP, true)),
			    "stop force");
	assert_string_equal(md_mark_name(md_mark_of(MD_HOLD_SPEC)), "spec");
}

struct later {
	struct mountd *md;
	const char *vm;
	struct md_mark m;
	int ms;
};

static void *release_later(void *arg)
{
	struct later *l = arg;

	usleep((useconds_t)l->ms * 1000);
	md_release(l->md, l->vm, l->m);
	return NULL;
}

/* A user's verb waits out the reconciler's short hold; any other hold is
 * EBUSY at once. */
static void test_reconcile_hold_is_waited_out(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	struct later l = { md, "d1", md_mark_of(MD_HOLD_RECONCILE), 200 };
	pthread_t th;

	ok(md, NULL, "create d1");
	assert_int_equal(md_claim(md, "d1", l.m, NULL, err, sizeof(err)), 0);
	pthread_create(&th, NULL, release_later, &l);
	ok(md, "d1", "start");
	pthread_join(th, NULL);
	assert_int_equal(phase(md, "d1"), CORE_PHASE_RUNNING);
	/* Another reconcile does not wait for a reconcile. */
	assert_int_equal(md_claim(md, "d1", l.m, NULL, err, sizeof(err)), 0);
	assert_int_equal(md_claim(md, "d1", l.m, NULL, err, sizeof(err)), -EBUSY);
	md_release(md, "d1", l.m);
}

struct bg {
	struct mountd *md;
	const char *vm, *msg;
	int rc;
	char err[CORE_ERR_MAX];
};

static void *ctl_bg(void *arg)
{
	struct bg *b = arg;
	struct core_ctl c;

	core_ctl_parse(b->msg, strlen(b->msg), false, &c, b->err,
		       sizeof(b->err));
	b->rc = md_fs_ops.ctl(b->md, b->vm, &c, b->err, sizeof(b->err));
	return NULL;
}

/* A guest that ignores ACPI: a forced stop overtakes the graceful one
 * instead of waiting for its timeout; both writes succeed. */
static void test_stop_force_overtakes(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	struct bg b = { .md = md, .vm = "e1", .msg = "stop" };
	pthread_t th;

	ok(md, NULL, "create e1");
	ok(md, "e1", "start");
	assert_int_equal(fakebe_ignore_acpi(URI, "e1", true), 0);
	b.rc = 1;
	pthread_create(&th, NULL, ctl_bg, &b);
	for (int i = 0; i < 5000 && strcmp(operation(md, "e1"), "stop"); i++)
		usleep(1000);
	if (strcmp(operation(md, "e1"), "stop")) {
		pthread_join(th, NULL);
		fail_msg("the graceful stop is not running: %d %s", b.rc, b.err);
	}
	ok(md, "e1", "stop force");
	assert_int_equal(phase(md, "e1"), CORE_PHASE_STOPPED);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, 0);
	assert_false(has_event(md, "e1", "StopTimeout"));
	assert_string_equal(operation(md, "e1"), "");
}

/* Alone, the graceful stop destroys the guest after --stop-timeout. */
static void test_stop_timeout_destroys(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ok(md, NULL, "create f1");
	ok(md, "f1", "start");
	assert_int_equal(fakebe_ignore_acpi(URI, "f1", true), 0);
	ok(md, "f1", "stop");
	assert_int_equal(phase(md, "f1"), CORE_PHASE_STOPPED);
	assert_true(has_event(md, "f1", "StopTimeout"));
	assert_true(has_event(md, "f1", "powered off"));
}

/* ---- round trips to libvirt ------------------------------------------- */

/* A start of a defined VM: one lookup besides the start itself, no
 * define, and the event it causes does not look again. */
static void test_start_round_trips(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	unsigned long info, def, start;

	ok(md, NULL, "create g1");
	drain(md);
	info = fakebe_calls(FAKEBE_OP_INFO);
	def = fakebe_calls(FAKEBE_OP_DEFINE);
	start = fakebe_calls(FAKEBE_OP_START);
	ok(md, "g1", "start");
	assert_int_equal(fakebe_calls(FAKEBE_OP_START) - start, 1);
	assert_int_equal(fakebe_calls(FAKEBE_OP_DEFINE) - def, 0);
	assert_int_equal(fakebe_calls(FAKEBE_OP_INFO) - info, 1);
	drain(md);
	assert_int_equal(fakebe_calls(FAKEBE_OP_INFO) - info, 1);
	assert_int_equal(phase(md, "g1"), CORE_PHASE_RUNNING);
}

/* A domain someone undefined behind our back is defined again by the
 * start that finds it missing. */
static void test_start_redefines_missing(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ok(md, NULL, "create h1");
	drain(md);
	assert_int_equal(be_undefine(md->be, "h1", err, sizeof(err)), 0);
	drain(md);
	ok(md, "h1", "start");
	assert_int_equal(phase(md, "h1"), CORE_PHASE_RUNNING);
}

/* ---- refused and failed writes change nothing -------------------------- */

static void test_failed_start_changes_nothing(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ok(md, NULL, "create i1");
	fakebe_fail(FAKEBE_OP_START, -EIO, "start i1: no room for QEMU");
	assert_int_equal(ctl(md, "i1", "start"), -EIO);
	assert_string_equal(err, "start i1: no room for QEMU");
	assert_int_equal(phase(md, "i1"), CORE_PHASE_STOPPED);
	assert_false(want_running(md, "i1"));
	assert_string_equal(operation(md, "i1"), "");
}

static void test_failed_create_leaves_no_vm(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	char path[128];
	struct stat sb;

	fakebe_fail(FAKEBE_OP_DEFINE, -ENOSPC, "define j1: pool is full");
	assert_int_equal(ctl(md, NULL, "create j1"), -ENOSPC);
	assert_string_equal(err, "define j1: pool is full");
	assert_int_equal(md_vm_get(md, "j1", &(struct md_vm){ 0 }), -ENOENT);
	snprintf(path, sizeof(path), "%s/vms/j1.json", ((struct t *)*state)->dir);
	assert_int_not_equal(stat(path, &sb), 0);
	ok(md, NULL, "create j1");      /* the name is free again */
}

static void test_refused_spec_changes_nothing(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	json_object *spec = NULL;
	struct md_vm v;

	ok(md, NULL, "create k1 cpus=1");
	assert_int_equal(md_spec_copy(md, "k1", &spec), 0);
	core_spec_set_int(spec, "cpus", 2);
	fakebe_fail(FAKEBE_OP_DEFINE, -EINVAL, "define k1: bad XML");
	assert_int_equal(md_fs_ops.spec(md, "k1", spec, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(md_vm_get(md, "k1", &v), 0);
	assert_int_equal(v.cpus, 1);
	assert_string_equal(operation(md, "k1"), "");
	assert_int_equal(md_spec_copy(md, "k1", &spec), 0);
	core_spec_set_int(spec, "cpus", 2);
	assert_int_equal(md_fs_ops.spec(md, "k1", spec, err, sizeof(err)), 0);
	assert_int_equal(md_vm_get(md, "k1", &v), 0);
	assert_int_equal(v.cpus, 2);
}

/* ---- HA decisions -------------------------------------------------------- */

static void ha_vm(struct mountd *md, const char *name, const char *policy)
{
	json_object *spec = NULL, *ha = json_object_new_object();

	char create[64];

	snprintf(create, sizeof(create), "create %s", name);
	ok(md, NULL, create);
	assert_int_equal(md_spec_copy(md, name, &spec), 0);
	json_object_object_add(ha, "enabled", json_object_new_boolean(1));
	json_object_object_add(ha, "restartPolicy",
			       json_object_new_string(policy));
	json_object_object_add(spec, "highAvailability", ha);
	core_spec_set_bool(spec, "running", true);
	assert_int_equal(md_fs_ops.spec(md, name, spec, err, sizeof(err)), 0);
	assert_int_equal(phase(md, name), CORE_PHASE_RUNNING);
}

static void wait_phase(struct mountd *md, const char *name, enum core_phase p)
{
	for (int i = 0; i < 5000 && phase(md, name) != p; i++) {
		drain(md);
		usleep(1000);
	}
	assert_int_equal(phase(md, name), p);
}

static struct core_status status_of(struct mountd *md, const char *name)
{
	struct core_status st = { 0 };
	struct core_vm *vm;

	core_model_rdlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm)
		st = vm->st;
	core_model_unlock(md->m);
	return st;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Crash name and time its way back: the wait shows in status. */
static double crash_and_back(struct mountd *md, const char *name)
{
	unsigned before = status_of(md, name).restarts;
	struct core_status st;
	double t0 = now_s();

	assert_int_equal(fakebe_crash(URI, name), 0);
	drain(md);
	st = status_of(md, name);
	/* On a loaded machine a wait of 1 s may be over before this look:
	 * then the restart has been counted already. */
	if (st.phase == CORE_PHASE_RUNNING) {
		assert_true(st.restarts > before);
	} else {
		assert_true(st.next_restart > 0);
		assert_string_equal(st.cond[CORE_COND_READY].reason,
				    "CrashLoopBackOff");
	}
	wait_phase(md, name, CORE_PHASE_RUNNING);
	return now_s() - t0;
}

/* --restart-backoff 1: 1 s, then 2 s (10 s and 20 s by default). */
static void test_ha_restarts_with_backoff(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	double first, second;

	ha_vm(md, "l1", "Always");
	first = crash_and_back(md, "l1");
	assert_true(has_event(md, "l1", "restart 1 in 1s (highAvailability)"));
	assert_int_equal(status_of(md, "l1").restarts, 1);
	assert_int_equal(status_of(md, "l1").next_restart, 0);
	second = crash_and_back(md, "l1");
	assert_true(has_event(md, "l1", "restart 2 in 2s (highAvailability)"));
	assert_int_equal(status_of(md, "l1").restarts, 2);
	/* Times are whole seconds: a wait of N s lasts N-1 to N s. */
	assert_true(first < 5);
	assert_true(second >= 1.0 && second < 8);
	assert_true(want_running(md, "l1"));
}

/* A stop while the restart waits: it does not come, and the VM is
 * meant to be off. */
static void test_stop_cancels_waiting_restart(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ha_vm(md, "l2", "Always");
	assert_int_equal(fakebe_crash(URI, "l2"), 0);
	drain(md);
	assert_true(status_of(md, "l2").next_restart > 0);
	ok(md, "l2", "stop");
	assert_int_equal(status_of(md, "l2").next_restart, 0);
	assert_false(want_running(md, "l2"));
	usleep(1500 * 1000);
	drain(md);
	assert_int_not_equal(phase(md, "l2"), CORE_PHASE_RUNNING);
	assert_true(has_event(md, "l2", "RestartCancelled"));
	/* And a later stop is refused as for any stopped VM. */
	assert_int_equal(ctl(md, "l2", "stop"), -EBUSY);
}

static void test_ha_never_stays_down(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ha_vm(md, "m1", "Never");
	assert_int_equal(fakebe_crash(URI, "m1"), 0);
	drain(md);
	wait_phase(md, "m1", CORE_PHASE_FAILED);
	/* Recorded as meant to be off: a daemon restart keeps it off. */
	for (int i = 0; i < 1000 && want_running(md, "m1"); i++)
		usleep(1000);
	assert_false(want_running(md, "m1"));
}

static void test_ha_on_failure_ignores_guest_poweroff(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;

	ha_vm(md, "n1", "OnFailure");
	assert_int_equal(fakebe_poweroff(URI, "n1"), 0);
	drain(md);
	wait_phase(md, "n1", CORE_PHASE_STOPPED);
	assert_true(has_event(md, "n1", "StoppedOutside"));
}

/* ---- operations ----------------------------------------------------------- */

static const char *obj_phase(struct mountd *md, const char *name)
{
	static char ph[32];
	struct core_obj *o;

	core_model_rdlock(md->m);
	o = core_model_obj_find(md->m, CORE_KIND_OPERATION, name);
	snprintf(ph, sizeof(ph), "%s", o && core_obj_str(o, "status.phase") ?
		 core_obj_str(o, "status.phase") : "?");
	core_model_unlock(md->m);
	return ph;
}

static void test_operations_from_ctl(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	struct md_vm v;

	ok(md, NULL, "create o1 cpus=1 memory=64Mi");
	ok(md, "o1", "clone o2");
	assert_int_equal(phase(md, "o2"), CORE_PHASE_STOPPED);
	assert_string_equal(operation(md, "o2"), "");
	ok(md, "o1", "resize cpus=2");
	assert_int_equal(md_vm_get(md, "o1", &v), 0);
	assert_int_equal(v.cpus, 2);
	ok(md, "o1", "snapshot s1");
	ok(md, "o1", "revert s1");
	assert_string_equal(operation(md, "o1"), "");
	/* A deleted VM takes its snapshots along. */
	ok(md, "o1", "delete");
	core_model_rdlock(md->m);
	assert_null(core_model_obj_find(md->m, CORE_KIND_SNAPSHOT, "s1"));
	core_model_unlock(md->m);
}

/* A VMOperation a restart caught Running ends Failed, saying why. */
static void test_interrupted_operation_fails(void **state)
{
	struct t *t = *state;
	char path[160];
	FILE *f;

	close_md(t);
	snprintf(path, sizeof(path), "%s/operations", t->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/operations/x-start-1.json", t->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"apiVersion\":\"hypersdk.io/v1alpha1\",\"kind\":\"VMOperation\","
	      "\"metadata\":{\"name\":\"x-start-1\",\"namespace\":\"default\"},"
	      "\"spec\":{\"vmRef\":{\"name\":\"x\"},\"operation\":\"start\"},"
	      "\"status\":{\"phase\":\"Running\",\"progress\":40}}", f);
	fclose(f);
	open_md(t, NULL, 0);
	assert_string_equal(obj_phase(t->md, "x-start-1"), "Failed");
}

/* Unknown operations from the API fail clearly, and nothing runs. */
static void test_unknown_operation(void **state)
{
	struct mountd *md = ((struct t *)*state)->md;
	json_object *o = json_object_new_object(), *spec, *ref;

	ok(md, NULL, "create q1");
	spec = json_object_new_object();
	ref = json_object_new_object();
	json_object_object_add(ref, "name", json_object_new_string("q1"));
	json_object_object_add(spec, "vmRef", ref);
	json_object_object_add(spec, "operation",
			       json_object_new_string("frobnicate"));
	json_object_object_add(o, "apiVersion",
			       json_object_new_string("hypersdk.io/v1alpha1"));
	json_object_object_add(o, "kind", json_object_new_string("VMOperation"));
	json_object_object_add(o, "metadata", json_object_new_object());
	json_object_object_add(core_json_path(o, "metadata"), "name",
			       json_object_new_string("q1-frob"));
	json_object_object_add(o, "spec", spec);
	md_ops_upsert(md, CORE_KIND_OPERATION, o);
	json_object_put(o);
	for (int i = 0; i < 2000 && strcmp(obj_phase(md, "q1-frob"), "Failed");
	     i++)
		usleep(1000);
	assert_string_equal(obj_phase(md, "q1-frob"), "Failed");
	assert_int_equal(phase(md, "q1"), CORE_PHASE_STOPPED);
	assert_string_equal(operation(md, "q1"), "");
}

/* ---- another node's VM ------------------------------------------------------ */

/* Standalone, a VM that migrated away is forgotten here: its domain is
 * the peer's to adopt. */
static void test_migrate_hands_over(void **state)
{
	struct t *t = *state;
	const char *peers[] = { "n2=fake:///unit-n2" };
	char node[CORE_NAME_MAX + 1];

	close_md(t);
	fakebe_add_host("fake:///unit-n2");
	open_md(t, peers, 1);
	ok(t->md, NULL, "create r1");
	ok(t->md, "r1", "start");
	ok(t->md, "r1", "migrate n2");
	assert_int_equal(md_vm_get(t->md, "r1", &(struct md_vm){ 0 }), -ENOENT);
	assert_int_equal(fakebe_domain_node("fake:///unit-n2", "r1", node,
					    sizeof(node)), 0);
	assert_string_equal(node, "n2");
}

/* Cluster mode with the API server away: a write for another node's VM
 * cannot reach its owner, says so, and changes nothing here. */
static void test_forward_offline(void **state)
{
	struct t *t = *state;
	char path[160];
	json_object *spec = NULL;
	enum core_phase was;
	struct md_vm v;
	FILE *f;

	close_md(t);
	snprintf(path, sizeof(path), "%s/vms", t->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/vms/f1.json", t->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"apiVersion\":\"hypersdk.io/v1alpha1\",\"kind\":"
	      "\"VirtualMachine\",\"metadata\":{\"name\":\"f1\","
	      "\"namespace\":\"default\"},\"spec\":{\"cpus\":1,\"memory\":"
	      "\"64Mi\",\"running\":true,\"disks\":[{\"name\":\"root\","
	      "\"size\":\"64Mi\"}]},\"status\":{\"phase\":\"Running\","
	      "\"nodeName\":\"n2\"}}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/kubeconfig", t->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	/* Nothing listens on the discard port. */
	fputs("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
	      "    server: http://127.0.0.1:9\nusers:\n- name: u\n  user:\n"
	      "    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
	      "    user: u\ncurrent-context: x\n", f);
	fclose(f);
	open_md_as(t, NULL, 0, path);
	assert_int_equal(md_vm_get(t->md, "f1", &v), 0);
	assert_string_equal(v.node, "n2");
	was = v.phase;
	assert_int_equal(ctl(t->md, "f1", "stop"), -EIO);
	assert_string_equal(err, "stop: vm f1 belongs to node n2 and the API "
			    "server is unreachable");
	assert_int_equal(md_spec_copy(t->md, "f1", &spec), 0);
	core_spec_set_int(spec, "cpus", 2);
	assert_int_equal(md_fs_ops.spec(t->md, "f1", spec, err, sizeof(err)),
			 -EIO);
	assert_int_equal(md_vm_get(t->md, "f1", &v), 0);
	assert_int_equal(v.cpus, 1);
	assert_int_equal(v.phase, was);
	assert_string_equal(operation(t->md, "f1"), "");
	/* Its domain is n2's: nothing here asked libvirt to act on it. */
	assert_int_equal(fakebe_calls(FAKEBE_OP_START), 0);
	assert_int_equal(fakebe_calls(FAKEBE_OP_SHUTDOWN), 0);
	assert_int_equal(fakebe_calls(FAKEBE_OP_DEFINE), 0);
}

/* A target's folders come from its Lease: only a plain absolute folder
 * per class is taken; anything else refuses the migration. */
static void test_dest_dirs_from_lease(void **state)
{
	static const char *const bad[] = {
		"not json", "[]", "{\"\": 7}", "{\"\": \"relative/dir\"}",
		"{\"\": \"/a/../etc\"}", "{\"\": \"/a/./b\"}",
		"{\"\": \"/a//b\"}", "{\"\": \"/a/..\"}",
		"{\"\": \"/a\\nb\"}", "{\"Bad Class\": \"/x\"}",
	};
	struct md_dest_dirs d;
	char msg[CORE_ERR_MAX];

	(void)state;
	assert_int_equal(md_dest_dirs_parse("", &d, msg, sizeof(msg)), -ENOENT);
	md_dest_dirs_free(&d);
	assert_int_equal(md_dest_dirs_parse("{\"\": \"/var/lib/hypersdk/pool\", "
					    "\"fast\": \"/srv/fast/\", \"x\": "
					    "\"/a/..b/.c\"}", &d, msg,
					    sizeof(msg)), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.v[0].klass, "");
	assert_string_equal(d.v[0].dir, "/var/lib/hypersdk/pool");
	assert_string_equal(d.v[1].klass, "fast");
	md_dest_dirs_free(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(md_dest_dirs_parse(bad[i], &d, msg,
						    sizeof(msg)), -EINVAL);
		assert_non_null(strstr(msg, "storage-dirs"));
		md_dest_dirs_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verb_rules, setup, teardown),
		cmocka_unit_test(test_phase_table),
		cmocka_unit_test_setup_teardown(test_mark_is_typed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_hold_is_waited_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_force_overtakes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_timeout_destroys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_round_trips, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_redefines_missing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_start_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_create_leaves_no_vm,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_spec_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ha_restarts_with_backoff, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_cancels_waiting_restart,
						setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ha_never_stays_down, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ha_on_failure_ignores_guest_poweroff,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_operations_from_ctl, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_operation_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_operation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_migrate_hands_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forward_offline, setup,
						teardown),
		cmocka_unit_test(test_dest_dirs_from_lease),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
