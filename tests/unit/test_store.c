/* The local store: put/get/del/list, atomicity, bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

struct fixture {
	char dir[64];
	struct core_store *s;
};

static int rm_rf(const char *path)
{
	struct dirent *de;
	char sub[512];
	DIR *d = opendir(path);

	if (!d)
		return unlink(path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[CORE_ERR_MAX];

	snprintf(f->dir, sizeof(f->dir), "/tmp/hsdk-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* A nested path: open creates the missing parents. */
	strcat(f->dir, "/state/sub");
	if (core_store_open(f->dir, &f->s, err, sizeof(err)) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	core_store_close(f->s);
	f->dir[strlen(f->dir) - strlen("/state/sub")] = '\0';
	rm_rf(f->dir);
	free(f);
	return 0;
}

static json_object *obj(const char *name, int cpus)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "cpus", json_object_new_int(cpus));
	return o;
}

static void write_file(const char *dir, const char *name, const char *txt)
{
	char p[1024];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(txt, fp);
	fclose(fp);
}

static bool exists(const char *dir, const char *name)
{
	char p[1024];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void test_open_layout(void **state)
{
	struct fixture *f = *state;
	const char *kinds[] = { "vms", "operations", "templates",
				"snapshots" };
	char p[1024];
	struct stat st;

	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, kinds[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
}

static void test_put_get_del(void **state)
{
	struct fixture *f = *state;
	json_object *a = obj("web", 2), *b = NULL;

	assert_int_equal(core_store_put(f->s, "vms", "web", a), 0);
	assert_int_equal(core_store_get(f->s, "vms", "web", &b), 0);
	assert_true(json_object_equal(a, b));
	json_object_put(b);
	/* Replace. */
	json_object_put(a);
	a = obj("web", 8);
	assert_int_equal(core_store_put(f->s, "vms", "web", a), 0);
	assert_int_equal(core_store_get(f->s, "vms", "web", &b), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(b, "cpus")),
			 8);
	json_object_put(b);
	/* A kind that open did not create is created on first put. */
	assert_int_equal(core_store_put(f->s, "Node", "n1", a), 0);
	assert_int_equal(core_store_del(f->s, "vms", "web"), 0);
	assert_int_equal(core_store_get(f->s, "vms", "web", &b),
			 -ENOENT);
	assert_null(b);
	assert_int_equal(core_store_del(f->s, "vms", "web"),
			 -ENOENT);
	assert_int_equal(core_store_get(f->s, "Nothing", "x", &b), -ENOENT);
	json_object_put(a);
}

static void test_bad_names(void **state)
{
	struct fixture *f = *state;
	json_object *a = obj("x", 1), *b = NULL;
	static const char *const names[] = { "", "../x", "a/b", ".hidden",
					     "a b" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(core_store_put(f->s, "vms",
						names[i], a),
				 -EINVAL);
		assert_int_equal(core_store_get(f->s, "vms",
						names[i], &b),
				 -EINVAL);
		assert_int_equal(core_store_del(f->s, "vms",
						names[i]),
				 -EINVAL);
	}
	assert_int_equal(core_store_put(f->s, "../etc", "x", a), -EINVAL);
	assert_int_equal(core_store_put(f->s, NULL, "x", a), -EINVAL);
	assert_int_equal(core_store_put(f->s, "vms", "x", NULL),
			 -EINVAL);
	json_object_put(a);
}

static void test_interrupted_write(void **state)
{
	struct fixture *f = *state;
	char kdir[512], err[CORE_ERR_MAX];
	json_object *a = obj("web", 2), *b = NULL;

	snprintf(kdir, sizeof(kdir), "%s/vms", f->dir);
	assert_int_equal(core_store_put(f->s, "vms", "web", a), 0);
	/* What a kill -9 between write and rename leaves behind: a torn
	 * temporary file next to the old object. */
	write_file(kdir, ".web.json.tmp-999-1", "{\"name\": \"web\", \"cp");
	assert_int_equal(core_store_get(f->s, "vms", "web", &b), 0);
	assert_true(json_object_equal(a, b));
	json_object_put(b);
	/* A restart cleans it up and still reads the old object. */
	core_store_close(f->s);
	assert_int_equal(core_store_open(f->dir, &f->s, err, sizeof(err)), 0);
	assert_false(exists(kdir, ".web.json.tmp-999-1"));
	assert_int_equal(core_store_get(f->s, "vms", "web", &b), 0);
	assert_true(json_object_equal(a, b));
	json_object_put(b);
	json_object_put(a);
}

struct listing {
	char names[256];
	int n;
	int stop_at;
};

static int lister(const char *name, json_object *o, void *arg)
{
	struct listing *l = arg;

	assert_string_equal(json_object_get_string(
				    json_object_object_get(o, "name")),
			    name);
	strcat(l->names, name);
	strcat(l->names, " ");
	return ++l->n == l->stop_at ? 42 : 0;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct listing l = { .n = 0 };
	const char *names[] = { "web", "db", "cache" };
	char kdir[512];

	snprintf(kdir, sizeof(kdir), "%s/vms", f->dir);
	for (int i = 0; i < 3; i++) {
		json_object *o = obj(names[i], 1);

		assert_int_equal(core_store_put(f->s, "vms",
						names[i], o),
				 0);
		json_object_put(o);
	}
	write_file(kdir, ".db.json.tmp-1-1", "{\"name\": \"db\"}");
	write_file(kdir, "broken.json", "{\"name\": ");
	write_file(kdir, "array.json", "[1, 2]");
	write_file(kdir, "trailing.json", "{\"name\": \"trailing\"} junk");
	write_file(kdir, "empty.json", "");
	write_file(kdir, "notes.txt", "not an object file");
	assert_int_equal(core_store_list(f->s, "vms", lister, &l),
			 0);
	assert_string_equal(l.names, "cache db web ");
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	assert_int_equal(core_store_list(f->s, "vms", lister, &l),
			 42);
	assert_string_equal(l.names, "cache db ");
	memset(&l, 0, sizeof(l));
	assert_int_equal(core_store_list(f->s, "Unknown", lister, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(core_store_list(f->s, "a/b", lister, &l), -EINVAL);
}

static void test_vm_object(void **state)
{
	struct fixture *f = *state;
	struct core_model *m;
	struct core_vm *vm;
	char err[CORE_ERR_MAX];
	json_object *o, *back = NULL, *md, *x;
	struct core_status st;

	assert_int_equal(core_model_new(&m), 0);
	core_model_wrlock(m);
	assert_int_equal(core_model_add(m, "web", "prod", "u-1",
					"2026-11-26T15:04:05Z",
					core_spec_default(), &vm, err,
					sizeof(err)),
			 0);
	vm->st.phase = CORE_PHASE_STOPPED;
	o = core_vm_to_object(vm);
	core_model_unlock(m);
	assert_string_equal(json_object_get_string(
				    json_object_object_get(o, "apiVersion")),
			    "hypersdk.io/v1alpha1");
	assert_string_equal(json_object_get_string(
				    json_object_object_get(o, "kind")),
			    "VirtualMachine");
	md = json_object_object_get(o, "metadata");
	assert_string_equal(json_object_get_string(
				    json_object_object_get(md, "namespace")),
			    "prod");
	assert_string_equal(json_object_get_string(
				    json_object_object_get(md, "uid")),
			    "u-1");
	/* The spec is a copy, not the model's own document. */
	x = json_object_object_get(o, "spec");
	assert_ptr_not_equal(x, vm->spec_json);
	assert_true(json_object_equal(x, vm->spec_json));
	assert_int_equal(core_store_put(f->s, "vms", "web", o), 0);
	assert_int_equal(core_store_get(f->s, "vms", "web", &back),
			 0);
	assert_true(json_object_equal(o, back));
	assert_int_equal(core_status_from_json(
				 json_object_object_get(back, "status"), &st),
			 0);
	assert_int_equal(st.phase, CORE_PHASE_STOPPED);
	json_object_put(back);
	json_object_put(o);
	core_model_free(m);
}

static void test_open_fails(void **state)
{
	struct core_store *s = (struct core_store *)1;
	char err[CORE_ERR_MAX] = "";

	assert_true(core_store_open("/proc/hsdk-no/x", &s, err, sizeof(err)) <
		    0);
	assert_null(s);
	assert_non_null(strstr(err, "store /proc/hsdk-no/x: "));
	core_store_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_layout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_put_get_del, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_write, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_object, setup, teardown),
		cmocka_unit_test(test_open_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
