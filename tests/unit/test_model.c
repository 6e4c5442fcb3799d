/* The in-memory model: add/find/remove, slots, texts, notifications,
 * waiting. */
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
#include <unistd.h>

#include "core/core.h"

struct seen {
	char name[CORE_NAME_MAX + 1];
	bool tree;
	int slot;
	unsigned what;
	uint64_t seq;
};

struct log {
	struct seen v[64];
	size_t n;
};

static void watcher(void *arg, const char *name, int slot, unsigned what,
		    uint64_t seq)
{
	struct log *l = arg;

	if (l->n == 64)
		return;
	l->v[l->n].tree = !name;
	snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s",
		 name ? name : "");
	l->v[l->n].slot = slot;
	l->v[l->n].what = what;
	l->v[l->n].seq = seq;
	l->n++;
}

static struct core_vm *add(struct core_model *m, const char *name)
{
	char err[CORE_ERR_MAX] = "";
	struct core_vm *vm = NULL;
	json_object *spec = core_spec_default();

	if (core_model_add(m, name, NULL, NULL, NULL, spec, &vm, err,
			   sizeof(err)) != 0) {
		json_object_put(spec);
		fail_msg("add %s: %s", name, err);
	}
	return vm;
}

static int setup(void **state)
{
	struct core_model *m;

	if (core_model_new(&m) != 0)
		return -1;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	core_model_free(*state);
	return 0;
}

static int collect(struct core_vm *vm, void *arg)
{
	char *out = arg;

	strcat(out, vm->name);
	strcat(out, " ");
	return strcmp(vm->name, "stop-here") == 0 ? 7 : 0;
}

static void test_add_find_remove(void **state)
{
	struct core_model *m = *state;
	char order[256] = "", err[CORE_ERR_MAX];
	struct core_vm *vm;
	json_object *spec;

	core_model_wrlock(m);
	vm = add(m, "web");
	assert_string_equal(vm->ns, "default");
	assert_int_equal(strlen(vm->uid), 36);
	assert_int_equal(strlen(vm->created), 20);
	assert_int_equal(vm->st.phase, CORE_PHASE_PENDING);
	assert_true(vm->version == 1);
	add(m, "db");
	add(m, "cache");
	assert_int_equal(core_model_count(m), 3);
	assert_ptr_equal(core_model_find(m, "web"), vm);
	assert_null(core_model_find(m, "nope"));
	assert_null(core_model_find(m, NULL));
	core_model_each(m, collect, order);
	assert_string_equal(order, "cache db web ");
	spec = core_spec_default();
	assert_int_equal(core_model_add(m, "web", NULL, NULL, NULL, spec, NULL,
					err, sizeof(err)),
			 -EEXIST);
	assert_string_equal(err, "vm web already exists");
	assert_int_equal(core_model_add(m, "Web", NULL, NULL, NULL, spec, NULL,
					err, sizeof(err)),
			 -EINVAL);
	core_spec_set_int(spec, "cpus", 0);
	assert_int_equal(core_model_add(m, "other", NULL, NULL, NULL, spec,
					NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "spec.cpus: must be >= 1");
	json_object_put(spec);
	core_model_remove(m, core_model_find(m, "db"));
	assert_null(core_model_find(m, "db"));
	assert_int_equal(core_model_count(m), 2);
	order[0] = '\0';
	add(m, "stop-here");
	add(m, "zz");
	assert_int_equal(core_model_each(m, collect, order), 7);
	assert_string_equal(order, "cache stop-here ");
	core_model_unlock(m);
}

static void test_ids_given(void **state)
{
	struct core_model *m = *state;
	char err[CORE_ERR_MAX];
	struct core_vm *vm = NULL;

	core_model_wrlock(m);
	assert_int_equal(core_model_add(m, "a", "prod", "uid-1",
					"2026-11-26T15:04:05Z",
					core_spec_default(), &vm, err,
					sizeof(err)),
			 0);
	assert_string_equal(vm->ns, "prod");
	assert_string_equal(vm->uid, "uid-1");
	assert_string_equal(vm->created, "2026-11-26T15:04:05Z");
	core_model_unlock(m);
}

static void test_slots(void **state)
{
	struct core_model *m = *state;
	struct core_vm *a, *b, *c, *d;

	core_model_wrlock(m);
	a = add(m, "a");
	b = add(m, "b");
	c = add(m, "c");
	assert_int_equal(a->slot, 0);
	assert_int_equal(b->slot, 1);
	assert_int_equal(c->slot, 2);
	assert_ptr_equal(core_model_slot(m, 1), b);
	core_model_remove(m, b);
	assert_null(core_model_slot(m, 1));
	assert_null(core_model_slot(m, -1));
	assert_null(core_model_slot(m, 100000));
	d = add(m, "d");
	assert_int_equal(d->slot, 1);
	assert_ptr_equal(core_model_slot(m, 1), d);
	assert_int_equal(add(m, "e")->slot, 3);
	assert_int_equal(c->slot, 2);
	core_model_unlock(m);
}

static void test_many(void **state)
{
	struct core_model *m = *state;
	char name[32];

	core_model_wrlock(m);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "vm-%04d", (i * 7919) % 2000);
		add(m, name);
	}
	assert_int_equal(core_model_count(m), 2000);
	for (int i = 0; i < 2000; i += 2) {
		snprintf(name, sizeof(name), "vm-%04d", i);
		core_model_remove(m, core_model_find(m, name));
	}
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "vm-%04d", i);
		assert_true((core_model_find(m, name) != NULL) == (i % 2 == 1));
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "new-%04d", i);
		assert_true(add(m, name)->slot < 2000);
	}
	core_model_unlock(m);
	core_model_flush(m);
}

static void test_texts(void **state)
{
	struct core_model *m = *state;
	char err[CORE_ERR_MAX];
	struct core_vm *vm;
	json_object *spec;
	uint64_t v;

	core_model_wrlock(m);
	vm = add(m, "web");
	assert_true(strncmp(vm->txt_status, "phase Pending\nname web\n", 23) ==
		    0);
	assert_int_equal(vm->len_status, strlen(vm->txt_status));
	assert_non_null(strstr(vm->txt_spec, "cpus: 1\nmemory: 256Mi\n"));
	assert_int_equal(vm->len_events, 0);
	assert_string_equal(vm->txt_stats, "");
	vm->st.phase = CORE_PHASE_RUNNING;
	v = vm->version;
	core_model_status_changed(m, vm);
	assert_true(vm->version > v);
	assert_true(strncmp(vm->txt_status, "phase Running\n", 14) == 0);
	spec = json_object_get(vm->spec_json);
	core_spec_set_int(spec, "cpus", 3);
	assert_int_equal(core_model_set_spec(m, vm, spec, err, sizeof(err)), 0);
	assert_int_equal(vm->spec.cpus, 3);
	assert_non_null(strstr(vm->txt_spec, "cpus: 3\n"));
	json_object_put(spec);
	spec = core_spec_default();
	core_spec_set_string(spec, "memory", "tiny");
	v = vm->version;
	assert_int_equal(core_model_set_spec(m, vm, spec, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "spec.memory: bad quantity \"tiny\"");
	assert_true(vm->version == v);
	assert_int_equal(vm->spec.cpus, 3);
	json_object_put(spec);
	core_model_set_stats(m, vm, "cpu.time 5\n", 11);
	assert_string_equal(vm->txt_stats, "cpu.time 5\n");
	assert_true(vm->version == v);
	core_model_unlock(m);
}

static void test_events_and_err(void **state)
{
	struct core_model *m = *state;
	struct core_vm *vm;
	size_t lines = 0;

	core_model_wrlock(m);
	vm = add(m, "web");
	core_model_event(m, vm, "Started", "domain %s is up", "web");
	assert_int_equal(vm->len_events, strlen(vm->txt_events));
	assert_string_equal(vm->txt_events + 21, "Started domain web is up\n");
	assert_int_equal(vm->txt_events[10], 'T');
	for (int i = 0; i < 200; i++)
		core_model_event(m, vm, "Tick", "n=%d\nsecond line", i);
	for (const char *p = vm->txt_events; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, CORE_EVENTS_KEEP);
	assert_int_equal(vm->nevents, CORE_EVENTS_KEEP);
	/* The oldest kept is event 200 - 128 = 72; the newest is 199. */
	assert_non_null(strstr(vm->txt_events, " Tick n=72 second line\n"));
	assert_null(strstr(vm->txt_events, " Tick n=71 "));
	assert_non_null(strstr(vm->txt_events, " Tick n=199 second line\n"));
	core_model_fail(m, vm, "bad argument \"cpus=0\": must be 1 to 512\n");
	assert_string_equal(vm->err, "bad argument \"cpus=0\": must be 1 to 512");
	assert_non_null(strstr(vm->txt_events,
			       " Error bad argument \"cpus=0\": must be 1 to "
			       "512\n"));
	core_model_set_err(m, vm, "");
	assert_string_equal(vm->err, "");
	assert_string_equal(core_model_err(m), "");
	core_model_fail(m, NULL, "unknown control message \"x\"");
	assert_string_equal(core_model_err(m), "unknown control message \"x\"");
	core_model_event(m, NULL, "Ignored", "no vm");
	core_model_unlock(m);
}

static void test_notifications(void **state)
{
	struct core_model *m = *state;
	struct log l = { .n = 0 };
	struct core_vm *vm;
	uint64_t last, tv;

	core_model_watch(m, watcher, &l);
	core_model_rdlock(m);
	tv = core_model_version(m);
	core_model_unlock(m);
	core_model_wrlock(m);
	vm = add(m, "web");
	core_model_status_changed(m, vm);
	core_model_event(m, vm, "Started", "ok");
	core_model_set_stats(m, vm, "x 1\n", 4);
	core_model_unlock(m);
	assert_int_equal(l.n, 0);
	last = core_model_flush(m);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].name, "web");
	assert_int_equal(l.v[0].what, CORE_CHG_ADDED);
	assert_int_equal(l.v[0].slot, vm->slot);
	assert_true(l.v[1].tree);
	assert_int_equal(l.v[1].slot, -1);
	assert_int_equal(l.v[1].what, CORE_CHG_ADDED);
	/* A burst for one VM arrives as one merged change. */
	assert_int_equal(l.v[2].what, CORE_CHG_STATUS | CORE_CHG_EVENTS |
					      CORE_CHG_STATS);
	assert_true(l.v[0].seq < l.v[1].seq && l.v[1].seq < l.v[2].seq);
	assert_true(last == l.v[2].seq);
	assert_true(core_model_flush(m) == last);
	core_model_wrlock(m);
	assert_true(core_model_version(m) > tv);
	core_model_remove(m, vm);
	core_model_unlock(m);
	core_model_flush(m);
	assert_int_equal(l.n, 5);
	assert_int_equal(l.v[3].what, CORE_CHG_REMOVED);
	assert_string_equal(l.v[3].name, "web");
	assert_true(l.v[4].tree && l.v[4].what == CORE_CHG_REMOVED);
	assert_true(l.v[4].seq > last);
}

static void test_refs(void **state)
{
	struct core_model *m = *state;
	struct core_vm *vm;

	core_model_wrlock(m);
	vm = add(m, "web");
	core_model_ref(m, vm);
	core_model_remove(m, vm);
	core_model_unlock(m);
	/* Still readable: ASan would flag a use after free here. */
	assert_true(vm->deleted);
	assert_string_equal(vm->name, "web");
	core_model_unref(m, vm);
}

struct waiter {
	struct core_model *m;
	uint64_t seen;
	volatile bool cancel;
	int timeout;
	int result;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->result = core_model_wait(w->m, "web", w->seen, &w->cancel,
				    w->timeout);
	return NULL;
}

static void test_wait(void **state)
{
	struct core_model *m = *state;
	struct waiter w = { .m = m, .timeout = -1 };
	struct core_vm *vm;
	pthread_t t;

	core_model_wrlock(m);
	vm = add(m, "web");
	w.seen = vm->version;
	core_model_unlock(m);
	assert_int_equal(core_model_wait(m, "web", w.seen, NULL, 50),
			 -ETIMEDOUT);
	assert_int_equal(core_model_wait(m, "web", w.seen + 1, NULL, 0), 0);
	assert_int_equal(core_model_wait(m, "nope", 0, NULL, 0), -ENOENT);
	/* Woken by a change. */
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(20000);
	core_model_wrlock(m);
	core_model_status_changed(m, vm);
	core_model_unlock(m);
	pthread_join(t, NULL);
	assert_int_equal(w.result, 0);
	/* Cancelled. */
	w.seen = vm->version;
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(20000);
	__atomic_store_n(&w.cancel, true, __ATOMIC_RELEASE);
	core_model_wake(m);
	pthread_join(t, NULL);
	assert_int_equal(w.result, -EINTR);
	/* The VM goes away. */
	w.cancel = false;
	w.timeout = 5000;
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(20000);
	core_model_wrlock(m);
	core_model_remove(m, vm);
	core_model_unlock(m);
	pthread_join(t, NULL);
	assert_int_equal(w.result, -ENOENT);
	core_model_flush(m);
}

struct stress {
	struct core_model *m;
	int id;
	unsigned long changes;
};

static void count_changes(void *arg, const char *name, int slot,
			  unsigned what, uint64_t seq)
{
	struct stress *st = arg;

	st->changes++;
}

static void *writer(void *arg)
{
	struct stress *st = arg;
	char name[32], err[CORE_ERR_MAX];
	struct core_vm *vm;

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "w%d-%d", st->id, i % 20);
		core_model_wrlock(st->m);
		vm = core_model_find(st->m, name);
		if (vm) {
			core_model_event(st->m, vm, "Tick", "%d", i);
			if (i % 3 == 0)
				core_model_remove(st->m, vm);
		} else {
			json_object *spec = core_spec_default();

			if (core_model_add(st->m, name, NULL, NULL, NULL, spec,
					   NULL, err, sizeof(err)) != 0)
				json_object_put(spec);
		}
		core_model_unlock(st->m);
		core_model_flush(st->m);
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct stress *st = arg;
	size_t total = 0;

	for (int i = 0; i < 300; i++) {
		core_model_rdlock(st->m);
		for (int s = 0; s < 60; s++) {
			struct core_vm *vm = core_model_slot(st->m, s);

			if (vm)
				total += vm->len_status + strlen(vm->txt_events);
		}
		core_model_unlock(st->m);
		core_model_wait(st->m, "w0-1", 0, NULL, 1);
	}
	st->changes = total;
	return NULL;
}

static void test_concurrency(void **state)
{
	struct core_model *m = *state;
	struct stress st[4] = { { m, 0, 0 }, { m, 1, 0 }, { m, 2, 0 },
				{ m, 3, 0 } };
	pthread_t t[4];

	core_model_watch(m, count_changes, &st[0]);
	pthread_create(&t[0], NULL, writer, &st[0]);
	pthread_create(&t[1], NULL, writer, &st[1]);
	pthread_create(&t[2], NULL, reader, &st[2]);
	pthread_create(&t[3], NULL, reader, &st[3]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	core_model_flush(m);
	assert_true(st[0].changes > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_find_remove, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ids_given, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_texts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_and_err, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_notifications, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
